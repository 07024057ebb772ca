"""`certissuer verify FILE` under the web worker's bounds: a time limit and a memory limit.

A PDF is hostile input wherever it is checked. The page checks uploads in worker processes
with an address-space limit that are killed when they overrun their time
(`certissuer.web.worker`); the CLI gets the same bounds. The check runs in a child forked from
the CLI (the CLI is one thread, and a fork starts in about a millisecond with everything
already imported), which limits its own address space (``RLIMIT_AS``) and sends the report
back as JSON. A child that overruns its time is killed.

Overrunning a bound is not a verdict either way: `verify_pdf_bounded` raises
`VerificationFailed` (exit code 8, "could not check"), never ALTERED.

>>> verify_pdf_bounded(verifier, data, timeout=10.0, memory_bytes=1 << 30)  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import signal
import sys
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from certissuer.errors import CertissuerError, VerificationFailed
from certissuer.verify.verdict import Report
from certissuer.verify.verifier import Verifier

__all__ = ["verify_pdf_bounded"]

_logger = logging.getLogger(__name__)

_MAX_REPLY = 16 << 20
"""Largest report accepted from the child (a report is a few kilobytes)."""


def _child(
    conn: Connection, verifier: Verifier, data: bytes, at: datetime | None, memory: int
) -> None:
    """Body of the child: limit itself, check `data`, send the outcome as JSON."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C reaches it too
    # Short of memory, objects fail in their __del__ and Python reports each on sys.stderr:
    # the parent says what happened, in one line. Log handlers keep their own stream.
    sys.stderr = None
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if verifier.ledger is not None:
        # The parent's pooled connections are its own: the child opens fresh ones.
        verifier.ledger.engine.dispose(close=False)
    out_of_memory = False
    try:
        reply: dict[str, Any] = {"report": verifier.verify_pdf(data, at=at).to_dict()}
    except MemoryError:
        out_of_memory = True  # answer once the traceback and the parser's objects are gone
    except RecursionError:
        reply = {"refused": "structure"}
    except CertissuerError as exc:
        reply = {"error": str(exc), "hint": exc.hint, "exit_code": exc.exit_code}
    except Exception as exc:
        reply = {"unreadable": f"the file could not be processed ({type(exc).__name__})"}
    del data
    if out_of_memory:
        reply = {"refused": "memory"}
    conn.send_bytes(json.dumps(reply).encode())
    conn.close()


def verify_pdf_bounded(
    verifier: Verifier,
    data: bytes,
    *,
    timeout: float,
    memory_bytes: int,
    at: datetime | None = None,
    name: str = "the file",
) -> Report:
    """`verifier.verify_pdf(data, at=at)` in a child process with a time and memory limit.

    `timeout` is the seconds the check may take (0: no limit) and `memory_bytes` the child's
    address-space limit (0: none); with both 0 the check runs in this process. `name` names
    the file in messages. Raises `VerificationFailed` when the check overruns a bound, crashes
    or cannot read the file, and the `CertissuerError` the check raised otherwise.
    """
    if timeout <= 0 and memory_bytes <= 0:
        return verifier.verify_pdf(data, at=at)
    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        _logger.warning("no fork on this system: the file is checked without time or memory limits")
        return verifier.verify_pdf(data, at=at)
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child,
        args=(sender, verifier, data, at, memory_bytes),
        name="certissuer-verify",
        daemon=True,
    )
    # Everything imported so far is moved out of the collector's reach before the fork: the
    # child's collections then do not write to (and copy) every inherited page. The parent
    # takes its objects back at once, so a long-lived caller collects as before.
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    sender.close()
    try:
        if not receiver.poll(timeout if timeout > 0 else None):
            if memory_bytes > 0 and _peak_address_space(child.pid) >= memory_bytes * 0.95:
                # Python short of memory can spend its remaining time failing to allocate
                # (each failure raising again in a finaliser) instead of unwinding: the limit
                # it hit, not the clock, is why it never answered.
                return _outcome({"refused": "memory"}, name, memory_bytes)
            raise VerificationFailed(
                f"{name}: could not check: checking took longer than {timeout:g} s "
                "(--timeout); nothing is known about the certificate either way"
            )
        try:
            reply: dict[str, Any] = json.loads(receiver.recv_bytes(_MAX_REPLY))
        except (EOFError, OSError, ValueError):
            child.join(5)
            raise VerificationFailed(
                f"{name}: could not check: the checking process failed "
                f"(exit status {child.exitcode}); nothing is known about the certificate "
                "either way"
            ) from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    return _outcome(reply, name, memory_bytes)


def _peak_address_space(pid: int | None) -> int:
    """The most address space process `pid` ever held (Linux ``VmPeak``), or 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _outcome(reply: dict[str, Any], name: str, memory_bytes: int) -> Report:
    if "report" in reply:
        return Report.from_dict(reply["report"])
    if "refused" in reply:
        what = (
            f"more than the memory limit of {memory_bytes / (1 << 20):g} MiB"
            if reply["refused"] == "memory"
            else "structures nested deeper than can be read"
        )
        raise VerificationFailed(
            f"{name}: could not check: the file needs {what}; nothing is known about the "
            "certificate either way"
        )
    if "unreadable" in reply:
        raise VerificationFailed(f"{name}: could not check: {reply['unreadable']}")
    error = CertissuerError(str(reply.get("error")), hint=reply.get("hint"))
    error.exit_code = int(reply.get("exit_code", 1))
    raise error
