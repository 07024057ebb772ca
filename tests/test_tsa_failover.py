"""Several time-stamping authorities, a time budget per run, and what happens when none answers.

The answering TSA is certomancer's (tests/_pki.py, in-process); the others are real sockets:
a closed local port (connection refused) and a listening socket that never answers (a
timeout), plus an HTTP 503 from a mocked URL. Every timestamp is checked by pyHanko's validator.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import requests_mock
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from reportlab.pdfgen import canvas

from certissuer.config import TsaUnavailable, load_settings
from certissuer.errors import ConfigError, SigningError
from certissuer.keys import KeyPaths
from certissuer.sign import Level, Sealer, SigningPolicy

from ._pki import PASSPHRASE, LabPKI
from .conftest import SAMPLES

BUSY = "http://busy-tsa.test/tsa"
"""Answers HTTP 503 (mocked)."""


def _pdf() -> bytes:
    out = BytesIO()
    page = canvas.Canvas(out)
    page.drawString(100, 700, "Giấy chứng nhận / Certificate")
    page.save()
    return out.getvalue()


@pytest.fixture
def dead_url() -> str:
    """A local port nobody listens on: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"


@pytest.fixture
def hanging_urls() -> Iterator[list[str]]:
    """Two local sockets that accept connections (the kernel completes the handshake) and
    never answer."""
    socks = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        socks.append(sock)
    yield [f"http://127.0.0.1:{s.getsockname()[1]}/tsa" for s in socks]
    for sock in socks:
        sock.close()


@pytest.fixture
def services(lab_pki: LabPKI, dead_url: str) -> Iterator[requests_mock.Mocker]:
    """The test PKI in-process; local URLs go to the real sockets; BUSY answers 503."""
    with lab_pki.services() as mocker:
        mocker.post(re.compile(r"http://127\.0\.0\.1:\d+/"), real_http=True)
        mocker.post(BUSY, status_code=503, text="busy")
        yield mocker


def _sealer(lab_pki: LabPKI, urls: list[str], **changes: Any) -> Sealer:
    policy = SigningPolicy(
        level=changes.pop("level", Level.B_T),
        tsa_url=urls,
        trust_roots=(lab_pki.cert("root"),),
        **changes,
    )
    return Sealer.from_pkcs12(lab_pki.p12("alice"), PASSPHRASE, policy=policy)


def _status(pdf: bytes, lab_pki: LabPKI) -> Any:
    sig = PdfFileReader(BytesIO(pdf)).embedded_signatures[0]
    roots = [lab_pki.cert("root")]
    return validate_pdf_signature(
        sig,
        signer_validation_context=ValidationContext(trust_roots=roots, allow_fetching=False),
        ts_validation_context=ValidationContext(trust_roots=roots, allow_fetching=False),
    )


def test_first_tsa_dead_the_second_timestamps(
    lab_pki: LabPKI, services: requests_mock.Mocker, dead_url: str
) -> None:
    sealer = _sealer(lab_pki, [dead_url, lab_pki.tsa_url])
    signed = sealer.sign(_pdf())
    assert sealer.downgraded is None
    status = _status(signed, lab_pki)
    assert status.bottom_line, status.pretty_print_details()
    ts = status.timestamp_validity
    assert ts is not None and ts.valid and ts.intact and ts.trusted


def test_the_tsa_that_answered_is_asked_first_for_the_rest_of_the_run(
    lab_pki: LabPKI, services: requests_mock.Mocker
) -> None:
    sealer = _sealer(lab_pki, [BUSY, lab_pki.tsa_url])
    for _ in range(3):
        status = _status(sealer.sign(_pdf()), lab_pki)
        assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    busy = [r for r in services.request_history if r.url == BUSY]
    assert len(busy) == 1  # asked once; then the TSA that answered is asked first


def test_no_tsa_answers_refuses_naming_each_and_why(
    lab_pki: LabPKI, services: requests_mock.Mocker, dead_url: str
) -> None:
    sealer = _sealer(lab_pki, [dead_url, BUSY])
    with pytest.raises(SigningError) as caught:
        sealer.sign(_pdf())
    err = caught.value
    assert str(err).startswith(
        f"no time-stamping authority answered ({dead_url}: connection refused, "
        f"{BUSY}: HTTP 503); PAdES B-T needs a timestamp, so nothing was signed"
    )
    assert err.exit_code == 5
    assert err.hint is not None and 'tsa_unavailable = "downgrade"' in err.hint


def test_budget_bounds_the_run_not_each_timeout(
    lab_pki: LabPKI, services: requests_mock.Mocker, hanging_urls: list[str]
) -> None:
    """Two TSAs that never answer, a 10 s timeout each and a 2 s budget: the run gives up
    after about 2 s (not 20), and the next document does not wait again."""
    first, second = hanging_urls
    sealer = _sealer(lab_pki, hanging_urls, tsa_budget=2.0, timeout=10.0)
    started = time.monotonic()
    with pytest.raises(SigningError, match="no time-stamping authority answered") as caught:
        sealer.sign(_pdf())
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 6, elapsed
    assert f"{first}: timeout after 2.0 s, {second}: not tried" in str(caught.value)
    started = time.monotonic()
    with pytest.raises(SigningError, match=f"{first}: not tried: the run's 2 s"):
        sealer.sign(_pdf())
    assert time.monotonic() - started < 1.5


def test_downgrade_signs_b_t_at_b_b_and_says_why(
    lab_pki: LabPKI, services: requests_mock.Mocker, dead_url: str
) -> None:
    sealer = _sealer(lab_pki, [dead_url, BUSY], tsa_unavailable="downgrade")
    signed = sealer.sign(_pdf())
    assert sealer.downgraded == f"{dead_url}: connection refused, {BUSY}: HTTP 503"
    status = _status(signed, lab_pki)
    assert status.bottom_line and status.timestamp_validity is None  # B-B: no timestamp


