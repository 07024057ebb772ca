"""``certissuer verify``: the verdict on a certificate PDF or a scanned QR code."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from certissuer._vn import VIETNAM_TZ, dmy, local_time
from certissuer.cli._app import app, skip_teardown
from certissuer.cli._state import State, out, say, warn
from certissuer.cli._state import open_ledger as open_lab_ledger
from certissuer.errors import (
    ConfigError,
    ForeignLedger,
    LedgerError,
    TokenError,
    VerificationFailed,
)

if TYPE_CHECKING:
    from certissuer.ledger import Ledger
    from certissuer.verify import Report

__all__ = ["verify"]


@app.command()
def verify(
    ctx: typer.Context,
    pdf: Annotated[Path | None, typer.Argument(help="The certificate PDF to check.")] = None,
    qr: Annotated[str | None, typer.Option("--qr", help="Check a QR URL or token.")] = None,
    offline: Annotated[
        bool,
        typer.Option(
            help="Do not consult the ledger. With --qr a genuine token is QR GENUINE, LEDGER "
            "NOT CONSULTED; a PDF whose signatures check is FILE GENUINE, LEDGER NOT "
            "CONSULTED (exit 10 both); a forged token or file is NOT GENUINE (exit 1)."
        ),
    ] = False,
    token_key: Annotated[
        Path | None, typer.Option(help="The lab's token public key (PEM) for --qr.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    at: Annotated[
        datetime | None,
        typer.Option(
            formats=[
                "%Y-%m-%d",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S%z",
                "%Y-%m-%dT%H:%M:%S.%f%z",
            ],
            help="Judge the certificate as of this time (ISO 8601; without an offset, "
            "Vietnam's time, UTC+7): its signatures, its validity dates and the ledger's "
            "status then.",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds checking the PDF may take; beyond: exit 8, could not check. "
            "Default: \\[web] pdf_timeout (10); 0: no time or memory limit.",
        ),
    ] = None,
    memory_mb: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Address space the check may use, in MiB; beyond: exit 8, could not check. "
            "Default: \\[web] pdf_memory_mb (1024).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="With --qr: refuse (exit 6) a URL that is not on the lab's verification page "
            "(\\[token] url_base) instead of warning."
        ),
    ] = False,
) -> None:
    """Say whether a certificate is genuine, unaltered and current (exit 0 only if so).

    A genuine QR token or PDF whose status the ledger did not give (--offline, or the ledger
    could not be opened or read, with a warning) exits 10: the lab signed it, whether it is
    still in force is not known.

    A PDF is checked in a child process under the same time and memory bounds as the web
    page's workers; overrunning them is exit 8 (could not check), not a verdict.
    """
    from certissuer.token import wrong_host
    from certissuer.verify import NOT_CONSULTED, describe

    state: State = ctx.obj
    if (pdf is None) == (qr is None):
        raise ConfigError("give either a PDF file or --qr URL")
    settings = state.settings()
    # A time a person types is Vietnam's (one clock for people), as `keys compromised` reads it.
    moment = at if at is None or at.tzinfo else at.replace(tzinfo=VIETNAM_TZ)

    opened: list[Ledger] = []

    def open_ledger() -> Ledger | None:
        if offline:
            return None
        opened.append(open_lab_ledger(settings))
        return opened[-1]

    def unreachable(exc: LedgerError) -> None:
        # A ledger out of reach leaves what the token or file proves itself: genuine, ledger
        # not consulted (exit 10), never NOT IN THE LEDGER. Another lab's ledger is no outage:
        # it is refused (exit 7) like everywhere else.
        warn(f"warning: the ledger could not be reached: {' '.join(str(exc).split())}")

    if qr is not None:
        from certissuer.verify import Verifier

        if elsewhere := wrong_host(qr, settings.token_url_base):
            if strict:
                raise TokenError(
                    f"refused (--strict): {elsewhere}",
                    hint="check the QR code's source; a look-alike page can show anything",
                )
            warn(f"warning: {elsewhere}")
        no_ledger = "the ledger was not consulted (offline)"
        try:
            ledger = open_ledger()
        except ForeignLedger:
            raise
        except LedgerError as exc:
            unreachable(exc)
            ledger = None
            no_ledger = f"the ledger could not be reached ({' '.join(str(exc).split())})"
        verifier = Verifier.from_settings(settings, ledger=ledger, token_public=token_key)
        report = verifier.verify_url(qr, at=moment, no_ledger=no_ledger)
    else:
        from certissuer.verify import verify_pdf_bounded

        assert pdf is not None
        try:
            data = pdf.read_bytes()
        except OSError as exc:
            raise VerificationFailed(f"{pdf}: cannot read the file ({exc.strerror})") from None
        seconds = settings.web_pdf_timeout if timeout is None else timeout
        memory = settings.web_pdf_memory_mb if memory_mb is None else memory_mb
        # The ledger is opened while a child process reads the file (see verify_pdf_bounded).
        report = verify_pdf_bounded(
            settings,
            data,
            ledger=open_ledger,
            token_public=token_key,
            at=moment,
            timeout=seconds,
            memory_bytes=0 if seconds == 0 else memory * (1 << 20),
            name=str(pdf),
            unreachable=unreachable,
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        offline = report.verdict in NOT_CONSULTED
        colour = "green" if report.ok or report.genuine_report else "yellow" if offline else "red"
        what = str(pdf) if pdf is not None else "QR"
        out.print(f"[bold {colour}]{report.label_vi} / {report.label_en}[/]  {escape(what)}")
        if report.number:
            say(f"  number:  {report.number}")
        if offline:
            # What the signed token itself proves, with no ledger behind it.
            if report.issue_date is not None:
                say(f"  issued:  {dmy(report.issue_date)}")
            if report.token_digest:
                say(f"  data digest (SHA-256, first 128 bits): {report.token_digest}")
            if report.token_kid:
                say(f"  token key:  {report.token_kid}")
        if report.ended is not None:
            say(f"  {report.ended[0]} / {report.ended[1]}")
        _say_report(report)
        for reason in report.reasons:
            say(f"  - {reason}")
        for info in report.signatures:
            for line in describe(info):
                say(f"  {line}")
    for ledger in opened:
        ledger.engine.dispose()  # its connections say goodbye to the server now
    skip_teardown()  # everything is printed, the checking child reaped
    raise typer.Exit(code=report.exit_code)


def _say_report(report: Report) -> None:
    """The lines of a report of the lab (issue 19): what it is, who signed it, when, and the
    checkpoint it counts; nothing for a certificate."""
    if report.genuine_report:
        say(f"  report:  {report.report_kind} · {report.report_period} · {report.report_title}")
        if report.report_issued_at is not None:
            when = local_time(report.report_issued_at)
            say(f"  issued:  {when:%d/%m/%Y %H:%M:%S} (UTC+7) by {report.report_signer}")
    if report.checkpoint:
        say(f"  checkpoint:  {report.checkpoint}")
