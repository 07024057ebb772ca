"""Import and export of register files: the columns of each part, CSV and XLSX.

`KINDS` names what ``certissuer registry`` can list, add, import and export, with the columns
of each; a bad row gives an `InputError` naming the file, the row as the user sees it and the
field, and is left out.

>>> register.import_file("instrument", Path("instruments.xlsx")).imported  # doctest: +SKIP
500
>>> register.export_file("instrument", Path("instruments.csv"))  # doctest: +SKIP
500
"""

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, col, select

from certissuer._tables import plain_cell, table_rows, write_table
from certissuer.errors import InputError, LedgerError
from certissuer.registry.base import RegisterBase
from certissuer.registry.checks import parse_cmc
from certissuer.registry.tables import (
    Instrument,
    InstrumentType,
    Lab,
    Owner,
    Person,
    RegisteredStandard,
    Scope,
    StampStock,
    TestingScope,
)

__all__ = ["KINDS", "ImportReport", "RegisterIO", "read_table"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: rows imported, and one `InputError` per bad row (not imported)."""

    imported: int
    errors: list[InputError] = field(default_factory=list)


def _text(value: str) -> str:
    return value


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"expected a whole number, got '{value}'") from None


def _opt_int(value: str) -> int | None:
    return _int(value) if value else None


def _date(value: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"expected a date YYYY-MM-DD, got '{value}'")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date YYYY-MM-DD, got '{value}'") from None


def _opt_date(value: str) -> date | None:
    return _date(value) if value else None


def _decimal(value: str) -> str:
    try:
        Decimal(value)
    except InvalidOperation:
        raise ValueError(f"expected a number, got '{value}'") from None
    return value


def _bool(value: str) -> bool:
    low = value.casefold()
    if low in {"1", "true", "yes", "x", "có"}:
        return True
    if low in {"", "0", "false", "no", "không"}:
        return False
    raise ValueError(f"expected yes or no, got '{value}'")


def _kind(value: str) -> str:
    if value not in {"verification", "calibration"}:
        raise ValueError(f"expected verification or calibration, got '{value}'")
    return value


def _traceable(value: str) -> str:
    if value not in {"national", "si"}:
        raise ValueError(f"expected national, si or nothing, got '{value}'")
    return value


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    parse: Callable[[str], Any]
    required: bool = False


@dataclass(frozen=True, slots=True)
class _Kind:
    table: type[SQLModel]
    key: tuple[str, ...]
    """Columns that identify a row for `show` and for updates on import."""
    columns: tuple[_Column, ...]
    per_lab: bool = True


KINDS: dict[str, _Kind] = {
    "lab": _Kind(
        Lab,
        ("code",),
        (
            _Column("code", _text, True),
            _Column("name_vi", _text),
            _Column("name_en", _text),
            _Column("address_vi", _text),
            _Column("address_en", _text),
            _Column("designation", _text),
            _Column("accreditation", _text),
        ),
        per_lab=False,
    ),
    "scope": _Kind(
        Scope,
        ("kind", "instrument_type", "unit", "lower", "upper"),
        (
            _Column("kind", _kind, True),
            _Column("quantity", _text),
            _Column("instrument_type", _text),
            _Column("unit", _text, True),
            _Column("lower", _decimal, True),
            _Column("upper", _decimal, True),
            _Column("signatories", _text),
            _Column("cmc", _text),
        ),
    ),
    "testing-scope": _Kind(
        TestingScope,
        ("parameter", "method", "unit", "lower", "upper"),
        (
            _Column("parameter", _text, True),
            _Column("method", _text),
            _Column("lower", _decimal),
            _Column("upper", _decimal),
            _Column("unit", _text),
            _Column("accreditation", _text),
        ),
    ),
    "type": _Kind(
        InstrumentType,
        ("code",),
        (
            _Column("code", _text, True),
            _Column("name_vi", _text, True),
            _Column("name_en", _text),
            _Column("quantity", _text),
            _Column("cycle_months", _int, True),
            _Column("aliases", _text),
            _Column("source", _text),
        ),
        per_lab=False,
    ),
    "owner": _Kind(
        Owner,
        ("code",),
        (
            _Column("code", _text, True),
            _Column("name", _text, True),
            _Column("address", _text),
            _Column("kind", _text),
            _Column("email", _text),
        ),
        per_lab=False,
    ),
    "instrument": _Kind(
        Instrument,
        ("owner_code", "type_code", "serial"),
        (
            _Column("owner_code", _text, True),
            _Column("owner_name", _text),
            _Column("owner_address", _text),
            _Column("type_code", _text, True),
            _Column("name", _text),
            _Column("model", _text),
            _Column("serial", _text, True),
            _Column("manufacturer", _text),
            _Column("year", _opt_int),
            _Column("ranges", _text),
            _Column("accuracy_class", _text),
            _Column("place_of_use", _text),
            _Column("last_certificate", _text),
            _Column("verified_on", _opt_date),
            _Column("valid_until", _opt_date),
        ),
        per_lab=False,
    ),
    "standard": _Kind(
        RegisteredStandard,
        ("code",),
        (
            _Column("code", _text, True),
            _Column("name", _text, True),
            _Column("serial", _text),
            _Column("certificate_number", _text, True),
            _Column("calibration_due", _date, True),
            _Column("quantities", _text),
            _Column("ranges", _text),
            _Column("traceable_to", _traceable),
            _Column("calibrated_by", _text),
        ),
    ),
    "person": _Kind(
        Person,
        ("name",),
        (
            _Column("name", _text, True),
            _Column("title", _text),
            _Column("verifier_card", _text),
            _Column("card_types", _text),
            _Column("card_expiry", _opt_date),
            _Column("signatory", _bool),
        ),
    ),
    "stamp": _Kind(
        StampStock,
        ("series", "first"),
        (
            _Column("series", _text, True),
            _Column("first", _int, True),
            _Column("last", _int, True),
            _Column("received", _opt_date),
        ),
    ),
}
"""What ``certissuer registry`` can list, add, import and export, with the columns of each."""


class RegisterIO(RegisterBase):
    """Adding, finding, listing, importing and exporting the rows of the register."""

    def add(self, kind: str, values: Mapping[str, str]) -> Any:
        """Add (or update, by its key columns) one row of `kind` from text `values`.

        Raises `InputError` naming the field when a value cannot be used.
        """
        report = self.import_rows(kind, [dict(values)], source="registry add")
        if report.errors:
            raise report.errors[0]
        found = self.find(kind, [values.get(k, "") for k in KINDS[kind].key])
        assert found is not None
        return found

    def find(self, kind: str, key: Sequence[str]) -> Any:
        """The row of `kind` whose key columns (`KINDS[kind].key`) have the values `key`."""
        spec = _spec(kind)
        parsers = {c.name: c.parse for c in spec.columns}
        values: dict[str, Any] = {}
        for name, text in zip(spec.key, key, strict=False):
            try:
                values[name] = parsers[name](text.strip()) if text.strip() else ""
            except ValueError as exc:
                raise InputError("registry", str(exc), field=name) from None
        with self.session() as s:
            return self._find(s, kind, spec, values)

    def _find(self, s: Session, kind: str, spec: _Kind, values: Mapping[str, Any]) -> Any:
        table: Any = spec.table
        if kind == "instrument":
            owner = s.exec(select(Owner).where(Owner.code == values.get("owner_code"))).first()
            if owner is None:
                return None
            query = select(Instrument).where(
                Instrument.owner_id == owner.id,
                Instrument.type_code == values.get("type_code"),
                Instrument.serial == values.get("serial"),
            )
        else:
            query = select(table).where(*[getattr(table, k) == values.get(k, "") for k in spec.key])
            if spec.per_lab:
                query = query.where(table.lab_code == self.lab_code)
        return s.exec(query).first()

    def list(self, kind: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The rows of `kind` (this lab's, for per-lab kinds) as mappings of the import columns."""
        spec = _spec(kind)
        table: Any = spec.table
        with self.session() as s:
            if kind == "instrument":
                rows: list[dict[str, Any]] = []
                query = (
                    select(Instrument, Owner)
                    .join(Owner, col(Owner.id) == col(Instrument.owner_id))
                    .order_by(col(Owner.code), col(Instrument.type_code), col(Instrument.serial))
                )
                if limit is not None:
                    query = query.limit(limit)
                for ins, owner in s.exec(query).all():
                    data = ins.model_dump()
                    data.update(
                        owner_code=owner.code, owner_name=owner.name, owner_address=owner.address
                    )
                    rows.append({c.name: data.get(c.name) for c in spec.columns})
                return rows
            query2 = select(table)
            if spec.per_lab:
                query2 = query2.where(table.lab_code == self.lab_code)
            query2 = query2.order_by(*[getattr(table, k) for k in spec.key])
            if limit is not None:
                query2 = query2.limit(limit)
            return [
                {c.name: getattr(row, c.name) for c in spec.columns} for row in s.exec(query2).all()
            ]

    def import_file(self, kind: str, path: Path) -> ImportReport:
        """Import rows of `kind` from a CSV or XLSX file (header row = column names).

        Good rows are imported (a row whose key exists updates that row); each bad row gives an
        `InputError` naming the file, the row as the user sees it (the header is row 1) and the
        field, and is left out; a workbook's errors name its sheet. Raises `InputError` when
        the file cannot be read at all (too large, a zip bomb, not CSV or XLSX).
        """
        return self._import(kind, read_table(path))

    def import_rows(
        self,
        kind: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        source: str,
        first_row: int = 1,
    ) -> ImportReport:
        """Import `rows` (mappings of column name to text) of `kind`; see `import_file`.

        Errors name `source` and the row, counting from `first_row`.
        """
        return self._import(kind, ((source, n, raw) for n, raw in enumerate(rows, first_row)))

    def _import(
        self, kind: str, rows: Iterable[tuple[str, int, Mapping[str, Any]]]
    ) -> ImportReport:
        """Import `rows` given as ``(where, row number, mapping)``: each error names its place."""
        spec = _spec(kind)
        names = {c.name for c in spec.columns}
        errors: list[InputError] = []
        good: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        source = "registry import"
        for source, number, raw in rows:
            values = {k: ("" if v is None else str(v).strip()) for k, v in raw.items() if k}
            if not any(values.values()):
                continue
            unknown = sorted(set(values) - names)
            if unknown:
                errors.append(
                    InputError(
                        source,
                        f"unknown column '{unknown[0]}'",
                        row=number,
                        field=unknown[0],
                        hint=f"columns: {', '.join(sorted(names))}",
                    )
                )
                continue
            parsed, error = _parse_row(spec, values, source, number)
            if error is not None:
                errors.append(error)
                continue
            key = tuple(parsed.get(k) for k in spec.key)
            if key in seen:
                errors.append(
                    InputError(
                        source,
                        f"a row with the same {', '.join(spec.key)} came earlier in the file",
                        row=number,
                        field=spec.key[-1],
                    )
                )
                continue
            seen.add(key)
            good.append(parsed)
        try:
            imported = self._store(kind, spec, good)
        except SQLAlchemyError as exc:
            raise LedgerError(f"{source}: the register could not store the rows: {exc}") from exc
        if kind == "lab" and imported:
            with self.session() as s:
                empty = s.exec(select(InstrumentType).limit(1)).first() is None
            if empty:
                self.seed_types()
        for error in errors:
            _logger.info("import of %s: %s", kind, error)
        return ImportReport(imported, errors)

    def _store(self, kind: str, spec: _Kind, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        self._held = None  # the register's types may change: `cycle_types` reads them again
        with self.session() as s:
            if kind == "instrument":
                return self._store_instruments(s, rows)
            table: Any = spec.table
            existing = {
                tuple(getattr(r, k) for k in spec.key): r
                for r in s.exec(
                    select(table).where(table.lab_code == self.lab_code)
                    if spec.per_lab
                    else select(table)
                ).all()
            }
            for values in rows:
                if spec.per_lab:
                    values = {**values, "lab_code": self.lab_code}
                # a key column left out is empty, as the new row would store it
                old = existing.get(tuple(values.get(k, "") for k in spec.key))
                if old is not None:
                    for name, value in values.items():
                        setattr(old, name, value)
                    s.add(old)
                else:
                    s.add(table(**values))
            s.commit()
        return len(rows)

    def _store_instruments(self, s: Session, rows: Sequence[dict[str, Any]]) -> int:
        owners = {o.code: o for o in s.exec(select(Owner)).all()}
        for values in rows:
            code = values["owner_code"]
            owner = owners.get(code)
            if owner is None:
                owner = Owner(
                    code=code,
                    name=values.get("owner_name") or code,
                    address=values.get("owner_address") or "",
                )
                s.add(owner)
                owners[code] = owner
            elif values.get("owner_name") and (
                owner.name != values["owner_name"]
                or owner.address != (values.get("owner_address") or owner.address)
            ):
                owner.name = values["owner_name"]
                owner.address = values.get("owner_address") or owner.address
                s.add(owner)
        s.flush()
        # Many rows: one query for all instruments; a few: one query per row.
        bulk = len(rows) > 50
        existing: dict[tuple[int | None, str, str], Instrument] = (
            {(i.owner_id, i.type_code, i.serial): i for i in s.exec(select(Instrument)).all()}
            if bulk
            else {}
        )
        fields = [c.name for c in KINDS["instrument"].columns if not c.name.startswith("owner_")]
        new: list[dict[str, Any]] = []
        for values in rows:
            owner_id = owners[values["owner_code"]].id
            data = {k: values.get(k) for k in fields if k in values}
            key = (owner_id, str(values["type_code"]), str(values["serial"]))
            if bulk:
                old = existing.get(key)
            else:
                old = s.exec(
                    select(Instrument).where(
                        Instrument.owner_id == owner_id,
                        Instrument.type_code == key[1],
                        Instrument.serial == key[2],
                    )
                ).first()
            if old is not None:
                for name, value in data.items():
                    setattr(old, name, value)
                s.add(old)
            else:
                new.append({**{k: _DEFAULTS.get(k) for k in fields}, **data, "owner_id": owner_id})
        if new:
            s.execute(insert(Instrument), new)
        s.commit()
        return len(rows)

    def export_file(self, kind: str, path: Path) -> int:
        """Write the rows of `kind` to `path` (.csv or .xlsx) in the import columns; return the
        number of rows. The file can be imported again."""
        rows = self.list(kind)
        columns = [c.name for c in _spec(kind).columns]
        return write_table(
            path, columns, ([plain_cell(r[c]) for c in columns] for r in rows), sheet=kind
        )


_DEFAULTS: dict[str, Any] = {
    "name": "",
    "model": "",
    "manufacturer": "",
    "ranges": "",
    "accuracy_class": "",
    "place_of_use": "",
}


def _spec(kind: str) -> _Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise InputError(
            "registry", f"unknown register part '{kind}'", hint=f"one of: {', '.join(KINDS)}"
        ) from None


def _parse_row(
    spec: _Kind, values: Mapping[str, str], source: str, row: int
) -> tuple[dict[str, Any], InputError | None]:
    parsed: dict[str, Any] = {}
    for column in spec.columns:
        text = values.get(column.name, "")
        if not text:
            if column.required:
                return parsed, InputError(source, "a value is required", row=row, field=column.name)
            if column.parse in (_opt_int, _opt_date, _bool):
                parsed[column.name] = column.parse("")
            elif column.name in values:
                parsed[column.name] = ""
            continue
        try:
            parsed[column.name] = column.parse(text)
        except ValueError as exc:
            return parsed, InputError(source, str(exc), row=row, field=column.name)
    if spec.table is Scope and Decimal(parsed["upper"]) <= Decimal(parsed["lower"]):
        return parsed, InputError(
            source,
            f"expected a value above lower ({parsed['lower']}), got {parsed['upper']}",
            row=row,
            field="upper",
        )
    if spec.table is Scope and parsed.get("cmc"):
        try:
            parse_cmc(parsed["cmc"], parsed["unit"])
        except ValueError as exc:
            return parsed, InputError(source, str(exc), row=row, field="cmc")
    if spec.table is TestingScope:
        problem = _testing_scope_problem(parsed)
        if problem is not None:
            return parsed, InputError(source, problem[1], row=row, field=problem[0])
    if spec.table is StampStock and parsed["last"] < parsed["first"]:
        return parsed, InputError(
            source,
            f"expected a number not below first ({parsed['first']}), got {parsed['last']}",
            row=row,
            field="last",
        )
    return parsed, None


def _testing_scope_problem(parsed: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (field, problem) of a testing scope row that cannot be a scope line, or None: a
    range needs lower, upper and unit together, lower not above upper; the parameter needs
    words (what `TestingScopeLine` matches)."""
    parameter = str(parsed["parameter"])
    if not re.search(r"\w", parameter):
        return "parameter", f"expected the parameter's name in words, got '{parameter}'"
    given = [name for name in ("lower", "upper", "unit") if parsed.get(name)]
    if given and len(given) < 3:
        missing = next(n for n in ("lower", "upper", "unit") if n not in given)
        return missing, (
            "a value is required when the line has a range (lower, upper and unit together; "
            "all three empty: any result)"
        )
    if given and Decimal(parsed["upper"]) < Decimal(parsed["lower"]):
        return (
            "upper",
            f"expected a value not below lower ({parsed['lower']}), got {parsed['upper']}",
        )
    return None


def read_table(path: Path) -> Iterator[tuple[str, int, dict[str, str]]]:
    """Yield ``(where, row number, header to text)`` per data row of `path`: a .csv file or
    the first sheet of a .xlsx workbook, read through `certissuer._tables` (size and zip-bomb
    limits, UTF-8 with or without a byte order mark). `where` names the file, and the sheet
    of a workbook (``people.xlsx [Sheet1]``); rows count the header as row 1.

    Raises `InputError` when the file cannot be read.
    """
    header: list[str] | None = None
    for where, number, cells in table_rows(path):
        if header is None:
            header = cells
            continue
        yield where, number, {h: c for h, c in zip(header, cells, strict=False) if h}
