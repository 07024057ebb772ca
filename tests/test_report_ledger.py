"""Signed reports are documents of the lab (issue 19): recorded in the ledger, verified as reports.

`certissuer report annual` signs the report, writes it and records it (kind, period, signer,
time, SHA-256, the checkpoint it counts, signed with the lab's ledger key); `certissuer verify`
says GENUINE REPORT of that file only, never VALID, and NOT GENUINE / NOT IN THE LEDGER of an
altered, extended, unrecorded or falsely recorded one.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from certissuer._vn import VIETNAM_TZ
from certissuer.cli import app
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger, ReportKind, ReportRecord
from certissuer.token import INFO_CHECKPOINT_KEY, TokenKey

from ._insider import sql
from .conftest import PASSPHRASE, SAMPLES

runner = CliRunner()
ENV = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
YEAR = datetime.now(VIETNAM_TZ).year


def _profile(root: Path, pki: KeyPaths, db: Path) -> Path:
    profile = root / "lab.toml"
    profile.write_text(
        f"""
[lab]
code = "RPT"
place = "Đồng Tháp"
[signing]
pkcs12 = "{pki.signer_p12}"
trust_roots = ["{pki.ca_cert}"]
[token]
key = "{pki.token_key}"
url_base = "https://verify.test.invalid"
[ledger]
url = "sqlite:///{db}"
""",
        encoding="utf-8",
    )
    return profile


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, pki: KeyPaths) -> dict[str, Any]:
    """A lab with one issued certificate and its signed annual report: paths and outputs."""
    root = tmp_path_factory.mktemp("report-ledger")
    profile = _profile(root, pki, root / "ledger.db")
    issued = runner.invoke(
        app,
        ["--config", str(profile), "issue", str(SAMPLES / "calibration.json"), "--json",
         "--out", str(root / "out")],
        env=ENV,
    )  # fmt: skip
    assert issued.exit_code == 0, issued.output
    pdf = root / "annual.pdf"
    made = runner.invoke(
        app,
        ["--config", str(profile), "report", "annual", "--year", str(YEAR), "--checkpoint",
         "--out", str(pdf)],
        env=ENV,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    return {
        "root": root,
        "profile": profile,
        "pdf": pdf,
        "made": made.output,
        "certificate": json.loads(issued.stdout)["issued"][0]["entry"]["pdf_path"],
    }


def _verify(profile: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["--config", str(profile), "verify", "--json", *args])
    assert result.exit_code in (0, 1, 10), result.output
    return result.exit_code, json.loads(result.stdout)


def _insider_copy(lab: dict[str, Any], tmp_path: Path, pki: KeyPaths) -> tuple[Path, Ledger]:
    """The lab's ledger copied to `tmp_path` with a profile on it, for an insider to edit."""
    for f in lab["root"].glob("ledger.db*"):
        shutil.copy(f, tmp_path / f.name)
    profile = _profile(tmp_path, pki, tmp_path / "ledger.db")
    return profile, Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", create=False)


def _checkpoint_in(pdf: bytes) -> str:
    from pyhanko.pdf_utils.reader import PdfFileReader

    info = PdfFileReader(io.BytesIO(pdf)).trailer["/Info"]
    return str(info["/" + INFO_CHECKPOINT_KEY])


