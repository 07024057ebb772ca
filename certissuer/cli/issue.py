"""``certissuer issue``, ``amend``, ``revoke`` and ``sign-approve``: what writes certificates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from certissuer.cli._app import app
from certissuer.cli._state import State, issuer, passphrase, say, token_key, warn
from certissuer.errors import ConfigError, InputError, IssueRefused, LedgerError

__all__ = ["amend", "issue", "revoke", "run_exit_code", "sign_approve"]

_LevelOpt = Annotated[
    str | None,
    typer.Option(help="PAdES level: B-B, B-T, B-LT or B-LTA (default: \\[signing] level)."),
]


def run_exit_code(rejected: list[dict[str, Any]]) -> int:
    """The exit code of a run that rejected `rejected`: 0 if nothing, else the code of the
    rejections' error class (2 input, 7 ledger, 9 refused), or 2 when they differ."""
    codes = {r["exit_code"] for r in rejected}
    if not codes:
        return 0
    return codes.pop() if len(codes) == 1 else InputError.exit_code


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
) -> None:
    """Issue one signed certificate per record of RESULTS and record it in the ledger."""
    from certissuer import intake
    from certissuer.issue import Issuer
    from certissuer.sign import Level

    state: State = ctx.obj
    issued: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    settings = state.settings()
    if level is not None:
        settings = settings.replace(signing_level=Level.parse(level).value)
    runner = Issuer.from_settings(settings, passphrase=passphrase(settings), out_dir=out)
    issued.extend(
        {"number": d.number, "path": str(d.path), "completed": True}
        for d in runner.complete_pending()
    )
    # NOTE: this loop is a second run engine beside `batch.run_batch` (issue 15 merges them).
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
                            "exit_code": error.exit_code,
                        }
                    )
                    hint = f" (hint: {error.hint})" if error.hint else ""
                    warn(f"rejected: {error}{hint}")
                continue
            try:
                done = runner.issue(item.cert)
            except (IssueRefused, LedgerError) as exc:
                rejected.append(
                    {
                        "source": item.source,
                        "row": item.row,
                        "error": str(exc),
                        "exit_code": exc.exit_code,
                    }
                )
                warn(f"rejected: {item.source}, row {item.row}: {exc}")
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
                say(f"issued {done.number}  {done.path}{note}")
    if any(not i.get("reused") for i in issued):
        runner.checkpoint()  # the lab vouches for the log as this run left it
    code = run_exit_code(rejected)
    if as_json:
        for r in rejected:
            del r["exit_code"]
        typer.echo(
            json.dumps({"issued": issued, "rejected": rejected}, ensure_ascii=False, indent=2)
        )
    else:
        say(f"{len(issued)} issued, {len(rejected)} rejected")
    raise typer.Exit(code=code)


@app.command("sign-approve")
def sign_approve(
    ctx: typer.Context,
    pdf: Annotated[Path, typer.Argument(help="The verification certificate to approve.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of replacing PDF.")
    ] = None,
    level: Annotated[
        str | None, typer.Option(help="PAdES level (default: \\[signing] level).")
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
    from certissuer.ledger import Ledger
    from certissuer.sign import Sealer
    from certissuer.verify import Verifier

    state: State = ctx.obj
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
    with Sealer.from_settings(settings, passphrase(settings), level=level) as sealer:
        done = approve_pdf(
            pdf, sealer=sealer, verifier=verifier, out=out, location=settings.lab_place
        )
    say(f"approved {done.number or pdf} by {done.signer}  {done.path}")


@app.command()
def revoke(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The certificate to revoke.")],
    reason: Annotated[str, typer.Option(help="Why (shown to inspectors).")],
) -> None:
    """Revoke a certificate: a new event in the ledger; nothing is overwritten."""
    from certissuer.ledger import Ledger

    state: State = ctx.obj
    settings = state.settings()
    key = token_key(state)  # before anything is written: the event is signed with it
    ledger = Ledger.open(settings.ledger_url, ledger_key=key)
    now = datetime.now(UTC)
    ledger.revoke(number, reason=reason, at=now)
    ledger.checkpoint(key, lab_code=settings.lab_code, at=now)
    say(f"revoked {number}: {reason}")


@app.command()
def amend(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The certificate to replace.")],
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
    issued = amender.amend(number, records[0].cert, reason=reason)
    amender.checkpoint()
    say(f"issued {issued.number}  {issued.path}  (replaces {number})")
