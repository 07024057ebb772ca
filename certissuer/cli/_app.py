"""The root ``certissuer`` command: its global options and the console entry point.

The noun modules (`certissuer.cli.issue`, `certissuer.cli.ledger`, ...) add their commands
to `app`; `main` runs it inside the one error boundary (`certissuer.cli._boundary`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._boundary import GuardedGroup, setup_logging
from certissuer.cli._state import State
from certissuer.config import DEFAULT_CONFIG_NAME

__all__ = ["app", "main", "skip_teardown"]

_skip_teardown = False

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

    Exits with the code the README's table documents for what happened. A command that
    called `skip_teardown` ends the process once its output is flushed, without the
    interpreter's teardown of every module it imported (a third of a second after a
    verification, longer than the ledger lookup itself).
    """
    try:
        app()
    except SystemExit as exc:
        if not _skip_teardown or not (exc.code is None or isinstance(exc.code, int)):
            raise
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(exc.code or 0)


def skip_teardown() -> None:
    """Let `main` end this run without the interpreter's teardown.

    For a command that has written everything it writes and holds nothing that needs closing
    beyond what the operating system closes (files read, read-only database connections
    already disposed, child processes reaped). Has no effect when the command line runs
    inside another program (`app` called directly, as in tests): only `main` acts on it.
    """
    global _skip_teardown
    _skip_teardown = True
