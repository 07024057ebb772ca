"""The sector export: certificates, instruments, standards and inspectors changed since a date
or since the last export, for the shared provincial and sector databases.

The format is versioned (`FORMAT`, `VERSION`) and described by ``docs/sector-export.schema.json``
and ``docs/SECTOR-EXPORT.md``. Incremental exports carry a **cursor**: the size of the ledger's
Merkle log and the register's change number at the moment of the export. The next export from
that cursor carries exactly what changed after it: a certificate when it gets an event (issued,
revoked, superseded), a register row when it is inserted or updated (database triggers number
every change, migration 0005). Both counters are handed out under a lock held until commit,
so a change can never become visible below a cursor already handed out: nothing is sent twice
or missed. This module only reads.

>>> export = sector_export(ledger.engine, since=None, after=None, today=date(2026, 12, 1))
... # doctest: +SKIP
>>> write_sector_export(export, SectorFormat.JSON, Path("sector.json"))  # doctest: +SKIP
>>> export.cursor.text  # doctest: +SKIP
'v1:1907:5123'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from certissuer._files import write_atomic
from certissuer._tables import add_sheet, new_workbook, plain_cell, save_workbook, write_table
from certissuer.errors import InputError, LedgerError
from certissuer.ledger import CertificateEntry, EventKind, LedgerEvent, LogHead, LogLeaf, utc
from certissuer.registry import Instrument, Owner, Person, RegisteredStandard, current_change

__all__ = [
    "COLUMNS",
    "FORMAT",
    "RECORD_TYPES",
    "VERSION",
    "Cursor",
    "SectorExport",
    "SectorFormat",
    "sector_export",
    "write_record_tables",
    "write_sector_export",
]

FORMAT = "certissuer-sector-export"
VERSION = "1.2"
"""Format version: the minor number grows when fields are added, the major when they change.
1.2: a certificate carries `data_digest`."""

RECORD_TYPES = ("certificates", "instruments", "standards", "inspectors")

COLUMNS: Mapping[str, tuple[str, ...]] = {
    "certificates": (
        "number", "lab_code", "kind", "status", "issue_date", "work_date", "valid_until",
        "instrument_name", "instrument_model", "instrument_serial", "customer_name",
        "paper_number", "pdf_sha256", "issued_at", "revoked_at", "revocation_reason",
        "superseded_by", "log_index", "changed_at", "data_digest",
    ),
    "instruments": (
        "owner_code", "owner_name", "owner_kind", "owner_address", "type_code", "name", "model",
        "serial", "manufacturer", "year", "ranges", "accuracy_class", "place_of_use",
        "last_certificate", "verified_on", "valid_until", "change_seq", "changed_at",
    ),
    "standards": (
        "lab_code", "code", "name", "serial", "certificate_number", "calibration_due",
        "quantities", "ranges", "change_seq", "changed_at",
    ),
    "inspectors": (
        "lab_code", "name", "title", "verifier_card", "card_types", "card_expiry", "signatory",
        "change_seq", "changed_at",
    ),
}  # fmt: skip
"""The fields of each record type, in order (CSV and XLSX columns, JSON object keys)."""

_CURSOR = re.compile(r"v1:(\d+):(\d+)\Z")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where an export ended: the Merkle log's size and the register's change number."""

    log: int
    """Events at log index below this were exported."""
    register: int
    """Register changes up to this number were exported."""

    @property
    def text(self) -> str:
        """The cursor as printed and passed back with ``--cursor``: ``v1:<log>:<register>``."""
        return f"v1:{self.log}:{self.register}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Read a cursor printed by an earlier export; raises `InputError` otherwise."""
        match = _CURSOR.match(text.strip())
        if match is None:
            raise InputError(
                "--cursor",
                f"expected a cursor such as v1:1907:5123 from an earlier export, got '{text}'",
            )
        return cls(int(match[1]), int(match[2]))


class SectorFormat(StrEnum):
    """File formats of the sector export."""

    CSV = "csv"
    JSON = "json"
    XLSX = "xlsx"


