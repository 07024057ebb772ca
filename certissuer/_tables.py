"""CSV and XLSX in and out, in one place: limits, encodings and where an error happened.

Every table certissuer reads or writes for a person goes through here, so they all share:

* **limits**: a file larger than its limit is refused before a byte is read, a CSV that grows
  while being read is stopped, and an ``.xlsx`` (a zip archive) that unpacks to more than
  `UNPACK_FACTOR` times the limit is refused before openpyxl opens it (a zip bomb);
* **encodings**: CSV is read as UTF-8 with or without a byte order mark, and written as UTF-8
  with one, so Excel opens it with the Vietnamese letters intact;
* **places**: every error is an `InputError` naming the file, the sheet (``book.xlsx
  [results]``) and the row as the user sees it (the header is row 1).

>>> for number, cells in csv_rows(Path("batch.csv")):  # doctest: +SKIP
...     print(number, cells)
>>> with open_workbook(Path("batch.xlsx")) as book:  # doctest: +SKIP
...     rows = sheet_rows(sheet_where(Path("batch.xlsx"), "results"), book["results"])
>>> write_table(Path("out.csv"), ["number"], [["KĐ-2026-000001"]])  # doctest: +SKIP
1
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import math
import re
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Final

from certissuer._files import replacing
from certissuer.errors import InputError

__all__ = [
    "CSV_UTF8_HINT",
    "MAX_TABLE_BYTES",
    "UNPACK_FACTOR",
    "XLSX_HINT",
    "add_sheet",
    "cell_text",
    "check_file",
    "check_unpacked_size",
    "csv_bytes",
    "csv_column",
    "csv_rows",
    "inert_cell",
    "new_workbook",
    "open_input",
    "open_workbook",
    "plain_cell",
    "save_workbook",
    "sheet_rows",
    "sheet_where",
    "size_text",
    "table_rows",
    "too_large",
    "utf8_error",
    "write_csv",
    "write_table",
    "xlsx_column",
]

MAX_TABLE_BYTES: Final = 25 * 1024 * 1024
"""Largest table file read (each file of a CSV set counts on its own)."""
UNPACK_FACTOR: Final = 20
"""An .xlsx is a zip archive: refuse one that unpacks to more than this many times the limit."""
CSV_UTF8_HINT: Final = "save the file as UTF-8 (in Excel: Save As, 'CSV UTF-8 (Comma delimited)')"
XLSX_HINT: Final = "open it in Excel and save it as 'Excel Workbook (.xlsx)'"


# --- whole files ---------------------------------------------------------------------------


def check_file(path: Path, max_bytes: int = MAX_TABLE_BYTES, *, empty_ok: bool = False) -> None:
    """Refuse a missing, special, empty or too large file before reading a byte of it.

    `path` is the file, `max_bytes` its limit; `empty_ok` lets an empty file through. Raises
    `InputError` naming `path`.
    """
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise InputError(path, "no such file") from exc
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError(path, "not a regular file")
    if info.st_size == 0 and not empty_ok:
        raise InputError(path, "the file is empty")
    if info.st_size > max_bytes:
        raise too_large(path, info.st_size, max_bytes)


def too_large(where: str | Path, size: int, max_bytes: int) -> InputError:
    """The error for a file of `size` bytes over the limit `max_bytes`."""
    return InputError(
        where,
        f"the file is {size_text(size)}, more than the limit of {size_text(max_bytes)}",
        hint="split the results into several smaller files",
    )


def size_text(n: int) -> str:
    """`n` bytes in words, rounded up so a size just over a limit never prints as the limit."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{math.ceil(n * 10 / scale) / 10:g} {unit}"
    return f"{n} bytes"


def open_input(path: Path) -> IO[bytes]:
    """`path` opened for reading bytes; `InputError` naming it when it cannot be opened."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror}") from exc


def utf8_error(where: str, line: int, offset: int, byte: int, hint: str) -> InputError:
    """The error for a byte that is not UTF-8, at `line` and byte `offset` of `where`."""
    return InputError(
        where,
        f"the file is not UTF-8 text: byte 0x{byte:02X} at line {line} "
        f"(byte offset {offset}) cannot be decoded",
        hint=hint,
    )


# --- CSV -----------------------------------------------------------------------------------


def csv_column(index: int) -> str:
    """Name the column at `index` (from 0) for messages: "column 3"."""
    return f"column {index + 1}"


def csv_rows(path: Path, max_bytes: int = MAX_TABLE_BYTES) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(row number, stripped cells)`` per CSV record of `path`, the header as row 1.

    The file is read as UTF-8, a byte order mark skipped; a quoted newline stays in its row.
    Raises `InputError` when the file cannot be opened, is not UTF-8 (naming the line and byte),
    grows past `max_bytes` while being read, or is not CSV.
    """
    where = str(path)
    with open_input(path) as f:
        reader = csv.reader(_utf8_lines(f, where, max_bytes))
        try:
            for number, cells in enumerate(reader, start=1):
                yield number, [cell.strip() for cell in cells]
        except csv.Error as exc:
            raise InputError(
                where, f"not a readable CSV file at line {reader.line_num}: {exc}"
            ) from exc


