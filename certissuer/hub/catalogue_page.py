"""The catalogue's HTML pages on the hub (a face: parse, call `Catalogue`, present).

* ``GET /catalogue?owner=&serial=&place=&lab=&status=``: a search form and, when any field is
  filled, the certificates and instruments found (text folded: "vinh long" finds "Vĩnh Long"),
  `PAGE_SIZE` a page (``limit=`` up to 500), with the number found in all and "Trang trước /
  Previous", "Trang sau / Next" links (``before=``/``after=`` cursors, the search kept).
* ``GET /catalogue/recall?within=30d&place=&page=``: instruments whose newest certificate from
  any lab has lapsed or lapses within the window, `PAGE_SIZE` a page.

A page parameter that is not one these pages gave (a changed cursor, ``page=abc``) is answered
with 400 and what was expected.

Vietnamese first, then English; no script (the site's CSP); everything from data escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from certissuer.errors import InputError
from certissuer.hub.catalogue import (
    Catalogue,
    CatalogueQuery,
    PageMark,
    Status,
    page_size,
)
from certissuer.hub.catalogue_api import page_link
from certissuer.hub.store import Hub
from certissuer.hub.verify import HUB_VERDICT_LABELS, HubVerdict, page_date, record_noun
from certissuer.registry import parse_window

__all__ = ["PAGE_SIZE", "catalogue_page_router"]

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
PAGE_SIZE = 50
"""The rows a page lists when ``limit`` is not given."""

_RECORD_LABELS = {
    "certificates": ("Giấy chứng nhận", "Certificate"),
    "instruments": ("Phương tiện đo", "Instrument"),
}
_STATE_LABELS = {
    "lapsed": ("Đã hết hạn", "Lapsed"),
    "lapses": ("Sắp hết hạn", "Lapses soon"),
    "revoked": ("Đã thu hồi", "Revoked"),
    "no_longer_valid": ("Hết hiệu lực", "No longer valid"),
}


def _status_label(status: Status | None) -> str:
    if status is None:
        return ""
    vi, en = HUB_VERDICT_LABELS[HubVerdict(status.value)]
    return f"{vi} / {en}"


def _shell(title: str, body: str) -> str:
    """The hub's page frame (as the verdict page at ``/v/<token>``)."""
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head><body>"
        "<h1>Cơ sở dữ liệu đo lường của tỉnh / Provincial measurement register</h1>"
        '<p><a href="/catalogue">Tra cứu / Search</a> · '
        '<a href="/catalogue/recall">Phương tiện đo đến hạn / Recall</a></p>'
        f"{body}</body></html>"
    )


def _table(heads: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v or ''))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _field(name: str, label: str, value: str | None) -> str:
    return (
        f'<label>{escape(label)} <input type="search" name="{name}" '
        f'value="{escape(value or "")}" maxlength="200"></label><br>'
    )


def _pager(previous: str | None, following: str | None) -> str:
    """The links to the pages beside this one (addresses escaped), or nothing."""
    links = []
    if previous:
        links.append(f'<a rel="prev" href="{escape(previous)}">Trang trước / Previous</a>')
    if following:
        links.append(f'<a rel="next" href="{escape(following)}">Trang sau / Next</a>')
    return f"<p>{' · '.join(links)}</p>" if links else ""


def _found(total: int, shown: int) -> str:
    return (
        f"<p>Tìm thấy {total} kết quả / {total} results found (trang này / this page: {shown})</p>"
    )


def _search_form(values: dict[str, str | None]) -> str:
    options = ['<option value="">Tất cả / Any</option>'] + [
        f'<option value="{escape(s.value)}"{" selected" if values["status"] == s.value else ""}>'
        f"{escape(_status_label(s))}</option>"
        for s in Status
    ]
    return (
        '<form method="get" action="/catalogue">'
        + _field("owner", "Chủ sở hữu, khách hàng / Owner, customer", values["owner"])
        + _field("serial", "Số sản xuất / Serial", values["serial"])
        + _field("place", "Nơi sử dụng, địa chỉ / Place of use, address", values["place"])
        + _field("lab", "Mã đơn vị / Lab code", values["lab"])
        + '<label>Tình trạng / Status <select name="status">'
        + "".join(options)
        + "</select></label><br>"
        + '<button type="submit">Tra cứu / Search</button></form>'
    )


def _hit_row(
    lab_code: str, record: str, key: str, status: Status | None, data: dict[str, Any]
) -> tuple[Any, ...]:
    vi, en = _RECORD_LABELS.get(record, (record, record))
    if record == "certificates":
        vi, en = record_noun(data.get("kind"))
        name, serial = data.get("instrument_name"), data.get("instrument_serial")
        owner, place = data.get("customer_name"), None
    else:
        name, serial = data.get("name") or data.get("type_code"), data.get("serial")
        owner = data.get("owner_name")
        place = data.get("place_of_use") or data.get("owner_address")
    return (
        lab_code,
        f"{vi} / {en}",
        key,
        name,
        serial,
        owner,
        place,
        page_date(data.get("valid_until")),
        _status_label(status),
    )


