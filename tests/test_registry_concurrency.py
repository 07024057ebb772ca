"""Stamp numbers are never used twice, however many processes issue at once (issue 8)."""

from __future__ import annotations

import json
import multiprocessing
import random
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from certissuer.config import Settings
from certissuer.errors import RegisterRefused
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.registry import StampUse, parse_stamp
from certissuer.sign import Sealer

from ._workers import TinyRenderer
from .conftest import PASSPHRASE, SAMPLES, load_json
from .test_registry import make_issuer, seed

WORKERS, ATTEMPTS, STAMPS = 3, 6, 8


def _worker(settings: Settings, url: str, out: Path, worker: int, barrier: Any) -> list[Any]:
    sealer = Sealer.from_pkcs12(settings.signing_pkcs12, PASSPHRASE)  # type: ignore[arg-type]
    issuer = Issuer(
        settings,
        ledger=Ledger.open(url),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=out,
        renderer=TinyRenderer(),
    )  # type: ignore[arg-type]
    base = load_json(SAMPLES / "verification.json")
    stamps = list(range(12000, 12000 + STAMPS))
    random.Random(worker).shuffle(stamps)
    barrier.wait()
    done = []
    for i in range(ATTEMPTS):
        data = json.loads(json.dumps(base, default=str))
        data["ref"] = f"w{worker}-{i}"
        data["instrument"]["serial"] = f"TS-{worker}-{i}"
        data["stamp_number"] = f"ĐT-26 {stamps[i]:07d}"
        try:
            done.append((data["ref"], stamps[i], issuer.issue(parse_certificate(data)).number))
        except RegisterRefused as exc:
            assert "already used" in str(exc) or "just used" in str(exc), exc
            done.append((data["ref"], stamps[i], None))
    return done


def test_stamps_are_never_reused_under_concurrent_issuing(
    settings: Settings,
    pki: KeyPaths,
    any_ledger_url: str,
    sealer: Any,
    renderer: Any,
    tmp_path: Path,
) -> None:
    settings = settings.replace(ledger_url=any_ledger_url)
    issuer = make_issuer(settings, any_ledger_url, sealer, renderer, tmp_path / "out")
    seed(issuer.register)
    # NOTE: one certificate first: concurrent *first* issues on a fresh PostgreSQL ledger
    # race on creating the log head row (ledger/migrations), which is not what this test is about.
    first = load_json(SAMPLES / "verification.json")
    issuer.issue(parse_certificate({**first, "ref": "first", "stamp_number": ""}))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(WORKERS)
    with ctx.Pool(WORKERS) as pool:
        results = pool.starmap(
            _worker,
            [(settings, any_ledger_url, tmp_path / "out", w, barrier) for w in range(WORKERS)],
        )
    attempts = [r for rs in results for r in rs]
    issued = [(ref, stamp, number) for ref, stamp, number in attempts if number]
    assert len(attempts) == WORKERS * ATTEMPTS
    # every stamp was taken by exactly one certificate; all others were refused
    assert sorted(stamp for _, stamp, _ in issued) == list(range(12000, 12000 + STAMPS))
    entries = [e for e in issuer.ledger.entries() if not e.is_pending]
    on_paper = [parse_stamp(json.loads(e.data_json)["stamp_number"] or "- 0") for e in entries]
    on_paper = [s for s in on_paper if s[1] != 0]
    assert len(entries) == STAMPS + 1 and len(set(on_paper)) == STAMPS
    with Session(issuer.ledger.engine) as s:
        uses = {(u.series, u.number): u.certificate_number for u in s.exec(select(StampUse))}
    assert uses == {("ĐT-26", stamp): number for _, stamp, number in issued}
