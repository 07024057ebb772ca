"""Strict document reading: the validator and every viewer must read one and the same document.

pyHanko's lenient reader repairs a `startxref` that points a few bytes away from its
cross-reference section and never reads bytes that no section lists; poppler, PDFium and MuPDF
answer the same damage by scanning the whole file and taking the *last* definition of every
object, listed or not. A signature can then be valid for one document while viewers show
another. This module makes sure there is only one, before any signature is judged:

* `open_document`: the file is read by pyHanko in strict mode. A file that only a repair can
  read is refused; one that even the lenient reader cannot read is `Unreadable`.
* `check_revision_count`: at most `MAX_REVISIONS` revisions are analysed.
* `check_xref_offsets`: every revision's declared `startxref` (and each /Prev) points exactly
  at its `xref` table or cross-reference stream, and the `startxref` written at the end of
  each revision says the same.
* `check_object_definitions`: every object definition (``N G obj``) in the file is one that a
  cross-reference section lists, every listed offset holds that object, and the definition
  the sections resolve each object to is the last one in the file (the one a rebuilding
  reader takes).
* `check_rebuild_agrees`: qpdf (through pikepdf), made to rebuild the cross-reference table by
  scanning, sees the same objects as pyHanko's strict reader. It runs when bytes follow the
  first signed revision (the only bytes nobody's signature vouches for).
* `check_changes`: after the signatures are judged, every object that a revision after a
  signature defines or redefines is compared with what that signature signed (dictionaries
  key by key, streams by their decoded bytes); only validation data, document information
  dates (and their XMP twins, `XMP_REFRESHED`) and signature fields that a later signature
  fills may differ, and every annotation added since is a signature widget that a later
  signature signs, with a four-number /Rect.

Matches of ``N G obj`` inside stream data count as definitions too: poppler's rebuilding scan
reads the file line by line without skipping streams, so a definition hidden in stream data
is one a viewer can take. A certificate's streams are Flate-compressed (the embedded DCC XML
too), apart from a signature appearance's few operators and its ASCII85 stamp, which have no
whitespace-separated ``N G obj``; compressed data matches the pattern with a probability of
about 1e-13 per byte, and the genuine files of every PAdES level, approved or not, test clean.

>>> reader = open_document(data)  # doctest: +SKIP
>>> check_structure(data, reader)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import ObjStreamRef

__all__ = [
    "MAX_REVISIONS",
    "XMP_REFRESHED",
    "Ambiguous",
    "LaterSignature",
    "Unreadable",
    "check_changes",
    "check_last_startxref",
    "check_object_definitions",
    "check_rebuild_agrees",
    "check_revision_count",
    "check_structure",
    "check_xref_offsets",
    "final_locations",
    "metadata_ref",
    "norm_decoded",
    "object_definitions",
    "open_document",
    "signed_widget",
    "strict_reader",
    "xmp_refreshed_only",
]

_logger = logging.getLogger(__name__)

MAX_REVISIONS = 32
"""Revisions analysed at most: a genuine certificate has a handful (issue, approval, DSS,
document timestamps); thousands only cost time."""

_READ_ERRORS = (
    PdfError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    AssertionError,
    RecursionError,
    OverflowError,
)
"""What pyHanko raises on a malformed file (it asserts some structure)."""

_WS = rb"\x00\t\n\x0c\r "
# An object header read backwards from its `obj` keyword: two integers separated by
# whitespace or comments (a tokenising reader such as MuPDF skips comments).
_GAP = rb"(?:[" + _WS + rb"]|%[^\r\n]*[\r\n])+"
_HEADER_TAIL = re.compile(rb"(\d{1,10})" + _GAP + rb"(\d{1,10})" + _GAP + rb"\Z")
_HEADER_WINDOW = 96
_STARTXREF = re.compile(rb"startxref[" + _WS + rb"]+(\d{1,20})[" + _WS + rb"]+%%EOF")
_BOUNDARY = frozenset(b"\x00\t\n\x0c\r ()<>[]{}/%")
_SPACE = frozenset(b"\x00\t\n\x0c\r ")


class Unreadable(Exception):
    """The file cannot be read as a PDF at all (not even by a repairing reader)."""


class Ambiguous(Exception):
    """The file reads as more than one document, or differs from what was signed."""


# -- reading ---------------------------------------------------------------------------------


def open_document(data: bytes) -> PdfFileReader:
    """Read `data` with pyHanko in strict mode and check that it is one unambiguous document.

    Raises `Ambiguous` when a repairing reader and a strict one would see different documents
    (a `startxref` off by a few bytes, objects no cross-reference section lists), and
    `Unreadable` when the file is malformed beyond that (no cross-reference data, cross-reference
    streams out of order, nesting too deep).
    """
    try:
        reader = strict_reader(data)
    except _READ_ERRORS as exc:
        _explain_repair(data, exc)
        raise AssertionError("unreachable") from None  # pragma: no cover
    check_revision_count(reader)
    try:
        check_structure(data, reader)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise Unreadable(_words(exc)) from None
    return reader


def strict_reader(data: bytes) -> PdfFileReader:
    """pyHanko's reader in strict mode: no repair of the cross-reference data."""
    return PdfFileReader(BytesIO(data), strict=True)


