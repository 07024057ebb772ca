"""The ledger export (``certissuer ledger export``): stable columns, CSV that Excel opens."""

from __future__ import annotations

import codecs
import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest

from certissuer.ledger import CertificateEntry, Status
from certissuer.report.export import COLUMNS, ExportFormat, export_entries

DOCUMENTED = tuple(
    "number kind status lab_code ref instrument_name instrument_model instrument_serial "
    "customer_name work_date issue_date valid_until issued_at data_digest pdf_sha256 pdf_path "
    "signer status_since status_reason status_by replaces".split()
)
"""The columns as docs and users' spreadsheets know them: a change here is a breaking one
(new columns go at the end, so a spreadsheet reading by position keeps working)."""


def _entry(seq: int) -> CertificateEntry:
    return CertificateEntry(
        number=f"KĐ-2026-{seq:06d}",
        lab_code="T01",
        series="KĐ",
        year=2026,
        seq=seq,
        kind="verification",
        ref=f"R{seq}",
        instrument_name="Cân bàn",
        instrument_model="TPS-60",
        instrument_serial=f"S{seq}",
        customer_name="Cơ sở Đồng Tháp",
        work_date=date(2026, 3, 2),
        issue_date=date(2026, 3, 3),
        issued_at=datetime(2026, 3, 3, 8, 30, tzinfo=UTC),
        data_digest="ab" * 32,
        data_json="{}",
        token="t",
    )


def test_the_exported_columns_stay_as_documented() -> None:
    assert COLUMNS == DOCUMENTED


def test_csv_export_starts_with_the_bom_and_keeps_vietnamese(tmp_path: Path) -> None:
    out = tmp_path / "certificates.csv"
    rows = [(_entry(1), Status.VALID), (_entry(2), Status.REVOKED)]
    assert export_entries(rows, ExportFormat.CSV, out) == 2
    data = out.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    with open(out, encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(DOCUMENTED)
    assert [(r["number"], r["status"]) for r in table] == [
        ("KĐ-2026-000001", "valid"),
        ("KĐ-2026-000002", "revoked"),
    ]
    assert table[0]["customer_name"] == "Cơ sở Đồng Tháp"
    assert table[0]["issue_date"] == "2026-03-03" and table[0]["valid_until"] == ""


@pytest.mark.parametrize("fmt", [ExportFormat.XLSX, ExportFormat.JSON])
def test_other_formats_carry_the_same_columns(fmt: ExportFormat, tmp_path: Path) -> None:
    out = tmp_path / "certificates.out"  # the format is the one asked for, whatever the suffix
    assert export_entries([(_entry(1), Status.VALID)], fmt, out) == 1
    if fmt is ExportFormat.JSON:
        (row,) = json.loads(out.read_text(encoding="utf-8"))
        assert tuple(row) == DOCUMENTED
        return
    with open(out, "rb") as fh:  # openpyxl judges a file name by its suffix, a file object not
        sheet = openpyxl.load_workbook(fh)["certificates"]
        header, first = list(sheet.iter_rows(values_only=True))
    assert header == DOCUMENTED and first[0] == "KĐ-2026-000001"
