"""`verify --at TIME`: validity dates and the ledger's status as they stood at that time.

A certificate valid until 24/11/2027 is EXPIRED when judged in 2030; a revocation counts only
from the moment it was recorded; a certificate did not exist before it was issued. Judged
through the library (`Verifier.verify_pdf`, `Verifier.verify_url`) and the command line (its
bounded child and the ledger asked in the parent), with real signed files and a real ledger.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from certissuer._vn import VIETNAM_TZ
from certissuer.cli import app
from certissuer.issue import Issuer
from certissuer.keys import KeyPaths
from certissuer.ledger import EventKind, LedgerEvent
from certissuer.verify import Verdict, Verifier

from .conftest import PASSPHRASE, SAMPLES

BEFORE_EXPIRY = datetime(2027, 6, 1, tzinfo=UTC)
AFTER_EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)
runner = CliRunner()


def _issued_at(issuer: Issuer, number: str) -> datetime:
    (event,) = [ev for ev in issuer.ledger.events(number) if ev.kind == EventKind.ISSUED]
    return event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)


# -- the library -----------------------------------------------------------------------------


def test_valid_before_its_valid_until_expired_after(
    verifier: Verifier, issuer: Issuer, ver_cert: Any
) -> None:
    issued = issuer.issue(ver_cert)
    data = issued.path.read_bytes()
    before = verifier.verify_pdf(data, at=BEFORE_EXPIRY)
    assert before.verdict is Verdict.VALID, before.reasons
    after = verifier.verify_pdf(data, at=AFTER_EXPIRY)
    assert after.verdict is Verdict.EXPIRED and not after.ok, after.reasons
    assert "valid until 2027-11-24, expired on 2030-01-01" in after.reasons
    assert verifier.verify_url(issued.url, at=BEFORE_EXPIRY).verdict is Verdict.VALID
    assert verifier.verify_url(issued.url, at=AFTER_EXPIRY).verdict is Verdict.EXPIRED
    # The last day is a Vietnamese day: 23:59 on 24/11 in Hà Nội is still valid.
    last_minute = datetime(2027, 11, 24, 16, 59, tzinfo=UTC)
    assert verifier.verify_url(issued.url, at=last_minute).verdict is Verdict.VALID
    next_day = datetime(2027, 11, 24, 17, 0, tzinfo=UTC)
    assert verifier.verify_url(issued.url, at=next_day).verdict is Verdict.EXPIRED


def test_revoked_and_superseded_only_from_their_event_time(
    verifier: Verifier, issuer: Issuer, cal_cert: Any
) -> None:
    issued = issuer.issue(cal_cert)
    data = issued.path.read_bytes()
    issued_at = _issued_at(issuer, issued.number)
    revoked_at = issued_at + timedelta(days=30)
    superseded_at = issued_at + timedelta(days=60)
    ledger = issuer.ledger
    ledger.add_event(
        LedgerEvent(
            number=issued.number, kind=EventKind.REVOKED, at=revoked_at, reason="wrong standard"
        ),
        ledger_key=issuer.token_key,
    )
    ledger.add_event(
        LedgerEvent(
            number=issued.number,
            kind=EventKind.SUPERSEDED,
            at=superseded_at,
            reason="typo",
            related_number="HC-2026-999999",
        ),
        ledger_key=issuer.token_key,
    )
    day = timedelta(days=1)
    assert verifier.verify_pdf(data, at=revoked_at - day).verdict is Verdict.VALID
    report = verifier.verify_pdf(data, at=revoked_at + day)
    assert report.verdict is Verdict.REVOKED and report.revocation_reason == "wrong standard"
    report = verifier.verify_url(issued.url, at=superseded_at + day)
    assert report.verdict is Verdict.SUPERSEDED and report.superseded_by == "HC-2026-999999"
    # Without --at: now, both events count and the newest decides.
    assert verifier.verify_pdf(data).verdict is Verdict.SUPERSEDED
    # A bare time is UTC.
    naive = (revoked_at - day).replace(tzinfo=None)
    assert verifier.verify_url(issued.url, at=naive).verdict is Verdict.VALID


def test_not_issued_yet_is_not_valid(verifier: Verifier, issuer: Issuer, cal_cert: Any) -> None:
    issued = issuer.issue(cal_cert)
    earlier = _issued_at(issuer, issued.number) - timedelta(hours=1)
    report = verifier.verify_url(issued.url, at=earlier)
    assert report.verdict is Verdict.NOT_IN_LEDGER and not report.ok
    assert "it did not exist yet" in report.reasons[-1]
    assert not verifier.verify_pdf(issued.path.read_bytes(), at=earlier).ok


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli_lab(tmp_path: Path, pki: KeyPaths) -> dict[str, Any]:
    """A lab profile and one verification certificate issued through the command line."""
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f"""
[lab]
code = "CLAT"
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
    args = ["--config", str(profile), "issue", str(SAMPLES / "verification.json")]
    result = runner.invoke(app, [*args, "--json", "--out", str(tmp_path / "out")], env=env)
    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)["issued"][0]
    return {"profile": profile, "pdf": issued["entry"]["pdf_path"], "url": issued["url"], **issued}


