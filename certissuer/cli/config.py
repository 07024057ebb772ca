"""``certissuer init`` and ``certissuer schema``: a starter lab profile, the record's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certissuer.cli._app import app
from certissuer.cli._state import State, print_table, say
from certissuer.config import DEFAULT_CONFIG_NAME
from certissuer.errors import ConfigError
from certissuer.profile import starter_config

__all__ = ["config_app", "config_show", "init", "schema"]

config_app = typer.Typer(help="The lab profile in effect.", no_args_is_help=True)
app.add_typer(config_app, name="config")


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


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print every setting in effect and where it came from (default, profile, variable)."""
    import json
    import os

    from certissuer.profile import effective_settings

    state: State = ctx.obj
    rows = effective_settings(state.config, os.environ)
    if as_json:
        typer.echo(
            json.dumps(
                [{"setting": r.name, "value": r.value, "source": r.source} for r in rows],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    print_table(
        ("setting", "value", "from"),
        ((r.name, json.dumps(r.value, ensure_ascii=False), r.source) for r in rows),
        keep=("setting",),
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of one certificate record."""
    from certissuer import intake

    typer.echo(intake.certificate_schema_json())
