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
from typing import IO, TYPE_CHECKING, Any, NamedTuple, overload

from certissuer import intake
from certissuer._tables import (
    check_file,
    csv_rows,
    new_workbook,
    open_workbook,
    save_workbook,
    write_csv,
)
from certissuer._vn import VIETNAM_TZ
from certissuer.config import Settings
from certissuer.digitise import ManifestRejected, ManifestRow, iter_manifest
from certissuer.errors import CertissuerError, InputError, IssueRefused, LedgerError

if TYPE_CHECKING:
    from certissuer import dcc
    from certissuer.issue import Issued
    from certissuer.ledger import CertificateEntry, Checkpoint, Status
    from certissuer.sign import SecretSource

__all__ = [
    "ERROR_REPORT_COLUMNS",
    "Outcome",
    "Progress",
    "RejectedRow",
    "RejectedRows",
    "RunReport",
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
    exit_code: int = InputError.exit_code
    """The exit code of the error that rejected the row (README's table)."""

    def cells(self) -> list[str | int]:
        """The row as the error report's cells (`ERROR_REPORT_COLUMNS`)."""
        return [self.source, self.row, self.field, self.reason, self.hint]

    @classmethod
    def of(cls, source: str | Path, row: int, exc: CertissuerError) -> RejectedRow:
        """The rejection of row `row` of `source` by `exc` (its field, if it names one)."""
        fld = getattr(exc, "field", None) or ""
        # An InputError's problem without its place: the file, row and field are columns.
        reason = getattr(exc, "problem", None) or str(exc)
        return cls(str(source), row, fld, reason, exc.hint or "", exc.exit_code)


class RejectedRows(Sequence[RejectedRow]):
    """The rejected rows of a run, in the order they came: the first `keep` in memory, the rest
    in a temporary file (JSON, one row a line), so a run whose every row is bad still holds no
    more than `keep` of them.

    It reads as a sequence (`len`, iteration, indexing, slicing); appending while iterating over
    it is not supported. `exit_codes` holds the exit code of every row's error.
    """

    def __init__(self, keep: int = 1000) -> None:
        self._keep = keep
        self._head: list[RejectedRow] = []
        self._spill: IO[str] | None = None
        self._count = 0
        self.exit_codes: set[int] = set()

    def append(self, row: RejectedRow) -> None:
        """Add `row` at the end."""
        self._count += 1
        self.exit_codes.add(row.exit_code)
        if len(self._head) < self._keep:
            self._head.append(row)
            return
        if self._spill is None:
            self._spill = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._spill.seek(0, os.SEEK_END)
        fields = [*row.cells(), row.exit_code]
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
                yield RejectedRow(*json.loads(line))

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
class RunReport:
    """What a run did: the one report of ``issue``, ``batch issue`` and ``batch digitise``.

    `ok` when nothing was rejected; `exit_code` is the run's exit code (see `exit_code`).
    """

    issued: int = 0
    """Certificates this run issued (with `dry_run`: would issue)."""
    already: int = 0
    """Rows that an earlier run had issued already (nothing new was issued)."""
    skipped: int = 0
    """Rows another worker was issuing at that moment (counted by that worker)."""
    completed: int = 0
    """Certificates a crashed earlier run had left pending and this run completed."""
    notices: int = 0
    """Notices of failure this run issued: a failed instrument's row is rejected (exit 9) and
    gets a signed notice instead of a certificate (issue 16)."""
    rejected: RejectedRows = field(default_factory=RejectedRows)
    """One entry per error (a rejected row may have several), for the error report."""
    rejected_rows: int = 0
    """How many rows (not errors) were rejected."""
    dry_run: bool = False
    all_or_nothing: bool = False
    """The run issued nothing because a record was bad (``issue``), rather than every good
    row (``batch``)."""
    elapsed: float = 0.0
    certificates: list[Issued] = field(default_factory=list)
    """Each certificate the run completed, issued or found issued already, in that order."""
    checkpoint: Checkpoint | None = None
    """The checkpoint of the ledger's log the lab signed at the end of a run that issued
    anything, notices of failure included (None: nothing was issued)."""
    error_report: Path | None = None
    """Where the rejected rows were written (None: nowhere, or nothing was rejected)."""
    checks_ran: list[str] = field(default_factory=list)
    """The checks each record of the run went through (none for a dry run, which only
    renders): the basic ones always, the register's where it holds their rows (issue 16)."""
    checks_no_data: dict[str, str] = field(default_factory=dict)
    """The checks the run skipped for want of data, each with why ("no data in the
    register")."""

    downgraded_notices: list[Issued] = field(default_factory=list)
    """Notices of failure this run signed at B-B instead of B-T (see `downgraded`)."""

    @property
    def downgraded(self) -> list[Issued]:
        """The certificates and notices of failure signed at B-B instead of B-T because no
        time-stamping authority answered (``[signing] tsa_unavailable = "downgrade"``)."""
        done = [c for c in self.certificates if c.tsa_failure]
        return done + self.downgraded_notices

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return not self.rejected

    @property
    def exit_code(self) -> int:
        """0 when nothing was rejected; else the exit code the rejections share (2 input,
        4 template, 7 ledger, 9 refused, ...), or 2 when they differ."""
        codes = self.rejected.exit_codes
        if not codes:
            return 0
        return next(iter(codes)) if len(codes) == 1 else InputError.exit_code

    def ledger_entries(self, settings: Settings) -> list[tuple[Issued, CertificateEntry, Status]]:
        """Each of `certificates` with its ledger entry and status today, from the ledger of
        `settings` (the entry's one JSON shape is `certissuer.report.export.entry_row`)."""
        if not self.certificates:
            return []
        from certissuer.ledger import Ledger

        ledger = Ledger.open(settings.ledger_url, create=False)
        today = datetime.now(VIETNAM_TZ).date()
        out = []
        for done in self.certificates:
            entry = ledger.get(done.number)
            if entry is None:  # pragma: no cover - the run has just recorded it
                raise LedgerError(f"certificate {done.number} is not in the ledger")
            out.append((done, entry, ledger.status(entry, today=today)[0]))
        return out


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


def issue_items(paths: Sequence[Path], *, fill: dcc.Fill | None = None) -> Iterator[Item]:
    """Stream the records of `paths` (files, or folders of JSON/CSV/XLSX/XML files); `fill`
    gives what a DCC from elsewhere does not carry (`certissuer.dcc.Fill`)."""
    for path in _expand(paths):
        yield from intake.iter_records(path, fill=fill)


def digitise_items(manifest: Path, scans: Path) -> Iterator[Item]:
    """Stream the rows of a digitisation manifest, each with its scans read and hashed."""
    yield from iter_manifest(manifest, scans=scans)


def count_rows(paths: Sequence[Path]) -> int | None:
    """A quick count of the rows in `paths` for a progress bar (None when unknown).

    Tables are opened through `certissuer._tables`, with its size and zip-bomb limits, so a
    table that cannot be read is refused here, before any key is loaded: raises `InputError`
    naming the file.
    """
    total = 0
    for path in _expand(paths):
        suffix = path.suffix.lower()
        if suffix == ".csv":
            check_file(path)
            total += max(sum(1 for _, cells in csv_rows(path) if any(cells)) - 1, 0)
        elif suffix == ".xlsx":
            with open_workbook(path) as book:
                # The stored dimension: quick, and close enough for a progress bar.
                total += max((book.worksheets[0].max_row or 1) - 1, 0)
        else:
            return None
    return total


# -- running -------------------------------------------------------------------------------


class Outcome(NamedTuple):
    """What happened to one row, as a worker reports it."""

    kind: str
    """issued, already, rejected or skipped; between processes also fatal and exit."""
    source: str
    row: int
    rejection: RejectedRow | None = None
    done: Issued | None = None
    notice: Issued | None = None
    """A rejected failed instrument's notice of failure, newly issued by this run."""


def _rejections(item: intake.Rejected | ManifestRejected) -> list[RejectedRow]:
    return [
        RejectedRow.of(e.path, e.row if e.row is not None else item.row, e) for e in item.errors
    ]


def _cert(item: intake.Record | ManifestRow) -> Any:
    return item.copy if isinstance(item, ManifestRow) else item.cert


class _Worker:
    """Issues records with one Issuer; claims each record first."""

    def __init__(
        self,
        settings: Settings,
        passphrase: bytes | None,
        out_dir: Path,
        renderer: Any = None,
        secret: SecretSource | None = None,
    ) -> None:
        from certissuer.issue import Issuer
        from certissuer.ledger import this_claimant

        self.issuer = Issuer.from_settings(
            settings, passphrase=passphrase, out_dir=out_dir, secret=secret
        )
        if renderer is not None:
            self.issuer.renderer = renderer
        self.claimant = this_claimant()

    def check(self, cert: Any, source: str, row: int) -> Outcome | None:
        """None when `cert` passes every check before a number; else its rejection."""
        try:
            self.issuer.check(cert)
        except CertissuerError as exc:
            return Outcome("rejected", source, row, RejectedRow.of(source, row, exc))
        return None

    def handle(self, cert: Any, source: str, row: int, *, reject: bool = True) -> Outcome:
        """Issue `cert`. With `reject`, a `CertissuerError` rejects the row; else it is raised."""
        ledger, lab = self.issuer.ledger, self.issuer.settings.lab_code
        if not ledger.claim_ref(lab, cert.ref, self.claimant):
            busy = RejectedRow(source, row, "ref", f"ref '{cert.ref}' is being issued elsewhere")
            return Outcome("skipped", source, row, busy)
        completed = False  # Ledger.complete ends the claim of a certificate it records
        try:
            done = self.issuer.issue(cert)
            completed = not done.reused
        except CertissuerError as exc:
            # A failed instrument's notice of failure was issued (`NoticeIssued.issued`): the
            # row is rejected (exit 9) and the run goes on, even where errors stop it.
            notice: Issued | None = getattr(exc, "issued", None)
            if not reject and notice is None:
                raise
            if notice is not None and notice.reused:
                notice = None  # an earlier run issued it
            return Outcome("rejected", source, row, RejectedRow.of(source, row, exc), notice=notice)
        finally:
            if not completed:
                ledger.release_ref(lab, cert.ref, self.claimant)
        return Outcome("already" if done.reused else "issued", source, row, done=done)


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
        results.put(Outcome("fatal", "", 0, RejectedRow.of("", 0, exc)))
        return
    while True:
        task = tasks.get()
        if task is None:
            results.put(Outcome("exit", "", 0))
            return
        results.put(worker.handle(*task))


PAPER_COPY_CHECKS = (
    "manifest fields and dates",
    "paper numbers once",
    "scan files (inside the scans folder, readable, hashed)",
)
"""What a digitisation run checks of each paper certificate: the electronic copy reproduces
the paper, so the legal checks of a new certificate (cycle, MPE, standards) are not made."""


def run_batch(
    items: Iterable[Item],
    *,
    settings: Settings,
    passphrase: bytes | None,
    out_dir: Path,
    jobs: int = 1,
    dry_run: bool = False,
    all_or_nothing: bool = False,
    error_report: Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    renderer: Any = None,
    secret: SecretSource | None = None,
) -> RunReport:
    """Issue the records of `items` and report what happened: the one run engine.

    One rejection policy for every run: a row is rejected, with the exit code of its error,
    when it cannot be read (intake), when `Issuer.check` refuses it (its template, the
    register, a failed instrument, its ref issued with other data), or when issuing it
    fails. Then:

    * by default (``batch``) every good row is issued and every bad one reported; `jobs`
      worker processes issue in parallel (1: in this process);
    * with `all_or_nothing` (``issue``) every record is checked first, in this process, and
      if any is bad nothing is issued and no number is taken (the records are held in
      memory); otherwise they are issued, and an error while issuing stops the run;
    * with `dry_run` every record is validated and rendered, the keys are loaded, and
      nothing is issued or written.

    Certificates a crashed run left pending are completed first. A run that issued or
    completed anything ends with a checkpoint of the ledger's log signed with the lab's
    token key (`RunReport.checkpoint`), even when an error stops it; a notice of failure
    counts as issued here (`RunReport.notices`). With `error_report` the
    rejected rows are written there (CSV or XLSX by its suffix). `renderer` replaces the
    template renderer (tests). `passphrase` is the ``[signing]`` key's passphrase or PIN;
    `secret` gives the ``[[people]]`` keys' in this process (worker processes read the
    variables each key names). Raises `CertissuerError` when the run cannot start at all
    (keys, ledger, templates).
    """
    report = RunReport(dry_run=dry_run, all_or_nothing=all_or_nothing)
    start = time.monotonic()
    seen: set[str] = set()

    def noted(items: Iterable[Item]) -> Iterator[Item]:
        # Which checks apply depends on what the run holds: records or paper copies.
        for item in items:
            seen.add("paper" if isinstance(item, ManifestRow | ManifestRejected) else "record")
            yield item

    items = noted(items)
    counts = {"done": 0}

    def progressed() -> None:
        counts["done"] += 1
        if on_progress is not None:
            on_progress(
                Progress(counts["done"], report.issued, report.already, report.rejected_rows,
                         report.skipped, time.monotonic() - start)
            )  # fmt: skip

    def record(outcome: Outcome) -> None:
        if outcome.kind == "issued":
            report.issued += 1
        elif outcome.kind == "already":
            report.already += 1
        elif outcome.kind == "skipped":
            report.skipped += 1
        else:
            assert outcome.rejection is not None
            report.rejected.append(outcome.rejection)
            report.rejected_rows += 1
        if outcome.done is not None:
            report.certificates.append(outcome.done)
        if outcome.notice is not None:
            report.notices += 1
            if outcome.notice.tsa_failure:
                report.downgraded_notices.append(outcome.notice)
        progressed()

    def reject(item: intake.Rejected | ManifestRejected) -> None:
        report.rejected.extend(_rejections(item))
        report.rejected_rows += 1
        progressed()

    if dry_run:
        _dry_run(items, settings, passphrase, record, reject, renderer, secret)
    else:
        # One Issuer in this process: it repairs what a crashed run left, once, before any
        # worker starts, and signs the checkpoint at the end.
        worker = _Worker(settings, passphrase, out_dir, renderer, secret)
        try:
            report.certificates.extend(worker.issuer.complete_pending())
            report.completed = len(report.certificates)
            if all_or_nothing:
                _all_or_nothing(items, worker, record, reject, report)
            elif jobs <= 1:
                for item in items:
                    if isinstance(item, intake.Rejected | ManifestRejected):
                        reject(item)
                    else:
                        record(worker.handle(_cert(item), item.source, item.row))
            else:
                _parallel(items, settings, passphrase, out_dir, jobs, renderer, record, reject)
        except BaseException:
            _vouch(worker, report, stopping=True)
            raise
        _vouch(worker, report, stopping=False)
        report.checks_ran, report.checks_no_data = worker.issuer.checks_run()
        if "record" not in seen:  # a digitisation: the record checks do not apply to copies
            report.checks_ran, report.checks_no_data = list(PAPER_COPY_CHECKS), {}
    report.elapsed = time.monotonic() - start
    if error_report is not None and report.rejected:
        write_error_report(report.rejected, error_report)
        report.error_report = error_report
    return report


def _vouch(worker: _Worker, report: RunReport, *, stopping: bool) -> None:
    # The lab vouches for the log as the run left it, so reports (the annual count) and
    # audits can rely on every certificate the run issued.
    if not (report.issued or report.completed or report.notices):
        return
    try:
        report.checkpoint = worker.issuer.checkpoint()
    except CertissuerError:
        if not stopping:
            raise
        # The run is already stopping with its own error, which is the one to report.
        _logger.warning("no checkpoint signed after the run stopped", exc_info=True)


def _all_or_nothing(
    items: Iterable[Item],
    worker: _Worker,
    record: Callable[[Outcome], None],
    reject: Callable[[Any], None],
    report: RunReport,
) -> None:
    good: list[tuple[Any, str, int]] = []
    stamps: dict[tuple[str, int], int] = {}  # a stamp once per lab, in the run too (issue 16)
    for item in items:
        if isinstance(item, intake.Rejected | ManifestRejected):
            reject(item)
            continue
        cert = _cert(item)
        refused = worker.check(cert, item.source, item.row)
        try:
            stamp = worker.issuer.stamp_of(cert)
        except IssueRefused:
            stamp = None  # a stamp without a number: the issuer's own check refused it
        if refused is None and stamp is not None and stamp in stamps:
            refused = Outcome(
                "rejected",
                item.source,
                item.row,
                RejectedRow.of(
                    item.source,
                    item.row,
                    IssueRefused(
                        f"ref '{cert.ref}': stamp {stamp[0]} {stamp[1]} is also on row "
                        f"{stamps[stamp]} of "
                        "this run",
                        hint="each stamp number is used once per lab",
                    ),
                ),
            )
        elif stamp is not None:
            stamps.setdefault(stamp, item.row)
        if refused is not None:
            record(refused)
        else:
            good.append((cert, item.source, item.row))
    if report.rejected:
        return  # one bad record: nothing is issued, no number is taken
    for cert, source, row in good:
        record(worker.handle(cert, source, row, reject=False))


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
            if outcome.kind == "exit":
                running -= 1
            elif outcome.kind == "fatal":
                running -= 1
                fatal = outcome.rejection.reason
            else:
                record(outcome)
            block = False

    try:
        for item in items:
            if isinstance(item, intake.Rejected | ManifestRejected):
                reject(item)
                continue
            task = (_cert(item), item.source, item.row)
            while True:
                if fatal is not None or running == 0:
                    raise CertissuerError(f"the batch workers stopped: {fatal or 'unknown'}")
                try:
                    tasks.put(task, timeout=0.2)
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


def _existing_ledger(settings: Settings) -> Any:
    """The lab's ledger when it exists, read only; None when there is none yet (a dry run
    creates nothing). Another lab's ledger is refused (`ForeignLedger`)."""
    from certissuer.errors import ForeignLedger
    from certissuer.ledger import Ledger

    try:
        return Ledger.open(settings.ledger_url, create=False, lab_code=settings.lab_code)
    except ForeignLedger:
        raise
    except LedgerError:
        return None


def _dry_run(
    items: Iterable[Item],
    settings: Settings,
    passphrase: bytes | None,
    record: Callable[[Outcome], None],
    reject: Callable[[Any], None],
    renderer: Any,
    secret: SecretSource | None = None,
) -> None:
    from certissuer.issue import load_keyring, load_token_key, signers_of, trial_render
    from certissuer.render import Renderer

    load_token_key(settings)
    renderer = renderer or Renderer(settings.render_template_dir)
    today = datetime.now(VIETNAM_TZ).date()
    ledger = _existing_ledger(settings)  # what an earlier run issued is not "would issue"
    with load_keyring(settings, passphrase, secret=secret) as keys:
        for item in items:
            if isinstance(item, intake.Rejected | ManifestRejected):
                reject(item)
                continue
            if ledger is not None and ledger.by_ref(settings.lab_code, _cert(item).ref):
                record(Outcome("already", item.source, item.row))
                continue
            try:
                # issue 17: the printed signer has a key that names them
                signers_of(keys, _cert(item), approval=settings.signing_approval)
                trial_render(renderer, _cert(item), settings, label="DRY-RUN", today=today)
            except CertissuerError as exc:
                rejection = RejectedRow.of(item.source, item.row, exc)
                record(Outcome("rejected", item.source, item.row, rejection))
                continue
            record(Outcome("issued", item.source, item.row))


ERROR_REPORT_COLUMNS = ("file", "row", "field", "reason", "hint")
"""The columns of the error report, in order."""


def write_error_report(rejected: Iterable[RejectedRow], path: Path) -> None:
    """Write the rejected rows to `path` (CSV, or XLSX by its suffix), whole or not at all.

    The rows are written as they are read from `rejected` (openpyxl in write-only mode for
    XLSX), never all held at once, through `certissuer._tables` (CSV as UTF-8 with a byte
    order mark).
    """
    rows = (r.cells() for r in rejected)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".xlsx":
        book = new_workbook()
        sheet = book.create_sheet("errors")
        sheet.append(list(ERROR_REPORT_COLUMNS))
        for row in rows:
            sheet.append(row)
        save_workbook(book, path)
    else:
        write_csv(path, ERROR_REPORT_COLUMNS, rows)
