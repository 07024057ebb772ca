"""Byte-level forgeries of signed certificates: incremental updates written by hand.

pyHanko's writer only writes well-formed files; the attacks on strict reading need what it
never writes (a `startxref` a few bytes off, objects that no cross-reference section lists,
object streams in an update, malformed /Rect arrays), so these helpers write raw bytes.
"""

from __future__ import annotations

import subprocess
import zlib
from io import BytesIO
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

# What a forger puts in place of the genuine values (the digits exist in the embedded subset).
SERIAL_KD, FORGED_SERIAL_KD = b"TS-2019-88231", b"TS-2019-11111"
VALID_UNTIL_KD, FORGED_VALID_UNTIL_KD = b"24/11/2027", b"24/11/2029"


def reader(data: bytes) -> PdfFileReader:
    return PdfFileReader(BytesIO(data), strict=False)


def serialise(obj: Any) -> bytes:
    out = BytesIO()
    obj.write_to_stream(out, None)
    return out.getvalue()


def definition(number: int, body: bytes) -> bytes:
    return b"%d 0 obj\n" % number + body + b"\nendobj\n"


def stream(data: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(data)
    head = b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n" % (len(packed), extra)
    return head + packed + b"\nendstream"


def size_of(data: bytes) -> int:
    return int(reader(data).trailer["/Size"])


def _trailer_refs(data: bytes) -> tuple[bytes, int]:
    r = reader(data)
    t = r.trailer
    ids = t["/ID"]
    root = t.raw_get("/Root").reference
    info = t.raw_get("/Info").reference
    entries = b"/Root %d %d R /Info %d %d R /ID [<%s> <%s>]" % (
        root.idnum,
        root.generation,
        info.idnum,
        info.generation,
        ids[0].original_bytes.hex().encode(),
        ids[1].original_bytes.hex().encode(),
    )
    return entries, r.xrefs.get_startxref_for_revision(r.xrefs.total_revisions - 1)


def append_revision(
    data: bytes,
    objects: dict[int, bytes],
    *,
    unlisted: bytes = b"",
    startxref_shift: int = 0,
) -> bytes:
    """Append a revision defining `objects` (number → body) with a classic xref table.

    `unlisted` goes in before the revision's objects, in no cross-reference section;
    `startxref_shift` moves the declared offset of the new section by that many bytes.
    """
    entries, prev = _trailer_refs(data)
    size = max([size_of(data), *(n + 1 for n in objects)])
    out = bytearray(data if data.endswith(b"\n") else data + b"\n")
    out += unlisted
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += definition(number, objects[number])
    xref_at = len(out)
    out += b"xref\n"
    for number in sorted(offsets):
        out += b"%d 1\n%010d 00000 n \n" % (number, offsets[number])
    out += b"trailer\n<< /Size %d %s /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        entries,
        prev,
        xref_at + startxref_shift,
    )
    return bytes(out)


def append_objstm_revision(data: bytes, plain: dict[int, bytes], packed: dict[int, bytes]) -> bytes:
    """Append a revision with a cross-reference stream: `packed` objects go in an object
    stream, `plain` ones are written as usual."""
    entries, prev = _trailer_refs(data)
    size = max([size_of(data), *(n + 1 for n in (*plain, *packed))])
    objstm, xref_num = size, size + 1
    out = bytearray(data if data.endswith(b"\n") else data + b"\n")
    offsets: dict[int, int] = {}
    for number in sorted(plain):
        offsets[number] = len(out)
        out += definition(number, plain[number])
    header, body = b"", b""
    for number in sorted(packed):
        header += b"%d %d " % (number, len(body))
        body += packed[number] + b"\n"
    content = header + body
    offsets[objstm] = len(out)
    out += definition(
        objstm,
        stream(content, b"/Type /ObjStm /N %d /First %d " % (len(packed), len(header))),
    )
    rows = {n: b"\x01" + off.to_bytes(4, "big") + b"\x00" for n, off in offsets.items()}
    for index, number in enumerate(sorted(packed)):
        rows[number] = b"\x02" + objstm.to_bytes(4, "big") + bytes([index])
    xref_at = len(out)
    rows[xref_num] = b"\x01" + xref_at.to_bytes(4, "big") + b"\x00"
    index_pairs = b" ".join(b"%d 1" % n for n in sorted(rows))
    raw = b"".join(rows[n] for n in sorted(rows))
    extra = b"/Type /XRef /W [1 4 1] /Index [%s] /Size %d %s /Prev %d " % (
        index_pairs,
        xref_num + 1,
        entries,
        prev,
    )
    out += definition(xref_num, stream(raw, extra))
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def catalog_with(data: bytes, **entries: Any) -> tuple[int, bytes]:
    """The catalog number and its body with `entries` set (values are pyHanko objects)."""
    r = reader(data)
    root = r.root
    body = generic.DictionaryObject({k: root.raw_get(k) for k in root})
    for key, value in entries.items():
        body[generic.NameObject("/" + key)] = value
    return r.trailer.raw_get("/Root").reference.idnum, serialise(body)


def ref(number: int) -> generic.IndirectObject:
    return generic.IndirectObject(number, 0, None)  # type: ignore[arg-type]


def with_dss(data: bytes, objects: dict[int, bytes], dss: int | None = None) -> dict[int, bytes]:
    """`objects` plus an (empty) DSS in the catalog: the update then looks like validation data."""
    number = dss if dss is not None else max([size_of(data), *(n + 1 for n in objects)])
    root, body = catalog_with(data, DSS=ref(number))
    return {**objects, root: body, number: b"<< /Certs [] >>"}


def page_content(data: bytes, page: int = 0) -> tuple[int, bytes]:
    """The number of page `page`'s content stream and its decoded bytes."""
    r = reader(data)
    kids = r.root["/Pages"].raw_get("/Kids")
    page_obj = list.__getitem__(kids, page).get_object()
    contents = page_obj.raw_get("/Contents")
    return contents.reference.idnum, contents.get_object().data


def forged_content(data: bytes, substitutions: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Page 1's content stream number and its content with `substitutions` made."""
    number, content = page_content(data)
    for old, new in substitutions:
        assert old in content, old
        content = content.replace(old, new)
    return number, content


def page_ref(data: bytes, page: int = 0) -> generic.IndirectObject:
    kids = reader(data).root["/Pages"].raw_get("/Kids")
    found = list.__getitem__(kids, page)
    assert isinstance(found, generic.IndirectObject)
    return found


def pdftotext(data: bytes) -> str:
    """What poppler's pdftotext reads from the file (what a viewer shows as text)."""
    done = subprocess.run(
        ["pdftotext", "-q", "-", "-"], input=data, capture_output=True, check=False, timeout=60
    )
    return done.stdout.decode("utf-8", "replace")
