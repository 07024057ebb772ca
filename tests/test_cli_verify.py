"""`certissuer verify` under bounds: time and memory like the web worker; the QR URL's host."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.keys import KeyPaths

from .conftest import PASSPHRASE, SAMPLES
from .test_web import xref_flood_pdf

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, pki: KeyPaths) -> dict[str, Any]:
    """A lab profile with one issued calibration certificate: paths and the issued record."""
    root = tmp_path_factory.mktemp("cli-verify")
    profile = root / "lab.toml"
    profile.write_text(
        f"""
[lab]
code = "CLV"
[signing]
pkcs12 = "{pki.signer_p12}"
trust_roots = ["{pki.ca_cert}"]
[token]
key = "{pki.token_key}"
url_base = "https://verify.test.invalid"
[ledger]
url = "sqlite:///{root / "ledger.db"}"
""",
        encoding="utf-8",
    )
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    args = ["--config", str(profile), "issue", str(SAMPLES / "calibration.json")]
    result = runner.invoke(app, [*args, "--json", "--out", str(root / "out")], env=env)
    assert result.exit_code == 0, result.output
    flood = root / "flood.pdf"
    flood.write_bytes(xref_flood_pdf(600_000))
    return {"profile": profile, "issued": json.loads(result.stdout)["issued"][0], "flood": flood}


def _run(lab: dict[str, Any], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(lab["profile"]), "verify", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_genuine_pdf_is_judged_within_the_bounds(lab: dict[str, Any]) -> None:
    path = lab["issued"]["entry"]["pdf_path"]
    code, stdout, _ = _run(lab, path)
    assert code == 0 and "HỢP LỆ / VALID" in stdout and "hợp lệ / valid" in stdout
    code, stdout, _ = _run(lab, "--json", "--timeout", "30", path)
    report = json.loads(stdout)
    assert code == 0 and report["verdict"] == "valid" and report["signatures"][0]["valid"]
    assert report["number"] == lab["issued"]["entry"]["number"]


@pytest.mark.parametrize("case", ["genuine", "bytes appended", "offline"])
def test_the_bounded_check_reports_what_the_check_in_one_process_reports(
    lab: dict[str, Any], tmp_path: Path, case: str
) -> None:
    # Bounded, the file is read in a child and the ledger asked in the CLI's own process;
    # `--timeout 0` runs `Verifier.verify_pdf` whole in one process. Same report, same code.
    path = Path(lab["issued"]["entry"]["pdf_path"])
    extra: list[str] = []
    if case == "bytes appended":
        path = tmp_path / "appended.pdf"
        path.write_bytes(Path(lab["issued"]["entry"]["pdf_path"]).read_bytes() + b"\n% later\n")
    elif case == "offline":
        extra = ["--offline"]
    bounded = _run(lab, "--json", *extra, str(path))
    whole = _run(lab, "--json", "--timeout", "0", *extra, str(path))
    code = {"genuine": 0, "bytes appended": 1, "offline": 10}[case]
    assert bounded[0] == whole[0] == code, bounded
    assert json.loads(bounded[1]) == json.loads(whole[1])
    verdict = {
        "genuine": "valid",
        "bytes appended": "altered",
        "offline": "file_ledger_not_consulted",
    }[case]
    assert json.loads(bounded[1])["verdict"] == verdict


def test_a_pdf_that_overruns_the_time_limit_cannot_be_checked(lab: dict[str, Any]) -> None:
    started = time.monotonic()
    code, stdout, stderr = _run(lab, "--timeout", "1", str(lab["flood"]))
    elapsed = time.monotonic() - started
    print(f"verify --timeout 1: exit {code} after {elapsed:.2f} s")
    assert code == 8, (stdout, stderr)
    assert "could not check" in stderr and "longer than 1 s (--timeout)" in stderr
    assert "NOT GENUINE" not in stdout + stderr and "VALID" not in stdout
    # The message says the limit fired (unbounded, the flood is judged NOT GENUINE after some
    # 5 s). The bound only catches a hang: the child's start-up (importing pyHanko) is not
    # counted in the limit and takes seconds on a loaded machine.
    assert "Traceback" not in stderr and elapsed < 30


def _cli(lab: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """`certissuer verify ARGS` in a fresh process (its own address space, as in real use)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "certissuer", "--config", str(lab["profile"]), "verify"]
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_pdf_that_overruns_the_memory_limit_cannot_be_checked(lab: dict[str, Any]) -> None:
    # The budget counts from what the ready checking child maps (about 70 MiB: pyHanko, no
    # SQL stack). A genuine certificate is checked within 32 MiB more; the flood's
    # cross-reference table wants over 128 MiB more. Not much less than that: a child starved
    # far below it (64 MiB, under coverage) spent the whole --timeout failing to allocate.
    genuine = _cli(lab, "--memory-mb", "100", lab["issued"]["entry"]["pdf_path"])
    assert genuine.returncode == 0 and "HỢP LỆ / VALID" in genuine.stdout, genuine.stderr
    done = _cli(lab, "--timeout", "60", "--memory-mb", "100", str(lab["flood"]))
    assert done.returncode == 8, (done.stdout, done.stderr)
    (line,) = done.stderr.strip().splitlines()  # one line: no noise from the starved child
    assert "could not check" in line and "memory limit of 100 MiB" in line
    assert done.stdout == ""


