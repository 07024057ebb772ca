"""``certissuer registry`` and ``certissuer recall``: the measurement register and what is due."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from certissuer._vn import VIETNAM_TZ
from certissuer.cli._app import app
from certissuer.cli._state import State, open_ledger, print_table, say, warn
from certissuer.config import Settings
from certissuer.errors import InputError, LedgerError

if TYPE_CHECKING:
    from certissuer.registry import Register

__all__ = [
    "recall",
    "registry_add",
    "registry_app",
    "registry_export",
    "registry_import",
    "registry_list",
    "registry_show",
    "registry_used_by",
]

registry_app = typer.Typer(
    help=(
        "The measurement register: lab, scope, testing-scope, type, owner, instrument, "
        "standard, person, stamp."
    ),
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")
_PartArg = Annotated[
    str,
    typer.Argument(
        help="lab, scope, testing-scope, type, owner, instrument, standard, person or stamp "
        "(stock)."
    ),
]


def _open_register(settings: Settings) -> Register:
    """The register of the lab `settings` describe, in its ledger (created or upgraded)."""
    from certissuer.registry import Register

    return Register(
        open_ledger(settings, create=True).engine,
        lab_code=settings.lab_code,
        instrument_types=settings.registry_instrument_types,
        outside_scope=settings.registry_outside_scope,
    )


@registry_app.command("list")
def registry_list(
    ctx: typer.Context,
    part: _PartArg,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 50,
) -> None:
    """List what the register holds of PART (this lab's rows)."""
    from certissuer.registry import KINDS

    register = _open_register(ctx.obj.settings())
    rows = register.list(part, limit=limit)
    print_table(
        [c.name for c in KINDS[part].columns],
        (row.values() for row in rows),  # type: ignore[misc]
        title=f"registry: {part}",
        keep=("code", "serial", "valid_until", "calibration_due"),
    )


@registry_app.command("show")
def registry_show(
    ctx: typer.Context,
    part: _PartArg,
    key: Annotated[list[str], typer.Argument(help="The key columns' values, in order.")],
) -> None:
    """Show one row of PART by its key (lab: code; instrument: owner_code type_code serial)."""
    from certissuer.registry import KINDS

    row = _open_register(ctx.obj.settings()).find(part, key)
    if row is None:
        raise LedgerError(
            f"no {part} with {', '.join(KINDS[part].key)} = {' '.join(key)} in the register",
            hint=f"see 'certissuer registry list {part}'",
        )
    for name, value in row.model_dump().items():
        say(f"{name:20} {'' if value is None else value}")


@registry_app.command("add")
def registry_add(
    ctx: typer.Context,
    part: _PartArg,
    values: Annotated[list[str], typer.Argument(help="column=value pairs.")],
) -> None:
    """Add (or update, by its key) one row of PART: certissuer registry add person name=…"""

    pairs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise InputError("registry add", f"expected column=value, got '{item}'")
        pairs[name.strip()] = value
    _open_register(ctx.obj.settings()).add(part, pairs)
    say(f"added {part}")


@registry_app.command("import")
def registry_import(
    ctx: typer.Context,
    part: _PartArg,
    file: Annotated[Path, typer.Argument(help="CSV or XLSX file, one header row.")],
) -> None:
    """Import rows of PART from FILE; bad rows are reported (file, row, field) and skipped."""

    report = _open_register(ctx.obj.settings()).import_file(part, file)
    for error in report.errors:
        hint = f" (hint: {error.hint})" if error.hint else ""
        warn(f"rejected: {error}{hint}")
    say(f"{report.imported} imported, {len(report.errors)} rejected")
    raise typer.Exit(code=2 if report.errors else 0)


@registry_app.command("export")
def registry_export(
    ctx: typer.Context,
    part: _PartArg,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="A .csv or .xlsx file.")],
) -> None:
    """Write the rows of PART to a CSV or XLSX file that can be imported again."""

    count = _open_register(ctx.obj.settings()).export_file(part, out_file)
    say(f"wrote {count} rows to {out_file}")


@registry_app.command("used-by")
def registry_used_by(
    ctx: typer.Context,
    standard: Annotated[
        str, typer.Argument(help="The standard's register code, serial or certificate number.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The certificates that used a reference STANDARD (for when it is found faulty)."""
    import json

    rows = _open_register(ctx.obj.settings()).used_by(standard)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "certificate": use.certificate_number,
                        "used_on": use.used_on.isoformat(),
                        "standard": std.code,
                        "serial": std.serial,
                        "standard_certificate": use.standard_certificate,
                        "calibration_due": (
                            use.calibration_due.isoformat() if use.calibration_due else None
                        ),
                    }
                    for std, use in rows
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    print_table(
        ("certificate", "used on", "standard", "serial", "standard's certificate", "due"),
        (
            (
                use.certificate_number,
                use.used_on,
                std.code,
                std.serial,
                use.standard_certificate,
                use.calibration_due,
            )
            for std, use in rows
        ),
        title=f"certificates that used {standard}",
        keep=("certificate", "used on", "serial", "due"),
    )
    say(f"{len(rows)} certificate{'' if len(rows) == 1 else 's'} used {standard}")


@app.command()
def recall(
    ctx: typer.Context,
    within: Annotated[str, typer.Option(help="Window: 30d, 6w, 3m.")] = "30d",
    owner: Annotated[str | None, typer.Option(help="One owner (code or name).")] = None,
    type_code: Annotated[str | None, typer.Option("--type", help="One instrument type.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, xlsx or pdf.")] = "table",
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="File for csv/xlsx/pdf.")
    ] = None,
    today: Annotated[str | None, typer.Option(help="Count from this date (YYYY-MM-DD).")] = None,
) -> None:
    """Instruments whose certificate expires within the window or has expired, by owner."""
    from certissuer.registry import parse_window
    from certissuer.registry.recall import COLUMNS, RecallFormat, recall_rows, write_recall

    state: State = ctx.obj
    try:
        kind = RecallFormat(fmt)
        day = date.fromisoformat(today) if today else datetime.now(VIETNAM_TZ).date()
    except ValueError as exc:
        raise InputError("recall", f"{exc}", hint="--format table|csv|xlsx|pdf") from None
    if kind is not RecallFormat.TABLE and out_file is None:
        raise InputError("recall", f"--format {fmt} needs --out FILE")
    settings = state.settings()
    result = _open_register(settings).recall(
        within_days=parse_window(within, day), today=day, owner=owner, type_code=type_code
    )
    if kind is RecallFormat.TABLE:
        lines = []
        for row in recall_rows(result, lab_code=settings.lab_code):
            r = dict(zip(COLUMNS, row, strict=True))
            lines.append((
                r["owner_name"] or r["owner_code"], r["type_name"] or r["name"], r["serial"],
                r["place_of_use"], r["last_certificate"], r["valid_until"], r["status"],
            ))  # fmt: skip
        print_table(
            ("owner", "type", "serial", "place of use", "certificate", "valid until", "status"),
            lines,
            title=f"due by {result.until}",
            keep=("serial", "certificate", "valid until", "status"),
        )
    else:
        assert out_file is not None
        write_recall(result, kind, out_file, settings=settings)
        say(f"wrote {out_file}")
    say(f"{result.count} instruments of {len(result.groups)} owners, "
        f"{len(result.standards)} standards due by {result.until}")  # fmt: skip
