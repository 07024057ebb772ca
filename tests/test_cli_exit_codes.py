"""Every documented exit code through a real command, the README's table, and quiet stderr.

The table drives codes 0-10 through Typer's runner (the same boundary as the console script)
and a few through a real process started from another folder. The README's exit-code table
must list the same codes, each with the error class errors.py gives that code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certissuer import errors
from certissuer.cli import app
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger

from .conftest import PASSPHRASE, ROOT, SAMPLES, load_json

runner = CliRunner()
ENV = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode(), "COLUMNS": "200"}


def _profile(path: Path, pki: KeyPaths, *, code: str = "EXC", extra: str = "") -> Path:
    path.write_text(
        f"""
[lab]
code = "{code}"
place = "Đồng Tháp"
[signing]
pkcs12 = "{pki.signer_p12}"
trust_roots = ["{pki.ca_cert}"]
[token]
key = "{pki.token_key}"
url_base = "https://verify.test.invalid"
[ledger]
url = "sqlite:///{path.parent / (path.stem + ".db")}"
{extra}
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Lab:
    """A lab with one issued certificate, and files that make each command fail its way."""

    root: Path
    profile: Path
    pdf: Path
    number: str
    foreign_pdf: Path
    """Signed by somebody else's PKI: a signature the lab's trust roots do not trust."""
    pki: KeyPaths
    url: str
    """The issued certificate's QR URL."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, pki: KeyPaths, other_pki: KeyPaths) -> Lab:
    root = tmp_path_factory.mktemp("exit-codes")
    profile = _profile(root / "lab.toml", pki)
    args = ["--config", str(profile), "issue", str(SAMPLES / "calibration.json"), "--json"]
    done = runner.invoke(app, [*args, "--out", str(root / "out")], env=ENV)
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)["issued"][0]
    issued = record["entry"]
    forger = _profile(root / "forger.toml", other_pki, code="FRG")
    args = ["--config", str(forger), "issue", str(SAMPLES / "calibration.json"), "--json"]
    done = runner.invoke(app, [*args, "--out", str(root / "forged")], env=ENV)
    assert done.exit_code == 0, done.output
    foreign = Path(json.loads(done.stdout)["issued"][0]["entry"]["pdf_path"])
    return Lab(
        root, profile, Path(issued["pdf_path"]), issued["number"], foreign, pki, record["url"]
    )


def _failed_instrument(lab: Lab) -> list[str]:
    data = load_json(SAMPLES / "verification.json")
    data["ref"] = "KD-FAILED-1"
    data["checks"][0]["error"] = "0.50"  # beyond the MPE of 0.10 L: the instrument fails
    path = lab.root / "failed.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return ["issue", str(path), "--out", str(lab.root / "out-failed")]


def _bad_input(lab: Lab) -> list[str]:
    data = load_json(SAMPLES / "calibration.json")
    data["ref"] = "HC-BAD-1"
    data["results"][0]["uncertainty"] = "n/a"
    path = lab.root / "bad.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return ["issue", str(path), "--out", str(lab.root / "out-bad")]


def _broken_template(lab: Lab) -> list[str]:
    templates = lab.root / "broken-templates"
    if not templates.exists():
        shutil.copytree(ROOT / "templates", templates)
        (templates / "calibration.rml.j2").write_text("{% if %}", encoding="utf-8")
    profile = _profile(
        lab.root / "broken.toml",
        lab.pki,
        code="BRK",
        extra=f'[render]\ntemplate_dir = "{templates}"\n',
    )
    out = str(lab.root / "out-broken")
    return ["--config", str(profile), "issue", str(SAMPLES / "calibration.json"), "-o", out]


@dataclass(frozen=True)
class Case:
    code: int
    args: Callable[[Lab], list[str]]
    says: str
    env: dict[str, str] | None = None


CASES = {
    "valid": Case(0, lambda lab: ["verify", str(lab.pdf)], "VALID"),
    "untrusted signature": Case(1, lambda lab: ["verify", str(lab.foreign_pdf)], "NOT GENUINE"),
    "bad input": Case(2, _bad_input, "field"),
    "bad option": Case(2, lambda lab: ["ledger", "list", "--no-such-option"], "No such option"),
    "configuration": Case(3, lambda lab: ["verify"], "give either a PDF file or --qr URL"),
    "template": Case(4, _broken_template, "error:"),
    "signing": Case(
        5,
        lambda lab: ["issue", str(SAMPLES / "verification.json"), "-o", str(lab.root / "o5")],
        "wrong passphrase",
        env={"CERTISSUER_P12_PASSPHRASE": "wrong"},
    ),
    "token": Case(
        6, lambda lab: ["verify", "--strict", "--qr", "https://evil.invalid/v/AAAA"], "refused"
    ),
    "ledger": Case(7, lambda lab: ["ledger", "show", "HC-1999-999999"], "not in the ledger"),
    "unreadable document": Case(
        8, lambda lab: ["verify", str(lab.root / "missing.pdf")], "cannot read the file"
    ),
    "refused": Case(9, _failed_instrument, "rejected"),
    "ledger not consulted": Case(
        10, lambda lab: ["verify", "--offline", "--qr", lab.url], "QR GENUINE, LEDGER NOT CONSULTED"
    ),
}


def _invoke(lab: Lab, case: Case, *, verbose: bool) -> tuple[int, str, str]:
    args = case.args(lab)
    if args[0] != "--config":
        args = ["--config", str(lab.profile), *args]
    result = runner.invoke(app, ["-v", *args] if verbose else args, env=case.env or ENV)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_each_exit_code_through_a_real_command(lab: Lab, name: str) -> None:
    case = CASES[name]
    code, stdout, stderr = _invoke(lab, case, verbose=False)
    assert code == case.code, (stdout, stderr)
    assert case.says in stdout + stderr, (stdout, stderr)
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    if code not in (0, 1, 10):  # 10 is a verdict too, printed on stdout
        assert stderr.strip(), "a failure says why on stderr"


def test_every_documented_code_has_a_case() -> None:
    assert {case.code for case in CASES.values()} == set(range(11))


@pytest.mark.parametrize("name", ["bad input", "configuration", "ledger", "refused"])
def test_verbose_never_changes_the_exit_code(lab: Lab, name: str) -> None:
    case = CASES[name]
    code, stdout, stderr = _invoke(lab, case, verbose=True)
    assert code == case.code, (stdout, stderr)


def test_verbose_shows_the_traceback_of_an_error(lab: Lab) -> None:
    code, _, stderr = _invoke(lab, CASES["ledger"], verbose=True)
    assert code == 7 and "Traceback" in stderr and "not in the ledger" in stderr


def _readme_table() -> dict[int, tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("| code | meaning | error |")
    rows: dict[int, tuple[str, str]] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        code, meaning, error = (cell.strip() for cell in line.strip("|").split("|"))
        rows[int(code)] = (meaning, error)
    return rows


def test_readme_lists_the_same_exit_codes_as_errors_py() -> None:
    table = _readme_table()
    assert sorted(table) == list(range(11))
    for code, (meaning, error) in table.items():
        assert meaning, code
        if error:
            cls = getattr(errors, error)
            assert issubclass(cls, errors.CertissuerError) and cls.exit_code == code, error
    documented = {error for _, error in table.values() if error}
    for name in errors.__all__:
        cls = getattr(errors, name)
        # Every error class's code is in the table (subclasses share their parent's row).
        assert cls.exit_code in table, name
    assert "IssueRefused" in documented and errors.IssueRefused.exit_code == 9
    assert "failed instrument" in table[9][0]


# -- real processes, started from another folder ---------------------------------------------


def _process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV}
    return subprocess.run(
        [sys.executable, "-m", "certissuer", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_spreadsheet_that_is_not_one_is_an_input_error_in_a_process(tmp_path: Path) -> None:
    (tmp_path / "bad.xlsx").write_bytes(b"not a zip file at all")
    (tmp_path / "scans").mkdir()
    done = _process(tmp_path, "batch", "digitise", "bad.xlsx", "--scans", "scans")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "BadZipFile" not in done.stderr
    assert done.stderr.startswith("error:") and "Excel workbook (.xlsx)" in done.stderr


def test_an_untrusted_signature_is_a_verdict_without_library_noise(lab: Lab) -> None:
    elsewhere = lab.root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    done = _process(elsewhere, "--config", str(lab.profile), "verify", str(lab.foreign_pdf))
    assert done.returncode == 1, done.stderr
    assert "NOT GENUINE" in done.stdout
    # pyHanko logs a warning with a traceback for a signer it cannot trust; not on our stderr.
    assert "Traceback" not in done.stderr and "pyhanko" not in done.stderr.lower(), done.stderr


def test_a_failed_instrument_exits_9_in_a_process(lab: Lab) -> None:
    args = _failed_instrument(lab)
    done = _process(lab.root, "--config", str(lab.profile), *args)
    assert done.returncode == 9, done.stderr
    assert "rejected" in done.stderr and "Traceback" not in done.stderr


# -- settings names in square brackets print as written --------------------------------------


def _plain(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["issue", "--help"], "(default: [signing] level)"),
        (["sign-approve", "--help"], "(default: [signing] level)"),
        (["verify", "--help"], "Default: [web] pdf_timeout (10)"),
        (["serve", "--help"], "[web] header_timeout"),
    ],
)
def test_help_keeps_settings_names(args: list[str], shown: str) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0 and shown in _plain(result.stdout), result.stdout


def test_hints_keep_settings_names(lab: Lab, pki: KeyPaths, tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[ledger]\nurl = "sqlite:///{tmp_path / "l.db"}"\n', encoding="utf-8")
    Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")  # a ledger that exists: the profile is at fault
    result = runner.invoke(app, ["--config", str(bare), "verify", str(lab.pdf)], env=ENV)
    assert result.exit_code == 3 and "[signing] trust_roots" in result.stderr, result.stderr
    result = runner.invoke(app, ["--config", str(bare), "ledger", "audit"], env=ENV)
    assert result.exit_code == 3 and "set [token] key" in result.stderr, result.stderr
