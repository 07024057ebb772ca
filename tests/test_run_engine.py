"""The one run engine behind ``issue``, ``batch issue`` and ``batch digitise``, through the CLI.

Real keys, a real SQLite ledger, real templates and signatures: the same report (text and
JSON) for every run, ``issue`` all or nothing, ``batch`` row by row, and a signed checkpoint
after every run that issued anything.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger, checkpoint_problem
from certissuer.token import load_public_keys

from .conftest import PASSPHRASE, ROOT, SAMPLES, load_json

runner = CliRunner()
ENV = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
REPORT_KEYS = {
    "issued", "rejected", "counts", "checks", "dry_run", "checkpoint", "error_report",
    "exit_code",
}  # fmt: skip


def _profile(tmp_path: Path, pki: KeyPaths, extra: str = "") -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(
        f'[lab]\ncode = "RE"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\nappearance = "invisible"\n'
        f'[token]\nkey = "{pki.token_key}"\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path / "l.db"}"\n{extra}',
        encoding="utf-8",
    )
    return path


def _cli(profile: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(profile), *args], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def _calibrations(n: int, bad: dict[int, tuple[str, Any]] | None = None) -> list[Any]:
    records = []
    for i in range(n):
        data = load_json(SAMPLES / "calibration.json")
        data["ref"] = f"RE-{i}"
        if bad and i in bad:
            key, value = bad[i]
            data["results"][0][key] = value
        records.append(data)
    return records


def _ledger(profile_dir: Path) -> Ledger:
    return Ledger.open(f"sqlite:///{profile_dir / 'l.db'}")


def _assert_vouched(ledger: Ledger, pki: KeyPaths) -> None:
    """The newest checkpoint is signed by the lab and covers the whole log as it is now."""
    cp = ledger.latest_checkpoint()
    assert cp is not None
    assert cp.tree_size == ledger.log_size() > 0
    assert checkpoint_problem(cp, load_public_keys(pki.token_key), ledger.leaf_hashes()) is None


def test_issue_with_a_template_error_and_a_bad_field_issues_nothing(
    tmp_path: Path, pki: KeyPaths
) -> None:
    # The verification template is broken; the calibration one is fine.
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "verification.rml.j2").write_text("{% if %}", encoding="utf-8")
    profile = _profile(tmp_path, pki, f'[render]\ntemplate_dir = "{templates}"\n')
    good = _write(tmp_path / "good.json", _calibrations(2))
    bad = _write(tmp_path / "bad.json", _calibrations(2, {1: ("uncertainty", "n/a")}))
    ver = SAMPLES / "verification.json"
    out = tmp_path / "out"

    code, stdout, stderr = _cli(profile, "issue", str(good), str(ver), str(bad), "-o", str(out))
    assert code == 2, stderr  # a template error (4) and an input error (2): 2
    assert "verification.rml.j2" in stderr  # the template error, named
    assert "bad.json, row 2, field 'results" in stderr and "n/a" in stderr
    assert "nothing was issued" in stderr
    assert "0 issued" in stdout
    assert not out.exists() or not list(out.glob("*.pdf"))
    ledger = _ledger(tmp_path)
    assert ledger.count() == 0 and ledger.log_size() == 0
    assert ledger.latest_checkpoint() is None  # nothing issued, nothing to vouch for

    # One template error alone: still nothing issued, and the error's own exit code.
    code, _, stderr = _cli(profile, "issue", str(good), str(ver), "-o", str(out))
    assert code == 4 and "nothing was issued" in stderr, stderr
    assert ledger.count() == 0

    # No number was taken: the first certificate issued afterwards is number 1 of the year.
    code, stdout, stderr = _cli(profile, "issue", str(good), "-o", str(out), "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert [e["entry"]["number"][-6:] for e in report["issued"]] == ["000001", "000002"]
    assert {e.seq for e, _ in ledger.search(today=date.today(), limit=10)} == {1, 2}


def test_batch_issues_the_good_rows_and_reports_the_bad(tmp_path: Path, pki: KeyPaths) -> None:
    profile = _profile(tmp_path, pki)
    data = _write(tmp_path / "rows.json", _calibrations(3, {1: ("unit", "psi")}))
    out = tmp_path / "out"
    args = ["batch", "issue", str(data), "-o", str(out), "-j", "1", "-q", "--json"]
    code, stdout, stderr = _cli(profile, *args)
    assert code == 2, stderr
    report = json.loads(stdout)
    assert report["counts"] == {
        "issued": 2, "already": 0, "rejected": 1, "skipped": 0, "completed": 0, "notices": 0,
        "downgraded": 0,
    }  # fmt: skip
    [rejected] = report["rejected"]
    assert rejected["file"].endswith("rows.json") and rejected["row"] == 2
    assert rejected["field"].endswith("unit") and "psi" in rejected["reason"]
    assert rejected["exit_code"] == 2
    assert "rows.json, row 2, field 'results" in stderr
    assert len(list(out.glob("*.pdf"))) == 2
    with open(out / "batch-errors.csv", encoding="utf-8-sig", newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["file", "row", "field", "reason", "hint"] and lines[1][1] == "2"

    ledger = _ledger(tmp_path)
    _assert_vouched(ledger, pki)
    assert report["checkpoint"]["tree_size"] == ledger.log_size()


def test_batch_digitise_signs_a_checkpoint(tmp_path: Path, pki: KeyPaths) -> None:
    profile = _profile(tmp_path, pki)
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.new("RGB", (620, 877), (250, 250, 245)).save(scans / "p1.jpg", dpi=(75, 75))
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(
            [
                ["paper_number", "kind", "instrument", "serial", "owner", "issue_date", "scans"],
                ["KĐ-1/2009", "verification", "Cân bàn", "9921", "Chợ", "2009-05-04", "p1.jpg"],
            ]
        )
    args = ["batch", "digitise", str(manifest), "--scans", str(scans), "-o", str(tmp_path / "o")]
    code, stdout, stderr = _cli(profile, *args, "-j", "1", "-q")
    assert code == 0, stderr
    assert "1 issued" in stdout and "checkpoint" in stdout
    _assert_vouched(_ledger(tmp_path), pki)


def test_one_report_shape_and_one_entry_shape(tmp_path: Path, pki: KeyPaths) -> None:
    profile = _profile(tmp_path, pki)
    out = str(tmp_path / "out")
    code, stdout, stderr = _cli(profile, "issue", str(SAMPLES / "calibration.json"), "-o", out,
                                "--json")  # fmt: skip
    assert code == 0, stderr
    issued = json.loads(stdout)
    data = _write(tmp_path / "rows.json", _calibrations(1))
    code, stdout, stderr = _cli(profile, "batch", "issue", str(data), "-o", out, "-j", "1", "-q",
                                "--json")  # fmt: skip
    assert code == 0, stderr
    batched = json.loads(stdout)
    manifest = tmp_path / "m.csv"
    manifest.write_text("paper_number,kind,scans\n", encoding="utf-8")
    (tmp_path / "scans").mkdir()
    code, stdout, stderr = _cli(profile, "batch", "digitise", str(manifest), "--scans",
                                str(tmp_path / "scans"), "-o", out, "-q", "--json")  # fmt: skip
    assert code == 0, stderr
    digitised = json.loads(stdout)
    assert set(issued) == set(batched) == set(digitised) == REPORT_KEYS
    assert set(issued["counts"]) == set(batched["counts"]) == set(digitised["counts"])
    assert issued["checkpoint"] is not None and digitised["checkpoint"] is None

    # The run report's entry is the ledger's one entry shape, value for value.
    entry = issued["issued"][0]["entry"]
    code, stdout, _ = _cli(profile, "ledger", "list", "--json")
    listed = {e["number"]: e for e in json.loads(stdout)}
    code, stdout, _ = _cli(profile, "ledger", "search", "--number", entry["number"], "--json")
    [found] = json.loads(stdout)
    assert entry == listed[entry["number"]] == found
    assert batched["issued"][0]["entry"] == listed[batched["issued"][0]["entry"]["number"]]
    assert "/V/" in issued["issued"][0]["url"]


@pytest.mark.parametrize("rerun", ["issue", "batch"])
def test_a_rerun_reuses_and_signs_no_checkpoint(tmp_path: Path, pki: KeyPaths, rerun: str) -> None:
    profile = _profile(tmp_path, pki)
    data = _write(tmp_path / "rows.json", _calibrations(1))
    out = str(tmp_path / "out")
    command = ["issue"] if rerun == "issue" else ["batch", "issue", "-j", "1", "-q"]
    assert _cli(profile, *command, str(data), "-o", out)[0] == 0
    ledger = _ledger(tmp_path)
    first = ledger.latest_checkpoint()
    code, stdout, _ = _cli(profile, *command, str(data), "-o", out)
    assert code == 0 and "(already issued)" in stdout and "1 already issued" in stdout
    latest = ledger.latest_checkpoint()
    assert first is not None and latest is not None and latest.id == first.id


NO_LAB = "the register holds no row for lab RE: add it with 'certissuer registry add lab code=RE …'"
NO_REGISTER = {
    "verifier cards": NO_LAB,
    "scopes and signatories": NO_LAB,
    "stamp stock": NO_LAB,
    "standards in the register": NO_LAB,
    "CMC": f"{NO_LAB}; the profile's [lab] accredited_scope states no CMC",
}


def test_the_report_says_which_checks_ran_and_which_had_no_data(
    tmp_path: Path, pki: KeyPaths
) -> None:
    profile = _profile(tmp_path, pki)
    out = tmp_path / "out"
    first = _write(tmp_path / "a.json", _calibrations(1))
    code, stdout, stderr = _cli(profile, "issue", str(first), "-o", str(out), "--json")
    assert code == 0, stderr
    checks = json.loads(stdout)["checks"]
    assert checks["no_data"] == NO_REGISTER
    assert {"dates", "standards' due dates", "stamp once per lab", "year of manufacture",
            "valid-until (cycle table)", "instrument type"} <= set(checks["ran"])  # fmt: skip
    assert not set(checks["ran"]) & set(NO_REGISTER)
    # The lab's register, with a verifier card and a scope line stating a CMC: those checks
    # run; the stamp stock and the lab's own standards still have no data.
    for part, *values in [
        ("lab", "code=RE"),
        ("person", "name=Phạm Minh Tuấn", "verifier_card=KĐV-1", "card_types=can-ban",
         "card_expiry=2030-01-01"),
        ("person", "name=Lê Hoàng Phúc", "signatory=yes"),
        ("scope", "kind=calibration", "unit=g", "lower=0", "upper=500", "cmc=0.01 mg",
         "signatories=Lê Hoàng Phúc"),
    ]:  # fmt: skip
        code, _, stderr = _cli(profile, "registry", "add", part, *values)
        assert code == 0, stderr
    second = _write(tmp_path / "b.json", [{**_calibrations(1)[0], "ref": "HC-CHECKS-2"}])
    code, stdout, stderr = _cli(profile, "issue", str(second), "-o", str(out))
    assert code == 0, stderr
    lines = stdout.splitlines()
    ran = next(line for line in lines if line.startswith("checks run: "))
    assert "verifier cards" in ran and "scopes and signatories" in ran and "CMC" in ran
    assert (
        "check not run: stamp stock: the register holds no stamp stock of lab RE: add it with "
        "'certissuer registry add stamp series=… first=… last=…'"
    ) in lines
    assert any(
        line.startswith(
            "check not run: standards in the register: the register holds no standard of lab RE"
        )
        for line in lines
    )
    assert not any("no data" in line for line in lines)
    assert not any(line.startswith("check not run: verifier cards") for line in lines)


def test_standards_without_the_lab_row_are_named_not_called_no_data(
    tmp_path: Path, pki: KeyPaths
) -> None:
    """The register holds a standard but no row for the lab: the line says that, and how to
    add the lab, rather than "no data"."""
    profile = _profile(tmp_path, pki)
    code, _, stderr = _cli(
        profile, "registry", "add", "standard", "code=E2", "name=Weight set E2",
        "certificate_number=V09-1", "calibration_due=2099-12-31",
    )  # fmt: skip
    assert code == 0, stderr
    data = _write(tmp_path / "a.json", _calibrations(1))
    code, stdout, stderr = _cli(profile, "issue", str(data), "-o", str(tmp_path / "out"))
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert (
        "check not run: standards in the register: the register holds 1 standard(s) of lab RE "
        "but no row for the lab itself, so they are not checked: add it with "
        "'certissuer registry add lab code=RE …'"
    ) in lines
    assert f"check not run: verifier cards: {NO_LAB}" in lines
    assert not any("no data" in line for line in lines)
