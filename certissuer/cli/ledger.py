"""The ``certissuer`` command: a thin Typer face over the library.

Each command parses its options, loads `Settings`, calls the library and prints. Errors are
worded in one place, `_reported_errors`; stack traces appear only with ``--verbose``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from certissuer import intake
from certissuer._files import write_atomic
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
dcc_app = typer.Typer(
    help="Machine-readable certificates: PTB DCC 3.1.2 XML.", no_args_is_help=True
)
app.add_typer(dcc_app, name="dcc")

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
    # The key's passphrase, or the token's PIN when the key is on a PKCS#11 token.
    token = settings.signing_pkcs11_module is not None
    env = settings.signing_pin_env if token else settings.signing_passphrase_env
    value = os.environ.get(env)
    if value is not None:
        return value.encode()
    if sys.stdin.isatty():
        prompt = "Token PIN" if token else "PKCS#12 passphrase"
        return str(typer.prompt(prompt, hide_input=True)).encode()
    raise ConfigError(
        f"no {'PIN for the token' if token else 'passphrase for the signing key'}: set ${env}",
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
    results: Annotated[
        list[Path], typer.Argument(help="Results files: JSON, CSV, XLSX or DCC XML.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the signed PDFs.")] = Path(
        "out"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
    level: Annotated[
        str | None,
        typer.Option(help="PAdES level: B-B, B-T, B-LT or B-LTA (default: [signing] level)."),
    ] = None,
) -> None:
    """Issue one signed certificate per record of RESULTS and record it in the ledger."""
    from certissuer.issue import Issuer
    from certissuer.sign import Level

    state: _State = ctx.obj
    issued: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    with _reported_errors(state):
        settings = state.settings()
        if level is not None:
            settings = settings.replace(signing_level=Level.parse(level).value)
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
        if any(not i.get("reused") for i in issued):
            issuer.checkpoint()  # the lab vouches for the log as this run left it
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
    at: Annotated[
        datetime | None,
        typer.Option(help="Validate the signatures as of this time (ISO 8601, UTC if bare)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds checking the PDF may take; beyond: exit 8, could not check. "
            "Default: [web] pdf_timeout (10); 0: no time or memory limit.",
        ),
    ] = None,
    memory_mb: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Address space the check may use, in MiB; beyond: exit 8, could not check. "
            "Default: [web] pdf_memory_mb (1024).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="With --qr: refuse (exit 6) a URL that is not on the lab's verification page "
            "([token] url_base) instead of warning."
        ),
    ] = False,
) -> None:
    """Say whether a certificate is genuine, unaltered and current (exit 0 only if so).

    A PDF is checked in a child process under the same time and memory bounds as the web
    page's workers; overrunning them is exit 8 (could not check), not a verdict.
    """
    from certissuer._bounded import verify_pdf_bounded
    from certissuer._pades import describe
    from certissuer.errors import TokenError, VerificationFailed
    from certissuer.token import wrong_host
    from certissuer.verify import Verifier

    state: _State = ctx.obj
    with _reported_errors(state):
        if (pdf is None) == (qr is None):
            raise ConfigError("give either a PDF file or --qr URL")
        settings = state.settings()
        if qr is not None and (elsewhere := wrong_host(qr, settings.token_url_base)):
            if strict:
                raise TokenError(
                    f"refused (--strict): {elsewhere}",
                    hint="check the QR code's source; a look-alike page can show anything",
                )
            _err.print(f"warning: {elsewhere}", highlight=False, soft_wrap=True, markup=False)
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
            moment = at if at is None or at.tzinfo else at.replace(tzinfo=UTC)
            seconds = settings.web_pdf_timeout if timeout is None else timeout
            memory = settings.web_pdf_memory_mb if memory_mb is None else memory_mb
            report = verify_pdf_bounded(
                verifier,
                data,
                at=moment,
                timeout=seconds,
                memory_bytes=0 if seconds == 0 else memory * (1 << 20),
                name=str(pdf),
            )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        colour = "green" if report.ok else "red"
        what = str(pdf) if pdf is not None else "QR"
        _out.print(f"[bold {colour}]{report.label_vi} / {report.label_en}[/]  {what}")
        if report.number:
            _out.print(f"  number:  {report.number}")
        for reason in report.reasons:
            _out.print(f"  - {reason}", soft_wrap=True, markup=False)
        for info in report.signatures:
            for line in describe(info):
                _out.print(f"  {line}", soft_wrap=True, markup=False)
    raise typer.Exit(code=0 if report.ok else 1)


@app.command("sign-approve")
def sign_approve(
    ctx: typer.Context,
    pdf: Annotated[Path, typer.Argument(help="The verification certificate to approve.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of replacing PDF.")
    ] = None,
    level: Annotated[
        str | None, typer.Option(help="PAdES level (default: [signing] level).")
    ] = None,
    pkcs12: Annotated[
        Path | None, typer.Option(help="The approver's PKCS#12 file (default: the profile's).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Label of the approver's PKCS#11 token.")
    ] = None,
    key_label: Annotated[str | None, typer.Option(help="Key label on that token.")] = None,
) -> None:
    """Add the head of the lab's approval signature to a verification certificate."""
    from certissuer.approve import approve_pdf
    from certissuer.sign import Sealer
    from certissuer.verify import Verifier

    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        if pkcs12 is not None:
            settings = settings.replace(
                signing_pkcs12=pkcs12, signing_pkcs11_module=None, signing_key=None
            )
        if token is not None:
            settings = settings.replace(signing_pkcs11_token=token)
        if key_label is not None:
            settings = settings.replace(signing_pkcs11_key_label=key_label)
        verifier = Verifier.from_settings(
            settings, ledger=Ledger.open(settings.ledger_url, create=False)
        )
        with Sealer.from_settings(settings, _passphrase(settings), level=level) as sealer:
            done = approve_pdf(
                pdf, sealer=sealer, verifier=verifier, out=out, location=settings.lab_place
            )
    _out.print(f"approved {done.number or pdf} by {done.signer}  {done.path}")


