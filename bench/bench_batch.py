"""Benchmark batch issue: certificates per second for 1,000 and 10,000 rows with --jobs 1 and
--jobs 2, the speed-up, and peak memory at each size.

    CERTISSUER_P12_PASSPHRASE=demo python bench/bench_batch.py [--sizes 1000,10000] [--tiny]

Each measurement runs in a fresh process, so its peak memory (the largest RSS of the run's own
process and of its workers) is its own. `--tiny` replaces the certificate template by a one-line
PDF, to measure the batch machinery, signing and the ledger at sizes where real rendering would
take long.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = json.loads((ROOT / "samples" / "calibration.json").read_text(encoding="utf-8"))


def _write_input(path: Path, n: int) -> None:
    # Written as a stream: the benchmark itself must not hold 10,000 records either.
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[")
        for i in range(n):
            SAMPLE["ref"] = f"bench-{i:06d}"
            fh.write(("," if i else "") + json.dumps(SAMPLE, ensure_ascii=False))
        fh.write("]")


def one(n: int, jobs: int, tiny: bool) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from bench_issue import _settings

    from certissuer import batch

    renderer = None
    if tiny:
        from tests._workers import TinyRenderer

        renderer = TinyRenderer()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.json"
        _write_input(data, n)
        settings = _settings(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        report = batch.run_batch(
            batch.issue_items([data]),
            settings=settings,
            passphrase=b"demo",
            out_dir=Path(tmp) / "out",
            jobs=jobs,
            renderer=renderer,
        )
        assert report.issued == n, report
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rate": n / report.elapsed, "peak_mib": max(own, kids), "own_mib": own}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--tiny", action="store_true", help="one-line PDFs instead of templates")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.jobs, args.tiny)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[int, int], dict[str, float]] = {}
    for n in sizes:
        for jobs in (1, 2):
            cmd = [sys.executable, __file__, "--one", str(n), "--jobs", str(jobs)]
            out = subprocess.run(
                cmd + (["--tiny"] if args.tiny else []),
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
            results[n, jobs] = json.loads(out.strip().splitlines()[-1])
            r = results[n, jobs]
            print(
                f"{n:6d} rows, --jobs {jobs}: {r['rate']:6.1f} certificates/s, "
                f"peak memory {r['peak_mib']:.0f} MiB",
                flush=True,
            )
        print(
            f"{n:6d} rows: speed-up --jobs 2 / --jobs 1 = "
            f"{results[n, 2]['rate'] / results[n, 1]['rate']:.2f}x"
        )
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        for jobs in (1, 2):
            ratio = results[big, jobs]["peak_mib"] / results[small, jobs]["peak_mib"]
            print(f"peak memory {big} / {small} rows, --jobs {jobs}: {ratio:.2f}x")
    print("mode:", "tiny one-line PDFs" if args.tiny else "real templates")


if __name__ == "__main__":
    main()
