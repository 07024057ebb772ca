"""Benchmark the ledger: issue throughput with 1, 2 and 4 processes on SQLite and PostgreSQL,
the cost of the ledger step alone, and `ledger audit` time for 100,000 events.

    CERTISSUER_P12_PASSPHRASE=demo python bench/bench_ledger.py [--n 40] [--events 100000]

PostgreSQL runs when CERTISSUER_TEST_PG_URL is set (each run in a new schema, dropped after).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench_issue import bench_certissuer

from certissuer import merkle
from certissuer.ledger import (
    CertificateEntry,
    EventKind,
    Ledger,
    LedgerEvent,
    LogHead,
    LogLeaf,
    leaf_data,
    sign_event,
)
from certissuer.token import TokenKey

NOW = datetime(2026, 11, 27, tzinfo=UTC)


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@contextmanager
def ledger_url(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'ledger.db'}"
    else:
        with pg_schema(os.environ["CERTISSUER_TEST_PG_URL"]) as url:
            yield url


def _entry(number: str, seq: int) -> CertificateEntry:
    data = json.dumps({"bench": seq})
    return CertificateEntry(
        number=number,
        lab_code="B",
        series="HC",
        year=2026,
        seq=seq,
        kind="calibration",
        ref=f"r{seq}",
        instrument_name="Cân",
        instrument_model="X",
        instrument_serial=f"S{seq}",
        customer_name="Khách",
        work_date=date(2026, 11, 20),
        issue_date=date(2026, 11, 27),
        valid_until=None,
        issued_at=NOW,
        data_digest=hashlib.sha256(data.encode()).hexdigest(),
        data_json=data,
        token="t",
        pdf_path=f"/bench/{seq}.pdf",
    )


def ledger_step_ms(url: str, n: int = 200) -> float:
    """Milliseconds per certificate for the ledger alone: reserve + complete (2 transactions),
    the issued event signed with a token key."""
    ledger = Ledger.open(url, ledger_key=TokenKey.generate())
    start = time.perf_counter()
    for i in range(n):
        e = ledger.reserve_with("B", "HC", 2026, _entry)
        ledger.complete(
            e.number, pdf_sha256=f"{i:064x}", pdf_path=e.pdf_path or "", signer="CN=b", at=NOW
        )
    ms = (time.perf_counter() - start) / n * 1000
    ledger.engine.dispose()
    return ms


def audit_seconds(url: str, events: int) -> tuple[float, float]:
    """Fill a ledger with `events` issued certificates in bulk, then time `audit`.
    Returns (seconds to fill, seconds to audit)."""
    ledger = Ledger.open(url)
    key = TokenKey.generate()
    start = time.perf_counter()
    with ledger.session() as s:
        batch: list[object] = []
        for i in range(events):
            e = _entry(f"HC-2026-{i + 1:06d}", i + 1)
            e.pdf_sha256 = f"{i:064x}"
            ev = LedgerEvent(
                id=i + 1,
                number=e.number,
                kind=EventKind.ISSUED,
                at=NOW + timedelta(seconds=i),
                pdf_sha256=e.pdf_sha256,
            )
            sign_event(ev, e, key)
            leaf = LogLeaf(
                idx=i, event_id=i + 1, leaf_hash=merkle.leaf_hash(leaf_data(ev, e)).hex()
            )
            batch += [e, ev, leaf]
            if len(batch) >= 6000:
                s.add_all(batch)
                s.flush()
                batch = []
        s.add_all(batch)
        head = s.get(LogHead, 1)
        assert head is not None
        head.size = events
        s.add(head)
        s.commit()
    fill = time.perf_counter() - start
    ledger.checkpoint(key, lab_code="B", at=NOW)
    start = time.perf_counter()
    report = ledger.audit(keys=[key.public], check_files=False)
    took = time.perf_counter() - start
    assert report.ok and report.log_size == events, report.problems[:3]
    ledger.engine.dispose()
    return fill, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="certificates per throughput run")
    parser.add_argument("--events", type=int, default=100_000, help="events for the audit")
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("CERTISSUER_TEST_PG_URL") else [])
    for backend in backends:
        rates = {}
        for procs in (1, 2, 4):
            with ledger_url(backend) as url:
                rates[procs] = bench_certissuer(args.n, procs, url)
        with ledger_url(backend) as url:
            step = ledger_step_ms(url)
        end_to_end = 1000 / rates[1]
        print(
            f"{backend:10} issue: "
            + ", ".join(f"{p} proc {r:5.1f}/s" for p, r in rates.items())
            + f"; ledger step {step:.1f} ms = {100 * step / end_to_end:.0f} % of "
            f"{end_to_end:.0f} ms end to end"
        )
        with ledger_url(backend) as url:
            fill, took = audit_seconds(url, args.events)
        print(
            f"{backend:10} audit of {args.events:,} events: {took:.1f} s (bulk fill {fill:.1f} s)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