def _print_entries(rows: Sequence[tuple[Any, Any]]) -> None:
    """One table row per (entry, status): number, kind, status, issue date, instrument."""
    table = Table()
    for name in ("number", "kind", "status", "issued"):
        table.add_column(name, no_wrap=True)
    for name in ("instrument", "serial", "customer"):
        table.add_column(name, overflow="fold")
    for e, s in rows:
        table.add_row(e.number, e.kind, s.value, e.issue_date.isoformat(), e.instrument_name,
                      e.instrument_serial, e.customer_name)  # fmt: skip
    _out.print(table)


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
    _print_entries(rows)


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
        from certissuer.ledger import event_problem, utc
        from certissuer.token import load_public_keys

        keys = load_public_keys(settings.token_key) if settings.token_key else []
        today = datetime.now(VIETNAM_TZ).date()
        # With the lab's keys, the status its signed events give (what inspectors are told).
        status = (
            ledger.standing(entry, keys=keys, today=today).status
            if keys
            else ledger.status(entry, today=today)[0]
        )
        events = ledger.events(number)
    record = entry.model_dump(mode="json", exclude={"data_json"})
    record["status"] = status.value
    record["data"] = entry.data()
    record["events"] = []
    for ev in events:
        problem = event_problem(ev, entry, keys) if keys else "no token key configured to check"
        record["events"].append(
            {
                "kind": ev.kind,
                "at": ev.at.astimezone(UTC).isoformat(),
                "reason": ev.reason,
                "related_number": ev.related_number,
                "signature": (
                    f"IGNORED: {problem}"
                    if problem
                    else "signed"
                    if ev.backfilled_at is None
                    else f"signed at upgrade {utc(ev.backfilled_at):%Y-%m-%d}"
                ),
            }
        )
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    from certissuer.export import COLUMNS

    for key in (*COLUMNS, *(["paper_number"] if record.get("paper_number") else [])):
        _out.print(f"{key:18} {record[key]}", soft_wrap=True)
    for ev in record["events"]:
        _out.print(
            f"event              {ev['kind']} at {ev['at']} {ev['reason']}".rstrip()
            + f" [{ev['signature']}]",
            soft_wrap=True,
            markup=False,
        )


def _issuer(state: _State, out: Path) -> Any:
    from certissuer.issue import Issuer

    settings = state.settings()
    return Issuer.from_settings(settings, passphrase=_passphrase(settings), out_dir=out)


def _token_key(state: _State) -> Any:
    from certissuer.issue import load_token_key

    return load_token_key(state.settings())


