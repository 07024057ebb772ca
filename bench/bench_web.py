"""Benchmark: the verification page (``GET /v/{token}``) under a bounded load over loopback.

Issues a few certificates into a fresh ledger with the demo keys, starts ``certissuer serve`` on
127.0.0.1 in a subprocess, then keeps a fixed number of clients busy for a fixed time, each on
its own keep-alive connection, cycling through the certificates' QR URLs. Prints requests per
second and p50/p95/p99 latency, on SQLite and, when ``CERTISSUER_TEST_PG_URL`` is set, on
PostgreSQL. Target: p95 under 50 ms at 50 concurrent clients on a 2-core machine.

The client is a small asyncio HTTP/1.1 client (a few dozen microseconds per request), so the
figures measure the server rather than the client; both share the machine's cores. Traffic goes
to 127.0.0.1 only and stops after ``--seconds`` or ``--max-requests``, whichever comes first.
The per-client rate limit is off for the run (``[web] rate_limit = 0``).

    python bench/bench_web.py [--seconds 20] [--concurrency 50] [--certificates 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "keys.example"
SAMPLES = ROOT / "samples"
HOST = "127.0.0.1"


def _profile(folder: Path, ledger_url: str, port: int) -> Path:
    path = folder / "lab.toml"

    def q(value: object) -> str:
        return json.dumps(str(value), ensure_ascii=False)

    path.write_text(
        f"""\
[lab]
code = "BENCH"
name_vi = "Phòng thí nghiệm đo tải"
name_en = "Load test laboratory"
[signing]
pkcs12 = {q(KEYS / "le-hoang-phuc.p12")}
revocation_check = false
trust_roots = [{q(KEYS / "ca.pem")}]
[token]
key = {q(KEYS / "token-key.pem")}
url_base = "https://kiemdinh.example.vn"
[ledger]
url = {q(ledger_url)}
[web]
host = "{HOST}"
port = {port}
rate_limit = 0
pdf_workers = 1
""",
        encoding="utf-8",
    )
    return path


def _issue(profile: Path, out: Path, count: int) -> list[str]:
    """Issue `count` certificates (both kinds, alternately); return their tokens."""
    from certissuer.config import load_settings
    from certissuer.issue import Issuer
    from certissuer.model import parse_certificate

    settings = load_settings(profile, env={})
    issuer = Issuer.from_settings(settings, passphrase=b"demo", out_dir=out)
    tokens = []
    for i in range(count):
        kind = ("verification", "calibration")[i % 2]
        data = json.loads((SAMPLES / f"{kind}.json").read_text("utf-8"), parse_float=Decimal)
        data["ref"] = f"bench-web-{i}-{uuid.uuid4().hex[:6]}"
        if "stamp_number" in data:  # a stamp is on one certificate only
            data["stamp_number"] = f"ĐT-26 {i:07d}"
        issued = issuer.issue(parse_certificate(data))
        tokens.append(issued.url.rsplit("/", 1)[1])  # HTTPS://HOST/V/TOKEN
    issuer.ledger.engine.dispose()
    return tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class _Server:
    """``certissuer serve`` in a subprocess, stopped with SIGINT (uvicorn's graceful stop)."""

    def __init__(self, profile: Path, port: int, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTISSUER_")}
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "certissuer", "--config", str(profile), "serve"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.base + "/", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"certissuer serve did not start; see {log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


async def _client(
    port: int,
    paths: list[bytes],
    offset: int,
    stop_at: float,
    measure_from: float,
    budget: list[int],
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    i = offset
    try:
        while time.monotonic() < stop_at and budget[0] > 0:
            budget[0] -= 1
            path = paths[i % len(paths)]
            i += 1
            started = time.monotonic()
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            elapsed = time.monotonic() - started
            if not head.startswith(b"HTTP/1.1 200") or b'data-verdict="valid"' not in body:
                errors.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            elif started >= measure_from:
                latencies.append(elapsed)
    finally:
        writer.close()


async def _load(
    port: int, tokens: list[str], seconds: float, warmup: float, concurrency: int, cap: int
) -> tuple[list[float], list[str], float]:
    paths = [f"/V/{t}".encode() for t in tokens]
    latencies: list[float] = []
    errors: list[str] = []
    budget = [cap]
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    await asyncio.gather(
        *(
            _client(port, paths, n, stop_at, measure_from, budget, latencies, errors)
            for n in range(concurrency)
        )
    )
    return latencies, errors, time.monotonic() - measure_from


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run(
    label: str, ledger_url: str, work: Path, args: argparse.Namespace
) -> dict[str, float | int | str]:
    port = _free_port()
    profile = _profile(work, ledger_url, port)
    tokens = _issue(profile, work / "out", args.certificates)
    server = _Server(profile, port, work / "serve.log")
    try:
        latencies, errors, measured = asyncio.run(
            _load(port, tokens, args.seconds, args.warmup, args.concurrency, args.max_requests)
        )
    finally:
        server.stop()
    latencies.sort()
    if not latencies:
        raise SystemExit(f"{label}: no successful request ({errors[:3]})")
    result: dict[str, float | int | str] = {
        "ledger": label,
        "concurrency": args.concurrency,
        "seconds": round(measured, 1),
        "requests": len(latencies),
        "errors": len(errors),
        "req_per_s": round(len(latencies) / measured, 1),
        "p50_ms": round(1000 * _percentile(latencies, 0.50), 1),
        "p95_ms": round(1000 * _percentile(latencies, 0.95), 1),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
        "mean_ms": round(1000 * statistics.fmean(latencies), 1),
    }
    verdict = "meets" if float(result["p95_ms"]) < 50 else "MISSES"
    print(
        f"{label:10} {result['req_per_s']:>8} req/s  p50 {result['p50_ms']} ms  "
        f"p95 {result['p95_ms']} ms  p99 {result['p99_ms']} ms  "
        f"({result['requests']} requests, {result['errors']} errors, "
        f"{args.concurrency} clients, {result['seconds']} s) -> {verdict} p95 < 50 ms",
        flush=True,
    )
    return result


def _pg_url(base: str, work: Path) -> tuple[str, str]:
    import sqlalchemy

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def _drop_pg_schema(base: str, schema: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured time first")
    parser.add_argument("--concurrency", type=int, default=50, help="clients at once")
    parser.add_argument("--certificates", type=int, default=20, help="QR URLs to cycle through")
    parser.add_argument("--max-requests", type=int, default=200_000, help="hard cap")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = Path(tmp) / "sqlite"
        work.mkdir()
        results.append(run("sqlite", f"sqlite:///{work / 'ledger.db'}", work, args))
        pg_base = os.environ.get("CERTISSUER_TEST_PG_URL")
        if pg_base:
            work = Path(tmp) / "postgres"
            work.mkdir()
            url, schema = _pg_url(pg_base, work)
            try:
                results.append(run("postgresql", url, work, args))
            finally:
                _drop_pg_schema(pg_base, schema)
        else:
            print("postgresql: skipped (set CERTISSUER_TEST_PG_URL to include it)")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
