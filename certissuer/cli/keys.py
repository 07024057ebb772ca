"""``certissuer keys``: make the keys of a demo or trial PKI for a lab."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._app import app
from certissuer.cli._state import say
from certissuer.errors import ConfigError

__all__ = ["keys_app", "keys_init"]

keys_app = typer.Typer(help="Make keys for a lab (demo and trial PKI).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(
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
        say(f"{name:18} {p}")
