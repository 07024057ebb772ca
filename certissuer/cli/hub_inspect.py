"""``certissuer hub inspect`` (inspection rounds) and ``certissuer hub report inspections``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from certissuer._vn import local_time
from certissuer.cli._state import say, warn
from certissuer.cli.hub import DbOption, hub_app, open_hub
from certissuer.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from certissuer.sign import Sealer

__all__ = [
    "RevocationOption",
    "department_sealer",
    "inspect_app",
    "report_app",
    "write_department_report",
]

inspect_app = typer.Typer(
    help="Inspection rounds (kiểm tra nhà nước về đo lường): open a round, record the "
    "instruments checked with the hub's verdict, close it.",
    no_args_is_help=True,
)
hub_app.add_typer(inspect_app, name="inspect")
report_app = typer.Typer(help="The hub's reports.", no_args_is_help=True)
hub_app.add_typer(report_app, name="report")

PASSPHRASE_ENV = "CERTISSUER_P12_PASSPHRASE"


RevocationOption = Annotated[
    bool,
    typer.Option(
        "--revocation-check/--no-revocation-check",
        help="Before signing, ask the Department's CA (CRL/OCSP) whether its certificate is "
        "revoked (default); --no-revocation-check skips that (a CA without reachable "
        "revocation services).",
    ),
]


@contextmanager
def department_sealer(
    pkcs12: Path | None, *, revocation_check: bool = True
) -> Iterator[Sealer | None]:
    """The Department's `Sealer` from its PKCS#12 file (passphrase from `PASSPHRASE_ENV`, or
    asked at a terminal), closed after use; None, with a warning, without a file: the hub's
    reports are then written unsigned. `revocation_check` False signs without asking the CA
    (the hub has no lab profile whose ``[signing] revocation_check`` would say so)."""
    if pkcs12 is None:
        warn("no --pkcs12: the PDF is not signed")
        yield None
        return
    from certissuer.errors import SigningError
    from certissuer.sign import Sealer, SigningPolicy

    secret = os.environ.get(PASSPHRASE_ENV)
    if secret is None and sys.stdin.isatty():
        secret = str(typer.prompt("PKCS#12 passphrase", hide_input=True))
    try:
        sealer = Sealer.from_pkcs12(
            pkcs12,
            secret.encode() if secret is not None else None,
            policy=SigningPolicy(revocation_check=revocation_check),
        )
    except SigningError as exc:
        if "revoked" not in str(exc) or exc.hint is None or "revocation_check" not in exc.hint:
            raise
        raise SigningError(
            str(exc),
            hint="start the Department CA's CRL/OCSP service (a trial PKI: certissuer "
            "trial-services KEYS_FOLDER), or pass --no-revocation-check",
        ) from None
    with sealer:
        yield sealer


def _day(text: str, option: str) -> date:
    from certissuer.hub.inspections import InspectionError

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InspectionError(f"{option}: expected a date as YYYY-MM-DD, got {text!r}") from None


@inspect_app.command("open")
def open_round(
    place: Annotated[str, typer.Option("--place", help="Where: market, shop, centre, address.")],
    on: Annotated[str, typer.Option("--date", help="The day of the round, YYYY-MM-DD.")],
    team: Annotated[str, typer.Option("--team", help='The team, comma-separated: "A, B".')],
    url: Annotated[
        str | None,
        typer.Option("--url", help="The hub's address, to print the phone page's link."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Open an inspection round; prints its id and inspector token (shown this once)."""
    from certissuer.hub.inspections import Inspections

    hub = open_hub(db)
    try:
        opened = Inspections(hub).open_round(place, _day(on, "--date"), team.split(","))
    finally:
        hub.close()
    rid = opened.round.id
    say(f"round {rid} opened: {opened.round.place}, {opened.round.on}, team {opened.round.team}")
    say(f"inspector token (shown once, keep it): {opened.inspector_token}")
    if url:
        say(f"phone page: {url.rstrip('/')}/inspect/{rid}#t={opened.inspector_token}")


