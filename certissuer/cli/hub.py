"""``certissuer hub``: the province's hub (register labs, serve) and a lab's push to it."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from certissuer._vn import VIETNAM_TZ, local_time
from certissuer.cli._app import app
from certissuer.cli._state import State, open_ledger, say, token_key, warn
from certissuer.errors import ConfigError, InputError

if TYPE_CHECKING:
    from certissuer.hub import Hub

__all__ = ["hub_app"]

hub_app = typer.Typer(
    help="The province's hub: register labs, serve the push API and one verification page; "
    "push a lab's records to it.",
    no_args_is_help=True,
)
app.add_typer(hub_app, name="hub")

_DB_HELP = "The hub's database URL (PostgreSQL; SQLite for a trial). Default: $CERTISSUER_HUB_DB."
DbOption = Annotated[str | None, typer.Option("--db", help=_DB_HELP)]


def open_hub(db: str | None) -> Hub:
    """The hub at `db`, else at ``$CERTISSUER_HUB_DB``; `ConfigError` when neither is given."""
    from certissuer.hub import Hub

    url = db or os.environ.get("CERTISSUER_HUB_DB")
    if not url:
        raise ConfigError("no hub database given", hint="pass --db URL or set $CERTISSUER_HUB_DB")
    return Hub.open(url)


@hub_app.command("register-lab")
def register_lab(
    code: Annotated[str, typer.Option("--code", help="The lab's code (its profile's [lab] code).")],
    name: Annotated[
        str | None, typer.Option("--name", help="The lab's name (needed the first time).")
    ] = None,
    token_key_file: Annotated[
        Path | None,
        typer.Option("--token-key", help="The lab's token public key(s), PEM."),
    ] = None,
    checkpoint_key: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-key", help="Public key(s) signing its checkpoints, if not the token key."
        ),
    ] = None,
    signing_cert: Annotated[
        Path | None,
        typer.Option("--signing-cert", help="The certificate of its PDF signing key (PEM)."),
    ] = None,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate", help="Add the keys given to a registered lab's (the old ones stay)."
        ),
    ] = False,
    retire: Annotated[
        str | None,
        typer.Option("--retire", metavar="KID", help="End the use of the lab's key KID."),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="With --retire: when its use ended (YYYY-MM-DD[THH:MM], Vietnam time)."
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Register a lab with its public keys; --rotate adds keys, --retire KID ends one's use.

    A lab already registered is refused without --rotate: its keys are never replaced.
    """
    from certissuer.token import load_public_keys

    if retire is not None:
        if rotate or token_key_file or checkpoint_key or signing_cert or name:
            raise ConfigError("--retire KID is given alone (with --code and --at)")
        when = _moment(at)
        hub = open_hub(db)
        try:
            retired = hub.retire_key(code, retire, now=when)
        finally:
            hub.close()
        kinds = ", ".join(k.kind for k in retired)
        say(
            f"lab {code}: key {retire.lower()} ({kinds}) retired at {_shown(retired[0].retired_at)}"
        )
        return
    if at is not None:
        raise ConfigError("--at goes with --retire KID")
    cert = None
    if signing_cert is not None:
        try:
            cert = signing_cert.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{signing_cert}: cannot read ({exc.strerror})") from None
        if b"-----BEGIN CERTIFICATE-----" not in cert:
            raise ConfigError(f"{signing_cert}: expected a PEM certificate")
    token_keys = load_public_keys(token_key_file) if token_key_file else []
    checkpoint_keys = load_public_keys(checkpoint_key) if checkpoint_key else []
    hub = open_hub(db)
    try:
        lab = hub.register_lab(
            code,
            name,
            token_keys=token_keys,
            checkpoint_keys=checkpoint_keys,
            signing_cert_pem=cert,
            rotate=rotate,
        )
        in_use = [k.kid for k in hub.lab_keys(code) if k.retired_at is None]
    finally:
        hub.close()
    if rotate:
        say(f"lab {lab.code}: keys in use {', '.join(in_use)}")
    else:
        say(f"lab {lab.code} registered; the hub holds {lab.tree_size} leaves of its log")


def _moment(text: str | None) -> datetime | None:
    """`text` (YYYY-MM-DD or YYYY-MM-DDTHH:MM, Vietnam time when no offset) as a moment."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("--at", f"expected YYYY-MM-DD or YYYY-MM-DDTHH:MM, got '{text}'") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM_TZ)


def _shown(moment: datetime | None) -> str:
    """`moment` on Vietnam's clock, to the minute; "-" for None."""
    if moment is None:
        return "-"
    return local_time(moment).strftime("%Y-%m-%d %H:%M (UTC+7)")


@hub_app.command("labs")
def labs(db: DbOption = None) -> None:
    """List the registered labs, the log each has pushed and its keys (added, retired)."""
    hub = open_hub(db)
    try:
        for lab in hub.labs():
            pushed = _shown(lab.pushed_at) if lab.pushed_at else "never"
            say(f"{lab.code}  {lab.name}  log size {lab.tree_size}  last push {pushed}")
            for key in hub.lab_keys(lab.code):
                ended = f"retired {_shown(key.retired_at)}" if key.retired_at else "in use"
                say(f"    {key.kind:<10} {key.kid}  added {_shown(key.added_at)}  {ended}")
    finally:
        hub.close()


@hub_app.command("upgrade")
def upgrade(db: DbOption = None) -> None:
    """Create or upgrade the hub's database schema (every hub command also does it on opening)."""
    hub = open_hub(db)
    try:
        say(f"the hub database is at schema revision {hub.upgrade()}")
    finally:
        hub.close()


@hub_app.command("serve")
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
) -> None:
    """Serve the push API and the provincial verification page (/v/<token>)."""
    import uvicorn

    from certissuer.hub.app import create_hub_app

    hub = open_hub(db)
    warn(f"hub serving on http://{host}:{port} (push: /api/v1/push, page: /v/<token>)")
    server = uvicorn.Server(
        uvicorn.Config(create_hub_app(hub), host=host, port=port, server_header=False)
    )
    try:
        server.run()
    finally:
        hub.close()
    if not server.started:
        raise ConfigError(
            f"cannot serve on {host}:{port}", hint="another process may hold the port"
        )


@hub_app.command("push")
def push(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The hub's address, e.g. https://hub.example.")],
) -> None:
    """Push this lab's records and signed log since its last accepted push to the hub.

    Signs a checkpoint of the ledger first. When the hub cannot be reached nothing is lost:
    the next push sends everything after the cursor the hub holds.
    """
    from certissuer.hub.push import STATE_NAME, push_to_hub

    state: State = ctx.obj
    settings = state.settings()
    base = settings.source.parent if settings.source else Path.cwd()
    ledger = open_ledger(settings, create=False)
    try:
        outcome = push_to_hub(
            url,
            ledger,
            token_key(state),
            lab_code=settings.lab_code,
            state_path=base / STATE_NAME,
        )
    finally:
        ledger.close()
    say(
        f"pushed to {url}: log {outcome.from_size} -> {outcome.tree_size}, "
        f"{outcome.stored} stored, {outcome.unchanged} unchanged, cursor {outcome.cursor}"
    )
