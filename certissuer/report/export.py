"""Export ledger entries to CSV, XLSX or JSON (``certissuer ledger export``).

One row per certificate with its status on the export date; columns are stable and documented
by `COLUMNS`. Files are written atomically (temporary file, rename); CSV as UTF-8 with a byte
order mark, through `certissuer._tables`.

>>> export_entries(rows, ExportFormat.CSV, Path("certificates.csv"))  # doctest: +SKIP
3
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from certissuer._files import write_atomic
from certissuer._tables import write_table
from certissuer._vn import local_time
from certissuer.errors import ConfigError
from certissuer.ledger import CertificateEntry, LedgerEvent, Status

__all__ = ["COLUMNS", "ExportFormat", "entry_row", "export_entries"]


def _entry_columns(first: str, last: str) -> tuple[str, ...]:
    """The ledger entry's columns from `first` to `last`, in the order the table has them."""
    names = list(CertificateEntry.model_fields)
    return tuple(names[names.index(first) : names.index(last) + 1])


COLUMNS = (
    "number",
    "kind",
    "status",
    "lab_code",
    *_entry_columns("ref", "data_digest"),
    *_entry_columns("pdf_sha256", "signer"),
    "status_since",
    "status_reason",
    "status_by",
    "replaces",
)
"""The exported columns, in order: the certificate's number, kind and status on the export date,
then columns of the ledger entry in the order `CertificateEntry` declares them, then why the
status is what it is (``status_since``: when it was revoked, superseded or made no longer
valid, on Vietnam's clock; ``status_reason``; ``status_by``: the certificate or notice that
superseded it or made it no longer valid) and ``replaces``: the number an amended certificate
replaces. The last four are empty when they do not apply or were not looked up."""


class ExportFormat(StrEnum):
    """File formats `export_entries` writes."""

    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"


_STATUS_COLUMNS = frozenset({"status", "status_since", "status_reason", "status_by", "replaces"})


def entry_row(
    entry: CertificateEntry, status: Status, event: LedgerEvent | None = None
) -> dict[str, Any]:
    """The exported row of `entry` with its `status` and the `event` that decided it (from
    `Ledger.status`): `COLUMNS` to values, dates as ISO text."""
    row: dict[str, Any] = {}
    for name in COLUMNS:
        value = status.value if name == "status" else getattr(entry, name, None)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        row[name] = value
    decided = event is not None and status not in (Status.VALID, Status.EXPIRED, Status.PENDING)
    row["status_since"] = local_time(event.at).isoformat() if decided and event else None
    row["status_reason"] = (event.reason or None) if decided and event else None
    row["status_by"] = (event.related_number or None) if decided and event else None
    replaces = entry.data().get("replaces") if '"replaces"' in entry.data_json else None
    row["replaces"] = replaces.get("number") if isinstance(replaces, dict) else None
    return row


def export_entries(
    rows: Iterable[tuple[CertificateEntry, Status] | tuple[CertificateEntry, Status, Any]],
    fmt: ExportFormat,
    path: Path,
) -> int:
    """Write `rows` to `path` in `fmt`; return how many were written. A row is an entry and
    its status, and optionally the event that decided the status (`Ledger.status`)."""
    if fmt is ExportFormat.JSON:
        data = list(_rows(rows))
        write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1).encode())
        return len(data)
    if fmt in (ExportFormat.CSV, ExportFormat.XLSX):
        table = ([row[c] for c in COLUMNS] for row in _rows(rows))
        return write_table(path, COLUMNS, table, sheet="certificates", fmt=fmt.value)
    raise ConfigError(f"unknown export format {fmt}")  # pragma: no cover - StrEnum is closed


def _rows(rows: Iterable[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    for entry, status, *event in rows:
        yield entry_row(entry, status, event[0] if event else None)
