"""`certissuer serve` in a child process, on a port the kernel picks when the server binds.

A port chosen beforehand (bind to port 0, read it, close, hand it to the server) can be taken
in between by another process, such as a second pytest worker; the server then fails to start,
or the test talks to somebody else's server. With ``--port 0`` the server binds a free port
itself, and uvicorn's start-up line in the log says which one.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_STARTED = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+) ")


def start_serve(
    profile: Path, log: Path, *, env: dict[str, str], timeout: float = 60
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``certissuer --config profile serve --port 0`` and return it with its port.

    Its output (standard output and error) goes to `log`; the test fails with that log if the
    server exits or has not started listening within `timeout` seconds.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "certissuer", "--config", str(profile), "serve", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while not (started := _STARTED.search(log.read_bytes())):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"certissuer serve did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return process, int(started.group(1))


def stop(process: subprocess.Popen[bytes], *, interrupt: bool = False) -> None:
    """Stop the server: SIGINT (uvicorn's graceful shutdown) or SIGTERM, then SIGKILL."""
    if process.poll() is None:
        if interrupt:
            process.send_signal(signal.SIGINT)
        else:
            process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
