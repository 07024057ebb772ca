"""Read certificates from a JSON, CSV or XLSX results file, with errors a technician can act on.

This is the only module that opens input files. The format follows the suffix: ``.json`` (one
certificate object or a list of them, read one record at a time), ``.csv`` (a main file plus
sibling list tables such as ``NAME.results.csv``) or ``.xlsx`` (sheets ``certificates``,
``results``, ``standards``, ``ranges``, ``checks``); ``.xml`` is a PTB DCC 3.1.2 document
(`certissuer.dcc` maps it back to the model, naming the line of each problem). The list tables
are indexed by ``ref`` in a temporary SQLite file: memory does not grow with the number of
rows. ``docs/INPUT-FORMATS.md`` describes the formats. Every problem becomes an `InputError`
that names the file (and sheet), the row as the user sees it, and the field:

    batch.results.csv, row 5, field 'uncertainty': expected a number, got '0,05'
    hint: use a dot as the decimal separator

>>> from pathlib import Path
>>> from certissuer import intake
>>> records = intake.read_certificates(Path("samples/batch.csv"))  # doctest: +SKIP
>>> [(r.row, r.cert.ref) for r in records]  # doctest: +SKIP
[(2, 'KD-REQ-2026-1102'), (3, 'HC-REQ-2026-0417'), (4, 'HC-REQ-2026-0512')]

`read_certificates` returns every certificate or raises `InputErrors` listing every problem;
`iter_records` yields a `Record` or a `Rejected` per certificate, for batch runs that carry on
past bad rows.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import functools
import json
import logging
import math
import re
import sqlite3
import stat
import types
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Annotated, Any, Final, Union, get_args, get_origin

import openpyxl
from openpyxl.utils import get_column_letter
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from certissuer import dcc
from certissuer.errors import InputError, InputErrors
from certissuer.model import (
    CalibrationCertificate,
    Kind,
    VerificationCertificate,
    certificate_json_schema,
    parse_certificate,
)

__all__ = [
    "MAX_INPUT_BYTES",
    "Record",
    "Rejected",
    "certificate_schema_json",
    "iter_records",
    "read_certificates",
]

_logger = logging.getLogger(__name__)

MAX_INPUT_BYTES: Final = 25 * 1024 * 1024
"""Largest input file read (each file of a CSV set counts on its own)."""

_Cert = VerificationCertificate | CalibrationCertificate
_Loc = tuple[str | int, ...]

_SUFFIXES: Final = (".json", ".csv", ".xlsx", ".xml")
_MAIN_SHEET: Final = "certificates"
_LIST_TABLES: Final = ("results", "standards", "ranges", "checks")
"""List fields of the models; in CSV and XLSX each lives in its own table joined by ``ref``."""
_UNPACK_FACTOR: Final = 20
"""An .xlsx is a zip archive: refuse one that unpacks to more than this many times the limit."""
_CLASSES: Final[Mapping[str, type[_Cert]]] = {
    Kind.VERIFICATION.value: VerificationCertificate,
    Kind.CALIBRATION.value: CalibrationCertificate,
}
_KIND_NAMES: Final[Mapping[type[BaseModel], str]] = {cls: k for k, cls in _CLASSES.items()}
_KIND_HINT: Final = "'verification' is kiểm định, 'calibration' is hiệu chuẩn (in lower case)"
_CSV_UTF8_HINT: Final = "save the file as UTF-8 (in Excel: Save As, 'CSV UTF-8 (Comma delimited)')"


@dataclass(frozen=True, slots=True)
class Record:
    """One certificate read and validated."""

    cert: VerificationCertificate | CalibrationCertificate
    source: str
    """The input file path as given, for messages."""
    row: int
    """Row of the certificate as the user sees it: spreadsheets count the header, so the first
    data row is 2; JSON records count from 1."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """One certificate (or stray list-table row) that cannot be used, with all its problems."""

    source: str
    """The input file path as given (for a stray CSV list-table row: that table's path)."""
    row: int
    """Row as in `Record.row`; for a stray list-table row, its row in that table."""
    ref: str | None
    """The certificate's ``ref`` when one was given."""
    errors: tuple[InputError, ...]
    """Every problem found, each naming its file, row and field."""


def iter_records(path: Path, *, max_bytes: int = MAX_INPUT_BYTES) -> Iterator[Record | Rejected]:
    """Yield one `Record` or `Rejected` per certificate of `path`, in input order.

    `path` is a ``.json``, ``.csv`` or ``.xlsx`` file (chosen by suffix; for CSV the sibling
    list tables ``NAME.results.csv`` etc. are read too). `max_bytes` caps the size of each file,
    checked before anything is read. A bad certificate is yielded as `Rejected` and reading goes
    on; list-table rows whose ``ref`` matches no certificate are yielded as `Rejected` at the end.

    Raises `InputError` for problems with the file as a whole: an unknown suffix, a missing,
    empty or too large file, at once when called; broken UTF-8, broken JSON, a missing sheet or
    ``ref``/``kind`` column, or no certificates at all, while iterating.
    """
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(
            path,
            f"cannot read '{path.suffix or '(no suffix)'}' files: "
            f"expected one of {', '.join(_SUFFIXES)}",
            hint=(
                "open it in Excel and save it as .xlsx"
                if suffix in (".xls", ".ods", ".numbers")
                else "save the results as .json, .csv (UTF-8) or .xlsx"
            ),
        )
    _check_file(path, max_bytes, empty_ok=False)
    _logger.debug("reading %s as %s", path, suffix)
    if suffix == ".json":
        return _json_records(path, max_bytes)
    if suffix == ".xml":
        return _xml_records(path, max_bytes)
    if suffix == ".csv":
        present: dict[str, Path] = {}
        for name in _LIST_TABLES:
            sibling = _sibling(path, name)
            if sibling.exists():
                _check_file(sibling, max_bytes, empty_ok=True)
                present[name] = sibling
        return _csv_records(path, present, max_bytes)
    _check_unpacked_size(path, max_bytes)
    return _xlsx_records(path)


def read_certificates(path: Path, *, max_bytes: int = MAX_INPUT_BYTES) -> list[Record]:
    """Read every certificate of `path`, or report every problem at once.

    `path` and `max_bytes` are as for `iter_records`. Returns the records in input order.
    Raises `InputErrors` carrying every problem found (a problem with the file as a whole comes
    last, after the problems of the certificates read before it), never only the first one.
    """
    records: list[Record] = []
    errors: list[InputError] = []
    try:
        for item in iter_records(path, max_bytes=max_bytes):
            if isinstance(item, Record):
                records.append(item)
            else:
                errors.extend(item.errors)
    except InputError as exc:
        errors.append(exc)
    if errors:
        raise InputErrors(errors)
    return records


def certificate_schema_json() -> str:
    """Return the JSON Schema of one certificate record (either kind) as indented JSON text."""
    return json.dumps(certificate_json_schema(), indent=2, ensure_ascii=False)


# --- whole files ---------------------------------------------------------------------------


def _check_file(path: Path, max_bytes: int, *, empty_ok: bool) -> None:
    """Refuse a missing, special, empty or too large file before reading a byte of it."""
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
        raise _too_large(path, info.st_size, max_bytes)


def _too_large(where: str | Path, size: int, max_bytes: int) -> InputError:
    return InputError(
        where,
        f"the file is {_size(size)}, more than the limit of {_size(max_bytes)}",
        hint="split the results into several smaller files",
    )


def _size(n: int) -> str:
    """`n` bytes in words, rounded up so a size just over a limit never prints as the limit."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{math.ceil(n * 10 / scale) / 10:g} {unit}"
    return f"{n} bytes"


def _sibling(path: Path, table: str) -> Path:
    return path.with_name(f"{path.stem}.{table}{path.suffix}")


def _utf8_error(where: str, line: int, offset: int, byte: int, hint: str) -> InputError:
    return InputError(
        where,
        f"the file is not UTF-8 text: byte 0x{byte:02X} at line {line} "
        f"(byte offset {offset}) cannot be decoded",
        hint=hint,
    )


# --- JSON ----------------------------------------------------------------------------------

_CHUNK: Final = 1 << 16
"""Bytes read at a time from a JSON file: a list of certificates is decoded one record at a time."""
_JSON_SPACE: Final = re.compile(r"[ \t\n\r]*")
"""What the json module skips between tokens."""
# NOTE: Decimal for every non-integer number (and NaN/Infinity), so no float ever reaches a
# measured value: 0.1 stays exactly 0.1.
_DECODER: Final = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)
_NUMBER_TAIL: Final = re.compile(r"[0-9+\-.eE]*")
"""Characters that may go on a number."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


class _JsonText:
    """The text of a JSON file, decoded from UTF-8 one chunk at a time.

    Only the part not yet parsed is held (a chunk, or the record being decoded), so a list of
    10,000 certificates takes no more memory than a list of 10. A record that does not decode
    may only be cut by the end of the chunk, so more is read and it is tried again: for a broken
    record that means the rest of the file (at most `max_bytes`) before the error is raised.
    Positions in messages are those of the whole file: the line and column ``json.loads`` names.
    """

    def __init__(self, f: IO[bytes], where: str, max_bytes: int) -> None:
        self.f, self.where, self.max_bytes = f, where, max_bytes
        self.text = ""
        """Decoded text from the first character not yet parsed."""
        self.pos = 0
        """Index in `text` of the next character to parse."""
        self.eof = False
        self._pending = b""  # the start of a UTF-8 sequence cut by the end of a chunk
        self._read = 0  # bytes read from the file
        self._newlines = 0  # b"\n" in the bytes decoded so far, for UTF-8 errors
        self._line = 1  # line of text[0] in the file
        self._column = 0  # characters before text[0] on its line

    def more(self) -> bool:
        """Read and decode one more chunk (at least as much as is held); False at the end."""
        if self.eof:
            return False
        head = self.text[: self.pos]
        if "\n" in head:
            self._line += head.count("\n")
            self._column = len(head) - head.rfind("\n") - 1
        else:
            self._column += len(head)
        self.text, self.pos = self.text[self.pos :], 0
        chunk = self.f.read(max(_CHUNK, len(self.text)))
        start = self._read - len(self._pending)  # file offset of data[0]
        self._read += len(chunk)
        if self._read > self.max_bytes:  # the file grew after the size check
            raise _too_large(self.where, self._read, self.max_bytes)
        data = self._pending + chunk
        if start == 0 and data.startswith(codecs.BOM_UTF8):
            data, start = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
        try:
            decoded, used = codecs.utf_8_decode(data, "strict", not chunk)
        except UnicodeDecodeError as exc:
            line = self._newlines + data.count(b"\n", 0, exc.start) + 1
            raise _utf8_error(
                self.where, line, start + exc.start, data[exc.start], "save the file as UTF-8"
            ) from exc
        self._newlines += data.count(b"\n", 0, used)
        self._pending = data[used:]
        self.text += decoded
        self.eof = not chunk
        return True

    def peek(self) -> str:
        """Skip whitespace; the next character, or '' at the end of the file."""
        while True:
            match = _JSON_SPACE.match(self.text, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def value(self) -> Any:
        """Decode the JSON value that starts at the current position."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self.more():  # perhaps only cut off by the end of the chunk
                    continue
                raise self.error(exc.msg, exc.pos) from exc
            except (ValueError, RecursionError) as exc:  # over-long integers, absurd nesting
                raise InputError(self.where, f"not valid JSON: {exc}") from exc
            # A number cut by the end of the chunk ("1." of "1.5") still decodes: make sure a
            # character that cannot be part of it follows.
            if _is_number(value) and self._to_the_end(_NUMBER_TAIL, end) and self.more():
                continue
            self.pos = end
            return value

    def _to_the_end(self, pattern: re.Pattern[str], pos: int) -> bool:
        """Whether `pattern` matches all of `text` from `pos`."""
        match = pattern.match(self.text, pos)
        return match is not None and match.end() == len(self.text)

    def error(self, message: str, pos: int) -> InputError:
        """The `InputError` for a syntax error at `pos` in `text`, located in the whole file."""
        line = self._line + self.text.count("\n", 0, pos)
        last = self.text.rfind("\n", 0, pos)
        column = pos - last if last >= 0 else self._column + pos + 1
        return InputError(
            self.where,
            f"not valid JSON: {message.lower()} at line {line}, column {column}",
            hint="look for a missing comma, quote or bracket at or just before that place",
        )


def _json_records(path: Path, max_bytes: int) -> Iterator[Record | Rejected]:
    """The certificates of a JSON file: one object, or a list read one record at a time."""
    where = str(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror}") from exc
    with f:
        text = _JsonText(f, where, max_bytes)
        try:
            yield from _json_items(text, where)
        except OSError as exc:
            raise InputError(path, f"cannot be read: {exc.strerror}") from exc


def _json_items(text: _JsonText, where: str) -> Iterator[Record | Rejected]:
    first = text.peek()
    if not first:
        raise InputError(where, "the file is empty")
    if first != "[":  # one certificate object (or something else, refused below)
        doc = text.value()
        if text.peek():
            raise text.error("Extra data", text.pos)
        if not isinstance(doc, dict):
            raise InputError(
                where, f"expected a certificate object or a list of them, got {_show(doc)}"
            )
        yield _json_record(where, 1, doc, {})
        return
    text.pos += 1
    if text.peek() == "]":
        text.pos += 1
        if text.peek():
            raise text.error("Extra data", text.pos)
        raise InputError(where, "no certificates: the list is empty")
    seen: dict[str, int] = {}  # ref -> record number: one short entry per certificate
    number = 0
    while True:
        item = text.value()
        number += 1
        yield _json_record(where, number, item, seen)
        del item
        after = text.peek()
        if after == "]":
            text.pos += 1
            break
        if after != ",":
            raise text.error("Expecting ',' delimiter", text.pos)
        text.pos += 1
        text.peek()
    if text.peek():
        raise text.error("Extra data", text.pos)


def _json_record(where: str, number: int, item: Any, seen: dict[str, int]) -> Record | Rejected:
    if not isinstance(item, dict):
        problem = f"expected a certificate object {{...}}, got {_show(item)}"
        return Rejected(where, number, None, (InputError(where, problem, row=number),))
    ref = item.get("ref")
    ref = (ref.strip() or None) if isinstance(ref, str) else None
    errors = _duplicate(where, number, ref, seen)
    return _judge(where, item, _Place(where, number, ref), errors)


def _duplicate(where: str, row: int, ref: str | None, seen: dict[str, int]) -> list[InputError]:
    """Remember `ref` at `row`, or return the error for a second use of it."""
    if ref is None:
        return []
    if ref in seen:
        return [
            InputError(
                where,
                f"duplicate ref '{ref}': row {seen[ref]} has it already",
                row=row,
                field="ref",
                hint="give each certificate its own ref",
            )
        ]
    seen[ref] = row
    return []


# --- XML (a PTB DCC document) --------------------------------------------------------------


def _xml_records(path: Path, max_bytes: int) -> Iterator[Record | Rejected]:
    """The one certificate of a DCC 3.1.2 document; problems name the line and the field."""
    where = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror}") from exc
    if len(raw) > max_bytes:  # the file grew after the size check
        raise _too_large(where, len(raw), max_bytes)
    folder = dcc.find_schema_dir()
    schema = dcc.Schema.load(folder) if folder is not None else None
    doc = dcc.read_document(raw, where=where, schema=schema, max_bytes=max_bytes)
    if doc.data is None:  # not valid against the schema: nothing more to say
        yield Rejected(where, 1, None, tuple(doc.problems))
        return
    item = _judge(where, doc.data, _Place(where, 1, doc.ref), list(doc.problems))
    if isinstance(item, Rejected):
        seen = {e.field for e in doc.problems if e.field}
        errors = [doc.locate(e) for e in item.errors if e in doc.problems or e.field not in seen]
        item = Rejected(item.source, item.row, item.ref, tuple(errors))
    yield item


# --- tables (CSV and XLSX) -----------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    """A sheet or CSV file: its header and a stream of ``(row number, cell texts)``."""

    where: str
    """How messages name it: ``batch.results.csv`` or ``batch.xlsx [results]``."""
    header: list[str | None]
    """Column names; None where the header cell is empty."""
    rows: Iterator[tuple[int, list[str]]]
    column: Callable[[int], str]
    """Names a column by index for messages ("column 3", "column C")."""

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(name for name in self.header if name)


_Entry = tuple[int, dict[str, Any], list[InputError]]
"""One list-table row: its row number, its nested cells without ``ref``, its cell problems."""


class _ListIndex:
    """The rows of a file's list tables, indexed by ref on disk instead of held in memory.

    The list tables are read once, in one pass each, into a private temporary SQLite database
    (``sqlite3.connect("")``: a file that SQLite deletes on close, with a page cache of about
    2 MB before it spills to disk). Each certificate row then looks up its own rows, so
    memory stays flat however many rows the tables have.
    """

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> _ListIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def add(self, name: str, table: _Table) -> None:
        """Read every row of `table` (the list table `name`; it has a column 'ref')."""
        if self._db is None:
            self._db = sqlite3.connect("")
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            # rowid keeps the input order; NULL ref: a row without one
            self._db.execute(
                "CREATE TABLE entry (list TEXT NOT NULL, ref TEXT, row INTEGER NOT NULL,"
                " cells TEXT NOT NULL)"
            )
        index = table.header.index("ref")

        def rows() -> Iterator[tuple[str, str | None, int, str]]:
            for number, cells in table.rows:
                if any(cells):
                    ref = cells[index] if index < len(cells) and cells[index] else None
                    yield name, ref, number, json.dumps(cells, ensure_ascii=False)

        with self._db:
            self._db.executemany("INSERT INTO entry VALUES (?, ?, ?, ?)", rows())
        self._db.execute("CREATE INDEX IF NOT EXISTS entry_ref ON entry (list, ref)")

    def rows(self, name: str, ref: str | None) -> list[tuple[int, list[str]]]:
        """The ``(row number, cells)`` of the list table `name` with `ref` (None: no ref), in
        input order."""
        if self._db is None:
            return []
        found = self._db.execute(
            "SELECT row, cells FROM entry WHERE list = ? AND ref IS ? ORDER BY rowid", (name, ref)
        )
        return [(number, json.loads(cells)) for number, cells in found]

    def refs(self, name: str) -> Iterator[str]:
        """Each ref of the list table `name`, once, in the order of its first row."""
        if self._db is None:
            return
        found = self._db.execute(
            "SELECT ref FROM entry WHERE list = ? AND ref IS NOT NULL"
            " GROUP BY ref ORDER BY min(rowid)",
            (name,),
        )
        for (ref,) in found:
            yield ref


@dataclass(slots=True)
class _ChildTable:
    """A list table (results, standards, ranges, checks), its rows kept in a `_ListIndex`."""

    name: str
    where: str
    source: str
    table: _Table | None
    """Its header, to nest the cells of a row looked up; None when the file has no such table."""
    index: _ListIndex

    @property
    def columns(self) -> frozenset[str]:
        return self.table.columns if self.table is not None else frozenset()

    def entries(self, ref: str) -> list[_Entry]:
        """The rows with `ref`, in input order."""
        if self.table is None:
            return []
        found = []
        for number, cells in self.index.rows(self.name, ref):
            data, errors = _row_data(self.table, number, cells)
            data.pop("ref", None)
            found.append((number, data, errors))
        return found

    def refs(self) -> Iterator[str]:
        """Each ref used in the table, once, in the order of its first row."""
        return self.index.refs(self.name) if self.table is not None else iter(())

    def rows_without_ref(self) -> list[int]:
        """The rows that give no ref."""
        if self.table is None:
            return []
        return [number for number, _ in self.index.rows(self.name, None)]


def _open_table(
    where: str, rows: Iterator[tuple[int, list[str]]], column: Callable[[int], str]
) -> _Table | None:
    """Read the header row; None when the table holds no row at all."""
    for _, cells in rows:
        if not any(cells):
            raise InputError(
                where,
                "the first row must name the columns, but it is empty",
                row=1,
                hint="put the column names (ref, kind, ...) in the first row",
            )
        return _Table(where, _parse_header(where, cells, column), rows, column)
    return None


def _parse_header(
    where: str, cells: Sequence[str], column: Callable[[int], str]
) -> list[str | None]:
    header: list[str | None] = []
    first: dict[str, int] = {}
    for index, name in enumerate(cells):
        if not name:
            header.append(None)
            continue
        if not all(name.split(".")):
            raise InputError(
                where,
                f"'{name}' in {column(index)} is not a column name",
                row=1,
                hint="nested fields are written with single dots, like 'item.serial'",
            )
        if name in first:
            raise InputError(
                where,
                f"column '{name}' appears twice ({column(first[name])} and {column(index)})",
                row=1,
            )
        first[name] = index
        header.append(name)
    for name in first:
        parts = name.split(".")
        for end in range(1, len(parts)):
            prefix = ".".join(parts[:end])
            if prefix in first:
                raise InputError(
                    where,
                    f"columns '{prefix}' and '{name}' clash: '{prefix}' is a group of fields",
                    row=1,
                    hint=f"remove the column '{prefix}'",
                )
    return header


def _row_data(
    table: _Table, number: int, cells: Sequence[str]
) -> tuple[dict[str, Any], list[InputError]]:
    """Nest the non-empty cells of one row by their dotted column names."""
    data: dict[str, Any] = {}
    errors: list[InputError] = []
    for index, value in enumerate(cells):
        if not value:
            continue  # an empty cell means "not given": the model default applies
        name = table.header[index] if index < len(table.header) else None
        if name is None:
            errors.append(
                InputError(
                    table.where,
                    f"a value in {table.column(index)}, which has no name in the first row",
                    row=number,
                    hint="name the column in the first row, or delete the value",
                )
            )
            continue
        *groups, last = name.split(".")
        node = data
        for group in groups:
            node = node.setdefault(group, {})
        node[last] = value
    return data, errors


def _read_child(
    name: str, table: _Table | None, where: str, source: str, index: _ListIndex
) -> _ChildTable:
    """Index the rows of the list table `name` (None: the file has none) by ref in `index`."""
    if table is None:
        return _ChildTable(name, where, source, None, index)
    if "ref" not in table.columns:
        raise InputError(
            table.where,
            "no column 'ref'",
            row=1,
            hint="each row needs the ref of the certificate it belongs to, in a column 'ref'",
        )
    index.add(name, table)
    return _ChildTable(name, table.where, source, table, index)


def _table_records(
    source: str,
    main: _Table | None,
    main_where: str,
    children: Mapping[str, _ChildTable],
    ref_rows: Mapping[str, Sequence[int]],
) -> Iterator[Record | Rejected]:
    """Join the list tables to the certificate rows and validate each certificate.

    `ref_rows` gives the rows of each ref (from `_ref_rows`, a first pass over the same table),
    so that every row of a duplicated ref is refused, the first one too: which list-table rows
    belong to which of them cannot be told.
    """
    if main is None:
        raise InputError(main_where, "the file is empty")
    columns = main.columns
    for required in ("ref", "kind"):
        if required not in columns:
            raise InputError(main.where, f"no column '{required}'", row=1, hint=_header_hint(main))
    for name in sorted(columns):
        top = name.split(".")[0]
        if top in _LIST_TABLES:
            raise InputError(
                main.where,
                f"column '{name}': {top} go in {children[top].where}, one row each",
                row=1,
                hint="move them there, with a column 'ref' naming the certificate",
            )
    count = 0
    for number, cells in main.rows:
        if not any(cells):
            continue  # blank rows, often left at the end by spreadsheet programs
        count += 1
        data, errors = _row_data(main, number, cells)
        ref = data.get("ref")
        ref = ref if isinstance(ref, str) else None
        same = [n for n in ref_rows.get(ref, ()) if n != number] if ref is not None else []
        if same:
            earlier = [n for n in same if n < number]
            errors.append(
                InputError(
                    main.where,
                    f"duplicate ref '{ref}': row {earlier[0]} has it already"
                    if earlier
                    else f"duplicate ref '{ref}': row {same[0]} has it too",
                    row=number,
                    field="ref",
                    hint="give each certificate its own ref, and its list-table rows the same ref",
                )
            )
        rows: dict[str, _Rows] = {}
        for name, child in children.items():
            entries = child.entries(ref) if ref is not None else []
            rows[name] = _Rows(child.where, tuple(n for n, _, _ in entries), child.columns)
            if entries:
                data[name] = [d for _, d, _ in entries]
                errors += [e for _, _, errs in entries for e in errs]
        place = _Place(main.where, number, ref, columns, rows)
        yield _judge(source, data, place, errors)
    _logger.debug("%s: %d certificate rows", main.where, count)
    if count == 0:
        raise InputError(main.where, "no certificates: no rows below the column names")
    for child in children.values():
        for ref in child.refs():
            if ref in ref_rows:
                continue
            near = difflib.get_close_matches(ref, list(ref_rows), n=1)
            numbers = [number for number, _ in child.index.rows(child.name, ref)]
            errors = [
                InputError(
                    child.where,
                    f"no certificate with ref '{ref}' in {main.where}",
                    row=number,
                    field="ref",
                    hint=f"did you mean '{near[0]}'?" if near else None,
                )
                for number in numbers
            ]
            yield Rejected(child.source, numbers[0], ref, tuple(errors))
        without = child.rows_without_ref()
        if without:
            errors = [
                InputError(child.where, "missing (required)", row=number, field="ref")
                for number in without
            ]
            yield Rejected(child.source, without[0], None, tuple(errors))


def _ref_rows(table: _Table | None) -> dict[str, list[int]]:
    """The rows of each ref in a certificate table: a first pass, to find duplicates up front."""
    refs: dict[str, list[int]] = {}
    if table is None or "ref" not in table.header:
        return refs  # the second pass reports it
    index = table.header.index("ref")
    for number, cells in table.rows:
        if index < len(cells) and cells[index]:
            refs.setdefault(cells[index], []).append(number)
    return refs


def _header_hint(table: _Table) -> str:
    names = [n for n in table.header if n]
    for sep, label in ((";", "semicolons"), ("\t", "tabs")):
        if len(names) == 1 and sep in names[0]:
            return f"the columns are separated by {label}; save the file as comma-separated CSV"
    stem = Path(table.where).stem
    if any(stem.endswith(f".{name}") for name in _LIST_TABLES):
        return "this is a list table; give the main file, with one row per certificate"
    return "the first row must name the columns: ref, kind, then the fields"


# --- CSV -----------------------------------------------------------------------------------


def _csv_records(
    path: Path, present: Mapping[str, Path], max_bytes: int
) -> Iterator[Record | Rejected]:
    with _ListIndex() as index:
        children = {}
        for name in _LIST_TABLES:
            sibling = _sibling(path, name)
            table = (
                _open_table(str(sibling), _csv_rows(sibling, max_bytes), _csv_column)
                if name in present
                else None
            )
            children[name] = _read_child(name, table, str(sibling), str(sibling), index)
        refs = _ref_rows(_open_table(str(path), _csv_rows(path, max_bytes), _csv_column))
        main = _open_table(str(path), _csv_rows(path, max_bytes), _csv_column)
        yield from _table_records(str(path), main, str(path), children, refs)


def _csv_column(index: int) -> str:
    return f"column {index + 1}"


def _csv_rows(path: Path, max_bytes: int) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(row number, stripped cells)`` per CSV record; a quoted newline stays in its row."""
    where = str(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror}") from exc
    with f:
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
            raise _utf8_error(where, number, offset + bad, line[bad], _CSV_UTF8_HINT) from exc
        offset += len(line)
        if offset > max_bytes:  # the file grew after the size check
            raise _too_large(where, offset, max_bytes)
        yield text


# --- XLSX ----------------------------------------------------------------------------------


def _check_unpacked_size(path: Path, max_bytes: int) -> None:
    """Refuse a file that is no zip archive, or one that unpacks to an absurd size."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            path,
            "not an Excel workbook (.xlsx): the file is not a zip archive",
            hint="open it in Excel and save it as 'Excel Workbook (.xlsx)'",
        ) from exc
    if unpacked > max_bytes * _UNPACK_FACTOR:
        raise InputError(
            path,
            f"the workbook unpacks to {_size(unpacked)}, more than the limit of "
            f"{_size(max_bytes * _UNPACK_FACTOR)}",
            hint="split the results into several smaller workbooks",
        )


def _xlsx_records(path: Path) -> Iterator[Record | Rejected]:
    try:
        with warnings.catch_warnings():
            # openpyxl warns about features it drops (data validation, default styles); they
            # do not change the values read.
            warnings.simplefilter("ignore", UserWarning)
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged files
        raise InputError(
            path,
            f"not a readable Excel workbook (.xlsx): {exc}",
            hint="open it in Excel and save it as 'Excel Workbook (.xlsx)'",
        ) from exc
    try:
        with _ListIndex() as index:
            yield from _workbook_records(path, workbook, index)
    finally:
        workbook.close()


def _workbook_records(path: Path, workbook: Any, index: _ListIndex) -> Iterator[Record | Rejected]:
    titles = {str(title).strip().lower(): str(title) for title in workbook.sheetnames}
    if _MAIN_SHEET not in titles:
        found = ", ".join(f"'{t}'" for t in workbook.sheetnames)
        raise InputError(
            path,
            f"no sheet named '{_MAIN_SHEET}' (the workbook has {found})",
            hint=f"name the sheet with one row per certificate '{_MAIN_SHEET}'",
        )
    children = {}
    for name in _LIST_TABLES:
        title = titles.get(name)
        where = f"{path} [{title or name}]"
        table = _xlsx_table(path, workbook[title]) if title else None
        children[name] = _read_child(name, table, where, str(path), index)
    main_title = titles[_MAIN_SHEET]
    refs = _ref_rows(_xlsx_table(path, workbook[main_title]))
    main = _xlsx_table(path, workbook[main_title])
    yield from _table_records(str(path), main, f"{path} [{main_title}]", children, refs)


def _xlsx_table(path: Path, sheet: Any) -> _Table | None:
    where = f"{path} [{sheet.title}]"
    return _open_table(where, _xlsx_rows(where, sheet), _xlsx_column)


def _xlsx_column(index: int) -> str:
    return f"column {get_column_letter(index + 1)}"


def _xlsx_rows(where: str, sheet: Any) -> Iterator[tuple[int, list[str]]]:
    # NOTE: the stored sheet dimension can be wrong (files written by other programs); without
    # reset_dimensions() read-only openpyxl would silently cut rows and columns to it.
    sheet.reset_dimensions()
    try:
        for number, row in enumerate(sheet.iter_rows(), start=1):
            yield number, [_cell_text(cell) for cell in row]
    except Exception as exc:  # damaged sheet XML surfaces here, while streaming
        raise InputError(where, f"the sheet cannot be read: {exc}") from exc


_FIXED_FORMAT = re.compile(r"[#,]*0(?:\.(0+))?")


def _cell_text(cell: Any) -> str:
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


# --- validation and messages ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rows:
    """Where the entries of one list field of a certificate came from."""

    where: str
    rows: tuple[int, ...]
    columns: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Place:
    """Where one certificate came from, to turn a pydantic error location into file/row/field."""

    where: str
    row: int
    ref: str | None
    columns: frozenset[str] | None = None
    """Columns of the certificate table; None for JSON."""
    lists: Mapping[str, _Rows] = field(default_factory=dict)


def _judge(
    source: str, data: dict[str, Any], place: _Place, errors: list[InputError]
) -> Record | Rejected:
    cert, problems = _validate(data, place)
    errors = errors + problems
    if cert is None or errors:
        return Rejected(source, place.row, place.ref, tuple(errors))
    return Record(cert, source, place.row)


def _validate(data: dict[str, Any], place: _Place) -> tuple[_Cert | None, list[InputError]]:
    kind = data.get("kind")
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    screened = _screen_dates(cls, data, ()) if cls is not None else {}
    try:
        cert: _Cert | None = parse_certificate(data)
        details: list[ErrorDetails] = []
    except ValidationError as exc:
        cert, details = None, exc.errors(include_url=False)
    errors: list[InputError] = []
    for detail in details:
        loc = _strip_tag(detail["loc"])
        if loc not in screened:  # a screened date is reported below, once
            errors += _convert(detail, loc, place, cls)
    for loc, value in screened.items():
        detail = ErrorDetails(type="date_parsing", loc=loc, msg="", input=value)
        errors += _convert(detail, loc, place, cls)
    if cert is not None:  # what the machine-readable certificate (DCC) cannot hold, e.g. a unit
        for loc, problem in dcc.problems(cert):
            detail = ErrorDetails(
                type="value_error", loc=loc, msg=problem, input=None, ctx={"error": problem}
            )
            errors += _convert(detail, loc, place, cls)
    return (None if errors else cert), errors


def _strip_tag(loc: tuple[str | int, ...]) -> _Loc:
    """Drop the union tag ('calibration', ...) that pydantic puts first."""
    return loc[1:] if loc and loc[0] in _CLASSES else loc


_BARE_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?")


def _screen_dates(model: type[BaseModel], data: dict[str, Any], loc: _Loc) -> dict[_Loc, Any]:
    """Find dates given as bare numbers and blank them; return where they were.

    pydantic reads a number as a Unix time, so "0" would become 1970-01-01 and an Excel serial
    day number a wrong date. A certificate date must be written out.
    """
    found: dict[_Loc, Any] = {}
    dates, models = _shapes(model)
    for name, value in data.items():
        here = (*loc, name)
        if name in dates:
            bare = isinstance(value, str) and _BARE_NUMBER.fullmatch(value.strip())
            if bare or (isinstance(value, int | float | Decimal) and not isinstance(value, bool)):
                found[here] = value
                data[name] = None
        elif name in models and isinstance(value, dict):
            found.update(_screen_dates(models[name], value, here))
        elif name in models and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    found.update(_screen_dates(models[name], item, (*here, index)))
    return found


@functools.cache
def _shapes(model: type[BaseModel]) -> tuple[frozenset[str], Mapping[str, type[BaseModel]]]:
    """The fields of `model` that hold a date, and those that hold a model (alone or in a list)."""
    dates = frozenset(
        name for name, info in model.model_fields.items() if date in _flatten(info.annotation)
    )
    models: dict[str, type[BaseModel]] = {}
    for name, info in model.model_fields.items():
        sub = _submodel(info.annotation)
        if sub is not None:
            models[name] = sub
    return dates, models


def _convert(
    detail: ErrorDetails, loc: _Loc, place: _Place, cls: type[_Cert] | None
) -> list[InputError]:
    """Turn one pydantic error into InputErrors naming the file, row and field."""
    kind = detail["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if kind == "union_tag_not_found":
            problem = "missing (required): 'verification' or 'calibration'"
        else:
            tag = (detail.get("ctx") or {}).get("tag")
            problem = f"expected 'verification' or 'calibration', got {_show(tag)}"
        return [InputError(place.where, problem, row=place.row, field="kind", hint=_KIND_HINT)]
    if place.columns is None:  # JSON: the field is the path inside the record
        problem, hint = _describe(detail, loc, cls)
        return [
            InputError(
                place.where, problem, row=place.row, field=_json_path(loc) or None, hint=hint
            )
        ]
    head = loc[0] if loc else None
    if isinstance(head, str) and head in place.lists:
        return _list_errors(detail, loc, place, place.lists[head], cls)
    name = ".".join(str(part) for part in loc)
    if kind == "missing":
        model = _model_at(cls, loc) if cls is not None and loc else None
        names = list(_required_leaves(model, f"{name}.")) if model is not None else [name]
        return [
            InputError(
                place.where,
                "missing (required)",
                row=place.row,
                field=leaf,
                hint=None if leaf in place.columns else f"add a column '{leaf}'",
            )
            for leaf in names
        ]
    problem, hint = _describe(detail, loc, cls)
    value = detail.get("input")
    if kind == "extra_forbidden" and isinstance(value, dict):  # a whole group of columns
        return [
            InputError(place.where, problem, row=place.row, field=leaf, hint=hint)
            for leaf in _leaf_names(value, f"{name}.")
        ]
    return [InputError(place.where, problem, row=place.row, field=name or None, hint=hint)]


def _leaf_names(value: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key, item in value.items():
        if isinstance(item, Mapping):
            yield from _leaf_names(item, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _list_errors(
    detail: ErrorDetails, loc: _Loc, place: _Place, rows: _Rows, cls: type[_Cert] | None
) -> list[InputError]:
    """Errors inside a list field: on the list-table row when there is one."""
    kind = detail["type"]
    table = str(loc[0])
    if len(loc) >= 2 and isinstance(loc[1], int) and loc[1] < len(rows.rows):
        name = ".".join(str(part) for part in loc[2:])
        problem, hint = _describe(detail, loc, cls)
        if kind == "missing" and name and name not in rows.columns:
            hint = f"add a column '{name}'"
        return [
            InputError(rows.where, problem, row=rows.rows[loc[1]], field=name or None, hint=hint)
        ]
    if kind in ("missing", "too_short"):
        problem = f"missing (required): {rows.where} has no rows with ref '{place.ref}'"
        return [InputError(place.where, problem, row=place.row, field=table)]
    if kind == "extra_forbidden" and cls is not None and rows.rows:
        other = _KIND_NAMES[_other(cls)]
        return [
            InputError(
                rows.where,
                f"certificate '{place.ref}' is a {_KIND_NAMES[cls]} certificate, "
                f"which has no {table}",
                row=rows.rows[0],
                field="ref",
                hint=f"{table} belong to {other} certificates; correct the ref or the kind",
            )
        ]
    problem, hint = _describe(detail, loc, cls)
    return [InputError(place.where, problem, row=place.row, field=table, hint=hint)]


def _json_path(loc: _Loc) -> str:
    """``('results', 2, 'uncertainty')`` as ``results[2].uncertainty`` (indices from 0)."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


_NUMBER_ERRORS: Final = frozenset(
    {"decimal_parsing", "decimal_type", "float_parsing", "float_type", "decimal_max_digits"}
)
_INT_ERRORS: Final = frozenset({"int_parsing", "int_type", "int_from_float", "int_parsing_size"})
_DATE_ERRORS: Final = frozenset(
    {
        "date_parsing",
        "date_type",
        "date_from_datetime_parsing",
        "date_from_datetime_inexact",
        "date_past",
        "date_future",
    }
)


def _describe(detail: ErrorDetails, loc: _Loc, cls: type[_Cert] | None) -> tuple[str, str | None]:
    """pydantic's message in the words of a lab: what was expected, what was found."""
    kind = detail["type"]
    value = detail.get("input")
    ctx = detail.get("ctx") or {}
    got = _show(value)
    if kind == "missing":
        return "missing (required)", None
    if kind in _NUMBER_ERRORS:
        return f"expected a number, got {got}", _number_hint(value)
    if kind in _INT_ERRORS:
        return f"expected a whole number, got {got}", None
    if kind == "finite_number":
        return f"expected a finite number, got {got}", None
    if kind == "greater_than":
        bound = ctx.get("gt")
        if bound == 0:
            return f"expected a positive number, got {got}", None
        return f"expected a number greater than {bound}, got {got}", None
    if kind == "greater_than_equal":
        bound = ctx.get("ge")
        if bound == 0:
            return f"expected zero or a positive number, got {got}", None
        return f"expected a number of at least {bound}, got {got}", None
    if kind == "less_than":
        return f"expected a number less than {ctx.get('lt')}, got {got}", None
    if kind == "less_than_equal":
        return f"expected a number of at most {ctx.get('le')}, got {got}", None
    if kind in _DATE_ERRORS:
        return (
            f"expected a date YYYY-MM-DD, got {got}",
            "write dates as year-month-day, for example 2026-11-24",
        )
    if kind == "string_too_short":
        return "expected some text, got an empty value", None
    if kind == "string_too_long":
        length = len(value) if isinstance(value, str) else "more"
        return f"expected at most {ctx.get('max_length')} characters, got {length}", None
    if kind == "string_type":
        return f"expected text, got {got}", "put the value in double quotes"
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        named = [f"'{c}'" for c in choices if c]
        text = ", ".join(named[:-1]) + f" or {named[-1]}" if len(named) > 1 else "".join(named)
        if "" in choices:
            text += " (or nothing)"
        return f"expected {text}, got {got}", None
    if kind == "value_error":
        return str(ctx.get("error", detail["msg"])), None
    if kind == "extra_forbidden":
        return _unknown_field(loc, cls)
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} entry, got none", None
    if kind == "list_type":
        return f"expected a list [...], got {got}", None
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected an object {{...}}, got {got}", None
    message = detail["msg"]
    return message[:1].lower() + message[1:], None


def _number_hint(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"[+-]?\d*,\d+", text):
        return "use a dot as the decimal separator"
    if "," in text:
        return "write numbers without thousands separators, with a dot as the decimal separator"
    if text.endswith("%"):
        return "give the plain number without % (in Excel: format the cell as Number)"
    if re.fullmatch(r"[+-]?\d+(?:\.\d+)?\s*\S.*", text):
        return "give only the number; the unit has its own field"
    return None


def _unknown_field(loc: _Loc, cls: type[_Cert] | None) -> tuple[str, str | None]:
    name = str(loc[-1]) if loc else ""
    if cls is None:
        return "unknown field", None
    kind = _KIND_NAMES[cls]
    other = _other(cls)
    other_parent = _model_at(other, loc[:-1])
    if other_parent is not None and name in other_parent.model_fields:
        return (
            f"not used on a {kind} certificate "
            f"(it is a field of {_KIND_NAMES[other]} certificates)",
            "leave it empty for this certificate, or correct the kind",
        )
    parent = _model_at(cls, loc[:-1])
    near = difflib.get_close_matches(name, list(parent.model_fields), n=1) if parent else []
    return (
        f"unknown field: a {kind} certificate has no field of this name",
        f"did you mean '{near[0]}'?" if near else None,
    )


def _show(value: Any) -> str:
    """A value as quoted in a message: ``'0,05'``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object {...}"
    if isinstance(value, list):
        return "a list [...]"
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'"


# --- model introspection -------------------------------------------------------------------


def _other(cls: type[_Cert]) -> type[_Cert]:
    return CalibrationCertificate if cls is VerificationCertificate else VerificationCertificate


def _flatten(annotation: Any) -> Iterator[Any]:
    """The plain types in an annotation: through ``Annotated``, unions and ``list``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _flatten(get_args(annotation)[0])
    elif origin in (Union, types.UnionType, list):
        for arg in get_args(annotation):
            yield from _flatten(arg)
    else:
        yield annotation


def _submodel(annotation: Any) -> type[BaseModel] | None:
    for candidate in _flatten(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _model_at(cls: type[BaseModel], loc: Iterable[str | int]) -> type[BaseModel] | None:
    """The model found at `loc` inside `cls`, or None when `loc` is not a model."""
    model = cls
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        sub = _submodel(info.annotation) if info is not None else None
        if sub is None:
            return None
        model = sub
    return model


def _required_leaves(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """The dotted names of the required plain fields of `model`, for 'missing' messages."""
    for name, info in model.model_fields.items():
        if not info.is_required():
            continue
        sub = _submodel(info.annotation)
        if sub is not None and get_origin(info.annotation) is not list:
            yield from _required_leaves(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"
