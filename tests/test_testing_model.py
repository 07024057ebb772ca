"""Testing reports with rows of their own (issue 22): parameter, method, result (number, bound
or text), U, unit, requirement and a conformity computed under the report's decision rule.

Real parts: the JSON and CSV intake, the template rendered by z3c.rml and read back with
pdftotext, a PAdES signature checked by the verifier, a real SQLite ledger, the web page
through FastAPI's TestClient, the DCC written and read back, the annual report.
"""

from __future__ import annotations

import copy
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from certissuer.config import Settings, TestingScopeLine
from certissuer.errors import ConfigError, InputErrors, IssueRefused
from certissuer.intake import read_certificates
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import (
    RowConformity,
    TestingReport,
    TestResult,
    data_digest,
    parse_certificate,
)
from certissuer.verify import Verdict, Verifier

from .conftest import ROOT, lab_settings, load_json

ROWS = ROOT / "tests" / "data" / "testing-rows.json"
OLD = ROOT / "tests" / "data" / "testing.json"
PASS, FAIL, INCONCLUSIVE, NOT_ASSESSED = (
    RowConformity.PASS,
    RowConformity.FAIL,
    RowConformity.INCONCLUSIVE,
    RowConformity.NOT_ASSESSED,
)


def _data() -> dict[str, Any]:
    return copy.deepcopy(load_json(ROWS))


def _row(**fields: Any) -> TestResult:
    return TestResult(parameter="Chì / Lead", unit="mg/L", **fields)


def pdf_text(path: Path) -> str:
    out = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True)
    return " ".join(out.stdout.decode().split())


@pytest.mark.parametrize(
    ("result", "u", "limits", "simple", "guarded"),
    [
        ("0.005", "0.001", {"limit_max": "0.01"}, PASS, PASS),  # well inside
        ("0.0095", "0.001", {"limit_max": "0.01"}, PASS, INCONCLUSIVE),  # U straddles max
        ("0.0105", "0.001", {"limit_max": "0.01"}, FAIL, INCONCLUSIVE),  # just above, U back in
        ("0.02", "0.001", {"limit_max": "0.01"}, FAIL, FAIL),  # well above
        ("6.1", "0.2", {"limit_min": "6.0", "limit_max": "8.5"}, PASS, INCONCLUSIVE),
        ("5.7", "0.2", {"limit_min": "6.0", "limit_max": "8.5"}, FAIL, FAIL),
        ("8.5", "0.05", {"limit_min": "6.0", "limit_max": "8.5"}, PASS, INCONCLUSIVE),  # on it
    ],
)
def test_conformity_under_both_decision_rules(
    result: str, u: str, limits: dict[str, str], simple: RowConformity, guarded: RowConformity
) -> None:
    row = _row(result=result, uncertainty=u, **limits)
    assert row.conformity_under("simple") is simple
    assert row.conformity_under("guarded") is guarded


def test_bounds_and_text_results() -> None:
    # "< LOQ" under a maximum: the true value is below the bound, so it passes when the bound
    # is at or under the limit, and cannot be concluded when the bound is above it.
    assert _row(result="< 0.003", limit_max="0.01").conformity_under("guarded") is PASS
    assert _row(result="< 0.05", limit_max="0.01").conformity_under("simple") is INCONCLUSIVE
    assert _row(result="> 0.05", limit_max="0.01").conformity_under("simple") is FAIL
    assert _row(result="< 5", limit_min="6").conformity_under("simple") is FAIL
    # "not detected" with the method's LOQ reads as "< LOQ"
    nd = _row(result="không phát hiện / not detected", loq="0.003", limit_max="0.01")
    assert nd.conformity_under("guarded") is PASS and nd.printed_result.startswith("không")
    # a text requirement: the lab's typed conformity stands; without it, not assessed
    spec = {"requirement": "Không phát hiện / Not detected"}
    assert _row(result="không phát hiện", conformity="Đạt", **spec).conformity_under(None) is PASS
    assert _row(result="không phát hiện", **spec).conformity_under(None) is NOT_ASSESSED
    # no requirement at all: not assessed, whatever the rule
    assert _row(result="0.2").conformity_under("simple") is NOT_ASSESSED
    # U needs a numeric result; words for typed conformity are checked
    with pytest.raises(ValidationError, match="needs a numeric result"):
        _row(result="< 0.003", uncertainty="0.001")
    with pytest.raises(ValidationError, match="expected pass/đạt"):
        _row(result="0.2", conformity="ok")


