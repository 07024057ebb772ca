"""Numbers stay gapless and every record is issued exactly once, under concurrency and kill -9.

Real signatures, real files and a real SQLite file or PostgreSQL schema; the PDF content is a
one-liner (`TinyRenderer`) because these tests are about the ledger, not the layout.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.config import Settings
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths, make_keys
from certissuer.ledger import Ledger
from certissuer.sign import Sealer

from . import _workers
from .conftest import HEAD, lab_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPaths:
    return make_keys(
        tmp_path_factory.mktemp("ck"), passphrase=b"pw", organisation="Conc lab", signer_name=HEAD
    )


def _settings(keys: KeyPaths, url: str) -> Settings:
    return lab_settings(keys, ledger=url, lab_code="C1")


def _check_ledger(ledger: Ledger, expected_refs: set[str]) -> None:
    entries = ledger.search(today=__import__("datetime").date(2026, 1, 1), limit=10**6)
    seqs = sorted(e.seq for e, _ in entries)
    assert seqs == list(range(1, len(seqs) + 1)), "numbers must be 1..N with no gap"
    assert ledger.pending() == []
    assert {e.ref for e, _ in entries} == expected_refs, "every record exactly once"
    for e, _ in entries:
        assert e.pdf_path is not None and e.pdf_sha256 is not None
        data = Path(e.pdf_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e.pdf_sha256, f"{e.number}: wrong file"
    files = set(Path(entries[0][0].pdf_path).parent.iterdir())  # type: ignore[arg-type]
    assert files == {Path(e.pdf_path) for e, _ in entries}, "no orphan or temporary file"  # type: ignore[arg-type]


@pytest.mark.slow
def test_sixteen_workers_with_random_failures(
    any_ledger_url: str, keys: KeyPaths, tmp_path: Path
) -> None:
    settings = _settings(keys, any_ledger_url)
    out = tmp_path / "out"
    Ledger.open(any_ledger_url)
    workers, per = 16, 50
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.starmap(
            _workers.issue_worker,
            [(settings, b"pw", out, w, per, 0.08) for w in range(workers)],
        )
    failures = sum(f for _, f in results)
    numbers = [n for ns, _ in results for n in ns]
    assert failures > 0, "the test must inject failures"
    assert len(numbers) == len(set(numbers)), "no number issued twice"

    # A rerun with a healthy signer: completes what crashed half-way, issues the rest.
    ledger = Ledger.open(any_ledger_url)
    issuer = Issuer(
        settings,
        ledger=ledger,
        sealer=Sealer.from_pkcs12(keys.signer_p12, b"pw"),
        token_key=load_token_key(settings),
        out_dir=out,
        renderer=_workers.TinyRenderer(),
    )  # type: ignore[arg-type]
    issuer.complete_pending()
    refs = {f"w{w}-{i}" for w in range(workers) for i in range(per)}
    for ref in sorted(refs):
        issuer.issue(_workers.record(ref))
    _check_ledger(ledger, refs)
    assert ledger.count() == workers * per


def _profile(tmp_path: Path, keys: KeyPaths, url: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(
        f'[lab]\ncode = "K1"\n[signing]\npkcs12 = "{keys.signer_p12}"\n'
        f'trust_roots = ["{keys.ca_cert}"]\n[token]\nkey = "{keys.token_key}"\n'
        f'[ledger]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_render", "after_sign", "mid_write", "before_commit"])
def test_kill_9_then_rerun_issues_every_record_once(
    any_ledger_url: str, keys: KeyPaths, tmp_path: Path, point: str
) -> None:
    profile = _profile(tmp_path, keys, any_ledger_url)
    out = tmp_path / "out"
    refs = [f"k-{i}" for i in range(5)]
    Ledger.open(any_ledger_url)
    victim = subprocess.run(
        [sys.executable, "-m", "tests._workers", str(profile), str(out), json.dumps(refs), point],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert victim.returncode == -9, victim.stderr  # it really was killed
    ledger = Ledger.open(any_ledger_url)
    assert ledger.count() == 3 and len(ledger.pending()) == 1, "killed while issuing the third"

    # Rerun the same input through the CLI: it repairs first, then issues what is missing.
    records = tmp_path / "records.json"
    records.write_text(
        json.dumps([_workers.record(r).model_dump(mode="json") for r in refs]), encoding="utf-8"
    )
    result = CliRunner().invoke(
        app,
        ["--config", str(profile), "issue", str(records), "--out", str(out)],
        env={"CERTISSUER_P12_PASSPHRASE": "pw"},
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    _check_ledger(ledger, set(refs))
    assert ledger.count() == 5
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
