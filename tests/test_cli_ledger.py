"""The register's CLI: revoke, amend, checkpoint, proof, audit, search, export, upgrade, repair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.keys import KeyPaths

from .conftest import PASSPHRASE, SAMPLES

runner = CliRunner()


@pytest.fixture
def lab(tmp_path: Path, pki: KeyPaths, any_ledger_url: str) -> tuple[Path, dict[str, str]]:
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "R1"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'url_base = "https://verify.test.invalid"\n[ledger]\nurl = "{any_ledger_url}"\n',
        encoding="utf-8",
    )
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    result = runner.invoke(
        app,
        [
            "--config",
            str(profile),
            "issue",
            "--json",
            "--out",
            str(tmp_path / "out"),
            str(SAMPLES / "calibration.json"),
            str(SAMPLES / "verification.json"),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    return profile, env


def _run(lab: tuple[Path, dict[str, str]], *args: str) -> tuple[int, str, str]:
    profile, env = lab
    r = runner.invoke(app, ["--config", str(profile), *args], env=env)
    return r.exit_code, r.stdout, r.stderr


def _number(lab: tuple[Path, dict[str, str]], kind: str) -> str:
    code, out, _ = _run(lab, "ledger", "search", "--kind", kind, "--json")
    assert code == 0
    return str(json.loads(out)[0]["number"])


def test_revoke_shows_in_verify_and_search(
    lab: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    number = _number(lab, "calibration")
    code, out, _ = _run(lab, "revoke", number, "--reason", "chuẩn hết hạn / standard expired")
    assert code == 0 and f"revoked {number}" in out
    pdf = next((tmp_path / "out").glob("HC-*.pdf"))
    code, out, _ = _run(lab, "verify", "--json", str(pdf))
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "revoked"
    assert report["revocation_reason"] == "chuẩn hết hạn / standard expired"
    code, out, _ = _run(lab, "ledger", "search", "--status", "revoked", "--json")
    assert [r["number"] for r in json.loads(out)] == [number]
    code, _, err = _run(lab, "revoke", number, "--reason", "again")
    assert code == 7 and "revoked" in err


def test_amend_issues_a_replacement_that_says_so(
    lab: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    import subprocess

    old = _number(lab, "calibration")
    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    data["item"]["serial"] = "B912345679"
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(data), encoding="utf-8")
    code, out, err = _run(
        lab,
        "amend",
        old,
        str(fixed),
        "--reason",
        "sai số hiệu / wrong serial",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 0, err
    new = out.split()[1]
    assert new != old and f"replaces {old}" in out
    code, out, _ = _run(lab, "verify", "--json", str(next((tmp_path / "out").glob("HC-*1.pdf"))))
    report = json.loads(out)
    assert report["verdict"] == "superseded" and report["superseded_by"] == new
    new_pdf = next(p for p in (tmp_path / "out").glob("HC-*.pdf") if p.stem.endswith(new[-6:]))
    text = subprocess.run(["pdftotext", str(new_pdf), "-"], capture_output=True, text=True).stdout
    assert f"thay thế giấy chứng nhận số {old}" in " ".join(text.split())
    assert "wrong serial" in text
    # Rerunning the same amendment changes nothing.
    code, out2, _ = _run(
        lab,
        "amend",
        old,
        str(fixed),
        "--reason",
        "sai số hiệu / wrong serial",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 0 and out2.split()[1] == new


def test_checkpoint_proof_and_audit(
    lab: tuple[Path, dict[str, str]], tmp_path: Path, any_ledger_url: str
) -> None:
    number = _number(lab, "verification")
    code, out, _ = _run(lab, "ledger", "proof", number)
    proof = json.loads(out)  # issuing made a checkpoint already
    assert code == 0 and proof["number"] == number and proof["leaves"][0]["event"] == "issued"
    code, out, _ = _run(lab, "ledger", "audit")
    assert code == 0 and "no problems found" in out and "2 PDFs checked" in out
    code, out, _ = _run(lab, "ledger", "checkpoint")
    assert code == 0 and "size 2" in out
    code, out, _ = _run(lab, "ledger", "consistency", "1")
    assert code == 0 and json.loads(out)["second"] == 2
    engine = sa.create_engine(any_ledger_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE certificate SET customer_name = 'Someone else' WHERE number = :n"),
            {"n": number},
        )
    engine.dispose()
    code, out, _ = _run(lab, "ledger", "audit", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert any(number in p and p.startswith("edited: leaf") for p in report["problems"])


def test_export_and_upgrade(lab: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    for fmt in ("csv", "xlsx", "json"):
        code, out, err = _run(
            lab, "ledger", "export", "--format", fmt, "--out", str(tmp_path / f"x.{fmt}")
        )
        assert code == 0 and "exported 2" in out, err
    assert len(json.loads((tmp_path / "x.json").read_text(encoding="utf-8"))) == 2
    code, _, err = _run(lab, "ledger", "export", "--format", "pdf", "--out", str(tmp_path / "x"))
    assert code == 3 and "csv, xlsx or json" in err
    code, out, _ = _run(lab, "ledger", "upgrade")
    from certissuer.ledger.migrations import head_revision

    assert code == 0 and f"revision {head_revision()}" in out
    code, out, _ = _run(lab, "ledger", "repair", "--out", str(tmp_path / "out"))
    assert code == 0 and "0 completed" in out
    code, _, err = _run(lab, "ledger", "search", "--from", "27/11/2026")
    assert code == 3 and "YYYY-MM-DD" in err


# -- an insider with the database (issue 14) -------------------------------------------------


def _entry(any_ledger_url: str, number: str) -> Any:
    from certissuer.ledger import Ledger

    ledger = Ledger.open(any_ledger_url, create=False)
    entry = ledger.get(number)
    ledger.engine.dispose()
    return entry


def test_cli_rollback_is_caught_by_a_saved_checkpoint(
    lab: tuple[Path, dict[str, str]], tmp_path: Path, any_ledger_url: str
) -> None:
    from certissuer.ledger import Ledger

    from ._insider import roll_back

    number = _number(lab, "verification")
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    code, out, _ = _run(lab, "ledger", "checkpoint", "--out", str(before))
    assert code == 0 and f"wrote {before}" in out
    assert json.loads(before.read_text())["tree_size"] == 2
    code, _, _ = _run(lab, "revoke", number, "--reason", "tem bị mất")
    assert code == 0
    code, _, _ = _run(lab, "ledger", "checkpoint", "--out", str(after))
    token = _entry(any_ledger_url, number).token
    code, out, _ = _run(lab, "verify", "--qr", token)
    assert code == 1 and "REVOKED" in out

    ledger = Ledger.open(any_ledger_url, create=False)
    roll_back(ledger, 2)
    ledger.engine.dispose()
    code, out, _ = _run(lab, "verify", "--qr", token)  # a deletion alone leaves rows that check
    assert code == 0 and "VALID" in out
    code, out, _ = _run(lab, "ledger", "audit", "--no-files")
    assert code == 0 and "no problems found" in out
    code, out, _ = _run(
        lab, "ledger", "audit", "--no-files", "--witness", str(before), "--witness", str(after)
    )
    cp = json.loads(after.read_text())
    assert code == 1 and "audit: 1 problem(s)" in out, out
    assert (
        f"rollback: the saved checkpoint of {cp['at'][:10]} ({after}) vouches for 3 leaves "
        f"with root {cp['root_hash']}; the log now has 2"
    ) in out.replace("\n", "")


def test_cli_data_edit_and_forged_event(
    lab: tuple[Path, dict[str, str]], tmp_path: Path, any_ledger_url: str
) -> None:
    from datetime import UTC, datetime

    from certissuer.ledger import Ledger

    from ._insider import append_event, edit_data

    cal, ver = _number(lab, "calibration"), _number(lab, "verification")
    ledger = Ledger.open(any_ledger_url, create=False)
    edit_data(ledger, cal, "B912345678", "FORGED-777", digest=False)
    append_event(ledger, ver, "revoked", at=datetime.now(UTC), reason="forged")
    ledger.engine.dispose()

    code, out, _ = _run(lab, "verify", "--qr", _entry(any_ledger_url, cal).token, "--json")
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "altered" and report["serial"] is None
    pdf = next((tmp_path / "out").glob("HC-*.pdf"))
    code, out, _ = _run(lab, "verify", str(pdf))
    assert code == 1 and "NOT GENUINE" in out and "do not hash to the digest" in out

    code, out, _ = _run(lab, "verify", "--qr", _entry(any_ledger_url, ver).token)
    assert code == 0 and "ignored: the revoked event" in out
    code, out, _ = _run(lab, "ledger", "show", ver, "--json")
    shown = json.loads(out)
    assert shown["status"] == "valid"
    assert [e["signature"] for e in shown["events"]] == [
        "signed",
        "IGNORED: it is not signed by the lab",
    ]
    code, out, _ = _run(lab, "ledger", "audit", "--no-files", "--json")
    report = json.loads(out)
    assert code == 1 and sorted(p.split(":")[0] for p in report["problems"]) == [
        "edited",
        "unsigned",
    ]
    assert [u.split(":")[0] for u in report["unvouched"]] == ["unvouched"]


def test_cli_upgrade_signs_earlier_events(
    lab: tuple[Path, dict[str, str]], any_ledger_url: str
) -> None:
    from certissuer.ledger import Ledger

    from ._insider import sql

    ledger = Ledger.open(any_ledger_url, create=False)
    sql(ledger, "UPDATE certificate_event SET kid = '', signature = ''")  # as before 0006
    ledger.engine.dispose()
    code, out, _ = _run(lab, "ledger", "audit", "--no-files")
    assert code == 1 and out.count("unsigned: event row") == 2
    code, out, _ = _run(lab, "ledger", "upgrade")
    assert code == 0 and "signed 2 earlier event(s)" in out
    code, out, _ = _run(lab, "ledger", "audit", "--no-files")
    assert code == 0 and "2 signed events (2 signed at upgrade)" in out


# -- numbers as people type them; one clock for people (issue 18) ----------------------------


def test_numbers_as_people_type_them(lab: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    ver, cal = _number(lab, "verification"), _number(lab, "calibration")
    assert ver.startswith("KĐ-")
    pdf = next((tmp_path / "out").glob("KD-*.pdf"))  # the file name has no Đ
    for typed in ("kd" + ver[2:], "kđ" + ver[2:], pdf.name, str(pdf)):
        code, out, err = _run(lab, "ledger", "show", typed)
        assert code == 0, err
        assert f"number             {ver}" in out
    code, out, err = _run(
        lab, "dcc", "export", f"hc{cal[2:]}.pdf", "--out", str(tmp_path / "d.xml")
    )
    assert code == 0, err
    assert cal in (tmp_path / "d.xml").read_text(encoding="utf-8")

    code, _, err = _run(lab, "revoke", "KD-2026-999999", "--reason", "tem bị mất")
    assert code == 7 and "certificate KD-2026-999999 is not in the ledger" in err
    code, _, err = _run(lab, "ledger", "show", "KD-2026-999999.pdf")
    assert code == 7 and "not in the ledger" in err
    code, out, err = _run(lab, "revoke", "KD" + ver[2:], "--reason", "tem bị mất")
    assert code == 0, err
    assert f"revoked {ver} on " in out
    code, out, err = _run(lab, "ledger", "proof", pdf.name)
    assert code == 0, err
    assert json.loads(out)["number"] == ver

    fixed = tmp_path / "fixed.json"
    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    data["item"]["serial"] = "B912345679"
    fixed.write_text(json.dumps(data), encoding="utf-8")
    code, out, err = _run(
        lab, "amend", cal.lower(), str(fixed), "--reason", "sai số hiệu / wrong serial",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 0, err
    assert f"(replaces {cal})" in out


def test_a_revocation_shows_vietnams_date(
    lab: tuple[Path, dict[str, str]], tmp_path: Path, any_ledger_url: str
) -> None:
    from datetime import UTC, datetime

    from certissuer.config import load_settings
    from certissuer.issue import load_token_key
    from certissuer.ledger import Ledger

    ver = _number(lab, "verification")
    key = load_token_key(load_settings(lab[0], env={}))
    ledger = Ledger.open(any_ledger_url, create=False, ledger_key=key)
    # 20:00 UTC on 2 December is 03:00 on 3 December in Vietnam.
    ledger.revoke(ver, reason="tem bị mất", at=datetime(2026, 12, 2, 20, 0, tzinfo=UTC))
    ledger.engine.dispose()

    code, out, _ = _run(lab, "verify", "--qr", _entry(any_ledger_url, ver).token)
    assert code == 1 and "REVOKED" in out
    assert "revoked on 2026-12-03: tem bị mất" in out and "2026-12-02" not in out
    assert "Thu hồi ngày 03/12/2026, lý do: tem bị mất / Revoked on 03/12/2026, reason: tem" in out
    assert "02/12/2026" not in out
    code, out, _ = _run(lab, "ledger", "show", ver)
    assert "event              revoked at 2026-12-03 03:00:00 (UTC+7) tem bị mất" in out
    code, out, _ = _run(lab, "ledger", "show", ver, "--json")  # machine output: ISO 8601
    at = [e["at"] for e in json.loads(out)["events"] if e["kind"] == "revoked"]
    assert at == ["2026-12-02T20:00:00+00:00"]
    code, out, _ = _run(lab, "verify", "--qr", _entry(any_ledger_url, ver).token, "--json")
    assert json.loads(out)["ended_at"] == "2026-12-02T20:00:00+00:00"
