"""The ``certissuer`` command: a thin Typer face over the library.

Each command parses its options, loads `Settings`, calls the library and prints. Errors are
worded in one place, `_reported_errors`; stack traces appear only with ``--verbose``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from certissuer import intake
from certissuer.config import DEFAULT_CONFIG_NAME, Settings, load_settings, starter_config
from certissuer.errors import CertissuerError, ConfigError, IssueRefused, LedgerError
from certissuer.ledger import Ledger

app = typer.Typer(
    name="certissuer",
    help="Issue and verify signed, QR-verifiable measurement certificates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ledger_app = typer.Typer(help="Look at what the ledger holds.", no_args_is_help=True)
keys_app = typer.Typer(help="Make keys for a lab (demo and trial PKI).", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(keys_app, name="keys")

_err = Console(stderr=True)
_out = Console(highlight=False)


@dataclass
class _State:
    config: Path | None = None
    verbose: bool = False

    def settings(self) -> Settings:
        return load_settings(self.config, env=os.environ)


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help=f"Lab profile (TOML). Default: $CERTISSUER_CONFIG or ./{DEFAULT_CONFIG_NAME}.",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug log, tracebacks.")
    ] = False,
) -> None:
    """certissuer: electronic verification and calibration certificates."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = _State(config, verbose)


@contextmanager
def _reported_errors(state: _State) -> Iterator[None]:
    try:
        yield
    except CertissuerError as exc:
        if state.verbose:
            raise
        _err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        if exc.hint:
            _err.print(f"hint: {exc.hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=exc.exit_code) from None


def _passphrase(settings: Settings) -> bytes | None:
    value = os.environ.get(settings.signing_passphrase_env)
    if value is not None:
        return value.encode()
    if sys.stdin.isatty():
        return str(typer.prompt("PKCS#12 passphrase", hide_input=True)).encode()
    raise ConfigError(
        f"no passphrase for the signing key: set ${settings.signing_passphrase_env}",
        hint="or run the command in a terminal to be asked for it",
    )


@app.command()
def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write the profile.")] = Path(
        DEFAULT_CONFIG_NAME
    ),
    lab_code: Annotated[str, typer.Option(help="Short code of the lab.")] = "LAB",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter lab profile to edit."""
    with _reported_errors(ctx.obj):
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it")
        path.write_text(starter_config(lab_code), encoding="utf-8")
    _out.print(f"wrote {path}; edit it, then run 'certissuer keys init keys'")


@keys_app.command("init")
def keys_init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder for the new keys.")],
    organisation: Annotated[str, typer.Option(help="Organisation name in the certificates.")] = (
        "certissuer demo lab"
    ),
    signer: Annotated[str, typer.Option(help="Signer's name.")] = "Demo signer",
    key_type: Annotated[str, typer.Option(help="rsa2048 or p256.")] = "rsa2048",
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
) -> None:
    """Make a CA, a PKCS#12 signer and a QR token key (a self-made PKI)."""
    from certissuer.keys import make_keys

    with _reported_errors(ctx.obj):
        env = os.environ.get("CERTISSUER_P12_PASSPHRASE")
        if env is not None:
            passphrase = env.encode()
        elif sys.stdin.isatty():
            passphrase = typer.prompt(
                "Passphrase for the new PKCS#12 file", hide_input=True, confirmation_prompt=True
            ).encode()
        else:
            raise ConfigError("set $CERTISSUER_P12_PASSPHRASE to the passphrase for the new key")
        paths = make_keys(
            directory,
            passphrase=passphrase,
            organisation=organisation,
            signer_name=signer,
            key_type=key_type,
            overwrite=force,
        )
    for name, p in (
        ("CA certificate", paths.ca_cert),
        ("signer (PKCS#12)", paths.signer_p12),
        ("token key", paths.token_key),
        ("token public key", paths.token_public),
    ):
        _out.print(f"{name:18} {p}")


