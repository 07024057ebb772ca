"""Batch runs: issue every record of a spreadsheet, or digitise a paper archive — resumable,
parallel, with progress and an error report.

Records are streamed from the input and handed to worker processes through a bounded queue, so
memory stays flat however long the input is. Each worker builds one `Issuer` and issues records
with it; the ledger makes every record's ``ref`` unique, so a rerun (after a crash, ``kill -9``
or fixing bad rows) issues only what is missing, and a record is issued exactly once, ever.
Workers on several machines may share one run on PostgreSQL: each claims a record (a row in
``batch_claim``) before issuing it, so two workers never work on the same record.

>>> report = run_batch(issue_items([Path("batch.xlsx")]), settings=settings,  # doctest: +SKIP
...                    passphrase=b"…", out_dir=Path("out"), jobs=2)
>>> report.issued, len(report.rejected)  # doctest: +SKIP
(997, 3)
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import multiprocessing as mp
import os
import queue
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, overload

from certissuer import intake
from certissuer._vn import VIETNAM_TZ
from certissuer.config import Settings
from certissuer.digitise import ManifestRejected, ManifestRow, iter_manifest
from certissuer.errors import CertissuerError

__all__ = [
    "BatchReport",
    "Progress",
    "RejectedRow",
    "RejectedRows",
    "count_rows",
    "digitise_items",
    "issue_items",
    "run_batch",
    "write_error_report",
]

_logger = logging.getLogger(__name__)

Item = intake.Record | intake.Rejected | ManifestRow | ManifestRejected


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that was not issued, and why (one line of the error report)."""

    source: str
    row: int
    field: str
    reason: str
    hint: str = ""