def _verify(lab: dict[str, Any], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--config", str(lab["profile"]), "verify", *args])
    return result.exit_code, result.stdout


def test_cli_at_before_and_after_expiry(cli_lab: dict[str, Any]) -> None:
    code, stdout = _verify(cli_lab, cli_lab["pdf"], "--at", "2027-06-01")
    assert code == 0 and "HỢP LỆ / VALID" in stdout, stdout
    code, stdout = _verify(cli_lab, cli_lab["pdf"], "--at", "2030-01-01")
    assert code == 1 and "HẾT HIỆU LỰC / EXPIRED" in stdout, stdout
    assert "expired on 2030-01-01" in stdout
    code, stdout = _verify(cli_lab, "--qr", cli_lab["url"], "--at", "2030-01-01")
    assert code == 1 and "HẾT HIỆU LỰC / EXPIRED" in stdout, stdout
    # An offset is honoured: midnight of 25/11/2027 in Vietnam is already the day after.
    code, stdout = _verify(cli_lab, "--qr", cli_lab["url"], "--at", "2027-11-25T00:00:00+07:00")
    assert code == 1 and "EXPIRED" in stdout, stdout
    code, stdout = _verify(cli_lab, "--qr", cli_lab["url"], "--at", "2027-11-24T23:59:00+07:00")
    assert code == 0 and "VALID" in stdout, stdout


def test_cli_at_before_and_after_revocation(cli_lab: dict[str, Any]) -> None:
    between = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    while datetime.now(UTC) <= between:
        time.sleep(0.05)
    number = cli_lab["entry"]["number"]
    result = runner.invoke(
        app, ["--config", str(cli_lab["profile"]), "revoke", number, "--reason", "wrong stamp"]
    )
    assert result.exit_code == 0, result.output
    at = between.astimezone(VIETNAM_TZ).strftime("%Y-%m-%dT%H:%M:%S")  # typed: Vietnam's time
    code, stdout = _verify(cli_lab, cli_lab["pdf"], "--at", at)
    assert code == 0 and "HỢP LỆ / VALID" in stdout, stdout
    code, stdout = _verify(cli_lab, "--qr", cli_lab["url"], "--at", at)
    assert code == 0 and "HỢP LỆ / VALID" in stdout, stdout
    code, stdout = _verify(cli_lab, cli_lab["pdf"])
    assert code == 1 and "ĐÃ THU HỒI / REVOKED" in stdout and "wrong stamp" in stdout, stdout
    code, stdout = _verify(cli_lab, "--json", cli_lab["pdf"], "--at", "2027-01-01")
    assert code == 1 and json.loads(stdout)["verdict"] == "revoked"
