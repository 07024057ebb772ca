"""Read certificates from CSV and XLSX tables: a certificate table plus its list tables.

A CSV set is a main file plus siblings such as ``NAME.results.csv``; a workbook has the sheets
``certificates``, ``results``, ``standards``, ``ranges``, ``checks`` and ``tests`` (a testing
report's rows, issue 22). The list tables are
joined by ``ref``, indexed in a temporary SQLite file so memory does not grow with the rows.
The files themselves are opened, decoded and bounded by `certissuer._tables`.

>>> for item in csv_records(Path("batch.csv"), {}, MAX_INPUT_BYTES):  # doctest: +SKIP
...     print(item.row)
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from certissuer._tables import (
    csv_column,
    csv_rows,
    open_workbook,
    sheet_rows,
    sheet_where,
    xlsx_column,
)
from certissuer.errors import InputError
from certissuer.intake.records import Record, Rejected
from certissuer.intake.validate import Place, Rows, judge

__all__ = ["LIST_TABLES", "NAME_LISTS", "csv_records", "sibling", "xlsx_records"]

_logger = logging.getLogger(__name__)

_MAIN_SHEET: Final = "certificates"
LIST_TABLES: Final = ("results", "standards", "ranges", "checks", "tests")
"""List fields of the models; in CSV and XLSX each lives in its own table joined by ``ref``."""


NAME_LISTS: Final = ("customer_supplied",)
"""Fields that are lists of names; in CSV and XLSX one cell holds them, separated by commas
(or semicolons or spaces): ``item.serial, place_of_calibration``."""

_NAME_SEPARATORS: Final = re.compile(r"[,;\s]+")


def sibling(path: Path, table: str) -> Path:
    """The CSV list table `table` beside the main file `path`: ``NAME.table.csv``."""
    return path.with_name(f"{path.stem}.{table}{path.suffix}")


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
        if top in LIST_TABLES:
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
        for name in NAME_LISTS:
            if isinstance(data.get(name), str):  # validated as the JSON list is, name by name
                data[name] = [n for n in _NAME_SEPARATORS.split(data[name]) if n]
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
        rows: dict[str, Rows] = {}
        for name, child in children.items():
            entries = child.entries(ref) if ref is not None else []
            rows[name] = Rows(child.where, tuple(n for n, _, _ in entries), child.columns)
            if entries:
                data[name] = [d for _, d, _ in entries]
                errors += [e for _, _, errs in entries for e in errs]
        place = Place(main.where, number, ref, columns, rows)
        yield judge(source, data, place, errors)
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
    if any(stem.endswith(f".{name}") for name in LIST_TABLES):
        return "this is a list table; give the main file, with one row per certificate"
    return "the first row must name the columns: ref, kind, then the fields"


# --- CSV -----------------------------------------------------------------------------------


def csv_records(
    path: Path, present: Mapping[str, Path], max_bytes: int
) -> Iterator[Record | Rejected]:
    """The certificates of the CSV set whose main file is `path`; `present` maps each list
    table to its file (the siblings that exist), each bounded by `max_bytes`."""
    with _ListIndex() as index:
        children = {}
        for name in LIST_TABLES:
            child = sibling(path, name)
            table = (
                _open_table(str(child), csv_rows(child, max_bytes), csv_column)
                if name in present
                else None
            )
            children[name] = _read_child(name, table, str(child), str(child), index)
        refs = _ref_rows(_open_table(str(path), csv_rows(path, max_bytes), csv_column))
        main = _open_table(str(path), csv_rows(path, max_bytes), csv_column)
        yield from _table_records(str(path), main, str(path), children, refs)


# --- XLSX ----------------------------------------------------------------------------------


def xlsx_records(path: Path, max_bytes: int) -> Iterator[Record | Rejected]:
    """The certificates of the workbook `path` (no larger than `max_bytes`, nor its unpacked
    content than `certissuer._tables.UNPACK_FACTOR` times that)."""
    with open_workbook(path, max_bytes) as workbook, _ListIndex() as index:
        yield from _workbook_records(path, workbook, index)


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
    for name in LIST_TABLES:
        title = titles.get(name)
        where = sheet_where(path, title or name)
        table = _xlsx_table(path, workbook[title]) if title else None
        children[name] = _read_child(name, table, where, str(path), index)
    main_title = titles[_MAIN_SHEET]
    refs = _ref_rows(_xlsx_table(path, workbook[main_title]))
    main = _xlsx_table(path, workbook[main_title])
    yield from _table_records(str(path), main, sheet_where(path, main_title), children, refs)


def _xlsx_table(path: Path, sheet: Any) -> _Table | None:
    where = sheet_where(path, sheet.title)
    return _open_table(where, sheet_rows(where, sheet), xlsx_column)
