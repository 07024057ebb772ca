"""``certissuer report`` and ``certissuer export``: reports for the authorities, sector data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from certissuer._vn import VIETNAM_TZ
from certissuer.cli._app import app
from certissuer.cli._state import State, open_ledger, passphrase, say, token_key, warn
from certissuer.config import Settings
from certissuer.errors import InputError, LedgerError

if TYPE_CHECKING:
    from certissuer.ledger import Ledger, ReportKind
    from certissuer.report import ReportCheckpoint

__all__ = ["export_app", "export_sector", "report_activity", "report_annual", "report_app"]

report_app = typer.Typer(
    help="Reports for the authorities: annual report, activity report (form 5.BCHĐ).",
    no_args_is_help=True,
)
export_app = typer.Typer(help="Data exports for the provincial and sector databases.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(report_app, name="report")
app.add_typer(export_app, name="export")

_CheckpointOpt = Annotated[
    bool, typer.Option("--checkpoint", help="Sign a new ledger checkpoint first.")
]


def _report_checkpoint(state: State, ledger: Ledger, new: bool) -> None:
    # A report names the checkpoint it counts; --checkpoint signs a fresh one first.
    cp = ledger.latest_checkpoint()
    if new or cp is None:
        if cp is None and not new:
            raise LedgerError(
                "the ledger's log has no signed checkpoint yet",
                hint="pass --checkpoint to sign one now, or run 'certissuer ledger checkpoint'",
            )
        settings = state.settings()
        ledger.checkpoint(token_key(state), lab_code=settings.lab_code, at=datetime.now(UTC))
    elif cp.tree_size < ledger.log_size():
        warn(
            f"note: the newest checkpoint covers {cp.tree_size} of {ledger.log_size()} log "
            "events; the report counts those (pass --checkpoint to sign a new one first)"
        )


def _report_outputs(out: Path | None, xlsx: Path | None) -> None:
    if out is None and xlsx is None:
        raise InputError("report", "nothing to write", hint="give --out FILE.pdf and/or --xlsx")


def _write_report(
    settings: Settings,
    checkpoint: ReportCheckpoint,
    *,
    title: str,
    out: Path | None,
    xlsx: Path | None,
    write_xlsx: Callable[[Path], None],
    render: Callable[[str], bytes],
    record: _Record,
) -> None:
    # The workbook, then the PDF rendered with the signer's name, signed (PAdES) with the
    # checkpoint it counts, written whole and recorded in the ledger (issue 19).
    from certissuer.issue import load_sealer
    from certissuer.report.publish import publish_report

    # The key that signs the ledger's record: a profile without one is refused before
    # anything is written.
    key = token_key(record.state) if out is not None else None
    if xlsx is not None:
        write_xlsx(xlsx)
        say(f"wrote {xlsx}")
    if out is not None:
        assert key is not None
        with load_sealer(settings, passphrase(settings)) as sealer:
            publish_report(
                render(sealer.signer_name), sealer=sealer, ledger=record.ledger,
                ledger_key=key, checkpoint=checkpoint, kind=record.kind,
                period=record.period, title=title, location=settings.lab_place, out=out,
                now=datetime.now(UTC),
            )  # fmt: skip
        say(f"wrote {out}")
        say("recorded in the ledger")


@dataclass(frozen=True, slots=True)
class _Record:
    """What the ledger records of a report besides its file: who asks, where, what, when."""

    state: State
    ledger: Ledger
    kind: ReportKind
    period: tuple[date, date]


@report_app.command("annual")
def report_annual(
    ctx: typer.Context,
    year: Annotated[int, typer.Option(help="The year reported.")],
    until: Annotated[
        str | None, typer.Option(help="End the period on this day (YYYY-MM-DD).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The signed PDF.")] = None,
    xlsx: Annotated[Path | None, typer.Option(help="Every figure as an XLSX workbook.")] = None,
    paper_total: Annotated[
        int | None, typer.Option(help="Paper certificates in the archive (for the 2030 target).")
    ] = None,
    checkpoint: _CheckpointOpt = False,
) -> None:
    """The annual measurement report: tables, charts, digitisation progress, per lab."""
    from certissuer.ledger import ReportKind
    from certissuer.report import annual_report, render_annual_pdf, write_annual_xlsx

    state: State = ctx.obj
    _report_outputs(out, xlsx)
    try:
        end = date.fromisoformat(until) if until else None
    except ValueError:
        raise InputError("--until", f"expected a date YYYY-MM-DD, got '{until}'") from None
    settings = state.settings()
    ledger = open_ledger(settings, create=True)
    _report_checkpoint(state, ledger, checkpoint)
    data = annual_report(
        ledger.engine,
        year=year,
        until=end,
        paper_total=paper_total,
        instrument_types_file=settings.registry_instrument_types,
    )
    _write_report(
        settings, data.checkpoint, title=f"Báo cáo đo lường năm {year}",
        out=out, xlsx=xlsx, write_xlsx=lambda path: write_annual_xlsx(data, path),
        render=lambda name: render_annual_pdf(data, settings=settings, signer_name=name),
        record=_Record(state, ledger, ReportKind.ANNUAL, (data.start, data.until)),
    )  # fmt: skip
    cp = data.checkpoint
    say(f"{data.issued_total} certificates, {data.failed_total} failed verifications, "
        f"{data.revoked_total} revoked, {data.amended_total} amended, "
        f"{data.digitised_in_period} digitised")  # fmt: skip
    say(f"checkpoint {cp.tree_size} {cp.root_hash}")


@report_app.command("activity")
def report_activity(
    ctx: typer.Context,
    year: Annotated[int, typer.Option(help="The year reported.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The signed PDF.")] = None,
    xlsx: Annotated[Path | None, typer.Option(help="The figures as an XLSX workbook.")] = None,
    checkpoint: _CheckpointOpt = False,
) -> None:
    """The service provider's activity report (form 5.BCHĐ, Circular 24/2013/TT-BKHCN)."""
    from certissuer.ledger import ReportKind
    from certissuer.report import activity_report, render_activity_pdf, write_activity_xlsx

    state: State = ctx.obj
    _report_outputs(out, xlsx)
    settings = state.settings()
    ledger = open_ledger(settings, create=True)
    _report_checkpoint(state, ledger, checkpoint)
    data = activity_report(ledger.engine, year=year, lab_code=settings.lab_code,
                           settings=settings)  # fmt: skip
    _write_report(
        settings, data.checkpoint, title=f"Báo cáo hoạt động năm {year}",
        out=out, xlsx=xlsx, write_xlsx=lambda path: write_activity_xlsx(data, path),
        render=lambda name: render_activity_pdf(data, settings=settings, signer_name=name),
        record=_Record(state, ledger, ReportKind.ACTIVITY, (data.start, data.until)),
    )  # fmt: skip
    say(f"{data.verified_total} verified, {data.failed_total} failed, "
        f"{data.calibrated_total} calibrated in {year}")  # fmt: skip


