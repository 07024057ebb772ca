"""Testing reports (phiếu kết quả thử nghiệm, issue 22): the third kind of document.

Real parts: the JSON intake, the template rendered by z3c.rml, a PAdES signature checked by
pyHanko and by the verifier, a real SQLite ledger, the web page through FastAPI's TestClient,
the sector export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from certissuer.config import Settings
from certissuer.errors import InputErrors, SignerRefused
from certissuer.intake import read_certificates
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths, make_keys
from certissuer.ledger import Ledger
from certissuer.model import Kind, TestingReport, data_digest, parse_certificate
from certissuer.report.sector import SectorFormat, sector_export, write_sector_export
from certissuer.verify import Verdict, Verifier

from .conftest import HEAD, PASSPHRASE, ROOT, lab_settings, load_json

SAMPLE = ROOT / "tests" / "data" / "testing.json"


@pytest.fixture
def lab(tmp_path: Path, pki: KeyPaths, sealer: Any, renderer: Any) -> tuple[Settings, Issuer]:
    settings = lab_settings(pki, ledger=tmp_path)
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


def _report() -> TestingReport:
    records = read_certificates(SAMPLE)
    assert len(records) == 1
    cert = records[0].cert
    assert isinstance(cert, TestingReport)
    return cert


def pdf_text(path: Path) -> str:
    """The words of `path` as pdftotext reads them, spaces squeezed (table cells wrap)."""
    out = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True)
    return " ".join(out.stdout.decode().split())


def _signers(pdf: bytes, ca: Path) -> list[str]:
    root = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate(ca.read_bytes()).public_bytes(serialization.Encoding.DER)
    )
    ctx = ValidationContext(trust_roots=[root])
    names = []
    for sig in PdfFileReader(BytesIO(pdf)).embedded_signatures:
        status = validate_pdf_signature(sig, ctx)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        names.append(sig.signer_cert.subject.native["common_name"])
    return names


def test_json_intake_reads_a_testing_report_and_names_the_kind() -> None:
    cert = _report()
    assert cert.kind is Kind.TESTING and cert.signatory.name == HEAD
    assert cert.item.serial == "M-2026-0088"
    # A kind nobody knows is refused, and the hint now names the third kind.
    bad = load_json(SAMPLE) | {"kind": "tests"}
    path = SAMPLE.parent / "does-not-exist.json"
    with pytest.raises(InputErrors) as caught:
        from certissuer.intake.validate import Place, judge

        result = judge(str(path), bad, Place(str(path), 1, "x"), [])
        raise InputErrors(list(result.errors))  # type: ignore[union-attr]
    assert "'testing' is thử nghiệm" in str(caught.value.errors[0].hint)


def test_the_data_digest_of_the_other_kinds_is_unchanged(cal_cert: Any, ver_cert: Any) -> None:
    # Issue 22 adds a kind; the canonical form of the existing kinds stays byte for byte.
    assert b'"kind":"calibration"' in cal_cert.model_dump_json().encode().replace(b" ", b"")
    cal_data = load_json(ROOT / "samples" / "calibration.json")
    as_testing = parse_certificate({**cal_data, "kind": "testing"})
    assert data_digest(as_testing) != data_digest(cal_cert)  # the kind is in the digest
    assert data_digest(parse_certificate(cal_data)) == data_digest(cal_cert)


def test_issue_verify_page_revoke_and_sector_export(
    lab: tuple[Settings, Issuer], pki: KeyPaths, tmp_path: Path
) -> None:
    settings, issuer = lab
    issued = issuer.issue(_report())
    year = issued.number.split("-")[1]
    assert issued.kind == "testing" and issued.number == f"TN-{year}-000001"
    pdf = issued.path.read_bytes()
    # One signature, by the authorised person printed on the report, valid and trusted.
    assert _signers(pdf, pki.ca_cert) == [HEAD]
    text = pdf_text(issued.path)
    for words in (
        "PHIẾU KẾT QUẢ THỬ NGHIỆM",
        "TEST REPORT",
        "Mẫu thử nghiệm",
        "Ngày nhận mẫu",
        "Phương pháp thử",
        "Kết quả thử nghiệm chỉ có giá trị đối với mẫu thử nghiệm.",
        "The results relate only to the items tested.",
        "Người phê duyệt",
        "TCVN 6492:2011",
        "7.21",
    ):
        assert words in text, words
    assert text.index("PHIẾU KẾT QUẢ THỬ NGHIỆM") < text.index("TEST REPORT")

    entry = issuer.ledger.get(issued.number)
    assert entry is not None and entry.kind == "testing"
    assert entry.instrument_name.startswith("Mẫu nước sinh hoạt")
    assert entry.instrument_serial == "M-2026-0088"
    assert entry.customer_name == "Công ty Cổ phần Cấp nước Sa Đéc"
    assert entry.work_date == date(2026, 11, 21)

    verifier = Verifier.from_settings(settings, ledger=issuer.ledger)
    report = verifier.verify_pdf(pdf)
    assert report.verdict is Verdict.VALID, report.reasons
    altered = pdf.replace(b"M-2026-0088", b"M-2026-0089")
    if altered != pdf:
        assert verifier.verify_pdf(altered).verdict is not Verdict.VALID

    from certissuer.web import create_app

    web = settings.replace(web_rate_limit=0, web_pdf_workers=1)
    token = issued.url.rsplit("/V/", 1)[1]
    with TestClient(create_app(web)) as client:
        html = client.get(f"/v/{token}").text
        assert 'data-verdict="valid"' in html
        assert "PHIẾU KẾT QUẢ THỬ NGHIỆM" in html and "TEST REPORT" in html
        assert "Mẫu thử nghiệm" in html and "Ngày thử nghiệm" in html
        assert "HIỆU CHUẨN" not in html
        assert "M-2026-0088" in html
        # The results table has the test's own columns, not the calibration's (issue 22).
        table = html[html.index('<table id="test-results">') : html.index("</table>")]
        for words in ("Kết quả thử nghiệm", "Test results", "Chỉ tiêu thử nghiệm", "Result"):
            assert words in table, words
        assert "pH (25 °C)" in table and "Clo dư / Residual chlorine" in table
        assert "<td>7.210</td><td>0.050</td>" in table and "<td>0.420</td><td>0.030</td>" in table
        assert "mg/L" in table
        for words in ("Sai số", "Error", "Giá trị danh định", "Nominal value", "Kết quả hiệu"):
            assert words not in html, words

        issuer.ledger.revoke(issued.number, reason="Sai mẫu / wrong sample", at=datetime.now(UTC))
        html = client.get(f"/v/{token}").text
        assert 'data-verdict="revoked"' in html
    assert verifier.verify_pdf(pdf).verdict is Verdict.REVOKED

    export = sector_export(issuer.ledger.engine, since=None, after=None, today=date.today())
    rows = [r for r in export.records["certificates"] if r["number"] == issued.number]
    assert len(rows) == 1 and rows[0]["kind"] == "testing" and rows[0]["status"] == "revoked"
    # The written export still follows its published schema (docs/sector-export.schema.json).
    out = tmp_path / "sector.json"
    write_sector_export(export, SectorFormat.JSON, out)
    schema = json.loads((ROOT / "docs" / "sector-export.schema.json").read_text("utf-8"))
    document = json.loads(out.read_text("utf-8"))
    assert [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(document)] == []

    if shutil.which("pdftoppm"):  # the page as a person sees it
        subprocess.run(
            ["pdftoppm", "-r", "60", "-png", str(issued.path), str(tmp_path / "page")], check=True
        )
        assert (tmp_path / "page-1.png").stat().st_size > 10_000


def test_a_signer_whose_key_names_someone_else_is_refused(
    tmp_path: Path, renderer: Any, pki: KeyPaths
) -> None:
    stranger = make_keys(
        tmp_path / "keys", passphrase=PASSPHRASE, organisation="Test lab", signer_name="Demo"
    )
    settings = lab_settings(stranger, ledger=tmp_path)
    ledger = Ledger.open(settings.ledger_url)
    issuer = Issuer.from_settings(settings, passphrase=PASSPHRASE, out_dir=tmp_path / "out")
    issuer.renderer = renderer
    with pytest.raises(SignerRefused) as caught:
        issuer.issue(_report())
    assert caught.value.field == "signatory.name"
    assert f"'{HEAD}' is printed over the signature" in str(caught.value)
    assert ledger.entries() == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_dcc_of_a_testing_report_reads_back_as_the_same_report(pki: KeyPaths) -> None:
    from certissuer import dcc

    folder = dcc.find_schema_dir()
    assert folder is not None, "the DCC schemas must be beside the project"
    cert = _report()
    xml = dcc.to_xml(
        cert, number="TN-2026-000001", settings=lab_settings(pki), schema=dcc.Schema.load(folder)
    )
    assert b"certissuer_testing" in xml
    back = dcc.read_certificate(xml, stored=True)
    assert isinstance(back, TestingReport)
    assert data_digest(back) == data_digest(cert)


def test_a_table_row_of_kind_testing_reads_as_a_testing_report(tmp_path: Path) -> None:
    # The table intake is generic by kind: the sample batch with its calibration row marked
    # "testing" gives a testing report with the same results and equipment.
    for path in (ROOT / "samples").glob("batch*.csv"):
        text = path.read_text("utf-8").replace("HC-REQ-2026-0417,calibration,", "TN-1,testing,")
        (tmp_path / path.name).write_text(text.replace("HC-REQ-2026-0417,", "TN-1,"), "utf-8")
    records = read_certificates(tmp_path / "batch.csv")
    kinds = {r.cert.ref: r.cert.kind for r in records}
    assert kinds["TN-1"] is Kind.TESTING
    report = next(r.cert for r in records if r.cert.ref == "TN-1")
    assert isinstance(report, TestingReport) and len(report.results) == 4


def test_the_activity_report_counts_no_testing_report_as_a_calibration(
    lab: tuple[Settings, Issuer], cal_data: dict[str, Any]
) -> None:
    # Form 5.BCHĐ counts verifications and calibrations: a test report is neither.
    from certissuer.report.activity import activity_report

    _, issuer = lab
    day = datetime(2026, 11, 25, 10, tzinfo=UTC)
    issuer.issue(_report(), now=day)
    issuer.issue(parse_certificate(cal_data), now=day)
    issuer.checkpoint(now=day)
    data = activity_report(issuer.ledger.engine, year=2026, lab_code="T01")
    assert data.calibrated_total == 1 and data.verified_total == 0


def test_the_cli_issues_and_verifies_a_testing_report(tmp_path: Path, pki: KeyPaths) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app

    profile = tmp_path / "lab.toml"
    profile.write_text(
        f"""