@dataclass(frozen=True, slots=True)
class SectorExport:
    """One export: the changed records of each type, and the cursor for the next export."""

    generated_at: datetime
    since: datetime | None
    after: Cursor | None
    cursor: Cursor
    records: Mapping[str, list[dict[str, Any]]]

    def header(self) -> dict[str, Any]:
        """The export's metadata (JSON top level; the ``export`` sheet; ``export.json``)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "since": self.since.isoformat(timespec="seconds") if self.since else None,
            "after": self.after.text if self.after else None,
            "cursor": self.cursor.text,
            "counts": {t: len(self.records[t]) for t in RECORD_TYPES},
        }


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _status(entry: Mapping[str, Any], today: date) -> str:
    """The status `certissuer.ledger.status_from` gives, from the newest log index of each kind
    of event: the newest of revoked, superseded and no longer valid decides; then expired; then
    awaiting approval while no approval followed the wait."""
    if entry["pdf_sha256"] is None:
        return "pending"
    ended = {
        "revoked": entry["revoked_idx"],
        "superseded": entry["superseded_idx"],
        "no_longer_valid": entry["failed_idx"],
    }
    newest = max(((i, k) for k, i in ended.items() if i is not None), default=None)
    if newest is not None:
        return newest[1]
    valid_until = entry["valid_until"]
    if valid_until is not None and today > valid_until:
        return "expired"
    waiting, approved = entry["awaiting_idx"], entry["approved_idx"]
    if waiting is not None and (approved is None or approved < waiting):
        return "awaiting_approval"
    return "valid"


def sector_export(
    engine: Engine,
    *,
    since: datetime | None,
    after: Cursor | None,
    today: date,
    now: datetime | None = None,
    log_limit: int | None = None,
) -> SectorExport:
    """Collect every record changed since `since` and after cursor `after` (both optional).

    `log_limit` stops the export at that log size (the cursor's `log` is at most it): a
    large export is sent in parts, each from the cursor of the one before.

    `engine` is the ledger's engine; `today` decides "expired". A certificate is included
    when one of its events is in the log after `after.log` (and, with `since`, its newest
    event is at or after `since`); a register row when its change number is above
    `after.register` (and its change time at or after `since`); an instrument also when its
    owner changed. Certificates carry their status with all their events. Raises
    `LedgerError` when the database fails.
    """
    after_log = after.log if after else 0
    after_reg = after.register if after else 0
    since_utc = utc(since) if since else None
    try:
        with engine.connect() as conn, conn.begin():
            # the register's number first: on PostgreSQL it waits for a writing transaction
            # and holds new ones back until this export ends (see `current_change`)
            reg = current_change(conn)
            log_size = int(
                conn.execute(select(col(LogHead.size)).where(col(LogHead.id) == 1)).scalar() or 0
            )
            if log_limit is not None:
                log_size = min(log_size, max(log_limit, after_log))
            cursor = Cursor(log_size, reg)
            records = {
                "certificates": list(_certificates(conn, after_log, log_size, since_utc, today)),
                "instruments": list(_instruments(conn, after_reg, reg, since_utc)),
                "standards": list(
                    _register_rows(conn, RegisteredStandard, "standards", after_reg, reg, since_utc)
                ),
                "inspectors": list(
                    _register_rows(conn, Person, "inspectors", after_reg, reg, since_utc)
                ),
            }
    except SQLAlchemyError as exc:
        raise LedgerError(f"the sector export could not read the ledger: {exc}") from exc
    return SectorExport(
        generated_at=now or datetime.now(UTC),
        since=since_utc,
        after=after,
        cursor=cursor,
        records=records,
    )


def _certificates(
    conn: Any, after_log: int, log_size: int, since: datetime | None, today: date
) -> Iterator[dict[str, Any]]:
    e, c = LedgerEvent, CertificateEntry
    revoked = col(e.kind) == EventKind.REVOKED.value
    superseded = col(e.kind) == EventKind.SUPERSEDED.value

    def newest(kind: EventKind) -> Any:
        return func.max(case((col(e.kind) == kind.value, col(LogLeaf.idx))))

    query = (
        select(
            col(c.number),
            col(c.lab_code),
            col(c.kind),
            col(c.issue_date),
            col(c.work_date),
            col(c.valid_until),
            col(c.instrument_name),
            col(c.instrument_model),
            col(c.instrument_serial),
            col(c.customer_name),
            col(c.paper_number),
            col(c.pdf_sha256),
            col(c.issued_at),
            func.max(case((revoked, col(e.at)))).label("revoked_at"),
            func.max(case((revoked, col(e.reason)))).label("revocation_reason"),
            func.max(case((superseded, col(e.related_number)))).label("superseded_by"),
            func.max(col(LogLeaf.idx)).label("log_index"),
            func.max(col(e.at)).label("changed_at"),
            col(c.data_digest),
            newest(EventKind.REVOKED).label("revoked_idx"),
            newest(EventKind.SUPERSEDED).label("superseded_idx"),
            newest(EventKind.FAILED_REVERIFICATION).label("failed_idx"),
            newest(EventKind.AWAITING_APPROVAL).label("awaiting_idx"),
            newest(EventKind.APPROVED).label("approved_idx"),
        )
        .select_from(c)
        .join(e, col(e.number) == col(c.number))
        .join(LogLeaf, col(LogLeaf.event_id) == col(e.id))
        .where(col(LogLeaf.idx) < log_size)
        .group_by(col(c.number))
        .having(func.max(col(LogLeaf.idx)) >= after_log)
        .order_by(func.max(col(LogLeaf.idx)))
    )
    if since is not None:
        query = query.having(func.max(col(e.at)) >= since)
    for row in conn.execute(query):
        data = dict(row._mapping)
        data["status"] = _status(data, today)
        yield {name: _value(data[name]) for name in COLUMNS["certificates"]}


def _instruments(
    conn: Any, after: int, upto: int, since: datetime | None
) -> Iterator[dict[str, Any]]:
    i, o = Instrument, Owner
    seq_i = func.coalesce(col(i.change_seq), 0)
    seq_o = func.coalesce(col(o.change_seq), 0)
    changed = or_(and_(seq_i > after, seq_i <= upto), and_(seq_o > after, seq_o <= upto))
    query: Any = (
        select(
            col(o.code).label("owner_code"),
            col(o.name).label("owner_name"),
            col(o.kind).label("owner_kind"),
            col(o.address).label("owner_address"),
            col(i.type_code),
            col(i.name),
            col(i.model),
            col(i.serial),
            col(i.manufacturer),
            col(i.year),
            col(i.ranges),
            col(i.accuracy_class),
            col(i.place_of_use),
            col(i.last_certificate),
            col(i.verified_on),
            col(i.valid_until),
            col(i.change_seq).label("i_seq"),
            col(o.change_seq).label("o_seq"),
            col(i.changed_at).label("i_at"),
            col(o.changed_at).label("o_at"),
        )
        .select_from(i)
        .join(o, col(o.id) == col(i.owner_id))
        .where(changed)
        .order_by(col(i.id))
    )
    if since is not None:
        query = query.where(or_(col(i.changed_at) >= since, col(o.changed_at) >= since))
    for row in conn.execute(query):
        data = dict(row._mapping)
        seqs = [s for s in (data["i_seq"], data["o_seq"]) if s is not None and s <= upto]
        stamps = [utc(t) for t in (data["i_at"], data["o_at"]) if t is not None]
        data["change_seq"] = max(seqs) if seqs else 0
        data["changed_at"] = max(stamps) if stamps else None
        yield {name: _value(data[name]) for name in COLUMNS["instruments"]}


def _register_rows(
    conn: Any, table: Any, kind: str, after: int, upto: int, since: datetime | None
) -> Iterator[dict[str, Any]]:
    seq = func.coalesce(col(table.change_seq), 0)
    query: Any = select(table).where(seq > after, seq <= upto).order_by(seq, col(table.id))
    if since is not None:
        query = query.where(col(table.changed_at) >= since)
    for row in conn.execute(query):
        data = dict(row._mapping)
        data["change_seq"] = data["change_seq"] or 0
        yield {name: _value(data[name]) for name in COLUMNS[kind]}


def write_sector_export(export: SectorExport, fmt: SectorFormat, out: Path) -> list[Path]:
    """Write `export` to `out` in `fmt`; return the files written (atomically, each).

    JSON: one document (see the schema). XLSX: an ``export`` sheet with the metadata and one
    sheet per record type. CSV: `out` is a folder that gets ``export.json`` and one CSV file
    per record type (UTF-8 with a byte order mark, a header row).
    """
    return write_record_tables(export.header(), export.records, COLUMNS, fmt, out)


def write_record_tables(
    header: Mapping[str, Any],
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    columns: Mapping[str, Sequence[str]],
    fmt: SectorFormat,
    out: Path,
    *,
    cell: Callable[[Any], Any] = plain_cell,
) -> list[Path]:
    """Write an export's `header` and `records` (of each type named in `columns`, whose
    fields are its columns, in order) to `out` in `fmt`, the way `write_sector_export` does;
    `cell` turns each value into a table cell. Returns the files written."""
    written: list[Path] = []
    if fmt is SectorFormat.JSON:
        document = {**header, **{t: list(records[t]) for t in columns}}
        write_atomic(out, json.dumps(document, ensure_ascii=False, indent=1).encode())
        return [out]

    def table(kind: str) -> Iterator[list[Any]]:
        for record in records[kind]:
            yield [cell(record.get(c)) for c in columns[kind]]

    if fmt is SectorFormat.XLSX:
        wb = new_workbook()
        add_sheet(
            wb,
            "export",
            ["key", "value"],
            (
                [key, json.dumps(value) if isinstance(value, dict) else plain_cell(value)]
                for key, value in header.items()
            ),
        )
        for kind in columns:
            add_sheet(wb, kind, columns[kind], table(kind))
        save_workbook(wb, out)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    for kind in columns:
        path = out / f"{kind}.csv"
        write_table(path, columns[kind], table(kind))
        written.append(path)
    meta_path = out / "export.json"
    write_atomic(meta_path, json.dumps(dict(header), ensure_ascii=False, indent=1).encode())
    return [*written, meta_path]
