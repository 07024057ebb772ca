"""Batch runs and archive digitisation: real ledgers, real signatures, real files."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from certissuer import batch
from certissuer.cli import app
from certissuer.config import Settings
from certissuer.keys import KeyPaths, make_keys
from certissuer.ledger import Ledger

from . import _workers
from .conftest import HEAD, lab_settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = json.loads((ROOT / "samples" / "calibration.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPaths:
    return make_keys(
        tmp_path_factory.mktemp("bk"), passphrase=b"pw", organisation="Batch lab", signer_name=HEAD
    )


def _settings(keys: KeyPaths, url: str) -> Settings:
    return lab_settings(keys, ledger=url, lab_code="B1", signing_appearance="invisible")


def _records(n: int, bad: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        rec = json.loads(json.dumps(SAMPLE))
        rec["ref"] = f"b-{i:05d}"
        for key, value in (bad or {}).get(i, {}).items():
            target = rec
            *path, last = key.split(".")
            for part in path:
                target = target[int(part)] if part.isdigit() else target[part]
            target[last] = value
        out.append(rec)
    return out


def test_thousand_rows_three_bad_then_fixed_then_nothing(keys: KeyPaths, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    bad = {
        17: {"results.0.unit": "lbs"},
        500: {"calibrated": "24/11/2026"},
        999: {"results.1.uncertainty": "-0.1"},
    }
    data = tmp_path / "batch.json"
    data.write_text(json.dumps(_records(1000, bad)), encoding="utf-8")
    settings, out = _settings(keys, url), tmp_path / "out"
    run = batch.run_batch(
        batch.issue_items([data]),
        settings=settings,
        passphrase=b"pw",
        out_dir=out,
        jobs=2,
        renderer=_workers.TinyRenderer(),
    )
    assert (run.issued, run.rejected_rows) == (997, 3)
    assert sorted({r.row for r in run.rejected}) == [18, 501, 1000]  # JSON records count from 1
    fields = {r.row: r.field for r in run.rejected}
    assert fields[18].endswith("unit") and fields[501] == "calibrated"
    batch.write_error_report(run.rejected, tmp_path / "errors.xlsx")
    batch.write_error_report(run.rejected, tmp_path / "errors.csv")
    with open(tmp_path / "errors.csv", encoding="utf-8-sig") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == 3 and "lbs" in lines[0]["reason"]

    data.write_text(json.dumps(_records(1000)), encoding="utf-8")  # the rows are fixed
    again = batch.run_batch(
        batch.issue_items([data]),
        settings=settings,
        passphrase=b"pw",
        out_dir=out,
        jobs=2,
        renderer=_workers.TinyRenderer(),
    )
    assert (again.issued, again.already, again.rejected_rows) == (3, 997, 0)
    third = batch.run_batch(
        batch.issue_items([data]),
        settings=settings,
        passphrase=b"pw",
        out_dir=out,
        jobs=1,
        renderer=_workers.TinyRenderer(),
    )
    assert (third.issued, third.already) == (0, 1000)
    ledger = Ledger.open(url)
    seqs = sorted(
        e.seq for e, _ in ledger.search(today=__import__("datetime").date.today(), limit=10**6)
    )
    assert seqs == list(range(1, 1001))
    assert len(list(out.glob("*.pdf"))) == 1000


def test_dry_run_issues_nothing(keys: KeyPaths, tmp_path: Path) -> None:
    data = tmp_path / "b.json"
    data.write_text(json.dumps(_records(3, {1: {"results.0.unit": "lbs"}})), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'l.db'}"
    run = batch.run_batch(
        batch.issue_items([data]),
        settings=_settings(keys, url),
        passphrase=b"pw",
        out_dir=tmp_path / "out",
        dry_run=True,
    )
    assert (run.issued, run.rejected_rows, run.dry_run) == (2, 1, True), run.rejected
    assert not (tmp_path / "out").exists() and not (tmp_path / "l.db").exists()
    with pytest.raises(Exception, match="wrong passphrase"):
        batch.run_batch(
            batch.issue_items([data]),
            settings=_settings(keys, url),
            passphrase=b"nope",
            out_dir=tmp_path / "out",
            dry_run=True,
        )


def _profile(tmp_path: Path, keys: KeyPaths, url: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(
        f'[lab]\ncode = "B1"\n[signing]\npkcs12 = "{keys.signer_p12}"\n'
        f'trust_roots = ["{keys.ca_cert}"]\nappearance = "invisible"\n'
        f'[token]\nkey = "{keys.token_key}"\n[ledger]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_kill_9_mid_batch_then_rerun(keys: KeyPaths, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    profile = _profile(tmp_path, keys, url)
    data = tmp_path / "b.json"
    data.write_text(json.dumps(_records(60)), encoding="utf-8")
    out = tmp_path / "out"
    env = {"CERTISSUER_P12_PASSPHRASE": "pw", "PATH": "/usr/bin:/bin"}
    cmd = [
        sys.executable,
        "-m",
        "certissuer",
        "--config",
        str(profile),
        "batch",
        "issue",
        str(data),
        "--out",
        str(out),
        "--jobs",
        "2",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    Ledger.open(url)
    ledger = Ledger.open(url)
    deadline = time.monotonic() + 120
    while ledger.count() < 15 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    import os

    os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, at once
    proc.wait()
    killed_at = ledger.count()
    assert 15 <= killed_at < 60, killed_at
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    entries = ledger.search(today=__import__("datetime").date.today(), limit=1000)
    assert sorted(e.ref for e, _ in entries) == [f"b-{i:05d}" for i in range(60)]
    assert sorted(e.seq for e, _ in entries) == list(range(1, 61))
    assert ledger.pending() == []
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(Path(e.pdf_path).name for e, _ in entries)  # type: ignore[arg-type]
    for e, _ in entries:
        assert hashlib.sha256(Path(e.pdf_path).read_bytes()).hexdigest() == e.pdf_sha256  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.postgres
def test_two_machines_share_one_postgresql_run(
    keys: KeyPaths, tmp_path: Path, any_ledger_url: str
) -> None:
    if not any_ledger_url.startswith("postgresql"):
        pytest.skip("the shared run is a PostgreSQL feature")
    profile = _profile(tmp_path, keys, any_ledger_url)
    data = tmp_path / "b.json"
    data.write_text(json.dumps(_records(40)), encoding="utf-8")
    env = {"CERTISSUER_P12_PASSPHRASE": "pw", "PATH": "/usr/bin:/bin"}
    Ledger.open(any_ledger_url)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "certissuer",
                "--config",
                str(profile),
                "batch",
                "issue",
                str(data),
                "--out",
                str(tmp_path / f"out{k}"),
                "--jobs",
                "1",
                "--quiet",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    ledger = Ledger.open(any_ledger_url)
    entries = ledger.search(today=__import__("datetime").date.today(), limit=1000)
    refs = [e.ref for e, _ in entries]
    assert sorted(refs) == [f"b-{i:05d}" for i in range(40)] and len(refs) == len(set(refs))
    issued = [int(m[1]) for o in outputs if (m := re.search(r"(\d+) issued, ", o))]
    assert len(issued) == 2 and sum(issued) == 40 and min(issued) > 0, outputs  # both worked


def _scans(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    Image.new("RGB", (1240, 1754), (250, 250, 245)).save(folder / "p1.jpg", dpi=(150, 150))
    frames = [Image.new("L", (1100, 1500), shade) for shade in (230, 200, 170)]
    frames[0].save(folder / "p2.tif", save_all=True, append_images=frames[1:], dpi=(150, 150))
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(folder / "p3.pdf"), pagesize=(500, 700))
    c.drawString(50, 600, "scanned page")
    c.save()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return {p.name: p for p in folder.iterdir()}


def test_digitise_archive_end_to_end(keys: KeyPaths, tmp_path: Path) -> None:
    scans = _scans(tmp_path / "scans")
    manifest = tmp_path / "manifest.csv"
    rows = [
        [
            "paper_number",
            "kind",
            "lab",
            "instrument",
            "model",
            "serial",
            "owner",
            "issue_date",
            "valid_until",
            "result",
            "scans",
        ],
        [
            "KĐ-0123/2009",
            "verification",
            "Chi cục TCĐLCL Đồng Tháp",
            "Cân bàn",
            "TB-60",
            "9921",
            "Chợ Cao Lãnh",
            "2009-05-04",
            "2010-05-03",
            "Đạt",
            "p1.jpg;p2.tif;p3.pdf",
        ],
        [
            "HC-77/2011",
            "calibration",
            "",
            "Nhiệt kế",
            "",
            "T-1",
            "Công ty A",
            "2011-02-30",
            "",
            "",
            "p1.jpg",
        ],
        ["KĐ-0123/2009", "verification", "", "Cân", "", "1", "B", "2009-05-04", "", "", "p1.jpg"],
        ["KĐ-9/2010", "verification", "", "Cân", "", "1", "B", "2010-01-01", "", "", "missing.png"],
        ["KĐ-10/2010", "verification", "", "Cân", "", "1", "B", "2010-01-01", "", "", "broken.jpg"],
    ]
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    settings = _settings(keys, url)
    out = tmp_path / "out"
    run = batch.run_batch(
        batch.digitise_items(manifest, tmp_path / "scans"),
        settings=settings,
        passphrase=b"pw",
        out_dir=out,
        jobs=1,
    )
    assert run.issued == 1
    reasons = {r.row: r for r in run.rejected}
    assert set(reasons) == {3, 4, 5, 6}
    assert "date" in reasons[3].reason and reasons[3].field == "issue_date"
    assert "duplicate paper number" in reasons[4].reason
    assert "not found" in reasons[5].reason and "unreadable" in reasons[6].reason

    (pdf,) = out.glob("*.pdf")
    assert pdf.name.startswith("BS-")
    from pypdf import PdfReader

    pages = PdfReader(str(pdf)).pages
    assert len(pages) == 1 + 1 + 3 + 1  # first page, JPEG, three TIFF frames, one PDF page
    # each scan keeps its own size; the page adds a band above and below it for the stamp
    # (copy number, page x of y)
    from certissuer.digitise import STRIP

    sizes = [
        (round(float(p.mediabox.width)), round(float(p.mediabox.height) - 2 * STRIP)) for p in pages
    ]
    assert sizes[1] == (595, 842) and sizes[2] == (528, 720) and sizes[5] == (500, 700)
    stamps = subprocess.run(
        ["pdftotext", "-f", "6", "-l", "6", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    assert pdf.stem in stamps and "Trang 6/6 (Page 6 of 6)" in stamps

    ledger = Ledger.open(url)
    ((entry, _),) = ledger.search(
        paper_number="0123/2009", today=__import__("datetime").date.today()
    )
    assert entry.kind == "copy" and entry.paper_number == "KĐ-0123/2009"
    recorded = {s.file_name: s.sha256 for s in ledger.scans(entry.number)}
    for name in ("p1.jpg", "p2.tif", "p3.pdf"):
        assert recorded[name] == hashlib.sha256(scans[name].read_bytes()).hexdigest()
    text = subprocess.run(
        ["pdftotext", "-l", "1", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    assert "BẢN SAO ĐIỆN TỬ" in text and "KĐ-0123/2009" in text
    for sha in recorded.values():
        assert sha in text.replace("\n", "")

    if shutil.which("zbarimg") and shutil.which("pdftoppm"):
        subprocess.run(
            ["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
            check=True,
        )
        qr = subprocess.run(
            ["zbarimg", "--raw", "-q", str(next(tmp_path.glob("p*.png")))],
            capture_output=True,
            text=True,
        ).stdout.split()
        from certissuer.verify import Verifier

        verifier = Verifier.from_settings(settings, ledger=ledger)
        # A genuine copy of a certificate that expired in 2010: the copy says so.
        assert verifier.verify_url(qr[0]).verdict.value == "expired"
        report = verifier.verify_pdf(pdf.read_bytes())
        assert report.verdict.value == "expired" and report.number == entry.number
    again = batch.run_batch(
        batch.digitise_items(manifest, tmp_path / "scans"),
        settings=settings,
        passphrase=b"pw",
        out_dir=out,
        jobs=1,
    )
    assert (again.issued, again.already) == (0, 1)


def test_cli_batch_reports_and_exit_code(keys: KeyPaths, tmp_path: Path) -> None:
    profile = _profile(tmp_path, keys, f"sqlite:///{tmp_path / 'l.db'}")
    data = tmp_path / "b.json"
    data.write_text(json.dumps(_records(3, {2: {"results.0.unit": "psi"}})), encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(profile),
            "batch",
            "issue",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--jobs",
            "1",
            "--report",
            str(tmp_path / "e.xlsx"),
        ],
        env={"CERTISSUER_P12_PASSPHRASE": "pw"},
    )
    assert result.exit_code == 2
    assert "2 issued" in result.stdout and "1 rejected" in result.stdout
    assert "row 3" in result.stderr and "psi" in result.stderr
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "e.xlsx").active
    assert sheet.max_row == 2 and sheet.cell(2, 2).value == 3
    assert "batch:" in result.stderr  # plain progress lines when not on a terminal


def test_rejected_rows_past_the_kept_ones_wait_in_a_file(tmp_path: Path) -> None:
    rows = batch.RejectedRows(keep=2)
    made = [
        batch.RejectedRow("b.json", i, "kind", f"lý do {i}", "hint" if i % 2 else "")
        for i in range(1, 6)
    ]
    rows.extend(made)
    assert len(rows) == 5
    assert list(rows) == made
    assert (rows[0], rows[3], rows[-1]) == (made[0], made[3], made[-1])
    assert rows[1:4] == made[1:4] and rows[::-1] == made[::-1]
    with pytest.raises(IndexError):
        rows[5]
    rows.append(made[0])  # appending after a read still goes at the end
    assert list(rows) == [*made, made[0]]
    batch.write_error_report(rows, tmp_path / "errors.csv")
    with open(tmp_path / "errors.csv", encoding="utf-8-sig", newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["file", "row", "field", "reason", "hint"]
    assert lines[1:] == [[r.source, str(r.row), r.field, r.reason, r.hint] for r in rows]
    rows.close()


def test_a_run_of_bad_rows_counts_rows_not_errors(keys: KeyPaths, tmp_path: Path) -> None:
    # 1,500 rows that are no certificate objects, and one with many missing fields: every
    # error is kept for the report (past the first 1,000, in a file), rows are counted once.
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([*range(1500), {"ref": "x", "kind": "calibration"}]), "utf-8")
    seen: list[batch.Progress] = []
    run = batch.run_batch(
        batch.issue_items([data]),
        settings=_settings(keys, f"sqlite:///{tmp_path / 'l.db'}"),
        passphrase=b"pw",
        out_dir=tmp_path / "out",
        jobs=1,
        on_progress=seen.append,
        renderer=_workers.TinyRenderer(),
    )
    assert (run.issued, run.rejected_rows, seen[-1].rejected, len(seen)) == (0, 1501, 1501, 1501)
    assert len(run.rejected) > 1501
    assert [r.row for r in run.rejected][:1500] == list(range(1, 1501))
    assert {r.row for r in run.rejected[1500:]} == {1501}
    assert {r.field for r in run.rejected[1500:]} >= {"calibrated", "results"}