@inspect_app.command("add")
def add_check(
    round_id: Annotated[int, typer.Argument(metavar="ROUND", help="The round's id.")],
    found: Annotated[
        str,
        typer.Option(
            "--found",
            help="What was found: none, no_certificate, expired, stamp_missing, altered, other.",
        ),
    ],
    token: Annotated[
        str | None, typer.Option("--token", help="The QR code's URL (or bare token).")
    ] = None,
    number: Annotated[str | None, typer.Option("--number", help="Certificate number.")] = None,
    serial: Annotated[str | None, typer.Option("--serial", help="Instrument serial.")] = None,
    lab: Annotated[
        str | None,
        typer.Option("--lab", help="The lab's code, when several labs use the same number."),
    ] = None,
    action: Annotated[str, typer.Option("--action", help="The action taken.")] = "",
    instrument: Annotated[
        str | None,
        typer.Option("--instrument", help="The instrument type, when no certificate names it."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Record one instrument checked in ROUND, with the verdict the hub gives it now."""
    from certissuer.hub.inspections import Inspections
    from certissuer.hub.verify import HUB_VERDICT_LABELS, HubVerdict

    hub = open_hub(db)
    try:
        check = Inspections(hub).add_check(
            round_id,
            token=token,
            number=number,
            serial=serial,
            found=found,
            action=action,
            instrument_type=instrument,
            lab_code=lab,
        )
    finally:
        hub.close()
    vi, en = HUB_VERDICT_LABELS[HubVerdict(check.verdict)]
    say(
        f"check {check.id} in round {round_id}: {check.number or '-'} "
        f"({check.serial or '-'}): {vi} / {en}; found {check.found}"
    )


@inspect_app.command("close")
def close_round(
    round_id: Annotated[int, typer.Argument(metavar="ROUND", help="The round's id.")],
    db: DbOption = None,
) -> None:
    """Close ROUND: no more checks; its inspector token stops working."""
    from certissuer.hub.inspections import Inspections

    hub = open_hub(db)
    try:
        rnd = Inspections(hub).close_round(round_id)
    finally:
        hub.close()
    closed = f"{local_time(rnd.closed_at):%Y-%m-%d %H:%M} (UTC+7)" if rnd.closed_at else "now"
    say(f"round {round_id} closed at {closed}")


def write_department_report(
    *,
    out: Path | None,
    xlsx: Path | None,
    pkcs12: Path | None,
    revocation_check: bool,
    render_pdf: Callable[[Sealer | None], bytes],
    write_xlsx: Callable[[Path], None],
) -> None:
    """Write a hub report: the PDF `render_pdf` makes, signed with the Department's key
    (`department_sealer`), to `out`, and the workbook to `xlsx`. The PDF is signed before any
    file is written, so a key that cannot sign leaves no file behind."""
    from certissuer._files import write_atomic

    pdf = None
    if out is not None:
        with department_sealer(pkcs12, revocation_check=revocation_check) as sealer:
            pdf = render_pdf(sealer)
    if xlsx is not None:
        write_xlsx(xlsx)
        say(f"wrote {xlsx}")
    if out is not None and pdf is not None:
        write_atomic(out, pdf)
        say(f"wrote {out}")


@report_app.command("inspections")
def report_inspections(
    year: Annotated[int, typer.Option("--year", help="The year of the rounds.")],
    out: Annotated[Path | None, typer.Option("--out", help="The PDF to write.")] = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="The XLSX to write.")] = None,
    pkcs12: Annotated[
        Path | None,
        typer.Option(
            "--pkcs12",
            help=f"The Department's signing key (PKCS#12; passphrase in ${PASSPHRASE_ENV}).",
        ),
    ] = None,
    department_vi: Annotated[
        str, typer.Option("--department", help="The Department's name, Vietnamese.")
    ] = "Sở Khoa học và Công nghệ",
    department_en: Annotated[
        str, typer.Option("--department-en", help="The Department's name, English.")
    ] = "Department of Science and Technology",
    place: Annotated[str, typer.Option("--place", help="The province, for the date line.")] = (
        "Đồng Tháp"
    ),
    revocation_check: RevocationOption = True,
    db: DbOption = None,
) -> None:
    """The year's inspections: counts by place, kind of violation and instrument type, as a
    PDF signed with the Department's key and as XLSX."""
    from certissuer.hub.inspection_report import (
        Department,
        inspection_report,
        render_pdf,
        write_xlsx,
    )
    from certissuer.hub.inspections import Inspections

    if out is None and xlsx is None:
        raise ConfigError("nothing to write", hint="pass --out F.pdf and/or --xlsx F.xlsx")
    hub = open_hub(db)
    try:
        report = inspection_report(Inspections(hub), year)
    finally:
        hub.close()
    department = Department(department_vi, department_en, place)
    write_department_report(
        out=out,
        xlsx=xlsx,
        pkcs12=pkcs12,
        revocation_check=revocation_check,
        render_pdf=lambda sealer: render_pdf(report, department=department, sealer=sealer),
        write_xlsx=lambda path: write_xlsx(report, path),
    )
    say(
        f"{year}: {report.rounds} rounds, {report.checks} instruments checked, "
        f"{report.violations} violations"
    )