class RejectedRows(Sequence[RejectedRow]):
    """The rejected rows of a run, in the order they came: the first `keep` in memory, the rest
    in a temporary file (JSON, one row a line), so a run whose every row is bad still holds no
    more than `keep` of them.

    It reads as a sequence (`len`, iteration, indexing, slicing); appending while iterating over
    it is not supported.
    """

    def __init__(self, keep: int = 1000) -> None:
        self._keep = keep
        self._head: list[RejectedRow] = []
        self._spill: IO[str] | None = None
        self._count = 0

    def append(self, row: RejectedRow) -> None:
        """Add `row` at the end."""
        self._count += 1
        if len(self._head) < self._keep:
            self._head.append(row)
            return
        if self._spill is None:
            self._spill = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._spill.seek(0, os.SEEK_END)
        fields = [row.source, row.row, row.field, row.reason, row.hint]
        self._spill.write(json.dumps(fields, ensure_ascii=False) + "\n")

    def extend(self, rows: Iterable[RejectedRow]) -> None:
        """Add each of `rows` at the end."""
        for row in rows:
            self.append(row)

    def close(self) -> None:
        """Delete the temporary file (the rows in it are lost)."""
        if self._spill is not None:
            self._spill.close()

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[RejectedRow]:
        yield from self._head
        if self._spill is not None:
            self._spill.flush()
            self._spill.seek(0)
            for line in self._spill:
                source, row, fld, reason, hint = json.loads(line)
                yield RejectedRow(source, row, fld, reason, hint)

    @overload
    def __getitem__(self, index: int) -> RejectedRow: ...
    @overload
    def __getitem__(self, index: slice) -> list[RejectedRow]: ...
    def __getitem__(self, index: int | slice) -> RejectedRow | list[RejectedRow]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if step < 0:
                return list(self)[index]
            return list(itertools.islice(self, start, stop, step))
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError("rejected row index out of range")
        if position < len(self._head):
            return self._head[position]
        return next(itertools.islice(self, position, None))

    def __repr__(self) -> str:
        return (
            f"RejectedRows({self._head[:3]!r}{', ...' if self._count > 3 else ''}, n={self._count})"
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """Counts so far, for a progress bar or a log line."""

    done: int
    issued: int
    already: int
    rejected: int
    skipped: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Rows per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class BatchReport:
    """What a run did. `ok` when nothing was rejected."""

    issued: int = 0
    already: int = 0
    """Rows that an earlier run had issued already (nothing new was issued)."""
    skipped: int = 0
    """Rows another worker was issuing at that moment (counted by that worker)."""
    completed: int = 0
    """Certificates a crashed earlier run had left pending and this run completed."""
    rejected: RejectedRows = field(default_factory=RejectedRows)
    """One entry per error (a rejected row may have several), for the error report."""
    rejected_rows: int = 0
    """How many rows (not errors) were rejected."""
    dry_run: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return not self.rejected


# -- inputs ------------------------------------------------------------------------------

_LIST_SUFFIXES = tuple(f".{t}.csv" for t in ("results", "standards", "ranges", "checks"))


def _expand(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                name = child.name.lower()
                if (
                    child.is_file()
                    and child.suffix.lower() in {".json", ".csv", ".xlsx", ".xml"}
                    and not name.endswith(_LIST_SUFFIXES)
                    and not name.startswith(".")
                ):
                    yield child
        else:
            yield path


def issue_items(paths: Sequence[Path]) -> Iterator[Item]:
    """Stream the records of `paths` (files, or folders of JSON/CSV/XLSX/XML files)."""
    for path in _expand(paths):
        yield from intake.iter_records(path)


def digitise_items(manifest: Path, scans: Path) -> Iterator[Item]:
    """Stream the rows of a digitisation manifest, each with its scans read and hashed."""
    yield from iter_manifest(manifest, scans=scans)


def count_rows(paths: Sequence[Path]) -> int | None:
    """A quick count of the rows in `paths` for a progress bar (None when unknown)."""
    total = 0
    for path in _expand(paths):
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                with open(path, "rb") as fh:
                    total += max(sum(1 for line in fh if line.strip()) - 1, 0)
            elif suffix == ".xlsx":
                from openpyxl import load_workbook

                wb = load_workbook(path, read_only=True)
                ws = wb.worksheets[0]
                total += max((ws.max_row or 1) - 1, 0)
                wb.close()
            else:
                return None
        except (OSError, ValueError, KeyError):
            return None
    return total


# -- running -------------------------------------------------------------------------------

Outcome = tuple[str, str, int, str, str, str]
"""(kind, source, row, field, message, hint); kind: issued, already, rejected, skipped."""


def _rejections(item: intake.Rejected | ManifestRejected) -> list[RejectedRow]:
    return [
        RejectedRow(
            e.path, e.row if e.row is not None else item.row, e.field or "", e.problem, e.hint or ""
        )
        for e in item.errors
    ]


class _Worker:
    """Issues records with one Issuer; claims each record first."""

    def __init__(
        self, settings: Settings, passphrase: bytes | None, out_dir: Path, renderer: Any = None
    ) -> None:
        from certissuer.issue import Issuer
        from certissuer.ledger import this_claimant

        self.issuer = Issuer.from_settings(settings, passphrase=passphrase, out_dir=out_dir)
        if renderer is not None:
            self.issuer.renderer = renderer
        self.claimant = this_claimant()

    def handle(self, cert: Any, source: str, row: int) -> Outcome:
        ledger, lab = self.issuer.ledger, self.issuer.settings.lab_code
        if not ledger.claim_ref(lab, cert.ref, self.claimant):
            busy = f"ref '{cert.ref}' is being issued elsewhere"
            return ("skipped", source, row, "ref", busy, "")
        completed = False  # Ledger.complete ends the claim of a certificate it records
        try:
            done = self.issuer.issue(cert)
            completed = not done.reused
        except CertissuerError as exc:
            return (
                "rejected",
                source,
                row,
                getattr(exc, "field", "") or "",
                str(exc),
                exc.hint or "",
            )
        finally:
            if not completed:
                ledger.release_ref(lab, cert.ref, self.claimant)
        return ("already" if done.reused else "issued", source, row, "", done.number, "")


def _worker_main(
    settings: Settings,
    passphrase: bytes | None,
    out_dir: Path,
    tasks: Any,
    results: Any,
    renderer: Any,
) -> None:
    try:
        worker = _Worker(settings, passphrase, out_dir, renderer)
    except CertissuerError as exc:
        results.put(("fatal", "", 0, "", str(exc), exc.hint or ""))
        return
    while True:
        task = tasks.get()
        if task is None:
            results.put(("exit", "", 0, "", "", ""))
            return
        results.put(worker.handle(*task))


def run_batch(
    items: Iterable[Item],
    *,
    settings: Settings,
    passphrase: bytes | None,
    out_dir: Path,
    jobs: int = 1,
    dry_run: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    renderer: Any = None,
) -> BatchReport:
    """Issue every good item; report every bad one. See the module docstring.

    `jobs` worker processes issue in parallel (1: in this process). With `dry_run`, every
    record is validated and rendered, the keys are loaded, and nothing is issued or written.
    `renderer` replaces the template renderer (tests). Raises `CertissuerError` when the run
    cannot start at all (keys, ledger, templates).
    """
    report = BatchReport(dry_run=dry_run)
    start = time.monotonic()
    counts = {"done": 0}

    def progressed() -> None:
        counts["done"] += 1
        if on_progress is not None:
            on_progress(
                Progress(counts["done"], report.issued, report.already, report.rejected_rows,
                         report.skipped, time.monotonic() - start)
            )  # fmt: skip

    def record(outcome: Outcome) -> None:
        kind, source, row, fld, message, hint = outcome
        if kind == "issued":
            report.issued += 1
        elif kind == "already":
            report.already += 1
        elif kind == "skipped":
            report.skipped += 1
        else:
            report.rejected.append(RejectedRow(source, row, fld, message, hint))
            report.rejected_rows += 1
        progressed()

    def reject(item: intake.Rejected | ManifestRejected) -> None:
        report.rejected.extend(_rejections(item))
        report.rejected_rows += 1
        progressed()

    if dry_run:
        _dry_run(items, settings, passphrase, record, reject, renderer)
    elif jobs <= 1:
        worker = _Worker(settings, passphrase, out_dir, renderer)
        report.completed = len(worker.issuer.complete_pending())
        for item in items:
            if isinstance(item, intake.Rejected | ManifestRejected):
                reject(item)
            else:
                cert = item.copy if isinstance(item, ManifestRow) else item.cert
                record(worker.handle(cert, item.source, item.row))
    else:
        # Repair what a crashed run left, once, before the workers start.
        from certissuer.issue import Issuer

        repairer = Issuer.from_settings(settings, passphrase=passphrase, out_dir=out_dir)
        if renderer is not None:
            repairer.renderer = renderer
        report.completed = len(repairer.complete_pending())
        _parallel(items, settings, passphrase, out_dir, jobs, renderer, record, reject)
    report.elapsed = time.monotonic() - start
    return report


def _parallel(
    items: Iterable[Item],
    settings: Settings,
    passphrase: bytes | None,
    out_dir: Path,
    jobs: int,
    renderer: Any,
    record: Callable[[Outcome], None],
    reject: Callable[[Any], None],
) -> None:
    ctx = mp.get_context("spawn")
    tasks: Any = ctx.Queue(maxsize=jobs * 4)  # bounded: rows are streamed, not all held
    results: Any = ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker_main,
            args=(settings, passphrase, out_dir, tasks, results, renderer),
            daemon=True,
        )
        for _ in range(jobs)
    ]
    for w in workers:
        w.start()
    running = len(workers)
    fatal: str | None = None

    def drain(block: bool) -> None:
        nonlocal running, fatal
        while True:
            try:
                outcome = results.get(timeout=0.2) if block else results.get_nowait()
            except queue.Empty:
                return
            if outcome[0] == "exit":
                running -= 1
            elif outcome[0] == "fatal":
                running -= 1
                fatal = outcome[4]
            else:
                record(outcome)
            block = False

    try:
        for item in items:
            if isinstance(item, intake.Rejected | ManifestRejected):
                reject(item)
                continue
            cert = item.copy if isinstance(item, ManifestRow) else item.cert
            while True:
                if fatal is not None or running == 0:
                    raise CertissuerError(f"the batch workers stopped: {fatal or 'unknown'}")
                try:
                    tasks.put((cert, item.source, item.row), timeout=0.2)
                    break
                except queue.Full:
                    drain(block=False)
            drain(block=False)
        for _ in workers:
            tasks.put(None)
        while running > 0:
            drain(block=True)
            if not any(w.is_alive() for w in workers) and running > 0:
                drain(block=False)
                break
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
    if fatal is not None:
        raise CertissuerError(f"a batch worker could not start: {fatal}")


