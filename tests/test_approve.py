"""Approval as a real state: CHỜ PHÊ DUYỆT / AWAITING APPROVAL until the printed head signs.

A verification certificate issued with ``[signing] approval = true`` carries the verifier's
signature (Alice, "Phạm Minh Tuấn") and an empty field over the head's name ("Lê Hoàng Phúc",
Bob's key). Until Bob signs it, the file, its QR code, the page and the JSON API say AWAITING
APPROVAL (exit 1 on the command line); only the printed head's key may approve, and
``certissuer approve --pending`` lists what waits. Real keys (the certomancer test PKI), real
signatures, a real ledger.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from certissuer.approve import approve_pdf, same_name
from certissuer.cli import app
from certissuer.config import Settings
from certissuer.errors import ConfigError, LedgerError, SigningError
from certissuer.issue import Issued, Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import EventKind, Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Sealer
from certissuer.verify import Verdict, Verifier

from ._pki import LabPKI
from .conftest import PASSPHRASE, SAMPLES, lab_settings, load_json

runner = CliRunner()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_pki: LabPKI, pki: KeyPaths) -> Settings:
    """Two signers: the verifier (Alice) signs at issue, the head (Bob) approves."""
    home = tmp_path_factory.mktemp("approve-lab")
    return lab_settings(
        pki,
        ledger=home,
        lab_code="APPR",
        signing_pkcs12=lab_pki.p12("alice", PASSPHRASE),
        signing_trust_roots=(lab_pki.pem("root"),),
        signing_tsa_url=lab_pki.tsa_url,
        signing_level="B-B",
        signing_approval=True,
    )


@pytest.fixture(scope="module")
def lab_ledger(lab: Settings) -> Ledger:
    return Ledger.open(lab.ledger_url)


@pytest.fixture
def waiting(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, renderer: Any, tmp_path: Path
) -> Iterator[Issued]:
    """A verification certificate issued with approval on, not approved yet."""
    data = load_json(SAMPLES / "verification.json")
    data["ref"] = f"appr-{uuid.uuid4().hex[:8]}"
    data["stamp_number"] = f"ĐT-26 {zlib.crc32(data['ref'].encode()) % 10**7:07d}"
    with lab_pki.services():
        issuer = Issuer(
            lab,
            ledger=lab_ledger,
            sealer=Sealer.from_settings(lab, PASSPHRASE),
            token_key=load_token_key(lab),
            out_dir=tmp_path,
            renderer=renderer,
        )
        yield issuer.issue(parse_certificate(data))


def _head(lab: Settings, lab_pki: LabPKI, who: str = "bob") -> Sealer:
    return Sealer.from_settings(
        lab.replace(signing_pkcs12=lab_pki.p12(who, PASSPHRASE)), PASSPHRASE
    )


def test_awaiting_approval_until_the_head_signs(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, waiting: Issued
) -> None:
    verifier = Verifier.from_settings(lab, ledger=lab_ledger)
    unapproved = waiting.path.read_bytes()
    report = verifier.verify_pdf(unapproved)
    assert report.verdict is Verdict.AWAITING_APPROVAL and not report.ok, report.reasons
    assert (report.label_vi, report.label_en) == ("CHỜ PHÊ DUYỆT", "AWAITING APPROVAL")
    assert report.number == waiting.number and report.instrument  # genuine, in the ledger
    qr = verifier.verify_url(waiting.url)
    assert qr.verdict is Verdict.AWAITING_APPROVAL and not qr.ok, qr.reasons
    assert waiting.number in [e.number for e in lab_ledger.awaiting_approval()]

    with _head(lab, lab_pki) as sealer:
        done = approve_pdf(
            waiting.path, sealer=sealer, verifier=verifier, ledger_key=load_token_key(lab)
        )
    assert done.signer == "Lê Hoàng Phúc"
    approved = waiting.path.read_bytes()
    assert verifier.verify_pdf(approved).verdict is Verdict.VALID
    assert verifier.verify_url(waiting.url).verdict is Verdict.VALID
    assert waiting.number not in [e.number for e in lab_ledger.awaiting_approval()]
    (event,) = [ev for ev in lab_ledger.events(waiting.number) if ev.kind == EventKind.APPROVED]
    assert event.reason == "Lê Hoàng Phúc" and event.signature  # signed with the ledger key
    # The copy without the head's signature is still not in force, whatever the ledger says.
    stale = verifier.verify_pdf(unapproved)
    assert stale.verdict is Verdict.AWAITING_APPROVAL, stale.reasons
    assert any("'Approval' is empty" in r for r in stale.reasons)
    # Judged as of before the approval, the QR code says what it said then.
    (issued_event,) = [
        ev for ev in lab_ledger.events(waiting.number) if ev.kind == EventKind.ISSUED
    ]
    between = issued_event.at + (event.at - issued_event.at) / 2
    assert verifier.verify_url(waiting.url, at=between).verdict is Verdict.AWAITING_APPROVAL
    later = event.at + timedelta(seconds=1)
    assert verifier.verify_url(waiting.url, at=later).verdict is Verdict.VALID
    # Approving twice: nothing waits any more.
    with pytest.raises(SigningError, match="no empty signature field"), _head(lab, lab_pki) as s:
        approve_pdf(waiting.path, sealer=s, verifier=verifier)
    with pytest.raises(LedgerError, match="not waiting for approval"):
        lab_ledger.approve(
            waiting.number, approver="x", at=datetime.now(UTC), ledger_key=load_token_key(lab)
        )


def test_only_the_printed_head_may_approve(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, waiting: Issued
) -> None:
    verifier = Verifier.from_settings(lab, ledger=lab_ledger)
    before = waiting.path.read_bytes()
    with (
        _head(lab, lab_pki, "alice") as sealer,  # the verifier, not the head
        pytest.raises(SigningError, match=r"the head printed on .* is 'Lê Hoàng Phúc'"),
    ):
        approve_pdf(waiting.path, sealer=sealer, verifier=verifier, ledger_key=load_token_key(lab))
    assert waiting.path.read_bytes() == before  # refused before signing
    assert all(ev.kind != EventKind.APPROVED for ev in lab_ledger.events(waiting.number))
    assert verifier.verify_url(waiting.url).verdict is Verdict.AWAITING_APPROVAL


def test_an_approval_that_cannot_be_recorded_signed_is_refused_before_signing(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, waiting: Issued
) -> None:
    verifier = Verifier.from_settings(lab, ledger=lab_ledger)  # a ledger without its key
    before = waiting.path.read_bytes()
    with (
        _head(lab, lab_pki) as sealer,
        pytest.raises(ConfigError, match="must be recorded in the ledger"),
    ):
        approve_pdf(waiting.path, sealer=sealer, verifier=verifier)
    assert waiting.path.read_bytes() == before
    assert verifier.verify_url(waiting.url).verdict is Verdict.AWAITING_APPROVAL


def test_names_compare_without_diacritics_case_or_spacing() -> None:
    assert same_name("Lê Hoàng Phúc", "LE  HOANG phuc")
    assert same_name("Đặng Văn Đức", "dang van duc")
    nfd = unicodedata.normalize("NFD", "Lê Hoàng Phúc")  # as another keyboard spells it
    assert nfd != "Lê Hoàng Phúc" and same_name("Lê Hoàng Phúc", nfd)
    assert not same_name("Lê Hoàng Phúc", "Lê Hoàng Phú")
    assert not same_name("Phạm Minh Tuấn", "Lê Hoàng Phúc")


# -- the command line ------------------------------------------------------------------------


def _profile(lab: Settings, lab_pki: LabPKI, tmp_path: Path, who: str) -> Path:
    toml = tmp_path / f"{who}.toml"
    toml.write_text(
        f"""