def _explain_repair(data: bytes, strict_error: BaseException) -> None:
    """The strict reader refused `data`: say why, as a differential when there is one.

    A file whose end leads to no cross-reference section (cut off, damaged, or with its
    `startxref` off) is one that viewers still show, by rebuilding it: altered. A file whose
    cross-reference data is there but breaks the syntax is unreadable.
    """
    check_last_startxref(data)
    try:
        lenient = PdfFileReader(BytesIO(data), strict=False)
        check_revision_count(lenient)
        check_structure(data, lenient)
    except Ambiguous:
        raise
    except _READ_ERRORS:
        pass
    # Bytes after the last %%EOF hide it from pyHanko (which looks for it near the end);
    # viewers skip them. If the file up to that marker reads, it was appended to.
    end = data.rfind(b"%%EOF")
    if end > 0 and data[end + 5 :].strip():
        try:
            strict_reader(data[: end + 5])
        except _READ_ERRORS:
            pass
        else:
            raise Ambiguous(
                f"{len(data) - end - 5} bytes follow the file's last %%EOF marker "
                "(something was appended after the end of the document)"
            )
    if _last(_STARTXREF.finditer(data, max(0, len(data) - 4096))) is None:
        raise Ambiguous(
            "the file has no cross-reference section at its end (it was cut off or damaged; "
            "viewers rebuild such a file by scanning it)"
        )
    raise Unreadable(f"it is malformed ({_words(strict_error)})") from None


def check_last_startxref(data: bytes) -> None:
    """The file's last `startxref` points exactly at an `xref` table or an object header.

    Checked on the raw bytes, for files that pyHanko cannot read at all: viewers read those
    too, by rebuilding, and show whatever the last definitions say.
    """
    found = _last(_STARTXREF.finditer(data, max(0, len(data) - 4096)))
    if found is None:
        return
    offset = int(found.group(1))
    if data[offset : offset + 4] != b"xref" and _header_at(data, offset) is None:
        raise Ambiguous(
            f"the last revision: its startxref ({offset}) does not point exactly at its "
            "cross-reference section (viewers then rebuild the file by scanning it and may "
            "show other objects)"
        )


def _last(matches: Iterator[re.Match[bytes]]) -> re.Match[bytes] | None:
    last = None
    for last in matches:  # noqa: B007 - only the last one counts
        pass
    return last


