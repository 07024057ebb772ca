"""The inspector's page behind the QR code: verdict page, PDF upload and a JSON API.

An inspector in a market or a factory scans the QR code on a certificate and must learn, on a
phone and in a few seconds, whether it is genuine and still valid, and see enough to compare it
with the instrument in front of them.

>>> from certissuer.web import create_app
>>> app = create_app(load_settings(Path("certissuer.toml")))  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP

Routes (HTML is bilingual, Vietnamese first, and needs no JavaScript; its one script adds the
offline check, `certissuer.web.offline`):

* ``GET /V/{token}`` (and ``/v/{token}``, as older QR codes print it): the verdict for a QR
  code. The token's signature is checked offline with the lab's public key first; a token
  that fails is NOT GENUINE and the database is never asked. Then the ledger decides: VALID,
  REVOKED (reason), SUPERSEDED by a number, EXPIRED, or NOT IN THE LEDGER, with the
  certificate's fields and the SHA-256 of the signed PDF.
* ``GET /V/{token}/pdf`` (or ``/v/…``): the signed PDF, where the lab allows it
  (``[web] allow_download``).
* ``GET /`` and ``POST /verify``: upload a PDF and get the full verdict of ``certissuer verify``.
* ``GET /lookup?number=…&serial=…``: for a torn or smudged QR code, the ledger's verdict for a
  certificate number AND the instrument's serial number (both printed on the paper); an
  unknown number and a wrong serial number get the same answer, so a number alone reveals
  nothing. Each lookup costs as much of the rate limit as an upload.
* ``GET /.well-known/certissuer/keys.json``: the lab's token keys, signed, for the offline
  check; ``/manifest.webmanifest``, ``/sw.js``, ``/static/offline.js``, ``/static/offline.html``:
  the installable app, its service worker, script and offline page.
* ``GET /api/v1/verdict/{token}``, ``GET /api/v1/lookup``, ``POST /api/v1/verify``,
  ``GET /api/v1/lab``: the same as JSON, described by ``/api/v1/openapi.json``.
* ``GET /healthz`` and ``GET /metrics``: for monitoring (`certissuer.web.monitor`).

There is no lookup by certificate number alone: without a genuine token, the PDF itself or the
serial number nothing is revealed, so numbers cannot be enumerated. The app reads the ledger and
never writes it. Uploads are limited in size (413) and type (415) and parsed in worker processes
with time and memory limits (`certissuer.web.worker`); each client address (an IPv6 /64) is
rate limited and may have only a few uploads in progress at once (429 with Retry-After); a
request body must be in within a deadline (408); every response carries a strict
Content-Security-Policy and friends; every value is escaped.
The page never redirects, and all its links are relative.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from certissuer.config import Settings
from certissuer.errors import LedgerError
from certissuer.ledger import Ledger
from certissuer.web.api import add_api_routes
from certissuer.web.middleware import (
    BodyDeadline,
    BodyLimit,
    Problem,
    RateLimit,
    SecurityHeaders,
    UploadLimit,
    client_key,
)
from certissuer.web.monitor import add_monitoring
from certissuer.web.offline import KEYS_CACHE_CONTROL, STATIC_CACHE_CONTROL
from certissuer.web.site import Site, lookup_fields, read_pdf_upload
from certissuer.web.views import STYLESHEET_CACHE_CONTROL
from certissuer.web.worker import PdfWorkerPool

__all__ = ["create_app"]

_logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, ledger: Ledger | None = None) -> FastAPI:
    """The verification web app for the lab described by `settings`.

    `ledger` is the ledger to read; None opens ``settings.ledger_url`` read-only (the app never
    writes it) and refuses a ledger recorded for another lab. PDF workers open the ledger
    read-only themselves, for the same lab. Raises `ConfigError` when
    the trust roots or token key are missing and `LedgerError` when the ledger cannot be
    opened or belongs to another lab.
    """
    own_ledger = ledger is None
    ledger = (
        ledger
        if ledger is not None
        else Ledger.open_readonly(
            settings.ledger_url, lab_code=settings.lab_code, profile=settings.source
        )
    )
    pool = PdfWorkerPool(
        settings,
        size=max(settings.web_pdf_workers, 1),
        timeout=settings.web_pdf_timeout,
        memory_bytes=settings.web_pdf_memory_mb * 1024 * 1024,
    )
    site = Site(settings, ledger, pool)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()
        site.readers.shutdown(wait=False, cancel_futures=True)
        if own_ledger:
            site.ledger.close()

    app = FastAPI(
        title="certissuer verification",
        summary="Verdicts for verification and calibration certificates, by QR token or PDF.",
        version=_version(),
        docs_url=None,  # Swagger UI needs inline script, which the CSP forbids
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        # Starlette would answer "/v/x/" with a redirect built from the request's Host header.
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.site = site
    app.state.pdf_pool = pool
    app.state.ledger = ledger

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        body, content_type = site.pages.render_problem(exc, request.url.path)
        return Response(body, status_code=exc.status, media_type=None, headers={
            "content-type": content_type, **exc.headers})  # fmt: skip

    @app.exception_handler(LedgerError)
    async def _ledger_down(request: Request, exc: LedgerError) -> Response:
        _logger.error("ledger: %s", exc)
        problem = Problem(
            503,
            "Không đọc được sổ cấp lúc này. Vui lòng thử lại sau.",
            "The ledger cannot be read right now. Try again later.",
            {"Retry-After": "60"},
        )
        return await _problem(request, problem)

    # -- HTML ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return site.pages.page("index.html.j2", root="")

    @app.get("/static/web.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response(
            site.pages.css,
            media_type="text/css",
            headers={"Cache-Control": STYLESHEET_CACHE_CONTROL},
        )

    # -- the offline check (certissuer.web.offline) ------------------------------------------

    offline = site.offline

    @app.get("/.well-known/certissuer/keys.json", include_in_schema=False)
    def keys_json() -> Response:
        return Response(
            offline.keys_json(),
            media_type="application/json",
            headers={"Cache-Control": KEYS_CACHE_CONTROL, "Access-Control-Allow-Origin": "*"},
        )

    @app.get("/manifest.webmanifest", include_in_schema=False)
    def manifest() -> Response:
        return Response(
            offline.manifest,
            media_type="application/manifest+json",
            headers={"Cache-Control": STYLESHEET_CACHE_CONTROL},
        )

    @app.get("/sw.js", include_in_schema=False)
    def service_worker() -> Response:
        return Response(
            offline.worker,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": STATIC_CACHE_CONTROL},
        )

    @app.get("/static/offline.js", include_in_schema=False)
    def offline_script() -> Response:
        return Response(
            offline.script,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": STATIC_CACHE_CONTROL},
        )

    @app.get("/static/offline.html", include_in_schema=False)
    def offline_page() -> Response:
        return Response(
            offline.shell,
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": STATIC_CACHE_CONTROL},
        )

    @app.get("/static/icon.svg", include_in_schema=False)
    def icon() -> Response:
        return Response(
            offline.icon,
            media_type="image/svg+xml",
            headers={"Cache-Control": STYLESHEET_CACHE_CONTROL},
        )

    async def verdict_page(request: Request) -> Response:
        token: str = request.path_params["token"]
        if site.local_ledger:
            # An SQLite read takes tens of microseconds: less than a hop to a worker thread.
            answer = site.check_token(token)
        else:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(site.readers, site.check_token, token)
        if answer.html is None:
            report, details = answer.report, answer.details
            download = (
                f"{token}/pdf"
                if details is not None and settings.web_allow_download and details.pdf_sha256
                else None
            )
            answer.html = site.pages.verdict(
                report, details, root="../", download=download
            ).encode()
        return Response(answer.html, media_type="text/html; charset=utf-8")

    # The hot path (every QR scan): a plain Starlette route, without FastAPI's parameter
    # machinery, which costs more than the rest of the request.
    # The QR code holds the upper-case URL ("/V/", alphanumeric mode, see certissuer.token);
    # tokens printed before it hold "/v/". A path is case-sensitive: both are routed.
    for prefix in ("/V", "/v"):
        app.add_route(f"{prefix}/{{token}}", verdict_page, methods=["GET"], include_in_schema=False)

    @app.get("/V/{token}/pdf", include_in_schema=False)
    @app.get("/v/{token}/pdf", include_in_schema=False)
    def download_pdf(token: str) -> Response:
        data, filename = site.signed_pdf(token)
        return Response(
            data,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.get("/lookup", response_class=HTMLResponse, include_in_schema=False)
    def lookup_page(
        number: Annotated[str, Query(max_length=200)] = "",
        serial: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        answer = site.lookup(*lookup_fields(number, serial))
        return HTMLResponse(
            site.pages.verdict(answer.report, answer.details, root="", looked_up=True)
        )

    @app.post("/verify", response_class=HTMLResponse, include_in_schema=False)
    async def verify_upload(
        request: Request,
        file: Annotated[UploadFile | None, File(description="The certificate PDF")] = None,
    ) -> HTMLResponse:
        data = await read_pdf_upload(file)
        report, details = await site.check_upload(data, client_key(request.scope))
        return HTMLResponse(site.pages.verdict(report, details, root="", uploaded=True))

    add_api_routes(app, site)

    # Outermost last: headers on every answer, then the rate limit, the uploads in progress,
    # the body's deadline and the body's size.
    render = site.pages.render_problem
    app.add_middleware(BodyLimit, limit=settings.web_max_upload, render=render)
    app.add_middleware(BodyDeadline, seconds=settings.web_body_timeout, render=render)
    app.add_middleware(UploadLimit, per_client=settings.web_upload_concurrency, render=render)
    app.add_middleware(
        RateLimit,
        per_minute=settings.web_rate_limit,
        burst=settings.web_rate_burst,
        render=render,
    )
    app.add_middleware(
        SecurityHeaders,
        hsts=settings.token_url_base.startswith("https://"),
        render=render,
    )
    add_monitoring(app, site)  # /healthz, /metrics; outermost, so every refusal is counted
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("certissuer")
    except PackageNotFoundError:
        return "0"