@pytest.mark.parametrize(("needs_mb", "code"), [(64, 0), (400, 8)])
def test_the_memory_limit_counts_from_what_the_checking_child_already_maps(
    lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch, needs_mb: int, code: int
) -> None:
    # A caller that already maps more address space than the limit (a long-lived service,
    # a test runner with many threads) forks a checking child that inherits all of it: the
    # limit is a budget for reading the file. Reading that needs 64 MiB more fits in 180 MiB
    # and the genuine file is judged VALID; 400 MiB more is refused, one line, exit 8.
    import mmap

    from certissuer.verify.verifier import Verifier

    read_document = Verifier.read_document

    def hungry(self: Verifier, data: bytes, **kwargs: Any) -> Any:
        held = bytearray(needs_mb << 20)  # the forked child inherits this patch
        held[:: 1 << 12] = b"x" * len(held[:: 1 << 12])
        return read_document(self, data, **kwargs)

    monkeypatch.setattr(Verifier, "read_document", hungry)
    ballast = mmap.mmap(-1, 1536 << 20)  # address space held by the caller, never touched
    try:
        got, stdout, stderr = _run(lab, "--memory-mb", "180", lab["issued"]["entry"]["pdf_path"])
    finally:
        ballast.close()
    assert got == code, (stdout, stderr)
    if code == 0:
        assert "HỢP LỆ / VALID" in stdout
    else:
        (line,) = stderr.strip().splitlines()
        assert "could not check" in line and "memory limit of 180 MiB" in line


