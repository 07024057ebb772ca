"""``certissuer dcc``: the machine-readable certificate (PTB DCC 3.1.2 XML, or 3.3.0)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certissuer._files import write_atomic
from certissuer.cli._app import app
from certissuer.cli._state import State, open_ledger, warn
from certissuer.errors import ConfigError, InputError, LedgerError, VerificationFailed

__all__ = ["dcc_app", "dcc_check", "dcc_export", "dcc_extract"]

dcc_app = typer.Typer(
    help="Machine-readable certificates: PTB DCC XML (3.1.2; 3.3.0 on export).",
    no_args_is_help=True,
)
app.add_typer(dcc_app, name="dcc")

_OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write the XML here, not to stdout.")
]


def _write_bytes(data: bytes, out: Path | None) -> None:
    if out is None:
        typer.echo(data, nl=False)
        return
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the file ({exc.strerror})") from None
    warn(f"wrote {out}")


@dcc_app.command("extract")
def dcc_extract(
    pdf: Annotated[Path, typer.Argument(help="A certificate PDF.")],
    out: _OutOpt = None,
) -> None:
    """Write out the DCC XML embedded in a certificate PDF, byte for byte as it was signed."""
    from certissuer import dcc

    try:
        data = pdf.read_bytes()
    except OSError as exc:
        raise VerificationFailed(f"{pdf}: cannot read the file ({exc.strerror})") from None
    if b"%PDF-" not in data[:1024]:
        raise VerificationFailed(f"{pdf}: the file is not a PDF (no %PDF- header)")
    xml = dcc.extract(data)
    if xml is None:
        raise VerificationFailed(
            f"{pdf}: the PDF carries no DCC",
            hint="'certissuer dcc export NUMBER' rebuilds it from the ledger",
        )
    _write_bytes(xml, out)


@dcc_app.command("export")
def dcc_export(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Certificate number, e.g. HC-2026-000001.")],
    out: _OutOpt = None,
    schema_version: Annotated[
        str,
        typer.Option(
            "--schema-version",
            help="DCC schema version: 3.1.2 (as embedded in the PDF) or 3.3.0 ('newest').",
        ),
    ] = "3.1.2",
) -> None:
    """Write the DCC XML of an issued certificate, rebuilt from the ledger's data."""
    from certissuer import dcc

    try:  # a bad option (exit 2), before anything is opened
        version = dcc.check_write_version(schema_version)
    except dcc.DccError as exc:
        raise InputError("--schema-version", str(exc)) from None
    state: State = ctx.obj
    settings = state.settings()
    entry = open_ledger(settings).get(number)
    if entry is None:
        raise LedgerError(
            f"certificate {number} is not in the ledger",
            hint="'certissuer ledger list' shows what is",
        )
    _write_bytes(dcc.export_entry(entry, settings, version=version), out)


@dcc_app.command("check")
def dcc_check(
    xml: Annotated[Path, typer.Argument(help="A DCC XML document.")],
) -> None:
    """Check the XML signatures of a DCC document: intact, BROKEN or not checked.

    An intact signature names its signer; the signer's certificate is not checked against a
    trust list. Exit code 0: intact, or no signature; 1: a signature is broken; 8: one could not
    be checked (an algorithm certissuer does not check).
    """
    from certissuer import dcc
    from certissuer.dcc import xmlsig

    where = str(xml)
    try:
        raw = xml.read_bytes()
    except OSError as exc:
        raise VerificationFailed(f"{xml}: cannot read the file ({exc.strerror})") from None
    dcc.parse_root(raw, where=where)
    checks = xmlsig.check_signatures(raw, where=where)
    for check in checks:
        typer.echo(f"{where}, line {check.sourceline}: {check.line}")
    if not checks:
        typer.echo(f"{where}: {xmlsig.NO_SIGNATURE}")
    states = {c.state for c in checks}
    raise typer.Exit(code=1 if "broken" in states else 8 if "unchecked" in states else 0)
