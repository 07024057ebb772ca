"""The verification page's PDF worker pool: uploads checked in processes with hard limits.

An uploaded PDF is hostile input. Parsing and validating it runs in a small pool of worker
processes (forked from a clean fork server that has imported pyHanko, so a new one is ready in
milliseconds), each with its own address-space limit (``RLIMIT_AS``); the server kills a worker
that overruns its time limit and starts a fresh one, so a decompression bomb, or a few KB of
cross-reference stream that makes the parser build a table of millions of entries, costs one
worker, never the server. Results come back as JSON, not pickle, so a worker subverted by a
malicious file cannot run code in the server. Each worker reads the ledger through
`Ledger.open_readonly`, so it cannot change it either.

>>> pool = PdfWorkerPool(settings, size=2, timeout=10.0, memory_bytes=1 << 30)  # doctest: +SKIP
>>> pool.verify(Path("out/HC-2026-000001.pdf").read_bytes())["verdict"]  # doctest: +SKIP
'valid'
>>> pool.close()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import resource
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from typing import Any

from certissuer.config import Settings
from certissuer.errors import CertissuerError, VerificationFailed
from certissuer.ledger import Ledger

__all__ = ["PdfWorkerPool", "PoolBusy", "WorkerRefused"]

_logger = logging.getLogger(__name__)

_STARTUP_TIMEOUT = 60.0
"""Seconds a fresh worker may take to import pyHanko and open the ledger."""
_MAX_REPLY = 1 << 20
"""Largest reply accepted from a worker (a report is a few kilobytes)."""
_OUT_OF_MEMORY = json.dumps({"refused": "memory"}).encode()


class PoolBusy(CertissuerError):
    """Every PDF worker stayed busy for as long as a request may wait."""


class WorkerRefused(CertissuerError):
    """A PDF overran a worker's time or memory limit, or crashed it."""


# -- the worker process ---------------------------------------------------------------------


def _send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(message).encode())


def _worker_main(conn: Connection, settings: Settings, memory_bytes: int) -> None:
    """Body of one worker process: limit itself, then verify PDFs until the pipe closes."""
    # Ctrl-C reaches the whole process group; the server shuts its workers down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        from certissuer.verify import Verifier

        verifier = Verifier.from_settings(
            settings,
            ledger=Ledger.open_readonly(
                settings.ledger_url, lab_code=settings.lab_code, profile=settings.source
            ),
            token_public=settings.web_token_public,
        )
    except Exception as exc:
        _send(conn, {"startup_error": str(exc)})
        return
    _send(conn, {"ready": os.getpid()})
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        out_of_memory = False
        try:
            reply: dict[str, Any] = {"report": verifier.verify_pdf(data).to_dict()}
        except MemoryError:
            # Answer only after this block: until it ends, the traceback keeps every object
            # the parser built alive, and even a short reply could fail to allocate.
            out_of_memory = True
        except RecursionError:
            reply = {"refused": "structure"}
        except VerificationFailed as exc:
            reply = {"not_pdf": str(exc)}
        except CertissuerError as exc:
            reply = {"error": str(exc)}
        except Exception as exc:
            reply = {"error": f"the file could not be processed ({type(exc).__name__})"}
        del data
        if out_of_memory:
            # The heap may be fragmented: answer, then let the server start a fresh worker.
            conn.send_bytes(_OUT_OF_MEMORY)
            return
        _send(conn, reply)


