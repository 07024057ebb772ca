"""The ledger: one row per certificate, gapless numbers, and an append-only event history.

SQLModel tables on an SQLite file by default (WAL, synchronous=FULL, a busy timeout) or on
PostgreSQL by URL. Numbers are unique and gapless per lab, series and year
("HC-2026-000001"), allocated from a counter row locked in the allocating transaction
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE``).

Issuing is two short transactions around the slow work (render and sign), so that several
processes can render and sign at once:

1. `Ledger.reserve_with` takes the next number and writes a *pending* entry holding the full data;
2. the caller renders, signs and writes the PDF;
3. `Ledger.complete` records the PDF's SHA-256 and appends the ``issued`` event.

If step 2 fails, `Ledger.release` removes the pending entry and gives the number back when it is
still the newest one; otherwise the entry stays pending, holding its number and data, and a
rerun completes it (`Ledger.pending`). So a number is never skipped.

>>> ledger = Ledger.open("sqlite:///ledger.db")  # doctest: +SKIP
>>> [e.number for e in ledger.entries()]  # doctest: +SKIP
['HC-2026-000001']
"""

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Engine, UniqueConstraint, event, func
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from certissuer.errors import LedgerError

__all__ = [
    "CertificateEntry",
    "EventKind",
    "FailedVerification",
    "Ledger",
    "LedgerEvent",
    "NumberCounter",
    "Status",
    "format_number",
]

_logger = logging.getLogger(__name__)


class Status(StrEnum):
    """A certificate's status, derived from its entry and events, never stored."""

    PENDING = "pending"
    VALID = "valid"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


class EventKind(StrEnum):
    """What can happen to a certificate after it is reserved."""

    ISSUED = "issued"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"


def _utc(dt: datetime) -> datetime:
    # SQLite returns naive datetimes; everything stored is UTC.
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class NumberCounter(SQLModel, table=True):
    """The last number used per lab, series and year; its row is the numbering lock."""

    __tablename__ = "number_counter"
    lab_code: str = Field(primary_key=True, max_length=50)
    series: str = Field(primary_key=True, max_length=20)
    year: int = Field(primary_key=True)
    last: int = 0


class CertificateEntry(SQLModel, table=True):
    """One certificate. Written pending by `reserve_with`; `complete` adds the PDF hash once."""

    __tablename__ = "certificate"
    __table_args__ = (
        UniqueConstraint("lab_code", "series", "year", "seq"),
        UniqueConstraint("lab_code", "ref"),
    )
    number: str = Field(primary_key=True, max_length=60)
    lab_code: str = Field(index=True, max_length=50)
    series: str = Field(max_length=20)
    year: int
    seq: int
    kind: str = Field(index=True, max_length=20)
    ref: str = Field(max_length=100)
    """The input record's reference: the idempotency key."""
    instrument_name: str
    instrument_model: str
    instrument_serial: str = Field(index=True)
    customer_name: str
    work_date: date
    """Verification or calibration date."""
    issue_date: date
    valid_until: date | None = None
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    data_digest: str = Field(max_length=64)
    data_json: str
    """Canonical JSON of the certificate data (what the digest covers)."""
    token: str
    pdf_sha256: str | None = Field(default=None, index=True, unique=True, max_length=64)
    pdf_path: str | None = None
    signer: str = ""

    @property
    def is_pending(self) -> bool:
        """True until the PDF is written and its hash recorded."""
        return self.pdf_sha256 is None

    def data(self) -> dict[str, Any]:
        """The certificate data as a mapping (parse with `model.parse_certificate`)."""
        value: dict[str, Any] = json.loads(self.data_json)
        return value


class LedgerEvent(SQLModel, table=True):
    """An append-only event: issued, revoked (with reason), superseded (by a number)."""

    __tablename__ = "certificate_event"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(foreign_key="certificate.number", index=True, max_length=60)
    kind: str = Field(max_length=20)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    reason: str = ""
    related_number: str | None = None


