"""A lab's first week (issue 19): tables that read when piped, a copy of an archived PDF,
honest counts and remarks for records issued before, the data in ``ledger show``, and why a
certificate's status is what it is in ``ledger export``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certissuer._files import issued_length
from certissuer.cli import app
from certissuer.keys import KeyPaths

from .conftest import PASSPHRASE, SAMPLES

runner = CliRunner()
LONG_OWNER = "Công ty Trách nhiệm Hữu hạn Xăng dầu Đồng Tháp Chi nhánh Cao Lãnh Số Hai"

Lab = tuple[Path, dict[str, str], Path]


def _run(lab: Lab, *args: str) -> tuple[int, str, str]:
    profile, env, _ = lab
    r = runner.invoke(app, ["--config", str(profile), *args], env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def lab(tmp_path: Path, pki: KeyPaths) -> Lab:
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "W1"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'url_base = "https://verify.test.invalid"\n[ledger]\nurl = "sqlite:///ledger.db"\n',
        encoding="utf-8",
    )
    record = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
    record["owner"]["name"] = LONG_OWNER
    source = tmp_path / "verification.json"
    source.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    lab = (profile, {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}, source)
    code, _, err = _run(lab, "issue", "--out", str(tmp_path / "out"), str(source))
    assert code == 0, err
    return lab


def _only(lab: Lab) -> dict[str, str]:
    code, out, _ = _run(lab, "ledger", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 1
    return dict(rows[0])


def test_a_piped_list_keeps_each_row_on_one_aligned_line(lab: Lab) -> None:
    code, out, _ = _run(lab, "ledger", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["number", "kind", "status", "issued", "instrument", "serial",
                                "customer"]  # fmt: skip
    assert len(lines) == 2, out  # one row: nothing wrapped, however long the owner's name
    assert lines[1].endswith(LONG_OWNER)
    assert lines[1].index("verification") == lines[0].index("kind")  # columns aligned
    assert "│" not in out and "┃" not in out  # plain text, no box drawing


def test_ledger_get_writes_the_archived_pdf_byte_for_byte(lab: Lab, tmp_path: Path) -> None:
    entry = _only(lab)
    archived = next((tmp_path / "out").glob("*.pdf"))
    stem = archived.stem  # "KD-…": the file name's form of the number works too
    code, out, err = _run(lab, "ledger", "get", stem, "--out", str(tmp_path / "copies"))
    assert code == 0, err
    copy = tmp_path / "copies" / archived.name
    assert copy.read_bytes() == archived.read_bytes()
    assert entry["number"] in out and entry["pdf_sha256"] in out


def test_ledger_get_refuses_a_changed_or_missing_archive(lab: Lab, tmp_path: Path) -> None:
    entry = _only(lab)
    archived = next((tmp_path / "out").glob("*.pdf"))
    data = bytearray(archived.read_bytes())
    data[len(data) // 2] ^= 0x01
    archived.write_bytes(bytes(data))
    code, _, err = _run(lab, "ledger", "get", entry["number"], "--out", str(tmp_path / "c"))
    assert code == 7 and "is not the file the ledger recorded" in err
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
    archived.unlink()
    code, _, err = _run(lab, "ledger", "get", entry["number"], "--out", str(tmp_path / "c"))
    assert code == 7 and "the archive lacks the PDF" in err and str(archived) in err
    code, _, err = _run(lab, "ledger", "get", "KĐ-2026-999999", "--out", str(tmp_path / "c"))
    assert code == 7 and "not in the ledger" in err


def test_issued_length_accepts_only_later_revisions() -> None:
    import hashlib

    issued = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\nstartxref\n9\n%%EOF\n"
    sha = hashlib.sha256(issued).hexdigest()
    assert issued_length(issued, sha) == len(issued)
    approved = issued + b"2 0 obj\n<<>>\nendobj\nstartxref\n60\n%%EOF\n"
    assert issued_length(approved, sha) == len(issued)
    changed = issued.replace(b"<<>>", b"<< >>", 1) + approved[len(issued) :]
    assert issued_length(changed, sha) is None
    assert issued_length(issued[:-1], sha) is None  # a truncated file is not the issued one


def test_issuing_again_says_what_became_of_the_certificate(lab: Lab, tmp_path: Path) -> None:
    _, _, source = lab
    number = _only(lab)["number"]
    archived = next((tmp_path / "out").glob("*.pdf"))
    archived.unlink()
    code, out, _ = _run(lab, "issue", "--out", str(tmp_path / "out"), str(source))
    assert code == 0
    assert "already issued; its PDF is missing from the archive" in out, out
    code, _, err = _run(lab, "revoke", number, "--reason", "sai số liệu / wrong data")
    assert code == 0, err
    code, out, _ = _run(lab, "issue", "--out", str(tmp_path / "out"), str(source))
    assert "already issued; revoked: sai số liệu / wrong data" in out, out
    code, out, _ = _run(lab, "issue", "--json", "--out", str(tmp_path / "out"), str(source))
    assert "revoked" in json.loads(out)["issued"][0]["remark"]


def test_a_dry_run_does_not_call_issued_records_new(lab: Lab, tmp_path: Path) -> None:
    _, _, source = lab
    code, out, err = _run(lab, "batch", "issue", "--dry-run", "--out", str(tmp_path / "d"),
                          str(source))  # fmt: skip
    assert code == 0, err
    assert "0 would be issued" in out and "1 already issued" in out, out


def test_a_record_with_several_problems_counts_once(lab: Lab, tmp_path: Path) -> None:
    record = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
    record.update(ref="bad-1", verification_date="2026-13-45", valid_until="x")
    record["owner"]["name"] = ""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    code, out, err = _run(lab, "issue", "--out", str(tmp_path / "out"), str(bad))
    assert code == 2
    assert "1 rejected (3 problems)" in out, out
    assert err.count("rejected: ") == 3


def test_ledger_show_prints_the_certificates_data(lab: Lab) -> None:
    number = _only(lab)["number"]
    code, out, _ = _run(lab, "ledger", "show", number)
    assert code == 0
    sample = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
    assert "data.owner.name" in out and LONG_OWNER in out
    assert sample["instrument"]["serial"] in out
    assert "data.verifier.name" in out


def test_export_says_when_why_and_by_what_a_status_ended(lab: Lab, tmp_path: Path) -> None:
    number = _only(lab)["number"]
    code, _, err = _run(lab, "revoke", number, "--reason", "nhầm khách hàng / wrong customer")
    assert code == 0, err
    target = tmp_path / "export.csv"
    code, _, err = _run(lab, "ledger", "export", "--out", str(target))
    assert code == 0, err
    with target.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["status"] == "revoked"
    assert rows[0]["status_reason"] == "nhầm khách hàng / wrong customer"
    assert rows[0]["status_since"].endswith("+07:00")


def test_a_digitise_row_reports_every_problem_and_only_the_checks_it_ran(
    lab: Lab, tmp_path: Path
) -> None:
    from PIL import Image

    scans = tmp_path / "scans"
    scans.mkdir()
    Image.new("RGB", (60, 60), "white").save(scans / "a.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "paper_number,kind,lab,instrument,model,serial,owner,issue_date,valid_until,result,scans\n"
        "P-1,xyz,L,Cân,M,S1,Owner,2026-02-30,25/12/2027,đạt,missing.png\n"
        "P-2,verification,L,Cân,M,S2,Owner,2019-03-04,,đạt,a.png\n",
        encoding="utf-8",
    )
    code, out, err = _run(lab, "batch", "digitise", str(manifest), "--scans", str(scans),
                          "--out", str(tmp_path / "o"), "-q", "-j", "1")  # fmt: skip
    assert code == 2, err
    for field in ("scans", "kind", "issue_date", "valid_until"):
        assert f"row 2, field '{field}'" in err, err
    assert "1 issued" in out and "1 rejected (4 problems)" in out, out
    checks = next(line for line in out.splitlines() if line.startswith("checks run:"))
    assert "scan files" in checks
    assert "cycle table" not in checks and "MPE" not in checks  # not made on a paper copy
