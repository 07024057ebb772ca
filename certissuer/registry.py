"""The shared measurement register: labs and their scope, owners, instruments, instrument types
and their verification cycles, reference standards, personnel and verification stamps.

The register lives in the ledger database (same SQLite or PostgreSQL back end, migration 0004)
and does two jobs:

* **checks before issuing** (`Register.clear`, called by `Issuer.issue` before a number is
  reserved): reference standards within their calibration due date, the verifier's card valid
  and covering the instrument type, the signatory approved for the scope, the work inside the
  accreditation scope, the stamp in stock and unused, and the valid-until date equal to the one
  the cycle table gives. A refusal is a `RegisterRefused` naming what failed and how to fix it.
* **recall** (`Register.recall`): the instruments whose certificate expires within a window or
  has expired, grouped by owner, and the lab's reference standards falling due.

The checks are on for a lab once the register holds that lab (``certissuer registry add lab``);
a lab that is not in the register issues exactly as before.

>>> register = Register(ledger.engine, lab_code="DT01")  # doctest: +SKIP
>>> register.add("lab", {"code": "DT01", "name_vi": "Trung tâm …"})  # doctest: +SKIP
>>> register.import_file("instrument", Path("instruments.xlsx")).imported  # doctest: +SKIP
500
>>> [g.owner.name for g in register.recall(within_days=30, today=date(2026, 12, 1)).groups]
... # doctest: +SKIP
"""

import calendar
import csv
import logging
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DDL,
    Column,
    DateTime,
    Engine,
    UniqueConstraint,
    delete,
    event,
    insert,
    or_,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, col, select

from certissuer._files import replacing
from certissuer.errors import ConfigError, InputError, LedgerError, RegisterRefused
from certissuer.model import CalibrationCertificate, VerificationCertificate

__all__ = [
    "CHANGE_TRACKED",
    "KINDS",
    "ChangeCounter",
    "Clearance",
    "ImportReport",
    "Instrument",
    "InstrumentType",
    "Lab",
    "Owner",
    "Person",
    "Recall",
    "RecallGroup",
    "RecallItem",
    "Register",
    "RegisteredStandard",
    "Scope",
    "StampStock",
    "StampUse",
    "add_months",
    "change_tracking_sql",
    "current_change",
    "load_instrument_types",
    "open_register",
    "parse_stamp",
    "parse_window",
    "valid_until_for",
]

_logger = logging.getLogger(__name__)

Cert = VerificationCertificate | CalibrationCertificate


# -- tables ----------------------------------------------------------------------------------


class Lab(SQLModel, table=True):
    """A lab: names and addresses, designation decision and accreditation (VILAS) number."""

    __tablename__ = "registry_lab"
    code: str = Field(primary_key=True, max_length=50)
    """The lab code of the profile ([lab] code)."""
    name_vi: str = ""
    name_en: str = ""
    address_vi: str = ""
    address_en: str = ""
    designation: str = ""
    """Designation decision for legal verification ("Quyết định số …/QĐ-TĐC")."""
    accreditation: str = ""
    """Accreditation number ("VILAS 123")."""


class Scope(SQLModel, table=True):
    """One line of a lab's accreditation scope and the signatories approved for it."""

    __tablename__ = "registry_scope"
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    kind: str = Field(max_length=20)
    """verification or calibration."""
    quantity: str = ""
    instrument_type: str = Field(default="", max_length=40)
    """An instrument type code, or empty for any instrument of the quantity."""
    unit: str = Field(max_length=20)
    lower: str
    """Lower end of the range, as a decimal number in `unit`."""
    upper: str
    signatories: str = ""
    """Names of the approved signatories, separated by ";"."""


class InstrumentType(SQLModel, table=True):
    """An instrument type of the national list, with its legal verification cycle."""

    __tablename__ = "registry_instrument_type"
    code: str = Field(primary_key=True, max_length=40)
    name_vi: str
    name_en: str = ""
    quantity: str = ""
    cycle_months: int
    aliases: str = ""
    """Other names, separated by ";", matched inside a certificate's instrument name."""
    source: str = ""


class Owner(SQLModel, table=True):
    """An owner of instruments: an enterprise, a market stall, a public body."""

    __tablename__ = "registry_owner"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=60, unique=True)
    """Tax code or the lab's own code; for owners created while issuing, derived from the name."""
    name: str
    address: str = ""
    kind: str = ""
    email: str = ""
    change_seq: int | None = Field(default=None, index=True)
    """Register change number, set by the database on every insert and update (a trigger,
    migration 0005); the sector export's cursor (issue 10)."""
    changed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    """When the row last changed (UTC), set by the same trigger."""