[lab]
code = "CLI1"
place = "Đồng Tháp"
[numbering]
testing = "PT"
[signing]
pkcs12 = "{pki.signer_p12}"
trust_roots = ["{pki.ca_cert}"]
[token]
key = "{pki.token_key}"
url_base = "https://verify.test.invalid"
[ledger]
url = "sqlite:///{tmp_path / "ledger.db"}"
""",
        encoding="utf-8",
    )
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["--config", str(profile), "issue", str(SAMPLE), "--out", str(out)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "issued PT-" in result.stdout  # the profile's own series for test reports
    (pdf,) = out.glob("*.pdf")
    result = runner.invoke(app, ["--config", str(profile), "verify", str(pdf)], env=env)
    assert result.exit_code == 0 and "HỢP LỆ / VALID" in result.stdout


OUTSIDE = "outside the laboratory's scope of accreditation"


@pytest.mark.parametrize(
    "scope",
    [
        ("0..14 1", "0..1 mg/L"),  # calibration lines covering every result: no mark
        ("0..1 mg/L",),  # the pH result outside them: no "outside the scope" claim either
        # a calibration CMC above the test's U (0.030 mg/L) does not refuse the report
        ("0..14 1", "0..1 mg/L, CMC 0.05 mg/L"),
    ],
)
def test_calibration_scope_lines_do_not_judge_a_testing_report(
    tmp_path: Path, pki: KeyPaths, sealer: Any, renderer: Any, scope: tuple[str, ...]
) -> None:
    # [lab] accredited_scope lines are calibration scope lines; a test report has no testing
    # scope data, so it carries neither the accreditation number nor a claim that it is
    # outside the scope.
    settings = lab_settings(pki, ledger=tmp_path).replace(
        lab_accreditation="VILAS 1234", lab_accredited_scope=scope
    )
    issuer = Issuer(
        settings,
        ledger=Ledger.open(settings.ledger_url, ledger_key=load_token_key(settings)),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path / "out",
        renderer=renderer,
    )
    text = pdf_text(issuer.issue(_report()).path)
    assert "PHIẾU KẾT QUẢ THỬ NGHIỆM" in text
    assert "VILAS 1234" not in text
    assert OUTSIDE not in text


def test_the_registers_calibration_scope_does_not_refuse_a_testing_report(
    tmp_path: Path, pki: KeyPaths, sealer: Any, renderer: Any
) -> None:
    """With calibration scope lines in the register and work outside the scope refused (the
    default), a test report is not refused as "outside the accreditation scope": those lines
    say nothing about testing."""
    settings = lab_settings(pki, ledger=tmp_path).replace(lab_accreditation="VILAS 1234")
    issuer = Issuer(
        settings,
        ledger=Ledger.open(settings.ledger_url, ledger_key=load_token_key(settings)),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path / "out",
        renderer=renderer,
    )
    issuer.register.add("lab", {"code": settings.lab_code, "name_vi": "PTN"})
    issuer.register.add("person", {"name": "Lê Hoàng Phúc", "signatory": "yes"})
    issuer.register.add("scope", {"kind": "calibration", "unit": "g", "lower": "0", "upper": "1"})
    text = pdf_text(issuer.issue(_report()).path)
    assert "PHIẾU KẾT QUẢ THỬ NGHIỆM" in text and "VILAS 1234" not in text