[lab]
code = "{lab.lab_code}"
[signing]
pkcs12 = "{lab_pki.p12(who, PASSPHRASE)}"
trust_roots = ["{lab_pki.pem("root")}"]
level = "B-B"
[token]
key = "{lab.token_key}"
url_base = "{lab.token_url_base}"
[ledger]
url = "{lab.ledger_url}"
""",
        encoding="utf-8",
    )
    return toml


def test_cli_verify_pending_list_and_approve(
    lab: Settings, lab_pki: LabPKI, waiting: Issued, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    head = _profile(lab, lab_pki, tmp_path, "bob")
    verifier_key = _profile(lab, lab_pki, tmp_path, "alice")

    def run(profile: Path, *args: str) -> Any:
        return runner.invoke(app, ["--config", str(profile), *args])

    result = run(head, "verify", str(waiting.path))
    assert result.exit_code == 1 and "CHỜ PHÊ DUYỆT / AWAITING APPROVAL" in result.stdout
    result = run(head, "verify", "--qr", waiting.url)
    assert result.exit_code == 1 and "CHỜ PHÊ DUYỆT / AWAITING APPROVAL" in result.stdout
    result = run(head, "verify", "--json", str(waiting.path))
    body = json.loads(result.stdout)
    assert body["verdict"] == "awaiting_approval" and body["ok"] is False

    result = run(head, "approve", "--pending")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if waiting.number in x)
    assert "Phạm Minh Tuấn" in line and "Cột đo xăng dầu" in line  # verifier, instrument
    result = run(head, "approve", "--pending", "--json")
    (row,) = [r for r in json.loads(result.stdout) if r["number"] == waiting.number]
    assert row["verifier"] == "Phạm Minh Tuấn" and row["serial"] == "TS-2019-88231"
    assert row["instrument"].startswith("Cột đo xăng dầu") and row["issued_at"].endswith("+07:00")

    before = waiting.path.read_bytes()
    result = run(verifier_key, "sign-approve", str(waiting.path))
    assert result.exit_code != 0 and "Lê Hoàng Phúc" in result.output, result.output
    assert "nothing was signed" in result.output and waiting.path.read_bytes() == before

    result = run(head, "approve", str(waiting.path))
    assert result.exit_code == 0, result.output
    assert f"approved {waiting.number} by Lê Hoàng Phúc" in result.stdout
    result = run(head, "verify", str(waiting.path))
    assert result.exit_code == 0 and "HỢP LỆ / VALID" in result.stdout, result.stdout
    result = run(head, "verify", "--qr", waiting.url)
    assert result.exit_code == 0 and "HỢP LỆ / VALID" in result.stdout, result.stdout
    result = run(head, "approve", "--pending", "--json")
    assert waiting.number not in [r["number"] for r in json.loads(result.stdout)]

    result = run(head, "approve")
    assert result.exit_code != 0 and "--pending" in result.output


# -- the page and the JSON API ---------------------------------------------------------------


def test_page_and_api_say_awaiting_approval(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, waiting: Issued
) -> None:
    from certissuer.web import create_app

    token = waiting.url.rsplit("/V/", 1)[1]
    settings = lab.replace(web_rate_limit=0, web_pdf_workers=1)
    with TestClient(create_app(settings)) as client:
        html = client.get(f"/v/{token}").text
        assert '<h1 id="verdict-vi" data-verdict="awaiting_approval">CHỜ PHÊ DUYỆT</h1>' in html
        assert '<p class="en" lang="en" id="verdict-en">AWAITING APPROVAL</p>' in html
        assert 'class="verdict warn"' in html and "chưa có hiệu lực" in html
        assert waiting.number in html  # genuine: the fields to compare are shown
        body = client.get(f"/api/v1/verdict/{token}").json()
        assert body["verdict"] == "awaiting_approval" and body["ok"] is False
        assert body["label_vi"] == "CHỜ PHÊ DUYỆT" and body["label_en"] == "AWAITING APPROVAL"
        files = {"file": ("c.pdf", waiting.path.read_bytes(), "application/pdf")}
        upload = client.post("/api/v1/verify", files=files).json()
        assert upload["verdict"] == "awaiting_approval" and upload["ok"] is False

        verifier = Verifier.from_settings(lab, ledger=lab_ledger)
        with _head(lab, lab_pki) as sealer:
            approve_pdf(
                waiting.path, sealer=sealer, verifier=verifier, ledger_key=load_token_key(lab)
            )
        html = client.get(f"/v/{token}").text  # the cached answer is not reused
        assert 'data-verdict="valid">HỢP LỆ</h1>' in html
        assert client.get(f"/api/v1/verdict/{token}").json()["verdict"] == "valid"