def test_a_signed_report_is_recorded_and_verified_as_a_genuine_report(
    lab: dict[str, Any],
) -> None:
    pdf: Path = lab["pdf"]
    data = pdf.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert "recorded in the ledger" in lab["made"]

    listed = runner.invoke(app, ["--config", str(lab["profile"]), "ledger", "reports", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["kind"] == "annual" and row["period"] == f"{YEAR}-01-01/{YEAR}-12-31"
    assert row["pdf_sha256"] == sha and row["record"] == "signed"
    assert row["pdf_path"] == str(pdf.resolve()) and "Test lab" in row["signer"]
    assert _checkpoint_in(data) == f"{row['tree_size']} {row['root_hash']}"
    assert row["tree_size"] >= 1  # the certificate's issued event is counted
    plain = runner.invoke(app, ["--config", str(lab["profile"]), "ledger", "reports"])
    assert plain.exit_code == 0 and sha in plain.stdout and "(UTC+7)" in plain.stdout

    code, report = _verify(lab["profile"], str(pdf))
    assert code == 0, report
    assert report["verdict"] == "genuine_report" and report["genuine_report"] is True
    assert (report["label_vi"], report["label_en"]) == ("BÁO CÁO HỢP LỆ", "GENUINE REPORT")
    assert report["ok"] is False  # VALID means a valid certificate, which a report is not
    assert report["number"] is None and report["pdf_sha256"] == sha
    assert report["report_kind"] == "annual"
    assert report["report_period"] == f"{YEAR}-01-01/{YEAR}-12-31"
    assert report["report_title"] == f"Báo cáo đo lường năm {YEAR}"
    assert report["checkpoint"] == f"{row['tree_size']} {row['root_hash']}"
    assert report["report_signer"] == row["signer"]
    assert datetime.fromisoformat(report["report_issued_at"]) == datetime.fromisoformat(
        row["issued_at"]
    )
    assert report["signatures"][0]["valid"]
    # The check in one process says the same as the bounded one.
    assert _verify(lab["profile"], "--timeout", "0", str(pdf)) == (code, report)

    text = runner.invoke(app, ["--config", str(lab["profile"]), "verify", str(pdf)])
    assert text.exit_code == 0
    assert "BÁO CÁO HỢP LỆ / GENUINE REPORT" in text.stdout
    assert f"report:  annual · {YEAR}-01-01/{YEAR}-12-31" in text.stdout
    assert "(UTC+7) by" in text.stdout and f"checkpoint:  {report['checkpoint']}" in text.stdout

    # The certificate is still judged as a certificate.
    code, cert = _verify(lab["profile"], lab["certificate"])
    assert code == 0 and cert["verdict"] == "valid" and cert["genuine_report"] is False


def test_offline_a_report_is_the_labs_file_with_its_checkpoint_named(
    lab: dict[str, Any],
) -> None:
    code, report = _verify(lab["profile"], "--offline", str(lab["pdf"]))
    assert code == 10 and report["verdict"] == "file_ledger_not_consulted"
    assert report["checkpoint"] == _checkpoint_in(lab["pdf"].read_bytes())


def test_a_flipped_byte_makes_a_report_not_genuine(lab: dict[str, Any], tmp_path: Path) -> None:
    data = bytearray(lab["pdf"].read_bytes())
    at = data.index(b"stream") + 40  # inside the first content stream, under the signature
    data[at] ^= 0x01
    flipped = tmp_path / "flipped.pdf"
    flipped.write_bytes(bytes(data))
    code, report = _verify(lab["profile"], str(flipped))
    assert code == 1 and report["verdict"] == "altered", report
    assert report["genuine_report"] is False


def test_an_incremental_update_after_signing_makes_a_report_not_genuine(
    lab: dict[str, Any], tmp_path: Path, pki: KeyPaths
) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    # An insider changes the checkpoint the report names, in a revision after the signature.
    writer = IncrementalPdfFileWriter(io.BytesIO(lab["pdf"].read_bytes()))
    info = writer.trailer["/Info"].get_object()
    info[generic.NameObject("/" + INFO_CHECKPOINT_KEY)] = generic.TextStringObject("1 " + "0" * 64)
    writer.update_container(info)
    buf = io.BytesIO()
    writer.write(buf)
    updated = tmp_path / "updated.pdf"
    updated.write_bytes(buf.getvalue())
    code, report = _verify(lab["profile"], str(updated))
    assert code == 1 and report["verdict"] == "altered", report

    # Even a revision that changes nothing shown makes another file than the one recorded.
    writer = IncrementalPdfFileWriter(io.BytesIO(lab["pdf"].read_bytes()))
    writer.root[generic.NameObject("/CertissuerNote")] = generic.TextStringObject("x")
    writer.update_root()
    buf = io.BytesIO()
    writer.write(buf)
    updated.write_bytes(buf.getvalue())
    code, report = _verify(lab["profile"], str(updated))
    assert code == 1 and report["verdict"] == "altered", report

    # A second signature (a revision a certificate may carry after issue): another file.
    from pyhanko.sign import signers

    writer = IncrementalPdfFileWriter(io.BytesIO(lab["pdf"].read_bytes()))
    signer = signers.SimpleSigner.load_pkcs12(str(pki.signer_p12), passphrase=PASSPHRASE)
    assert signer is not None
    buf = io.BytesIO()
    signers.sign_pdf(
        writer, signers.PdfSignatureMetadata(field_name="Signature2"), signer=signer, output=buf
    )
    updated.write_bytes(buf.getvalue())
    code, report = _verify(lab["profile"], str(updated))
    assert code == 1 and report["verdict"] == "altered", report
    assert any("not the report the ledger records" in r for r in report["reasons"]), report

    appended = tmp_path / "appended.pdf"
    appended.write_bytes(lab["pdf"].read_bytes() + b"\n% later\n")
    code, report = _verify(lab["profile"], str(appended))
    assert code == 1 and report["verdict"] == "altered", report


def test_a_report_whose_record_an_insider_deleted_is_not_in_the_ledger(
    lab: dict[str, Any], tmp_path: Path, pki: KeyPaths
) -> None:
    profile, ledger = _insider_copy(lab, tmp_path, pki)
    code, report = _verify(profile, str(lab["pdf"]))
    assert code == 0  # the copy holds the record
    sql(ledger, "DELETE FROM ledger_report")
    code, report = _verify(profile, str(lab["pdf"]))
    assert code == 1 and report["verdict"] == "not_in_ledger", report
    assert any("records no report with this file's SHA-256" in r for r in report["reasons"])
    assert report["label_en"] == "NOT IN THE LEDGER"


def test_a_record_an_insider_wrote_or_edited_does_not_count(
    lab: dict[str, Any], tmp_path: Path, pki: KeyPaths
) -> None:
    profile, ledger = _insider_copy(lab, tmp_path, pki)
    sql(ledger, "UPDATE ledger_report SET period = '2020-01-01/2020-12-31'")
    code, report = _verify(profile, str(lab["pdf"]))
    assert code == 1 and report["verdict"] == "altered", report
    assert any("signature does not verify" in r for r in report["reasons"])
    listed = runner.invoke(app, ["--config", str(profile), "ledger", "reports", "--json"])
    assert json.loads(listed.stdout)[0]["record"].endswith("(edited or forged)")
    # A row inserted without the lab's key: unsigned, so the report is not in the ledger.
    sql(ledger, "UPDATE ledger_report SET signature = '', kid = ''")
    code, report = _verify(profile, str(lab["pdf"]))
    assert code == 1 and report["verdict"] == "not_in_ledger", report
    assert any("not signed by the lab" in r for r in report["reasons"])


def test_a_report_must_count_a_checkpoint_the_lab_signed(
    lab: dict[str, Any], tmp_path: Path, pki: KeyPaths
) -> None:
    profile, ledger = _insider_copy(lab, tmp_path, pki)
    sql(ledger, "DELETE FROM checkpoint")
    code, report = _verify(profile, str(lab["pdf"]))
    assert code == 1 and report["verdict"] == "altered", report
    assert any("not one the lab signed" in r for r in report["reasons"])


def test_a_report_signed_with_a_forged_checkpoint_is_not_genuine(
    lab: dict[str, Any], tmp_path: Path, pki: KeyPaths, sealer: Any
) -> None:
    # The lab's own signer and ledger key, a checkpoint nobody signed: the record is signed
    # and names the same checkpoint as the file, but the ledger holds no such checkpoint.
    from certissuer.config import load_settings
    from certissuer.report import (
        ReportCheckpoint,
        activity_report,
        publish_report,
        render_activity_pdf,
    )

    profile, ledger = _insider_copy(lab, tmp_path, pki)
    key = TokenKey.load(pki.token_key)
    real = ledger.latest_checkpoint()
    assert real is not None
    settings = load_settings(profile, {})
    data = activity_report(ledger.engine, year=YEAR, lab_code="RPT", settings=settings)
    forged = ReportCheckpoint(
        lab_code="RPT", tree_size=real.tree_size, root_hash="ab" * 32, at=real.at,
        kid=real.kid, log_size=real.tree_size, register_change=0,
    )  # fmt: skip
    out = tmp_path / "forged.pdf"
    publish_report(
        render_activity_pdf(data, settings=settings, signer_name=sealer.signer_name),
        sealer=sealer, ledger=ledger, ledger_key=key, checkpoint=forged,
        kind=ReportKind.ACTIVITY, period=(date(YEAR, 1, 1), date(YEAR, 12, 31)),
        title="x", location="Đồng Tháp", out=out, now=datetime.now(UTC),
    )  # fmt: skip
    code, report = _verify(profile, str(out))
    assert code == 1 and report["verdict"] == "altered", report
    assert any("holds no checkpoint" in r for r in report["reasons"])


def test_a_report_not_recorded_leaves_no_file(
    lab: dict[str, Any], tmp_path: Path, pki: KeyPaths
) -> None:
    profile, ledger = _insider_copy(lab, tmp_path, pki)
    sql(ledger, "DROP TABLE ledger_report")  # recording fails after the file is written
    out = tmp_path / "annual.pdf"
    result = runner.invoke(
        app,
        ["--config", str(profile), "report", "annual", "--year", str(YEAR), "--out", str(out)],
        env=ENV,
    )  # fmt: skip
    assert result.exit_code != 0 and not out.exists(), result.output
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".pdf", ".tmp")] == []
    assert PASSPHRASE.decode() not in result.output


