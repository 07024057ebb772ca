"""``certissuer init`` and ``certissuer schema``: a starter lab profile, the record's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._app import app
from certissuer.cli._state import say
from certissuer.config import DEFAULT_CONFIG_NAME, starter_config
from certissuer.errors import ConfigError

__all__ = ["init", "schema"]


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the profile.")] = Path(
        DEFAULT_CONFIG_NAME
    ),
    lab_code: Annotated[str, typer.Option(help="Short code of the lab.")] = "LAB",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter lab profile to edit."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it")
    path.write_text(starter_config(lab_code), encoding="utf-8")
    say(f"wrote {path}; edit it, then run 'certissuer keys init keys'")


@app.command()
def schema() -> None:
    """Print the JSON Schema of one certificate record."""
    from certissuer import intake

    typer.echo(intake.certificate_schema_json())
