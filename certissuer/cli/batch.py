"""``certissuer batch``: many certificates in one run, or a paper archive digitised."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from certissuer.cli._app import app
from certissuer.cli._state import State, err, passphrase, say, warn

if TYPE_CHECKING:
    from certissuer import batch

__all__ = ["batch_app", "batch_digitise", "batch_issue"]

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


def _progress_printer(total: int | None) -> Callable[[batch.Progress], None]:
    # Without a terminal: one plain line every five seconds.
    last = {"t": 0.0}

    def plain(p: batch.Progress) -> None:
        now = time.monotonic()
        if now - last["t"] >= 5:
            last["t"] = now
            of = f"/{total}" if total else ""
            warn(
                f"batch: {p.done}{of} rows, {p.issued} issued, {p.already} already "
                f"issued, {p.rejected} rejected, {p.rate:.1f} rows/s"
            )

    return plain


def _run_batch(
    state: State,
    items: Iterable[Any],
    total: int | None,
    *,
    out: Path,
    jobs: int,
    dry_run: bool,
    quiet: bool,
    report_path: Path | None,
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from certissuer import batch

    settings = state.settings()
    key_passphrase = passphrase(settings)
    bar: Progress | None = None
    on_progress: Callable[[batch.Progress], None] | None = None
    if not quiet and err.is_terminal:
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f}/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        task = bar.add_task("issuing", total=total, rate=0.0)
        shown = bar

        def on_progress(p: batch.Progress) -> None:
            shown.update(task, completed=p.done, rate=p.rate)
    elif not quiet:
        on_progress = _progress_printer(total)
    if bar is not None:
        bar.start()
    try:
        result = batch.run_batch(
            items,
            settings=settings,
            passphrase=key_passphrase,
            out_dir=out,
            jobs=jobs,
            dry_run=dry_run,
            on_progress=on_progress,
        )
    finally:
        if bar is not None:
            bar.stop()
    if result.rejected:
        path = report_path or out / "batch-errors.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        batch.write_error_report(result.rejected, path)
        for r in result.rejected[:20]:
            warn(
                f"rejected: {r.source}, row {r.row}"
                + (f", field '{r.field}'" if r.field else "")
                + f": {r.reason}"
            )
        if len(result.rejected) > 20:
            warn(f"... and {len(result.rejected) - 20} more")
        warn(f"error report: {path}")
    verb = "would issue" if dry_run else "issued"
    say(
        f"{verb} {result.issued}, already issued {result.already}, "
        f"rejected {result.rejected_rows}, being issued elsewhere {result.skipped}"
        + (f", completed after a crash {result.completed}" if result.completed else "")
        + f" ({result.elapsed:.1f} s)"
    )
    raise typer.Exit(code=2 if result.rejected else 0)


@batch_app.command("issue")
def batch_issue(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="XLSX, CSV, JSON or XML files, or folders.")],
    out: _OutOpt = Path("out"),
    jobs: _JobsOpt = 0,
    dry_run: _DryOpt = False,
    quiet: _QuietOpt = False,
    report: _ReportOpt = None,
) -> None:
    """Issue every certificate in the inputs; report bad rows; rerun to resume."""
    from certissuer import batch

    _run_batch(
        ctx.obj,
        batch.issue_items(inputs),
        batch.count_rows(inputs),
        out=out,
        jobs=jobs or (os.cpu_count() or 1),
        dry_run=dry_run,
        quiet=quiet,
        report_path=report,
    )


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
) -> None:
    """Turn scanned paper certificates into signed, QR-verifiable electronic copies."""
    from certissuer import batch

    _run_batch(
        ctx.obj,
        batch.digitise_items(manifest, scans),
        batch.count_rows([manifest]),
        out=out,
        jobs=jobs or (os.cpu_count() or 1),
        dry_run=dry_run,
        quiet=quiet,
        report_path=report,
    )