@app.command()
def revoke(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The certificate to revoke.")],
    reason: Annotated[str, typer.Option(help="Why (shown to inspectors).")],
) -> None:
    """Revoke a certificate: a new event in the ledger; nothing is overwritten."""
    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        key = _token_key(state)  # before anything is written: the event is signed with it
        ledger = Ledger.open(settings.ledger_url, ledger_key=key)
        now = datetime.now(UTC)
        ledger.revoke(number, reason=reason, at=now)
        ledger.checkpoint(key, lab_code=settings.lab_code, at=now)
    _out.print(f"revoked {number}: {reason}")


@app.command()
def amend(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The certificate to replace.")],
    results: Annotated[Path, typer.Argument(help="The corrected record (JSON, CSV or XLSX).")],
    reason: Annotated[str, typer.Option(help="Why it is replaced (printed on the new one).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the new PDF.")] = Path("out"),
) -> None:
    """Issue an amended certificate that replaces NUMBER (ISO/IEC 17025 §7.8.8)."""
    state: _State = ctx.obj
    with _reported_errors(state):
        records = intake.read_certificates(results)
        if len(records) != 1:
            raise ConfigError(
                f"{results}: an amendment takes exactly one record, got {len(records)}"
            )
        issuer = _issuer(state, out)
        issued = issuer.amend(number, records[0].cert, reason=reason)
        issuer.checkpoint()
    _out.print(f"issued {issued.number}  {issued.path}  (replaces {number})")


