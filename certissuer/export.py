"""Export ledger entries to CSV, XLSX or JSON (``certissuer ledger export``).

One row per certificate with its status on the export date; columns are stable and documented
by `COLUMNS`. Files are written atomically (temporary file, rename).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from certissuer._files import replacing
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
    count = 0
    with replacing(path) as tmp:
        if fmt is ExportFormat.CSV:
            with open(tmp, "w", newline="", encoding="utf-8-sig") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS)
                writer.writeheader()
                for entry, status in rows:
                    writer.writerow(entry_row(entry, status))
                    count += 1
        elif fmt is ExportFormat.JSON:
            data = [entry_row(e, s) for e, s in rows]
            count = len(data)
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        elif fmt is ExportFormat.XLSX:
            from openpyxl import Workbook

            wb = Workbook(write_only=True)
            ws = wb.create_sheet("certificates")
            ws.append(list(COLUMNS))
            for entry, status in rows:
                ws.append([entry_row(entry, status)[c] for c in COLUMNS])
                count += 1
            wb.save(tmp)
        else:  # pragma: no cover - StrEnum is closed
            raise ConfigError(f"unknown export format {fmt}")
    return count
