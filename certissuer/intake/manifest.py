"""The manifest of paper certificates to digitise, and the scans it names.

A manifest (CSV or XLSX, the first sheet) has one row per paper certificate, with the columns
of `MANIFEST_COLUMNS`; ``scans`` names its scan files (PDF, JPEG, PNG or multi-page TIFF)
relative to the scans folder. Each row becomes a `ManifestRow` (a `PaperCopy` to issue) or a
`ManifestRejected` with every problem, naming the manifest, row and field. The file is opened
and bounded by `certissuer._tables`.

>>> for item in iter_manifest(Path("manifest.csv"), scans=Path("scans")):  # doctest: +SKIP
...     print(item)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from certissuer._tables import csv_rows, open_workbook, sheet_rows, sheet_where
from certissuer.errors import InputError
from certissuer.intake.records import Rejected
from certissuer.model import KIND_NAMES, PaperCopy, ScanRef

__all__ = [
    "MANIFEST_COLUMNS",
    "MAX_SCAN_BYTES",
    "ManifestRejected",
    "ManifestRow",
    "iter_manifest",
    "read_scans",
]

_logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "paper_number",
    "kind",
    "lab",
    "instrument",
    "model",
    "serial",
    "owner",
    "issue_date",
    "valid_until",
    "result",
    "scans",
)
"""Manifest columns; `scans` lists file names separated by ';' (relative to --scans)."""
_REQUIRED = ("paper_number", "kind", "instrument", "serial", "owner", "issue_date", "scans")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
MAX_SCAN_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """A manifest row that became a copy to issue."""

    copy: PaperCopy
    source: str
    row: int


@dataclass(frozen=True, slots=True)
class ManifestRejected(Rejected):
    """A manifest row that cannot become a copy, with every reason; `ref` is its paper
    certificate's number when one was given."""


