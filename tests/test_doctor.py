"""`certissuer doctor` on a good trial-PKI profile and on one broken in each way.

The trial PKI's services (TSA, OCSP, CRL) run as `certissuer trial-services` in a real
subprocess: doctor sends them a real RFC 3161 request and a real OCSP request, and the clock
test can move doctor's clock without moving theirs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import create_engine
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.doctor import Check, Status, exit_code, run_checks
from certissuer.keys import Person, Role, make_keys
from certissuer.ledger import Ledger
from certissuer.ledger.migrations import head_revision, upgrade
from certissuer.token import TokenKey

from .conftest import ROOT

PASSWORD = "doctor-pass-51e0"
ENV = {"CERTISSUER_P12_PASSPHRASE": PASSWORD}
NAME = "Phạm Minh Tuấn"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    folder: Path
    keys: Path
    p12: Path
    url: str
    ledger: str

    def profile(self, path: Path, **changes: str) -> Path:
        """A profile for the trial lab; `changes` replace whole lines by their key."""
        lines = {
            "pkcs12": f'pkcs12 = "{self.p12}"',
            "tsa_url": f'tsa_url = ["{self.url}/tsa"]',
            "trust_roots": f'trust_roots = ["{self.keys / "ca.pem"}"]',
            "token_key": f'key = "{self.keys / "token-key.pem"}"',
            "token_public": "",
            "ledger": f'url = "{self.ledger}"',
        }
        lines.update(changes)
        path.write_text(
            f"""[lab]
