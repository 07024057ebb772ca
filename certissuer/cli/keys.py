"""``certissuer keys`` and ``trial-services``: the keys of a demo or trial PKI for a lab, and
the trial CA's time-stamping, OCSP and CRL services (NOT FOR PRODUCTION)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._app import app
from certissuer.cli._state import say, warn
from certissuer.errors import ConfigError

__all__ = ["keys_app", "keys_init", "keys_revoke_trial", "trial_services"]

keys_app = typer.Typer(help="Make keys for a lab (demo and trial PKI).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _passphrase(prompt: str, *, confirm: bool) -> bytes:
    env = os.environ.get("CERTISSUER_P12_PASSPHRASE")
    if env is not None:
        return env.encode()
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)).encode()
    raise ConfigError(f"set $CERTISSUER_P12_PASSPHRASE to the {prompt[0].lower() + prompt[1:]}")


@keys_app.command("init")
def keys_init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new keys.")],
    organisation: Annotated[str, typer.Option(help="Organisation name in the certificates.")] = (
        "certissuer demo lab"
    ),
    signer: Annotated[
        str | None,
        typer.Option(help="Signer's name (signer.p12; with --person only when given)."),
    ] = None,
    person: Annotated[
        list[str] | None,
        typer.Option(
            "--person",
            help="A person's name, exactly as printed; makes a trial PKI with a key per person.",
        ),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="The roles of the --person before it: verifier, head, signatory "
            "(comma-separated for several).",
        ),
    ] = None,
    services_url: Annotated[
        str | None,
        typer.Option(
            help="Where the trial services answer (default with --person: http://127.0.0.1:8790)."
        ),
    ] = None,
    key_type: Annotated[str, typer.Option(help="rsa2048 or p256.")] = "rsa2048",
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
) -> None:
    """Make a CA, a PKCS#12 signer (or one per --person) and a QR token key (a self-made PKI).

    With --person (or --services-url) the CA is a trial CA, NOT FOR PRODUCTION: its
    certificates name a CRL and an OCSP responder that 'certissuer trial-services DIR' answers,
    with a time-stamping authority. Prints the lab profile lines that use the new keys.
    """
    from certissuer.keys import Person, Role, make_keys, profile_snippet

    names, roles = person or [], role or []
    if len(roles) != len(names):
        raise ConfigError(
            f"{len(names)} --person but {len(roles)} --role given",
            hint='follow each --person with its --role, e.g. --person "Lê Hoàng Phúc" '
            "--role head,signatory",
        )
    people = [
        Person(
            name.strip(),
            tuple(Role.parse(r, where=f"--role of {name!r}") for r in spec.split(",") if r.strip()),
        )
        for name, spec in zip(names, roles, strict=True)
    ]
    paths = make_keys(
        directory,
        passphrase=_passphrase("Passphrase for the new keys", confirm=True),
        organisation=organisation,
        signer_name=signer if people else (signer or "Demo signer"),
        key_type=key_type,
        overwrite=force,
        people=people,
        services_url=services_url,
    )
    rows = [("CA certificate", paths.ca_cert)]
    if paths.signer_p12 is not None:
        rows.append(("signer (PKCS#12)", paths.signer_p12))
    rows += [(f"{p.name} ({', '.join(p.roles)})", p.pkcs12) for p in paths.people]
    if paths.tsa_cert is not None and paths.index is not None:
        rows += [("TSA certificate", paths.tsa_cert), ("trial CA index", paths.index)]
    rows += [("token key", paths.token_key), ("token public key", paths.token_public)]
    for name, p in rows:
        say(f"{name:18} {p}")
    if paths.services_url:
        warn(
            f"Trial CA - NOT FOR PRODUCTION. Start its services with "
            f"'certissuer trial-services {directory}' ({paths.services_url})."
        )
    say("")
    say("# lab profile lines for these keys:")
    say(profile_snippet(paths).rstrip("\n"))


@keys_app.command("revoke-trial")
def keys_revoke_trial(
    directory: Annotated[Path, typer.Argument(help="The trial PKI's folder.")],
    who: Annotated[str, typer.Argument(help="Serial number (hex) or a person's name.")],
) -> None:
    """Revoke a certificate of a trial CA: its OCSP and CRL say so from the next request on."""
    from certissuer.keys import revoke_trial

    serial, subject = revoke_trial(directory, who)
    say(f"revoked {serial:x}  {subject}")


@app.command("trial-services")
def trial_services(
    directory: Annotated[Path, typer.Argument(help="The trial PKI's folder (keys init --person).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8790,
) -> None:
    """Answer a trial CA's time stamps (RFC 3161), OCSP and CRL on HOST:PORT. NOT FOR PRODUCTION.

    The CA's and TSA's keys are opened with $CERTISSUER_P12_PASSPHRASE (or a prompt). Runs
    until interrupted (Ctrl-C or SIGTERM).
    """
    from certissuer.trial import BANNER, TrialAuthority, TrialServer

    warn(BANNER)
    authority = TrialAuthority.load(
        directory, _passphrase("Passphrase of the trial CA", confirm=False)
    )
    server = TrialServer(authority, host, port)
    warn(f"listening on {server.url}  (POST /tsa, POST /ocsp, GET /ocsp/<base64>, GET /crl)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        warn("stopped")