@ledger_app.command("upgrade")
def ledger_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the ledger's schema to this version (keeps every row).

    With the lab's token key configured, events written before events were signed are then
    signed with it, marked "signed at upgrade", where a checkpoint the lab signed vouches for
    them."""
    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        ledger = Ledger.open(settings.ledger_url, create=False)
        revision = ledger.upgrade()
        signed, left = (
            ledger.sign_unsigned(_token_key(state), at=datetime.now(UTC))
            if settings.token_key is not None
            else ([], [])
        )
    _out.print(f"ledger schema at revision {revision}")
    if signed:
        _out.print(f"signed {len(signed)} earlier event(s) with the lab's key (signed at upgrade)")
    for ev, why in left:
        _out.print(
            f"[yellow]left unsigned: event row {ev.id} ({ev.number}, {ev.kind}): {why}[/]",
            soft_wrap=True,
        )
    if left:
        _out.print(
            "hint: 'certissuer ledger audit' shows what differs; verification ignores "
            "unsigned events",
            soft_wrap=True,
        )


@ledger_app.command("repair")
def ledger_repair(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder of the runs.")] = Path(
        "out"
    ),
) -> None:
    """Complete certificates left pending by a crash (no gap, nothing issued twice)."""
    state: _State = ctx.obj
    with _reported_errors(state):
        issuer = _issuer(state, out)
        done = issuer.complete_pending()
        left = issuer.ledger.pending(issuer.settings.lab_code)
    for d in done:
        _out.print(f"completed {d.number}  {d.path}")
    _out.print(f"{len(done)} completed, {len(left)} still pending (claimed by a running process)")


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write the signed checkpoint (JSON) here, to keep outside the database "
            "for 'ledger audit --witness'.",
        ),
    ] = None,
) -> None:
    """Sign a checkpoint (tree size and root) of the ledger's log with the lab's key."""
    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        ledger = Ledger.open(settings.ledger_url, create=False)
        cp = ledger.checkpoint(_token_key(state), lab_code=settings.lab_code, at=datetime.now(UTC))
        if out is not None:
            text = json.dumps(cp.to_json(), indent=2) + "\n"
            write_atomic(out, text.encode())
    _out.print(f"checkpoint {cp.id}: size {cp.tree_size}, root {cp.root_hash}")
    if out is not None:
        _out.print(f"wrote {out}")


@ledger_app.command("proof")
def ledger_proof(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Certificate number.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the proof here.")] = None,
) -> None:
    """Export the inclusion proof of a certificate's events in the newest checkpoint (JSON)."""
    state: _State = ctx.obj
    with _reported_errors(state):
        ledger = Ledger.open(state.settings().ledger_url, create=False)
        text = json.dumps(ledger.inclusion(number), ensure_ascii=False, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        _out.print(f"wrote {out}")


@ledger_app.command("consistency")
def ledger_consistency(
    ctx: typer.Context,
    first: Annotated[int, typer.Argument(help="The older tree size.")],
    second: Annotated[int | None, typer.Argument(help="The newer size (newest checkpoint).")] = (
        None
    ),
) -> None:
    """Print the consistency proof between two tree sizes of the log (JSON)."""
    state: _State = ctx.obj
    with _reported_errors(state):
        ledger = Ledger.open(state.settings().ledger_url, create=False)
        typer.echo(json.dumps(ledger.consistency(first, second), indent=2))


@ledger_app.command("audit")
def ledger_audit(
    ctx: typer.Context,
    files: Annotated[bool, typer.Option(help="Also hash every PDF the ledger points to.")] = True,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A checkpoint kept outside the database: a file from 'ledger checkpoint "
            "--out', or a certissuer server's URL (its /api/v1/checkpoint). Repeatable.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute the log, check event signatures, checkpoints and PDFs; name any edited,
    deleted, inserted, reordered or forged row and any rollback behind a saved checkpoint.
    Exit 0 only when nothing is found (leaves no checkpoint covers yet are warnings)."""
    from dataclasses import asdict

    from certissuer._audit import load_witness
    from certissuer.token import load_public_keys

    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        if settings.token_key is None:
            raise ConfigError("no token key configured", hint="set [token] key")
        witnesses = [load_witness(source) for source in witness or []]
        ledger = Ledger.open(settings.ledger_url, create=False)
        report = ledger.audit(
            keys=load_public_keys(settings.token_key), check_files=files, witnesses=witnesses
        )
    if as_json:
        typer.echo(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    else:
        _out.print(
            f"log: {report.log_size} leaves, {report.entries} certificates, "
            f"{report.events_signed} signed events ({report.events_signed_at_upgrade} signed "
            f"at upgrade), {report.checkpoints_checked} checkpoints, "
            f"{report.witnesses_checked} saved checkpoints, {report.files_checked} PDFs "
            f"checked ({report.files_missing} not found)",
            soft_wrap=True,
        )
        for problem in report.problems:
            _out.print(f"[red]{problem}[/]", soft_wrap=True, markup=True, highlight=False)
        for warning in report.unvouched:
            _out.print(f"[yellow]warning: {warning}[/]", soft_wrap=True)
        if report.unvouched:
            _out.print(
                "hint: run 'certissuer ledger checkpoint --out FILE' so a checkpoint vouches "
                "for them, and keep the file outside the database",
                soft_wrap=True,
            )
        _out.print(
            "[green]audit: no problems found[/]"
            if report.ok
            else f"[red]audit: {len(report.problems)} problem(s)[/]"
        )
    raise typer.Exit(code=0 if report.ok else 1)


def _search(
    state: _State,
    number: str | None,
    paper_number: str | None,
    serial: str | None,
    customer: str | None,
    kind: str | None,
    issued_from: str | None,
    issued_to: str | None,
    status: str | None,
    limit: int,
) -> list[Any]:
    from datetime import date as _date

    from certissuer.issue import VIETNAM_TZ
    from certissuer.ledger import Status

    def day(value: str | None, name: str) -> _date | None:
        if value is None:
            return None
        try:
            return _date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"--{name}: expected a date YYYY-MM-DD, got {value!r}") from None

    try:
        wanted = Status(status) if status else None
    except ValueError:
        raise ConfigError(
            f"--status: expected one of {', '.join(s.value for s in Status)}, got {status!r}"
        ) from None
    ledger = Ledger.open(state.settings().ledger_url, create=False)
    return ledger.search(
        number=number,
        paper_number=paper_number,
        serial=serial,
        customer=customer,
        kind=kind,
        issued_from=day(issued_from, "from"),
        issued_to=day(issued_to, "to"),
        status=wanted,
        today=datetime.now(VIETNAM_TZ).date(),
        limit=limit,
    )


_NumberOpt = Annotated[str | None, typer.Option(help="Number contains this.")]
_PaperOpt = Annotated[str | None, typer.Option(help="Paper number (of a digitised copy).")]
_SerialOpt = Annotated[str | None, typer.Option(help="Instrument serial contains this.")]
_CustomerOpt = Annotated[str | None, typer.Option(help="Owner/customer contains this.")]
_KindOpt = Annotated[str | None, typer.Option(help="verification or calibration")]
_FromOpt = Annotated[str | None, typer.Option("--from", help="Issued on or after (YYYY-MM-DD).")]
_ToOpt = Annotated[str | None, typer.Option("--to", help="Issued on or before (YYYY-MM-DD).")]
_StatusOpt = Annotated[str | None, typer.Option(help="valid, revoked, superseded, expired, ...")]


@ledger_app.command("search")
def ledger_search(
    ctx: typer.Context,
    number: _NumberOpt = None,
    paper_number: _PaperOpt = None,
    serial: _SerialOpt = None,
    customer: _CustomerOpt = None,
    kind: _KindOpt = None,
    issued_from: _FromOpt = None,
    issued_to: _ToOpt = None,
    status: _StatusOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find certificates by number, serial, owner, kind, issue dates and status."""
    from certissuer.export import entry_row

    state: _State = ctx.obj
    with _reported_errors(state):
        rows = _search(
            state,
            number,
            paper_number,
            serial,
            customer,
            kind,
            issued_from,
            issued_to,
            status,
            limit,
        )
    if as_json:
        typer.echo(json.dumps([entry_row(e, s) for e, s in rows], ensure_ascii=False, indent=2))
        return
    _print_entries(rows)
    _out.print(f"{len(rows)} found")


@ledger_app.command("export")
def ledger_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or json")] = "csv",
    number: _NumberOpt = None,
    paper_number: _PaperOpt = None,
    serial: _SerialOpt = None,
    customer: _CustomerOpt = None,
    kind: _KindOpt = None,
    issued_from: _FromOpt = None,
    issued_to: _ToOpt = None,
    status: _StatusOpt = None,
) -> None:
    """Export certificates (all, or those matching the filters) to CSV, XLSX or JSON."""
    from certissuer.export import ExportFormat, export_entries

    state: _State = ctx.obj
    with _reported_errors(state):
        try:
            form = ExportFormat(fmt)
        except ValueError:
            raise ConfigError(f"--format: expected csv, xlsx or json, got {fmt!r}") from None
        rows = _search(
            state,
            number,
            paper_number,
            serial,
            customer,
            kind,
            issued_from,
            issued_to,
            status,
            10**9,
        )
        count = export_entries(rows, form, out)
    _out.print(f"exported {count} certificates to {out}")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on ([web] host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on ([web] port).")] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (the proxy usually does).")
    ] = False,
) -> None:
    """Serve the inspectors' verification page (the QR code's URL) on the lab's ledger.

    A client that does not send a request's headers within ``[web] header_timeout`` seconds,
    or its body within ``[web] body_timeout``, is disconnected; put a reverse proxy with its
    own limits in front (README).
    """
    import uvicorn

    from certissuer._uvicorn import server_config
    from certissuer.web import create_app

    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        settings = settings.replace(
            web_host=host if host is not None else settings.web_host,
            web_port=port if port is not None else settings.web_port,
        )
        web_app = create_app(settings)
    _err.print(
        f"serving {settings.token_url_base}/v/<token> on http://{settings.web_host}:"
        f"{settings.web_port} (ledger read-only)",
        highlight=False,
        soft_wrap=True,
    )
    config = server_config(
        web_app,
        settings,
        log_level="debug" if state.verbose else "info",
        access_log=access_log,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # uvicorn has logged why (the port is taken, say)
        raise typer.Exit(code=3)


@dcc_app.command("extract")
def dcc_extract(
    ctx: typer.Context,
    pdf: Annotated[Path, typer.Argument(help="A certificate PDF.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the XML here, not to stdout.")
    ] = None,
) -> None:
    """Write out the DCC XML embedded in a certificate PDF, byte for byte as it was signed."""
    from certissuer import dcc
    from certissuer.errors import VerificationFailed

    with _reported_errors(ctx.obj):
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
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the XML here, not to stdout.")
    ] = None,
) -> None:
    """Write the DCC XML of an issued certificate, rebuilt from the ledger's data."""
    from certissuer import dcc

    state: _State = ctx.obj
    with _reported_errors(state):
        settings = state.settings()
        entry = Ledger.open(settings.ledger_url, create=False).get(number)
        if entry is None:
            raise LedgerError(
                f"certificate {number} is not in the ledger",
                hint="'certissuer ledger list' shows what is",
            )
        _write_bytes(dcc.export_entry(entry, settings), out)


