"""A testing lab's scope in the register (issue 22) and errors in a report's test rows named
on their own row.

Real parts: the CSV and XLSX intake, a real SQLite ledger migrated by Alembic, the register's
import from real files, the issue path with its PAdES signature.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.config import Settings
from certissuer.errors import InputErrors, IssueRefused
from certissuer.intake import read_certificates
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger, migrations
from certissuer.model import TestingReport, parse_certificate
from certissuer.registry import Register

from .conftest import PASSPHRASE, ROOT, lab_settings, load_json

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


# --- the testing scope in the register ---------------------------------------------------------

ROWS = ROOT / "tests" / "data" / "testing-rows.json"
SCOPE_CSV = (
    "parameter,method,lower,upper,unit,accreditation\n"
    "pH,TCVN 6492,,,,VILAS 1234\n"
    "Clo dư,TCVN 6225-3,,,,VILAS 1234\n"
    "Chì / Lead,SMEWW 3113B,0.001,1,mg/L,VILAS 1234\n"
)


def _register(settings: Settings, ledger: Ledger) -> Register:
    return Register(ledger.engine, lab_code=settings.lab_code)


@pytest.fixture
def lab(tmp_path: Path, pki: KeyPaths, sealer: Any, renderer: Any) -> tuple[Settings, Issuer]:
    # The profile's testing scope would accredit E. coli; the register's lines decide.
    settings = lab_settings(pki, ledger=tmp_path).replace(
        lab_accreditation="VILAS 1234", lab_testing_scope=("E. coli | TCVN 6187",)
    )
    ledger = Ledger.open(settings.ledger_url, ledger_key=load_token_key(settings))
    issuer = Issuer(
        settings,
        ledger=ledger,
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path / "out",
        renderer=renderer,
    )
    register = _register(settings, ledger)
    register.add("lab", {"code": settings.lab_code, "accreditation": "VILAS 1234"})
    (tmp_path / "scope.csv").write_text(SCOPE_CSV, "utf-8")
    report = register.import_file("testing-scope", tmp_path / "scope.csv")
    assert report.imported == 3 and report.errors == []
    return settings, issuer


def test_register_lines_accredit_rows_inside_and_mark_rows_outside(
    lab: tuple[Settings, Issuer],
) -> None:
    _, issuer = lab
    issued = issuer.issue(parse_certificate(load_json(ROWS)))
    entry = issuer.ledger.get(issued.number)
    assert entry is not None
    stored = parse_certificate(json.loads(entry.data_json), stored=True)
    assert isinstance(stored, TestingReport)
    # pH, chlorine and lead are in the register's lines; E. coli (only in the profile's line)
    # and turbidity are outside them: marked not accredited
    assert [r.accredited for r in stored.tests] == [None, None, None, False, False]


def test_register_lines_refuse_a_row_typed_accredited_outside_them(
    lab: tuple[Settings, Issuer],
) -> None:
    _, issuer = lab
    data = copy.deepcopy(load_json(ROWS))
    data["tests"][2]["result"] = "2"  # lead 2 mg/L: outside the register line's 0.001..1 mg/L
    data["tests"][2]["uncertainty"] = "0.1"  # (guarded acceptance needs U)
    data["tests"][2]["accredited"] = True
    del data["tests"][2]["conformity"]
    with pytest.raises(IssueRefused) as caught:
        issuer.issue(parse_certificate(data))
    assert "tests[2] (Chì / Lead, SMEWW 3113B:2017) is typed accredited" in str(caught.value)
    assert "the register's testing scope" in str(caught.value)
    assert "registry add testing-scope" in (caught.value.hint or "")
    assert issuer.ledger.entries() == []


def test_import_errors_name_file_row_and_field(ledger: Ledger, tmp_path: Path) -> None:
    register = Register(ledger.engine, lab_code="T01")
    register.add("lab", {"code": "T01"})
    path = tmp_path / "scope.csv"
    path.write_text(
        "parameter,method,lower,upper,unit,accreditation\n"
        "Chì / Lead,SMEWW 3113B,0.001,1,mg/L,VILAS 1234\n"  # row 2: good
        "Cadimi,SMEWW 3113B,0.001,,mg/L,\n"  # row 3: a range without its upper end
        "Asen,SMEWW 3114B,1,0.5,mg/L,\n"  # row 4: upper below lower
        ",TCVN 6492,,,,\n"  # row 5: no parameter
        "Thuỷ ngân,SMEWW 3112B,abc,1,mg/L,\n"  # row 6: not a number
        "Nitrat,TCVN 6180,0,50,,\n",  # row 7: a range without its unit
        "utf-8",
    )
    report = register.import_file("testing-scope", path)
    assert report.imported == 1
    found = [(e.path, e.row, e.field) for e in report.errors]
    assert found == [
        (str(path), 3, "upper"),
        (str(path), 4, "upper"),
        (str(path), 5, "parameter"),
        (str(path), 6, "lower"),
        (str(path), 7, "unit"),
    ], [str(e) for e in report.errors]
    assert "expected a value not below lower (1), got 0.5" in str(report.errors[1])
    assert "expected a number, got 'abc'" in str(report.errors[3])
    (line,) = register.testing_scope_lines()
    assert line.parameter == "Chì / Lead" and line.unit == "mg/L" and line.upper == 1


def test_cli_imports_lists_and_exports_the_testing_scope(
    tmp_path: Path, pki: KeyPaths, sealer: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "R1"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'url_base = "https://verify.test.invalid"\n[ledger]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode(), "COLUMNS": "200"}

    def run(*args: str) -> Any:
        return runner.invoke(app, ["--config", str(profile), *args], env=env)

    assert run("registry", "add", "lab", "code=R1").exit_code == 0
    (tmp_path / "scope.csv").write_text(SCOPE_CSV, "utf-8")
    done = run("registry", "import", "testing-scope", str(tmp_path / "scope.csv"))
    assert done.exit_code == 0, done.stderr
    assert "3 imported, 0 rejected" in done.stdout
    listed = run("registry", "list", "testing-scope")
    assert listed.exit_code == 0, listed.stderr
    assert "SMEWW 3113B" in listed.stdout and "VILAS 1234" in listed.stdout
    out = tmp_path / "out.xlsx"
    exported = run("registry", "export", "testing-scope", "--out", str(out))
    assert exported.exit_code == 0 and "wrote 3 rows" in exported.stdout, exported.stderr
    # the export imports again, updating the same three lines
    again = run("registry", "import", "testing-scope", str(out))
    assert again.exit_code == 0 and "3 imported" in again.stdout, again.stderr
    register = Register(sa.create_engine(url), lab_code="R1")
    assert len(register.list("testing-scope")) == 3


def test_migration_0011_keeps_a_0010_registers_data(any_ledger_url: str) -> None:
    engine = sa.create_engine(any_ledger_url)
    assert migrations.upgrade(engine, "0010") == "0010"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO registry_lab (code, name_vi, name_en, address_vi, "
                             "address_en, designation, accreditation) VALUES "
                             "('T01', 'PTN', '', '', '', '', 'VILAS 1234')"))  # fmt: skip
        conn.execute(sa.text("INSERT INTO registry_scope (lab_code, kind, quantity, "
                             "instrument_type, unit, lower, upper, signatories, cmc) VALUES "
                             "('T01', 'calibration', 'khối lượng', '', 'g', '0', '500', "
                             "'Lê Hoàng Phúc', '0.01 mg')"))  # fmt: skip
        assert "registry_testing_scope" not in sa.inspect(conn).get_table_names()
    assert migrations.upgrade(engine) == "0011"
    register = Register(engine, lab_code="T01")
    assert register.enabled() and register.has_scope()
    (scope,) = register.list("scope")
    assert scope["cmc"] == "0.01 mg" and scope["signatories"] == "Lê Hoàng Phúc"
    assert register.list("testing-scope") == [] and register.testing_scope_lines() == ()
    register.add("testing-scope", {"parameter": "pH", "method": "TCVN 6492"})
    (line,) = register.testing_scope_lines()
    assert line.parameter == "pH" and line.method == "TCVN 6492" and line.lower is None
    engine.dispose()
