"""The catalogue's JSON API on the hub (a face: parse, call `Catalogue`, present).

* ``GET /api/v1/catalogue/labs?kind=&q=``: the registered labs, what they do, scope,
  accreditation and how many records each pushed.
* ``GET /api/v1/catalogue/search?record=&lab=&serial=&owner=&place=&kind=&status=&limit=``:
  certificates and register rows, text matched with marks folded ("vinh long" finds
  "Vĩnh Long"); ``record`` may repeat (certificates, instruments, standards, inspectors).
* ``GET /api/v1/catalogue/recall?within=30d&place=``: instruments whose newest certificate
  from any lab has lapsed or lapses within the window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from certissuer.errors import InputError
from certissuer.hub.catalogue import RECORD_KINDS, Catalogue, CatalogueQuery, Status
from certissuer.hub.store import Hub
from certissuer.registry import parse_window

__all__ = ["catalogue_router"]

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _bad(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, 400, headers=_HEADERS)


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
        record: Annotated[list[str] | None, Query()] = None,
        lab: str | None = None,
        serial: str | None = None,
        owner: str | None = None,
        place: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> JSONResponse:
        records = tuple(record or ("certificates", "instruments"))
        if unknown := [r for r in records if r not in RECORD_KINDS]:
            return _bad(f"record: expected {', '.join(RECORD_KINDS)}, got '{unknown[0]}'")
        try:
            wanted = Status(status) if status else None
        except ValueError:
            return _bad(f"status: expected {', '.join(Status)}, got '{status}'")
        query = CatalogueQuery(records, lab, serial, owner, place, kind, wanted, limit)
        hits = catalogue.search(query, today=today())
        return JSONResponse(
            {"count": len(hits), "results": [h.to_dict() for h in hits]}, headers=_HEADERS
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