def _sha256_and_pages(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        import pikepdf

        with pikepdf.open(path) as pdf:
            pages = len(pdf.pages)
    else:
        from PIL import Image

        with Image.open(path) as image:
            pages = getattr(image, "n_frames", 1)
            image.load()  # decode the first frame: a damaged file fails here
    if pages < 1:
        raise ValueError("it has no pages")
    return digest.hexdigest(), pages


def read_scans(names: Sequence[str], scans: Path, *, where: str, row: int) -> list[ScanRef]:
    """Hash and count the pages of each scan in `names` (relative to `scans`).

    Raises `InputError` naming the manifest, row and the file for a missing, unreadable,
    unsupported or oversized scan, or one outside the scans folder.
    """
    refs = []
    root = scans.resolve()
    for name in names:
        path = (scans / name).resolve()
        if root not in path.parents:
            raise InputError(
                where, f"scan '{name}' is outside the scans folder", row=row, field="scans"
            )
        if not path.is_file():
            raise InputError(where, f"scan '{name}' not found in {scans}", row=row, field="scans")
        if path.suffix.lower() not in _IMAGE_SUFFIXES | {".pdf"}:
            raise InputError(
                where, f"scan '{name}': expected PDF, JPEG, PNG or TIFF", row=row, field="scans"
            )
        if path.stat().st_size > MAX_SCAN_BYTES:
            raise InputError(
                where,
                f"scan '{name}' is larger than {MAX_SCAN_BYTES // 2**20} MB",
                row=row,
                field="scans",
            )
        try:
            sha, pages = _sha256_and_pages(path)
        except Exception as exc:  # Pillow and pikepdf raise many kinds
            raise InputError(
                where,
                f"scan '{name}' is unreadable ({type(exc).__name__}: {exc})",
                row=row,
                field="scans",
            ) from None
        refs.append(ScanRef(file_name=name, path=str(path), sha256=sha, pages=pages))
    return refs


def _rows(path: Path) -> Iterator[tuple[str, int, dict[str, str]]]:
    """``(where, row number, cells by column name)`` per non-blank data row, the header being
    row 1; `where` names the file, and for a workbook its first sheet, which is the one read."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        for number, cells in _named(csv_rows(path)):
            yield str(path), number, cells
    elif suffix == ".xlsx":
        with open_workbook(path) as workbook:
            sheet = workbook.worksheets[0]
            where = sheet_where(path, sheet.title)
            for number, cells in _named(sheet_rows(where, sheet, lambda c: _cell(c.value))):
                yield where, number, cells
    else:
        raise InputError(path, f"expected a .csv or .xlsx manifest, got '{suffix}'")


def _named(rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, dict[str, str]]]:
    header: list[str] = []
    for number, cells in rows:
        if number == 1:
            header = [name.strip() for name in cells]
            continue
        named = {h: cell for h, cell in zip(header, cells, strict=False) if h}
        if any(named.values()):
            yield number, named


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()[:10]
    return str(value).strip()


def iter_manifest(path: Path, *, scans: Path) -> Iterator[ManifestRow | ManifestRejected]:
    """Stream the manifest at `path`: one `ManifestRow` or `ManifestRejected` per row.

    Rows are checked for required fields, dates, duplicate paper numbers (the second and later
    rows with a number are rejected) and every scan file. Raises `InputError` for a manifest
    that cannot be read at all.
    """
    if not path.is_file():
        raise InputError(path, "the manifest was not found")
    source = str(path)
    seen: dict[str, int] = {}
    for where, row, cells in _rows(path):
        problems: list[InputError] = []
        missing = [c for c in _REQUIRED if not cells.get(c)]
        problems += [InputError(where, "missing (required)", row=row, field=c) for c in missing]
        number = cells.get("paper_number", "")
        if number and number in seen:
            problems.append(
                InputError(
                    where,
                    f"duplicate paper number '{number}' (first on row {seen[number]})",
                    row=row,
                    field="paper_number",
                )
            )
        elif number:
            seen[number] = row
        scan_refs: list[ScanRef] = []
        if cells.get("scans"):
            names = [n.strip() for n in cells["scans"].split(";") if n.strip()]
            try:
                scan_refs = read_scans(names, scans, where=where, row=row)
            except InputError as exc:
                problems.append(exc)
        data = {
            "ref": cells.get("ref") or f"paper:{number}",
            "paper_number": number,
            "paper_kind": cells.get("kind"),
            "lab": cells.get("lab", ""),
            "instrument": cells.get("instrument"),
            "model": cells.get("model", ""),
            "serial": cells.get("serial"),
            "owner": cells.get("owner"),
            "paper_issue_date": cells.get("issue_date"),
            "valid_until": cells.get("valid_until") or None,
            "result": cells.get("result", ""),
            "scans": scan_refs,
        }
        # Every problem of the row at once: the model's too, except on fields already named.
        try:
            copy = PaperCopy.model_validate(data)
        except ValidationError as exc:
            named = {p.field for p in problems}
            problems += [
                InputError(where, _say(e), row=row, field=_field(e["loc"]))
                for e in exc.errors()
                if _field(e["loc"]) not in named
            ]
        if problems:
            yield ManifestRejected(source, row, number or None, tuple(problems))
        else:
            yield ManifestRow(copy, source, row)


_FIELD_NAMES = {"paper_kind": "kind", "paper_issue_date": "issue_date"}


def _field(loc: tuple[Any, ...]) -> str:
    name = str(loc[0]) if loc else ""
    return _FIELD_NAMES.get(name, name)


def _say(error: Any) -> str:
    got = error.get("input")
    kind = error.get("type", "")
    if kind == "literal_error":
        return f"expected {' or '.join(repr(k) for k in KIND_NAMES)}, got '{got}'"
    if "date" in kind or "expected a date" in str(error.get("msg", "")):
        return f"expected a date YYYY-MM-DD, got '{got}'"
    return f"{error.get('msg', 'invalid')}, got '{got}'"