def catalogue_page_router(hub: Hub, *, today: Callable[[], date]) -> APIRouter:
    """The catalogue's pages over `hub`; `today` decides what has expired (Vietnam's day)."""
    router = APIRouter(include_in_schema=False)
    catalogue = Catalogue(hub)

    @router.get("/catalogue", response_class=HTMLResponse)
    def search_page(
        request: Request,
        owner: str | None = None,
        serial: str | None = None,
        place: str | None = None,
        lab: str | None = None,
        status: str | None = None,
        limit: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> HTMLResponse:
        values: dict[str, str | None] = {
            "owner": (owner or "").strip()[:200] or None,
            "serial": (serial or "").strip()[:200] or None,
            "place": (place or "").strip()[:200] or None,
            "lab": (lab or "").strip()[:50] or None,
            "status": (status or "").strip() or None,
        }
        title = "Tra cứu cơ sở dữ liệu / Catalogue search"
        form = _search_form(values)
        wanted: Status | None = None
        if asked := values["status"]:
            try:
                wanted = Status(asked)
            except ValueError:
                choices = ", ".join(Status)
                problem = (
                    f"<p>Tình trạng không hợp lệ / status: expected {escape(choices)}, got "
                    f"'{escape(asked)}'</p>"
                )
                return HTMLResponse(_shell(title, form + problem), 400, headers=_HEADERS)
        try:
            size = page_size(limit, default=PAGE_SIZE)
            if after is not None and before is not None:
                raise InputError("before", "give either after or before, not both")
            start = PageMark.parse(after, where="after") if after is not None else None
            end = PageMark.parse(before, where="before") if before is not None else None
        except InputError as exc:
            problem = f"<p>Trang không hợp lệ / bad page: {escape(str(exc))}</p>"
            return HTMLResponse(_shell(title, form + problem), 400, headers=_HEADERS)
        if not any(values.values()):
            return HTMLResponse(_shell(title, form), headers=_HEADERS)
        query = CatalogueQuery(
            ("certificates", "instruments"),
            values["lab"],
            values["serial"],
            values["owner"],
            values["place"],
            None,
            wanted,
            size,
            after=start,
            before=end,
        )
        page = catalogue.page(query, today=today())
        table = _table(
            (
                "Đơn vị / Lab",
                "Loại / Record",
                "Số / Number",
                "Phương tiện đo / Instrument",
                "Số sản xuất / Serial",
                "Chủ sở hữu / Owner",
                "Nơi sử dụng / Place",
                "Hiệu lực đến / Valid until",
                "Tình trạng / Status",
            ),
            (_hit_row(h.lab_code, h.record, h.key, h.status, h.data) for h in page.hits),
        )
        pager = _pager(
            page_link(request, "before", page.previous), page_link(request, "after", page.next)
        )
        body = form + _found(page.total, len(page.hits)) + pager + table + pager
        return HTMLResponse(_shell(title, body), headers=_HEADERS)

    @router.get("/catalogue/recall", response_class=HTMLResponse)
    def recall_page(
        request: Request,
        within: str = "30d",
        place: str | None = None,
        page: str | None = None,
        limit: str | None = None,
    ) -> HTMLResponse:
        title = "Phương tiện đo đến hạn kiểm định / Instruments due for verification"
        form = (
            '<form method="get" action="/catalogue/recall">'
            + _field("within", "Trong vòng / Within (30d, 3m)", within)
            + _field("place", "Nơi sử dụng, địa chỉ / Place of use, address", place)
            + '<button type="submit">Xem / Show</button></form>'
        )
        day = today()
        try:
            days = parse_window(within, day)
            size = page_size(limit, default=PAGE_SIZE)
            number = _page_number(page)
        except InputError as exc:
            return HTMLResponse(
                _shell(title, form + f"<p>{escape(str(exc))}</p>"), 400, headers=_HEADERS
            )
        found = catalogue.recall(today=day, within_days=days, place=(place or "").strip() or None)
        pages = max(1, -(-len(found) // size))
        if number > pages:
            problem = f"page: expected a page from 1 to {pages}, got {number}"
            return HTMLResponse(
                _shell(title, form + f"<p>{escape(problem)}</p>"), 400, headers=_HEADERS
            )
        shown = found[(number - 1) * size : number * size]
        table = _table(
            (
                "Số sản xuất / Serial",
                "Kiểu / Model",
                "Phương tiện đo / Instrument",
                "Chủ sở hữu / Owner",
                "Nơi sử dụng / Place",
                "Đơn vị / Lab",
                "Số giấy chứng nhận / Certificate",
                "Hiệu lực đến / Valid until",
                "Tình trạng / State",
            ),
            (
                (
                    r.serial,
                    r.model,
                    r.instrument_name,
                    r.owner,
                    r.place,
                    r.lab_code,
                    r.number,
                    page_date(r.valid_until),
                    " / ".join(_STATE_LABELS.get(r.state, (r.state, r.state))),
                )
                for r in shown
            ),
        )
        summary = (
            f"<p>Ngày / Day: {escape(page_date(day))}; trong vòng / within: {days} ngày / days;"
            f" số phương tiện / instruments: {len(found)}; trang / page {number}/{pages}</p>"
        )
        pager = _pager(
            _numbered(request, number - 1) if number > 1 else None,
            _numbered(request, number + 1) if number < pages else None,
        )
        return HTMLResponse(_shell(title, form + summary + pager + table + pager), headers=_HEADERS)

    return router


def _page_number(text: str | None) -> int:
    """The page number asked (1 when not given); `InputError` for anything but 1, 2, ..."""
    if text is None or not text.strip():
        return 1
    value = text.strip()
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 10**6):
        raise InputError("page", f"expected a page number 1, 2, ..., got '{value[:20]}'")
    return int(value)


def _numbered(request: Request, number: int) -> str:
    """The same recall page as `request` at page `number`, every other parameter kept."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    return f"{request.url.path}?{urlencode([*kept, ('page', str(number))])}"