def _words(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "its objects are nested too deeply"
    text = str(getattr(exc, "msg", "") or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def check_revision_count(reader: PdfFileReader) -> None:
    """Refuse more than `MAX_REVISIONS` revisions before any expensive analysis."""
    total = reader.xrefs.total_revisions
    if total > MAX_REVISIONS:
        raise Ambiguous(f"too many revisions ({total}; a certificate has at most {MAX_REVISIONS})")


def check_structure(data: bytes, reader: PdfFileReader) -> None:
    """The byte-level checks: `check_xref_offsets` and `check_object_definitions`."""
    check_last_startxref(data)
    check_xref_offsets(data, reader)
    check_object_definitions(data, reader)


# -- the cross-reference sections ------------------------------------------------------------


def check_xref_offsets(data: bytes, reader: PdfFileReader) -> None:
    """Every revision's `startxref` and /Prev point exactly at its cross-reference section."""
    xrefs = reader.xrefs
    for revision in range(xrefs.total_revisions):
        meta = xrefs.get_xref_container_info(revision)
        declared = meta.declared_startxref
        if meta.stream_ref is None:
            exact = data[declared : declared + 4] == b"xref"
        else:
            header = _header_at(data, declared)
            ref = meta.stream_ref
            exact = header == (ref.idnum, ref.generation)
        if not exact:
            raise Ambiguous(
                f"revision {revision + 1}: its startxref ({declared}) does not point exactly at "
                "its cross-reference section (viewers then rebuild the file by scanning it and "
                "may show other objects)"
            )
        found = _STARTXREF.search(data, meta.end_location)
        if found is None or int(found.group(1)) != declared:
            written = "none" if found is None else found.group(1).decode()
            raise Ambiguous(
                f"revision {revision + 1}: its startxref ({written}) does not point at its "
                f"cross-reference section at byte {declared}"
            )
        data_section = xrefs.get_xref_data(revision)
        if data_section.hybrid is not None:
            hybrid = data_section.hybrid.meta_info
            assert hybrid.stream_ref is not None
            if _header_at(data, hybrid.start_location) != (
                hybrid.stream_ref.idnum,
                hybrid.stream_ref.generation,
            ):
                raise Ambiguous(
                    f"revision {revision + 1}: /XRefStm does not point at a cross-reference stream"
                )


def _header_at(data: bytes, offset: int) -> tuple[int, int] | None:
    """The (number, generation) of an object header starting exactly at `offset`."""
    match = _HEADER_AT.match(data, offset)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


_HEADER_AT = re.compile(rb"(\d{1,10})" + _GAP + rb"(\d{1,10})" + _GAP + rb"obj")


def object_definitions(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Every ``N G obj`` in `data`, streams included: (offset, number, generation)."""
    find = data.find
    pos = find(b"obj")
    while pos != -1:
        after = data[pos + 3 : pos + 4]
        before = data[pos - 1] if pos else 0x20
        # `obj` as a keyword: a delimiter or the end after it, whitespace or a digit before
        # it (a tokenising reader splits "0obj" too); "endobj" has a letter before it.
        if (not after or after[0] in _BOUNDARY) and (before in _SPACE or 0x30 <= before <= 0x39):
            found = _header_before(data, pos)
            if found is not None:
                yield found
        pos = find(b"obj", pos + 3)


def _header_before(data: bytes, end: int) -> tuple[int, int, int] | None:
    start = max(0, end - _HEADER_WINDOW)
    tail = _HEADER_TAIL.search(data, start, end)
    while tail is not None and tail.start(1) == start and start > 0:
        # the window may have cut the object number: look again from further back
        start = max(0, start - _HEADER_WINDOW)
        tail = _HEADER_TAIL.search(data, start, end)
    if tail is None:
        return None
    begin = tail.start(1)
    if begin > 0 and data[begin - 1] not in _BOUNDARY:
        return None
    return begin, int(tail.group(1)), int(tail.group(2))


@dataclass(frozen=True, slots=True)
class _Listed:
    number: int
    generation: int
    revision: int


def _listed_offsets(reader: PdfFileReader) -> dict[int, _Listed]:
    listed: dict[int, _Listed] = {}
    xrefs = reader.xrefs
    for revision in range(xrefs.total_revisions):
        section = xrefs.get_xref_data(revision)
        sections = [section] + ([section.hybrid.xref_data] if section.hybrid else [])
        for part in sections:
            for number, (generation, offset) in part.standard_xrefs.items():
                listed[offset] = _Listed(number, generation, revision)
        meta = xrefs.get_xref_container_info(revision)
        for info in (meta, section.hybrid.meta_info if section.hybrid else None):
            if info is not None and info.stream_ref is not None:
                ref = info.stream_ref
                listed.setdefault(info.start_location, _Listed(ref.idnum, ref.generation, revision))
    return listed


def final_locations(reader: PdfFileReader) -> dict[int, tuple[int, int | ObjStreamRef | None]]:
    """Object number → (generation, offset | object stream entry | None if free), as the
    newest revision's cross-reference sections resolve it."""
    found: dict[int, tuple[int, int | ObjStreamRef | None]] = {}
    xrefs = reader.xrefs
    for revision in range(xrefs.total_revisions):
        section = xrefs.get_xref_data(revision)
        parts = ([section.hybrid.xref_data] if section.hybrid else []) + [section]
        for part in parts:
            for number, next_generation in part.freed.items():
                found[number] = (max(next_generation - 1, 0), None)
            for number, loc in part.xrefs_in_objstm.items():
                found[number] = (0, loc)
            found.update(part.standard_xrefs)
    return found


def check_object_definitions(data: bytes, reader: PdfFileReader) -> None:
    """No object lies outside the cross-reference sections, and the sections resolve each
    object to its last definition in the file (the one a rebuilding reader takes)."""
    listed = _listed_offsets(reader)
    last: dict[int, tuple[int, int]] = {}
    seen: set[int] = set()
    for offset, number, generation in object_definitions(data):
        entry = listed.get(offset)
        if entry is None or (entry.number, entry.generation) != (number, generation):
            raise Ambiguous(
                f"an object definition ({number} {generation} obj) at byte {offset} is not in "
                "any cross-reference section (viewers that rebuild the file take it)"
            )
        seen.add(offset)
        previous = last.get(number)
        if previous is None or offset > previous[0]:
            if previous is not None and generation < previous[1]:
                raise Ambiguous(
                    f"object {number} is redefined with a lower generation at byte {offset}"
                )
            last[number] = (offset, generation)
    for offset, entry in listed.items():
        if offset not in seen:
            raise Ambiguous(
                f"the cross-reference entry of object {entry.number} {entry.generation} points "
                f"to byte {offset}, where that object does not begin"
            )
    final = final_locations(reader)
    for number, (offset, generation) in last.items():
        resolved = final.get(number)
        if resolved is None or resolved[1] != offset or resolved[0] != generation:
            where = (
                "is free"
                if resolved is None or resolved[1] is None
                else "lies in an object stream"
                if isinstance(resolved[1], ObjStreamRef)
                else f"is at byte {resolved[1]}"
            )
            raise Ambiguous(
                f"object {number}: its last definition in the file is at byte {offset}, but "
                f"for the cross-reference sections it {where} (a rebuilding reader and a strict "
                "one see different objects)"
            )


# -- a rebuilding reader -----------------------------------------------------------------------


def check_rebuild_agrees(data: bytes, reader: PdfFileReader) -> None:
    """qpdf, made to rebuild the cross-reference table by scanning the file, sees the same
    objects as the strict reader: each object key by key, streams by their raw bytes."""
    import pikepdf

    found = _last(_STARTXREF.finditer(data))
    if found is None:
        raise Ambiguous("the file has no startxref")
    # Point the last startxref at byte 0 so that qpdf must rebuild by scanning, as poppler,
    # PDFium and MuPDF do when a startxref is off.
    width = found.end(1) - found.start(1)
    broken = data[: found.start(1)] + b"0" * width + data[found.end(1) :]
    try:
        rebuilt = pikepdf.open(BytesIO(broken))
    except (pikepdf.PdfError, ValueError, RecursionError) as exc:
        raise Ambiguous(f"a rebuilding reader cannot read the file ({exc})") from None
    with rebuilt:
        strict_side = {
            number: generation
            for number, (generation, loc) in final_locations(reader).items()
            if loc is not None and number != 0
        }
        stream_refs = {(ref.idnum, ref.generation) for ref in reader.xrefs.xref_stream_refs}
        objects: list[Any] = list(rebuilt.objects)
        rebuilt_side = {
            obj.objgen[0]: obj.objgen[1] for obj in objects if obj is not None and obj.is_indirect
        }
        for number in sorted(set(strict_side) | set(rebuilt_side)):
            generation = strict_side.get(number, rebuilt_side.get(number, 0))
            if (number, generation) in stream_refs:
                continue  # cross-reference streams are bookkeeping, not document objects
            ours = _norm_pyhanko(_fetch(reader, (number, generation)))
            try:
                theirs = _norm_pikepdf(rebuilt.get_object(number, generation))
            except (pikepdf.PdfError, ValueError) as exc:
                theirs = ("error", str(exc))
            if ours != theirs:
                raise Ambiguous(
                    f"object {number} {generation} reads differently when the file is rebuilt by "
                    "scanning (as viewers do) than through its cross-reference sections"
                )


def _number(value: Any) -> tuple[str, Decimal]:
    return ("num", Decimal(str(value)).normalize())


def _norm_pyhanko(obj: Any, depth: int = 0) -> Any:
    """A comparable form of a pyHanko object (indirect references are not followed)."""
    if depth > 200:
        raise RecursionError
    if isinstance(obj, generic.IndirectObject):
        return ("ref", obj.idnum, obj.generation)
    if isinstance(obj, generic.StreamObject):
        items = {str(k): _norm_pyhanko(obj.raw_get(k), depth + 1) for k in obj if k != "/Length"}
        return ("stream", items, bytes(obj.encoded_data or b""))
    if isinstance(obj, generic.DictionaryObject):
        return ("dict", {str(k): _norm_pyhanko(obj.raw_get(k), depth + 1) for k in obj})
    if isinstance(obj, generic.ArrayObject):
        return ("array", [_norm_pyhanko(v, depth + 1) for v in list.__iter__(obj)])
    if isinstance(obj, generic.TextStringObject | generic.ByteStringObject):
        return ("str", bytes(obj.original_bytes))
    if isinstance(obj, generic.NameObject):
        return ("name", str(obj))
    if isinstance(obj, generic.BooleanObject):
        return ("bool", bool(obj.value))
    if isinstance(obj, generic.NullObject) or obj is None:
        return ("null",)
    if isinstance(obj, int | Decimal | float):
        return _number(obj)
    return ("other", repr(obj))


def _norm_pikepdf(obj: Any, depth: int = 0) -> Any:
    """The same comparable form for a pikepdf object."""
    import pikepdf

    if depth > 200:
        raise RecursionError
    if isinstance(obj, pikepdf.Object) and obj.is_indirect and depth > 0:
        return ("ref", *obj.objgen)
    if isinstance(obj, pikepdf.Stream):
        items = {
            str(k): _norm_pikepdf(v, depth + 1)
            for k, v in obj.stream_dict.items()
            if k != "/Length"
        }
        return ("stream", items, bytes(obj.read_raw_bytes()))
    if isinstance(obj, pikepdf.Dictionary):
        return ("dict", {str(k): _norm_pikepdf(v, depth + 1) for k, v in obj.items()})
    if isinstance(obj, pikepdf.Array):
        return ("array", [_norm_pikepdf(v, depth + 1) for v in obj])
    if isinstance(obj, pikepdf.String):
        return ("str", bytes(obj))
    if isinstance(obj, pikepdf.Name):
        return ("name", str(obj))
    if isinstance(obj, bool):
        return ("bool", obj)
    if obj is None:
        return ("null",)
    if isinstance(obj, int | Decimal | float):
        return _number(obj)
    if isinstance(obj, pikepdf.Object):
        if obj._type_code == pikepdf.ObjectType.null:
            return ("null",)
        if obj._type_code == pikepdf.ObjectType.boolean:
            return ("bool", bool(obj))
        if obj._type_code in (pikepdf.ObjectType.integer, pikepdf.ObjectType.real):
            return _number(Decimal(str(obj)))
    return ("other", repr(obj))


# -- what changed after a signature ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaterSignature:
    """A signature or document timestamp that follows the one being judged (and was valid)."""

    field_name: str
    value_ref: tuple[int, int]
    """The signature dictionary (the field's /V)."""
    signed_revision: int


_CATALOG_MAY_CHANGE = frozenset({"/DSS", "/Extensions", "/Version"})
_CATALOG_MAY_CHANGE_WHEN_SIGNED = _CATALOG_MAY_CHANGE | {"/Metadata", "/Perms"}
_INFO_MAY_CHANGE = frozenset({"/ModDate", "/Producer"})
_FORM_MAY_CHANGE = frozenset({"/Fields", "/SigFlags"})
_WIDGET_MAY_CHANGE = frozenset({"/V", "/AP", "/AS", "/F", "/MK", "/Lock"})


def check_changes(
    reader: PdfFileReader, signed_revision: int, later: Sequence[LaterSignature]
) -> None:
    """Compare every object that a revision after `signed_revision` defines or redefines with
    its value in `signed_revision`, and every annotation of every page directly.

    `later` are the signatures that follow (all valid: the caller judged them). Raises
    `Ambiguous` naming the first change that neither validation data nor a later signature
    explains.
    """
    xrefs = reader.xrefs
    final = xrefs.total_revisions - 1
    if signed_revision >= final:
        return
    old = reader.get_historical_resolver(signed_revision)
    old_size = int(xrefs.get_xref_container_info(signed_revision).size)
    changed: set[tuple[int, int]] = set()
    for revision in range(signed_revision + 1, final + 1):
        changed |= {(r.idnum, r.generation) for r in xrefs.explicit_refs_in_revision(revision)}
    stream_refs = {(r.idnum, r.generation) for r in xrefs.xref_stream_refs}
    changed -= stream_refs

    root_ref = _ref_of(reader.trailer.raw_get("/Root"))
    old_root_ref = _ref_of(old.trailer_view.raw_get("/Root"))
    if root_ref != old_root_ref:
        raise Ambiguous("the document catalog was replaced after signing")
    info_ref = _maybe_ref(reader.trailer_view, "/Info")
    old_pages = _page_refs(old)
    new_pages = _page_refs(reader)
    if old_pages != new_pages:
        raise Ambiguous(
            f"the pages changed after signing ({len(old_pages)} signed, {len(new_pages)} now)"
        )
    form_ref = _maybe_ref(old.root, "/AcroForm")
    signed_values = {s.value_ref for s in later}
    filled: set[tuple[int, int]] = set()
    # Validation data: objects of the DSS as signed that are still the DSS's now (an object
    # that only now hangs in the DSS, a page's content stream say, is not validation data).
    validation_data = _dss_refs(old) & _dss_refs(reader)

    for ref in sorted(changed):
        number = ref[0]
        if number >= old_size:
            continue  # a new object: judged through whatever refers to it
        if not _existed(old, ref):
            # A number the signed revision had free: a reference to it in a signed object
            # meant null then and means this object now. Writers number new objects from
            # /Size up, so a genuine update never does this.
            raise Ambiguous(f"object {number}, free when signed, was defined after signing")
        if ref in validation_data:
            continue
        before = _norm_decoded(_fetch(old, ref))
        new_obj = _fetch(reader, ref)
        after = _norm_decoded(new_obj)
        if before == after:
            continue
        keys = _changed_keys(before, after)
        if ref == root_ref:
            allowed = _CATALOG_MAY_CHANGE_WHEN_SIGNED if later else _CATALOG_MAY_CHANGE
            _only(keys, allowed, "the document catalog")
        elif ref == info_ref:
            _only(keys, _INFO_MAY_CHANGE, "the document information")
        elif ref == form_ref:
            _only(keys, _FORM_MAY_CHANGE, "the form (/AcroForm)")
            _kept(before, after, "/Fields", "the form's fields")
        elif ref in new_pages:
            page = new_pages.index(ref) + 1
            _only(keys, {"/Annots"}, f"page {page}")
            _kept(before, after, "/Annots", f"page {page}'s annotations")
        elif _is_signature_widget(new_obj) and _value_ref(new_obj) in signed_values:
            _only(keys, _WIDGET_MAY_CHANGE, "a signature field")
            filled.add(ref)
        elif ref == _maybe_ref(old.root, "/Metadata") and (
            later or xmp_refreshed_only(before, after)
        ):
            continue  # the XMP packet a later signature refreshed (and signs), or only
            # its modification date refreshed with validation data (as /Info's /ModDate)
        else:
            raise Ambiguous(f"{_describe(before, number)} was changed after signing")
    _check_annotations(reader, old, new_pages, signed_values, filled)


XMP_REFRESHED = frozenset(
    {
        "{http://ns.adobe.com/xap/1.0/}ModifyDate",
        "{http://ns.adobe.com/xap/1.0/}MetadataDate",
        "{http://ns.adobe.com/pdf/1.3/}Producer",
    }
)
"""XMP properties that a writer refreshes whenever it appends a revision (the XMP twins of
/Info's /ModDate and /Producer): pyHanko rewrites xmp:ModifyDate in every revision of a PDF 2.0
file, which an ECDSA signature makes (ISO/TS 32002)."""


def _xmp_without_refresh(packet: bytes) -> bytes | None:
    """`packet` in canonical form without the `XMP_REFRESHED` properties; None when it is not
    well-formed XMP (entities and DTDs refused)."""
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True
    )
    try:
        root = etree.fromstring(packet, parser=parser)
    except etree.XMLSyntaxError:
        return None
    if root.tag != "{adobe:ns:meta/}xmpmeta" or any(True for _ in root.iter(etree.Entity)):
        return None
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        for name in XMP_REFRESHED & set(element.attrib):
            del element.attrib[name]
        if element.tag in XMP_REFRESHED and element.getparent() is not None:
            element.getparent().remove(element)
    return bytes(etree.tostring(root, method="c14n"))


def xmp_refreshed_only(before: Any, after: Any) -> bool:
    """Whether two versions of the XMP metadata stream (as `_norm_decoded` gives them) differ
    in `XMP_REFRESHED` properties alone: the same stream dictionary, and the same packet once
    those are left out."""
    if before[0] != "stream" or after[0] != "stream" or before[1] != after[1]:
        return False
    old, new = _xmp_without_refresh(before[2]), _xmp_without_refresh(after[2])
    return old is not None and old == new


def _dss_refs(resolver: Any) -> set[tuple[int, int]]:
    """The indirect objects of the document security store (its dictionaries and arrays,
    and the /VRI entries), as `resolver` reads them."""
    root = resolver.root
    found: set[tuple[int, int]] = set()
    if "/DSS" not in root:
        return found
    stack: list[tuple[Any, int]] = [(root.raw_get("/DSS"), 0)]
    while stack:
        item, depth = stack.pop()
        if depth > 4:
            continue
        if isinstance(item, generic.IndirectObject):
            key = (item.idnum, item.generation)
            if key in found:
                continue
            found.add(key)
            item = _deref(item)
        if isinstance(item, generic.StreamObject):
            continue
        if isinstance(item, generic.DictionaryObject):
            stack.extend((item.raw_get(k), depth + 1) for k in item)
        elif isinstance(item, generic.ArrayObject):
            stack.extend((v, depth + 1) for v in list.__iter__(item))
    return found


def _check_annotations(
    reader: PdfFileReader,
    old: Any,
    pages: Sequence[tuple[int, int]],
    signed_values: set[tuple[int, int]],
    filled: set[tuple[int, int]],
) -> None:
    """Annotations compared directly, whatever a visibility heuristic says."""
    for index, ref in enumerate(pages, start=1):
        before = _annotation_refs(old, ref)
        for annot_ref, annot in _annotations(reader, ref, index):
            rect = annot.get("/Rect") if isinstance(annot, generic.DictionaryObject) else None
            if annot_ref in before and annot_ref not in filled:
                continue
            if not _four_numbers(rect):
                raise Ambiguous(
                    f"page {index}: an annotation added after signing has a /Rect that is not "
                    f"four numbers ({_short(rect)}); some viewers draw it anyway"
                )
            if annot_ref in filled:
                continue
            subtype = str(annot.get("/Subtype", "?"))
            if not (_is_signature_widget(annot) and _value_ref(annot) in signed_values):
                what = (
                    f"an unsigned signature field ('{_field_name(annot)}')"
                    if _is_signature_widget(annot)
                    else f"an annotation {subtype}"
                )
                raise Ambiguous(
                    f"page {index}: {what} was added after signing (it can cover or replace "
                    "signed content)"
                )


def _annotations(
    reader: Any, page_ref: tuple[int, int], index: int
) -> Iterator[tuple[tuple[int, int] | None, Any]]:
    page = reader.get_object(generic.Reference(*page_ref))
    raw = page.raw_get("/Annots") if "/Annots" in page else None
    annots = _deref(raw) if isinstance(raw, generic.IndirectObject) else raw
    if annots is None:
        return
    if not isinstance(annots, generic.ArrayObject):
        raise Ambiguous(f"page {index}: /Annots is not an array")
    for item in list.__iter__(annots):
        if isinstance(item, generic.IndirectObject):
            yield (item.idnum, item.generation), _deref(item)
        else:
            yield None, item


def _annotation_refs(resolver: Any, page_ref: tuple[int, int]) -> set[tuple[int, int] | None]:
    return {ref for ref, _ in _annotations(resolver, page_ref, 0)} - {None}


def _page_refs(resolver: Any) -> list[tuple[int, int]]:
    """The pages, in order (an indirect page tree walked without following loops)."""
    pages: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    stack = [resolver.root.raw_get("/Pages")]
    while stack:
        item = stack.pop()
        if not isinstance(item, generic.IndirectObject):
            raise Ambiguous("the page tree holds a direct object")
        ref = (item.idnum, item.generation)
        if ref in seen or len(seen) > 10_000:
            raise Ambiguous("the page tree has a loop")
        seen.add(ref)
        node = _deref(item)
        if "/Kids" in node:
            stack.extend(reversed(list(list.__iter__(node.raw_get("/Kids")))))
        else:
            pages.append(ref)
    return pages


def _fetch(resolver: Any, ref: tuple[int, int]) -> Any:
    """Object `ref` as `resolver` (the reader, or a revision of it) reads it."""
    return resolver.get_object(generic.Reference(*ref))


def _deref(item: Any) -> Any:
    """The object an indirect reference points to (pyHanko's `get_object` is untyped)."""
    return item.get_object()


def _existed(resolver: Any, ref: tuple[int, int]) -> bool:
    try:
        obj = resolver.get_object(generic.Reference(*ref))
    except _READ_ERRORS:
        return False
    return not isinstance(obj, generic.NullObject)


def _ref_of(value: Any) -> tuple[int, int] | None:
    if isinstance(value, generic.IndirectObject):
        return (value.idnum, value.generation)
    return None


def _maybe_ref(container: Any, key: str) -> tuple[int, int] | None:
    return _ref_of(container.raw_get(key)) if key in container else None


def _field_node(annot: Any, key: str) -> Any:
    """The first of `annot` and its parent fields (eight at most) that holds `key`, or None:
    a widget inherits its field's type (/FT) and value (/V) from the field above it."""
    node = annot
    for _ in range(8):
        if key in node:
            return node
        node = node.get("/Parent")
        if not isinstance(node, generic.DictionaryObject):
            return None
    return None


def _value_ref(annot: Any) -> tuple[int, int] | None:
    node = _field_node(annot, "/V")
    return None if node is None else _ref_of(node.raw_get("/V"))


def _is_signature_widget(annot: Any) -> bool:
    if not isinstance(annot, generic.DictionaryObject):
        return False
    if annot.get("/Subtype") != "/Widget":
        return False
    node = _field_node(annot, "/FT")
    return node is not None and bool(node.get("/FT") == "/Sig")


def signed_widget(annot: Any, signed: Iterable[tuple[int, int]]) -> bool:
    """Whether `annot` is the widget of a signature field whose value is one of `signed`."""
    return _is_signature_widget(annot) and _value_ref(annot) in set(signed)


def _field_name(annot: Any) -> str:
    return str(annot.get("/T", "?"))


def _four_numbers(rect: Any) -> bool:
    return (
        isinstance(rect, generic.ArrayObject)
        and len(rect) == 4
        and all(isinstance(v, int | Decimal | float) for v in list.__iter__(rect))
    )


def _short(value: Any) -> str:
    text = "null" if value is None or isinstance(value, generic.NullObject) else repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def metadata_ref(root: Any) -> tuple[int, int] | None:
    """The XMP metadata stream's reference in the catalog `root`, if it is indirect."""
    return _maybe_ref(root, "/Metadata")


def norm_decoded(obj: Any) -> Any:
    """`obj` in the comparable form `check_changes` uses (streams by their decoded bytes)."""
    return _norm_decoded(obj)


def _norm_decoded(obj: Any) -> Any:
    """Like `_norm_pyhanko`, but a stream compares by its decoded bytes and its dictionary
    without the encoding keys (the same content, compressed differently, is the same)."""
    if isinstance(obj, generic.StreamObject):
        items = {
            str(k): _norm_pyhanko(obj.raw_get(k))
            for k in obj
            if k not in ("/Length", "/Filter", "/DecodeParms")
        }
        return ("stream", items, bytes(obj.data))
    return _norm_pyhanko(obj)


def _changed_keys(before: Any, after: Any) -> set[str]:
    if before[0] != after[0] or before[0] not in ("dict", "stream"):
        return {"(the whole object)"}
    if before[0] == "stream" and before[2] != after[2]:
        return {"(the stream data)"}
    old, new = before[1], after[1]
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def _only(keys: Iterable[str], allowed: Iterable[str], what: str) -> None:
    stray = sorted(set(keys) - set(allowed))
    if stray:
        raise Ambiguous(f"{what} was changed after signing ({', '.join(stray)})")


def _kept(before: Any, after: Any, key: str, what: str) -> None:
    """Every entry of array `key` as signed is still there, in its place."""
    old = _entries(before[1].get(key))
    new = _entries(after[1].get(key))
    if new[: len(old)] != old:
        raise Ambiguous(f"{what} were removed or reordered after signing")


def _entries(value: Any) -> list[Any]:
    if value is None:
        return []
    if value[0] == "array":
        return list(value[1])
    return [value]


def _describe(norm: Any, number: int) -> str:
    if norm[0] == "stream":
        subtype = norm[1].get("/Subtype")
        kind = f" ({subtype[1]})" if subtype and subtype[0] == "name" else ""
        return f"stream object {number}{kind}"
    if norm[0] == "dict":
        kind = norm[1].get("/Type") or norm[1].get("/Subtype")
        return f"object {number}" + (f" ({kind[1]})" if kind and kind[0] == "name" else "")
    return f"object {number}"