def _context() -> ForkServerContext | SpawnContext:
    # A fork server that has imported pyHanko once forks each worker in milliseconds, so a
    # killed worker is replaced at once; it is started clean (not forked from the server's
    # threads). Where there is none, spawn: each worker then imports for a second or two.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["certissuer.verify", "certissuer.web.worker"])
        return ctx
    return multiprocessing.get_context("spawn")


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, settings: Settings, memory_bytes: int) -> None:
        ctx = _context()
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, settings, memory_bytes),
            name="certissuer-pdf-worker",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.ready = False

    @property
    def pid(self) -> int | None:
        pid: int | None = self.process.pid
        return pid

    def wait_ready(self) -> None:
        if self.ready:
            return
        if not self.conn.poll(_STARTUP_TIMEOUT):
            raise WorkerRefused(f"a PDF worker did not start within {_STARTUP_TIMEOUT:.0f} s")
        message = json.loads(self.conn.recv_bytes(_MAX_REPLY))
        if "ready" not in message:
            raise CertissuerError(f"a PDF worker could not start: {message.get('startup_error')}")
        self.ready = True

    def kill(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        if self.process.exitcode is not None:
            self.process.close()


class PdfWorkerPool:
    """A few worker processes that run `Verifier.verify_pdf` under time and memory limits.

    `settings` is the lab profile (trust roots, token keys, ledger URL; the worker opens the
    ledger read-only). `size` is the number of processes, `timeout` the seconds one PDF may take
    and `memory_bytes` each process's address-space limit. Workers start on first use.
    `wait` is how long a request waits for a free worker (default: `timeout`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        size: int,
        timeout: float,
        memory_bytes: int,
        wait: float | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a PDF worker pool needs at least one process")
        self.settings = settings
        self.size = size
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self.wait = timeout if wait is None else wait
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    def _spawn(self) -> _Worker:
        worker = _Worker(self.settings, self.memory_bytes)
        with self._lock:
            self._all.add(worker)
        _logger.debug("started PDF worker %s", worker.pid)
        return worker

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()

    def start(self) -> None:
        """Start the worker processes now (otherwise they start on the first `verify`)."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        for _ in range(self.size):
            self._idle.put(self._spawn())

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            return sorted(w.pid for w in self._all if w.pid is not None)

    def verify(self, data: bytes) -> dict[str, Any]:
        """Verify the PDF `data` in a worker; return `Report.to_dict()` of the verdict.

        Blocks the calling thread. Raises `PoolBusy` when no worker frees up within `wait`
        seconds, `WorkerRefused` when the file overruns the time or memory limit or crashes
        the worker (which is then replaced), `VerificationFailed` when it is not a PDF at all
        and `CertissuerError` for other failures (the ledger cannot be read, say).
        """
        self.start()
        try:
            worker = self._idle.get(timeout=self.wait)
        except queue.Empty:
            raise PoolBusy("every PDF worker is busy") from None
        healthy = False
        try:
            reply = self._ask(worker, data)
            # A worker that ran out of memory answers, then exits: replace it.
            healthy = reply.get("refused") != "memory"
        finally:
            if healthy and not self._closed:
                self._idle.put(worker)
            else:
                self._retire(worker)
                if not self._closed:
                    self._idle.put(self._spawn())
        return self._answer(reply)

    def _ask(self, worker: _Worker, data: bytes) -> dict[str, Any]:
        worker.wait_ready()
        started = time.monotonic()
        try:
            worker.conn.send_bytes(data)
            if not worker.conn.poll(self.timeout):
                _logger.warning("PDF worker %s overran %.1f s: killed", worker.pid, self.timeout)
                raise WorkerRefused(f"checking the file took longer than {self.timeout:g} s")
            reply: dict[str, Any] = json.loads(worker.conn.recv_bytes(_MAX_REPLY))
        except (EOFError, OSError, ValueError) as exc:
            _logger.warning("PDF worker %s failed: %s", worker.pid, exc)
            raise WorkerRefused("the file made the checking process fail") from None
        _logger.debug("PDF worker %s answered in %.3f s", worker.pid, time.monotonic() - started)
        return reply

    @staticmethod
    def _answer(reply: dict[str, Any]) -> dict[str, Any]:
        if "report" in reply:
            report: dict[str, Any] = reply["report"]
            return report
        if "refused" in reply:
            what = {"memory": "memory", "structure": "nesting depth"}.get(reply["refused"], "")
            raise WorkerRefused(f"checking the file needed more {what} than is allowed")
        if "not_pdf" in reply:
            raise VerificationFailed(str(reply["not_pdf"]))
        raise CertissuerError(str(reply.get("error", "the file could not be processed")))

    def close(self) -> None:
        """Stop every worker (idle ones at once; busy ones when they finish)."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()