def _write_bytes(data: bytes, out: Path | None) -> None:
    if out is None:
        typer.echo(data, nl=False)
        return
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the file ({exc.strerror})") from None
    _err.print(f"wrote {out}", highlight=False)


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


def _run_batch(
    state: _State,
    items: Any,
    total: int | None,
    *,
    out: Path,
    jobs: int,
    dry_run: bool,
    quiet: bool,
    report_path: Path | None,
) -> None:
    import time as _time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from certissuer import batch

    with _reported_errors(state):
        settings = state.settings()
        passphrase = _passphrase(settings)
        bar: Progress | None = None
        last = {"t": 0.0}

        def plain(p: batch.Progress) -> None:
            now = _time.monotonic()
            if now - last["t"] >= 5:
                last["t"] = now
                of = f"/{total}" if total else ""
                _err.print(
                    f"batch: {p.done}{of} rows, {p.issued} issued, {p.already} already "
                    f"issued, {p.rejected} rejected, {p.rate:.1f} rows/s",
                    highlight=False,
                )

        on_progress: Callable[[batch.Progress], None] | None = None
        if not quiet and _err.is_terminal:
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f}/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=_err,
            )
            task = bar.add_task("issuing", total=total, rate=0.0)
            shown = bar

            def on_progress(p: batch.Progress) -> None:
                shown.update(task, completed=p.done, rate=p.rate)
        elif not quiet:
            on_progress = plain
        if bar is not None:
            bar.start()
        try:
            result = batch.run_batch(
                items,
                settings=settings,
                passphrase=passphrase,
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
            _err.print(
                f"rejected: {r.source}, row {r.row}"
                + (f", field '{r.field}'" if r.field else "")
                + f": {r.reason}",
                highlight=False,
                soft_wrap=True,
            )
        if len(result.rejected) > 20:
            _err.print(f"... and {len(result.rejected) - 20} more", highlight=False)
        _err.print(f"error report: {path}", highlight=False)
    verb = "would issue" if dry_run else "issued"
    _out.print(
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


registry_app = typer.Typer(
    help="The measurement register: lab, scope, type, owner, instrument, standard, person, stamp.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")
_PartArg = Annotated[
    str,
    typer.Argument(help="lab, scope, type, owner, instrument, standard, person or stamp (stock)."),
]


@registry_app.command("list")
def registry_list(
    ctx: typer.Context,
    part: _PartArg,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 50,
) -> None:
    """List what the register holds of PART (this lab's rows)."""
    from certissuer.registry import KINDS, open_register

    with _reported_errors(ctx.obj):
        register = open_register(ctx.obj.settings())
        rows = register.list(part, limit=limit)
        table = Table(*[c.name for c in KINDS[part].columns], title=f"registry: {part}")
        for row in rows:
            table.add_row(*["" if v is None else str(v) for v in row.values()])
    _out.print(table)


@registry_app.command("show")
def registry_show(
    ctx: typer.Context,
    part: _PartArg,
    key: Annotated[list[str], typer.Argument(help="The key columns' values, in order.")],
) -> None:
    """Show one row of PART by its key (lab: code; instrument: owner_code type_code serial)."""
    from certissuer.registry import KINDS, open_register

    with _reported_errors(ctx.obj):
        row = open_register(ctx.obj.settings()).find(part, key)
        if row is None:
            raise LedgerError(
                f"no {part} with {', '.join(KINDS[part].key)} = {' '.join(key)} in the register",
                hint=f"see 'certissuer registry list {part}'",
            )
    for name, value in row.model_dump().items():
        _out.print(f"{name:20} {'' if value is None else value}")


@registry_app.command("add")
def registry_add(
    ctx: typer.Context,
    part: _PartArg,
    values: Annotated[list[str], typer.Argument(help="column=value pairs.")],
) -> None:
    """Add (or update, by its key) one row of PART: certissuer registry add person name=…"""
    from certissuer.errors import InputError
    from certissuer.registry import open_register

    with _reported_errors(ctx.obj):
        pairs: dict[str, str] = {}
        for item in values:
            name, sep, value = item.partition("=")
            if not sep:
                raise InputError("registry add", f"expected column=value, got '{item}'")
            pairs[name.strip()] = value
        open_register(ctx.obj.settings()).add(part, pairs)
    _out.print(f"added {part}")


@registry_app.command("import")
def registry_import(
    ctx: typer.Context,
    part: _PartArg,
    file: Annotated[Path, typer.Argument(help="CSV or XLSX file, one header row.")],
) -> None:
    """Import rows of PART from FILE; bad rows are reported (file, row, field) and skipped."""
    from certissuer.registry import open_register

    with _reported_errors(ctx.obj):
        report = open_register(ctx.obj.settings()).import_file(part, file)
    for error in report.errors:
        hint = f" (hint: {error.hint})" if error.hint else ""
        _err.print(f"rejected: {error}{hint}", highlight=False, soft_wrap=True)
    _out.print(f"{report.imported} imported, {len(report.errors)} rejected")
    raise typer.Exit(code=2 if report.errors else 0)


@registry_app.command("export")
def registry_export(
    ctx: typer.Context,
    part: _PartArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="A .csv or .xlsx file.")],
) -> None:
    """Write the rows of PART to a CSV or XLSX file that can be imported again."""
    from certissuer.registry import open_register

    with _reported_errors(ctx.obj):
        count = open_register(ctx.obj.settings()).export_file(part, out)
    _out.print(f"wrote {count} rows to {out}")


