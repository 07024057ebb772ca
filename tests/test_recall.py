"""Recall lists: exact on a generated register of 10,000 instruments (issue 8)."""

from __future__ import annotations

import codecs
import csv
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.config import Settings
from certissuer.ledger import Ledger
from certissuer.registry import COLUMNS, RecallFormat, Register, parse_window, write_recall

TODAY = date(2026, 12, 1)
N, OWNERS = 10_000, 300
TYPES = ("can-ban", "cot-do-xang-dau", "dong-ho-nuoc-dien-tu", "taximet")


def instrument(i: int) -> dict[str, Any]:
    """Instrument i: owner i % 300, a due date spread over −200 … +800 days around TODAY."""
    owner = i % OWNERS
    return {
        "owner_code": f"MST-{owner:04d}",
        "owner_name": f"Cơ sở {owner:04d}",
        "owner_address": f"Ấp {owner}, Đồng Tháp",
        "type_code": TYPES[i % 4],
        "serial": f"S{i:06d}",
        "place_of_use": "Chợ Sa Đéc",
        "last_certificate": f"KĐ-2025-{i:06d}",
        "valid_until": (TODAY + timedelta(days=(i * 37) % 1000 - 200)).isoformat(),
    }


def expected(
    within: int, *, owner: str | None = None, type_code: str | None = None
) -> list[tuple[str, list[tuple[str, date, bool]]]]:
    until = TODAY + timedelta(days=within)
    rows = [instrument(i) for i in range(N)]
    keep = [
        r
        for r in rows
        if date.fromisoformat(r["valid_until"]) <= until
        and owner in (None, r["owner_code"])
        and type_code in (None, r["type_code"])
    ]
    keep.sort(key=lambda r: (r["owner_name"], r["valid_until"], r["serial"]))
    groups: dict[str, list[tuple[str, date, bool]]] = {}
    for r in keep:
        due = date.fromisoformat(r["valid_until"])
        groups.setdefault(r["owner_name"], []).append((r["serial"], due, due < TODAY))
    return list(groups.items())


@pytest.fixture
def big_register(any_ledger_url: str) -> Register:
    register = Register(Ledger.open(any_ledger_url).engine, lab_code="T01")
    register.add("lab", {"code": "T01", "name_vi": "PTN"})
    report = register.import_rows("instrument", (instrument(i) for i in range(N)), source="gen")
    assert report.imported == N and report.errors == []
    register.add(
        "standard",
        {
            "code": "E2",
            "name": "Quả cân E2",
            "certificate_number": "C-1",
            "calibration_due": "2026-12-20",
        },
    )
    register.add(
        "standard",
        {
            "code": "F1",
            "name": "Quả cân F1",
            "certificate_number": "C-2",
            "calibration_due": "2027-06-01",
        },
    )
    return register