def _dry_run(
    items: Iterable[Item],
    settings: Settings,
    passphrase: bytes | None,
    record: Callable[[Outcome], None],
    reject: Callable[[Any], None],
    renderer: Any,
) -> None:
    from certissuer.issue import load_sealer, load_token_key
    from certissuer.render import Renderer

    load_sealer(settings, passphrase)
    load_token_key(settings)
    renderer = renderer or Renderer(settings.render_template_dir)
    today = datetime.now(VIETNAM_TZ).date()
    for item in items:
        if isinstance(item, intake.Rejected | ManifestRejected):
            reject(item)
            continue
        cert = item.copy if isinstance(item, ManifestRow) else item.cert
        try:
            renderer.render_pdf(
                cert,
                number=f"{settings.series_for(cert.kind)}-DRY-RUN",
                issued=today,
                qr_url=f"{settings.token_url_base}/v/dry-run",
                settings=settings,
            )
        except CertissuerError as exc:
            record(("rejected", item.source, item.row, "", str(exc), exc.hint or ""))
            continue
        record(("issued", item.source, item.row, "", "(dry run)", ""))


def write_error_report(rejected: Iterable[RejectedRow], path: Path) -> None:
    """Write the rejected rows to `path` (CSV, or XLSX by its suffix), atomically.

    The rows are written as they are read from `rejected` (openpyxl in write-only mode for
    XLSX), never all held at once.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    header = ["file", "row", "field", "reason", "hint"]
    rows = ([r.source, r.row, r.field, r.reason, r.hint] for r in rejected)
    try:
        if path.suffix.lower() == ".xlsx":
            from openpyxl import Workbook

            wb = Workbook(write_only=True)
            ws = wb.create_sheet("errors")
            ws.append(header)
            for r in rows:
                ws.append(r)
            wb.save(tmp)
        else:
            with open(tmp, "w", newline="", encoding="utf-8-sig") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
