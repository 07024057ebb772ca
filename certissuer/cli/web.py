"""``certissuer serve``: the inspectors' verification page on the lab's ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from certissuer.cli._app import app
from certissuer.cli._state import State, warn
from certissuer.errors import ConfigError

__all__ = ["serve"]


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on (\\[web] host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (\\[web] port).")] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (the proxy usually does).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the port (each with its own \\[web] pdf_workers).",
        ),
    ] = 1,
) -> None:
    """Serve the inspectors' verification page (the QR code's URL) on the lab's ledger.

    A client that does not send a request's headers within \\[web] header_timeout seconds,
    or its body within \\[web] body_timeout, is disconnected; put a reverse proxy with its
    own limits in front (README). With --workers N, N processes answer on one port; each
    keeps its own rate limits, so a client gets up to N times \\[web] rate_limit.
    """
    import uvicorn

    from certissuer.web import create_app, server_config
    from certissuer.web.server import AppFactory, run_workers

    state: State = ctx.obj
    settings = state.settings()
    settings = settings.replace(
        web_host=host if host is not None else settings.web_host,
        web_port=port if port is not None else settings.web_port,
    )
    log_level = "debug" if state.verbose else "info"
    if workers > 1:
        # Fail here, once, on a bad profile or an unreachable ledger, not in every worker.
        create_app(settings).state.ledger.close()
        warn(
            f"serving {settings.token_url_base}/V/<token> on http://{settings.web_host}:"
            f"{settings.web_port} with {workers} workers (ledger read-only)"
        )
        factory = AppFactory(settings)
        run_workers(
            server_config(
                factory, settings, log_level=log_level, access_log=access_log, workers=workers
            )
        )
        return
    web_app = create_app(settings)
    warn(
        f"serving {settings.token_url_base}/V/<token> on http://{settings.web_host}:"
        f"{settings.web_port} (ledger read-only)"
    )
    config = server_config(web_app, settings, log_level=log_level, access_log=access_log)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # uvicorn has logged why (the port is taken, say)
        raise ConfigError(
            f"cannot serve on {settings.web_host}:{settings.web_port}",
            hint="see the log above; another process may hold the port ([web] port)",
        )
