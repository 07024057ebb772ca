"""``certissuer batch``: many certificates in one run, or a paper archive digitised.

Also the one presentation of a run's report (`show_run`), which ``certissuer issue`` prints
too: the same lines, and with ``--json`` the same JSON shape, for every run.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from certissuer.cli._app import app
from certissuer.cli._state import State, err, passphrase, say, secrets, warn
from certissuer.config import Settings

if TYPE_CHECKING:
    from certissuer import batch

__all__ = ["batch_app", "batch_digitise", "batch_issue", "run_json", "show_run"]

batch_app = typer.Typer(
    help="Batch runs: many certificates, or a paper archive.", no_args_is_help=True
)
app.add_typer(batch_app, name="batch")

_JobsOpt = Annotated[int, typer.Option("--jobs", "-j", help="Worker processes (default: cores).")]
_OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the signed PDFs.")]
_DryOpt = Annotated[bool, typer.Option("--dry-run", help="Validate everything, issue nothing.")]
_QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
_ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Error report (.csv or .xlsx); default OUT/batch-errors.csv."),
]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON report.")]

_SHOWN_REJECTIONS = 20
"""Rejected rows printed on standard error; the error report (batch) holds them all."""


def run_json(report: batch.RunReport, settings: Settings) -> dict[str, Any]:
    """The JSON report of a run: one shape for ``issue``, ``batch issue`` and ``batch
    digitise``. Each certificate is its ledger entry in the ledger's one JSON shape
    (`certissuer.report.export.entry_row`, as ``ledger list --json`` prints it) with its
    verification URL and whether an earlier run had issued it."""
    from certissuer import batch
    from certissuer.report.export import entry_row

    return {
        "issued": [
            {
                "entry": entry_row(entry, status),
                "url": done.url,
                "reused": done.reused,
                "remark": done.remark,
                "level": done.level,
                "tsa_failure": done.tsa_failure,
            }
            for done, entry, status in report.ledger_entries(settings)
        ],
        "rejected": [
            {
                **dict(zip(batch.ERROR_REPORT_COLUMNS, r.cells(), strict=True)),
                "exit_code": r.exit_code,
            }
            for r in report.rejected
        ],
        "counts": {
            "issued": report.issued,
            "already": report.already,
            "rejected": report.rejected_rows,
            "skipped": report.skipped,
            "completed": report.completed,
            "notices": report.notices,
            "downgraded": len(report.downgraded),
        },
        "checks": {"ran": report.checks_ran, "no_data": report.checks_no_data},
        "dry_run": report.dry_run,
        "checkpoint": report.checkpoint.to_json() if report.checkpoint else None,
        "error_report": str(report.error_report) if report.error_report else None,
        "exit_code": report.exit_code,
    }


_XML_PLACE = re.compile(r"\.xml(, (item|line) \d+)?$", re.IGNORECASE)


def _place(source: str, row: int) -> str:
    """Where a rejected record is: "FILE, row N" for a table's row; an XML document (a DCC)
    has no rows, so its place as the error gives it ("FILE, item 1", "FILE, line 12")."""
    if _XML_PLACE.search(source):
        return source
    return f"{source}, row {row}"


def show_run(report: batch.RunReport, settings: Settings, *, as_json: bool) -> int:
    """Print `report` (JSON with `as_json`) and return the run's exit code.

    Rejected rows go to standard error in both forms, each with its file, row and field.
    """
    for r in report.rejected[:_SHOWN_REJECTIONS]:
        where = _place(r.source, r.row) + (f", field '{r.field}'" if r.field else "")
        warn(f"rejected: {where}: {r.reason}" + (f" (hint: {r.hint})" if r.hint else ""))
    if len(report.rejected) > _SHOWN_REJECTIONS:
        warn(f"... and {len(report.rejected) - _SHOWN_REJECTIONS} more")
    for done in report.downgraded:
        why = f"no time-stamping authority answered ({done.tsa_failure})"
        warn(f"{done.number}: {why}; signed at B-B")
    if report.error_report is not None:
        warn(f"error report: {report.error_report}")
    if report.all_or_nothing and report.rejected:
        warn(
            f"error: nothing was issued: {report.rejected_rows} record(s) rejected; "
            "fix them and run again"
        )
    if as_json:
        typer.echo(json.dumps(run_json(report, settings), ensure_ascii=False, indent=2))
        return report.exit_code
    for done in report.certificates:
        note = (
            f" (already issued{'; ' + done.remark if done.remark else ''})" if done.reused else ""
        )
        say(f"issued {done.number}  {done.path}{note}")
    verb = "would be issued" if report.dry_run else "issued"
    say(
        f"{report.issued} {verb}, "
        + (
            f"{report.notices} notice{'s' if report.notices > 1 else ''} of failure issued, "
            if report.notices
            else ""
        )
        + f"{report.already} already issued, {report.rejected_rows} rejected"
        + (
            f" ({len(report.rejected)} problems)"
            if len(report.rejected) > report.rejected_rows
            else ""
        )
        + (f", {report.skipped} being issued elsewhere" if report.skipped else "")
        + (f", {report.completed} completed after a crash" if report.completed else "")
        + (
            f", {len(report.downgraded)} signed at B-B (no time-stamping authority answered)"
            if report.downgraded
            else ""
        )
        + f" ({report.elapsed:.1f} s)"
    )
    if report.checks_ran:
        say(f"checks run: {', '.join(report.checks_ran)}")
    for name, why in report.checks_no_data.items():
        say(f"check not run: {name}: {why}")
    if report.checkpoint is not None:
        cp = report.checkpoint
        say(f"checkpoint {cp.id}: size {cp.tree_size}, root {cp.root_hash}")
    return report.exit_code


def _progress_printer(total: int | None, verb: str) -> Callable[[batch.Progress], None]:
    # Without a terminal: one plain line every five seconds.
    last = {"t": 0.0}

    def plain(p: batch.Progress) -> None:
        now = time.monotonic()
        if now - last["t"] >= 5:
            last["t"] = now
            of = f"/{total}" if total else ""
            warn(
                f"batch: {p.done}{of} rows, {p.issued} {verb}, {p.already} already "
                f"issued, {p.rejected} rejected, {p.rate:.1f} rows/s"
            )

    return plain


@contextmanager
def _progress(
    quiet: bool, total: int | None, *, dry_run: bool = False
) -> Iterator[Callable[[Any], None] | None]:
    """A progress bar on a terminal, plain lines elsewhere, nothing when `quiet`."""
    if quiet:
        yield None
        return
    if not err.is_terminal:
        yield _progress_printer(total, "would be issued" if dry_run else "issued")
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )
    task = bar.add_task("checking" if dry_run else "issuing", total=total, rate=0.0)
    with bar:
        yield lambda p: bar.update(task, completed=p.done, rate=p.rate)


def _batch(ctx: typer.Context, items: Iterable[Any], total: int | None) -> None:
    """Run `items` with the options of the batch command in `ctx`, print, exit."""
    from certissuer import batch

    state: State = ctx.obj
    options = ctx.params
    settings = state.settings()
    out: Path = options["out"]
    with _progress(options["quiet"], total, dry_run=options["dry_run"]) as on_progress:
        signing = passphrase(settings)
        report = batch.run_batch(
            items,
            settings=settings,
            passphrase=signing,
            secret=secrets(settings, signing),
            out_dir=out,
            jobs=options["jobs"] or (os.cpu_count() or 1),
            dry_run=options["dry_run"],
            error_report=options["report"] or out / "batch-errors.csv",
            on_progress=on_progress,
        )
    raise typer.Exit(code=show_run(report, settings, as_json=options["as_json"]))


@batch_app.command("issue")
def batch_issue(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="XLSX, CSV, JSON or XML files, or folders.")],
    out: _OutOpt = Path("out"),
    jobs: _JobsOpt = 0,
    dry_run: _DryOpt = False,
    quiet: _QuietOpt = False,
    report: _ReportOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Issue every good certificate in the inputs; report bad rows; rerun to resume."""
    from certissuer import batch

    _batch(ctx, batch.issue_items(inputs), batch.count_rows(inputs))


@batch_app.command("digitise")
def batch_digitise(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="Manifest of paper certificates (CSV/XLSX).")],
    scans: Annotated[Path, typer.Option("--scans", help="Folder holding the scan files.")],
    out: _OutOpt = Path("out"),
    jobs: _JobsOpt = 0,
    dry_run: _DryOpt = False,
    quiet: _QuietOpt = False,
    report: _ReportOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Turn scanned paper certificates into signed, QR-verifiable electronic copies."""
    from certissuer import batch

    _batch(ctx, batch.digitise_items(manifest, scans), batch.count_rows([manifest]))
