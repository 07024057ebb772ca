"""Backups that restore, and one archive for signed PDFs (issue 20).

Real processes issue with real signatures (a one-line PDF: these tests are about the ledger and
its archive, not the layout) while `ledger backup` runs; restores go into fresh SQLite files or
fresh PostgreSQL databases (``CREATE DATABASE`` per test) and are audited by the real audit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger

from .conftest import PASSPHRASE, ROOT

runner = CliRunner()


def _fresh_database() -> Iterator[str]:
    base = os.environ.get("CERTISSUER_TEST_PG_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("CERTISSUER_TEST_PG_URL must be set in CI")
        pytest.skip("no PostgreSQL: set CERTISSUER_TEST_PG_URL to run the PostgreSQL tests")
    import sqlalchemy

    name = f"bk_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL at CERTISSUER_TEST_PG_URL is not reachable: {exc.orig}")
    url = sqlalchemy.engine.make_url(base).set(database=name)
    yield url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_urls(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh, empty ledger databases of the back end: the lab's and a restore target."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'lab' / 'ledger.db'}", f"sqlite:///{tmp_path / 'new.db'}"
        return
    first, second = _fresh_database(), _fresh_database()
    yield next(first), next(second)
    for gen in (first, second):
        next(gen, None)


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _fresh_database()


def _profile(folder: Path, pki: KeyPaths, url: str, *, store: str = "files") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    profile = folder / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "B1"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'url_base = "https://verify.test.invalid"\n[ledger]\nurl = "{url}"\n'
        f'pdf_store = "{store}"\n',
        encoding="utf-8",
    )
    return profile


def _cli(profile: Path, *args: str) -> tuple[int, str, str]:
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    r = runner.invoke(app, ["--config", str(profile), *args], env=env)
    return r.exit_code, r.stdout, r.stderr


def _worker(profile: Path, out: Path, prefix: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests._backup_worker", str(profile), str(out), prefix, str(count)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _issue(profile: Path, out: Path, prefix: str, count: int) -> list[str]:
    proc = _worker(profile, out, prefix, count)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return stdout.split()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checkpoint(profile: Path, out: Path) -> None:
    code, _, err = _cli(profile, "ledger", "checkpoint", "--out", str(out))
    assert code == 0, err


def test_backup_while_issuing_restores_and_audits_clean(
    tmp_path: Path, pki: KeyPaths, db_urls: tuple[str, str]
) -> None:
    lab_url, new_url = db_urls
    profile = _profile(tmp_path / "lab", pki, lab_url)
    first = _issue(profile, tmp_path / "out", "first", 3)
    _checkpoint(profile, tmp_path / "cp-before.json")

    proc = _worker(profile, tmp_path / "out", "batch", 40)
    assert proc.stdout is not None
    seen = [proc.stdout.readline().strip() for _ in range(3)]  # the batch is under way
    code, out, err = _cli(profile, "ledger", "backup", str(tmp_path / "bk"))
    rest, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert code == 0, err + out
    issued = first + seen + rest.split()
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text(encoding="utf-8"))
    in_backup = {f["number"]: f for f in manifest["files"] if "number" in f}
    # A consistent snapshot, taken while the batch issued: some of it, not all, not none.
    assert 3 + 3 <= manifest["entries"] < 3 + 40, "the backup ran while issuing went on"
    assert len(in_backup) == manifest["entries"] and manifest["problems"] == []
    assert manifest["log_size"] == manifest["entries"]  # one issued event each
    assert manifest["checkpoint"]["tree_size"] == 3
    assert set(in_backup) < set(issued)
    lab = Ledger.open(lab_url, create=False)
    assert lab.count() == 43
    hashes = {e.number: e.pdf_sha256 for e in lab.entries(limit=100)}
    lab.close()

    restored_profile = _profile(tmp_path / "new", pki, new_url)
    code, out, err = _cli(
        restored_profile, "ledger", "restore", str(tmp_path / "bk"),
        "--archive", str(tmp_path / "archive"),
    )  # fmt: skip
    assert code == 0, err + out
    assert "restore done: audit found no problems" in out
    assert f"{manifest['entries']} PDFs" in out and "1 saved checkpoints" in out
    new = Ledger.open(new_url, create=False)
    everything = new.entries(limit=100)
    new.close()
    # Entries pending in the snapshot (number taken, PDF not yet signed) come back pending,
    # as a crash leaves them ('ledger repair' completes them); they have no PDF to restore.
    entries = {e.number: e for e in everything if not e.is_pending}
    assert len(everything) - len(entries) == manifest["pending"]
    assert set(entries) == set(in_backup)
    for number, entry in entries.items():
        path = Path(entry.pdf_path or "")
        assert path.parent == (tmp_path / "archive").absolute(), "points at the restored file"
        assert _sha(path) == entry.pdf_sha256 == hashes[number] == in_backup[number]["sha256"]
    # The restored ledger issues on from where the backup ended, and stays clean.
    (following,) = _issue(restored_profile, tmp_path / "archive", "next", 1)
    assert following in issued and following not in entries  # a lost number is taken again
    code, out, err = _cli(restored_profile, "ledger", "audit")
    assert code == 0 and f"{len(entries) + 1} PDFs checked (0 not found)" in out, err + out


def _backup_of_three(tmp_path: Path, pki: KeyPaths, url: str) -> Path:
    profile = _profile(tmp_path / "lab", pki, url)
    _issue(profile, tmp_path / "out", "r", 3)
    _checkpoint(profile, tmp_path / "cp.json")
    code, _, err = _cli(profile, "ledger", "backup", str(tmp_path / "bk"))
    assert code == 0, err
    return profile


def test_tampered_backup_is_refused_naming_the_file(
    tmp_path: Path, pki: KeyPaths, db_urls: tuple[str, str]
) -> None:
    lab_url, new_url = db_urls
    _backup_of_three(tmp_path, pki, lab_url)
    target = _profile(tmp_path / "new", pki, new_url)
    pdf = sorted((tmp_path / "bk" / "pdfs").iterdir())[1]
    original = pdf.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 1
    pdf.write_bytes(bytes(data))
    code, out, err = _cli(target, "ledger", "restore", str(tmp_path / "bk"), "--archive",
                          str(tmp_path / "archive"))  # fmt: skip
    assert code != 0 and f"pdfs/{pdf.name} does not match the manifest" in err, err + out
    assert "nothing was restored" in err
    assert not (tmp_path / "archive").exists()
    # The target database was not touched: a clean backup restores into it afterwards.
    pdf.write_bytes(original)
    (tmp_path / "bk" / "extra.pdf").write_bytes(b"%PDF-1.7 planted")
    code, _, err = _cli(target, "ledger", "restore", str(tmp_path / "bk"))
    assert code != 0 and "extra.pdf is not in the manifest" in err
    (tmp_path / "bk" / "extra.pdf").unlink()
    code, out, err = _cli(target, "ledger", "restore", str(tmp_path / "bk"), "--archive",
                          str(tmp_path / "archive"))  # fmt: skip
    assert code == 0 and "restore done" in out, err


def test_restore_into_a_database_that_is_not_empty_is_refused(
    tmp_path: Path, pki: KeyPaths, db_urls: tuple[str, str]
) -> None:
    lab_url, _ = db_urls
    profile = _backup_of_three(tmp_path, pki, lab_url)
    code, out, err = _cli(profile, "ledger", "restore", str(tmp_path / "bk"), "--archive",
                          str(tmp_path / "archive"))  # fmt: skip
    assert code == 7 and "is not empty" in err and "3 certificates" in err, err + out
    lab = Ledger.open(lab_url, create=False)
    assert lab.count() == 3  # untouched
    lab.close()


def test_going_back_in_time_is_refused_unless_forced(
    tmp_path: Path, pki: KeyPaths, db_urls: tuple[str, str]
) -> None:
    lab_url, new_url = db_urls
    profile = _backup_of_three(tmp_path, pki, lab_url)
    _issue(profile, tmp_path / "out", "after", 2)
    _checkpoint(profile, tmp_path / "published.json")  # size 5, published after the backup
    target = _profile(tmp_path / "new", pki, new_url)
    args = ["ledger", "restore", str(tmp_path / "bk"), "--archive", str(tmp_path / "archive"),
            "--witness", str(tmp_path / "published.json")]  # fmt: skip
    code, out, err = _cli(target, *args)
    assert code == 7, err + out
    assert "would go back in time" in err and "vouches for 5 log leaves, the backup holds 3" in err
    assert "2 event(s) after the backup would be lost" in err
    assert not (tmp_path / "archive").exists()
    code, out, err = _cli(target, *args, "--force")
    assert code == 0 and "restore done" in out, err + out
    assert "forced" in out and "2 event(s) after the backup would be lost" in out


def test_tampered_pdf_and_manifest_together_fail_the_audit(tmp_path: Path, pki: KeyPaths) -> None:
    """Rewriting the manifest to match a changed PDF passes the manifest check, not the
    audit: the ledger's signed events hold each PDF's SHA-256."""
    _backup_of_three(tmp_path, pki, f"sqlite:///{tmp_path / 'lab' / 'ledger.db'}")
    bk = tmp_path / "bk"
    pdf = sorted((bk / "pdfs").iterdir())[0]
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 1
    pdf.write_bytes(bytes(data))
    manifest = json.loads((bk / "manifest.json").read_text(encoding="utf-8"))
    for f in manifest["files"]:
        if f["path"] == f"pdfs/{pdf.name}":
            f["sha256"], f["size"] = _sha(pdf), pdf.stat().st_size
    (bk / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    target = _profile(tmp_path / "new", pki, f"sqlite:///{tmp_path / 'new.db'}")
    code, out, err = _cli(target, "ledger", "restore", str(bk), "--archive",
                          str(tmp_path / "archive"))  # fmt: skip
    assert code == 7 and "audit found 1 problem(s)" in err, err + out
    assert "differs from the PDF in the ledger" in err


@pytest.mark.postgres
def test_database_archive_two_workstations_then_get_from_a_third(
    tmp_path: Path, pki: KeyPaths, pg_url: str
) -> None:
    one = _profile(tmp_path / "ws1", pki, pg_url, store="database")
    two = _profile(tmp_path / "ws2", pki, pg_url, store="database")
    _issue(one, tmp_path / "ws1" / "out", "boot", 1)  # create the ledger once
    procs = [
        _worker(one, tmp_path / "ws1" / "out", "ws1", 8),
        _worker(two, tmp_path / "ws2" / "out", "ws2", 8),
    ]
    numbers: list[str] = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        numbers += stdout.split()
    assert len(set(numbers)) == 16
    # No shared disk: nothing was written to either workstation's output folder.
    assert not (tmp_path / "ws1" / "out").exists() and not (tmp_path / "ws2" / "out").exists()
    third = _profile(tmp_path / "page", pki, pg_url, store="database")
    ledger = Ledger.open(pg_url, create=False)
    recorded = {e.number: e.pdf_sha256 for e in ledger.entries(limit=100)}
    tokens = {e.number: e.token for e in ledger.entries(limit=100)}
    ledger.close()
    # The verification page downloads from the same archive.
    from fastapi.testclient import TestClient

    from certissuer.config import load_settings
    from certissuer.web import create_app

    page = load_settings(third, env={}).replace(
        web_allow_download=True, web_rate_limit=0, web_pdf_workers=1
    )
    with TestClient(create_app(page)) as client:
        r = client.get(f"/v/{tokens[numbers[5]]}/pdf")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == recorded[numbers[5]]
    for number in numbers:
        code, out, err = _cli(third, "ledger", "get", number, "--out", str(tmp_path / "got"))
        assert code == 0, err
    got = {p.stem: _sha(p) for p in (tmp_path / "got").iterdir()}
    assert len(got) == 16 and all(got[n] == recorded[n] for n in numbers)
    code, out, err = _cli(third, "ledger", "audit")
    assert code == 0 and "17 PDFs checked (0 not found)" in out, err + out
    # The files store sees none of them: they are in the database only.
    code, out, _ = _cli(_profile(tmp_path / "files", pki, pg_url), "ledger", "audit")
    assert "0 PDFs checked (17 not found)" in out
    # A backup of the database archive restores into another database archive.
    code, out, err = _cli(third, "ledger", "backup", str(tmp_path / "bk"))
    assert code == 0 and "17 PDFs" in out, err + out
    assert len(list((tmp_path / "bk" / "pdfs").iterdir())) == 17
    fresh = _fresh_database()
    new_url = next(fresh)
    try:
        again = _profile(tmp_path / "again", pki, new_url, store="database")
        code, out, err = _cli(again, "ledger", "restore", str(tmp_path / "bk"))
        assert code == 0 and "restore done" in out and "17 PDFs checked" in out, err + out
        code, _, err = _cli(again, "ledger", "get", numbers[0], "--out", str(tmp_path / "g2"))
        assert code == 0, err
        assert _sha(next((tmp_path / "g2").iterdir())) == recorded[numbers[0]]
    finally:
        next(fresh, None)


def test_migrate_files_both_ways_checks_every_hash(tmp_path: Path, pki: KeyPaths) -> None:
    url = f"sqlite:///{tmp_path / 'lab' / 'ledger.db'}"
    files = _profile(tmp_path / "lab", pki, url)
    numbers = _issue(files, tmp_path / "out", "m", 4)
    database = _profile(tmp_path / "db", pki, url, store="database")
    ledger = Ledger.open(url, create=False)
    recorded = {e.number: e.pdf_sha256 for e in ledger.entries(limit=100)}
    ledger.close()

    # A changed file stops the move before anything is copied, naming the certificate.
    victim = sorted((tmp_path / "out").iterdir())[2]
    good = victim.read_bytes()
    victim.write_bytes(good[:-40] + bytes([good[-40] ^ 1]) + good[-39:])
    code, _, err = _cli(files, "ledger", "migrate-files", "--to", "database")
    assert code == 7 and "nothing was copied" in err and "is not the PDF the ledger" in err
    code, out, _ = _cli(database, "ledger", "audit")
    assert "0 PDFs checked (4 not found)" in out
    victim.write_bytes(good)

    code, out, err = _cli(files, "ledger", "migrate-files", "--to", "database")
    assert code == 0 and "copied 4 PDFs" in out and 'pdf_store = "database"' in out, err
    for pdf in (tmp_path / "out").iterdir():
        pdf.unlink()  # the files are gone; the database archive serves
    code, out, err = _cli(database, "ledger", "audit")
    assert code == 0 and "4 PDFs checked (0 not found)" in out, err + out

    code, out, err = _cli(
        database, "ledger", "migrate-files", "--to", "files", "--archive", str(tmp_path / "a2")
    )
    assert code == 0 and "copied 4 PDFs" in out, err
    code, out, err = _cli(files, "ledger", "audit")
    assert code == 0 and "4 PDFs checked (0 not found)" in out, err + out
    for number in numbers:
        code, _, err = _cli(files, "ledger", "get", number, "--out", str(tmp_path / "got"))
        assert code == 0, err
    assert {p.stem: _sha(p) for p in (tmp_path / "got").iterdir()} == recorded


def test_backup_names_a_pdf_missing_from_the_archive(tmp_path: Path, pki: KeyPaths) -> None:
    profile = _profile(tmp_path / "lab", pki, f"sqlite:///{tmp_path / 'lab' / 'ledger.db'}")
    numbers = _issue(profile, tmp_path / "out", "x", 2)
    lost = next(p for p in (tmp_path / "out").iterdir() if p.stem == numbers[0])
    lost.unlink()
    code, out, err = _cli(profile, "ledger", "backup", str(tmp_path / "bk"))
    assert code == 1 and f"{numbers[0]}: missing from the archive" in out, err + out
    assert "1 PDF(s) not backed up" in out
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text(encoding="utf-8"))
    assert [f["number"] for f in manifest["files"] if "number" in f] == [numbers[1]]
    assert len(manifest["problems"]) == 1
    code, _, err = _cli(profile, "ledger", "backup", str(tmp_path / "bk"))
    assert code != 0 and "already exists" in err


def test_restore_names_certificates_whose_pdf_the_backup_lacks(
    tmp_path: Path, pki: KeyPaths
) -> None:
    """A PDF and its manifest line both removed: the audit has nothing to hash, the restore
    still names the certificate left without its PDF and exits 1."""
    _backup_of_three(tmp_path, pki, f"sqlite:///{tmp_path / 'lab' / 'ledger.db'}")
    bk = tmp_path / "bk"
    manifest = json.loads((bk / "manifest.json").read_text(encoding="utf-8"))
    dropped = next(f for f in manifest["files"] if "number" in f)
    manifest["files"].remove(dropped)
    (bk / dropped["path"]).unlink()
    (bk / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    target = _profile(tmp_path / "new", pki, f"sqlite:///{tmp_path / 'new.db'}")
    code, out, err = _cli(target, "ledger", "restore", str(bk), "--archive",
                          str(tmp_path / "archive"))  # fmt: skip
    assert code == 1 and f"the backup holds no PDF of {dropped['number']}" in out, err + out
    assert "1 certificate(s) have no PDF" in out
