"""``certissuer issue``, ``amend``, ``revoke``, ``sign-approve`` and ``approve``: what writes
certificates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from certissuer._vn import local_date, local_time
from certissuer.cli._app import app
from certissuer.cli._state import (
    State,
    issuer,
    open_ledger,
    passphrase,
    say,
    secrets,
    token_key,
    warn,
)
from certissuer.cli.batch import show_run
from certissuer.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from certissuer.config import Settings
    from certissuer.ledger import CertificateEntry

__all__ = ["amend", "approve", "issue", "revoke", "sign_approve"]

_LevelOpt = Annotated[
    str | None,
    typer.Option(help="PAdES level: B-B, B-T, B-LT or B-LTA (default: \\[signing] level)."),
]


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
    level: _LevelOpt = None,
    item: Annotated[
        int | None, typer.Option(help="DCC XML: issue only item N (1-based) of several.")
    ] = None,
    performed_by: Annotated[
        str | None, typer.Option(help="DCC XML: who performed the calibration.")
    ] = None,
    signatory: Annotated[str | None, typer.Option(help="DCC XML: who signs.")] = None,
    received: Annotated[
        str | None, typer.Option(help="DCC XML: date the item was received (YYYY-MM-DD).")
    ] = None,
    place: Annotated[
        str | None, typer.Option(help="DCC XML: place of calibration (default: the lab's).")
    ] = None,
) -> None:
    """Issue one signed certificate per record of RESULTS (nothing if any record is bad).

    A DCC XML from another lab or from measurement software (schema 3.0 to 3.3) gives one
    certificate per item; what it does not carry comes from the options and the register.
    """
    from certissuer import batch, dcc
    from certissuer.sign import Level

    state: State = ctx.obj
    settings = state.settings()
    if level is not None:
        settings = settings.replace(signing_level=Level.parse(level).value)
    fill = dcc.Fill(
        item=item,
        performed_by=performed_by,
        signatory=signatory,
        received=received,
        place=place,
        standards=_standard_lookup(settings),
        lab_place=settings.lab_place or None,
        report=lambda line: warn(f"note: {line}"),
    )
    signing = passphrase(settings)
    report = batch.run_batch(
        batch.issue_items(results, fill=fill),
        settings=settings,
        passphrase=signing,
        secret=secrets(settings, signing),
        out_dir=out,
        all_or_nothing=True,
    )
    raise typer.Exit(code=show_run(report, settings, as_json=as_json))


def _standard_lookup(settings: Settings) -> Callable[[str, str], tuple[str, str] | None]:
    """The register's certificate number and due date of a standard, by serial or name."""
    from sqlmodel import select

    from certissuer.registry import Register
    from certissuer.registry.tables import RegisteredStandard

    register: list[Register] = []

    def lookup(name: str, serial: str) -> tuple[str, str] | None:
        if not register:
            register.append(
                Register(open_ledger(settings, create=True).engine, lab_code=settings.lab_code)
            )
        column = RegisteredStandard.serial if serial else RegisteredStandard.name
        with register[0].session() as s:
            row = s.exec(
                select(RegisteredStandard).where(
                    RegisteredStandard.lab_code == settings.lab_code,
                    column == (serial or name),
                )
            ).first()
        if row is None:
            return None
        return row.certificate_number, row.calibration_due.isoformat()

    return lookup


_ApproveOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write here instead of replacing PDF.")
]
_ApproveLevel = Annotated[
    str | None, typer.Option(help="PAdES level (default: \\[signing] level).")
]
_ApproveP12 = Annotated[
    Path | None,
    typer.Option(
        help="The approver's PKCS#12 file (default: the printed head's key in "
        "\\[\\[people]], else \\[signing]).",
    ),
]
_ApproveToken = Annotated[str | None, typer.Option(help="Label of the approver's PKCS#11 token.")]
_ApproveKeyLabel = Annotated[str | None, typer.Option(help="Key label on that token.")]


@app.command("sign-approve")
def sign_approve(
    ctx: typer.Context,
    pdf: Annotated[Path, typer.Argument(help="The verification certificate to approve.")],
    out: _ApproveOut = None,
    level: _ApproveLevel = None,
    pkcs12: _ApproveP12 = None,
    token: _ApproveToken = None,
    key_label: _ApproveKeyLabel = None,
) -> None:
    """Add the head of the lab's approval signature to a verification certificate.

    The approver's certificate must name the head printed on it; the approval is recorded
    in the ledger, so the certificate then verifies VALID instead of AWAITING APPROVAL.
    """
    _approve(ctx.obj, pdf, out=out, level=level, pkcs12=pkcs12, token=token, key_label=key_label)


