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
from certissuer.errors import ConfigError
from certissuer.ledger import CertificateEntry, Status

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
)
"""The exported columns, in order: the certificate's number, kind and status on the export date,
then columns of the ledger entry in the order `CertificateEntry` declares them."""


class ExportFormat(StrEnum):
    """File formats `export_entries` writes."""

    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"


def entry_row(entry: CertificateEntry, status: Status) -> dict[str, Any]:
    """The exported row of `entry` with its `status`: `COLUMNS` to values, dates as ISO text."""
    row: dict[str, Any] = {}
    for name in COLUMNS:
        value = status.value if name == "status" else getattr(entry, name)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        row[name] = value
    return row


def export_entries(
    rows: Iterable[tuple[CertificateEntry, Status]], fmt: ExportFormat, path: Path
) -> int:
    """Write `rows` to `path` in `fmt`; return how many were written."""
    if fmt is ExportFormat.JSON:
        data = list(_rows(rows))
        write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1).encode())
        return len(data)
    if fmt in (ExportFormat.CSV, ExportFormat.XLSX):
        table = ([row[c] for c in COLUMNS] for row in _rows(rows))
        return write_table(path, COLUMNS, table, sheet="certificates", fmt=fmt.value)
    raise ConfigError(f"unknown export format {fmt}")  # pragma: no cover - StrEnum is closed


def _rows(rows: Iterable[tuple[CertificateEntry, Status]]) -> Iterator[dict[str, Any]]:
    for entry, status in rows:
        yield entry_row(entry, status)
