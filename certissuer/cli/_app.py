"""The root ``certissuer`` command: its global options and the console entry point.

The noun modules (`certissuer.cli.issue`, `certissuer.cli.ledger`, ...) add their commands
to `app`; `main` runs it inside the one error boundary (`certissuer.cli._boundary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._boundary import GuardedGroup, setup_logging
from certissuer.cli._state import State
from certissuer.config import DEFAULT_CONFIG_NAME

__all__ = ["app", "main"]

app = typer.Typer(
    name="certissuer",
    cls=GuardedGroup,
    help="Issue and verify signed, QR-verifiable measurement certificates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
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
    state = ctx.ensure_object(State)
    state.config = config
    state.verbose = verbose
    setup_logging(verbose)


def main() -> None:
    """Run the command line (the ``certissuer`` console script and ``python -m certissuer``).

    Exits with the code the README's table documents for what happened.
    """
    app()