@app.command()
def recall(
    ctx: typer.Context,
    within: Annotated[str, typer.Option(help="Window: 30d, 6w, 3m.")] = "30d",
    owner: Annotated[str | None, typer.Option(help="One owner (code or name).")] = None,
    type_code: Annotated[str | None, typer.Option("--type", help="One instrument type.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, xlsx or pdf.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File for csv/xlsx/pdf.")] = None,
    today: Annotated[str | None, typer.Option(help="Count from this date (YYYY-MM-DD).")] = None,
) -> None:
    """Instruments whose certificate expires within the window or has expired, by owner."""
    from datetime import date as _date

    from certissuer.errors import InputError
    from certissuer.issue import VIETNAM_TZ
    from certissuer.recall import COLUMNS, RecallFormat, recall_rows, write_recall
    from certissuer.registry import open_register, parse_window

    with _reported_errors(ctx.obj):
        try:
            kind = RecallFormat(fmt)
            day = _date.fromisoformat(today) if today else datetime.now(VIETNAM_TZ).date()
        except ValueError as exc:
            raise InputError("recall", f"{exc}", hint="--format table|csv|xlsx|pdf") from None
        if kind is not RecallFormat.TABLE and out is None:
            raise InputError("recall", f"--format {fmt} needs --out FILE")
        settings = ctx.obj.settings()
        result = open_register(settings).recall(
            within_days=parse_window(within, day), today=day, owner=owner, type_code=type_code
        )
        if kind is RecallFormat.TABLE:
            table = Table("owner", "type", "serial", "place of use", "certificate",
                          "valid until", "status", title=f"due by {result.until}")  # fmt: skip
            for row in recall_rows(result, lab_code=settings.lab_code):
                r = dict(zip(COLUMNS, row, strict=True))
                table.add_row(r["owner_name"] or r["owner_code"], r["type_name"] or r["name"],
                              r["serial"], r["place_of_use"], r["last_certificate"],
                              r["valid_until"], r["status"])  # fmt: skip
            _out.print(table)
        else:
            assert out is not None
            write_recall(result, kind, out, settings=settings)
            _out.print(f"wrote {out}")
    _out.print(f"{result.count} instruments of {len(result.groups)} owners, "
               f"{len(result.standards)} standards due by {result.until}")  # fmt: skip