def test_running_out_of_memory_inside_the_validator_is_never_altered(
    lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The memory limit can be reached inside pyHanko's validator, which the checker wraps to
    # call a broken CMS blob "damaged". A genuine file short of memory is "could not check"
    # (exit 8), never ALTERED. The forked checking child inherits the patched validator.
    import certissuer.verify._pades as pades

    def starved(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(pades, "validate_pdf_signature", starved)
    code, out, err = _run(lab, lab["issued"]["entry"]["pdf_path"])
    assert code == 8, (out, err)
    assert "could not check" in err and "ALTERED" not in out + err and "NOT GENUINE" not in out


def test_the_time_limit_in_a_real_process_is_one_line_and_exit_8(lab: dict[str, Any]) -> None:
    started = time.monotonic()
    done = _cli(lab, "--timeout", "1", str(lab["flood"]))
    elapsed = time.monotonic() - started
    assert done.returncode == 8, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: ") and "could not check" in line, done.stderr
    assert "longer than 1 s" in line and elapsed < 30  # a whole process, on a loaded machine


# -- the QR URL's host --------------------------------------------------------------------------


def test_qr_url_on_another_host_warns_and_strict_refuses(lab: dict[str, Any]) -> None:
    url: str = lab["issued"]["url"]
    assert url.startswith("HTTPS://VERIFY.TEST.INVALID/V/")
    tail = url.split("/V/", 1)[1]

    code, stdout, stderr = _run(lab, "--qr", url, "--strict")
    assert code == 0 and "VALID" in stdout and "warning" not in stderr
    # Case does not matter in a scheme or host, nor does "/V/" or "/v/" (QR codes printed
    # before issue 18 hold a lower-case URL, with a base64url token: see the next test).
    code, stdout, stderr = _run(lab, "--qr", f"https://verify.test.invalid/v/{tail}", "--strict")
    assert code == 0 and "VALID" in stdout and "warning" not in stderr

    for elsewhere in (
        f"https://verify.test.invalid.evil.example/v/{tail}",
        f"http://verify.test.invalid/v/{tail}",
        f"https://verify.test.invalid:8443/v/{tail}",
        f"https://evil.example/verify.test.invalid/v/{tail}",
    ):
        code, stdout, stderr = _run(lab, "--qr", elsewhere)
        assert code == 0 and "VALID" in stdout, elsewhere  # the token itself is genuine
        assert "warning: the QR URL is on" in stderr, elsewhere
        assert "not on the lab's verification page https://verify.test.invalid" in stderr

        code, stdout, stderr = _run(lab, "--qr", elsewhere, "--strict")
        assert code == 6 and stdout == "", elsewhere
        assert "refused (--strict): the QR URL is on" in stderr and "Traceback" not in stderr

    # A bare token has no host: nothing to warn about.
    code, _, stderr = _run(lab, "--qr", tail, "--strict")
    assert code == 0 and "warning" not in stderr


def test_an_older_qr_code_with_a_base64url_token_still_verifies(lab: dict[str, Any]) -> None:
    tail = lab["issued"]["url"].split("/V/", 1)[1]
    raw = base64.b32decode(tail + "=" * (-len(tail) % 8))
    old = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    number = lab["issued"]["entry"]["number"]
    for url in (f"https://verify.test.invalid/v/{old}", old):
        code, stdout, stderr = _run(lab, "--qr", url, "--strict")
        assert code == 0 and "HỢP LỆ / VALID" in stdout and number in stdout, (url, stderr)
    # ... and the same bytes altered are not genuine in that spelling either.
    forged = old[:-2] + ("A" if old[-2] != "A" else "B") + old[-1]
    code, stdout, _ = _run(lab, "--qr", f"https://verify.test.invalid/v/{forged}")
    assert code == 1 and "NOT GENUINE" in stdout and "signature does not verify" in stdout


def test_an_offline_qr_check_says_genuine_not_consulted_and_what_the_token_proves(
    lab: dict[str, Any],
) -> None:
    from certissuer.ledger import Ledger

    url, number = lab["issued"]["url"], lab["issued"]["entry"]["number"]
    ledger = Ledger.open_readonly(f"sqlite:///{lab['profile'].parent / 'ledger.db'}")
    try:
        entry = ledger.get(number)
    finally:
        ledger.close()
    assert entry is not None
    digest = hashlib.sha256(entry.data_json.encode()).hexdigest()
    issued = entry.issue_date
    code, stdout, stderr = _run(lab, "--qr", url, "--offline")
    assert code == 10, (stdout, stderr)
    stdout = " ".join(stdout.split())  # as read, whatever the terminal's width
    assert "MÃ QR DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP" in stdout
    assert "QR GENUINE, LEDGER NOT CONSULTED" in stdout
    assert "NOT IN THE LEDGER" not in stdout and "NOT GENUINE" not in stdout
    assert number in stdout and f"{issued:%d/%m/%Y}" in stdout
    assert digest[:32] in stdout  # the digest the lab signed in the token
    code, stdout, _ = _run(lab, "--qr", url, "--offline", "--json")
    report = json.loads(stdout)
    assert code == 10 and report["verdict"] == "ledger_not_consulted" and not report["ok"]
    assert report["number"] == number and report["issue_date"] == issued.isoformat()
    assert report["token_digest"] == digest[:32]


def test_a_forged_qr_token_offline_is_not_genuine(lab: dict[str, Any]) -> None:
    tail = lab["issued"]["url"].split("/V/", 1)[1]
    forged = tail[:-2] + ("A" if tail[-2] != "A" else "B") + tail[-1]
    code, stdout, _ = _run(lab, "--qr", f"https://verify.test.invalid/V/{forged}", "--offline")
    assert code == 1 and "NOT GENUINE" in stdout and "LEDGER NOT CONSULTED" not in stdout


def _forged_url(lab: dict[str, Any]) -> str:
    tail = lab["issued"]["url"].split("/V/", 1)[1]
    return (
        "https://verify.test.invalid/V/" + tail[:-2] + ("A" if tail[-2] != "A" else "B") + tail[-1]
    )


@pytest.mark.parametrize("where", ["missing sqlite", "closed port"])
def test_a_qr_check_whose_ledger_cannot_be_opened_is_genuine_not_consulted(
    lab: dict[str, Any], tmp_path: Path, where: str
) -> None:
    url = {
        "missing sqlite": f"sqlite:///{tmp_path / 'nowhere.db'}",
        "closed port": "postgresql+psycopg://x@127.0.0.1:9/x",  # nothing listens on port 9
    }[where]
    env = {"CERTISSUER_LEDGER_URL": url}
    args = ["--config", str(lab["profile"]), "verify", "--qr", lab["issued"]["url"]]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 10, (result.stdout, result.stderr)
    stdout = " ".join(result.stdout.split())
    assert "QR GENUINE, LEDGER NOT CONSULTED" in stdout
    assert "NOT IN THE LEDGER" not in stdout and "NOT GENUINE" not in stdout
    assert lab["issued"]["entry"]["number"] in stdout
    assert "could not be reached" in stdout  # the reason in the report, too
    warning = [line for line in result.stderr.splitlines() if "could not be reached" in line]
    assert len(warning) == 1, result.stderr
    assert ("no ledger at" if where == "missing sqlite" else "cannot open the ledger") in warning[0]
    assert not (tmp_path / "nowhere.db").exists()  # reading never creates a ledger
    forged = runner.invoke(app, [*args[:-1], _forged_url(lab)], env=env)
    assert forged.exit_code == 1 and "NOT GENUINE" in forged.stdout, forged.output
    assert "LEDGER NOT CONSULTED" not in forged.stdout


def test_a_qr_check_with_an_unreachable_ledger_in_a_real_process(lab: dict[str, Any]) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CERTISSUER_LEDGER_URL": "postgresql+psycopg://x@127.0.0.1:9/x",
    }
    command = [sys.executable, "-m", "certissuer", "--config", str(lab["profile"]), "verify"]
    done = subprocess.run(
        [*command, "--qr", lab["issued"]["url"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 10, (done.stdout, done.stderr)
    assert "QR GENUINE, LEDGER NOT CONSULTED" in " ".join(done.stdout.split())
    warning = [line for line in done.stderr.splitlines() if "could not be reached" in line]
    assert len(warning) == 1, done.stderr
    assert warning[0].startswith("warning: the ledger could not be reached: cannot open the ledger")
    assert "Traceback" not in done.stderr


def test_a_qr_check_still_refuses_another_labs_ledger(lab: dict[str, Any], tmp_path: Path) -> None:
    # Another lab's ledger is no outage: it stays exit 7, never "ledger not consulted".
    other = tmp_path / "other.toml"
    text = lab["profile"].read_text(encoding="utf-8")
    other.write_text(text.replace('code = "CLV"', 'code = "OTH"'), encoding="utf-8")
    result = runner.invoke(app, ["--config", str(other), "verify", "--qr", lab["issued"]["url"]])
    assert result.exit_code == 7, result.output
    assert "belongs to lab CLV" in result.stderr and "LEDGER NOT CONSULTED" not in result.stdout


def test_an_offline_pdf_check_gives_the_files_findings_not_not_in_ledger(
    lab: dict[str, Any], tmp_path: Path
) -> None:
    path = lab["issued"]["entry"]["pdf_path"]
    number = lab["issued"]["entry"]["number"]
    code, stdout, stderr = _run(lab, "--offline", path)
    assert code == 10, (stdout, stderr)
    stdout = " ".join(stdout.split())
    assert "TỆP DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP" in stdout
    assert "FILE GENUINE, LEDGER NOT CONSULTED" in stdout
    assert "NOT IN THE LEDGER" not in stdout and "NOT GENUINE" not in stdout
    assert number in stdout and "intact, valid" in stdout  # the signature's finding
    assert "ledger was not consulted (offline)" in stdout
    code, stdout, _ = _run(lab, "--offline", "--json", path)
    report = json.loads(stdout)
    assert code == 10 and report["verdict"] == "file_ledger_not_consulted" and not report["ok"]
    assert report["number"] == number and report["token_digest"] and report["token_kid"]
    assert report["signatures"] and report["signatures"][0]["valid"]
    # An altered file offline is still NOT GENUINE.
    data = bytearray(Path(path).read_bytes())
    at = data.index(b"stream\n", len(data) // 3) + 20
    data[at] ^= 0x01
    altered = tmp_path / "altered.pdf"
    altered.write_bytes(bytes(data))
    code, stdout, _ = _run(lab, "--offline", str(altered))
    assert code == 1 and "NOT GENUINE" in stdout and "LEDGER NOT CONSULTED" not in stdout


@pytest.mark.parametrize("where", ["missing sqlite", "closed port"])
def test_a_pdf_check_whose_ledger_cannot_be_reached_is_file_genuine_not_consulted(
    lab: dict[str, Any], tmp_path: Path, where: str
) -> None:
    url = {
        "missing sqlite": f"sqlite:///{tmp_path / 'nowhere.db'}",
        "closed port": "postgresql+psycopg://x@127.0.0.1:9/x",  # nothing listens on port 9
    }[where]
    env = {"CERTISSUER_LEDGER_URL": url}
    path = lab["issued"]["entry"]["pdf_path"]
    args = ["--config", str(lab["profile"]), "verify", path]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 10, (result.stdout, result.stderr)
    stdout = " ".join(result.stdout.split())
    assert "TỆP DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP" in stdout
    assert "FILE GENUINE, LEDGER NOT CONSULTED" in stdout
    assert "NOT IN THE LEDGER" not in stdout and "NOT GENUINE" not in stdout
    assert lab["issued"]["entry"]["number"] in stdout and "intact, valid" in stdout
    assert "the ledger could not be reached (" in stdout  # the reason in the report
    warning = [line for line in result.stderr.splitlines() if "could not be reached" in line]
    assert len(warning) == 1, result.stderr
    assert warning[0].startswith("warning: the ledger could not be reached: ")
    assert ("no ledger at" if where == "missing sqlite" else "cannot open the ledger") in warning[0]
    assert not (tmp_path / "nowhere.db").exists()  # reading never creates a ledger
    # An altered file is still NOT GENUINE with the ledger out of reach.
    data = bytearray(Path(path).read_bytes())
    at = data.index(b"stream\n", len(data) // 3) + 20
    data[at] ^= 0x01
    altered = tmp_path / "altered.pdf"
    altered.write_bytes(bytes(data))
    result = runner.invoke(app, [*args[:-1], str(altered)], env=env)
    assert result.exit_code == 1 and "NOT GENUINE" in result.stdout, result.output
    assert "LEDGER NOT CONSULTED" not in result.stdout


def test_a_pdf_check_still_refuses_another_labs_ledger(lab: dict[str, Any], tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    text = lab["profile"].read_text(encoding="utf-8")
    other.write_text(text.replace('code = "CLV"', 'code = "OTH"'), encoding="utf-8")
    path = lab["issued"]["entry"]["pdf_path"]
    result = runner.invoke(app, ["--config", str(other), "verify", path])
    assert result.exit_code == 7, result.output
    assert "belongs to lab CLV" in result.stderr and "LEDGER NOT CONSULTED" not in result.stdout
