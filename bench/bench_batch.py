"""Benchmark batch issue: certificates per second for 1,000 and 10,000 rows with --jobs 1 and
--jobs 2, the speed-up, peak memory at each size, and the throughput of one process against the
spine benchmark.

    CERTISSUER_P12_PASSPHRASE=demo python bench/bench_batch.py [--sizes 1000,10000] [--tiny]
        [--real 200]

Each measurement runs in a fresh process, so its peak memory is its own: the peak RSS (VmHWM)
of the process that reads the input and runs the batch (the parent; with --jobs 1 it also
issues), and that of its largest worker process (--jobs 2), polled every 0.5 s. The input is
one JSON list, written as a stream. `--tiny` replaces the certificate template by a one-line
PDF, to measure the batch machinery, signing and the ledger at sizes where real rendering would
take long. Each line also gives the CPU time per certificate (all the run's processes, start-up
included) and the load average: the machine may be shared, and CPU time tells a busy machine
from a slow program.

`--real N` (default 200; 0 skips it) then issues N rows with the real templates and --jobs 1,
and right after it runs bench/bench_issue.py's single-process certissuer figure (the spine
benchmark: one process issuing N certificates after a warm-up) for the ratio. The batch rate is
given two ways: over the whole run (start-up included) and steady (from the first certificate
issued to the last, as the spine benchmark measures).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def _status(pid: int | str) -> dict[str, str]:
    """The fields of /proc/PID/status (empty when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _hwm_mib(status: dict[str, str]) -> float:
    return int(status.get("VmHWM", "0 kB").split()[0]) / 1024


class _WorkerPeaks(threading.Thread):
    """Polls the peak resident memory (VmHWM) of this process's worker processes.

    Linux carries a parent's high-water mark into a child's ``ru_maxrss`` across fork and exec,
    so a spawned worker's ``ru_maxrss`` is at least the parent's RSS when it was started;
    VmHWM is the worker's own.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        me = str(os.getpid())
        while not self.done.wait(0.5):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                status = _status(pid)
                if status.get("PPid") != me:
                    continue
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"spawn_main" in command:  # a worker, not multiprocessing's resource tracker
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), _hwm_mib(status))


def one(n: int, jobs: int, tiny: bool) -> dict[str, float]:
    """Issue `n` rows with `jobs` workers in this (fresh) process; rates and peak memory."""
    sys.path.insert(0, str(ROOT))
    from bench_issue import _settings

    from certissuer import batch

    renderer = None
    if tiny:
        from tests._workers import TinyRenderer

        renderer = TinyRenderer()
    done: list[float] = []  # monotonic time of the first and the latest certificate

    def progress(p: Any) -> None:
        now = time.monotonic()
        if not done:
            done.append(now)
        done[1:] = [now]

    peaks = _WorkerPeaks()
    peaks.start()
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
            on_progress=progress,
            renderer=renderer,
        )
        assert report.issued == n, report
    peaks.done.set()
    peaks.join()
    steady = (n - 1) / (done[-1] - done[0]) if len(done) == 2 and done[1] > done[0] else 0.0
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return {
        "rate": n / report.elapsed,
        "steady": steady,
        "parent_mib": _hwm_mib(_status("self")),
        "worker_mib": max(peaks.peaks.values(), default=0.0),
        "workers": len(peaks.peaks),
        # CPU time of every process of the run, start-up included: unlike the rate, it hardly
        # depends on what else the machine is running
        "cpu_ms": 1000 * cpu / n,
        "load": os.getloadavg()[0],
    }


def spine(n: int) -> dict[str, float]:
    """bench/bench_issue.py's single-process certissuer figure, for `n` certificates."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_issue import bench_certissuer

    return {"rate": bench_certissuer(n, 1)}


def _run(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--tiny", action="store_true", help="one-line PDFs instead of templates")
    parser.add_argument(
        "--real", type=int, default=200, help="rows for the real-template run (0: none)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spine", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.jobs, args.tiny)))
        return
    if args.spine:
        print(json.dumps(spine(args.spine)))
        return
    mode = "tiny one-line PDFs" if args.tiny else "real templates"
    print(
        f"batch benchmark, {mode}, RSA-2048, SQLite, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (1 min)",
        flush=True,
    )
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results: dict[tuple[int, int], dict[str, float]] = {}
    for n in sizes:
        for jobs in (1, 2):
            r = results[n, jobs] = _run(
                "--one", str(n), "--jobs", str(jobs), *(["--tiny"] if args.tiny else [])
            )
            worker = (
                f", largest of {r['workers']:.0f} workers {r['worker_mib']:.0f} MiB"
                if jobs > 1
                else ""
            )
            print(
                f"{n:6d} rows, --jobs {jobs}: {r['rate']:6.1f} certificates/s "
                f"({r['steady']:.1f} steady; {r['cpu_ms']:.1f} CPU ms each, load {r['load']:.1f}); "
                f"peak memory: parent {r['parent_mib']:.0f} MiB{worker}",
                flush=True,
            )
        print(
            f"{n:6d} rows: speed-up --jobs 2 / --jobs 1 = "
            f"{results[n, 2]['rate'] / results[n, 1]['rate']:.2f}x "
            f"({results[n, 2]['steady'] / results[n, 1]['steady']:.2f}x steady; CPU time per "
            f"certificate: {results[n, 2]['cpu_ms'] / results[n, 1]['cpu_ms']:.2f}x)",
            flush=True,
        )
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        for jobs, key, who in (
            (1, "parent_mib", "the one process"),
            (2, "parent_mib", "parent"),
            (2, "worker_mib", "largest worker"),
        ):
            ratio = results[big, jobs][key] / results[small, jobs][key]
            print(f"peak memory {big} / {small} rows, --jobs {jobs}, {who}: {ratio:.2f}x")
    if args.real:
        n = args.real
        r = _run("--one", str(n), "--jobs", "1")
        s = _run("--spine", str(n))
        print(
            f"real templates, {n} rows, --jobs 1: {r['rate']:.1f} certificates/s over the run, "
            f"{r['steady']:.1f} steady; peak memory {r['parent_mib']:.0f} MiB",
            flush=True,
        )
        print(
            f"spine (bench_issue.py, 1 process, {n} certificates): {s['rate']:.1f} certificates/s"
        )
        print(
            f"per-process throughput / spine: {r['rate'] / s['rate']:.0%} over the run, "
            f"{r['steady'] / s['rate']:.0%} steady (target >= 80 %)"
        )


if __name__ == "__main__":
    main()