code = "DOC"
[signing]
level = "B-T"
{lines["pkcs12"]}
{lines["tsa_url"]}
{lines["trust_roots"]}
[token]
{lines["token_key"]}
url_base = "https://verify.example.vn"
[ledger]
{lines["ledger"]}
[web]
{lines["token_public"]}
""",
            encoding="utf-8",
        )
        return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("doctor")
    url = f"http://127.0.0.1:{_free_port()}"
    paths = make_keys(
        folder / "keys",
        passphrase=PASSWORD.encode(),
        organisation="Doctor lab",
        signer_name=None,
        key_type="p256",
        people=[Person(NAME, (Role.VERIFIER,))],
        services_url=url,
    )
    ledger = f"sqlite:///{folder / 'ledger.db'}"
    Ledger.open(ledger).close()
    services = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "certissuer",
            "trial-services",
            str(folder / "keys"),
            "--port",
            url.rsplit(":", 1)[1],
        ],
        env={**os.environ, **ENV, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert services.stderr is not None
        banner = services.stderr.readline() + services.stderr.readline()
        assert f"listening on {url}" in banner, banner
        yield Lab(folder, folder / "keys", paths.people[0].pkcs12, url, ledger)
    finally:
        services.terminate()
        services.wait(10)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status is Status.FAIL]


def test_a_good_profile_passes_every_check(lab: Lab, tmp_path: Path) -> None:
    checks = run_checks(lab.profile(tmp_path / "lab.toml"), env=ENV)
    assert _failed(checks) == [] and exit_code(checks) == 0, [c.line() for c in checks]
    by = _by_name(checks)
    assert by["signing key"].status is Status.OK and NAME in by["signing key"].message
    assert by["signing certificate"].status is Status.OK
    assert by["trust chain"].status is Status.OK
    assert by["token key"].status is Status.OK
    assert by["ledger"].status is Status.OK and head_revision() in by["ledger"].message
    assert by[f"TSA {lab.url}/tsa"].status is Status.OK
    assert by["clock"].status is Status.OK
    assert by[f"OCSP {lab.url}/ocsp"].status is Status.OK
    assert by[f"OCSP {lab.url}/ocsp"].message == "answers: good"
    assert by[f"CRL {lab.url}/crl"].status is Status.OK
    assert by["keys.json"].status is Status.OK
    assert by["file [signing] pkcs12"].status is Status.OK


def test_the_cli_prints_one_line_per_check_and_json(lab: Lab, tmp_path: Path) -> None:
    profile = lab.profile(tmp_path / "lab.toml")
    runner = CliRunner()
    done = runner.invoke(app, ["--config", str(profile), "doctor"], env=ENV)
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0].startswith("OK    profile: ")
    assert all(line.split()[0] in ("OK", "WARN", "SKIP") for line in lines), done.stdout
    as_json = runner.invoke(app, ["--config", str(profile), "doctor", "--json"], env=ENV)
    body = json.loads(as_json.stdout)
    assert body["ok"] is True and len(body["checks"]) == len(lines)
    assert PASSWORD not in done.output + as_json.output


def _broken(lab: Lab, tmp_path: Path, **changes: str) -> tuple[list[Check], str]:
    profile = lab.profile(tmp_path / "lab.toml", **changes)
    checks = run_checks(profile, env=ENV)
    done = CliRunner().invoke(app, ["--config", str(profile), "doctor"], env=ENV)
    assert done.exit_code == 1 and exit_code(checks) == 1, done.output
    return _failed(checks), done.stdout


def test_a_missing_key_file_fails_naming_the_file(lab: Lab, tmp_path: Path) -> None:
    gone = tmp_path / "gone.p12"
    failed, out = _broken(lab, tmp_path, pkcs12=f'pkcs12 = "{gone}"')
    assert [c.name for c in failed] == ["file [signing] pkcs12"]
    assert f"FAIL  file [signing] pkcs12: {gone} does not exist" in out


def test_a_private_key_others_can_read_fails(lab: Lab, tmp_path: Path) -> None:
    key = tmp_path / "token.pem"
    shutil.copy(lab.keys / "token-key.pem", key)
    key.chmod(0o644)
    failed, out = _broken(lab, tmp_path, token_key=f'key = "{key}"')
    assert [c.name for c in failed] == ["file [token] key"]
    assert "mode 0644" in out and f"chmod 600 {key}" in out
    key.chmod(0o600)
    assert (
        exit_code(
            run_checks(lab.profile(tmp_path / "lab.toml", token_key=f'key = "{key}"'), env=ENV)
        )
        == 0
    )


def test_a_wrong_passphrase_fails_without_showing_it(lab: Lab, tmp_path: Path) -> None:
    wrong = {"CERTISSUER_P12_PASSPHRASE": "not-the-pass-9f"}
    profile = lab.profile(tmp_path / "lab.toml")
    done = CliRunner().invoke(app, ["--config", str(profile), "doctor", "--json"], env=wrong)
    assert done.exit_code == 1, (done.output, done.exception)
    failed = [c for c in json.loads(done.stdout)["checks"] if c["status"] == "FAIL"]
    assert [c["name"] for c in failed] == ["signing key"]
    assert "does not open with the passphrase in $CERTISSUER_P12_PASSPHRASE" in failed[0]["message"]
    assert "not-the-pass-9f" not in done.output


def test_an_expired_signing_certificate_fails(lab: Lab, tmp_path: Path) -> None:
    old = make_keys(
        tmp_path / "old",
        passphrase=PASSWORD.encode(),
        organisation="Doctor lab",
        key_type="p256",
        valid_days=30,
        now=datetime.now(UTC) - timedelta(days=400),
    )
    assert old.signer_p12 is not None
    failed, out = _broken(
        lab,
        tmp_path,
        pkcs12=f'pkcs12 = "{old.signer_p12}"',
        trust_roots=f'trust_roots = ["{old.ca_cert}"]',
    )
    assert [c.name for c in failed] == ["signing certificate"]
    assert "FAIL  signing certificate: expired on " in out


def test_a_certificate_ending_soon_is_a_warning(lab: Lab, tmp_path: Path) -> None:
    with freeze_time(datetime.now(UTC) + timedelta(days=3650 - 10), tick=True):
        checks = run_checks(lab.profile(tmp_path / "lab.toml"), env=ENV)
    by = _by_name(checks)
    assert by["signing certificate"].status is Status.WARN
    assert "renew" in by["signing certificate"].hint


def test_a_ledger_not_migrated_fails(lab: Lab, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    upgrade(engine, "0007")
    engine.dispose()
    failed, out = _broken(lab, tmp_path, ledger=f'url = "{url}"')
    assert [c.name for c in failed] == ["ledger"]
    assert f"is at schema revision 0007, this version needs {head_revision()}" in out
    assert "certissuer ledger upgrade" in out


def test_an_unreachable_ledger_fails(lab: Lab, tmp_path: Path) -> None:
    failed, _out = _broken(lab, tmp_path, ledger=f'url = "sqlite:///{tmp_path / "none.db"}"')
    assert [c.name for c in failed] == ["ledger"]
    assert "none.db does not exist" in failed[0].message


def test_an_unreachable_tsa_fails(lab: Lab, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/tsa"
    failed, out = _broken(lab, tmp_path, tsa_url=f'tsa_url = ["{dead}"]')
    assert [c.name for c in failed] == [f"TSA {dead}"]
    assert f"FAIL  TSA {dead}: no answer" in out


def test_a_clock_off_by_minutes_is_a_warning(lab: Lab, tmp_path: Path) -> None:
    # Only doctor's clock moves: the TSA runs in its own process.
    with freeze_time(datetime.now(UTC) - timedelta(minutes=5), tick=True):
        checks = run_checks(lab.profile(tmp_path / "lab.toml"), env=ENV)
    clock = _by_name(checks)["clock"]
    assert clock.status is Status.WARN
    assert "behind the TSA's time" in clock.message and "NTP" in clock.hint


def test_a_page_publishing_other_keys_fails(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(TokenKey.generate().public.pem())
    failed, out = _broken(lab, tmp_path, token_public=f'token_public = "{other}"')
    assert [c.name for c in failed] == ["keys.json"]
    assert "add the token key's public half to [web] token_public" in out


def test_a_profile_that_does_not_load_fails_first(tmp_path: Path) -> None:
    profile = tmp_path / "lab.toml"
    profile.write_text('[signing]\npkcs_12 = "x.p12"\n', encoding="utf-8")
    checks = run_checks(profile, env=ENV)
    assert len(checks) == 1 and checks[0].status is Status.FAIL and exit_code(checks) == 1
    assert "pkcs_12" in checks[0].message