@app.command()
def issue(
    ctx: typer.Context,
    results: Annotated[list[Path], typer.Argument(help="Results files: JSON, CSV or XLSX.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the signed PDFs.")] = Path(
        "out"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Issue one signed certificate per record of RESULTS and record it in the ledger."""
    from certissuer.issue import Issuer

    state: _State = ctx.obj
    issued: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    with _reported_errors(state):
        settings = state.settings()
        issuer = Issuer.from_settings(settings, passphrase=_passphrase(settings), out_dir=out)
        issued.extend(
            {"number": d.number, "path": str(d.path), "completed": True}
            for d in issuer.complete_pending()
        )
        for path in results:
            for item in intake.iter_records(path):
                if isinstance(item, intake.Rejected):
                    for error in item.errors:
                        rejected.append(
                            {
                                "source": item.source,
                                "row": item.row,
                                "error": str(error),
                                "hint": error.hint,
                            }
                        )
                        hint = f" (hint: {error.hint})" if error.hint else ""
                        _err.print(f"rejected: {error}{hint}", highlight=False, soft_wrap=True)
                    continue
                try:
                    done = issuer.issue(item.cert)
                except (IssueRefused, LedgerError) as exc:
                    rejected.append({"source": item.source, "row": item.row, "error": str(exc)})
                    _err.print(
                        f"rejected: {item.source}, row {item.row}: {exc}",
                        highlight=False,
                        soft_wrap=True,
                    )
                    continue
                issued.append(
                    {
                        "number": done.number,
                        "path": str(done.path),
                        "sha256": done.pdf_sha256,
                        "url": done.url,
                        "reused": done.reused,
                    }
                )
                if not as_json:
                    note = " (already issued)" if done.reused else ""
                    _out.print(f"issued {done.number}  {done.path}{note}")
    if as_json:
        typer.echo(
            json.dumps({"issued": issued, "rejected": rejected}, ensure_ascii=False, indent=2)
        )
    else:
        _out.print(f"{len(issued)} issued, {len(rejected)} rejected")
    raise typer.Exit(code=2 if rejected else 0)


@app.command()
def verify(
    ctx: typer.Context,
    pdf: Annotated[Path | None, typer.Argument(help="The certificate PDF to check.")] = None,
    qr: Annotated[str | None, typer.Option("--qr", help="Check a QR URL or token.")] = None,
    offline: Annotated[
        bool, typer.Option(help="With --qr: check only the token's signature, not the ledger.")
    ] = False,
    token_key: Annotated[
        Path | None, typer.Option(help="The lab's token public key (PEM) for --qr.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Say whether a certificate is genuine, unaltered and current (exit 0 only if so)."""
    from certissuer.errors import VerificationFailed
    from certissuer.verify import Verifier

    state: _State = ctx.obj
    with _reported_errors(state):
        if (pdf is None) == (qr is None):
            raise ConfigError("give either a PDF file or --qr URL")
        settings = state.settings()
        ledger = None if offline else Ledger.open(settings.ledger_url, create=False)
        verifier = Verifier.from_settings(settings, ledger=ledger, token_public=token_key)
        if qr is not None:
            report = verifier.verify_url(qr)
        else:
            assert pdf is not None
            try:
                data = pdf.read_bytes()
            except OSError as exc:
                raise VerificationFailed(f"{pdf}: cannot read the file ({exc.strerror})") from None
            report = verifier.verify_pdf(data)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        colour = "green" if report.ok else "red"
        what = str(pdf) if pdf is not None else "QR"
        _out.print(f"[bold {colour}]{report.label_vi} / {report.label_en}[/]  {what}")
        if report.number:
            _out.print(f"  number:  {report.number}")
        for reason in report.reasons:
            _out.print(f"  - {reason}", soft_wrap=True)
    raise typer.Exit(code=0 if report.ok else 1)


@ledger_app.command("list")
def ledger_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="verification or calibration")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List issued certificates, newest first."""
    from certissuer.issue import VIETNAM_TZ

    state: _State = ctx.obj
    with _reported_errors(state):
        ledger = Ledger.open(state.settings().ledger_url, create=False)
        today = datetime.now(VIETNAM_TZ).date()
        rows = [
            (e, ledger.status(e, today=today)[0]) for e in ledger.entries(kind=kind, limit=limit)
        ]
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "number": e.number,
                        "kind": e.kind,
                        "status": s.value,
                        "issue_date": e.issue_date.isoformat(),
                        "instrument": e.instrument_name,
                        "serial": e.instrument_serial,
                        "customer": e.customer_name,
                        "pdf": e.pdf_path,
                    }
                    for e, s in rows
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    table = Table()
    for name in ("number", "kind", "status", "issued"):
        table.add_column(name, no_wrap=True)
    for name in ("instrument", "serial", "customer"):
        table.add_column(name, overflow="fold")
    for e, s in rows:
        table.add_row(
            e.number,
            e.kind,
            s.value,
            e.issue_date.isoformat(),
            e.instrument_name,
            e.instrument_serial,
            e.customer_name,
        )
    _out.print(table)


@ledger_app.command("show")
def ledger_show(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Certificate number, e.g. HC-2026-000001.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one certificate's ledger entry, data and events."""
    from certissuer.issue import VIETNAM_TZ

    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        ledger = Ledger.open(settings.ledger_url, create=False)
        entry = ledger.get(number)
        if entry is None:
            raise LedgerError(
                f"certificate {number} is not in the ledger",
                hint="'certissuer ledger list' shows what is",
            )
        status, _ = ledger.status(entry, today=datetime.now(VIETNAM_TZ).date())
        events = ledger.events(number)
    record = entry.model_dump(mode="json", exclude={"data_json"})
    record["status"] = status.value
    record["data"] = entry.data()
    record["events"] = [
        {
            "kind": ev.kind,
            "at": ev.at.astimezone(UTC).isoformat(),
            "reason": ev.reason,
            "related_number": ev.related_number,
        }
        for ev in events
    ]
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    for key in (
        "number",
        "kind",
        "status",
        "ref",
        "instrument_name",
        "instrument_model",
        "instrument_serial",
        "customer_name",
        "work_date",
        "issue_date",
        "valid_until",
        "issued_at",
        "data_digest",
        "pdf_sha256",
        "pdf_path",
        "signer",
    ):
        _out.print(f"{key:18} {record[key]}", soft_wrap=True)
    for ev in record["events"]:
        _out.print(f"event              {ev['kind']} at {ev['at']} {ev['reason']}".rstrip())


@app.command()
def schema() -> None:
    """Print the JSON Schema of one certificate record."""
    typer.echo(intake.certificate_schema_json())


def main() -> None:  # pragma: no cover - console entry for `python -m certissuer`
    """Run the CLI."""
    app()