@app.command()
def approve(
    ctx: typer.Context,
    pdf: Annotated[
        Path | None, typer.Argument(help="The verification certificate to approve.")
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="List the certificates waiting for approval.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --pending: print JSON.")] = False,
    out: _ApproveOut = None,
    level: _ApproveLevel = None,
    pkcs12: _ApproveP12 = None,
    token: _ApproveToken = None,
    key_label: _ApproveKeyLabel = None,
) -> None:
    """Approve a verification certificate as the head (as sign-approve), or list what waits."""
    state: State = ctx.obj
    if pending == (pdf is not None):
        raise ConfigError(
            "give either a PDF to approve or --pending",
            hint="'certissuer approve --pending' lists what waits for approval",
        )
    if pdf is not None:
        _approve(state, pdf, out=out, level=level, pkcs12=pkcs12, token=token, key_label=key_label)
        return

    settings = state.settings()
    ledger = open_ledger(settings)
    rows = [_pending_row(e) for e in ledger.awaiting_approval(settings.lab_code)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        say("no certificate is waiting for approval")
        return
    for row in rows:  # one line each, never wrapped: easy to read and to grep
        say(
            f"{row['number']}  issued {row['issued_at']}  {row['instrument']} "
            f"(serial {row['serial']})  verifier: {row['verifier']}"
        )
    say(f"{len(rows)} certificate(s) waiting for approval")


def _pending_row(entry: CertificateEntry) -> dict[str, str]:
    """What `approve --pending` shows of a certificate waiting for approval."""
    verifier = entry.data().get("verifier")
    name = verifier.get("name") if isinstance(verifier, dict) else None
    return {
        "number": entry.number,
        "issued_at": local_time(entry.issued_at).isoformat(timespec="minutes"),
        "instrument": entry.instrument_name,
        "serial": entry.instrument_serial,
        "verifier": str(name or ""),
    }


def _approve(
    state: State,
    pdf: Path,
    *,
    out: Path | None,
    level: str | None,
    pkcs12: Path | None,
    token: str | None,
    key_label: str | None,
) -> None:
    """Sign the head's approval into `pdf` and record it in the ledger."""
    from certissuer.approve import approve_pdf
    from certissuer.ledger.storage import open_store
    from certissuer.sign import Keyring, Sealer, policy_from_settings
    from certissuer.verify import Verifier

    settings = state.settings()
    key = token_key(state)  # before anything is signed: the ledger's event is signed with it
    verifier = Verifier.from_settings(settings, ledger=open_ledger(settings))
    # The archive gets the approved file too (a database archive, or a copy approved elsewhere).
    archive = open_store(verifier.ledger, settings.ledger_pdf_store) if verifier.ledger else None
    source: AbstractContextManager[Keyring | Sealer]
    if pkcs12 is None and token is None and key_label is None:
        # The key of the head printed on the certificate: their [[people]] entry, else the
        # [signing] key when its certificate names them.
        # Only the key that signs is opened: its passphrase or PIN is asked for then.
        policy = policy_from_settings(settings, level=level)
        source = Keyring(settings, secret=secrets(settings, None), policy=policy)
    else:
        if pkcs12 is not None:
            settings = settings.replace(
                signing_pkcs12=pkcs12,
                signing_pkcs11_module=None,
                signing_pkcs11_uri="",
                signing_key=None,
            )
        if token is not None:
            settings = settings.replace(signing_pkcs11_token=token)
        if key_label is not None:
            settings = settings.replace(signing_pkcs11_key_label=key_label)
        source = Sealer.from_settings(settings, passphrase(settings), level=level)
    with source as opened:
        done = approve_pdf(
            pdf,
            keys=opened if isinstance(opened, Keyring) else None,
            sealer=opened if isinstance(opened, Sealer) else None,
            verifier=verifier,
            out=out,
            location=settings.lab_place,
            ledger_key=key,
            archive=archive,
        )
    say(f"approved {done.number or pdf} by {done.signer}  {done.path}")


@app.command()
def revoke(
    ctx: typer.Context,
    number: Annotated[
        str, typer.Argument(help="The certificate to revoke (KD- for KĐ-, or its PDF's name).")
    ],
    reason: Annotated[str, typer.Option(help="Why (shown to inspectors).")],
) -> None:
    """Revoke a certificate: a new event in the ledger; nothing is overwritten."""
    state: State = ctx.obj
    settings = state.settings()
    key = token_key(state)  # before anything is written: the event is signed with it
    # One lab, one ledger: revoking writes, so another lab's ledger is refused (exit 7).
    ledger = open_ledger(settings, create=True, ledger_key=key)
    now = datetime.now(UTC)
    revoked = ledger.revoke(number, reason=reason, at=now)
    ledger.checkpoint(key, lab_code=settings.lab_code, at=now)
    say(f"revoked {revoked.number} on {local_date(now)}: {revoked.reason}")


@app.command()
def amend(
    ctx: typer.Context,
    number: Annotated[
        str, typer.Argument(help="The certificate to replace (KD- for KĐ-, or its PDF's name).")
    ],
    results: Annotated[Path, typer.Argument(help="The corrected record (JSON, CSV or XLSX).")],
    reason: Annotated[str, typer.Option(help="Why it is replaced (printed on the new one).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the new PDF.")] = Path("out"),
) -> None:
    """Issue an amended certificate that replaces NUMBER (ISO/IEC 17025 §7.8.8)."""
    from certissuer import intake

    records = intake.read_certificates(results)
    if len(records) != 1:
        raise ConfigError(f"{results}: an amendment takes exactly one record, got {len(records)}")
    amender = issuer(ctx.obj, out)
    # The replacement prints the number it replaces: as the ledger spells it, not as typed.
    number = amender.ledger.resolve(number) or number
    issued = amender.amend(number, records[0].cert, reason=reason)
    amender.checkpoint()
    say(f"issued {issued.number}  {issued.path}  (replaces {number})")
