"""The register's tables: labs and their scope, instrument types and cycles, owners,
instruments, reference standards, personnel, stamps; and the change numbers on them.

The tables live in the ledger database (migration 0004; change tracking 0005). This module
imports nothing from the ledger, so the ledger's migrations can use it.

>>> [t.code for t in load_instrument_types()][:2]  # doctest: +SKIP
['can-phan-tich', 'can-ky-thuat']
"""

import tomllib
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DDL,
    Column,
    DateTime,
    UniqueConstraint,
    event,
)
from sqlmodel import Field, SQLModel

from certissuer.errors import ConfigError

__all__ = [
    "CHANGE_TRACKED",
    "ChangeCounter",
    "Instrument",
    "InstrumentType",
    "Lab",
    "Owner",
    "Person",
    "RegisteredStandard",
    "Scope",
    "StampStock",
    "StampUse",
    "StandardUse",
    "TestingScope",
    "change_tracking_sql",
    "current_change",
    "load_instrument_types",
]


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
    cmc: str = ""
    """The lab's calibration and measurement capability for the range (ILAC-P14): the smallest
    expanded uncertainty it may claim, a number in `unit` or a number and a unit ("0.1 mg");
    empty when the scope states none (migration 0008)."""


class TestingScope(SQLModel, table=True):
    """One line of a testing lab's accredited scope (issue 22, migration 0011): a test
    parameter by a method, optionally over a range, and the accreditation it belongs to.

    Matched as a ``[lab] testing_scope`` line is (`certissuer.config.TestingScopeLine`): the
    parameter's words and the method's words (diacritics and case folded; no method: any
    method), and a numeric result in `unit` inside `lower`..`upper` when a range is given.
    """

    __tablename__ = "registry_testing_scope"
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    parameter: str = Field(max_length=200)
    """The parameter's words ("Chì / Lead")."""
    method: str = Field(default="", max_length=200)
    """The method's words ("SMEWW 3113B"); empty for any method."""
    unit: str = Field(default="", max_length=20)
    lower: str = ""
    """Lower end of the range, a decimal number in `unit`; empty with `upper` and `unit` for
    no range."""
    upper: str = ""
    accreditation: str = ""
    """The accreditation the line belongs to ("VILAS 1234"); empty: the lab's."""


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


class ChangeTracked(SQLModel):
    """The columns a register table in `CHANGE_TRACKED` shares: the database sets both on every
    insert and update (the triggers of `change_tracking_sql`, migration 0005)."""

    change_seq: int | None = Field(default=None, index=True)
    """Register change number of the row's last change; the sector export's cursor (issue 10)."""
    changed_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), nullable=True
    )
    """When the row last changed (UTC)."""


class Owner(ChangeTracked, table=True):
    """An owner of instruments: an enterprise, a market stall, a public body."""

    __tablename__ = "registry_owner"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=60, unique=True)
    """Tax code or the lab's own code; for owners created while issuing, derived from the name."""
    name: str
    address: str = ""
    kind: str = ""
    email: str = ""


class Instrument(ChangeTracked, table=True):
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


class RegisteredStandard(ChangeTracked, table=True):
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
    traceable_to: str = ""
    """What its calibration traces to: "national", "si" or empty (see
    `certissuer.model.ReferenceStandard.traceable_to`; migration 0008)."""
    calibrated_by: str = ""
    """The laboratory or national metrology institute that calibrated it."""


class StandardUse(SQLModel, table=True):
    """A reference standard used for a certificate: which certificates used a standard, for
    when it is found faulty (migration 0008). The standard's certificate and due date are
    kept as the certificate stated them."""

    __tablename__ = "registry_standard_use"
    certificate_number: str = Field(primary_key=True, max_length=60)
    standard_id: int = Field(primary_key=True, foreign_key="registry_standard.id", index=True)
    lab_code: str = Field(index=True, max_length=50)
    used_on: date
    """The calibration date of the certificate."""
    standard_certificate: str = ""
    """The standard's own calibration certificate, as the certificate stated it."""
    calibration_due: date | None = None


class Person(ChangeTracked, table=True):
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
            # initial_only = true: verified once before use, no cycle (stored as 0 months).
            initial = entry.get("initial_only", False) is True
            if initial and "cycle_months" in entry:
                raise ValueError(
                    f"type {entry.get('code')!r} has initial_only = true and a cycle_months: "
                    "a type verified only once before use has no cycle; remove cycle_months "
                    "or initial_only"
                )
            months = 0 if initial else entry["cycle_months"]
            if not isinstance(months, int) or isinstance(months, bool) or months < 0:
                raise ValueError(f"cycle_months must be a positive whole number, got {months!r}")
            if months == 0 and not initial:
                raise ValueError("cycle_months must be a positive whole number, got 0")
            types.append(
                InstrumentType(
                    code=str(entry["code"]),
                    name_vi=str(entry["name_vi"]),
                    name_en=str(entry.get("name_en", "")),
                    quantity=str(entry.get("quantity", "")),
                    cycle_months=months,
                    aliases=";".join(str(a) for a in entry.get("aliases", [])),
                    source=str(entry.get("source", source)),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: [[type]] number {i}: {exc}") from exc
    if not types:
        raise ConfigError(f"{where}: no [[type]] entries")
    return types
