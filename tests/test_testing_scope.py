"""A testing lab's scope in the register (issue 22) and errors in a report's test rows named
on their own row.

Real parts: the CSV and XLSX intake, a real SQLite ledger migrated by Alembic, the register's
import from real files, the issue path with its PAdES signature.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from certissuer.errors import InputErrors
from certissuer.intake import read_certificates

MAIN = (
    "ref,kind,item.name,item.serial,customer.name,place_of_calibration,method,received,"
    "calibrated,decision_rule,sampling,performed_by.name,signatory.name\n"
    "TN-A,testing,Mẫu nước,M-1,Công ty A,PTN,SMEWW 3113B:2017,2026-11-20,2026-11-21,"
    "simple,lab,Nguyễn A,Lê Hoàng Phúc\n"
    "TN-B,testing,Mẫu nước,M-2,Công ty A,PTN,SMEWW 3113B:2017,2026-11-20,2026-11-21,"
    ",lab,Nguyễn A,Lê Hoàng Phúc\n"
)
TESTS = (
    "ref,parameter,result,unit,uncertainty,limit_max,requirement_source,conformity\n"
    "TN-A,Chì / Lead,0.004,mg/L,0.001,0.01,QCVN 01-1:2018/BYT,đạt\n"
    "TN-A,Cadimi / Cadmium,0.006,mg/L,,0.003,QCVN 01-1:2018/BYT,đạt\n"
    "TN-B,Chì / Lead,0.004,mg/L,,,,\n"
    "TN-B,Asen / Arsenic,0.002,mg/L,,0.01,QCVN 01-1:2018/BYT,\n"
)
STANDARDS = (
    "ref,name,certificate_number,calibration_due\n"
    "TN-A,Máy AAS,HC-1,2027-01-01\nTN-B,Máy AAS,HC-1,2027-01-01\n"
)


def _messages(path: Path) -> list[str]:
    """Each error as "file, row N, field 'F': problem" with the file's name only."""
    with pytest.raises(InputErrors) as caught:
        read_certificates(path)
    return [str(e).replace(f"{path.parent}/", "") for e in caught.value.errors]


def test_a_problem_across_a_reports_rows_names_the_tests_file_and_its_row(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(MAIN, "utf-8")
    (tmp_path / "t.tests.csv").write_text(TESTS, "utf-8")
    (tmp_path / "t.standards.csv").write_text(STANDARDS, "utf-8")
    messages = _messages(tmp_path / "t.csv")
    # TN-A: the cadmium row's typed 'đạt' contradicts 0.006 against ≤ 0.003 (row 3 of the file)
    assert any(
        m.startswith("t.tests.csv, row 3, field 'conformity': conformity is typed 'pass'")
        for m in messages
    ), messages
    # TN-B: a limit without a decision rule, on the arsenic row (row 5) and its limit column
    assert any(
        m.startswith("t.tests.csv, row 5, field 'limit_max': a limit is given") for m in messages
    ), messages
    assert len(messages) == 2, messages


def test_the_same_in_a_workbook_names_the_tests_sheet_and_its_row(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    for i, (title, text) in enumerate(
        (("certificates", MAIN), ("tests", TESTS), ("standards", STANDARDS))
    ):
        sheet = wb.active if i == 0 else wb.create_sheet()
        assert sheet is not None
        sheet.title = title
        for line in text.splitlines():
            sheet.append(line.split(","))
    wb.save(tmp_path / "t.xlsx")
    messages = _messages(tmp_path / "t.xlsx")
    assert any(
        m.startswith("t.xlsx [tests], row 3, field 'conformity': conformity is typed")
        for m in messages
    ), messages
    assert any(m.startswith("t.xlsx [tests], row 5, field 'limit_max'") for m in messages), messages
