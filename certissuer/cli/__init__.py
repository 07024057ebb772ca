"""The ``certissuer`` command: a thin Typer face over the library, one module per noun.

Each command parses its options, loads `Settings`, calls the library and prints. Errors are
worded in one place, the boundary every run goes through (`certissuer.cli._boundary`), with
the exit codes of the README's table; stack traces appear only with ``--verbose``.

>>> from typer.testing import CliRunner
>>> from certissuer.cli import app
>>> CliRunner().invoke(app, ["schema"]).exit_code
0
"""

from __future__ import annotations

# The noun modules add their commands to `app` when imported, in the order --help lists them.
# isort: off
from certissuer.cli import (  # noqa: F401
    config,
    keys,
    issue,
    verify,
    ledger,
    dcc,
    batch,
    registry,
    report,
    web,
    doctor,
    hub,
    hub_inspect,
    hub_catalogue,
    hub_annual,
)

# isort: on
from certissuer.cli._app import app, main

__all__ = ["app", "main"]