# -- reports and the sector export (issue 10) ------------------------------------------------

report_app = typer.Typer(
    help="Reports for the authorities: annual report, activity report (form 5.BCHĐ).",
    no_args_is_help=True,
)
export_app = typer.Typer(help="Data exports for the provincial and sector databases.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(report_app, name="report")
app.add_typer(export_app, name="export")


def _report_checkpoint(state: _State, ledger: Ledger, new: bool) -> None:
    # A report names the checkpoint it counts; --checkpoint signs a fresh one first.
    cp = ledger.latest_checkpoint()
    if new or cp is None:
        if cp is None and not new:
            raise LedgerError(
                "the ledger's log has no signed checkpoint yet",
                hint="pass --checkpoint to sign one now, or run 'certissuer ledger checkpoint'",
            )
        settings = state.settings()
        ledger.checkpoint(_token_key(state), lab_code=settings.lab_code, at=datetime.now(UTC))
    elif cp.tree_size < ledger.log_size():
        _err.print(
            f"note: the newest checkpoint covers {cp.tree_size} of {ledger.log_size()} log "
            "events; the report counts those (pass --checkpoint to sign a new one first)",
            highlight=False,
        )


def _report_outputs(out: Path | None, xlsx: Path | None) -> None:
    from certissuer.errors import InputError

    if out is None and xlsx is None:
        raise InputError("report", "nothing to write", hint="give --out FILE.pdf and/or --xlsx")


def _write_report(
    state: _State,
    settings: Settings,
    checkpoint: Any,
    *,
    title: str,
    out: Path | None,
    xlsx: Path | None,
    write_xlsx: Callable[[Path], None],
    render: Callable[[str], bytes],
) -> None:
    # The workbook, then the PDF rendered with the signer's name and signed (PAdES) with the
    # checkpoint it counts; each file is written whole or not at all.
    from certissuer.issue import load_sealer
    from certissuer.report import sign_report

    if xlsx is not None:
        write_xlsx(xlsx)
        _out.print(f"wrote {xlsx}")
    if out is not None:
        with load_sealer(settings, _passphrase(settings)) as sealer:
            name = sealer.signer_name
            signed = sign_report(render(name), sealer, checkpoint, title=title,
                                 location=settings.lab_place, name_on_page=name)  # fmt: skip
        write_atomic(out, signed)
        _out.print(f"wrote {out}")


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
    checkpoint: Annotated[
        bool, typer.Option("--checkpoint", help="Sign a new ledger checkpoint first.")
    ] = False,
) -> None:
    """The annual measurement report: tables, charts, digitisation progress, per lab."""
    from datetime import date as _date

    from certissuer.errors import InputError
    from certissuer.report import annual_report, render_annual_pdf, write_annual_xlsx

    state: _State = ctx.obj
    with _reported_errors(state):
        _report_outputs(out, xlsx)
        try:
            end = _date.fromisoformat(until) if until else None
        except ValueError:
            raise InputError("--until", f"expected a date YYYY-MM-DD, got '{until}'") from None
        settings = state.settings()
        ledger = Ledger.open(settings.ledger_url)
        _report_checkpoint(state, ledger, checkpoint)
        data = annual_report(ledger.engine, year=year, until=end, paper_total=paper_total)
        _write_report(
            state, settings, data.checkpoint, title=f"Báo cáo đo lường năm {year}",
            out=out, xlsx=xlsx, write_xlsx=lambda path: write_annual_xlsx(data, path),
            render=lambda name: render_annual_pdf(data, settings=settings, signer_name=name),
        )  # fmt: skip
    cp = data.checkpoint
    _out.print(f"{data.issued_total} certificates, {data.failed_total} failed verifications, "
               f"{data.revoked_total} revoked, {data.amended_total} amended, "
               f"{data.digitised_in_period} digitised")  # fmt: skip
    _out.print(f"checkpoint {cp.tree_size} {cp.root_hash}")