@export_app.command("sector")
def export_sector(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="File (json, xlsx) or folder (csv).")],
    since: Annotated[
        str | None,
        typer.Option(help="Records changed on or after this date (YYYY-MM-DD, UTC) or time."),
    ] = None,
    cursor: Annotated[
        str | None, typer.Option(help="The cursor printed by the previous export.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, json or xlsx.")] = "json",
) -> None:
    """Certificates, instruments, standards and inspectors changed since a date or cursor."""
    from certissuer.report.sector import Cursor, SectorFormat, sector_export, write_sector_export

    state: State = ctx.obj
    try:
        kind = SectorFormat(fmt)
    except ValueError:
        raise InputError("--format", f"expected csv, json or xlsx, got '{fmt}'") from None
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            raise InputError("--since", f"expected a date YYYY-MM-DD, got '{since}'") from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    after = Cursor.parse(cursor) if cursor else None
    ledger = open_ledger(state.settings(), create=True)
    export = sector_export(ledger.engine, since=start, after=after,
                           today=datetime.now(VIETNAM_TZ).date())  # fmt: skip
    files = write_sector_export(export, kind, out)
    counts = ", ".join(f"{n} {t}" for t, n in export.header()["counts"].items())
    say(f"wrote {', '.join(str(f) for f in files)}: {counts}")
    say(f"cursor {export.cursor.text}")
