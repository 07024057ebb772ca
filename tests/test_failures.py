"""A failed verification (issue 16): a signed notice of failure, and the earlier certificate
of the same instrument then verifies NO LONGER VALID, in ``verify``, ``verify --qr`` and on
the page; ``ledger failures`` lists it. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from certissuer.cli import _state as cli_state
from certissuer.cli import app
from certissuer.config import load_settings
from certissuer.keys import KeyPaths

from ._forge import pdftotext
from .conftest import PASSPHRASE, SAMPLES, load_json

runner = CliRunner()

REASON_VI = "phương tiện đo không đạt khi kiểm định lại"


@dataclass
class Lab:
    root: Path
    profile: Path
    env: dict[str, str]

    def run(self, *args: str) -> tuple[int, str, str]:
        r = runner.invoke(app, ["--config", str(self.profile), *args], env=self.env)
        return r.exit_code, r.stdout, r.stderr


@dataclass
class Failed:
    code: int
    stderr: str
    notice: Path


@pytest.fixture
def lab(tmp_path: Path, pki: KeyPaths, any_ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Lab:
    # Tables one row per line: the CLI's consoles 200 columns wide. COLUMNS in the command's
    # environment is not enough: rich fixes a console's width when the console is made if
    # COLUMNS is set then, and pytest-xdist's workers start with COLUMNS=80.
    for console in (cli_state.out, cli_state.err):
        monkeypatch.setattr(console, "_width", 200)
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "R1"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'url_base = "https://verify.test.invalid"\n[ledger]\nurl = "{any_ledger_url}"\n',
        encoding="utf-8",
    )
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    lab = Lab(tmp_path, profile, env)
    # The instrument's certificate of this year, before it fails its next verification.
    code, _, err = lab.run(
        "issue", "--out", str(tmp_path / "out"), str(SAMPLES / "verification.json")
    )
    assert code == 0, err
    return lab


def _fail(lab: Lab) -> Failed:
    """Re-verify the same instrument after the sample's verification; check 2 fails.

    The date is after the sample's (2026-11-25) and never in the future (issue 16's checks);
    the valid-until date is computed from it."""
    data = load_json(SAMPLES / "verification.json")
    data["ref"] = "KD-REQ-2027-0001"
    data["verification_date"] = "2026-12-01"
    del data["valid_until"]
    data["checks"][1]["error"] = "-0.35"  # beyond the MPE of 0.10 L
    path = lab.root / "failed.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    code, _, err = lab.run("issue", "--out", str(lab.root / "out"), str(path))
    (notice,) = (lab.root / "out").glob("TB-*.pdf")
    return Failed(code, err, notice)


def _earlier_number(lab: Lab) -> str:
    code, out, _ = lab.run("ledger", "list", "--kind", "verification", "--json")
    assert code == 0
    (row,) = json.loads(out)
    return str(row["number"])


def test_a_failed_verification_issues_a_signed_notice(lab: Lab) -> None:
    failed = _fail(lab)
    assert failed.code == 9  # the record is still refused a certificate: scripts notice
    assert "notice of failure TB-" in failed.stderr and "rejected" in failed.stderr
    text = " ".join(pdftotext(failed.notice.read_bytes()).split())
    assert "THÔNG BÁO KẾT QUẢ KIỂM ĐỊNH KHÔNG ĐẠT" in text
    assert "NOTICE OF FAILED VERIFICATION" in text
    assert "-0.35" in text or "−0.35" in text  # the failing check with its error
    assert "0.04" not in text  # a passing check is not listed
    assert "Phương tiện đo không đạt yêu cầu kỹ thuật đo lường" in text
    assert "Yêu cầu gỡ bỏ tem kiểm định cũ" in text
    assert "The previous verification stamp must be removed" in text
    assert _earlier_number(lab) in text  # the earlier certificate it makes no longer valid
    assert "Trang 1/1 (Page 1 of 1)" in text  # one page, like the certificate it replaces
    code, out, _ = lab.run("verify", "--json", str(failed.notice))
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "valid" and report["kind"] == "failure"
    assert report["signatures"] and report["number"].startswith("TB-")
    # Rerunning the same failed record issues nothing new and still exits 9.
    again = _fail(lab)
    assert again.code == 9 and again.notice == failed.notice


def test_the_earlier_certificate_is_no_longer_valid_everywhere(lab: Lab) -> None:
    earlier = _earlier_number(lab)
    pdf = next((lab.root / "out").glob("K*.pdf"))
    code, out, _ = lab.run("verify", "--json", str(pdf))
    assert code == 0 and json.loads(out)["verdict"] == "valid"
    failed = _fail(lab)

    code, out, _ = lab.run("verify", "--json", str(pdf))
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "no_longer_valid"
    assert (report["label_vi"], report["label_en"]) == ("HẾT HIỆU LỰC", "NO LONGER VALID")
    assert any(REASON_VI in r for r in report["reasons"])

    code, out, _ = lab.run("ledger", "show", earlier, "--json")
    assert code == 0
    token = json.loads(out)["token"]
    code, out, _ = lab.run("verify", "--qr", f"https://verify.test.invalid/v/{token}")
    assert code == 1 and "NO LONGER VALID" in out and REASON_VI in out

    from certissuer.web import create_app

    settings = load_settings(lab.profile).replace(web_rate_limit=0, web_pdf_workers=1)
    code, out, _ = lab.run("ledger", "show", failed.notice.stem, "--json")
    notice_token = json.loads(out)["token"]
    with TestClient(create_app(settings)) as client:
        html = client.get(f"/v/{token}").text
        notice_html = client.get(f"/v/{notice_token}").text
    # The notice itself is genuine and current, and its page says what it is.
    assert 'data-verdict="valid"' in notice_html
    assert "THÔNG BÁO KẾT QUẢ KIỂM ĐỊNH KHÔNG ĐẠT" in notice_html
    assert "NOTICE OF FAILED VERIFICATION" in notice_html
    assert f"HẾT HIỆU LỰC ({REASON_VI})" in html
    assert "NO LONGER VALID (the instrument failed re-verification)" in html
    assert 'data-verdict="no_longer_valid"' in html


def test_ledger_failures_lists_the_notice(lab: Lab) -> None:
    failed = _fail(lab)
    earlier = _earlier_number(lab)
    code, out, _ = lab.run("ledger", "failures", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["number"] == failed.notice.stem and row["kind"] == "failure"
    assert row["earlier"] == earlier and row["instrument_serial"] == "TS-2019-88231"
    assert row["customer_name"].startswith("Cửa hàng xăng dầu số 12")
    assert row["status"] == "valid"
    code, out, _ = lab.run("ledger", "failures")
    assert code == 0 and failed.notice.stem in out and earlier in out and "TS-2019-88231" in out


def test_a_run_with_a_failed_record_issues_the_others_and_exits_9(lab: Lab) -> None:
    failed = _fail(lab)  # writes failed.json; rerun it first in a run with a calibration
    code, _, err = lab.run(
        "issue",
        "--out",
        str(lab.root / "run"),
        str(lab.root / "failed.json"),
        str(SAMPLES / "calibration.json"),
    )
    assert code == 9 and failed.notice.stem in err
    assert len(list((lab.root / "run").glob("HC-*.pdf"))) == 1  # the calibration is issued


def test_a_failure_is_recorded_once_per_record(lab: Lab) -> None:
    from sqlmodel import Session, select

    from certissuer.ledger import FailedVerification, Ledger

    _fail(lab)
    _fail(lab)  # a rerun of the same record
    ledger = Ledger.open(load_settings(lab.profile).ledger_url, create=False)
    with Session(ledger.engine) as s:
        (row,) = s.exec(select(FailedVerification)).all()
    ledger.engine.dispose()
    assert row.ref == "KD-REQ-2027-0001" and row.instrument_serial == "TS-2019-88231"


def test_a_lab_template_folder_without_the_notice_form_borrows_the_shipped_one(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    # A lab that copied the templates before notices of failure existed has no
    # failure.rml.j2: the notice is still issued, from the shipped form, and stderr says so
    # once per run however many notices it makes.
    import shutil

    from certissuer._files import default_template_dir

    mine = lab.root / "my-templates"
    shutil.copytree(default_template_dir(), mine)
    (mine / "failure.rml.j2").unlink()
    with lab.profile.open("a", encoding="utf-8") as f:
        f.write('[render]\ntemplate_dir = "my-templates"\n')
    records = []
    for ref, serial in (("KD-REQ-2027-0001", None), ("KD-REQ-2027-0002", "OTHER-1")):
        data = load_json(SAMPLES / "verification.json")
        data["ref"], data["verification_date"] = ref, "2026-12-01"
        del data["valid_until"]
        data["checks"][1]["error"] = "-0.35"
        if serial:
            data["instrument"]["serial"] = serial
            data.pop("stamp_number", None)
        records.append(data)
    path = lab.root / "failed.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="certissuer.render.renderer"):
        code, _, err = lab.run("issue", "--out", str(lab.root / "out"), str(path))
    assert code == 9, err
    notices = sorted((lab.root / "out").glob("TB-*.pdf"))
    assert len(notices) == 2, err
    text = " ".join(pdftotext(notices[0].read_bytes()).split())
    assert "THÔNG BÁO KẾT QUẢ KIỂM ĐỊNH KHÔNG ĐẠT" in text
    said = [r.getMessage() for r in caplog.records if "failure.rml.j2" in r.getMessage()]
    assert len(said) == 1, said
    assert str(mine.resolve()) in said[0] and "shipped with certissuer" in said[0]


def test_a_notice_only_run_counts_the_notice_and_signs_a_checkpoint(lab: Lab) -> None:
    failed = _fail(lab)  # writes failed.json and issues its notice (text summary below)
    lab_out = lab.root / "again"
    data = load_json(lab.root / "failed.json")
    data["ref"] = "KD-REQ-2027-0002"  # a new record: a new notice
    path = lab.root / "failed2.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    code, out, _ = lab.run("issue", "--json", "--out", str(lab_out), str(path))
    report = json.loads(out)
    assert code == 9 and report["counts"]["notices"] == 1 and report["counts"]["issued"] == 0
    assert report["checkpoint"] is not None  # the lab vouches for the log with the notice in it
    assert failed.code == 9
    # The text form of the first run: the notice counted, the checkpoint printed.
    path.write_text(json.dumps({**data, "ref": "KD-REQ-2027-0003"}, ensure_ascii=False), "utf-8")
    code, out, _ = lab.run("issue", "--out", str(lab_out), str(path))
    assert code == 9
    assert "0 issued, 1 notice of failure issued," in out and "checkpoint " in out
    # A rerun of an issued notice issues nothing new: no notice counted.
    code, out, _ = lab.run("issue", "--out", str(lab_out), str(path))
    assert code == 9 and "notice of failure issued" not in out
