"""Benchmark of the register (issue 8): cost of the checks per issue, recall at 100,000.

    CERTISSUER_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/bench_registry.py

Prints the time of `Register.clear` per certificate against end-to-end issuing (render, sign,
write, ledger) with the demo keys, and the time of `Register.recall` (30-day window) on a
register of 100,000 instruments on SQLite and, when the variable is set, PostgreSQL.
Targets: checks under 5 % of issuing; recall under 1 s.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from certissuer.config import load_settings  # noqa: E402
from certissuer.issue import Issuer  # noqa: E402
from certissuer.ledger import Ledger  # noqa: E402
from certissuer.model import parse_certificate  # noqa: E402
from certissuer.registry import Register, StampUse  # noqa: E402
from tests.test_registry import seed  # noqa: E402

TODAY = date(2026, 12, 1)


def bench_checks(tmp: Path, runs: int = 20) -> None:
    settings = load_settings(ROOT / "samples" / "certissuer.toml", env={})
    settings = settings.replace(ledger_url=f"sqlite:///{tmp / 'issue.db'}", lab_code="T01")
    issuer = Issuer.from_settings(settings, passphrase=b"demo", out_dir=tmp / "out")
    seed(issuer.register)
    base = json.loads((ROOT / "samples" / "verification.json").read_text(), parse_float=Decimal)
    certs = []
    for i in range(runs + 1):
        data = {
            **base,
            "ref": f"b{i}",
            "stamp_number": f"ĐT-26 {12000 + i:07d}",
            "instrument": {**base["instrument"], "serial": f"S{i}"},
        }
        certs.append(parse_certificate(data))
    issuer.issue(certs[0])  # warm up: fonts, templates
    t0 = time.perf_counter()
    for cert in certs[1:]:
        issuer.issue(cert)
    issue_each = (time.perf_counter() - t0) / runs
    # the checks alone, on fresh stamps (the claim is part of the cost)
    t0 = time.perf_counter()
    for i, cert in enumerate(certs[1:]):
        fresh = cert.model_copy(update={"ref": f"c{i}", "stamp_number": f"ĐT-26 {12500 + i}"})
        issuer.register.clear(fresh)
    check_each = (time.perf_counter() - t0) / runs
    with issuer.ledger.session() as s:
        assert len(s.exec(__import__("sqlmodel").select(StampUse)).all()) == 2 * runs + 1
    print(f"issue end to end: {issue_each * 1000:7.1f} ms/certificate (with the checks)")
    print(
        f"register checks:  {check_each * 1000:7.2f} ms/certificate "
        f"= {100 * check_each / issue_each:.1f} % of issuing (target < 5 %)"
    )


def bench_recall(url: str, label: str, n: int = 100_000) -> None:
    register = Register(Ledger.open(url).engine, lab_code="T01")
    register.add("lab", {"code": "T01"})
    rows = (
        {
            "owner_code": f"MST-{i % 3000:05d}",
            "owner_name": f"Cơ sở {i % 3000:05d}",
            "type_code": "can-ban",
            "serial": f"S{i:07d}",
            "valid_until": (TODAY + timedelta(days=(i * 37) % 1100 - 200)).isoformat(),
        }
        for i in range(n)
    )
    t0 = time.perf_counter()
    register.import_rows("instrument", rows, source="bench")
    load = time.perf_counter() - t0
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        recall = register.recall(within_days=30, today=TODAY)
        best = min(best, time.perf_counter() - t0)
    print(
        f"recall {label:10} {n:,} instruments: {best * 1000:6.0f} ms for {recall.count:,} "
        f"due of {len(recall.groups):,} owners (target < 1000 ms; load {load:.1f} s)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench_checks(Path(tmp))
        bench_recall(f"sqlite:///{Path(tmp) / 'recall.db'}", "SQLite")
    base = os.environ.get("CERTISSUER_TEST_PG_URL")
    if base:
        import sqlalchemy

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        engine = sqlalchemy.create_engine(base)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        try:
            bench_recall(f"{base}?options=-csearch_path%3D{schema}", "PostgreSQL")
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
