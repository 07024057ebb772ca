"""`certissuer verify FILE` under the web worker's bounds: a time limit and a memory limit.

A PDF is hostile input wherever it is checked. The page checks uploads in worker processes
with an address-space limit that are killed when they overrun their time
(`certissuer.web.worker`); the CLI gets the same bounds. Everything that reads the file runs
in a child forked from the CLI (the CLI is one thread): strict reading, the signatures, the QR
token and, when the ledger asks for it, the embedded DCC. The child limits its own address
space (``RLIMIT_AS``) once it has imported what it needs, and answers in JSON. A child that
overruns its time is killed.

The memory limit is a budget for reading the file: the child's address space may grow by
`memory_bytes` beyond what it maps once it is ready (Linux ``VmSize``, read from
``/proc/self/status``). A forked child inherits every mapping of its parent, and an absolute
limit would measure the caller rather than the file: from the CLI the ready child maps about
70 MiB, but a long-lived caller (a service, a notebook, a test runner with many threads, each
with its own malloc arena) can map more than the whole default of 1024 MiB before reading a
byte, and every file would then be refused for memory. Starting the child clean instead
(``spawn`` or ``forkserver``) would make the limit absolute again, at a price on every
`certissuer verify`: a fresh interpreter imports the checker anew. Measured from the CLI
(three alternating runs, on a busy machine), a spawned child was ready after 0.41-0.93 s,
a forked one after 0.33-0.55 s.
Where ``/proc`` is missing the budget counts from zero, the absolute limit.

The ledger is asked by the CLI itself, while the child imports pyHanko and reads the file:
the two halves of `Verifier.verify_pdf` (`Verifier.read_document`, then
`certissuer.verify._standing`, then `Verifier.check_dcc`) run in the order they always run,
in two processes. Neither process holds both pyHanko and the SQL stack, and the ledger's
imports overlap the document's.

Overrunning a bound is not a verdict either way: `verify_pdf_bounded` raises
`VerificationFailed` (exit code 8, "could not check"), never ALTERED.

>>> verify_pdf_bounded(settings, data, ledger=open_ledger, timeout=10.0, memory_bytes=1 << 30)
... # doctest: +SKIP
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certissuer.config import Settings
from certissuer.errors import CertissuerError, ForeignLedger, LedgerError, VerificationFailed
from certissuer.token import TokenClaims
from certissuer.verify.verdict import Report

if TYPE_CHECKING:
    from certissuer.ledger import Ledger
    from certissuer.verify.verifier import Document, Verifier

__all__ = ["verify_pdf_bounded"]

_logger = logging.getLogger(__name__)

_MAX_REPLY = 16 << 20
"""Largest message accepted from the child (a report is a few kilobytes)."""


def _attempt(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`work()`, or the reply that says why it failed (in the child)."""
    try:
        return work()
    except MemoryError:
        pass  # answer once the traceback and the parser's objects are gone
    except RecursionError:
        return {"refused": "structure"}
    except CertissuerError as exc:
        return {"error": str(exc), "hint": exc.hint, "exit_code": exc.exit_code}
    except Exception as exc:
        return {"unreadable": f"the file could not be processed ({type(exc).__name__})"}
    return {"refused": "memory"}


def _import_dcc() -> dict[str, Any]:
    import certissuer.dcc  # noqa: F401

    return {}


def _send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(message).encode())