def _utf8_lines(f: IO[bytes], where: str, max_bytes: int) -> Iterator[str]:
    """Decode line by line, so a decoding error can name its line and byte offset."""
    offset = 0
    for number, line in enumerate(f, start=1):
        start = len(codecs.BOM_UTF8) if number == 1 and line.startswith(codecs.BOM_UTF8) else 0
        try:
            text = line[start:].decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = start + exc.start
            raise utf8_error(where, number, offset + bad, line[bad], CSV_UTF8_HINT) from exc
        offset += len(line)
        if offset > max_bytes:  # the file grew after the size check
            raise too_large(where, offset, max_bytes)
        yield text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file as bytes: UTF-8 with a byte order mark (so Excel reads it as UTF-8), the
    `header` row, then `rows`; None is written as an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write `header` and `rows` to `path` as `csv_bytes` does, streaming, whole or not at all.

    Returns the number of rows written (the header not counted).
    """
    count = 0
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


# --- XLSX ----------------------------------------------------------------------------------


def sheet_where(path: Path | str, title: str) -> str:
    """How messages name a sheet: ``book.xlsx [results]``."""
    return f"{path} [{title}]"


def xlsx_column(index: int) -> str:
    """Name the column at `index` (from 0) for messages: "column C"."""
    from openpyxl.utils import get_column_letter

    return f"column {get_column_letter(index + 1)}"


def check_unpacked_size(path: Path, max_bytes: int = MAX_TABLE_BYTES) -> None:
    """Refuse a file that is no zip archive, or one that unpacks to more than `UNPACK_FACTOR`
    times `max_bytes` (a zip bomb), before openpyxl unpacks any of it. Raises `InputError`."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            path,
            "not an Excel workbook (.xlsx): the file is not a zip archive",
            hint=XLSX_HINT,
        ) from exc
    if unpacked > max_bytes * UNPACK_FACTOR:
        raise InputError(
            path,
            f"the workbook unpacks to {size_text(unpacked)}, more than the limit of "
            f"{size_text(max_bytes * UNPACK_FACTOR)}",
            hint="split the results into several smaller workbooks",
        )


@contextlib.contextmanager
def open_workbook(path: Path, max_bytes: int = MAX_TABLE_BYTES) -> Iterator[Any]:
    """Open the workbook at `path` read-only (values, not formulas), closed when the block ends.

    The file is checked first: no larger than `max_bytes`, a zip archive that unpacks to no
    more than `UNPACK_FACTOR` times that. Raises `InputError` for a file that fails the checks
    or that openpyxl cannot read.
    """
    check_file(path, max_bytes)
    check_unpacked_size(path, max_bytes)
    import openpyxl

    try:
        with warnings.catch_warnings():
            # openpyxl warns about features it drops (data validation, default styles); they
            # do not change the values read.
            warnings.simplefilter("ignore", UserWarning)
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged files
        raise InputError(
            path, f"not a readable Excel workbook (.xlsx): {exc}", hint=XLSX_HINT
        ) from exc
    try:
        yield workbook
    finally:
        workbook.close()


