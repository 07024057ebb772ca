"""``certissuer doctor``: check a lab profile (files, keys, ledger, TSA, OCSP, clock)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from certissuer.cli._app import app
from certissuer.cli._state import State, say

__all__ = ["doctor"]


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the lab profile: one line per check, OK, WARN, FAIL or SKIP, with what to do.

    Files and permissions, the signing key (passphrase from the variable the profile names)
    and its certificate's dates, names and chain, the token key, the ledger's reach and
    schema, each TSA (a real time-stamp request) and the clock against it, the signing
    certificate's OCSP and CRL, and the keys the page publishes. Exit 1 if any check fails.
    """
    from certissuer.doctor import as_json as checks_json
    from certissuer.doctor import exit_code, run_checks

    state: State = ctx.obj
    checks = run_checks(state.config, env=os.environ)
    if as_json:
        say(checks_json(checks))
    else:
        for check in checks:
            say(check.line())
    raise typer.Exit(code=exit_code(checks))