def test_the_sample_report_reads_with_computed_verdicts_and_no_overall() -> None:
    (record,) = read_certificates(ROWS)
    cert = record.cert
    assert isinstance(cert, TestingReport) and cert.decision_rule == "guarded"
    # pH pass; chlorine 1.02 ± 0.05 against max 1.0: inconclusive under guarded acceptance;
    # lead "< 0.003" pass; E. coli text, typed pass; turbidity has no requirement.
    assert cert.row_conformities == [PASS, INCONCLUSIVE, PASS, PASS, NOT_ASSESSED]
    assert cert.overall is None  # one row was not assessed: no overall statement
    assert "results" not in cert.model_dump(mode="json")  # absent when empty
    data = _data()
    del data["tests"][4]
    assert parse_certificate(data).overall is INCONCLUSIVE
    data["decision_rule"] = "simple"
    assert parse_certificate(data).overall is FAIL  # 1.02 > 1.0 with U ignored


def test_a_typed_conformity_that_contradicts_the_computed_one_is_refused(tmp_path: Path) -> None:
    data = _data()
    data["tests"][1]["conformity"] = "Đạt"  # 1.02 ± 0.05 against ≤ 1.0: never pass (guarded)
    path = tmp_path / "bad.json"
    import json

    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    with pytest.raises(InputErrors) as caught:
        read_certificates(path)
    message = str(caught.value)
    assert "tests[1] (Clo dư / Residual chlorine)" in message
    assert "typed 'pass'" in message and "gives 'inconclusive'" in message
    assert "bad.json" in message
    # guarded acceptance without U on a numeric row is refused naming the row
    data = _data()
    del data["tests"][0]["uncertainty"]
    with pytest.raises(ValidationError, match=r"tests\[0\] \(pH \(25 °C\)\): guarded acceptance"):
        parse_certificate(data)
    # a limit without a decision rule is refused
    data = _data()
    del data["decision_rule"]
    with pytest.raises(ValidationError, match="names no decision_rule"):
        parse_certificate(data)


def test_the_earlier_calibration_shaped_report_keeps_its_digest() -> None:
    # The digest of tests/data/testing.json as issued before the testing rows existed.
    (record,) = read_certificates(OLD)
    cert = record.cert
    assert isinstance(cert, TestingReport) and cert.tests == [] and len(cert.results) == 2
    dumped = cert.model_dump(mode="json")
    for name in ("tests", "decision_rule", "tested_from", "sampling", "sampling_note"):
        assert name not in dumped
    # computed with the code before the testing rows were added
    assert data_digest(cert) == "dda7fa172446e725fda75157da06e474c266e96b104fc4910a9101fe09720425"


def test_testing_scope_lines() -> None:
    line = TestingScopeLine.parse("Chì / Lead | SMEWW 3113B | 0.001..1 mg/L")
    assert line.covers("Hàm lượng chì / Lead", "SMEWW 3113B:2017", "mg/L", Decimal("0.5"))
    assert not line.covers("Chì / Lead", "SMEWW 3113B:2017", "mg/L", Decimal("2"))
    assert not line.covers("Cadimi / Cadmium", "SMEWW 3113B:2017", "mg/L", Decimal("0.5"))
    with pytest.raises(ConfigError, match=r"\[lab\] testing_scope\[1\]"):
        Settings(lab_testing_scope=("pH | TCVN 6492", "Chì | SMEWW | 1..x mg/L"))


SCOPE = ("pH | TCVN 6492", "Clo dư | TCVN 6225-3", "Chì / Lead | SMEWW 3113B | 0.001..1 mg/L")