def test_recall_of_10000_instruments_is_exact(big_register: Register, tmp_path: Path) -> None:
    for within, owner, type_code in (
        (30, None, None),
        (0, None, None),
        (90, "MST-0007", None),
        (365, None, "taximet"),
    ):
        recall = big_register.recall(
            within_days=within, today=TODAY, owner=owner, type_code=type_code
        )
        got = [
            (g.owner_name, [(i.serial, i.valid_until, i.overdue) for i in g.items])
            for g in recall.groups
        ]
        assert got == expected(within, owner=owner, type_code=type_code)
    recall = big_register.recall(within_days=30, today=TODAY)
    assert recall.count == sum(len(items) for _, items in expected(30))
    assert [s.code for s in recall.standards] == ["E2"]  # F1 is due later than the window
    out = tmp_path / "recall.csv"
    write_recall(recall, RecallFormat.CSV, out)
    assert out.read_bytes().startswith(codecs.BOM_UTF8)  # so Excel reads it as UTF-8
    with open(out, encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == recall.count + 1
    assert rows[-1]["what"] == "standard" and rows[-1]["valid_until"] == "2026-12-20"
    first = expected(30)[0][1][0]
    assert (rows[0]["serial"], rows[0]["valid_until"]) == (first[0], first[1].isoformat())
    assert rows[0]["status"] == ("expired" if first[2] else "due")


def test_recall_xlsx_and_pdf_letters(ledger: Ledger, settings: Settings, tmp_path: Path) -> None:
    register = Register(ledger.engine, lab_code="T01")
    register.import_rows("instrument", [instrument(i) for i in range(12)], source="gen")
    register.add(
        "standard",
        {
            "code": "E2",
            "name": "Quả cân E2",
            "certificate_number": "C-1",
            "calibration_due": "2026-11-20",
        },
    )
    recall = register.recall(within_days=60, today=TODAY)
    assert 1 < len(recall.groups) < 12
    write_recall(recall, RecallFormat.XLSX, tmp_path / "r.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "r.xlsx").worksheets[0]
    assert sheet.max_row == recall.count + 2  # header + instruments + one standard
    pdf = tmp_path / "letters.pdf"
    write_recall(recall, RecallFormat.PDF, pdf, settings=settings)
    pages = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout.split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) == len(recall.groups) + 1  # one letter per owner, then the standards
    for group, page in zip(recall.groups, pages, strict=False):
        assert f"Kính gửi / To: {group.owner_name}" in page
        assert "NOTICE OF PERIODIC VERIFICATION" in page
        assert all(i.serial in page for i in group.items)
    assert "REFERENCE STANDARDS DUE FOR CALIBRATION" in pages[-1] and "quá hạn" in pages[-1]
    fonts = subprocess.run(
        ["pdffonts", str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    assert fonts and all(line.split()[-5] == "yes" for line in fonts)  # every font embedded


def test_window_is_read_in_days_weeks_or_months() -> None:
    assert parse_window("30d", TODAY) == 30
    assert parse_window("2w", TODAY) == 14
    assert parse_window("3m", TODAY) == (date(2027, 3, 1) - TODAY).days
    with pytest.raises(Exception, match="expected a window"):
        parse_window("soon", TODAY)


def test_cli_registry_and_recall(tmp_path: Path, settings: Settings) -> None:
    runner = CliRunner()
    config = tmp_path / "lab.toml"
    config.write_text(
        f'[lab]\ncode = "T01"\nname_vi = "PTN"\n[ledger]\nurl = '
        f'"sqlite:///{tmp_path / "cli.db"}"\n',
        encoding="utf-8",
    )
    base = ["--config", str(config)]
    result = runner.invoke(app, [*base, "registry", "add", "lab", "code=T01", "name_vi=PTN"])
    assert result.exit_code == 0, result.output
    csv_path = tmp_path / "ins.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(instrument(0)))
        writer.writeheader()
        writer.writerows(instrument(i) for i in range(20))
        writer.writerow({**instrument(20), "valid_until": "tomorrow"})
    result = runner.invoke(app, [*base, "registry", "import", "instrument", str(csv_path)])
    assert result.exit_code == 2
    assert f"{csv_path}, row 22, field 'valid_until'" in result.output
    assert "20 imported, 1 rejected" in result.output
    result = runner.invoke(
        app, [*base, "registry", "show", "instrument", "MST-0003", "taximet", "S000003"]
    )
    assert result.exit_code == 0 and "KĐ-2025-000003" in result.output
    result = runner.invoke(app, [*base, "registry", "list", "owner"])
    assert result.exit_code == 0 and "Cơ sở 0019" in result.output
    out = tmp_path / "recall.csv"
    result = runner.invoke(
        app,
        [
            *base,
            "recall",
            "--within",
            "30d",
            "--today",
            "2026-12-01",
            "--format",
            "csv",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    n = sum(
        1
        for i in range(20)
        if date.fromisoformat(instrument(i)["valid_until"]) <= TODAY + timedelta(days=30)
    )
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) == n + 1
    assert f"{n} instruments" in result.output
    result = runner.invoke(app, [*base, "recall", "--today", "2026-12-01"])
    assert result.exit_code == 0 and "due by 2026-12-31" in result.output
