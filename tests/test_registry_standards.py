"""The register records the reference standards each certificate used (issue 16), with or
without the lab's own register row, so a lab can list the certificates a standard served when
it is found faulty (``registry used-by``). Run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.config import Settings
from certissuer.keys import KeyPaths
from certissuer.model import parse_certificate
from certissuer.registry import RegisteredStandard

from .conftest import PASSPHRASE, SAMPLES
from .test_checks_default import NOW, bare_issuer
from .test_registry import reg_issuer

__all__ = ["bare_issuer", "reg_issuer"]  # fixtures used here


def _standards(issuer: Any) -> list[RegisteredStandard]:
    with Session(issuer.ledger.engine) as s:
        return list(s.exec(select(RegisteredStandard)).all())


def test_issuing_without_a_register_records_the_standards_used(
    bare_issuer: Any, cal_data: dict[str, Any]
) -> None:
    first = bare_issuer.issue(parse_certificate(cal_data), now=NOW)
    (std,) = _standards(bare_issuer)
    assert (std.code, std.serial, std.certificate_number) == (
        "auto-e2-0457",
        "E2-0457",
        "V09.M-2026-0123",
    )
    assert std.lab_code == bare_issuer.settings.lab_code
    assert std.calibration_due == date(2027, 3, 31) and std.traceable_to == "national"
    assert std.calibrated_by.startswith("Viện Đo lường Việt Nam")
    second = bare_issuer.issue(parse_certificate({**cal_data, "ref": "HC-REQ-2"}), now=NOW)
    assert len(_standards(bare_issuer)) == 1  # the same standard, found again
    used = bare_issuer.register.used_by("e2-0457")  # by serial, case folded
    assert [u.certificate_number for _, u in used] == [first.number, second.number]
    assert all(u.used_on == date(2026, 11, 24) for _, u in used)
    assert used[0][1].standard_certificate == "V09.M-2026-0123"
    assert bare_issuer.register.used_by("V09.M-2026-0123") == used  # by its certificate
    assert bare_issuer.register.used_by("no-such-standard") == []


def test_a_new_standard_with_a_colliding_code_gets_its_own(
    bare_issuer: Any, cal_data: dict[str, Any]
) -> None:
    other = {**cal_data["standards"][0], "name": "Quả cân 1 kg", "serial": "E2 0457",
             "certificate_number": "V09.M-2026-0999"}  # fmt: skip
    cal_data["standards"].append(other)
    done = bare_issuer.issue(parse_certificate(cal_data), now=NOW)
    codes = sorted(s.code for s in _standards(bare_issuer))
    assert codes == ["auto-e2-0457", "auto-e2-0457-2"]
    assert [u.certificate_number for _, u in bare_issuer.register.used_by("E2 0457")] == [
        done.number
    ]


def test_issuing_with_a_register_links_its_own_standard(
    reg_issuer: Any, cal_data: dict[str, Any]
) -> None:
    done = reg_issuer.issue(parse_certificate(cal_data), now=NOW)
    (std,) = _standards(reg_issuer)
    assert std.code == "E2-0457"  # the lab's row, not a copy
    ((found, use),) = reg_issuer.register.used_by("E2-0457")
    assert found.id == std.id and use.certificate_number == done.number


def test_registry_used_by_lists_the_certificates(
    tmp_path: Path, pki: KeyPaths, any_ledger_url: str, settings: Settings
) -> None:
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "R1"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'url_base = "https://verify.test.invalid"\n[ledger]\nurl = "{any_ledger_url}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode(), "COLUMNS": "200"}

    def run(*args: str) -> Any:
        return runner.invoke(app, ["--config", str(profile), *args], env=env)

    issued = run("issue", "--out", str(tmp_path / "out"), str(SAMPLES / "calibration.json"))
    assert issued.exit_code == 0, issued.stderr
    (pdf,) = (tmp_path / "out").glob("HC-*.pdf")
    listed = run("registry", "used-by", "E2-0457", "--json")
    assert listed.exit_code == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["certificate"] == pdf.stem and row["standard"] == "auto-e2-0457"
    assert row["standard_certificate"] == "V09.M-2026-0123"
    table = run("registry", "used-by", "E2-0457")
    assert pdf.stem in table.stdout and "1 certificate used E2-0457" in table.stdout
