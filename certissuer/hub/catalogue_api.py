"""The catalogue's JSON API on the hub (a face: parse, call `Catalogue`, present).

* ``GET /api/v1/catalogue/labs?kind=&q=``: the registered labs, what they do, scope,
  accreditation and how many records each pushed.
* ``GET /api/v1/catalogue/search?record=&lab=&serial=&owner=&place=&kind=&status=&limit=``:
  certificates and register rows, text matched with marks folded ("vinh long" finds
  "Vĩnh Long"); ``record`` may repeat (certificates, instruments, standards, inspectors).
  One page of ``limit`` results (default 100, at most 500) with ``total``, the number
  matching in all; ``next`` and ``previous`` are the cursors of the pages beside it (pass one
  as ``after=`` or ``before=``), ``next_url`` and ``previous_url`` the same searches with it.
* ``GET /api/v1/catalogue/recall?within=30d&place=``: instruments whose newest certificate
  from any lab has lapsed or lapses within the window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from certissuer.errors import InputError
from certissuer.hub.catalogue import (
    RECORD_KINDS,
    Catalogue,
    CatalogueQuery,
    PageMark,
    Status,
    page_size,
)
from certissuer.hub.store import Hub
from certissuer.registry import parse_window

__all__ = ["API_PAGE_SIZE", "catalogue_router", "page_link"]

API_PAGE_SIZE = 100
"""The results a page of the search API holds when ``limit`` is not given."""

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _bad(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, 400, headers=_HEADERS)


def page_link(request: Request, name: str, mark: PageMark | None) -> str | None:
    """The address of the same search as `request` at the page `name` (``after`` or
    ``before``) `mark`, or None without a mark: every other parameter kept, encoded."""
    if mark is None:
        return None
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "before")]
    return f"{request.url.path}?{urlencode([*kept, (name, mark.text)])}"


def catalogue_router(hub: Hub, *, today: Callable[[], date]) -> APIRouter:
    """The catalogue's routes over `hub`; `today` decides what has expired (Vietnam's day)."""
    router = APIRouter(prefix="/api/v1/catalogue")
    catalogue = Catalogue(hub)

    @router.get("/labs")
    def labs(kind: str | None = None, q: str | None = None) -> JSONResponse:
        found = catalogue.labs(kind=kind, text=q)
        return JSONResponse({"labs": [lab.to_dict() for lab in found]}, headers=_HEADERS)

    @router.get("/search")
    def search(
        request: Request,
        record: Annotated[list[str] | None, Query()] = None,
        lab: str | None = None,
        serial: str | None = None,
        owner: str | None = None,
        place: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        limit: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> JSONResponse:
        records = tuple(record or ("certificates", "instruments"))
        if unknown := [r for r in records if r not in RECORD_KINDS]:
            return _bad(f"record: expected {', '.join(RECORD_KINDS)}, got '{unknown[0]}'")
        try:
            wanted = Status(status) if status else None
        except ValueError:
            return _bad(f"status: expected {', '.join(Status)}, got '{status}'")
        try:
            size = page_size(limit, default=API_PAGE_SIZE)
            if after is not None and before is not None:
                raise InputError("before", "give either after or before, not both")
            start = PageMark.parse(after, where="after") if after is not None else None
            end = PageMark.parse(before, where="before") if before is not None else None
        except InputError as exc:
            return _bad(str(exc))
        query = CatalogueQuery(
            records, lab, serial, owner, place, kind, wanted, size, after=start, before=end
        )
        page = catalogue.page(query, today=today())
        return JSONResponse(
            {
                "count": len(page.hits),
                "total": page.total,
                "results": [h.to_dict() for h in page.hits],
                "next": page.next.text if page.next else None,
                "previous": page.previous.text if page.previous else None,
                "next_url": page_link(request, "after", page.next),
                "previous_url": page_link(request, "before", page.previous),
            },
            headers=_HEADERS,
        )

    @router.get("/recall")
    def recall(within: str = "30d", place: str | None = None) -> JSONResponse:
        day = today()
        try:
            days = parse_window(within, day)
        except InputError as exc:
            return _bad(str(exc))
        found = catalogue.recall(today=day, within_days=days, place=place)
        return JSONResponse(
            {
                "today": day.isoformat(),
                "within_days": days,
                "count": len(found),
                "instruments": [r.to_dict() for r in found],
            },
            headers=_HEADERS,
        )

    return router
