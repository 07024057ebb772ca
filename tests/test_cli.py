"""The CLI through Typer's runner, on real files, keys and ledgers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.keys import KeyPaths

from .conftest import PASSPHRASE, SAMPLES

runner = CliRunner()


@pytest.fixture
def profile(tmp_path: Path, pki: KeyPaths) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(
        f"""
[lab]
code = "CLI1"
place = "Đồng Tháp"
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
    return path


@pytest.fixture
def env() -> dict[str, str]:
    return {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}


def _run(profile: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(profile), *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_issue_verify_list_show(profile: Path, env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = _run(
        profile,
        env,
        "issue",
        str(SAMPLES / "calibration.json"),
        str(SAMPLES / "verification.json"),
        "--out",
        str(out),
    )
    assert code == 0, stdout
    numbers = [line.split()[1] for line in stdout.splitlines() if line.startswith("issued ")]
    assert len(numbers) == 2 and numbers[0].startswith("HC-") and numbers[1].startswith("KĐ-")
    pdfs = sorted(out.glob("*.pdf"))
    assert len(pdfs) == 2

    code, stdout, _ = _run(profile, env, "verify", str(pdfs[0]))
    assert code == 0 and "HỢP LỆ / VALID" in stdout

    code, stdout, _ = _run(profile, env, "verify", "--json", str(pdfs[0]))
    report = json.loads(stdout)
    assert code == 0 and report["verdict"] == "valid" and report["ok"] is True

    code, stdout, _ = _run(profile, env, "ledger", "list", "--json")
    assert code == 0 and sorted(r["number"] for r in json.loads(stdout)) == sorted(numbers)

    code, stdout, _ = _run(profile, env, "ledger", "show", numbers[0])
    assert code == 0 and numbers[0] in stdout and "B912345678" in stdout and "issued at" in stdout

    code, _, stderr = _run(profile, env, "ledger", "show", "HC-1999-000001")
    assert code == 7 and "not in the ledger" in stderr


def test_verify_exit_codes_for_altered_and_qr(
    profile: Path, env: dict[str, str], tmp_path: Path
) -> None:
    code, stdout, _ = _run(
        profile,
        env,
        "issue",
        str(SAMPLES / "calibration.json"),
        "--json",
        "--out",
        str(tmp_path / "o"),
    )
    issued = json.loads(stdout)["issued"][0]
    data = bytearray(Path(issued["entry"]["pdf_path"]).read_bytes())
    data[len(data) // 3] ^= 0x01
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(data))
    code, stdout, _ = _run(profile, env, "verify", str(bad))
    assert code == 1 and "NOT GENUINE" in stdout

    code, stdout, _ = _run(profile, env, "verify", "--qr", issued["url"])
    assert code == 0 and "VALID" in stdout
    code, stdout, _ = _run(profile, env, "verify", "--qr", issued["url"], "--offline")
    assert code == 10 and "QR GENUINE, LEDGER NOT CONSULTED" in " ".join(stdout.split())
    code, stdout, _ = _run(profile, env, "verify", "--qr", issued["url"][:-4] + "AAAA")
    assert code == 1 and "NOT GENUINE" in stdout


def test_bad_input_is_reported_with_file_row_field(
    profile: Path, env: dict[str, str], tmp_path: Path
) -> None:
    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    data["results"][1]["unit"] = "lbs"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([data]), encoding="utf-8")
    code, _, stderr = _run(profile, env, "issue", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "bad.json, row 1" in stderr and "unit" in stderr and "lbs" in stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.pdf"))


def test_wrong_passphrase_is_one_line_and_secret_free(profile: Path, tmp_path: Path) -> None:
    code, stdout, stderr = _run(
        profile,
        {"CERTISSUER_P12_PASSPHRASE": "hunter2-wrong"},
        "issue",
        str(SAMPLES / "calibration.json"),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 5
    assert "wrong passphrase" in stderr and "hunter2" not in stderr + stdout
    assert "Traceback" not in stderr


def test_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.stdout)
    assert result.exit_code == 0 and "calibration" in json.dumps(schema)


def test_init_and_keys_init(tmp_path: Path, env: dict[str, str]) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "certissuer.toml"), "--lab-code", "X1"])
    assert result.exit_code == 0 and "X1" in (tmp_path / "certissuer.toml").read_text()
    again = runner.invoke(app, ["init", str(tmp_path / "certissuer.toml")])
    assert again.exit_code == 3 and "already exists" in again.stderr
    result = runner.invoke(app, ["keys", "init", str(tmp_path / "keys")], env=env)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "keys" / "signer.p12").exists()
    assert (tmp_path / "keys" / "token-key.pem").stat().st_mode & 0o077 == 0
    assert PASSPHRASE.decode() not in result.stdout
