"""``certissuer hub report annual``: the plan's indicators in the hub's annual report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._state import say
from certissuer.cli.hub import DbOption, open_hub
from certissuer.cli.hub_inspect import (
    PASSPHRASE_ENV,
    RevocationOption,
    report_app,
    write_department_report,
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
    wanted = read_demand(demand) if demand is not None else None
    papers = read_paper_totals(paper) if paper is not None else None
    hub = open_hub(db)
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
    department = Department(department_vi, department_en, place)
    write_department_report(
        out=out,
        xlsx=xlsx,
        pkcs12=pkcs12,
        revocation_check=revocation_check,
        render_pdf=lambda sealer: render_pdf(report, department=department, sealer=sealer),
        write_xlsx=lambda path: write_xlsx(report, path),
    )
    unknown = sum(lab.paper_total is None for lab in report.labs)
    say(
        f"{year}: {report.issued_total} certificates issued over {len(report.types)} types, "
        f"{len(report.labs)} labs ({unknown} without a paper total), "
        f"{report.inspections.violations if report.inspections else 0} violations found"
    )
