"""The `Ledger`: one row per certificate, gapless numbers, and an append-only event history.

The tables (`certissuer.ledger.tables`) live on an SQLite file by default (WAL,
synchronous=FULL, a busy timeout) or on PostgreSQL by URL. Numbers are unique and gapless per
lab, series and year ("HC-2026-000001"), allocated from a counter row locked in the allocating
transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE``).

Issuing is two short transactions around the slow work (render and sign), so that several
processes can render and sign at once:

1. `Ledger.reserve_with` takes the next number and writes a *pending* entry holding the full data;
2. the caller renders, signs and writes the PDF;
3. `Ledger.complete` records the PDF's SHA-256 and appends the ``issued`` event.

If step 2 fails, `Ledger.release` removes the pending entry and gives the number back when it is
still the newest one; otherwise the entry stays pending, holding its number and data, and a
rerun completes it (`Ledger.pending`). So a number is never skipped.

One lab, one ledger (issue 16): `Ledger.open` with a lab code says on the log (standard error
for the command line) when it creates a new, empty ledger, and `Ledger.bind` records the lab and
profile a ledger was made for and refuses another lab's profile. A verification stamp number is
used once per lab: `reserve_with` claims it in the transaction that takes the number, under the
key of ``ledger_stamp``, so a refused stamp takes no number.

Readers that must never write (the verification page and its PDF workers) open the ledger with
`Ledger.open_readonly`, which the database itself holds to: a write through it fails.

>>> ledger = Ledger.open("sqlite:///ledger.db")  # doctest: +SKIP
>>> entry = ledger.reserve_with("L1", "HC", 2026, build_entry)  # doctest: +SKIP
>>> entry.number, entry.is_pending  # doctest: +SKIP
('HC-2026-000001', True)
>>> Ledger.open_readonly("sqlite:///ledger.db").event_count(entry.number)  # doctest: +SKIP
0
"""

import logging
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, delete, event, func, inspect
from sqlalchemy import select as sa_select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, SQLModel, col, create_engine, select

import certissuer.ledger.claims as claims
from certissuer import merkle
from certissuer._vn import LATIN_FOLD, local_date, number_key, search_key
from certissuer.errors import AmbiguousNumber, ForeignLedger, IssueRefused, LedgerError
from certissuer.ledger.audit import AuditReport, Witness, run_audit
from certissuer.ledger.signatures import (
    Standing,
    approval_awaited,
    checkpoint_problem,
    event_problem,
    sign_event,
    sign_report_record,
    status_from,
)
from certissuer.ledger.tables import (
    BatchClaim,
    CertificateEntry,
    Checkpoint,
    EventKind,
    FailedVerification,
    LedgerEvent,
    LedgerLab,
    LogHead,
    LogLeaf,
    NumberCounter,
    ReportRecord,
    ScanFile,
    StampClaim,
    Status,
    checkpoint_json,
    format_number,
    leaf_data,
    utc,
)
from certissuer.token import TokenKey, TokenPublicKey, token_key_id

if TYPE_CHECKING:
    from certissuer.ledger.storage import PdfArchive

__all__ = ["Failure", "Ledger"]


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed verification: the notice of failure issued for it, or (no notice) the
    results recorded when a failed instrument was refused."""

    notice: CertificateEntry | None
    """The notice of failure (kind ``failure``), or None for a failure only recorded."""
    earlier: str | None
    """The earlier certificate of the instrument the notice made no longer valid, if any."""
    recorded: FailedVerification | None = None
    """The recorded results, when no notice was issued."""

    @property
    def at(self) -> datetime:
        """When the notice was issued or the failure recorded (UTC)."""
        if self.notice is not None:
            return utc(self.notice.issued_at)
        assert self.recorded is not None
        return utc(self.recorded.recorded_at)


_logger = logging.getLogger(__name__)


_FOLD_FUNCTION = "certissuer_fold"
"""The SQL function SQLite connections get for `search_key` (PostgreSQL uses ``translate``)."""


def _sqlite_fold(value: str | None) -> str | None:
    return None if value is None else search_key(value)


def _add_fold_function(dbapi_conn: sqlite3.Connection) -> None:
    dbapi_conn.create_function(_FOLD_FUNCTION, 1, _sqlite_fold, deterministic=True)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN IMMEDIATE itself (pysqlite recipe).
        dbapi_conn.isolation_level = None
        _add_fold_function(dbapi_conn)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock at once (no upgrade deadlocks); readers take none: in
        # WAL mode they see the last commit and neither wait for nor delay a writer.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_READ_ONLY = "certissuer_read_only"
"""Execution option of the engine behind `Ledger.session(read_only=True)`."""


def _sqlite_readonly_engine(url: str) -> Engine:
    """An engine on the SQLite file of `url` that cannot write it (``mode=ro``, query_only)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise LedgerError("a read-only ledger needs a file, not an in-memory SQLite database")
    path = Path(database).resolve()
    if not path.is_file():
        raise LedgerError(
            f"the ledger {path} does not exist",
            hint="issue a certificate first, or fix [ledger] url",
        )
    uri = path.as_uri() + "?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA query_only=1")
        _add_fold_function(conn)
        return conn

    # An explicit QueuePool: SQLAlchemy would pick a single-connection pool for a creator.
    return create_engine(
        "sqlite://", creator=connect, poolclass=QueuePool, pool_size=8, max_overflow=32
    )


def _pg_readonly_engine(url: str) -> Engine:
    """An engine on the PostgreSQL database of `url` whose sessions are all ``READ ONLY``."""
    # Autocommit: a reader needs no transaction, and so no BEGIN and ROLLBACK round trips
    # around each query; a connection that died is replaced when a query on it fails.
    engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=10, max_overflow=30)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        # Every statement of the session, in or out of a transaction, is read-only.
        cur = dbapi_conn.cursor()
        cur.execute("SET default_transaction_read_only = on")
        cur.close()
        dbapi_conn.commit()

    return engine


_NUMBER = re.compile(r"(?P<series>.+)-(?P<year>[0-9]{4})-(?P<seq>[0-9]{1,9})")
"""A number's key (`number_key`): series, year and sequence number, as `format_number` joins
them."""

_EVENT_COUNT = (
    sa_select(func.count())
    .select_from(LedgerEvent)
    .where(col(LedgerEvent.number) == bindparam("number"))
)
"""`Ledger.event_count`'s query, compiled once per ledger for its database's driver."""