class Instrument(SQLModel, table=True):
    """A measuring instrument in use, with its latest certificate and when that expires."""

    __tablename__ = "registry_instrument"
    __table_args__ = (UniqueConstraint("owner_id", "type_code", "serial"),)
    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="registry_owner.id", index=True)
    type_code: str = Field(index=True, max_length=40)
    name: str = ""
    model: str = ""
    serial: str = Field(index=True, max_length=100)
    manufacturer: str = ""
    year: int | None = None
    ranges: str = ""
    """Measuring ranges as printed ("(0 ÷ 150) kg; (150 ÷ 300) kg")."""
    accuracy_class: str = ""
    place_of_use: str = ""
    last_certificate: str | None = Field(default=None, max_length=60)
    verified_on: date | None = None
    valid_until: date | None = Field(default=None, index=True)
    change_seq: int | None = Field(default=None, index=True)
    """Register change number, set by the database on every insert and update (a trigger,
    migration 0005); the sector export's cursor (issue 10)."""
    changed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    """When the row last changed (UTC), set by the same trigger."""


class RegisteredStandard(SQLModel, table=True):
    """A reference standard of a lab and the certificate that calibrated it."""

    __tablename__ = "registry_standard"
    __table_args__ = (UniqueConstraint("lab_code", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    code: str = Field(max_length=60)
    """The lab's identity for the standard (often its serial number)."""
    name: str
    serial: str = ""
    certificate_number: str
    calibration_due: date = Field(index=True)
    quantities: str = ""
    ranges: str = ""
    change_seq: int | None = Field(default=None, index=True)
    """Register change number, set by the database on every insert and update (a trigger,
    migration 0005); the sector export's cursor (issue 10)."""
    changed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    """When the row last changed (UTC), set by the same trigger."""


class Person(SQLModel, table=True):
    """A verifier (with a card covering some instrument types) or a signatory of a lab."""

    __tablename__ = "registry_person"
    __table_args__ = (UniqueConstraint("lab_code", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    name: str = Field(max_length=200)
    title: str = ""
    verifier_card: str = ""
    """Verifier card number (thẻ kiểm định viên đo lường); empty if none."""
    card_types: str = ""
    """Instrument type codes the card covers, separated by ";"."""
    card_expiry: date | None = None
    signatory: bool = False
    """An authorised signatory (which scope: `Scope.signatories`)."""
    change_seq: int | None = Field(default=None, index=True)
    """Register change number, set by the database on every insert and update (a trigger,
    migration 0005); the sector export's cursor (issue 10)."""
    changed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    """When the row last changed (UTC), set by the same trigger."""


class ChangeCounter(SQLModel, table=True):
    """The last register change number handed out; its single row is locked by each change.

    Held until the writing transaction commits, so change numbers become visible in the
    order they were given: an export up to change N never misses a change below N.
    """

    __tablename__ = "register_change_counter"
    id: int = Field(default=1, primary_key=True)
    last: int = 0


CHANGE_TRACKED = ("registry_owner", "registry_instrument", "registry_standard", "registry_person")
"""Register tables whose rows carry `change_seq` and `changed_at` (set by triggers)."""


def change_tracking_sql(dialect: str, table: str | None = None) -> list[str]:
    """The SQL that creates the change-tracking triggers of `table` (or the counter's row and,
    on PostgreSQL, its sequence, when `table` is None) on `dialect` (``sqlite`` or
    ``postgresql``).

    Every insert and update of a tracked row takes the next change number and stores it with
    the time in ``change_seq`` and ``changed_at``, whatever code (or SQL) wrote the row.
    SQLite serialises writers (``BEGIN IMMEDIATE``) and counts in `ChangeCounter.last`.
    PostgreSQL takes the number from the sequence ``register_change_seq`` while a
    statement-level trigger holds the counter row locked (``FOR UPDATE``, without updating it:
    one row updated per written row would grow a version chain that makes bulk imports
    quadratic) until commit, so numbers become visible in commit order, and the lock is taken
    before the statement locks any row, so two writers cannot deadlock on it. See
    `current_change`.
    """
    if table is None:
        statements = ["INSERT INTO register_change_counter (id, last) VALUES (1, 0)"]
        if dialect == "postgresql":
            statements.append("CREATE SEQUENCE IF NOT EXISTS register_change_seq")
        return statements
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION register_change_lock() RETURNS trigger AS $$ "
            "BEGIN PERFORM 1 FROM register_change_counter WHERE id = 1 FOR UPDATE; "
            "RETURN NULL; END $$ LANGUAGE plpgsql",
            "CREATE OR REPLACE FUNCTION register_change() RETURNS trigger AS $$ "
            "BEGIN NEW.change_seq := nextval('register_change_seq'); NEW.changed_at := now(); "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {table}_change_lock BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION register_change_lock()",
            f"CREATE TRIGGER {table}_change BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION register_change()",
        ]
    body = (
        "BEGIN UPDATE register_change_counter SET last = last + 1 WHERE id = 1; "
        f"UPDATE {table} SET change_seq = (SELECT last FROM register_change_counter WHERE id = 1), "
        "changed_at = strftime('%Y-%m-%d %H:%M:%f000', 'now') WHERE id = NEW.id; END"
    )
    return [
        f"CREATE TRIGGER {table}_change_insert AFTER INSERT ON {table} {body}",
        # the trigger's own UPDATE changes change_seq, so it does not fire this one again
        f"CREATE TRIGGER {table}_change_update AFTER UPDATE ON {table} "
        f"WHEN NEW.change_seq IS OLD.change_seq {body}",
    ]


def current_change(conn: Any) -> int:
    """The newest register change number that is committed, read on connection `conn`.

    On PostgreSQL this first locks the counter row ``FOR SHARE``: it waits for a transaction
    that is writing the register to commit and keeps new writers waiting until `conn`'s
    transaction ends, so every change up to the number returned is visible to the statements
    that follow (in READ COMMITTED) and none below it can appear later.
    """
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT 1 FROM register_change_counter WHERE id = 1 FOR SHARE"))
        row = conn.execute(
            text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM register_change_seq")
        ).first()
    else:
        row = conn.execute(text("SELECT last FROM register_change_counter WHERE id = 1")).first()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _listen_for_create(table: Any, name: str | None) -> None:
    for dialect in ("sqlite", "postgresql"):
        for statement in change_tracking_sql(dialect, name):
            # DDL() treats "%" as a format character
            event.listen(
                table,
                "after_create",
                DDL(statement.replace("%", "%%")).execute_if(  # type: ignore[no-untyped-call]  # SQLAlchemy leaves DDL() unannotated
                    dialect=dialect
                ),
            )


_listen_for_create(SQLModel.metadata.tables["register_change_counter"], None)
for _name in CHANGE_TRACKED:
    _listen_for_create(SQLModel.metadata.tables[_name], _name)


class StampStock(SQLModel, table=True):
    """Verification stamps received: one series, numbers `first` to `last` inclusive."""

    __tablename__ = "registry_stamp_stock"
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    series: str = Field(max_length=40)
    first: int
    last: int
    received: date | None = None


class StampUse(SQLModel, table=True):
    """A stamp number used once; its primary key is what stops a second use."""

    __tablename__ = "registry_stamp_use"
    series: str = Field(primary_key=True, max_length=40)
    number: int = Field(primary_key=True)
    lab_code: str = Field(max_length=50)
    ref: str = Field(index=True, max_length=100)
    """The record (ref) that claimed the stamp, before its certificate number is known."""
    certificate_number: str | None = Field(default=None, max_length=60)
    used_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


# -- instrument types and cycles ----------------------------------------------------------


def load_instrument_types(path: Path | None = None) -> list[InstrumentType]:
    """Read the instrument types and cycles from TOML `path` (default: the shipped list).

    Raises `ConfigError` naming the file and entry when the file cannot be used.
    """
    if path is None:
        text = (
            resources.files("certissuer").joinpath("data/instrument_types.toml").read_text("utf-8")
        )
        where = "certissuer/data/instrument_types.toml"
    else:
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the instrument types: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    source = str(raw.get("source", ""))
    types = []
    for i, entry in enumerate(raw.get("type", []), 1):
        try:
            months = entry["cycle_months"]
            if not isinstance(months, int) or isinstance(months, bool) or months <= 0:
                raise ValueError(f"cycle_months must be a positive whole number, got {months!r}")
            types.append(
                InstrumentType(
                    code=str(entry["code"]),
                    name_vi=str(entry["name_vi"]),
                    name_en=str(entry.get("name_en", "")),
                    quantity=str(entry.get("quantity", "")),
                    cycle_months=months,
                    aliases=";".join(str(a) for a in entry.get("aliases", [])),
                    source=source,
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: [[type]] number {i}: {exc}") from exc
    if not types:
        raise ConfigError(f"{where}: no [[type]] entries")
    return types


def add_months(day: date, months: int) -> date:
    """`day` plus `months` calendar months; a day past the month's end becomes its last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def valid_until_for(verification_date: date, cycle_months: int) -> date:
    """The last day of a verification cycle: verification date + cycle months − 1 day.

    A fuel dispenser (12 months) verified on 2026-11-25 is valid until 2027-11-24 (Circular
    24/2013 form 18.GCNKĐ: "Có giá trị đến", the last day of the cycle). A date past the end of
    the target month is moved to its last day first (2024-02-29 + 12 months → 2025-02-28, so
    valid until 2025-02-27).
    """
    return add_months(verification_date, cycle_months) - timedelta(days=1)


_STAMP = re.compile(r"^(?P<series>.*?)\s*(?P<number>\d+)$")


def parse_stamp(text: str) -> tuple[str, int]:
    """Split a stamp as printed ("ĐT-26 0012345") into series ("ĐT-26") and number (12345).

    The number is the last group of digits; everything before it, trimmed, is the series.
    Raises `ValueError` when there is no trailing number.
    """
    match = _STAMP.match(text.strip())
    if match is None:
        raise ValueError(
            f"expected a stamp series and number such as 'ĐT-26 0012345', got {text!r}"
        )
    series = match["series"].strip().rstrip("-").strip()
    return series, int(match["number"])


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(";") if p.strip()]


# -- results of checks, imports and recall ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clearance:
    """What the checks found for one certificate, used while issuing it."""

    ref: str
    accredited: bool
    """False when the work is outside the accreditation scope and the lab profile lets it be
    issued without the accreditation mark."""
    type_code: str | None = None
    instrument_id: int | None = None
    stamp: tuple[str, int] | None = None
    valid_until: date | None = None


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: rows imported, and one `InputError` per bad row (not imported)."""

    imported: int
    errors: list[InputError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecallItem:
    """One instrument due (or overdue) for verification, or one standard due for calibration."""

    owner_code: str
    owner_name: str
    owner_address: str
    type_code: str
    type_name: str
    name: str
    model: str
    serial: str
    place_of_use: str
    last_certificate: str
    valid_until: date
    overdue: bool
    """True when the certificate has already expired (valid_until before today)."""


@dataclass(frozen=True, slots=True)
class RecallGroup:
    """The instruments of one owner on a recall list."""

    owner_code: str
    owner_name: str
    owner_address: str
    items: list[RecallItem]


@dataclass(frozen=True, slots=True)
class Recall:
    """A recall list: instruments grouped by owner, and the lab's standards falling due."""

    today: date
    until: date
    """The last day of the window: certificates valid until this day or earlier are listed."""
    groups: list[RecallGroup]
    standards: list[RegisteredStandard]

    @property
    def count(self) -> int:
        """Number of instruments listed."""
        return sum(len(g.items) for g in self.groups)


# -- import columns ----------------------------------------------------------------------


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


# -- the register ------------------------------------------------------------------------


class Register:
    """The register of one lab, in the ledger database behind `engine`.

    `lab_code` is the lab's code ([lab] code); `instrument_types` a TOML cycle table that
    replaces the shipped one when the lab is added; `outside_scope` what to do with work
    outside the accreditation scope: ``refuse``, or ``unaccredited`` (issue without the
    accreditation mark, saying so on the certificate).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        lab_code: str,
        instrument_types: Path | None = None,
        outside_scope: str = "refuse",
    ) -> None:
        if outside_scope not in {"refuse", "unaccredited"}:
            raise ConfigError(
                "[registry] outside_scope must be 'refuse' or 'unaccredited', "
                f"got {outside_scope!r}"
            )
        self.engine = engine
        self.lab_code = lab_code
        self.instrument_types = instrument_types
        self.outside_scope = outside_scope

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- state ---------------------------------------------------------------------------

    def enabled(self) -> bool:
        """True when the register holds this lab: then every issue is checked against it."""
        try:
            with self._session() as s:
                return s.get(Lab, self.lab_code) is not None
        except SQLAlchemyError as exc:
            raise LedgerError(f"the register cannot be read: {exc}") from exc

    def seed_types(self, path: Path | None = None, *, replace: bool = False) -> int:
        """Load the cycle table (`path`, the profile's, or the shipped list) into the register.

        Existing types are kept unless `replace`. Returns the number of types written.
        """
        types = load_instrument_types(path or self.instrument_types)
        written = 0
        with self._session() as s:
            for t in types:
                old = s.get(InstrumentType, t.code)
                if old is not None and not replace:
                    continue
                if old is not None:
                    s.delete(old)
                    s.flush()
                s.add(t)
                written += 1
            s.commit()
        return written

    # -- checks before issuing -----------------------------------------------------------

    def clear(self, cert: Cert, *, now: datetime | None = None) -> Clearance:
        """Check `cert` against the register and claim its stamp; return what was found.

        Raises `RegisterRefused` naming the first rule it breaks and how to fix it: a standard
        past its calibration due date (or not in the register), a verifier card that is
        missing, expired or does not cover the instrument type, a signatory not approved for
        the scope, work outside the accreditation scope (unless the profile allows issuing
        without the accreditation mark), a stamp not in stock or already used, a valid-until
        date other than the cycle table's. The stamp is claimed for ``cert.ref`` (a unique
        row per series and number), so two issues can never use the same stamp.
        """
        clearance = self.check(cert)
        if clearance.stamp is not None:
            self._claim_stamp(clearance.stamp, cert.ref, now or datetime.now(UTC))
        return clearance

    def check(self, cert: Cert) -> Clearance:
        """The checks of `clear`, without claiming the stamp."""
        with self._session() as s:
            lab = s.get(Lab, self.lab_code)
            if lab is None:
                raise RegisterRefused(
                    f"lab {self.lab_code} is not in the register",
                    hint="add it with 'certissuer registry add lab code=…'",
                )
            item = cert.instrument if isinstance(cert, VerificationCertificate) else cert.item
            types = list(s.exec(select(InstrumentType)).all())
            instrument = self._find_instrument(s, item.serial, item.model, item.manufacturer)
            type_code = instrument.type_code if instrument else _match_type(item.name, types)
            persons = {
                _fold(p.name): p
                for p in s.exec(select(Person).where(Person.lab_code == self.lab_code)).all()
            }
            scopes = list(s.exec(select(Scope).where(Scope.lab_code == self.lab_code)).all())
            if isinstance(cert, VerificationCertificate):
                return self._check_verification(
                    s, cert, types, type_code, instrument, persons, scopes
                )
            return self._check_calibration(s, cert, type_code, persons, scopes)

    def computed_valid_until(self, cert: VerificationCertificate) -> date | None:
        """The valid-until date of `cert` from the cycle table, or None when the register does
        not know the instrument's type (by its registered serial, or by its name)."""
        with self._session() as s:
            types = list(s.exec(select(InstrumentType)).all())
            item = cert.instrument
            instrument = self._find_instrument(s, item.serial, item.model, item.manufacturer)
            code = instrument.type_code if instrument else _match_type(item.name, types)
        kind = next((t for t in types if t.code == code), None)
        return valid_until_for(cert.verification_date, kind.cycle_months) if kind else None

    def _find_instrument(
        self, s: Session, serial: str, model: str, manufacturer: str
    ) -> Instrument | None:
        found = list(s.exec(select(Instrument).where(Instrument.serial == serial)).all())
        if len(found) > 1:
            found = [i for i in found if _fold(i.model) == _fold(model)] or found
        if len(found) > 1:
            found = [i for i in found if _fold(i.manufacturer) == _fold(manufacturer)] or found
        return found[0] if found else None

    def _check_verification(
        self,
        s: Session,
        cert: VerificationCertificate,
        types: Sequence[InstrumentType],
        type_code: str | None,
        instrument: Instrument | None,
        persons: Mapping[str, Person],
        scopes: Sequence[Scope],
    ) -> Clearance:
        ref = f"ref '{cert.ref}'"
        kind = next((t for t in types if t.code == type_code), None)
        if kind is None:
            raise RegisterRefused(
                f"{ref}: the type of instrument '{cert.instrument.name}' (serial "
                f"{cert.instrument.serial}) is not in the register"
                + (f" (type code '{type_code}' is not in the cycle table)" if type_code else ""),
                hint="add the instrument with 'certissuer registry add instrument type_code=… "
                "serial=… owner_code=…', or name it as the cycle table does",
            )
        computed = valid_until_for(cert.verification_date, kind.cycle_months)
        if cert.valid_until != computed:
            raise RegisterRefused(
                f"{ref}: valid_until is {cert.valid_until}, but a {kind.name_vi} / "
                f"{kind.name_en} verified on {cert.verification_date} with a cycle of "
                f"{kind.cycle_months} months is valid until {computed}",
                hint=f"set valid_until to {computed}",
            )
        verifier = persons.get(_fold(cert.verifier.name))
        if verifier is None or not verifier.verifier_card:
            raise RegisterRefused(
                f"{ref}: verifier {cert.verifier.name} has no verifier card in the register",
                hint="add the card with 'certissuer registry add person name=… verifier_card=… "
                "card_types=… card_expiry=…'",
            )
        if verifier.card_expiry is None or verifier.card_expiry < cert.verification_date:
            raise RegisterRefused(
                f"{ref}: the verifier card {verifier.verifier_card} of {verifier.name} expired on "
                f"{verifier.card_expiry}, before the verification date {cert.verification_date}",
                hint="renew the card and update card_expiry, or have a verifier with a valid "
                "card verify the instrument",
            )
        if kind.code not in _split(verifier.card_types):
            raise RegisterRefused(
                f"{ref}: the verifier card {verifier.verifier_card} of {verifier.name} does not "
                f"cover {kind.name_vi} / {kind.name_en} ({kind.code}); it covers "
                f"{', '.join(_split(verifier.card_types)) or 'no type'}",
                hint="have a verifier whose card covers this type verify the instrument",
            )
        ranges = [(r.unit, r.lower, r.upper) for r in cert.ranges]
        accredited = self._in_scope(
            ref, "verification", kind.code, ranges, cert.head.name, persons, scopes
        )
        stamp = None
        if cert.stamp_number:
            stamp = self._check_stamp(s, ref, cert.stamp_number)
        return Clearance(
            ref=cert.ref,
            accredited=accredited,
            type_code=kind.code,
            instrument_id=instrument.id if instrument else None,
            stamp=stamp,
            valid_until=computed,
        )

    def _check_calibration(
        self,
        s: Session,
        cert: CalibrationCertificate,
        type_code: str | None,
        persons: Mapping[str, Person],
        scopes: Sequence[Scope],
    ) -> Clearance:
        ref = f"ref '{cert.ref}'"
        standards = list(
            s.exec(
                select(RegisteredStandard).where(RegisteredStandard.lab_code == self.lab_code)
            ).all()
        )
        for used in cert.standards:
            known = next(
                (
                    r
                    for r in standards
                    if (used.serial and _fold(r.serial) == _fold(used.serial))
                    or _fold(r.certificate_number) == _fold(used.certificate_number)
                    or _fold(r.name) == _fold(used.name)
                ),
                None,
            )
            if known is None:
                raise RegisterRefused(
                    f"{ref}: reference standard {used.name} (serial {used.serial or '-'}, "
                    f"certificate {used.certificate_number}) is not in the register",
                    hint="add it with 'certissuer registry add standard code=… name=… "
                    "certificate_number=… calibration_due=…'",
                )
            due = min(known.calibration_due, used.calibration_due)
            if due < cert.calibrated:
                raise RegisterRefused(
                    f"{ref}: reference standard {known.name} ({known.code}) was due for "
                    f"calibration on {due}, before the calibration date {cert.calibrated}",
                    hint="have the standard recalibrated and record its new certificate with "
                    "'certissuer registry add standard …', or use another standard",
                )
        signer = persons.get(_fold(cert.signatory.name))
        if signer is None or not signer.signatory:
            raise RegisterRefused(
                f"{ref}: {cert.signatory.name} is not an authorised signatory in the register",
                hint="add them with 'certissuer registry add person name=… signatory=yes'",
            )
        ranges = [
            (m.unit, m.nominal if m.nominal is not None else m.measured, None) for m in cert.results
        ]
        accredited = self._in_scope(
            ref, "calibration", type_code, ranges, cert.signatory.name, persons, scopes
        )
        return Clearance(ref=cert.ref, accredited=accredited, type_code=type_code)

    def _in_scope(
        self,
        ref: str,
        kind: str,
        type_code: str | None,
        ranges: Iterable[tuple[str, Decimal, Decimal | None]],
        signatory: str,
        persons: Mapping[str, Person],
        scopes: Sequence[Scope],
    ) -> bool:
        """True when every range lies inside a scope line that approves `signatory`."""
        lines = [
            sc
            for sc in scopes
            if sc.kind == kind and (not sc.instrument_type or sc.instrument_type == type_code)
        ]
        matched: list[Scope] = []
        for unit, low, high in ranges:
            top = low if high is None else high
            line = next(
                (
                    sc
                    for sc in lines
                    if sc.unit == unit and Decimal(sc.lower) <= low and top <= Decimal(sc.upper)
                ),
                None,
            )
            if line is None:
                what = f"{low} {unit}" if high is None else f"({low} ÷ {high}) {unit}"
                if self.outside_scope == "unaccredited":
                    _logger.info("%s: %s outside the scope, issued without the mark", ref, what)
                    return False
                raise RegisterRefused(
                    f"{ref}: {what} for {kind} of {type_code or 'this item'} is outside the "
                    f"accreditation scope of lab {self.lab_code}",
                    hint="add the scope line ('certissuer registry add scope …') if the lab is "
                    'accredited for it, or set [registry] outside_scope = "unaccredited" to '
                    "issue without the accreditation mark",
                )
            matched.append(line)
        folded = _fold(signatory)
        for line in matched:
            if folded not in {_fold(n) for n in _split(line.signatories)}:
                raise RegisterRefused(
                    f"{ref}: {signatory} is not an approved signatory for the scope "
                    f"'{line.quantity or line.instrument_type or line.unit}' "
                    f"(({line.lower} ÷ {line.upper}) {line.unit}); approved: "
                    f"{', '.join(_split(line.signatories)) or 'nobody'}",
                    hint="have an approved signatory sign, or add the name to the scope line's "
                    "signatories",
                )
        if folded not in persons:
            _logger.debug("%s: signatory %s approved by scope but not in personnel", ref, signatory)
        return True

    def _check_stamp(self, s: Session, ref: str, stamp_text: str) -> tuple[str, int]:
        try:
            series, number = parse_stamp(stamp_text)
        except ValueError as exc:
            raise RegisterRefused(f"{ref}: stamp_number: {exc}") from None
        stock = s.exec(
            select(StampStock).where(
                StampStock.lab_code == self.lab_code,
                StampStock.series == series,
                StampStock.first <= number,
                StampStock.last >= number,
            )
        ).first()
        if stock is None:
            raise RegisterRefused(
                f"{ref}: stamp {stamp_text} (series {series}, number {number}) is not in the "
                f"stamp stock of lab {self.lab_code}",
                hint="check the stamp number, or record the stamps received with "
                "'certissuer registry add stamp series=… first=… last=…'",
            )
        used = s.get(StampUse, (series, number))
        if used is not None and used.ref != ref.removeprefix("ref '").removesuffix("'"):
            raise RegisterRefused(
                f"{ref}: stamp {stamp_text} was already used"
                + (
                    f" by certificate {used.certificate_number}"
                    if used.certificate_number
                    else f" by record '{used.ref}'"
                ),
                hint="each stamp number is used once: take the next stamp from stock",
            )
        return series, number

    def _claim_stamp(self, stamp: tuple[str, int], ref: str, now: datetime) -> None:
        # The primary key (series, number) is the lock: of two processes inserting the same
        # stamp, the second gets an IntegrityError (PostgreSQL waits for the first to commit;
        # SQLite serialises the transactions with BEGIN IMMEDIATE).
        series, number = stamp

        def refused(other: str) -> RegisterRefused:
            return RegisterRefused(
                f"ref '{ref}': stamp {series} {number} was just used by record '{other}'",
                hint="each stamp number is used once: take the next stamp from stock",
            )

        with self._session() as s:
            # A record that changed its stamp before it was issued gives the old one back.
            s.exec(
                delete(StampUse).where(
                    col(StampUse.lab_code) == self.lab_code,
                    col(StampUse.ref) == ref,
                    col(StampUse.certificate_number).is_(None),
                    or_(col(StampUse.series) != series, col(StampUse.number) != number),
                )
            )
            used = s.get(StampUse, (series, number))
            if used is not None and used.ref != ref:
                s.rollback()
                raise refused(used.ref)
            if used is None:
                s.add(
                    StampUse(
                        series=series, number=number, lab_code=self.lab_code, ref=ref, used_at=now
                    )
                )
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
            else:
                return
        with self._session() as s:
            used = s.get(StampUse, (series, number))
            if used is None or used.ref != ref:
                raise refused(used.ref if used else "?")

    def accredited(self, cert: Cert) -> bool:
        """False when `cert` is issued without the accreditation mark (outside the scope)."""
        if self.outside_scope == "refuse" or not self.enabled():
            return True
        try:
            return self.check(cert).accredited
        except RegisterRefused:
            return True

    def record(self, clearance: Clearance, cert: object, number: str) -> None:
        """Record an issued certificate: its stamp, and the instrument's latest certificate.

        A verified instrument that is not yet in the register is added, with its owner. The
        certificate is already issued: a failure here is logged, not raised, and a concurrent
        insert of the same owner or instrument is retried.
        """
        for attempt in range(3):
            try:
                self._record(clearance, cert, number)
                return
            except IntegrityError:
                _logger.debug("recording %s raced another issue; retry %d", number, attempt + 1)
            except SQLAlchemyError as exc:
                _logger.error("%s was issued but the register could not record it: %s", number, exc)
                return
        _logger.error("%s was issued but the register could not record it", number)

    def _record(self, clearance: Clearance, cert: object, number: str) -> None:
        with self._session() as s:
            if clearance.stamp is not None:
                series, stamp_no = clearance.stamp
                s.exec(
                    update(StampUse)
                    .where(col(StampUse.series) == series, col(StampUse.number) == stamp_no)
                    .values(certificate_number=number)
                )
            if isinstance(cert, VerificationCertificate) and clearance.type_code:
                instrument = (
                    s.get(Instrument, clearance.instrument_id)
                    if clearance.instrument_id is not None
                    else None
                )
                owner = None
                if instrument is None:
                    owner = self._owner_for(s, cert.owner.name, cert.owner.address)
                    instrument = s.exec(
                        select(Instrument).where(
                            Instrument.owner_id == owner.id,
                            Instrument.type_code == clearance.type_code,
                            Instrument.serial == cert.instrument.serial,
                        )
                    ).first()
                if instrument is None:
                    assert owner is not None and owner.id is not None
                    instrument = Instrument(
                        owner_id=owner.id,
                        type_code=clearance.type_code,
                        name=cert.instrument.name,
                        model=cert.instrument.model,
                        serial=cert.instrument.serial,
                        manufacturer=cert.instrument.manufacturer,
                        year=cert.instrument.year,
                        ranges="; ".join(f"({r.lower} ÷ {r.upper}) {r.unit}" for r in cert.ranges),
                        accuracy_class="; ".join(
                            r.accuracy_class for r in cert.ranges if r.accuracy_class
                        ),
                        place_of_use=cert.place_of_use,
                    )
                instrument.last_certificate = number
                instrument.verified_on = cert.verification_date
                instrument.valid_until = cert.valid_until
                s.add(instrument)
            s.commit()

    def _owner_for(self, s: Session, name: str, address: str) -> Owner:
        found = s.exec(select(Owner).where(Owner.name == name)).first()
        if found is not None:
            return found
        code = "auto-" + re.sub(r"[^a-z0-9]+", "-", _ascii(name).lower()).strip("-")[:50]
        owner = Owner(code=code, name=name, address=address)
        s.add(owner)
        s.flush()
        return owner

    # -- administration ------------------------------------------------------------------

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
        with self._session() as s:
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
        with self._session() as s:
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
        field, and is left out. Raises `InputError` when the file cannot be read at all.
        """
        return self.import_rows(kind, _read_table(path), source=str(path), first_row=2)

    def import_rows(
        self,
        kind: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        source: str,
        first_row: int = 1,
    ) -> ImportReport:
        """Import `rows` (mappings of column name to text) of `kind`; see `import_file`."""
        spec = _spec(kind)
        names = {c.name for c in spec.columns}
        errors: list[InputError] = []
        good: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for number, raw in enumerate(rows, first_row):
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
            with self._session() as s:
                empty = s.exec(select(InstrumentType).limit(1)).first() is None
            if empty:
                self.seed_types()
        for error in errors:
            _logger.info("import of %s: %s", kind, error)
        return ImportReport(imported, errors)

    def _store(self, kind: str, spec: _Kind, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        with self._session() as s:
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
                old = existing.get(tuple(values.get(k) for k in spec.key))
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
        _write_table(path, columns, ([_cell(r[c]) for c in columns] for r in rows))
        return len(rows)

    # -- recall --------------------------------------------------------------------------

    def recall(
        self,
        *,
        within_days: int,
        today: date,
        owner: str | None = None,
        type_code: str | None = None,
    ) -> Recall:
        """Instruments whose certificate expires within `within_days` of `today`, or has
        expired, grouped by owner; and this lab's standards due in the same window.

        An instrument is listed when its latest certificate is valid until ``today +
        within_days`` or earlier (valid_until is the last valid day). Instruments never
        certified are not listed. `owner` keeps one owner (its code, or its exact name);
        `type_code` one instrument type. Groups are ordered by owner name, items by
        valid-until date and serial.
        """
        until = today + timedelta(days=within_days)
        with self._session() as s:
            query = (
                sa_select(
                    col(Owner.code),
                    col(Owner.name),
                    col(Owner.address),
                    col(Instrument.type_code),
                    col(InstrumentType.name_vi),
                    col(Instrument.name),
                    col(Instrument.model),
                    col(Instrument.serial),
                    col(Instrument.place_of_use),
                    col(Instrument.last_certificate),
                    col(Instrument.valid_until),
                )
                .select_from(Instrument)
                .join(Owner, col(Owner.id) == col(Instrument.owner_id))
                .outerjoin(InstrumentType, col(InstrumentType.code) == col(Instrument.type_code))
                .where(col(Instrument.valid_until) <= until)
            )
            if owner:
                query = query.where(or_(col(Owner.code) == owner, col(Owner.name) == owner))
            if type_code:
                query = query.where(col(Instrument.type_code) == type_code)
            query = query.order_by(
                col(Owner.name),
                col(Owner.code),
                col(Instrument.valid_until),
                col(Instrument.serial),
                col(Instrument.id),
            )
            rows = s.execute(query).all()
            standards = list(
                s.exec(
                    select(RegisteredStandard)
                    .where(
                        RegisteredStandard.lab_code == self.lab_code,
                        col(RegisteredStandard.calibration_due) <= until,
                    )
                    .order_by(col(RegisteredStandard.calibration_due), col(RegisteredStandard.code))
                ).all()
            )
        groups: list[RecallGroup] = []
        for row in rows:
            code, name, address, tcode, tname, iname, model, serial, place, last, valid = row
            assert valid is not None
            item = RecallItem(
                code,
                name,
                address,
                tcode,
                tname or tcode,
                iname,
                model,
                serial,
                place,
                last or "",
                valid,
                valid < today,
            )
            if not groups or groups[-1].owner_code != code:
                groups.append(RecallGroup(code, name, address, []))
            groups[-1].items.append(item)
        return Recall(today=today, until=until, groups=groups, standards=standards)


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


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in folded if c.isascii())


def _match_type(name: str, types: Sequence[InstrumentType]) -> str | None:
    """The type whose name (vi or en) or alias appears in `name`; the longest match wins."""
    folded = _fold(name)
    best: tuple[int, str] | None = None
    for t in types:
        for label in (t.name_vi, t.name_en, *_split(t.aliases)):
            needle = _fold(label)
            if needle and needle in folded and (best is None or len(needle) > best[0]):
                best = (len(needle), t.code)
    return best[1] if best else None


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
    if spec.table is StampStock and parsed["last"] < parsed["first"]:
        return parsed, InputError(
            source,
            f"expected a number not below first ({parsed['first']}), got {parsed['last']}",
            row=row,
            field="last",
        )
    return parsed, None


def _read_table(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                yield from csv.DictReader(fh)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(path, f"cannot read the CSV file: {exc}") from exc
        return
    if suffix != ".xlsx":
        raise InputError(
            path, "expected a .csv or .xlsx file", hint="save the sheet as XLSX or CSV"
        )
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged files
        raise InputError(path, f"cannot read the XLSX file: {exc}") from exc
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        for cells in rows:
            yield {h: _xlsx_text(v) for h, v in zip(header, cells, strict=False) if h}
    finally:
        workbook.close()


def _xlsx_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _write_table(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a header and rows to `path` (.csv or .xlsx) through a temporary file."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".xlsx"}:
        raise InputError(path, "expected a .csv or .xlsx file to write")
    with replacing(path) as tmp:
        if suffix == ".csv":
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(columns)
                writer.writerows(rows)
        else:
            import openpyxl

            workbook = openpyxl.Workbook(write_only=True)
            sheet = workbook.create_sheet()
            sheet.append(list(columns))
            for row in rows:
                sheet.append(list(row))
            workbook.save(tmp)


def open_register(settings: Any) -> Register:
    """The register of the lab `settings` describe, in its ledger (created or upgraded)."""
    from certissuer.ledger import Ledger

    ledger = Ledger.open(settings.ledger_url)
    return Register(
        ledger.engine,
        lab_code=settings.lab_code,
        instrument_types=settings.registry_instrument_types,
        outside_scope=settings.registry_outside_scope,
    )


def parse_window(text: str, today: date) -> int:
    """Days in a recall window written ``30d``, ``6w``, ``3m`` (calendar months) or ``30``.

    Raises `InputError` for anything else.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([dwm]?)\s*", text.lower())
    if match is None:
        raise InputError("--within", f"expected a window such as 30d, 6w or 3m, got '{text}'")
    n, unit = int(match[1]), match[2] or "d"
    if unit == "m":
        return (add_months(today, n) - today).days
    return n * (7 if unit == "w" else 1)