def sheet_rows(
    where: str, sheet: Any, text: Callable[[Any], str] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(row number, cell texts)`` per row of `sheet`, the header as row 1.

    `where` names the sheet in messages (see `sheet_where`); `text` turns a cell into text
    (default `cell_text`). Raises `InputError` naming `where` and the row when the sheet's XML
    is damaged.
    """
    convert = text or cell_text
    # NOTE: the stored sheet dimension can be wrong (files written by other programs); without
    # reset_dimensions() read-only openpyxl would silently cut rows and columns to it.
    sheet.reset_dimensions()
    number = 0
    try:
        for number, row in enumerate(sheet.iter_rows(), start=1):
            yield number, [convert(cell) for cell in row]
    except Exception as exc:  # damaged sheet XML surfaces here, while streaming
        raise InputError(where, f"the sheet cannot be read: {exc}", row=number + 1) from exc


_FIXED_FORMAT = re.compile(r"[#,]*0(?:\.(0+))?")


def cell_text(cell: Any) -> str:
    """The cell as text, the way the CSV reader sees it, so both formats validate alike.

    Numbers keep their exact decimal digits (``repr`` of the float, never binary noise), padded
    with the zeros a fixed-decimals number format shows ("0.10" under format ``0.00``); dates
    become ``YYYY-MM-DD``.
    """
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, int | float):
        number = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        return _as_displayed(number, str(cell.number_format or "General"))
    return str(value).strip()


def _as_displayed(number: Decimal, number_format: str) -> str:
    section = re.sub(r'"[^"]*"', "", number_format.split(";")[0])
    if "%" in section:
        # A percentage shows 100 times the stored value; give what the user sees, and let the
        # number check refuse the sign (the model takes humidity in % as a plain number).
        return f"{number.scaleb(2)}%"
    match = _FIXED_FORMAT.fullmatch(section)
    exponent = number.as_tuple().exponent
    if match and isinstance(exponent, int):
        places = len(match.group(1) or "")
        if -exponent < places:  # pad only; never round away digits that were typed
            with contextlib.suppress(InvalidOperation):  # too many digits to pad: keep as is
                number = number.quantize(Decimal(1).scaleb(-places))
    return str(number)


def new_workbook() -> Any:
    """A new write-only workbook (rows appended, streamed to disk by `save_workbook`)."""
    from openpyxl import Workbook

    return Workbook(write_only=True)


def save_workbook(workbook: Any, path: Path) -> None:
    """Save `workbook` to `path`, whole or not at all."""
    with replacing(path) as tmp:
        workbook.save(tmp)


def add_sheet(
    workbook: Any, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Append a sheet `title` to the write-only `workbook`: the `header` row, then `rows`.

    Returns the number of rows written (the header not counted).
    """
    sheet = workbook.create_sheet(title)
    sheet.append([_text_cell(sheet, v) for v in header])
    count = 0
    for row in rows:
        sheet.append([_text_cell(sheet, v) for v in row])
        count += 1
    return count


def no_formulas(book: Any) -> None:
    """Make every text of the (not write-only) workbook `book` that openpyxl took for a
    formula (it starts with ``=``) a text cell again: tables of what others typed never run
    in the reader's spreadsheet."""
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f" and isinstance(cell.value, str):
                    cell.data_type = "s"


def _text_cell(sheet: Any, value: Any) -> Any:
    """`value` for a write-only `sheet`: a text as a text cell, never a formula (openpyxl
    writes a text starting with ``=`` as a formula: a typed ``=HYPERLINK(...)`` would run in
    the reader's spreadsheet); other values as they are."""
    if isinstance(value, str) and value.startswith("="):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(sheet, value)
        cell.data_type = "s"
        return cell
    return value


# --- one table, either format --------------------------------------------------------------


def table_rows(
    path: Path, max_bytes: int = MAX_TABLE_BYTES
) -> Iterator[tuple[str, int, list[str]]]:
    """Yield ``(where, row number, cell texts)`` per row of a ``.csv`` file or of the first
    sheet of an ``.xlsx`` workbook, the header as row 1.

    `where` names the file, or the file and sheet (``people.xlsx [Sheet1]``), for messages.
    Both formats are checked and decoded as `csv_rows` and `open_workbook` do; raises
    `InputError` for another suffix or a file that fails the checks.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        check_file(path, max_bytes)
        for number, cells in csv_rows(path, max_bytes):
            yield str(path), number, cells
    elif suffix == ".xlsx":
        with open_workbook(path, max_bytes) as workbook:
            sheet = workbook.worksheets[0]
            where = sheet_where(path, sheet.title)
            for number, cells in sheet_rows(where, sheet):
                yield where, number, cells
    else:
        raise InputError(
            path, "expected a .csv or .xlsx file", hint="save the sheet as XLSX or CSV"
        )


def write_table(
    path: Path,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    sheet: str = "table",
    fmt: str | None = None,
) -> int:
    """Write `header` and `rows` to `path`, whole or not at all: as CSV the way `write_csv`
    does, or as an XLSX workbook with the one sheet `sheet`.

    `fmt` (``csv`` or ``xlsx``) picks the format; by default the suffix of `path` does.
    Returns the number of rows written; raises `InputError` for any other format.
    """
    fmt = fmt or path.suffix.lower().removeprefix(".")
    if fmt == "csv":
        return write_csv(path, header, rows)
    if fmt != "xlsx":
        raise InputError(path, "expected a .csv or .xlsx file to write")
    workbook = new_workbook()
    count = add_sheet(workbook, sheet, header, rows)
    save_workbook(workbook, path)
    return count


def plain_cell(value: Any) -> Any:
    """`value` as a table cell a person reads and `table_rows` reads back: None empty, a truth
    value ``yes`` or ``no``, a date ``YYYY-MM-DD``; anything else as it is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    return value


_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What a spreadsheet takes a text cell starting with as a formula (or the start of one)."""


def inert_cell(value: Any) -> Any:
    """`value` as `plain_cell` gives it, a text a spreadsheet would run as a formula
    (``=HYPERLINK(...)``, ``+``, ``-``, ``@``, a leading tab or line break) made inert by a
    leading apostrophe: for tables of data that others typed (CSV injection). Numbers,
    dates and other text are unchanged."""
    value = plain_cell(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
