"""``certissuer hub report annual``: the plan's indicators in the hub's annual report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._state import say
from certissuer.cli.hub import DbOption
from certissuer.cli.hub_inspect import (
    PASSPHRASE_ENV,
    RevocationOption,
    department_sealer,
    report_app,
)
from certissuer.errors import ConfigError

__all__ = ["report_annual"]


@report_app.command("annual")
def report_annual(
    year: Annotated[int, typer.Option("--year", help="The year of the report.")],
    out: Annotated[Path | None, typer.Option("--out", help="The PDF to write.")] = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="The XLSX to write.")] = None,
    pkcs12: Annotated[
        Path | None,
        typer.Option(
            "--pkcs12",
            help=f"The Department's signing key (PKCS#12; passphrase in ${PASSPHRASE_ENV}).",
        ),
    ] = None,
    demand: Annotated[
        Path | None,
        typer.Option(
            "--demand",
            help="CSV 'type,count': the demand of instrument types the registers lack.",
        ),
    ] = None,
    paper: Annotated[
        Path | None,
        typer.Option(
            "--paper", help="CSV 'lab_code,paper_total': each lab's paper archive (certificates)."
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
    """The plan's indicators for YEAR: demand met per instrument type, each lab's
    digitisation against 2030, inspections and violations, hand-filled training and support;
    as a PDF signed with the Department's key and as XLSX."""
    from certissuer._files import write_atomic
    from certissuer.hub import Hub
    from certissuer.hub.annual import (
        hub_annual_report,
        read_demand,
        read_paper_totals,
        render_pdf,
        write_xlsx,
    )
    from certissuer.hub.inspection_report import Department

    if out is None and xlsx is None:
        raise ConfigError("nothing to write", hint="pass --out F.pdf and/or --xlsx F.xlsx")
    url = db or os.environ.get("CERTISSUER_HUB_DB")
    if not url:
        raise ConfigError("no hub database given", hint="pass --db URL or set $CERTISSUER_HUB_DB")
    wanted = read_demand(demand) if demand is not None else None
    papers = read_paper_totals(paper) if paper is not None else None
    hub = Hub.open(url)
    try:
        report = hub_annual_report(
            hub,
            year,
            demand=wanted,
            demand_file=demand.name if demand is not None else "",
            paper_totals=papers,
            paper_file=paper.name if paper is not None else "",
        )
    finally:
        hub.close()
    pdf = None
    if out is not None:  # signed first: a key that cannot sign leaves no file behind
        with department_sealer(pkcs12, revocation_check=revocation_check) as sealer:
            pdf = render_pdf(
                report, department=Department(department_vi, department_en, place), sealer=sealer
            )
    if xlsx is not None:
        write_xlsx(report, xlsx)
        say(f"wrote {xlsx}")
    if out is not None and pdf is not None:
        write_atomic(out, pdf)
        say(f"wrote {out}")
    unknown = sum(lab.paper_total is None for lab in report.labs)
    say(
        f"{year}: {report.issued_total} certificates issued over {len(report.types)} types, "
        f"{len(report.labs)} labs ({unknown} without a paper total), "
        f"{report.inspections.violations if report.inspections else 0} violations found"
    )
