"""The DCC inside the PDF: embedded as an associated file before signing, extracted, checked.

The DCC goes into the PDF before it is signed, as an associated file (``/AF``, relationship
``/Source``, MIME type ``application/xml``), so the one signature covers both.

>>> extract(embed(pdf, xml)) == xml  # doctest: +SKIP
True
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from io import BytesIO
from typing import TYPE_CHECKING, Any

from certissuer.dcc.read import read_with_document
from certissuer.dcc.schema import MAX_XML_BYTES, MIME_TYPE, SCHEMA_VERSION, DccError
from certissuer.errors import InputError, InputErrors
from certissuer.model import (
    AnyCertificate,
    CalibrationCertificate,
    data_digest,
    parse_certificate,
)

if TYPE_CHECKING:
    from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = ["check_embedded", "embed", "extract"]


def embed(pdf: bytes, xml: bytes, *, filename: str = "dcc.xml") -> bytes:
    """`pdf` with `xml` attached as its DCC, ready to be signed.

    The file goes into the EmbeddedFiles name tree and the catalog's ``/AF`` array with
    ``/AFRelationship /Source`` and MIME type ``application/xml`` (the PDF/A-3 way of saying
    "this document was made from that data"), as an incremental update. Embed before signing:
    the signature then covers the XML. Raises `DccError` for a PDF that cannot take it.
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError

    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
        version = writer.root.get("/Version")
        output_version = writer.output_version
        stream = EmbeddedFileObject.from_file_data(
            writer, xml, params=EmbeddedFileParams(), mime_type=MIME_TYPE
        )
        spec = FileSpec(
            file_spec_string=filename,
            file_name=filename,
            embedded_data=stream,
            description=f"Digital Calibration Certificate (PTB DCC {SCHEMA_VERSION})",
            af_relationship=generic.pdf_name("/Source"),
        )
        embed_file(writer, spec)
        # NOTE: embed_file raises the catalog /Version to 2.0 for /AF (and pyHanko would then
        # write XMP metadata); the certificate stays a PDF 1.7 document (see FIELD-NOTES).
        if version is None:
            del writer.root["/Version"]
        else:
            writer.root["/Version"] = version
        writer.output_version = output_version
        out = BytesIO()
        writer.write(out)  # type: ignore[no-untyped-call]  # untyped in pyHanko
    except (PdfError, ValueError, KeyError, NotImplementedError) as exc:
        raise DccError(f"cannot attach the DCC to the PDF: {exc}") from exc
    return out.getvalue()


def extract(pdf: bytes | PdfFileReader, *, max_bytes: int = MAX_XML_BYTES) -> bytes | None:
    """The DCC XML attached to `pdf` (bytes or a pyHanko reader), or None if there is none.

    Looks for the catalog's associated file with relationship ``/Source`` and MIME type
    ``application/xml``. Its size is bounded by `max_bytes` while decompressing. Raises
    `DccError` for a damaged attachment, several DCCs, or one larger than the limit.
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = (
            pdf if isinstance(pdf, PdfFileReader) else PdfFileReader(BytesIO(pdf), strict=False)
        )
        files = reader.root.get("/AF")
        found = []
        for ref in files.get_object() if files is not None else []:
            spec = ref.get_object()
            if not isinstance(spec, generic.DictionaryObject):
                continue
            if spec.get("/AFRelationship") != "/Source" or "/EF" not in spec:
                continue
            ef = spec["/EF"].get_object()
            stream = (ef.get("/UF") or ef["/F"]).get_object()
            if stream.get("/Subtype") == "/" + MIME_TYPE:
                found.append(stream)
        if not found:
            return None
        if len(found) > 1:
            raise DccError(f"the PDF carries {len(found)} DCC documents; expected one")
        return _bounded(found[0], max_bytes)
    except (PdfError, ValueError, KeyError, TypeError, AttributeError, zlib.error) as exc:
        raise DccError(f"the DCC attached to the PDF cannot be read: {exc}") from exc


def _bounded(stream: Any, max_bytes: int) -> bytes:
    """The decoded stream, never inflating more than `max_bytes` (a deflate bomb stops early)."""
    encoded: bytes = stream.encoded_data
    filters = stream.get("/Filter")
    if isinstance(filters, list) and len(filters) == 1:
        filters = filters[0]
    if filters is None:
        data = encoded
    elif filters == "/FlateDecode" and "/DecodeParms" not in stream:
        data = zlib.decompressobj().decompress(encoded, max_bytes + 1)
    else:
        if len(encoded) > max_bytes:
            raise DccError(f"the attached DCC is larger than {max_bytes} bytes")
        data = stream.data
    if len(data) > max_bytes:
        raise DccError(f"the attached DCC is larger than {max_bytes} bytes")
    return data


def check_embedded(reader: PdfFileReader, *, number: str, digest: str) -> tuple[bool, str] | None:
    """Does the DCC attached to a signed PDF carry the ledger's data? None when none is attached.

    `number` and `digest` are the ledger entry's number and data digest. Returns
    ``(True, reason)`` when the DCC's certificate has the same data digest and number, else
    ``(False, reason)`` saying what differs (a DCC that cannot be read differs too).
    """
    try:
        xml = extract(reader)
    except DccError as exc:
        return False, f"embedded DCC: {exc}"
    if xml is None:
        return None
    try:
        doc, cert = read_with_document(xml, "embedded DCC", None, stored=True)
    except (InputError, InputErrors) as exc:
        return False, f"embedded DCC cannot be read: {str(exc).splitlines()[-1]}"
    if doc.number != number:
        return False, f"embedded DCC names certificate {doc.number}, the ledger entry is {number}"
    if data_digest(cert) != digest:
        if data_digest(_without_computed_probabilities(cert)) == digest:
            return True, (
                "embedded DCC: matches the ledger's data (its coverage probabilities were "
                "computed from k, as DCCs issued before they were stated carry them)"
            )
        return False, "embedded DCC does not match the ledger's data digest"
    return True, "embedded DCC: matches the ledger's data"


def _without_computed_probabilities(cert: AnyCertificate) -> AnyCertificate:
    """`cert` with the coverage probability of each result with k ≠ 2 and no degrees of
    freedom removed: a DCC written before issue 16 carried p computed from k (normal
    distribution) where the record stated none. The signature over the whole PDF keeps this
    from excusing an edit; it only lets an old certificate match its own ledger data."""
    if not isinstance(cert, CalibrationCertificate):
        return cert
    data = cert.model_dump(mode="json")
    for result in data["results"]:
        if Decimal(result["coverage_factor"]) != 2 and result.get("degrees_of_freedom") is None:
            result.pop("coverage_probability", None)
    try:
        return parse_certificate(data, stored=True)
    except ValueError:
        return cert