@pytest.mark.parametrize("level", [Level.B_LT, Level.B_LTA])
def test_long_term_levels_are_never_downgraded(
    level: Level, lab_pki: LabPKI, services: requests_mock.Mocker, dead_url: str
) -> None:
    sealer = _sealer(lab_pki, [dead_url], level=level, tsa_unavailable="downgrade")
    with pytest.raises(SigningError, match=rf"{dead_url}: connection refused\)") as caught:
        sealer.sign(_pdf())
    assert caught.value.hint is not None and "never downgraded" in caught.value.hint


def _profile(tmp_path: Path, lab_pki: LabPKI, pki: KeyPaths, urls: list[str]) -> Path:
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f"""
[lab]
code = "TSA1"
[signing]
pkcs12 = "{lab_pki.p12("bob")}"
trust_roots = ["{lab_pki.pem("root")}"]
level = "B-T"
tsa_url = {json.dumps(urls)}
tsa_budget_s = 5
tsa_unavailable = "downgrade"
[token]
key = "{pki.token_key}"
[ledger]
url = "sqlite:///{tmp_path / "l.db"}"
""",
        encoding="utf-8",
    )
    return toml


def test_cli_downgrade_warns_per_certificate_and_counts_in_the_summary(
    lab_pki: LabPKI,
    pki: KeyPaths,
    services: requests_mock.Mocker,
    dead_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app

    toml = _profile(tmp_path, lab_pki, pki, [dead_url, BUSY])
    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    runner = CliRunner()
    out = tmp_path / "o"
    args = ["--config", str(toml), "issue", "--out", str(out)]
    result = runner.invoke(app, [*args, str(SAMPLES / "verification.json")])
    assert result.exit_code == 0, result.output
    why = f"no time-stamping authority answered ({dead_url}: connection refused, {BUSY}: HTTP 503)"
    assert re.search(rf"^KĐ-\d{{4}}-\d+: {re.escape(why)}; signed at B-B$", result.stderr, re.M)
    assert "1 issued, 0 already issued, 0 rejected, 1 signed at B-B" in result.stdout
    (pdf,) = out.glob("*.pdf")
    assert _status(pdf.read_bytes(), lab_pki).timestamp_validity is None

    data = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
    data["ref"] += "-2"
    data["stamp_number"] = "ĐT-26 7700001"  # a stamp is used once per lab
    second = tmp_path / "second.json"
    second.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(app, [*args, "--json", str(second)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["downgraded"] == 1
    (issued,) = report["issued"]
    failure = f"{dead_url}: connection refused, {BUSY}: HTTP 503"
    assert (issued["level"], issued["tsa_failure"]) == ("B-B", failure)

    # A notice of failure (issue 16) is signed like a certificate, and said so too.
    data["ref"], data["verification_date"] = "KD-REQ-2027-0001", "2026-12-01"
    del data["valid_until"]
    data["checks"][1]["error"] = "-0.35"  # beyond the MPE of 0.10 L
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(app, [*args, str(failed)])
    assert result.exit_code == 9, result.output
    assert re.search(rf"^TB-\d{{4}}-\d+: {re.escape(why)}; signed at B-B$", result.stderr, re.M)
    assert "1 notice of failure issued" in result.stdout and "1 signed at B-B" in result.stdout


def test_cli_refuse_is_the_default_and_exits_as_a_signing_error(
    lab_pki: LabPKI,
    pki: KeyPaths,
    services: requests_mock.Mocker,
    dead_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app

    toml = _profile(tmp_path, lab_pki, pki, [dead_url])
    toml.write_text(toml.read_text().replace('tsa_unavailable = "downgrade"\n', ""))
    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app, ["--config", str(toml), "issue", "--out", str(out), str(SAMPLES / "verification.json")]
    )
    assert result.exit_code == 5, result.output
    assert f"no time-stamping authority answered ({dead_url}: connection refused)" in result.stderr
    assert not list(out.glob("*.pdf"))


def test_profile_takes_one_url_or_a_list(tmp_path: Path) -> None:
    toml = tmp_path / "lab.toml"
    toml.write_text('[signing]\ntsa_url = "http://a.test/"\n', encoding="utf-8")
    settings = load_settings(toml, env={})
    assert settings.signing_tsa_url == ("http://a.test/",)
    assert settings.signing_tsa_budget_s == 30.0
    assert settings.signing_tsa_unavailable is TsaUnavailable.REFUSE
    toml.write_text(
        '[signing]\ntsa_url = ["http://a.test/", "http://b.test/"]\n'
        'tsa_budget_s = 2.5\ntsa_unavailable = "Downgrade"\n',
        encoding="utf-8",
    )
    settings = load_settings(toml, env={})
    assert settings.signing_tsa_url == ("http://a.test/", "http://b.test/")
    assert settings.signing_tsa_budget_s == 2.5
    assert settings.signing_tsa_unavailable is TsaUnavailable.DOWNGRADE


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'tsa_unavailable = "retry"',
            r"\[signing\] tsa_unavailable must be one of refuse, downgrade",
        ),
        ("tsa_url = [1, 2]", r"\[signing\] tsa_url must be text or a list of texts"),
        ('tsa_budget_s = "soon"', r"\[signing\] tsa_budget_s must be a number"),
    ],
)
def test_bad_tsa_settings_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    toml = tmp_path / "lab.toml"
    toml.write_text(f"[signing]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(toml, env={})
