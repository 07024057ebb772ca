"""Benchmark: `certissuer verify` of a genuine certificate, in one process, with the ledger.

Issues the sample verification and calibration certificates (PAdES B-B, the demo keys that
`make demo` uses, a fresh SQLite ledger), then verifies each PDF repeatedly with `Verifier`
(strict document reading, pyHanko validation, the QR token, the ledger and its signed events,
the embedded DCC). Prints milliseconds per verification (median and mean of the wall clock,
median CPU time: on a busy machine the CPU time is the steadier figure), verifications per
second and peak memory.

    CERTISSUER_P12_PASSPHRASE=demo python bench/bench_verify.py [--n 50]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from certissuer.config import load_settings  # noqa: E402
from certissuer.issue import Issuer  # noqa: E402
from certissuer.ledger import Ledger  # noqa: E402
from certissuer.model import parse_certificate  # noqa: E402
from certissuer.verify import Verifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50, help="verifications per certificate")
    args = parser.parse_args()
    passphrase = os.environ.get("CERTISSUER_P12_PASSPHRASE", "demo").encode()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = load_settings(ROOT / "samples" / "certissuer.toml").replace(
            ledger_url=f"sqlite:///{home / 'ledger.db'}"
        )
        ledger = Ledger.open(settings.ledger_url)
        issuer = Issuer.from_settings(
            settings, passphrase=passphrase, out_dir=home / "out", ledger=ledger
        )
        verifier = Verifier.from_settings(settings, ledger=ledger)
        print(f"verify, PAdES B-B, RSA-2048 demo keys, SQLite ledger, n={args.n} per file")
        print(f"{'certificate':<28} {'median ms':>10} {'mean ms':>9} {'CPU ms':>7} {'per s':>7}")
        for name in ("verification.json", "calibration.json"):
            data = json.loads((ROOT / "samples" / name).read_text(), parse_float=Decimal)
            issued = issuer.issue(parse_certificate(data))
            pdf = issued.path.read_bytes()
            report = verifier.verify_pdf(pdf)
            assert report.ok, report.reasons
            samples, cpu = [], []
            for _ in range(args.n):
                start, start_cpu = time.perf_counter(), time.process_time()
                verifier.verify_pdf(pdf)
                samples.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            median = statistics.median(samples)
            print(
                f"{issued.number + ' (' + str(len(pdf) // 1024) + ' KiB)':<28} "
                f"{median * 1000:10.1f} {statistics.mean(samples) * 1000:9.1f} "
                f"{statistics.median(cpu) * 1000:7.1f} {1 / median:7.1f}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
