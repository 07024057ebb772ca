"""Benchmark: whole-process start-up of `certissuer verify` and `--help` against pyHanko's CLI.

A lab's inspector runs ``certissuer verify FILE`` once per file, so what they wait for is
the whole process: interpreter start, imports, the lab profile, the ledger, the checks and
the exit. This script times exactly that, from outside, for two pairs of commands on the
same file, run in turn (A B A B ...) so that a machine whose speed drifts moves both alike:

* ``certissuer --config samples/certissuer.toml verify FILE`` (with the ledger lookup, as a
  lab runs it: ``CERTISSUER_LEDGER_URL`` names the demo ledger) against
  ``pyhanko sign validate --trust keys.example/ca.pem FILE``;
* ``certissuer --help`` against ``pyhanko --help``.

For each command it prints the median wall time and the median peak memory (the largest
resident set of the process and the children it waited for, as ``wait4`` reports it), and
for each pair the median of the pair-by-pair ratios A/B with the target it is held to
(verify: wall ≤ 1.2, memory ≤ 1.3; help: wall ≤ 1.1).

The demo certificates are issued first into a temporary folder (as ``make demo`` does), and
``certissuer`` is byte-compiled first: an installed package has its ``.pyc`` files, and
timing a run that compiles every module from source (``PYTHONDONTWRITEBYTECODE=1``) would
measure the compiler.

pyHanko's CLI is not a dependency of certissuer. Install it beside, in its own environment,
at the versions certissuer pins::

    python3 -m venv /tmp/phcli
    /tmp/phcli/bin/pip install pyhanko-cli 'pyhanko==0.38.0' 'pyhanko-certvalidator==0.33.0'
    python bench/bench_startup.py --pyhanko /tmp/phcli/bin/pyhanko [--runs 9]

Without ``--pyhanko`` the script looks for ``pyhanko`` on ``PATH``; if there is none it
prints certissuer's own figures and says that the comparison was skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "samples" / "certissuer.toml"
CA = ROOT / "keys.example" / "ca.pem"


def run_once(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run `cmd` once; its wall seconds, peak memory in MiB and exit status."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    # A verify command writes little; read its error stream to the end before waiting.
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{errors.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


def compare(
    name: str,
    a: Sequence[str],
    b: Sequence[str] | None,
    env: dict[str, str],
    *,
    runs: int,
    targets: tuple[float, float | None],
) -> None:
    """Time `a` against `b` in turn, `runs` times each after one warm-up; print medians."""
    run_once(a, env)
    if b is not None:
        run_once(b, env)
    rows: list[tuple[float, float, float, float]] = []
    for _ in range(runs):
        wall_a, mem_a, _ = run_once(a, env)
        wall_b, mem_b = run_once(b, env)[:2] if b is not None else (float("nan"), float("nan"))
        rows.append((wall_a, mem_a, wall_b, mem_b))
    med = [statistics.median(column) for column in zip(*rows, strict=True)]
    print(f"\n{name} ({runs} runs each, medians)")
    print(f"  A  {' '.join(a)}")
    print(f"     wall {med[0]:.3f} s   peak {med[1]:.1f} MiB")
    if b is None:
        print("  B  skipped: pyHanko's CLI was not found (give --pyhanko PATH)")
        return
    print(f"  B  {' '.join(b)}")
    print(f"     wall {med[2]:.3f} s   peak {med[3]:.1f} MiB")
    wall_ratio = statistics.median(r[0] / r[2] for r in rows)
    mem_ratio = statistics.median(r[1] / r[3] for r in rows)
    wall_target, mem_target = targets
    verdict = "met" if wall_ratio <= wall_target else "NOT met"
    print(f"  A/B wall   {wall_ratio:.2f}  (target <= {wall_target}: {verdict})")
    line = f"  A/B memory {mem_ratio:.2f}"
    if mem_target is not None:
        line += f"  (target <= {mem_target}: {'met' if mem_ratio <= mem_target else 'NOT met'})"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command")
    parser.add_argument("--pyhanko", help="pyHanko's CLI (default: `pyhanko` on PATH)")
    args = parser.parse_args()
    pyhanko = args.pyhanko or shutil.which("pyhanko")
    if pyhanko is not None and not Path(pyhanko).exists():
        sys.exit(f"--pyhanko {pyhanko}: no such file")

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "certissuer")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CERTISSUER_LEDGER_URL": f"sqlite:///{tmp}/ledger.db",
            "CERTISSUER_P12_PASSPHRASE": os.environ.get("CERTISSUER_P12_PASSPHRASE", "demo"),
        }
        samples = [str(ROOT / "samples" / n) for n in ("calibration.json", "verification.json")]
        certissuer = [sys.executable, "-m", "certissuer", "--config", str(PROFILE)]
        subprocess.run(
            [*certissuer, "issue", *samples, "--out", tmp],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pdf = sorted(Path(tmp).glob("*.pdf"))[0]
        compare(
            f"verify {pdf.name}",
            [*certissuer, "verify", str(pdf)],
            None
            if pyhanko is None
            else [pyhanko, "sign", "validate", "--trust", str(CA), str(pdf)],
            env,
            runs=args.runs,
            targets=(1.2, 1.3),
        )
        compare(
            "--help",
            [sys.executable, "-m", "certissuer", "--help"],
            None if pyhanko is None else [pyhanko, "--help"],
            env,
            runs=args.runs,
            targets=(1.1, None),
        )


if __name__ == "__main__":
    main()