@pytest.fixture
def lab(tmp_path: Path, pki: KeyPaths, sealer: Any, renderer: Any) -> tuple[Settings, Issuer]:
    settings = lab_settings(pki, ledger=tmp_path).replace(
        lab_accreditation="VILAS 1234", lab_testing_scope=SCOPE
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
    return settings, issuer


def test_issue_render_page_verify_and_dcc(lab: tuple[Settings, Issuer], pki: KeyPaths) -> None:
    settings, issuer = lab
    issued = issuer.issue(parse_certificate(_data()))
    entry = issuer.ledger.get(issued.number)
    assert entry is not None
    stored = parse_certificate(load_json_text(entry.data_json), stored=True)
    assert isinstance(stored, TestingReport)
    # E. coli and turbidity are outside [lab] testing_scope: marked, the others are not
    assert [r.accredited for r in stored.tests] == [None, None, None, False, False]

    text = pdf_text(issued.path)
    for words in (
        "Chỉ tiêu thử nghiệm",
        "Phương pháp thử",
        "Yêu cầu kỹ thuật / Giới hạn",
        "Requirement / Limit",
        "Đánh giá",
        "Conformity",
        "SMEWW 3113B:2017",
        "< 0.003",
        "6.0 – 8.5",
        "QCVN 01-1:2018/BYT",
        "Không kết luận",
        "Inconclusive",
        "Không đánh giá Not assessed",
        "chấp nhận có dải bảo vệ",
        "guarded acceptance",
        "Mẫu do khách hàng lấy",
        "Mã mẫu M-2026-0101",
        "Sample ID",
        "21/11/2026 – 23/11/2026",
        "Kết quả thử nghiệm chỉ có giá trị đối với mẫu thử nghiệm.",
        "The results relate only to the items tested.",
        "E. coli #",
        "# Chỉ tiêu chưa được công nhận. # Parameter not accredited.",
        "VILAS 1234",  # three rows are accredited: the report keeps the mark
    ):
        assert words in text, words
    assert text.count(" Pass ") == 3 and text.count("Đạt ") == 3  # table cells wrap
    assert "Kết luận" not in text  # a row was not assessed: no overall statement

    verifier = Verifier.from_settings(settings, ledger=issuer.ledger)
    pdf = issued.path.read_bytes()
    assert verifier.verify_pdf(pdf).verdict is Verdict.VALID

    # The DCC inside the signed PDF reads back as the same report, every new field kept.
    from certissuer import dcc

    back = dcc.read_certificate(
        dcc.to_xml(
            stored,
            number=issued.number,
            settings=settings,
            schema=dcc.Schema.load(dcc.find_schema_dir()),  # type: ignore[arg-type]
        ),
        stored=True,
    )
    assert isinstance(back, TestingReport)
    assert back.tests == stored.tests and back.sampling == "customer"
    assert back.tested_from == date(2026, 11, 21)
    assert data_digest(back) == entry.data_digest
    # a DCC exported later claims the accreditation as the report did: by the testing scope,
    # never by calibration scope lines (which once covered an earlier report's results)
    from certissuer.dcc.write import in_profile_scope

    assert in_profile_scope(stored, settings)
    calibration_lines = settings.replace(lab_accredited_scope=("0..14 1", "0..1 mg/L"))
    assert not in_profile_scope(parse_certificate(load_json(OLD)), calibration_lines)

    web = settings.replace(web_rate_limit=0, web_pdf_workers=1)
    token = issued.url.rsplit("/V/", 1)[1]
    with TestClient(create_app(web)) as client:
        html = client.get(f"/v/{token}").text
        api = client.get(f"/api/v1/verdict/{token}").json()
    assert 'data-verdict="valid"' in html
    rows = api["certificate"]["tests"]
    assert [r["conformity_en"] for r in rows] == [
        "Pass", "Inconclusive", "Pass", "Pass", "Not assessed"
    ]  # fmt: skip
    assert rows[2]["result"] == "< 0.003" and rows[3]["accredited"] is False
    assert rows[1]["requirement"] == "0.2 – 1.0 (QCVN 01-1:2018/BYT)"
    table = html[html.index('<table id="test-results">') :]
    table = table[: table.index("</table>")]
    for words in ("Phương pháp thử", "Yêu cầu kỹ thuật / Giới hạn", "Đánh giá", "SMEWW 3113B:2017"):
        assert words in table, words
    assert "&lt; 0.003" in table and "1.02" in table and "0.05 (k = 2)" in table
    assert "Không kết luận" in table and "E. coli #" in table
    assert "chấp nhận có dải bảo vệ" in html


def load_json_text(text: str) -> Any:
    import json

    return json.loads(text, parse_float=Decimal)


def create_app(settings: Settings) -> Any:
    from certissuer.web import create_app as make

    return make(settings)


def test_a_row_typed_accredited_outside_the_scope_is_refused(
    lab: tuple[Settings, Issuer],
) -> None:
    _, issuer = lab
    data = _data()
    data["tests"][3]["accredited"] = True
    with pytest.raises(IssueRefused, match=r"tests\[3\] \(E\. coli, TCVN 6187-1:2019\)"):
        issuer.issue(parse_certificate(data))
    assert issuer.ledger.entries() == []


def test_all_rows_outside_the_scope_lose_the_mark_and_every_row_assessed_gives_the_overall(
    lab: tuple[Settings, Issuer],
) -> None:
    _, issuer = lab
    data = _data()
    data["tests"] = [data["tests"][0], data["tests"][2]]  # pH and lead
    data["tests"][0]["method"] = "TCVN 9999:2099"  # not in the scope
    data["tests"][1]["result"] = "5"  # lead 5 mg/L: outside the scope's range, fails
    data["decision_rule"] = "simple"  # (the lead row states no U)
    del data["tests"][1]["conformity"]  # typed "Đạt", which 5 mg/L contradicts
    data["ref"] = "TN-REQ-2"
    text = pdf_text(issuer.issue(parse_certificate(data)).path)
    assert "VILAS 1234" not in text and "outside the laboratory's scope" in text
    assert "Kết luận" in text and "không đạt yêu cầu ở ít nhất một chỉ tiêu" in text


MAIN = (
    "ref,kind,item.name,item.serial,customer.name,place_of_calibration,method,received,"
    "calibrated,decision_rule,sampling,performed_by.name,signatory.name\n"
    "TN-CSV-1,testing,Mẫu nước,M-1,Công ty A,PTN,SMEWW 3113B:2017,2026-11-20,2026-11-21,"
    "simple,lab,Nguyễn A,Lê Hoàng Phúc\n"
)
TESTS = (
    "ref,parameter,result,unit,uncertainty,limit_max,requirement_source,conformity\n"
    "TN-CSV-1,Chì / Lead,0.004,mg/L,0.001,0.01,QCVN 01-1:2018/BYT,đạt\n"
    "TN-CSV-1,Cadimi / Cadmium,0.006,mg/L,,0.003,QCVN 01-1:2018/BYT,\n"
)
STANDARDS = "ref,name,certificate_number,calibration_due\nTN-CSV-1,Máy AAS,HC-1,2027-01-01\n"


def test_csv_and_xlsx_intake_read_testing_rows_and_name_the_bad_field(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(MAIN, "utf-8")
    (tmp_path / "t.tests.csv").write_text(TESTS, "utf-8")
    (tmp_path / "t.standards.csv").write_text(STANDARDS, "utf-8")
    (record,) = read_certificates(tmp_path / "t.csv")
    cert = record.cert
    assert isinstance(cert, TestingReport)
    assert [r.parameter for r in cert.tests] == ["Chì / Lead", "Cadimi / Cadmium"]
    assert cert.row_conformities == [PASS, FAIL] and cert.overall is FAIL

    # the same as a workbook with a 'tests' sheet
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
    (from_xlsx,) = read_certificates(tmp_path / "t.xlsx")
    assert data_digest(from_xlsx.cert) == data_digest(cert)

    # a non-number in a numeric column: the list table, its row and the field are named
    (tmp_path / "t.tests.csv").write_text(TESTS.replace(",0.01,", ",abc,"), "utf-8")
    with pytest.raises(InputErrors) as caught:
        read_certificates(tmp_path / "t.csv")
    message = str(caught.value)
    assert "t.tests.csv, row 2" in message and "limit_max" in message, message
    # a typed verdict the figures contradict: the tests file's own row and column are named
    (tmp_path / "t.tests.csv").write_text(TESTS.replace("/BYT,\n", "/BYT,đạt\n"), "utf-8")
    with pytest.raises(InputErrors) as caught:
        read_certificates(tmp_path / "t.csv")
    message = str(caught.value)
    assert "t.tests.csv, row 3, field 'conformity': conformity is typed 'pass'" in message
    assert "gives 'fail' under the simple decision rule" in message


def test_the_annual_report_counts_testing_reports(
    lab: tuple[Settings, Issuer], cal_data: dict[str, Any], tmp_path: Path
) -> None:
    from certissuer.report import annual_report, render_annual_pdf, write_annual_xlsx

    settings, issuer = lab
    day = datetime(2026, 11, 25, 10, tzinfo=UTC)
    issuer.issue(parse_certificate(_data()), now=day)
    old = load_json(OLD)
    issuer.issue(parse_certificate(old), now=day)
    issuer.issue(parse_certificate(cal_data), now=day)
    issuer.checkpoint(now=day)
    # counted independently: the ledger's entries by kind
    kinds = [e.kind for e in issuer.ledger.entries()]
    expected = {k: kinds.count(k) for k in ("testing", "calibration", "verification")}
    assert expected == {"testing": 2, "calibration": 1, "verification": 0}

    data = annual_report(issuer.ledger.engine, year=2026, until=date(2026, 11, 30))
    assert sum(data.issued["testing"]) == expected["testing"]
    assert data.issued["testing"][10] == 2  # November
    assert sum(data.issued["calibration"]) == expected["calibration"]
    assert data.issued_total == 3
    (lab_row,) = data.labs
    assert (lab_row.testing, lab_row.calibration) == (2, 1)

    out = tmp_path / "annual.pdf"
    out.write_bytes(render_annual_pdf(data, settings=settings, signer_name="Lê Hoàng Phúc"))
    text = pdf_text(out)
    assert "Phiếu kết quả thử nghiệm đã cấp / Test reports issued 2" in text
    assert "Thử nghiệm / Testing" in text
    write_annual_xlsx(data, tmp_path / "annual.xlsx")
    from openpyxl import load_workbook

    wb = load_workbook(tmp_path / "annual.xlsx")
    summary = {r[0]: r[1] for r in wb["summary"].iter_rows(values_only=True)}
    assert summary["issued_testing"] == 2
    labs = list(wb["labs"].iter_rows(values_only=True))
    assert labs[0][4] == "testing" and labs[1][4] == 2