@pytest.mark.parametrize(
    "any_ledger_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)  # fmt: skip
def test_migration_0009_adds_the_report_records(any_ledger_url: str, pki: KeyPaths) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    from certissuer.ledger import migrations

    engine = sa.create_engine(any_ledger_url)
    assert migrations.upgrade(engine, "0008") == "0008"
    assert "ledger_report" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    key = TokenKey.load(pki.token_key)
    ledger = Ledger.open(any_ledger_url, ledger_key=key)  # upgrades from 0008
    with ledger.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == migrations.head_revision()
        report = SQLModel.metadata.tables["ledger_report"]
        diff = [
            d for d in compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
            if report.name in repr(d)
        ]  # fmt: skip
    assert diff == []
    record = ledger.record_report(
        ReportRecord(
            lab_code="RPT", kind=ReportKind.ANNUAL.value, period="2026-01-01/2026-12-31",
            title="Báo cáo", issued_at=datetime(2026, 12, 4, tzinfo=UTC), signer="CN=x",
            pdf_sha256="AB" * 32, tree_size=0, root_hash="cd" * 32,
        )
    )  # fmt: skip
    stored = ledger.report_by_sha256("ab" * 32)
    assert stored is not None and stored.id == record.id and stored.kid == key.public.kid.hex()
    assert stored.title == "Báo cáo"
    from certissuer.ledger import report_record_problem

    assert report_record_problem(stored, [key.public]) is None
    from certissuer.errors import LedgerError

    with pytest.raises(LedgerError, match="already recorded"):
        ledger.record_report(ReportRecord(**{**stored.model_dump(), "id": None}))
    ledger.engine.dispose()


def test_the_web_page_says_genuine_report_for_an_uploaded_report(lab: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from certissuer.config import load_settings
    from certissuer.web import create_app

    settings = load_settings(lab["profile"], {}).replace(web_rate_limit=0, web_pdf_workers=1)
    data = lab["pdf"].read_bytes()
    with TestClient(create_app(settings)) as client:
        page = client.post("/verify", files={"file": ("r.pdf", data, "application/pdf")})
        api = client.post("/api/v1/verify", files={"file": ("r.pdf", data, "application/pdf")})
        flipped = bytearray(data)
        flipped[flipped.index(b"stream") + 40] ^= 0x01
        bad = client.post(
            "/api/v1/verify", files={"file": ("r.pdf", bytes(flipped), "application/pdf")}
        )
    html = page.text
    assert page.status_code == 200
    assert '<h1 id="verdict-vi" data-verdict="genuine_report">BÁO CÁO HỢP LỆ</h1>' in html
    assert 'id="verdict-en">GENUINE REPORT</p>' in html
    assert "not a certificate" in html and f"Báo cáo đo lường năm {YEAR}" in html
    assert "Compare the details below with the instrument" not in html
    answer = api.json()
    assert answer["verdict"] == "genuine_report" and answer["ok"] is False
    assert answer["report"]["kind"] == "annual"
    assert answer["report"]["checkpoint"] == _checkpoint_in(data)
    assert bad.json()["verdict"] == "altered" and bad.json()["report"] is None


def test_a_report_cannot_be_written_without_the_key_that_records_it(
    lab: dict[str, Any], tmp_path: Path, pki: KeyPaths
) -> None:
    profile, _ = _insider_copy(lab, tmp_path, pki)
    text = profile.read_text(encoding="utf-8")
    profile.write_text(text.replace(f'key = "{pki.token_key}"\n', ""), encoding="utf-8")
    out, xlsx = tmp_path / "annual.pdf", tmp_path / "annual.xlsx"
    result = runner.invoke(
        app,
        ["--config", str(profile), "report", "annual", "--year", str(YEAR), "--out", str(out),
         "--xlsx", str(xlsx)],
        env=ENV,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "no token key configured" in result.output
    assert not out.exists() and not xlsx.exists()
