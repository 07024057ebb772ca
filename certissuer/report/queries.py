"""What both reports read: the period, the signed checkpoint, and SQL helpers for the figures.

Every figure comes from SQL aggregate queries (``GROUP BY`` and ``SUM(CASE …)`` month
buckets), never from loading rows one by one. The certificate figures count only events inside
the ledger's newest signed checkpoint, which `latest_checkpoint` reads with the register's
change number; both reports print them.

>>> with read_connection(engine) as conn:  # doctest: +SKIP
...     cp = latest_checkpoint(conn)
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from certissuer._vn import VIETNAM_TZ
from certissuer.errors import InputError, LedgerError
from certissuer.ledger import (
    CertificateEntry,
    Checkpoint,
    EventKind,
    LedgerEvent,
    LogHead,
    LogLeaf,
    utc,
)
from certissuer.registry import InstrumentType, current_change, match_type

__all__ = [
    "ISSUED",
    "LATER_EVENTS",
    "OTHER_TYPE",
    "ReportCheckpoint",
    "busiest_first",
    "checkpoint_rows",
    "instrument_types",
    "json_text",
    "latest_checkpoint",
    "logged_events",
    "month_buckets",
    "month_edges",
    "period",
    "read_connection",
    "type_matcher",
    "type_names",
    "utc_start",
]

OTHER_TYPE = "(khác / other)"
"""The type of an instrument that matches no type of the register."""
ISSUED = (EventKind.ISSUED.value,)
"""Event kinds of `logged_events` that count certificates issued."""
LATER_EVENTS = (EventKind.REVOKED.value, EventKind.SUPERSEDED.value)
"""Event kinds of `logged_events` that count revocations and amendments."""


@dataclass(frozen=True, slots=True)
class ReportCheckpoint:
    """The signed ledger checkpoint a report was computed from, and the register's state."""

    lab_code: str
    tree_size: int
    """Leaves of the Merkle log the certificate figures count (events at index < size)."""
    root_hash: str
    """RFC 6962 root (hex) of those leaves, as signed by the lab."""
    at: datetime
    kid: str
    log_size: int
    """The log's size when the report was made; above `tree_size` if events came later."""
    register_change: int
    """The register's change number when the report was made (see `registry.ChangeCounter`)."""


def period(year: int, until: date | None) -> tuple[date, date]:
    """The first and last day of a report on `year`, ending on `until` when given (in `year`,
    else `InputError`)."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    if until is not None:
        if until.year != year:
            raise InputError(
                "--until", f"expected a date in {year}, got {until.isoformat()}", field="until"
            )
        end = until
    return start, end


def utc_start(day: date) -> datetime:
    """The UTC instant at which Vietnamese calendar day `day` begins."""
    return datetime.combine(day, time(), tzinfo=VIETNAM_TZ).astimezone(UTC)


def month_edges(start: date, until: date) -> list[date]:
    """First day of each month of the period, and the day after `until`."""
    edges = [date(start.year, m, 1) for m in range(start.month, until.month + 1)]
    return [*edges, until + timedelta(days=1)]


def month_buckets(column: Any, edges: Sequence[Any]) -> list[ColumnElement[Any]]:
    """``SUM(CASE WHEN edges[i] <= column < edges[i+1] THEN 1 ELSE 0 END)`` per interval."""
    return [
        func.coalesce(func.sum(case((and_(column >= lo, column < hi), 1), else_=0)), 0)
        for lo, hi in itertools.pairwise(edges)
    ]


def json_text(conn: Connection, column: Any, *path: str | int) -> ColumnElement[Any]:
    """The text at `path` inside a JSON text column (SQLite json_extract / PostgreSQL jsonb)."""
    if conn.dialect.name == "postgresql":
        # a literal path, so that the same expression in SELECT and GROUP BY is one expression
        # for PostgreSQL (bound parameters would differ); the path is ours, never user input
        pg_path = "{" + ",".join(str(p) for p in path) + "}"
        expression: ColumnElement[Any] = column.cast(JSONB).op("#>>")(
            literal_column(f"'{pg_path}'")
        )
        return expression
    json_path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return func.json_extract(column, json_path)


def latest_checkpoint(conn: Connection) -> ReportCheckpoint:
    """The newest signed checkpoint and the register's change number; `LedgerError` if none."""
    # first: on PostgreSQL it waits for a transaction writing the register and holds new
    # ones back while the report reads (see `registry.current_change`)
    change = current_change(conn)
    cp = conn.execute(select(Checkpoint).order_by(col(Checkpoint.id).desc()).limit(1)).first()
    if cp is None:
        raise LedgerError(
            "the ledger's log has no signed checkpoint yet: a report must name the checkpoint "
            "its figures come from",
            hint="run 'certissuer ledger checkpoint' (or pass --checkpoint)",
        )
    log_size = conn.execute(select(col(LogHead.size)).where(col(LogHead.id) == 1)).scalar() or 0
    return ReportCheckpoint(
        lab_code=cp.lab_code,
        tree_size=cp.tree_size,
        root_hash=cp.root_hash,
        at=utc(cp.at),
        kid=cp.kid,
        log_size=int(log_size),
        register_change=int(change),
    )


def logged_events(size: int, kinds: Sequence[str], *columns: Any) -> Any:
    """``SELECT columns`` over the events of `kinds` (`ISSUED`, `LATER_EVENTS`) covered by the
    checkpoint of `size` leaves, each joined to its certificate."""
    return (
        select(*columns)
        .select_from(LedgerEvent)
        .join(LogLeaf, col(LogLeaf.event_id) == col(LedgerEvent.id))
        .join(CertificateEntry, col(CertificateEntry.number) == col(LedgerEvent.number))
        .where(col(LogLeaf.idx) < size)
        .where(col(LedgerEvent.kind).in_(kinds))
    )


def read_connection(engine: Engine) -> Any:
    """A connection for one read transaction. The certificate figures are bounded by the
    checkpoint and the register's by `current_change`, so no snapshot isolation is needed."""
    return engine.connect()


def instrument_types(conn: Connection) -> list[InstrumentType]:
    """Every instrument type of the register."""
    rows = conn.execute(select(InstrumentType)).all()
    return [InstrumentType.model_validate(r._mapping) for r in rows]


def type_names(types: Iterable[InstrumentType]) -> dict[str, str]:
    """Each type's bilingual name by its code."""
    return {t.code: f"{t.name_vi} / {t.name_en}" if t.name_en else t.name_vi for t in types}


def type_matcher(types: Sequence[InstrumentType]) -> Callable[[object], str]:
    """The code of the type of `types` an instrument name matches (`OTHER_TYPE` for none),
    remembered per name: a report matches the same few names many times."""

    @functools.cache
    def match(name: object) -> str:
        return match_type(str(name or ""), types) or OTHER_TYPE

    return match


def busiest_first(counts: Mapping[str, Sequence[int]]) -> list[tuple[str, Sequence[int]]]:
    """The items of `counts` (a type's counts) by their total, largest first, then by key."""
    return sorted(counts.items(), key=lambda kv: (-sum(kv[1]), kv[0]))


def checkpoint_rows(cp: ReportCheckpoint) -> list[list[Any]]:
    """The checkpoint as ``[key, value]`` rows of a workbook's summary sheet."""
    return [
        ["checkpoint_lab", cp.lab_code],
        ["checkpoint_tree_size", cp.tree_size],
        ["checkpoint_root", cp.root_hash],
        ["checkpoint_at", cp.at.isoformat()],
        ["checkpoint_kid", cp.kid],
        ["log_size", cp.log_size],
        ["register_change", cp.register_change],
    ]
