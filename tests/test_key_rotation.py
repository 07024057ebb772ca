"""Key rotation and compromised keys (issue 20): tokens and PDFs made before and after a
rotation verify; a compromised key's later tokens and signatures do not, its earlier ones do;
``reissue --compromised`` issues the affected certificates again under new numbers.

Real keys, real PAdES signatures validated by pyHanko, a real SQLite ledger; the commands run
through the CLI. Certificates "issued in the past" are issued through the library with its
clock set back (the CLI has no clock option), as a lab's archive would hold them.
"""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from certissuer._vn import local_date
from certissuer.cli import app
from certissuer.config import load_settings
from certissuer.issue import Issued, Issuer
from certissuer.key_register import REGISTER_NAME, KeyKind, KeyRegister
from certissuer.keys import KeyPaths, make_keys
from certissuer.ledger import Ledger
from certissuer.token import (
    TokenKey,
    load_public_keys,
    make_token,
    read_keys_document,
    verification_url,
)

from .conftest import PASSPHRASE, SAMPLES

runner = CliRunner()
ENV = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
URL_BASE = "https://verify.test.invalid"
NOW = datetime.now(UTC)
TEN_DAYS_AGO = NOW - timedelta(days=10)
TWO_DAYS_AGO = NOW - timedelta(days=2)
SINCE = NOW - timedelta(days=5)
COMPROMISED = "KHÔNG XÁC THỰC (khóa bị lộ)"