class FailedVerification(SQLModel, table=True):
    """An instrument that failed verification: its results are kept, no certificate is issued."""

    __tablename__ = "failed_verification"
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    ref: str = Field(max_length=100)
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    instrument_serial: str
    data_digest: str = Field(max_length=64)
    data_json: str


def format_number(series: str, year: int, seq: int) -> str:
    """The printed number: ``<series>-<year>-<seq:06d>``."""
    return f"{series}-{year}-{seq:06d}"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN IMMEDIATE itself (pysqlite recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Ledger:
    """Access to the ledger tables through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> "Ledger":
        """Open the ledger at `url` (``sqlite:///path`` or ``postgresql+psycopg://…``).

        With `create`, missing tables are created. Raises `LedgerError` when the database
        cannot be reached.
        """
        try:
            if url.startswith("sqlite"):
                database = make_url(url).database
                if create and database and database != ":memory:":
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 30})
                _sqlite_setup(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            ledger = cls(engine)
            if create:
                SQLModel.metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the ledger at {_safe_url(url)}: {exc}") from exc
        return ledger

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose errors come out as `LedgerError`."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
        except OperationalError as exc:
            raise LedgerError(f"the ledger database failed: {exc.orig}") from exc

    # -- issuing ---------------------------------------------------------------------------

    def reserve_with(
        self, lab_code: str, series: str, year: int, build: Callable[[str, int], CertificateEntry]
    ) -> CertificateEntry:
        """Allocate the next gapless number and store the pending entry `build(number, seq)`.

        Both happen in one transaction holding the counter lock. Raises `LedgerError` if the
        entry's ref was already used by this lab.
        """
        with self.session() as s:
            counter = s.exec(
                select(NumberCounter)
                .where(
                    NumberCounter.lab_code == lab_code,
                    NumberCounter.series == series,
                    NumberCounter.year == year,
                )
                .with_for_update()
            ).first()
            if counter is None:
                counter = NumberCounter(lab_code=lab_code, series=series, year=year, last=0)
            counter.last += 1
            entry = build(format_number(series, year, counter.last), counter.last)
            # The counter decides; the builder cannot file an entry under another key.
            entry.lab_code, entry.series, entry.year = lab_code, series, year
            entry.seq = counter.last
            s.add(counter)
            s.add(entry)
            try:
                s.commit()
            except IntegrityError as exc:
                s.rollback()
                if s.get(CertificateEntry, entry.number) is not None:
                    raise LedgerError(
                        f"number {entry.number} is already in the ledger for another lab",
                        hint="labs that share a ledger need their own series prefix "
                        "([numbering] in the lab profile)",
                    ) from exc
                raise LedgerError(
                    f"ref '{entry.ref}' is already in the ledger for lab {lab_code}"
                ) from exc
            _logger.debug("reserved %s for ref %s", entry.number, entry.ref)
            return entry

    def complete(
        self, number: str, *, pdf_sha256: str, pdf_path: str, signer: str, at: datetime
    ) -> CertificateEntry:
        """Record the signed PDF of pending entry `number` and append its ``issued`` event."""
        with self.session() as s:
            entry = s.get(CertificateEntry, number, with_for_update=True)
            if entry is None:
                raise LedgerError(f"certificate {number} is not in the ledger")
            if entry.pdf_sha256 is not None:
                raise LedgerError(f"certificate {number} is already complete")
            entry.pdf_sha256 = pdf_sha256.lower()
            entry.pdf_path = pdf_path
            entry.signer = signer
            s.add(entry)
            s.add(LedgerEvent(number=number, kind=EventKind.ISSUED, at=at))
            s.commit()
            return entry

    def release(self, number: str) -> bool:
        """Undo the reservation of pending entry `number` if no later number was taken.

        Returns True when the entry was removed and its number given back; False when it stays
        pending (a later number exists, so removing it would leave a gap).
        """
        with self.session() as s:
            entry = s.get(CertificateEntry, number)
            if entry is None or entry.pdf_sha256 is not None:
                return False
            counter = s.get(
                NumberCounter, (entry.lab_code, entry.series, entry.year), with_for_update=True
            )
            if counter is None or counter.last != entry.seq:
                _logger.warning("%s stays pending: later numbers were taken", number)
                return False
            counter.last -= 1
            s.add(counter)
            s.delete(entry)
            s.commit()
            return True

    def record_failed(self, failed: FailedVerification) -> None:
        """Keep the results of an instrument that failed verification."""
        with self.session() as s:
            s.add(failed)
            s.commit()

    # -- reading ---------------------------------------------------------------------------

    def get(self, number: str) -> CertificateEntry | None:
        """The entry with `number`, or None."""
        with self.session() as s:
            return s.get(CertificateEntry, number)

    def by_pdf_sha256(self, sha256: str) -> CertificateEntry | None:
        """The entry whose signed PDF has this SHA-256 (hex), or None."""
        with self.session() as s:
            return s.exec(
                select(CertificateEntry).where(CertificateEntry.pdf_sha256 == sha256.lower())
            ).first()

    def by_ref(self, lab_code: str, ref: str) -> CertificateEntry | None:
        """The entry issued for input reference `ref` by lab `lab_code`, or None."""
        with self.session() as s:
            return s.exec(
                select(CertificateEntry).where(
                    CertificateEntry.lab_code == lab_code, CertificateEntry.ref == ref
                )
            ).first()

    def pending(self, lab_code: str | None = None) -> list[CertificateEntry]:
        """Entries reserved but not completed (a crash or a failure left them)."""
        with self.session() as s:
            q = select(CertificateEntry).where(col(CertificateEntry.pdf_sha256).is_(None))
            if lab_code is not None:
                q = q.where(CertificateEntry.lab_code == lab_code)
            return list(s.exec(q.order_by(col(CertificateEntry.issued_at))))

    def entries(
        self, *, kind: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[CertificateEntry]:
        """Entries, newest first."""
        with self.session() as s:
            q = select(CertificateEntry)
            if kind:
                q = q.where(CertificateEntry.kind == kind)
            q = q.order_by(
                col(CertificateEntry.issued_at).desc(),
                col(CertificateEntry.number).desc(),
            )
            return list(s.exec(q.offset(offset).limit(limit)))

    def count(self) -> int:
        """How many entries the ledger holds (pending included)."""
        with self.session() as s:
            return int(s.exec(select(func.count()).select_from(CertificateEntry)).one())

    def events(self, number: str) -> list[LedgerEvent]:
        """The events of certificate `number`, oldest first."""
        with self.session() as s:
            return list(
                s.exec(
                    select(LedgerEvent)
                    .where(LedgerEvent.number == number)
                    .order_by(col(LedgerEvent.id))
                )
            )

    def status(self, entry: CertificateEntry, *, today: date) -> tuple[Status, LedgerEvent | None]:
        """The status of `entry` on `today`, and the event that decided it (if any)."""
        if entry.is_pending:
            return Status.PENDING, None
        for ev in reversed(self.events(entry.number)):
            if ev.kind == EventKind.REVOKED:
                return Status.REVOKED, ev
            if ev.kind == EventKind.SUPERSEDED:
                return Status.SUPERSEDED, ev
        if entry.valid_until is not None and today > entry.valid_until:
            return Status.EXPIRED, None
        return Status.VALID, None

    def add_event(self, ev: LedgerEvent) -> None:
        """Append `ev` (history is never rewritten)."""
        with self.session() as s:
            s.add(ev)
            s.commit()


def _safe_url(url: str) -> str:
    # Never print a database password.
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the configured ledger URL>"


def utc(dt: datetime) -> datetime:
    """`dt` as an aware UTC datetime (SQLite hands back naive ones)."""
    return _utc(dt)