class Ledger:
    """Access to the ledger tables through one SQLAlchemy engine.

    `ledger_key` is the lab's ledger key (the QR token key): every event written through
    this ledger is signed with it unless a call passes its own. Without one, events are written
    unsigned, and verification ignores them (`standing`).
    """

    def __init__(self, engine: Engine, *, ledger_key: TokenKey | None = None) -> None:
        self.engine = engine
        self.ledger_key = ledger_key
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._reader = engine.execution_options(**{_READ_ONLY: True})
        self._event_count_sql: tuple[str, bool] | None = None
        """`_EVENT_COUNT` in the driver's SQL, and whether it takes positional parameters."""
        self._driver_error: type[Exception] = getattr(engine.dialect.dbapi, "Error", OSError)
        """The driver's base error (PEP 249): raw driver calls raise it unwrapped."""

    @classmethod
    def open(
        cls,
        url: str,
        *,
        create: bool = True,
        ledger_key: TokenKey | None = None,
        lab_code: str | None = None,
        profile: Path | None = None,
    ) -> "Ledger":
        """Open the ledger at `url` (``sqlite:///path`` or ``postgresql+psycopg://…``).

        With `create`, a new database gets the current schema and an older one is upgraded
        (Alembic); creating a new, empty ledger is logged as a warning naming its file (or
        URL), so that a lab running from another folder sees it did not reach its ledger.
        Without `create`, the schema must already be current. `ledger_key` signs the events
        written (see `Ledger`). With `lab_code`, the ledger is bound to that lab and `profile`
        when `create` (`bind`, which may record the lab), and only checked against them
        otherwise (`check_lab`, which writes nothing): a command that reads never writes.
        Raises `LedgerError` when the database cannot be reached or belongs to another lab.
        """
        try:
            if url.startswith("sqlite"):
                database = make_url(url).database
                if create and database and database != ":memory:":
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                elif database and database != ":memory:" and not Path(database).is_file():
                    # Reading a ledger that is not there must not leave an empty file behind.
                    raise LedgerError(
                        f"there is no ledger at {Path(database).resolve()}",
                        hint="issue a certificate first, or set [ledger] url in the lab "
                        "profile (a relative path is relative to the profile)",
                    )
                engine = create_engine(url, connect_args={"timeout": 30})
                _sqlite_setup(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            ledger = cls(engine, ledger_key=ledger_key)
            new = False
            if create:
                new = not inspect(engine).has_table(CertificateEntry.__tablename__)
                ledger.upgrade()
                if new:
                    _logger.warning("created a new, empty ledger at %s", ledger.where)
            if lab_code is not None and inspect(engine).has_table(LedgerLab.__tablename__):
                if create:
                    ledger.bind(lab_code, profile, new=new)
                else:
                    ledger.check_lab(lab_code, profile)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the ledger at {_safe_url(url)}: {exc}") from exc
        return ledger

    @property
    def where(self) -> str:
        """The ledger as a person finds it: its SQLite file, or its URL without a password."""
        url = self.engine.url
        if self.engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:"):
            return str(Path(url.database or "").resolve())
        return url.render_as_string(hide_password=True)

    def lab(self) -> LedgerLab | None:
        """The lab this ledger belongs to (`bind`), or None before a lab has opened it."""
        with self.session(read_only=True) as s:
            return s.get(LedgerLab, 1)

    def bind(self, lab_code: str, profile: Path | None, *, new: bool = False) -> LedgerLab:
        """Make this ledger lab `lab_code`'s (read from `profile`), or check that it is.

        One lab, one ledger (issue 16). The first lab that opens a ledger is written into it
        with its profile's absolute path: a `new` ledger quietly, an existing one that knew no
        lab (made before revision 0007) with a warning that it adopts this lab. Afterwards a
        profile of another lab code is refused with `LedgerError`; the same lab from another
        profile path (a moved or copied profile) is allowed with a warning (`check_lab`).
        Returns the row.
        """
        where = _profile_path(profile)
        row = self.lab()
        if row is None:
            with self.session() as s:
                s.execute(
                    self._insert_ignore(
                        LedgerLab,
                        id=1,
                        lab_code=lab_code,
                        profile=where,
                        bound_at=datetime.now(UTC),
                        adopted=not new,
                    )
                )
                s.commit()
                row = s.get(LedgerLab, 1)  # ours, or another process's that bound it first
            assert row is not None
            if row.lab_code == lab_code and row.profile == where and row.adopted:
                _logger.warning(
                    "the ledger at %s did not record its lab: it is now lab %s's (profile %s)",
                    self.where,
                    lab_code,
                    where or "none",
                )
        self._same_lab(row, lab_code, where)
        return row

    def check_lab(self, lab_code: str, profile: Path | None) -> LedgerLab | None:
        """Check, without writing, that this ledger is lab `lab_code`'s (read from `profile`).

        The read-only half of `bind`, for commands that only read (and for `open_readonly`):
        a ledger recorded for another lab code is refused with `LedgerError` (exit 7); the same
        lab from another profile path is allowed with a warning. A ledger that has recorded no
        lab yet is read as it is and stays unbound (the next issue binds it). Returns the row,
        or None when there is none.
        """
        row = self.lab()
        if row is not None:
            self._same_lab(row, lab_code, _profile_path(profile))
        return row

    def _same_lab(self, row: LedgerLab, lab_code: str, where: str) -> None:
        """Refuse lab `lab_code` (profile `where`) when `row` records another lab."""
        if row.lab_code != lab_code:
            raise ForeignLedger(
                f"the ledger at {self.where} belongs to lab {row.lab_code} (profile "
                f"{row.profile or 'not recorded'}), not to lab {lab_code} (profile "
                f"{where or 'none'})",
                hint="each lab keeps its own ledger: check --config and [ledger] url "
                "(or $CERTISSUER_LEDGER_URL)",
            )
        if where and row.profile and row.profile != where:
            _logger.warning(
                "the ledger at %s was made for the profile %s; lab %s now opens it with %s",
                self.where,
                row.profile,
                lab_code,
                where,
            )

    @classmethod
    def open_readonly(
        cls, url: str, *, lab_code: str | None = None, profile: Path | None = None
    ) -> "Ledger":
        """Open the ledger at `url` so that no statement can change it.

        The database enforces it, not this class: SQLite is opened through a ``mode=ro`` URI
        with ``PRAGMA query_only``, in plain deferred read transactions, so readers never take
        the write lock that issuing needs; PostgreSQL sessions are set to
        ``default_transaction_read_only`` on connect. Any write through the ledger returned
        then fails with `LedgerError` (or the database's own error). The schema is not
        touched, so it must be current. With `lab_code`, a ledger recorded for another lab is
        refused (`check_lab`: one lab, one ledger, checked by reading only). Raises
        `LedgerError` when the database cannot be reached, when `url` names an in-memory or
        missing SQLite file, or when the ledger belongs to another lab.
        """
        try:
            if url.startswith("sqlite"):
                engine = _sqlite_readonly_engine(url)
            else:
                engine = _pg_readonly_engine(url)
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except LedgerError:
            raise
        except Exception as exc:
            raise LedgerError(
                f"cannot open the ledger at {_safe_url(url)} read-only: {exc}"
            ) from exc
        ledger = cls(engine)
        if lab_code is not None:
            try:
                if inspect(engine).has_table(LedgerLab.__tablename__):
                    ledger.check_lab(lab_code, profile)
            except (LedgerError, SQLAlchemyError) as exc:
                engine.dispose()
                if isinstance(exc, LedgerError):
                    raise
                raise LedgerError(
                    f"cannot read the ledger's lab at {_safe_url(url)}: {exc}"
                ) from exc
        return ledger

    def close(self) -> None:
        """Close the pooled database connections; the ledger opens new ones if used again."""
        self.engine.dispose()

    def upgrade(self) -> str:
        """Bring the schema to the newest revision; return the revision it ended at.

        A new, empty database is created from the models and stamped; a database made before
        migrations existed (the first schema, no ``alembic_version``) is stamped at the first
        revision, then upgraded. Upgrades keep every row. Events written before events were
        signed stay unsigned until `sign_unsigned` signs them (``certissuer ledger upgrade``).
        """
        from certissuer.ledger.migrations import upgrade

        return upgrade(self.engine)

    def sign_unsigned(
        self, ledger_key: TokenKey, *, at: datetime
    ) -> tuple[list[LedgerEvent], list[tuple[LedgerEvent, str]]]:
        """Sign, marked "signed at upgrade" (`at`), the unsigned events a checkpoint vouches for.

        Events written before events were signed (revision 0006) carry no signature. Signing
        them vouches for what the rows hold now, so only an event whose row still hashes to
        its log leaf, inside the newest checkpoint that `ledger_key` signed and whose root the
        stored leaves reproduce, and before the first event signed when it was written (every
        later event was written by a version that signs), is signed: a row an insider
        inserted or edited is not. Returns (signed events, events left unsigned with why).
        """
        public = [ledger_key.public]
        left: list[tuple[LedgerEvent, str]] = []
        with self.session() as s:
            s.get(LogHead, 1, with_for_update=True)  # no append while we look
            leaves = list(s.exec(select(LogLeaf).order_by(col(LogLeaf.idx))))
            hashes = [bytes.fromhex(leaf.leaf_hash) for leaf in leaves]
            covered = 0
            for cp in s.exec(select(Checkpoint).order_by(col(Checkpoint.id).desc())):
                if checkpoint_problem(cp, public, hashes) is None:
                    covered = cp.tree_size
                    break
            leaf_of = {leaf.event_id: leaf for leaf in leaves}
            signed_when_written = s.exec(
                select(LedgerEvent).where(
                    col(LedgerEvent.signature) != "", col(LedgerEvent.backfilled_at).is_(None)
                )
            ).all()
            for ev in sorted(
                (ev for ev in signed_when_written if (ev.id or -1) in leaf_of),
                key=lambda ev: leaf_of[ev.id or -1].idx,
            ):
                if event_problem(ev, s.get(CertificateEntry, ev.number), public) is None:
                    covered = min(covered, leaf_of[ev.id or -1].idx)
                    break
            unsigned = s.exec(
                select(LedgerEvent)
                .where(col(LedgerEvent.signature) == "")
                .order_by(col(LedgerEvent.id))
            ).all()
            signed: list[LedgerEvent] = []
            for ev in unsigned:
                entry = s.get(CertificateEntry, ev.number)
                leaf = leaf_of.get(ev.id or -1)
                if leaf is None:
                    left.append((ev, "it is not in the log"))
                elif merkle.leaf_hash(leaf_data(ev, entry)).hex() != leaf.leaf_hash:
                    left.append((ev, f"it differs from log leaf {leaf.idx}"))
                elif leaf.idx >= covered:
                    left.append(
                        (
                            ev,
                            f"leaf {leaf.idx} is not both under a checkpoint signed with this "
                            "key and before the first event signed when it was written",
                        )
                    )
                else:
                    ev.backfilled_at = at
                    sign_event(ev, entry, ledger_key)
                    s.add(ev)
                    signed.append(ev)
            s.commit()
        return signed, left

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session whose errors come out as `LedgerError`.

        With `read_only`, the session must not write: on SQLite its transactions take no
        lock, so lookups (verify, ``ledger list``, a batch's "already issued?") never queue
        behind the writers that issue certificates.
        """
        try:
            engine = self._reader if read_only else self.engine
            with Session(engine, expire_on_commit=False) as session:
                yield session
        except OperationalError as exc:
            raise LedgerError(f"the ledger database failed: {exc.orig}") from exc

    # -- issuing ---------------------------------------------------------------------------

    def reserve_with(
        self,
        lab_code: str,
        series: str,
        year: int,
        build: Callable[[str, int], CertificateEntry],
        *,
        claim: str = "",
        stamp: tuple[str, int] | None = None,
        replaces: str | None = None,
    ) -> CertificateEntry:
        """Allocate the next gapless number and store the pending entry `build(number, seq)`.

        Both happen in one transaction holding the counter lock. `stamp` is the certificate's
        verification stamp (series, number as `certissuer.registry.parse_stamp` splits it),
        claimed for this lab in the same transaction: a stamp another certificate holds is
        refused with `IssueRefused` and no number is taken, also when two processes claim it
        at once (the key of ``ledger_stamp`` decides). An amendment (`replaces`: the number it
        replaces) takes over that certificate's stamp. Raises `LedgerError` if the entry's ref
        was already used by this lab.
        """
        with self.session() as s:
            # Make sure the counter row exists before locking it: two first issues of a series
            # must not both find no row and both take number 1 (PostgreSQL waits here for the
            # other transaction, then does nothing).
            s.execute(
                self._insert_ignore(
                    NumberCounter, lab_code=lab_code, series=series, year=year, last=0
                )
            )
            counter = s.exec(
                select(NumberCounter)
                .where(
                    NumberCounter.lab_code == lab_code,
                    NumberCounter.series == series,
                    NumberCounter.year == year,
                )
                .with_for_update()
            ).first()
            assert counter is not None
            counter.last += 1
            entry = build(format_number(series, year, counter.last), counter.last)
            # The counter decides; the builder cannot file an entry under another key.
            entry.lab_code, entry.series, entry.year = lab_code, series, year
            entry.seq = counter.last
            entry.claim, entry.claimed_at = claim, datetime.now(UTC)
            s.add(counter)
            s.add(entry)
            try:
                if stamp is not None:
                    s.flush()  # the entry first: the stamp's row refers to it
                    self._claim_stamp(s, lab_code, stamp, entry, replaces)
                s.commit()
            except IntegrityError as exc:
                s.rollback()
                held = None if stamp is None else s.get(StampClaim, (lab_code, *stamp))
                if stamp is not None and held is not None and held.certificate != entry.number:
                    raise _stamp_refused(entry.ref, stamp, held.certificate) from exc
                holder = s.get(CertificateEntry, entry.number)
                if holder is not None and holder.lab_code != lab_code:
                    raise LedgerError(
                        f"number {entry.number} is already in the ledger for another lab",
                        hint="labs that share a ledger need their own series prefix "
                        "([numbering] in the lab profile)",
                    ) from exc
                taken = s.exec(
                    select(CertificateEntry).where(
                        CertificateEntry.lab_code == lab_code, CertificateEntry.ref == entry.ref
                    )
                ).first()
                if taken is not None:
                    raise LedgerError(
                        f"ref '{entry.ref}' is already in the ledger for lab {lab_code}"
                    ) from exc
                raise LedgerError(f"could not reserve {entry.number}: {exc.orig}") from exc
            _logger.debug("reserved %s for ref %s", entry.number, entry.ref)
            return entry

    @staticmethod
    def _claim_stamp(
        s: Session,
        lab_code: str,
        stamp: tuple[str, int],
        entry: CertificateEntry,
        replaces: str | None,
    ) -> None:
        # Inside the reservation: raising here rolls the counter back with it (no number
        # taken). A concurrent claim of the same stamp fails the insert (IntegrityError).
        held = s.get(StampClaim, (lab_code, *stamp), with_for_update=True)
        if held is None:
            s.add(
                StampClaim(
                    lab_code=lab_code, series=stamp[0], number=stamp[1], certificate=entry.number
                )
            )
        elif replaces is not None and held.certificate == replaces:
            held.certificate, held.replaced = entry.number, replaces
            s.add(held)
        elif held.certificate != entry.number:
            raise _stamp_refused(entry.ref, stamp, held.certificate)
        s.flush()

    def stamp_holder(self, lab_code: str, stamp: tuple[str, int]) -> str | None:
        """The certificate number holding verification stamp `stamp` of lab `lab_code`, or None."""
        with self.session(read_only=True) as s:
            held = s.get(StampClaim, (lab_code, *stamp))
            return held.certificate if held is not None else None

    def _insert_ignore(self, table: type[SQLModel], **values: Any) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` in this database's dialect."""
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).values(**values).on_conflict_do_nothing()
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(**values).on_conflict_do_nothing()

    def complete(
        self,
        number: str,
        *,
        pdf_sha256: str,
        pdf_path: str,
        signer: str,
        at: datetime,
        scans: Sequence[tuple[str, str, int]] = (),
        ledger_key: TokenKey | None = None,
        awaiting_approval: bool = False,
    ) -> CertificateEntry:
        """Record the signed PDF of pending entry `number` and log its ``issued`` event; a
        batch claim on its ref (`claim_ref`) ends in the same transaction.

        `awaiting_approval`: the PDF leaves the head's approval field empty; an
        ``awaiting_approval`` event is logged with the issued one, and the certificate is
        not in force until `approve` records the approval.

        `scans` lists the original scan files of an electronic copy as
        ``(file name, SHA-256, pages)``; they are stored in the same transaction. `ledger_key`
        signs the event (default: the ledger's `ledger_key`).
        """
        with self.session() as s:
            entry = s.get(CertificateEntry, number, with_for_update=True)
            if entry is None:
                raise LedgerError(f"certificate {number} is not in the ledger")
            if entry.pdf_sha256 is not None:
                raise LedgerError(f"certificate {number} is already complete")
            entry.pdf_sha256 = pdf_sha256.lower()
            entry.pdf_path = pdf_path
            entry.signer = signer
            entry.claim, entry.claimed_at = "", None
            s.add(entry)
            # A batch run's claim on the record ends with its certificate (one transaction
            # fewer per certificate than releasing it afterwards).
            s.execute(
                delete(BatchClaim).where(
                    col(BatchClaim.lab_code) == entry.lab_code, col(BatchClaim.ref) == entry.ref
                )
            )
            for position, (name, sha, pages) in enumerate(scans, 1):
                s.add(
                    ScanFile(
                        number=number, position=position, file_name=name, sha256=sha, pages=pages
                    )
                )
            ev = LedgerEvent(
                number=number, kind=EventKind.ISSUED, at=at, pdf_sha256=entry.pdf_sha256
            )
            self._append(s, ev, entry, ledger_key or self.ledger_key)
            if awaiting_approval:
                waiting = LedgerEvent(number=number, kind=EventKind.AWAITING_APPROVAL, at=at)
                self._append(s, waiting, entry, ledger_key or self.ledger_key)
            s.commit()
            return entry

    @staticmethod
    def _append(
        s: Session, ev: LedgerEvent, entry: CertificateEntry | None, signer: TokenKey | None
    ) -> LogLeaf:
        # The head row serialises appends (SQLite: the whole transaction is already
        # BEGIN IMMEDIATE; PostgreSQL: the row lock), so leaf indexes are gapless.
        head = s.get(LogHead, 1, with_for_update=True)
        if head is None:  # made with the schema (migrations); its absence is damage
            raise LedgerError(
                "the ledger's log head row is missing", hint="run 'certissuer ledger audit'"
            )
        if signer is not None:
            sign_event(ev, entry, signer)
        else:
            _logger.warning(
                "%s: %s event written without the lab's ledger key: it will not count",
                ev.number,
                ev.kind,
            )
        s.add(ev)
        s.flush()
        assert ev.id is not None
        leaf = LogLeaf(
            idx=head.size, event_id=ev.id, leaf_hash=merkle.leaf_hash(leaf_data(ev, entry)).hex()
        )
        head.size += 1
        s.add(head)
        s.add(leaf)
        return leaf

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
            # Its stamp is free again (or back with the certificate an amendment replaced).
            for held in s.exec(select(StampClaim).where(StampClaim.certificate == number)):
                if held.replaced is not None:
                    held.certificate, held.replaced = held.replaced, None
                    s.add(held)
                else:
                    s.delete(held)
            s.flush()
            s.delete(entry)
            s.commit()
            return True

    def record_failed(self, failed: FailedVerification) -> None:
        """Keep the results of an instrument that failed verification.

        The same results recorded again (same lab, ref and data digest: a run's check, then
        its issue, or a rerun) add nothing, so each failure counts once.
        """
        with self.session() as s:
            known = s.exec(
                select(FailedVerification.id).where(
                    FailedVerification.lab_code == failed.lab_code,
                    FailedVerification.ref == failed.ref,
                    FailedVerification.data_digest == failed.data_digest,
                )
            ).first()
            if known is None:
                s.add(failed)
                s.commit()

    # -- reading ---------------------------------------------------------------------------

    def get(self, number: str) -> CertificateEntry | None:
        """The entry with `number` as people type it, or None.

        `number` may be written as printed ("KĐ-2026-000001"), without marks or in lower
        case ("KD-2026-000001", "kđ-2026-000001"), or as its PDF's file name or path
        ("out/KD-2026-000001.pdf"): see `resolve`.
        """
        with self.session(read_only=True) as s:
            return self._lookup(s, number)

    def resolve(self, number: str) -> str | None:
        """The ledger's own spelling of `number` as people type it, or None when no entry fits.

        The exact number first; otherwise the entry whose number has the same
        `certissuer._vn.number_key` (marks dropped, Đ as D, upper case, a PDF's file name or
        path reduced to its stem). Raises `LedgerError` when several entries fit (two series
        that differ only by marks, such as "KĐ" and "KD"): the number must then be typed as
        printed.
        """
        entry = self.get(number)
        return entry.number if entry is not None else None

    def _resolved(self, number: str) -> str:
        """`resolve`d `number`, or `number` as given when no entry fits (for the messages)."""
        return self.resolve(number) or number

    @staticmethod
    def _lookup(s: Session, number: str) -> CertificateEntry | None:
        entry = s.get(CertificateEntry, number)
        if entry is not None:
            return entry
        key = number_key(number)
        parts = _NUMBER.fullmatch(key)
        if parts is None:
            return None
        # Numbers are "<series>-<year>-<seq:06d>" (`format_number`): the year and sequence
        # number narrow it to a few rows (one per series), whose numbers are then compared
        # by key.
        candidates = s.exec(
            select(CertificateEntry).where(
                CertificateEntry.year == int(parts["year"]),
                CertificateEntry.seq == int(parts["seq"]),
            )
        ).all()
        found = [e for e in candidates if number_key(e.number) == key]
        if len(found) > 1:
            names = ", ".join(sorted(e.number for e in found))
            raise AmbiguousNumber(
                f"{number!r} fits several certificates: {names}",
                hint="type the number exactly as printed on the certificate",
            )
        return found[0] if found else None

    def by_pdf_sha256(self, sha256: str) -> CertificateEntry | None:
        """The entry whose signed PDF has this SHA-256 (hex), or None."""
        with self.session(read_only=True) as s:
            return s.exec(
                select(CertificateEntry).where(CertificateEntry.pdf_sha256 == sha256.lower())
            ).first()

    def by_ref(self, lab_code: str, ref: str) -> CertificateEntry | None:
        """The entry issued for input reference `ref` by lab `lab_code`, or None."""
        with self.session(read_only=True) as s:
            return s.exec(
                select(CertificateEntry).where(
                    CertificateEntry.lab_code == lab_code, CertificateEntry.ref == ref
                )
            ).first()

    def pending(self, lab_code: str | None = None) -> list[CertificateEntry]:
        """Entries reserved but not completed (a crash or a failure left them)."""
        with self.session(read_only=True) as s:
            q = select(CertificateEntry).where(col(CertificateEntry.pdf_sha256).is_(None))
            if lab_code is not None:
                q = q.where(CertificateEntry.lab_code == lab_code)
            return list(s.exec(q.order_by(col(CertificateEntry.issued_at))))

    def entries(
        self, *, kind: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[CertificateEntry]:
        """Entries, newest first."""
        with self.session(read_only=True) as s:
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
        with self.session(read_only=True) as s:
            return int(s.exec(select(func.count()).select_from(CertificateEntry)).one())

    def token_key_dates(self) -> dict[str, tuple[date, date]]:
        """The first and last issue date of the tokens each key signed, by key id (hex).

        One grouped query on the tokens' first eight characters, which hold the token's
        version and key id (`certissuer.token.token_key_id`). Raises `LedgerError` if the read
        fails.
        """
        head = func.substr(CertificateEntry.token, 1, 8)
        first, last = func.min(CertificateEntry.issue_date), func.max(CertificateEntry.issue_date)
        dates: dict[str, tuple[date, date]] = {}
        with self.session(read_only=True) as s:
            rows = s.execute(sa_select(head, first, last).group_by(head)).all()
        for prefix, low, high in rows:
            kid = token_key_id(str(prefix or ""))
            if kid is None or low is None or high is None:
                continue
            low, high = _as_date(low), _as_date(high)
            if kid in dates:
                low, high = min(low, dates[kid][0]), max(high, dates[kid][1])
            dates[kid] = (low, high)
        return dates

    def events(self, number: str) -> list[LedgerEvent]:
        """The events of certificate `number`, oldest first."""
        with self.session(read_only=True) as s:
            return list(
                s.exec(
                    select(LedgerEvent)
                    .where(LedgerEvent.number == number)
                    .order_by(col(LedgerEvent.id))
                )
            )

    def event_count(self, number: str) -> int:
        """How many events certificate `number` has (0 for an unknown number).

        Events are only ever appended, so the count tells a cache whether anything it holds
        about `number` changed (the verification page asks on every QR scan). The query goes
        straight through the database driver: SQLAlchemy's execution layer costs several times
        the indexed count itself. Raises `LedgerError` if the read fails.
        """
        if self._event_count_sql is None:
            compiled = _EVENT_COUNT.compile(dialect=self.engine.dialect)
            self._event_count_sql = (str(compiled), bool(compiled.positional))
        sql, positional = self._event_count_sql
        params: Any = (number,) if positional else {"number": number}
        try:
            conn = self.engine.raw_connection()
            try:
                cursor = conn.cursor()
                cursor.execute(sql, params)
                row = cursor.fetchone()
                cursor.close()
            finally:
                conn.close()  # back to the pool, which rolls back (PostgreSQL)
        except (SQLAlchemyError, self._driver_error) as exc:
            raise LedgerError(f"the ledger database failed: {exc}") from exc
        return int(row[0]) if row else 0

    def status(self, entry: CertificateEntry, *, today: date) -> tuple[Status, LedgerEvent | None]:
        """The status of `entry` on `today` as the rows say, and the event that decided it.

        This trusts every row: for the lab's own listings. A verdict takes its status from
        `standing`, which counts only events whose signatures check.
        """
        return status_from(entry, self.events(entry.number), today)

    def standing(
        self,
        entry: CertificateEntry,
        *,
        keys: Sequence[TokenPublicKey],
        today: date,
        at: datetime | None = None,
    ) -> Standing:
        """The status of `entry` on `today` from the events whose signatures check with `keys`.

        An event whose signature fails is ignored and listed in `Standing.rejected`. The entry
        is vouched for only by a signed ``issued`` event naming the PDF hash the entry holds.
        With `at`, the status at that moment (`status_from`): later events do not count yet.
        """
        good: list[LedgerEvent] = []
        rejected: list[tuple[LedgerEvent, str]] = []
        for ev in self.events(entry.number):
            problem = event_problem(ev, entry, keys)
            if problem is None:
                good.append(ev)
            else:
                rejected.append((ev, problem))
        issued = next((ev for ev in good if ev.kind == EventKind.ISSUED), None)
        issued_problem: str | None = None
        if issued is None:
            bad = [why for ev, why in rejected if ev.kind == EventKind.ISSUED]
            issued_problem = (
                f"its issued event does not check: {bad[0]}" if bad else "it has no issued event"
            )
        elif issued.pdf_sha256 != entry.pdf_sha256:
            issued_problem = (
                f"its signed issued event vouches for the PDF {issued.pdf_sha256}, "
                f"the entry now names {entry.pdf_sha256}"
            )
            issued = None
        status, event = status_from(entry, good, today, at=at)
        requested = any(
            ev.kind == EventKind.AWAITING_APPROVAL and (at is None or utc(ev.at) <= utc(at))
            for ev in good
        )
        return Standing(
            status, event, issued, issued_problem, tuple(rejected), approval_requested=requested
        )

    def add_event(self, ev: LedgerEvent, *, ledger_key: TokenKey | None = None) -> LedgerEvent:
        """Append `ev` to the history and the log (history is never rewritten), signed with
        `ledger_key` (default: the ledger's `ledger_key`)."""
        with self.session() as s:
            entry = s.get(CertificateEntry, ev.number)
            if entry is None or entry.is_pending:
                raise LedgerError(f"certificate {ev.number} is not an issued certificate")
            self._append(s, ev, entry, ledger_key or self.ledger_key)
            s.commit()
            return ev

    def revoke(
        self, number: str, *, reason: str, at: datetime, ledger_key: TokenKey | None = None
    ) -> LedgerEvent:
        """Revoke certificate `number` for `reason` (a new event; nothing is overwritten),
        signed with `ledger_key` (default: the ledger's `ledger_key`)."""
        if not reason.strip():
            raise LedgerError("a revocation needs a reason", hint="pass --reason")
        number = self._resolved(number)
        self._check_current(number, today=local_date(at), key=ledger_key or self.ledger_key)
        return self.add_event(
            LedgerEvent(number=number, kind=EventKind.REVOKED, at=at, reason=reason.strip()),
            ledger_key=ledger_key,
        )

    def fail_reverification(
        self,
        number: str,
        *,
        notice: str,
        reason: str,
        at: datetime,
        ledger_key: TokenKey | None = None,
    ) -> LedgerEvent | None:
        """Mark verification certificate `number` NO LONGER VALID: its instrument failed a
        later verification, for which the notice of failure `notice` was issued.

        A signed event like a revocation (nothing is overwritten). Returns the event, the one
        already recorded for `notice` (a rerun), or None when `number` is revoked, superseded
        or already no longer valid (nothing is added).
        """
        key = ledger_key or self.ledger_key
        number = self._resolved(number)
        entry = self.get(number)
        if entry is None or entry.is_pending:
            raise LedgerError(f"certificate {number} is not an issued certificate")
        for ev in self.events(number):
            if ev.kind == EventKind.FAILED_REVERIFICATION and ev.related_number == notice:
                return ev
        status = (
            self.standing(entry, keys=[key.public], today=local_date(at)).status
            if key is not None
            else self.status(entry, today=local_date(at))[0]
        )
        if status in (Status.REVOKED, Status.SUPERSEDED, Status.NO_LONGER_VALID):
            return None
        return self.add_event(
            LedgerEvent(
                number=number,
                kind=EventKind.FAILED_REVERIFICATION,
                at=at,
                reason=reason,
                related_number=notice,
            ),
            ledger_key=ledger_key,
        )

    def approve(
        self, number: str, *, approver: str, at: datetime, ledger_key: TokenKey | None = None
    ) -> LedgerEvent:
        """Record that `approver` (the head) signed the approval of certificate `number`,
        signed with `ledger_key` (default: the ledger's `ledger_key`).

        Raises `LedgerError` unless the certificate waits for approval.
        """
        number = self._resolved(number)
        entry = self.get(number)
        if entry is None or entry.is_pending:
            raise LedgerError(f"certificate {number} is not an issued certificate")
        if approval_awaited(self.events(number)) is None:
            raise LedgerError(
                f"certificate {number} is not waiting for approval",
                hint="'certissuer approve --pending' lists the certificates that are",
            )
        return self.add_event(
            LedgerEvent(number=number, kind=EventKind.APPROVED, at=at, reason=approver.strip()),
            ledger_key=ledger_key,
        )

    def awaiting_approval(self, lab_code: str | None = None) -> list[CertificateEntry]:
        """Issued certificates still waiting for the head's approval, oldest first.

        This trusts the rows (for the lab's own listing); a verdict counts signed events only.
        """
        with self.session(read_only=True) as s:
            q = (
                select(LedgerEvent)
                .where(
                    col(LedgerEvent.kind).in_(
                        [EventKind.AWAITING_APPROVAL.value, EventKind.APPROVED.value]
                    )
                )
                .order_by(col(LedgerEvent.id))
            )
            by_number: dict[str, list[LedgerEvent]] = {}
            for ev in s.exec(q):
                by_number.setdefault(ev.number, []).append(ev)
            waiting = [n for n, evs in by_number.items() if approval_awaited(evs) is not None]
            if not waiting:
                return []
            eq = select(CertificateEntry).where(col(CertificateEntry.number).in_(waiting))
            if lab_code is not None:
                eq = eq.where(CertificateEntry.lab_code == lab_code)
            return list(
                s.exec(eq.order_by(col(CertificateEntry.issued_at), col(CertificateEntry.number)))
            )

    def earlier_verification(
        self, lab_code: str, *, serial: str, model: str, before_ref: str
    ) -> CertificateEntry | None:
        """The newest issued verification certificate of lab `lab_code` for the instrument
        with `serial` and `model` (the same instrument), other than the record `before_ref`;
        None when the ledger holds none."""
        with self.session(read_only=True) as s:
            q = (
                select(CertificateEntry)
                .where(
                    CertificateEntry.lab_code == lab_code,
                    CertificateEntry.kind == "verification",
                    CertificateEntry.instrument_serial == serial,
                    CertificateEntry.instrument_model == model,
                    CertificateEntry.ref != before_ref,
                    col(CertificateEntry.pdf_sha256).is_not(None),
                )
                .order_by(
                    col(CertificateEntry.issued_at).desc(), col(CertificateEntry.number).desc()
                )
            )
            return s.exec(q).first()

    def failures(self, lab_code: str | None = None) -> list[Failure]:
        """Failed verifications, oldest first: each notice of failure issued (with the earlier
        certificate it made no longer valid) and each recorded failure without a notice."""
        with self.session(read_only=True) as s:
            q = select(CertificateEntry).where(
                CertificateEntry.kind == "failure", col(CertificateEntry.pdf_sha256).is_not(None)
            )
            fq = select(FailedVerification)
            if lab_code is not None:
                q = q.where(CertificateEntry.lab_code == lab_code)
                fq = fq.where(FailedVerification.lab_code == lab_code)
            notices = list(s.exec(q))
            recorded = list(s.exec(fq))
            numbers = [n.number for n in notices]
            earlier: dict[str, str] = {}
            if numbers:
                evs = s.exec(
                    select(LedgerEvent).where(
                        LedgerEvent.kind == EventKind.FAILED_REVERIFICATION,
                        col(LedgerEvent.related_number).in_(numbers),
                    )
                )
                earlier = {str(ev.related_number): ev.number for ev in evs}
        out = [Failure(n, earlier.get(n.number)) for n in notices]
        noticed = {(n.lab_code, n.ref) for n in notices}
        seen: set[tuple[str, str]] = set()
        for f in recorded:
            key = (f.lab_code, f.ref)
            if key in noticed or key in seen:
                continue  # a notice was issued for it, or it was recorded twice (a rerun)
            seen.add(key)
            out.append(Failure(None, None, recorded=f))
        return sorted(out, key=lambda f: f.at)

    def supersede(
        self,
        number: str,
        *,
        by: str,
        reason: str,
        at: datetime,
        ledger_key: TokenKey | None = None,
    ) -> LedgerEvent:
        """Mark `number` as superseded by the amended certificate `by` (ISO/IEC 17025 §7.8.8),
        signed with `ledger_key` (default: the ledger's `ledger_key`)."""
        key = ledger_key or self.ledger_key
        number, by = self._resolved(number), self._resolved(by)
        entry = self.get(number)
        for ev in self.events(number):
            if (
                ev.kind == EventKind.SUPERSEDED
                and ev.related_number == by
                and (key is None or event_problem(ev, entry, [key.public]) is None)
            ):
                return ev  # already recorded (a rerun of the same amendment)
        self._check_current(number, today=local_date(at), key=key)
        if self.get(by) is None:
            raise LedgerError(f"the replacement {by} is not in the ledger")
        return self.add_event(
            LedgerEvent(
                number=number, kind=EventKind.SUPERSEDED, at=at, reason=reason, related_number=by
            ),
            ledger_key=ledger_key,
        )

    def _check_current(self, number: str, *, today: date, key: TokenKey | None) -> CertificateEntry:
        entry = self.get(number)
        if entry is None:
            raise LedgerError(f"certificate {number} is not in the ledger")
        # With the lab's key at hand, only its signed events count (a forged revocation must
        # not stop a genuine one); without it, the rows as they are.
        status = (
            self.standing(entry, keys=[key.public], today=today).status
            if key is not None
            else self.status(entry, today=today)[0]
        )
        if status in (Status.REVOKED, Status.SUPERSEDED, Status.PENDING):
            raise LedgerError(f"certificate {number} is {status.value}; it cannot change now")
        return entry

    # -- crash recovery --------------------------------------------------------------------

    def claim_pending(
        self, claimant: str, *, lab_code: str | None = None, lease_seconds: float = 600
    ) -> list[CertificateEntry]:
        """Claim pending entries whose claimant is gone, for `claimant` to complete.

        An entry is free when its claimant process on this host no longer runs, or its claim
        is older than `lease_seconds` (another host). Each claim is a compare-and-set, so two
        repairing processes never take the same entry.
        """
        return [
            entry
            for entry in self.pending(lab_code)
            if entry.claim != claimant and self.claim_entry(entry, claimant, lease_seconds)
        ]

    def claim_entry(
        self, entry: CertificateEntry, claimant: str, lease_seconds: float = 600
    ) -> bool:
        """Take pending `entry` for `claimant` if it is free (see `claim_pending`), atomically.

        Returns True when `claimant` now holds it (also when it already did).
        """
        now = datetime.now(UTC)
        with self.session() as s:
            return claims.claim_entry(s, entry, claimant, now=now, lease_seconds=lease_seconds)

    def claim_ref(
        self, lab_code: str, ref: str, claimant: str, *, lease_seconds: float = 600
    ) -> bool:
        """Claim input record `ref` of a batch run for `claimant` (``host:pid``).

        The equivalent of ``SELECT … FOR UPDATE SKIP LOCKED`` that works on both back ends: an
        insert into ``batch_claim`` that only one worker can win. A claim whose holder died (or
        whose lease ran out, for another host) is taken over. Returns True when `claimant` holds
        the claim.
        """
        now = datetime.now(UTC)
        with self.session() as s:
            return claims.claim_ref(
                s, lab_code, ref, claimant, now=now, lease_seconds=lease_seconds
            )

    def release_ref(self, lab_code: str, ref: str, claimant: str) -> None:
        """Give up `claimant`'s claim on `ref` (the record is issued, or was refused)."""
        with self.session() as s:
            claims.release_ref(s, lab_code, ref, claimant)

    def unclaim(self, number: str, claimant: str) -> None:
        """Give up `claimant`'s claim on pending entry `number` (its issue failed)."""
        with self.session() as s:
            claims.unclaim(s, number, claimant)

    def scans(self, number: str) -> list[ScanFile]:
        """The original scan files recorded for electronic copy `number`, in page order."""
        with self.session(read_only=True) as s:
            return list(
                s.exec(
                    select(ScanFile)
                    .where(ScanFile.number == number)
                    .order_by(col(ScanFile.position))
                )
            )

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        *,
        number: str | None = None,
        paper_number: str | None = None,
        serial: str | None = None,
        customer: str | None = None,
        kind: str | None = None,
        issued_from: date | None = None,
        issued_to: date | None = None,
        status: Status | None = None,
        today: date,
        limit: int = 1000,
    ) -> list[tuple[CertificateEntry, Status]]:
        """Entries matching every given filter, newest first, each with its status on `today`.

        Text filters match in part, folded on both back ends: case and diacritics aside, Đ/đ
        as d ("vinh long" and "VĨNH LONG" find "Vĩnh Long", "KD-2026" finds "KĐ-2026-…");
        ``%`` and ``_`` match themselves.
        """
        with self.session(read_only=True) as s:
            q = select(CertificateEntry)
            for column, text in (
                (CertificateEntry.number, number),
                (CertificateEntry.paper_number, paper_number),
                (CertificateEntry.instrument_serial, serial),
                (CertificateEntry.customer_name, customer),
            ):
                if text and search_key(text):
                    q = q.where(self._folded(column).contains(search_key(text), autoescape=True))
            if kind:
                q = q.where(CertificateEntry.kind == kind)
            if issued_from:
                q = q.where(col(CertificateEntry.issue_date) >= issued_from)
            if issued_to:
                q = q.where(col(CertificateEntry.issue_date) <= issued_to)
            q = q.order_by(
                col(CertificateEntry.issued_at).desc(), col(CertificateEntry.number).desc()
            )
            rows = list(s.exec(q if status else q.limit(limit)))
        out = [(e, self.status(e, today=today)[0]) for e in rows]
        if status is not None:
            out = [(e, st) for e, st in out if st is status][:limit]
        return out

    def _folded(self, column: Any) -> Any:
        """`column` as `search_key` folds it, in this database's SQL: a function of ours on
        SQLite (registered on connect), ``lower(translate(…))`` on PostgreSQL."""
        if self.is_sqlite:
            return getattr(func, _FOLD_FUNCTION)(col(column))
        source, target = LATIN_FOLD
        return func.lower(func.translate(col(column), source, target))

    # -- the Merkle log --------------------------------------------------------------------

    def log_size(self) -> int:
        """How many leaves the log holds."""
        with self.session(read_only=True) as s:
            head = s.get(LogHead, 1)
            return head.size if head else 0

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        """The stored leaf hashes, in order (the first `size`)."""
        with self.session(read_only=True) as s:
            q = select(LogLeaf.leaf_hash).order_by(col(LogLeaf.idx))
            if size is not None:
                q = q.where(col(LogLeaf.idx) < size)
            return [bytes.fromhex(h) for h in s.exec(q)]

    def checkpoint(self, signer: TokenKey, *, lab_code: str, at: datetime) -> Checkpoint:
        """Sign and store a checkpoint of the whole log as it is now."""
        with self.session() as s:
            head = s.get(LogHead, 1, with_for_update=True)
            size = head.size if head else 0
            hashes = [
                bytes.fromhex(h)
                for h in s.exec(
                    select(LogLeaf.leaf_hash)
                    .where(col(LogLeaf.idx) < size)
                    .order_by(col(LogLeaf.idx))
                )
            ]
            root = merkle.tree_hash(hashes).hex()
            cp = Checkpoint(
                lab_code=lab_code,
                tree_size=size,
                root_hash=root,
                at=at,
                kid=signer.public.kid.hex(),
                signature="",
            )
            cp.signature = signer.sign(cp.message()).hex()
            s.add(cp)
            s.commit()
            return cp

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""
        with self.session(read_only=True) as s:
            return list(s.exec(select(Checkpoint).order_by(col(Checkpoint.id))))

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint, or None."""
        with self.session(read_only=True) as s:
            return s.exec(select(Checkpoint).order_by(col(Checkpoint.id).desc())).first()

    def inclusion(self, number: str) -> dict[str, Any]:
        """An inclusion proof of every logged event of `number` (as `resolve` reads it) in the
        newest checkpoint."""
        number = self._resolved(number)
        cp = self.latest_checkpoint()
        if cp is None:
            raise LedgerError(
                "the log has no checkpoint yet", hint="run 'certissuer ledger checkpoint'"
            )
        with self.session(read_only=True) as s:
            rows = list(
                s.exec(
                    select(LogLeaf, LedgerEvent)
                    .join(LedgerEvent, col(LedgerEvent.id) == col(LogLeaf.event_id))
                    .where(LedgerEvent.number == number)
                    .order_by(col(LogLeaf.idx))
                )
            )
            entry = s.get(CertificateEntry, number)
        if not rows or entry is None:
            raise LedgerError(f"certificate {number} has no event in the log")
        hashes = self.leaf_hashes(cp.tree_size)
        proofs = []
        for leaf, ev in rows:
            if leaf.idx >= cp.tree_size:
                raise LedgerError(
                    f"the newest checkpoint (size {cp.tree_size}) does not cover {number} yet",
                    hint="run 'certissuer ledger checkpoint'",
                )
            proofs.append(
                {
                    "leaf_index": leaf.idx,
                    "event": ev.kind,
                    "leaf_data": leaf_data(ev, entry).decode(),
                    "leaf_hash": leaf.leaf_hash,
                    "audit_path": [h.hex() for h in merkle.inclusion_proof(leaf.idx, hashes)],
                    # The lab's signature over `event_message`: leaf data and how it was signed.
                    "kid": ev.kid,
                    "signature": ev.signature,
                    "signed_at_upgrade": None
                    if ev.backfilled_at is None
                    else utc(ev.backfilled_at).isoformat(timespec="microseconds"),
                }
            )
        return {"number": number, "checkpoint": checkpoint_json(cp), "leaves": proofs}

    def consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        """A consistency proof between tree sizes `first` and `second` (default: the newest
        checkpoint's size)."""
        if second is None:
            cp = self.latest_checkpoint()
            second = cp.tree_size if cp else self.log_size()
        hashes = self.leaf_hashes(second)
        if not 0 < first <= second <= len(hashes):
            raise LedgerError(f"cannot prove size {first} against size {second}")
        return {
            "first": first,
            "second": second,
            "first_root": merkle.tree_hash(hashes[:first]).hex(),
            "second_root": merkle.tree_hash(hashes).hex(),
            "proof": [h.hex() for h in merkle.consistency_proof(first, hashes)],
        }

    def audit(
        self,
        *,
        keys: Sequence[TokenPublicKey],
        check_files: bool = True,
        witnesses: Sequence[Witness] = (),
        store: "PdfArchive | None" = None,
    ) -> AuditReport:
        """Recompute the log from the rows and check event signatures, checkpoints and PDF
        files.

        Names every edited, deleted, inserted or reordered row with its position in the log,
        every event whose signature fails (`keys` are the lab's ledger public keys), every
        stored checkpoint the log no longer matches, and every saved checkpoint in `witnesses`
        (`certissuer.ledger.audit.load_witness`) that the log does not extend (a rollback).
        PDFs are read through `store` (`certissuer.ledger.storage`; default: the files). Leaves
        that no checkpoint vouches for yet are listed apart (`AuditReport.unvouched`).
        """
        return run_audit(self, keys=keys, check_files=check_files, witnesses=witnesses, store=store)

    # -- signed reports (issue 19) ---------------------------------------------------------

    def record_report(
        self, record: ReportRecord, *, ledger_key: TokenKey | None = None
    ) -> ReportRecord:
        """Sign report `record` with the lab's ledger key and store it; return it with its id.

        `ledger_key` signs it (default: the ledger's `ledger_key`); a report is recorded signed
        or not at all. Raises `LedgerError` without a key, when a report with the same PDF
        SHA-256 is already recorded, or when the database fails.
        """
        key = ledger_key or self.ledger_key
        if key is None:
            raise LedgerError(
                "the report cannot be recorded: the lab's ledger key is not loaded",
                hint="set [token] key in the lab profile",
            )
        record.pdf_sha256 = record.pdf_sha256.lower()
        sign_report_record(record, key)
        try:
            with self.session() as s:
                s.add(record)
                s.commit()
                s.refresh(record)
        except IntegrityError as exc:
            raise LedgerError(
                f"a report with SHA-256 {record.pdf_sha256} is already recorded"
            ) from exc
        _logger.info("recorded %s report %s (%s)", record.kind, record.id, record.pdf_sha256)
        return record

    def report_by_sha256(self, sha256: str) -> ReportRecord | None:
        """The recorded report whose signed PDF has SHA-256 `sha256` (hex), or None."""
        with self.session(read_only=True) as s:
            return s.exec(
                select(ReportRecord).where(ReportRecord.pdf_sha256 == sha256.lower())
            ).first()

    def reports(self, lab_code: str | None = None) -> list[ReportRecord]:
        """The recorded reports (of lab `lab_code` if given), newest first."""
        with self.session(read_only=True) as s:
            q = select(ReportRecord)
            if lab_code is not None:
                q = q.where(ReportRecord.lab_code == lab_code)
            return list(s.exec(q.order_by(col(ReportRecord.id).desc())))

    def checkpoint_signed(
        self, tree_size: int, root_hash: str, keys: Sequence[TokenPublicKey]
    ) -> str | None:
        """Why no checkpoint of the ledger vouches for (`tree_size`, `root_hash`), or None.

        One does when a stored checkpoint has that size and root, its signature checks with
        `keys` (the lab's ledger public keys) and the stored leaves still reproduce its root.
        """
        with self.session(read_only=True) as s:
            found = list(
                s.exec(
                    select(Checkpoint).where(
                        Checkpoint.tree_size == tree_size,
                        Checkpoint.root_hash == root_hash.lower(),
                    )
                )
            )
        if not found:
            return f"the ledger holds no checkpoint of {tree_size} leaves with root {root_hash}"
        hashes = self.leaf_hashes(tree_size)
        problems = [checkpoint_problem(cp, keys, hashes) for cp in found]
        if None in problems:
            return None
        return f"checkpoint {tree_size} {root_hash}: " + "; ".join(
            sorted({p for p in problems if p})
        )


def _stamp_refused(ref: str, stamp: tuple[str, int], holder: str) -> IssueRefused:
    return IssueRefused(
        f"ref '{ref}': stamp {stamp[0]} {stamp[1]} is already on certificate {holder}",
        hint="each stamp number is used once per lab: put the next stamp from stock on the "
        "instrument and give its number",
    )


def _as_date(value: date | str) -> date:
    """A date column's value (SQLite's MIN/MAX may give its text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _profile_path(profile: Path | None) -> str:
    """`profile` as a ledger records it: its absolute path, or "" when there is none."""
    return str(profile.resolve()) if profile is not None else ""


def _safe_url(url: str) -> str:
    # Never print a database password.
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the configured ledger URL>"
