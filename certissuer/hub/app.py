"""The hub's web face: labs push to it, inspectors verify any registered lab's QR code on it.

* ``GET /api/v1/labs/<code>/head``: the log size, root and cursor the hub holds for a lab.
* ``POST /api/v1/push``: a lab's signed push (`certissuer.hub.push`); 200 with what changed,
  409 with the reason when refused.
* ``GET /v/<token>`` (and ``/V/<token>``, the QR code's spelling): the verdict page, Vietnamese
  first, then English. ``GET /api/v1/verify/<token>``: the same verdict as JSON.
* ``GET /inspect/<round>`` and ``POST /api/v1/inspections/<round>/checks``: the inspector's
  phone page and its API (`certissuer.hub.inspect_app`).
* ``GET /catalogue`` and ``/catalogue/recall``: the catalogue's search and recall pages
  (`certissuer.hub.catalogue_page`); its JSON API under ``/api/v1/catalogue``.

A face: it parses, calls `Hub` and `verify_token`, and presents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from certissuer._vn import local_date
from certissuer.errors import CertissuerError
from certissuer.hub.catalogue_api import catalogue_router
from certissuer.hub.catalogue_page import catalogue_page_router
from certissuer.hub.inspect_app import inspection_router
from certissuer.hub.inspections import Inspections
from certissuer.hub.push import PushRefused
from certissuer.hub.store import Hub
from certissuer.hub.verify import HubAnswer, page_date, record_noun, verify_token
from certissuer.web.middleware import (
    BodyDeadline,
    BodyLimit,
    Problem,
    RateLimit,
    SecurityHeaders,
)

__all__ = ["MAX_PUSH_BYTES", "create_hub_app"]

MAX_PUSH_BYTES = 64 * 1024 * 1024
"""The largest push body accepted (a lab's first push of some hundred thousand records)."""

_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _today() -> date:
    return local_date(datetime.now(UTC))


def _render_problem(problem: Problem, path: str) -> tuple[bytes, str]:
    """A refusal by the middleware: JSON under /api/, a short bilingual page elsewhere."""
    if path.startswith("/api/"):
        body = json.dumps({"detail": problem.en, "detail_vi": problem.vi}, ensure_ascii=False)
        return body.encode(), "application/json"
    page = f"<!doctype html><p>{escape(problem.vi)}</p><p>{escape(problem.en)}</p>"
    return page.encode(), "text/html; charset=utf-8"


def create_hub_app(
    hub: Hub,
    *,
    today: Callable[[], date] = _today,
    max_push_bytes: int = MAX_PUSH_BYTES,
    rate_per_minute: int = 600,
    hsts: bool = False,
) -> FastAPI:
    """The hub's web app on `hub`; `today` gives the day that decides EXPIRED (Vietnam).

    The lab page's middleware guards it: bodies over `max_push_bytes` or trickled in too slowly
    are refused, each client gets `rate_per_minute` requests, and every answer carries the
    security headers (`hsts` when served over HTTPS).
    """
    app = FastAPI(
        title="certissuer hub",
        summary="The province's register of certificates and witness of every lab's log.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )

    @app.get("/api/v1/labs/{code}/head")
    def lab_head(code: str) -> JSONResponse:
        head = hub.head(code)
        if head is None:
            return JSONResponse(
                {"detail": f"lab {code} is not registered at the hub"}, 404, headers=_NO_STORE
            )
        return JSONResponse(
            {
                "lab_code": head.lab_code,
                "tree_size": head.tree_size,
                "root_hash": head.root_hash,
                "cursor": head.cursor,
            },
            headers=_NO_STORE,
        )

    @app.post("/api/v1/push")
    async def push(request: Request) -> JSONResponse:
        body = await request.body()  # BodyLimit has bounded it
        try:
            envelope = json.loads(body)
        except ValueError:
            return JSONResponse({"detail": "not a certissuer push: not JSON"}, 400)
        try:
            result = await run_in_threadpool(hub.accept, envelope)
        except PushRefused as exc:
            return JSONResponse({"detail": str(exc)}, 409, headers=_NO_STORE)
        except CertissuerError as exc:
            return JSONResponse({"detail": str(exc)}, 400, headers=_NO_STORE)
        return JSONResponse(
            {
                "lab_code": result.lab_code,
                "from_size": result.from_size,
                "tree_size": result.tree_size,
                "cursor": result.cursor,
                "stored": result.stored,
                "unchanged": result.unchanged,
            },
            headers=_NO_STORE,
        )

    @app.get("/api/v1/verify/{token}")
    def verify_json(token: str) -> JSONResponse:
        return JSONResponse(verify_token(hub, token, today=today()).to_dict(), headers=_NO_STORE)

    @app.get("/v/{token}", response_class=HTMLResponse)
    @app.get("/V/{token}", response_class=HTMLResponse, include_in_schema=False)
    def verify_page(token: str) -> HTMLResponse:
        answer = verify_token(hub, token, today=today())
        return HTMLResponse(_page(answer), headers=_NO_STORE)

    app.include_router(inspection_router(Inspections(hub), today=today))
    app.include_router(catalogue_router(hub, today=today))
    app.include_router(catalogue_page_router(hub, today=today))

    app.add_middleware(BodyLimit, limit=max_push_bytes, render=_render_problem)
    app.add_middleware(BodyDeadline, seconds=300.0, render=_render_problem)
    app.add_middleware(
        RateLimit,
        per_minute=rate_per_minute,
        burst=max(rate_per_minute // 10, 1),
        render=_render_problem,
    )
    app.add_middleware(SecurityHeaders, hsts=hsts, render=_render_problem)
    return app


def _page(answer: HubAnswer) -> str:
    """The verdict page: Vietnamese first, then English; everything from data escaped."""
    # A test report (kind "testing") is worded as the lab's page words it: a sample, not an
    # instrument.
    testing = bool(answer.record) and (answer.record or {}).get("kind") == "testing"
    noun_vi, noun_en = record_noun("testing")  # the catalogue's wording of a report
    rows = [
        ("Đơn vị / Laboratory", f"{answer.lab_code or ''} {answer.lab_name or ''}".strip()),
        (
            f"Số {noun_vi.lower()} / {noun_en} No."
            if testing
            else "Số giấy chứng nhận / Certificate number",
            answer.number or "",
        ),
    ]
    if answer.record:
        rec = answer.record
        rows += [
            (
                "Mẫu thử nghiệm / Item tested" if testing else "Phương tiện đo / Instrument",
                f"{rec.get('instrument_name') or ''}",
            ),
            (
                "Số / Serial No." if testing else "Số sản xuất / Serial",
                f"{rec.get('instrument_serial') or ''}",
            ),
            ("Ngày cấp / Issued", page_date(rec.get("issue_date"))),
            ("Hiệu lực đến / Valid until", page_date(rec.get("valid_until"))),
        ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows if v)
    reasons = "".join(f"<li>{escape(r)}</li>" for r in answer.reasons)
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Tra cứu giấy chứng nhận / Certificate check</title></head><body>"
        "<h1>Cơ sở dữ liệu đo lường của tỉnh / Provincial measurement register</h1>"
        f'<p class="verdict {escape(answer.verdict.value)}"><strong>{escape(answer.label_vi)}'
        f"</strong><br>{escape(answer.label_en)}</p>"
        f"<table>{table}</table>"
        f"<ul>{reasons}</ul></body></html>"
    )
