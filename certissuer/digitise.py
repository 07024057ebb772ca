"""Electronic copies of paper certificates: the manifest, the scans, and the copy's PDF.

A manifest row describes one paper certificate and names its scan files (PDF, JPEG, PNG or
multi-page TIFF). Its electronic copy is a first page stating "BẢN SAO ĐIỆN TỬ / ELECTRONIC
COPY" of paper certificate No. …, with the metadata, the SHA-256 of every original scan file and
the QR code, followed by the scanned pages at their original resolution (images are embedded
without re-encoding by img2pdf; PDF pages are copied). The copy gets its own number in its own
series; the paper number stays searchable in the ledger.

>>> for item in iter_manifest(Path("manifest.csv"), scans=Path("scans")):  # doctest: +SKIP
...     print(item)
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from certissuer.errors import InputError
from certissuer.model import Date

__all__ = [
    "MANIFEST_COLUMNS",
    "PaperCopy",
    "ScanRef",
    "append_scans",
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
Text = Annotated[str, Field(min_length=1, max_length=500)]


class ScanRef(BaseModel):
    """One original scan file: where it is, its SHA-256 as received, and its page count."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    file_name: Text
    path: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    pages: int = Field(ge=1)


class PaperCopy(BaseModel):
    """The data of an electronic copy (what the ledger stores and the first page prints)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    kind: Literal["copy"] = "copy"
    ref: Annotated[str, Field(min_length=1, max_length=100)]
    """Idempotency key: ``paper:<paper number>`` unless the manifest gives one."""
    paper_number: Text
    paper_kind: Literal["verification", "calibration"]
    lab: str = ""
    instrument: Text
    model: str = ""
    serial: Text
    owner: Text
    paper_issue_date: Date
    valid_until: Date | None = None
    result: str = ""
    scans: list[ScanRef] = Field(min_length=1)
    replaces: None = None
    """Copies are never amended in place (kept for the pipeline's common interface)."""


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """A manifest row that became a copy to issue."""

    copy: PaperCopy
    source: str
    row: int


@dataclass(frozen=True, slots=True)
class ManifestRejected:
    """A manifest row that cannot become a copy, with every reason."""

    source: str
    row: int
    ref: str | None
    errors: tuple[InputError, ...]


def _sha256_and_pages(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from pypdf import PdfReader

        pages = len(PdfReader(str(path)).pages)
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
        except Exception as exc:  # Pillow and pypdf raise many kinds
            raise InputError(
                where,
                f"scan '{name}' is unreadable ({type(exc).__name__}: {exc})",
                row=row,
                field="scans",
            ) from None
        refs.append(ScanRef(file_name=name, path=str(path), sha256=sha, pages=pages))
    return refs


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                if any((v or "").strip() for v in row.values()):
                    yield (
                        reader.line_num,
                        {k.strip(): (v or "").strip() for k, v in row.items() if k},
                    )
    elif suffix == ".xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            ws = wb.worksheets[0]
            rows = ws.iter_rows(values_only=True)
            header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
            for n, values in enumerate(rows, start=2):
                cells = {h: _cell(v) for h, v in zip(header, values, strict=False) if h}
                if any(cells.values()):
                    yield n, cells
        finally:
            wb.close()
    else:
        raise InputError(path, f"expected a .csv or .xlsx manifest, got '{suffix}'")


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
    where = str(path)
    seen: dict[str, int] = {}
    for row, cells in _rows(path):
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
        if cells.get("scans") and not problems:
            names = [n.strip() for n in cells["scans"].split(";") if n.strip()]
            try:
                scan_refs = read_scans(names, scans, where=where, row=row)
            except InputError as exc:
                problems.append(exc)
        if problems:
            yield ManifestRejected(where, row, number or None, tuple(problems))
            continue
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
        try:
            yield ManifestRow(PaperCopy.model_validate(data), where, row)
        except ValidationError as exc:
            errors = tuple(
                InputError(where, _say(e), row=row, field=_field(e["loc"])) for e in exc.errors()
            )
            yield ManifestRejected(where, row, number, errors)


_FIELD_NAMES = {"paper_kind": "kind", "paper_issue_date": "issue_date"}


def _field(loc: tuple[Any, ...]) -> str:
    name = str(loc[0]) if loc else ""
    return _FIELD_NAMES.get(name, name)


def _say(error: Any) -> str:
    got = error.get("input")
    kind = error.get("type", "")
    if kind == "literal_error":
        return f"expected 'verification' or 'calibration', got '{got}'"
    if "date" in kind or "expected a date" in str(error.get("msg", "")):
        return f"expected a date YYYY-MM-DD, got '{got}'"
    return f"{error.get('msg', 'invalid')}, got '{got}'"


def append_scans(first_page: bytes, copy: PaperCopy) -> bytes:
    """The copy's PDF: `first_page`, then every page of every scan at its own resolution.

    Each scan file is hashed again and must still have the SHA-256 recorded in `copy` (a scan
    changed between reading the manifest and issuing is refused).
    """
    import img2pdf
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(first_page)))
    for scan in copy.scans:
        path = Path(scan.path)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != scan.sha256:
            raise InputError(path, "the scan changed after it was read: its SHA-256 differs")
        if path.suffix.lower() == ".pdf":
            writer.append(PdfReader(io.BytesIO(data)))
        else:
            # img2pdf embeds JPEG as is and PNG/TIFF losslessly, one page per frame, at the
            # image's own size and resolution.
            writer.append(PdfReader(io.BytesIO(img2pdf.convert(data))))
        del data
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
