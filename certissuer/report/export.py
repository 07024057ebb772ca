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
from certissuer._tables import new_workbook, save_workbook, write_csv
from certissuer.errors import ConfigError
from certissuer.ledger import CertificateEntry, Status

__all__ = ["COLUMNS", "ExportFormat", "entry_row", "export_entries"]

COLUMNS = (
    "number",
    "kind",
    "status",
    "lab_code",
    "ref",
    "instrument_name",
    "instrument_model",
    "instrument_serial",
    "customer_name",
    "work_date",
    "issue_date",
    "valid_until",
    "issued_at",
    "data_digest",
    "pdf_sha256",
    "pdf_path",
    "signer",
)
"""The exported columns, in order."""


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
    if fmt is ExportFormat.CSV:
        return write_csv(path, COLUMNS, ([row[c] for c in COLUMNS] for row in _rows(rows)))
    if fmt is ExportFormat.JSON:
        data = list(_rows(rows))
        write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1).encode())
        return len(data)
    if fmt is ExportFormat.XLSX:
        count = 0
        wb = new_workbook()
        ws = wb.create_sheet("certificates")
        ws.append(list(COLUMNS))
        for row in _rows(rows):
            ws.append([row[c] for c in COLUMNS])
            count += 1
        save_workbook(wb, path)
        return count
    raise ConfigError(f"unknown export format {fmt}")  # pragma: no cover - StrEnum is closed


def _rows(rows: Iterable[tuple[CertificateEntry, Status]]) -> Iterator[dict[str, Any]]:
    for entry, status in rows:
        yield entry_row(entry, status)