@report_app.command("activity")
def report_activity(
    ctx: typer.Context,
    year: Annotated[int, typer.Option(help="The year reported.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The signed PDF.")] = None,
    xlsx: Annotated[Path | None, typer.Option(help="The figures as an XLSX workbook.")] = None,
    checkpoint: Annotated[
        bool, typer.Option("--checkpoint", help="Sign a new ledger checkpoint first.")
    ] = False,
) -> None:
    """The service provider's activity report (form 5.BCHĐ, Circular 24/2013/TT-BKHCN)."""
    from certissuer.report import activity_report, render_activity_pdf, write_activity_xlsx

    state: _State = ctx.obj
    with _reported_errors(state):
        _report_outputs(out, xlsx)
        settings = state.settings()
        ledger = Ledger.open(settings.ledger_url)
        _report_checkpoint(state, ledger, checkpoint)
        data = activity_report(ledger.engine, year=year, lab_code=settings.lab_code,
                               settings=settings)  # fmt: skip
        _write_report(
            state, settings, data.checkpoint, title=f"Báo cáo hoạt động năm {year}",
            out=out, xlsx=xlsx, write_xlsx=lambda path: write_activity_xlsx(data, path),
            render=lambda name: render_activity_pdf(data, settings=settings, signer_name=name),
        )  # fmt: skip
    _out.print(f"{data.verified_total} verified, {data.failed_total} failed, "
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
    from certissuer.errors import InputError
    from certissuer.issue import VIETNAM_TZ
    from certissuer.sector import Cursor, SectorFormat, sector_export, write_sector_export

    state: _State = ctx.obj
    with _reported_errors(state):
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
        ledger = Ledger.open(state.settings().ledger_url)
        export = sector_export(ledger.engine, since=start, after=after,
                               today=datetime.now(VIETNAM_TZ).date())  # fmt: skip
        files = write_sector_export(export, kind, out)
    counts = ", ".join(f"{n} {t}" for t, n in export.header()["counts"].items())
    _out.print(f"wrote {', '.join(str(f) for f in files)}: {counts}")
    _out.print(f"cursor {export.cursor.text}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of one certificate record."""
    typer.echo(intake.certificate_schema_json())


def main() -> None:  # pragma: no cover - console entry for `python -m certissuer`
    """Run the CLI."""
    app()