def _child(
    conn: Connection,
    settings: Settings,
    token_public: Path | None,
    data: bytes,
    at: datetime | None,
    memory: int,
) -> None:
    """Body of the child: set up, limit itself, read `data`, then check the DCC if asked."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C reaches it too
    # Short of memory, objects fail in their __del__ and Python reports each on sys.stderr:
    # the parent says what happened, in one line. Log handlers keep their own stream.
    sys.stderr = None

    def setup() -> dict[str, Any]:
        from certissuer.verify.verifier import Verifier

        state["verifier"] = Verifier.from_settings(settings, ledger=None, token_public=token_public)
        return {"ready": time.monotonic(), "mapped": _status_bytes("self", "VmSize")}

    def read() -> dict[str, Any]:
        verifier: Verifier = state["verifier"]
        doc: Document = verifier.read_document(state.pop("data"), at=at)
        state["doc"] = doc
        return {
            "document": {
                "report": doc.report.to_dict(),
                "final": doc.final,
                "sha256": doc.sha256,
                "claims": None if doc.claims is None else doc.claims.to_dict(),
                "issued_sha256": doc.issued_sha256,
                "unsigned_fields": list(doc.unsigned_fields),
                "stray_bytes": doc.stray_bytes,
                "report_checkpoint": doc.report_checkpoint,
            }
        }

    state: dict[str, Any] = {"data": data}
    del data  # read() takes the only reference: a child short of memory frees it first
    ready = _attempt(setup)
    _send(conn, ready)
    if "ready" not in ready:
        return
    if memory > 0:
        # The budget counts from what the child maps now (see the module's docstring).
        limit = int(ready["mapped"]) + memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    reply = _attempt(read)
    _send(conn, reply)
    if "document" not in reply or reply["document"]["final"]:
        return
    # While the parent asks the ledger: the DCC reader it will most likely want.
    _attempt(_import_dcc)
    asked = json.loads(conn.recv_bytes(_MAX_REPLY))
    if "dcc" in asked:
        number, digest = asked["dcc"]
        _send(
            conn,
            _attempt(
                lambda: {
                    "dcc": state["verifier"].check_dcc(state["doc"], number=number, digest=digest)
                }
            ),
        )
    conn.close()


def verify_pdf_bounded(
    settings: Settings,
    data: bytes,
    *,
    ledger: Callable[[], Ledger | None],
    timeout: float,
    memory_bytes: int,
    token_public: Path | None = None,
    at: datetime | None = None,
    today: date | None = None,
    name: str = "the file",
    unreachable: Callable[[LedgerError], None] | None = None,
) -> Report:
    """The verdict of `Verifier.verify_pdf` on `data`, the file read under a time and memory limit.

    `settings` is the lab profile the `Verifier` is built from (`token_public` overrides its
    token key); `ledger` opens the ledger to ask (None: none, a genuine file is then "file
    genuine, ledger not consulted"). `timeout` is the seconds the check may take (0: no
    limit) and `memory_bytes` the reading process's address-space limit (0: none); with both
    0 the check runs in this process. `at` and `today` are `Verifier.verify_pdf`'s; `name`
    names the file in messages.

    `unreachable`, when given, is called with the `LedgerError` raised opening or reading the
    ledger (another lab's ledger, `ForeignLedger`, excepted): the file is then judged without
    it, a genuine one being FILE GENUINE, LEDGER NOT CONSULTED with the reason given; without
    it the error propagates.

    Raises `VerificationFailed` when the check overruns a bound, crashes or cannot read the
    file, and the `CertissuerError` the check (or opening the ledger) raised otherwise.
    """
    unbounded = timeout <= 0 and memory_bytes <= 0
    if not unbounded and "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        _logger.warning("no fork on this system: the file is checked without time or memory limits")
        unbounded = True
    if unbounded:
        from certissuer.verify.verifier import Verifier

        opened, why = _open(ledger, unreachable)
        verifier = Verifier.from_settings(settings, ledger=opened, token_public=token_public)
        try:
            return verifier.verify_pdf(data, at=at, today=today, no_ledger=why)
        except ForeignLedger:
            raise
        except LedgerError as exc:
            if unreachable is None:
                raise
            unreachable(exc)
            verifier.ledger = None
            return verifier.verify_pdf(data, at=at, today=today, no_ledger=_unreached(exc))
    # Forked before this process imports the ledger, and the child imports pyHanko after.
    ctx = multiprocessing.get_context("fork")
    conn, child_conn = ctx.Pipe(duplex=True)
    child = ctx.Process(
        target=_child,
        args=(child_conn, settings, token_public, data, at, memory_bytes),
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
    child_conn.close()
    try:
        return _converse(
            conn,
            child,
            settings,
            ledger,
            token_public,
            today,
            at,
            timeout,
            memory_bytes,
            name,
            unreachable,
        )
    finally:
        conn.close()
        if child.is_alive():
            child.kill()
        child.join(5)


def _converse(
    conn: Connection,
    child: Any,
    settings: Settings,
    ledger: Callable[[], Ledger | None],
    token_public: Path | None,
    today: date | None,
    at: datetime | None,
    timeout: float,
    memory_bytes: int,
    name: str,
    unreachable: Callable[[LedgerError], None] | None,
) -> Report:
    """The parent's half: the ledger, while the child reads the document; then the DCC."""
    from certissuer.key_register import lab_token_keys
    from certissuer.verify._keys import judge_keys

    # In `Verifier.verify_pdf`'s order: the ledger is opened, then the child's `Verifier`
    # is built from the profile (its errors come first), then the token keys load here too.
    opened, why = _open(ledger, unreachable)
    ready = _receive(conn, child, None, timeout, 0, name)
    if "ready" not in ready:
        return _outcome(ready, name, memory_bytes)
    # The child's limit: what it maps now plus the budget (0: no limit). Near it, a child
    # that stops answering has run out of memory rather than time.
    limit = int(ready.get("mapped", 0)) + memory_bytes if memory_bytes > 0 else 0
    near = limit - memory_bytes // 20
    keys, register = lab_token_keys(settings, token_public)
    from certissuer.verify import _standing

    # The time limit counts from the moment the child starts reading the file (the clock is
    # the system's monotonic one, the same in both processes).
    deadline = float(ready["ready"]) + timeout if timeout > 0 else None
    reply = _receive(conn, child, deadline, timeout, near, name)
    if "document" not in reply:
        return _outcome(reply, name, memory_bytes)
    document = reply["document"]
    report = Report.from_dict(document["report"])
    if document["final"]:
        return report
    claims = None if document["claims"] is None else TokenClaims.from_dict(document["claims"])

    def judge(ledger_: Ledger | None, no_ledger: str) -> tuple[Report, Any]:
        return _standing.judge_pdf(
            Report.from_dict(document["report"]),
            ledger_,
            keys,
            sha=document["sha256"],
            claims=claims,
            issued_sha256=document["issued_sha256"],
            today=today,
            at=at,
            unsigned_fields=[str(f) for f in document.get("unsigned_fields", ())],
            stray_bytes=bool(document.get("stray_bytes")),
            no_ledger=no_ledger,
            report_checkpoint=document.get("report_checkpoint"),
        )

    try:
        report, entry = judge(opened, why)
    except ForeignLedger:
        raise
    except LedgerError as exc:
        # Reachable when opened, lost while read: the file's own findings still stand.
        if unreachable is None:
            raise
        unreachable(exc)
        report, entry = judge(None, _unreached(exc))
    issued_at = None if entry is None else entry.issued_at
    if issued_at is not None and issued_at.tzinfo is None:
        issued_at = issued_at.replace(tzinfo=UTC)  # SQLite returns UTC times naive
    wanted = _standing.dcc_wanted(report, entry)
    _send(conn, {"done": True} if wanted is None else {"dcc": list(wanted)})
    if wanted is None:
        return judge_keys(report, register, claims=claims, issued_at=issued_at)
    reply = _receive(conn, child, deadline, timeout, near, name)
    if "dcc" not in reply:
        return _outcome(reply, name, memory_bytes)
    finding = reply["dcc"]
    report = _standing.apply_dcc(
        report, None if finding is None else (bool(finding[0]), str(finding[1]))
    )
    return judge_keys(report, register, claims=claims, issued_at=issued_at)


def _unreached(exc: LedgerError) -> str:
    return f"the ledger could not be reached ({' '.join(str(exc).split())})"


def _open(
    ledger: Callable[[], Ledger | None], unreachable: Callable[[LedgerError], None] | None
) -> tuple[Ledger | None, str]:
    """The ledger `ledger()` opens and why there is none when it is None.

    A `LedgerError` (not `ForeignLedger`: another lab's ledger is no outage) goes to
    `unreachable`, when given, and leaves no ledger; otherwise it propagates.
    """
    from certissuer.verify._standing import NOT_CONSULTED_OFFLINE

    try:
        return ledger(), NOT_CONSULTED_OFFLINE
    except ForeignLedger:
        raise
    except LedgerError as exc:
        if unreachable is None:
            raise
        unreachable(exc)
        return None, _unreached(exc)


def _receive(
    conn: Connection,
    child: Any,
    deadline: float | None,
    timeout: float,
    near: int,
    name: str,
) -> dict[str, Any]:
    """The child's next message, waiting until `deadline` (monotonic seconds; None: no limit).

    A child that does not answer in time while its address space has reached `near` bytes
    (0: no memory limit) is reported short of memory rather than of time.
    """
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not conn.poll(wait):
        if near > 0 and _status_bytes(child.pid, "VmPeak") >= near:
            # Python short of memory can spend its remaining time failing to allocate
            # (each failure raising again in a finaliser) instead of unwinding: the limit
            # it hit, not the clock, is why it never answered.
            return {"refused": "memory"}
        raise VerificationFailed(
            f"{name}: could not check: checking took longer than {timeout:g} s "
            "(--timeout); nothing is known about the certificate either way"
        )
    try:
        message: dict[str, Any] = json.loads(conn.recv_bytes(_MAX_REPLY))
    except (EOFError, OSError, ValueError):
        child.join(5)
        raise VerificationFailed(
            f"{name}: could not check: the checking process failed "
            f"(exit status {child.exitcode}); nothing is known about the certificate "
            "either way"
        ) from None
    return message


def _status_bytes(pid: int | str | None, field: str) -> int:
    """Bytes of `field` in Linux's ``/proc/<pid>/status`` (``VmSize``: the address space
    process `pid`, or ``"self"``, holds now; ``VmPeak``: the most it ever held), 0 if unknown.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _outcome(reply: dict[str, Any], name: str, memory_bytes: int) -> Report:
    """Raise the error a child's failed `reply` stands for."""
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