class Lab:
    """A lab with its own PKI (rotation rewrites key files), profile and ledger."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki: KeyPaths = make_keys(
            root / "keys",
            passphrase=PASSPHRASE,
            organisation="Rotation lab",
            key_type="p256",
            services_url="http://127.0.0.1:1",  # a trial CA: it keeps its key to renew
            signer_name="Lê Hoàng Phúc",  # the head and signatory the samples print
        )
        self.profile = root / "lab.toml"
        self.profile.write_text(
            f'[lab]\ncode = "R1"\n[signing]\npkcs12 = "{self.pki.signer_p12}"\n'
            f'trust_roots = ["{self.pki.ca_cert}"]\nrevocation_check = false\n'
            f'[token]\nkey = "{self.pki.token_key}"\nurl_base = "{URL_BASE}"\n'
            f'[ledger]\nurl = "sqlite:///{root / "ledger.db"}"\n',
            encoding="utf-8",
        )
        self.out = root / "out"
        self.n = 0

    def run(self, *args: str) -> tuple[int, str, str]:
        r = runner.invoke(app, ["--config", str(self.profile), *args], env=ENV)
        return r.exit_code, r.stdout, r.stderr

    def record(self) -> dict[str, Any]:
        self.n += 1
        data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
        data["ref"] = f"ROT-{self.n}"
        data["received"] = (NOW - timedelta(days=25)).date().isoformat()
        data["calibrated"] = (NOW - timedelta(days=20)).date().isoformat()
        return data

    def issue_at(self, when: datetime) -> Issued:
        """Issue a calibration certificate with the library, its clock at `when`."""
        from certissuer.model import parse_certificate

        settings = load_settings(self.profile, ENV)
        issuer = Issuer.from_settings(settings, passphrase=PASSPHRASE, out_dir=self.out)
        try:
            issued = issuer.issue(parse_certificate(self.record()), now=when)
            issuer.checkpoint(now=when)
        finally:
            issuer.ledger.close()
        return issued

    def issue_now(self) -> tuple[str, Path]:
        """Issue one certificate through the CLI; its number and PDF."""
        source = self.root / f"record-{self.n + 1}.json"
        source.write_text(json.dumps(self.record(), ensure_ascii=False), encoding="utf-8")
        code, out, err = self.run("issue", "--json", "--out", str(self.out), str(source))
        assert code == 0, err
        row = json.loads(out)["issued"][0]["entry"]
        return str(row["number"]), Path(row["pdf_path"])

    def url(self, number: str) -> str:
        ledger = Ledger.open(f"sqlite:///{self.root / 'ledger.db'}", create=False)
        try:
            entry = ledger.get(number)
            assert entry is not None
            return verification_url(URL_BASE, entry.token)
        finally:
            ledger.close()

    def verdict_qr(self, url: str) -> tuple[int, dict[str, Any]]:
        code, out, err = self.run("verify", "--json", "--qr", url)
        assert out, err
        return code, json.loads(out)

    def verdict_pdf(self, pdf: Path) -> tuple[int, dict[str, Any]]:
        code, out, err = self.run("verify", "--json", str(pdf))
        assert out, err
        return code, json.loads(out)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def _kid(pem: Path) -> str:
    return load_public_keys(pem)[0].kid.hex()


def test_token_rotation_keeps_old_tokens_valid_and_publishes_both_keys(lab: Lab) -> None:
    old_kid = _kid(lab.pki.token_key)
    before = lab.issue_at(TEN_DAYS_AGO)

    code, out, err = lab.run("keys", "rotate", "--token")
    assert code == 0, err
    new_kid = _kid(lab.pki.token_key)
    assert new_kid != old_kid and f"token key {new_kid} in use" in out
    kept = lab.pki.token_key.with_name(f"token-key.{old_kid}.pem")
    assert _kid(kept) == old_kid
    for key_file in (lab.pki.token_key, kept):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The page's public key file follows the key in use.
    assert [k.kid.hex() for k in load_public_keys(lab.pki.token_public)] == [new_kid]

    after, after_pdf = lab.issue_now()
    assert old_kid not in lab.url(after)  # signed by the new key
    for url in (before.url, lab.url(after)):
        code, report = lab.verdict_qr(url)
        assert (code, report["verdict"]) == (0, "valid"), report["reasons"]
    for pdf in (before.path, after_pdf):
        code, report = lab.verdict_pdf(pdf)
        assert (code, report["verdict"]) == (0, "valid"), report["reasons"]
    # Events and checkpoints signed by either key: the audit finds nothing.
    code, _, err = lab.run("ledger", "audit")
    assert code == 0, err

    published = lab.root / "keys.json"
    code, out, err = lab.run("keys", "publish", "--out", str(published))
    assert code == 0, err
    new_fingerprint = TokenKey.load(lab.pki.token_key).public.fingerprint
    keys, signer = read_keys_document(published.read_bytes(), pinned=[new_fingerprint])
    assert signer.kid.hex() == new_kid
    windows = {k.key.kid.hex(): (k.not_before, k.not_after) for k in keys}
    today = local_date(NOW)
    assert windows[old_kid][0] is None and windows[old_kid][1] is not None
    assert windows[new_kid][0] is not None and windows[new_kid][1] is None
    assert abs((windows[old_kid][1] - today).days) <= 1  # the old key ended today (UTC+7)


def test_a_compromised_token_key_fails_its_later_tokens_and_keeps_earlier_ones(lab: Lab) -> None:
    old = TokenKey.load(lab.pki.token_key)
    early = lab.issue_at(TEN_DAYS_AGO)
    late = lab.issue_at(TWO_DAYS_AGO)
    assert lab.run("keys", "rotate", "--token")[0] == 0

    code, out, err = lab.run(
        "keys", "compromised", old.public.kid.hex(), "--since", SINCE.isoformat()
    )
    assert code == 0, err
    assert late.number in out and early.number not in out, out

    code, report = lab.verdict_qr(early.url)
    assert (code, report["verdict"]) == (0, "valid"), report["reasons"]
    code, report = lab.verdict_qr(late.url)
    assert (code, report["verdict"], report["label_vi"]) == (1, "key_compromised", COMPROMISED)
    assert any(old.public.kid.hex() in r and "compromised since" in r for r in report["reasons"])
    # Offline too: the register travels with the key, no ledger needed.
    code, out, _ = lab.run("verify", "--json", "--offline", "--qr", late.url)
    assert json.loads(out)["verdict"] == "key_compromised"
    # Whoever holds the old key forges a token for a genuine certificate, dated today.
    entry_digest = json.loads(lab.run("ledger", "show", "--json", early.number)[1])
    forged = make_token(
        old, number=early.number, issued=local_date(NOW), digest=entry_digest["data_digest"]
    )
    # Offline, its signature alone would make it "QR genuine"; the register says otherwise.
    code, out, _ = lab.run(
        "verify", "--json", "--offline", "--qr", verification_url(URL_BASE, forged)
    )
    assert (code, json.loads(out)["verdict"]) == (1, "key_compromised")
    # Online the ledger refuses it as well (its date is not the certificate's).
    assert lab.verdict_qr(verification_url(URL_BASE, forged))[1]["verdict"] == "altered"

    # keys.json ends the compromised key's window the day before the compromise.
    published = lab.root / "keys.json"
    assert lab.run("keys", "publish", "--out", str(published))[0] == 0
    keys, _ = read_keys_document(published.read_bytes())
    window = {k.key.kid.hex(): k for k in keys}[old.public.kid.hex()]
    assert window.covers(local_date(TEN_DAYS_AGO)) and not window.covers(local_date(NOW))

    # Reissue: the late certificate gets a new number (new key); the old one is superseded.
    code, out, err = lab.run("reissue", "--compromised", old.public.kid.hex(), "-o", str(lab.out))
    assert code == 0, err
    assert "1 reissued, 0 not reissued" in out
    shown = json.loads(lab.run("ledger", "show", "--json", late.number)[1])
    assert shown["status"] == "superseded", shown
    new_number = shown["status_by"]
    assert new_number and new_number != late.number
    code, report = lab.verdict_qr(lab.url(new_number))
    assert (code, report["verdict"]) == (0, "valid"), report["reasons"]
    # The old token stays NOT GENUINE (not merely superseded); the early one stays valid.
    assert lab.verdict_qr(late.url)[1]["verdict"] == "key_compromised"
    assert lab.verdict_qr(early.url)[1]["verdict"] == "valid"
    # Again: nothing is reissued twice.
    code, out, _ = lab.run("reissue", "--compromised", old.public.kid.hex(), "-o", str(lab.out))
    assert code == 0 and "already superseded" in out and "0 reissued" in out


def test_signing_rotation_and_compromise_judge_pdfs_by_when_they_were_signed(lab: Lab) -> None:
    early = lab.issue_at(TEN_DAYS_AGO)
    late = lab.issue_at(TWO_DAYS_AGO)
    assert lab.pki.signer_p12 is not None
    old_p12 = lab.pki.signer_p12.read_bytes()

    code, out, err = lab.run("keys", "rotate", "--signing")
    assert code == 0, err
    assert lab.pki.signer_p12.read_bytes() != old_p12
    assert stat.S_IMODE(lab.pki.signer_p12.stat().st_mode) == 0o600
    register = json.loads((lab.pki.token_key.parent / REGISTER_NAME).read_text())
    signing = [k for k in register["keys"] if k["kind"] == "signing"]
    assert len(signing) == 2
    old_id = next(k["kid"] for k in signing if k["not_after"] is not None)
    assert any(p.read_bytes() == old_p12 for p in lab.pki.signer_p12.parent.glob("signer.*.p12"))

    _, after_pdf = lab.issue_now()
    for pdf in (early.path, late.path, after_pdf):
        code, report = lab.verdict_pdf(pdf)
        assert (code, report["verdict"]) == (0, "valid"), report["reasons"]
    signers = {
        lab.verdict_pdf(p)[1]["signatures"][0]["cert_sha256"] for p in (late.path, after_pdf)
    }
    assert len(signers) == 2 and old_id in signers

    code, out, err = lab.run("keys", "compromised", old_id[:12], "--since", SINCE.isoformat())
    assert code == 0, err
    assert late.number in out and early.number not in out, out
    code, report = lab.verdict_pdf(early.path)
    assert (code, report["verdict"]) == (0, "valid"), report["reasons"]
    code, report = lab.verdict_pdf(late.path)
    assert (code, report["verdict"], report["label_en"]) == (
        1,
        "key_compromised",
        "NOT GENUINE (key compromised)",
    )
    assert lab.verdict_pdf(after_pdf)[1]["verdict"] == "valid"

    code, out, err = lab.run("reissue", "--compromised", old_id[:12], "-o", str(lab.out))
    assert code == 0, err
    new_number = json.loads(lab.run("ledger", "show", "--json", late.number)[1])["status_by"]
    new_pdf = next(lab.out.rglob(f"*{new_number.split('-')[-1]}*.pdf"))
    code, report = lab.verdict_pdf(new_pdf)
    assert (code, report["verdict"]) == (0, "valid"), report["reasons"]


def test_the_key_in_use_cannot_be_marked_compromised(lab: Lab) -> None:
    kid = _kid(lab.pki.token_key)
    code, _, err = lab.run("keys", "compromised", kid, "--since", SINCE.isoformat())
    assert code == 3 and "rotate it first" in err


def test_a_tampered_or_old_key_signed_register_is_refused(lab: Lab) -> None:
    old = TokenKey.load(lab.pki.token_key)
    late = lab.issue_at(TWO_DAYS_AGO)
    assert lab.run("keys", "rotate", "--token")[0] == 0
    assert (
        lab.run("keys", "compromised", old.public.kid.hex(), "--since", SINCE.isoformat())[0] == 0
    )
    path = lab.pki.token_key.parent / REGISTER_NAME
    genuine = path.read_bytes()

    # Edit the readable copy: lift the compromise.
    document = json.loads(genuine)
    for key in document["keys"]:
        key["compromised_since"] = None
    path.write_text(json.dumps(document), encoding="utf-8")
    code, _, err = lab.run("verify", "--qr", late.url)
    assert code == 3 and "key-register.json" in err

    # Whoever holds the old key signs a register of their own that trusts it again.
    register = KeyRegister.from_bytes(
        genuine, trusted=load_public_keys(lab.pki.token_key), where="genuine"
    )
    from dataclasses import replace

    lifted = KeyRegister(
        tuple(replace(k, compromised_since=None, not_after=None) for k in register.keys)
    )
    path.write_bytes(lifted.to_bytes(old))
    code, _, err = lab.run("verify", "--qr", late.url)
    assert code == 3 and "does not verify" in err
    path.write_bytes(genuine)
    assert lab.verdict_qr(late.url)[1]["verdict"] == "key_compromised"


def test_the_page_says_key_compromised_and_publishes_the_register_windows(lab: Lab) -> None:
    from fastapi.testclient import TestClient

    from certissuer.token import KEYS_PATH
    from certissuer.web import create_app

    old = TokenKey.load(lab.pki.token_key)
    early = lab.issue_at(TEN_DAYS_AGO)
    late = lab.issue_at(TWO_DAYS_AGO)
    assert lab.run("keys", "rotate", "--token")[0] == 0
    assert (
        lab.run("keys", "compromised", old.public.kid.hex(), "--since", SINCE.isoformat())[0] == 0
    )
    settings = load_settings(lab.profile, ENV).replace(web_rate_limit=0, web_pdf_workers=1)
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/V/{late.url.rsplit('/', 1)[1]}").text
        assert 'data-verdict="key_compromised">KHÔNG XÁC THỰC (khóa bị lộ)</h1>' in page
        assert "NOT GENUINE (key compromised)" in page
        page = client.get(f"/V/{early.url.rsplit('/', 1)[1]}").text
        assert 'data-verdict="valid"' in page
        # The uploaded PDF, judged in a worker process, by the register too.
        r = client.post(
            "/api/v1/verify", files={"file": ("c.pdf", late.path.read_bytes(), "application/pdf")}
        )
        assert r.json()["verdict"] == "key_compromised", r.json()
        keys, signer = read_keys_document(client.get(f"/{KEYS_PATH}").content)
    assert signer.kid != old.public.kid
    window = {k.key.kid: k for k in keys}[old.public.kid]
    assert window.not_after == local_date(SINCE) - timedelta(days=1)


def test_a_workstation_still_holding_a_retired_key_cannot_issue(lab: Lab) -> None:
    old_kid = _kid(lab.pki.token_key)
    assert lab.pki.signer_p12 is not None
    assert lab.run("keys", "rotate", "--token")[0] == 0
    assert lab.run("keys", "rotate", "--signing")[0] == 0
    profile = lab.profile.read_text(encoding="utf-8")

    # The old token key beside the new register (a folder copied before the rotation, say).
    kept_token = lab.pki.token_key.with_name(f"token-key.{old_kid}.pem")
    lab.profile.write_text(profile.replace(str(lab.pki.token_key), str(kept_token)), "utf-8")
    source = lab.root / "one.json"
    source.write_text(json.dumps(lab.record(), ensure_ascii=False), encoding="utf-8")
    code, _, err = lab.run("issue", "--out", str(lab.out), str(source))
    assert code == 3 and "names an older key" in err, err

    # The old signing certificate: the register has retired it.
    kept_p12 = next(lab.pki.signer_p12.parent.glob("signer.*.p12"))
    lab.profile.write_text(profile.replace(str(lab.pki.signer_p12), str(kept_p12)), "utf-8")
    code, _, err = lab.run("issue", "--out", str(lab.out), str(source))
    assert code == 3 and "was retired" in err and "NOT GENUINE" in err, err
    lab.profile.write_text(profile, "utf-8")
    code, out, err = lab.run("keys", "list")
    assert code == 0 and out.count("signing") == 2 and out.count("token") == 2, out
    assert lab.run("issue", "--out", str(lab.out), str(source))[0] == 0


def test_rotate_takes_a_given_token_key_or_records_a_given_certificate(lab: Lab) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

    from certissuer.keys import renew_signer

    given = TokenKey.generate()
    given_file = lab.root / "given.pem"
    given_file.write_bytes(given.pem())
    code, _, err = lab.run("keys", "rotate", "--token", "--from", str(given_file))
    assert code == 0, err
    assert _kid(lab.pki.token_key) == given.public.kid.hex()
    code, _, err = lab.run("keys", "rotate", "--token", "--from", str(given_file))
    assert code == 3 and "the key in use" in err

    # A USB token's new certificate: recorded, no key file touched.
    assert lab.pki.signer_p12 is not None
    p12 = lab.pki.signer_p12.read_bytes()
    _, cert, _ = pkcs12.load_key_and_certificates(
        renew_signer(lab.pki.ca_cert.parent, p12, passphrase=PASSPHRASE), PASSPHRASE
    )
    assert cert is not None
    cert_file = lab.root / "token-cert.pem"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    code, out, err = lab.run("keys", "rotate", "--signing", "--cert", str(cert_file))
    assert code == 0 and "in use from now" in out, err
    assert lab.pki.signer_p12.read_bytes() == p12
    register = KeyRegister.from_bytes(
        (lab.pki.token_key.parent / REGISTER_NAME).read_bytes(),
        trusted=[given.public],
        where="register",
    )
    assert [k.label for k in register.current(KeyKind.SIGNING)] == [cert.subject.rfc4514_string()]
    code, _, err = lab.run("keys", "rotate", "--signing", "--cert", str(cert_file))
    assert code == 3 and "already in the key register" in err


def test_a_backup_made_after_a_rotation_restores_and_audits_clean(lab: Lab) -> None:
    """The restore's audit checks events with every key of the register, not only the one
    in use: events signed before a rotation are the lab's, not "signed by an unknown key"."""
    lab.issue_at(TEN_DAYS_AGO)
    code, _, err = lab.run("keys", "rotate", "--token")
    assert code == 0, err
    lab.issue_now()
    backup = lab.root / "backup"
    code, _, err = lab.run("ledger", "backup", str(backup))
    assert code == 0, err
    (lab.root / "ledger.db").unlink()
    code, out, err = lab.run("ledger", "restore", str(backup), "--archive", str(lab.root / "r"))
    assert code == 0, err + out
    assert "unknown key" not in err + out
