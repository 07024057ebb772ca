"""The inspector's phone page on the hub: record the instruments checked in a round.

* ``GET /inspect/<round>``: a page for a mobile browser, Vietnamese first: scan the QR code
  (the phone's camera takes a photo, the browser reads it) or paste its URL, or type the
  certificate number and serial; say what was found and the action taken.
* ``POST /api/v1/inspections/<round>/checks``: record one check (JSON). The round's inspector
  token must come in the ``X-Inspector-Token`` header (or the ``inspector`` cookie); the
  answer carries the verdict the hub computed, never one sent by the page.

A face: it parses, calls `Inspections.add_check`, and presents. The hub's middleware rate
limits it like every other path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from certissuer.hub.inspections import FOUND_LABELS, InspectionError, Inspections
from certissuer.hub.verify import HUB_VERDICT_LABELS, HubVerdict

__all__ = ["TOKEN_HEADER", "inspection_router"]

TOKEN_HEADER = "X-Inspector-Token"
"""The header carrying a round's inspector token."""

_NO_STORE = {"Cache-Control": "no-store"}
_MAX_FIELD = 2000


def inspection_router(inspections: Inspections, *, today: Callable[[], date]) -> APIRouter:
    """The phone page and its API over `inspections`; `today` decides EXPIRED."""
    router = APIRouter()

    @router.get("/inspect.js", include_in_schema=False)
    def script() -> Response:
        return Response(_SCRIPT, media_type="text/javascript", headers=_NO_STORE)

    @router.get("/inspect/{round_id}", response_class=HTMLResponse)
    def page(round_id: int) -> HTMLResponse:
        try:
            rnd = inspections.get(round_id)
        except InspectionError:
            return HTMLResponse(
                "<!doctype html><p>Không có đợt kiểm tra này.</p><p>No such inspection round.</p>",
                404,
                headers=_NO_STORE,
            )
        return HTMLResponse(_page(round_id, rnd.place, rnd.on, rnd.team), headers=_NO_STORE)

    @router.post("/api/v1/inspections/{round_id}/checks")
    async def add(round_id: int, request: Request) -> JSONResponse:
        token = request.headers.get(TOKEN_HEADER) or request.cookies.get("inspector")
        allowed = await run_in_threadpool(inspections.inspector_may, round_id, token)
        if not allowed:
            return JSONResponse(
                {
                    "detail": "a valid inspector token of an open round is required",
                    "detail_vi": "Cần mã kiểm tra viên hợp lệ của đợt kiểm tra đang mở.",
                },
                403,
                headers=_NO_STORE,
            )
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "expected a JSON object"}, 400, headers=_NO_STORE)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "expected a JSON object"}, 400, headers=_NO_STORE)
        fields = {k: _text(body.get(k)) for k in _FIELDS}
        try:
            check = await run_in_threadpool(
                lambda: inspections.add_check(
                    round_id,
                    token=fields["token"],
                    number=fields["number"],
                    serial=fields["serial"],
                    found=fields["found"] or "",
                    action=fields["action"] or "",
                    instrument_type=fields["instrument_type"],
                    lab_code=fields["lab_code"],
                    today=today(),
                )
            )
        except InspectionError as exc:
            return JSONResponse({"detail": str(exc)}, 400, headers=_NO_STORE)
        verdict = HubVerdict(check.verdict)
        vi, en = HUB_VERDICT_LABELS[verdict]
        return JSONResponse(
            {
                "id": check.id,
                "verdict": verdict.value,
                "label_vi": vi,
                "label_en": en,
                "number": check.number,
                "serial": check.serial,
                "lab_code": check.lab_code,
                "found": check.found,
                "instrument_type": check.instrument_type,
            },
            headers=_NO_STORE,
        )

    return router


_FIELDS = ("token", "number", "serial", "lab_code", "found", "action", "instrument_type")


def _text(value: Any) -> str | None:
    """A form field as text, or None; over-long fields are cut (the database bounds them)."""
    if value is None:
        return None
    text = str(value).strip()[:_MAX_FIELD]
    return text or None


def _page(round_id: int, place: str, on: date, team: str) -> str:
    """The phone page: Vietnamese first, then English; everything from data escaped."""
    options = "".join(
        f'<option value="{escape(f.value)}">{escape(vi)} / {escape(en)}</option>'
        for f, (vi, en) in FOUND_LABELS.items()
    )
    return f"""<!doctype html><html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiểm tra đo lường / Inspection</title>
<script src="/inspect.js" defer></script></head><body>
<h1>Kiểm tra nhà nước về đo lường<br><small>State inspection of measuring instruments</small></h1>
<p>Đợt / Round {round_id}: {escape(place)} · {on.isoformat()} · {escape(team)}</p>
<form id="check" data-round="{round_id}">
<p><label>Mã kiểm tra viên / Inspector token<br>
<input id="inspector" type="password" autocomplete="off" required></label></p>
<fieldset><legend>Quét mã QR / Scan the QR code</legend>
<p><label>Chụp mã QR / Photograph the QR code<br>
<input id="photo" type="file" accept="image/*" capture="environment"></label></p>
<p><label>hoặc dán đường dẫn / or paste its URL<br>
<input id="token" name="token" inputmode="url" autocomplete="off"></label></p></fieldset>
<fieldset><legend>hoặc nhập số giấy chứng nhận và số sản xuất /
or type the certificate number and serial</legend>
<p><label>Số giấy chứng nhận / Certificate number<br><input id="number" name="number"></label></p>
<p><label>Số sản xuất / Serial<br><input id="serial" name="serial"></label></p>
<p><label>Mã đơn vị cấp (nếu cần) / Lab code (if needed)<br>
<input id="lab_code" name="lab_code" autocomplete="off"></label></p></fieldset>
<p><label>Loại phương tiện đo / Instrument type<br>
<input id="instrument_type" name="instrument_type"></label></p>
<p><label>Phát hiện / Found<br><select id="found" name="found">{options}</select></label></p>
<p><label>Biện pháp xử lý / Action taken<br><input id="action" name="action"></label></p>
<p><button type="submit">Ghi nhận / Record</button></p>
</form>
<p id="result" role="status"></p>
</body></html>"""


_SCRIPT = r"""'use strict';
(function () {
  const form = document.getElementById('check');
  const out = document.getElementById('result');
  const key = 'inspector-' + form.dataset.round;
  const inspector = document.getElementById('inspector');
  // The token may come in the page's fragment (#t=...): never sent to the server, kept for
  // the tab only, then removed from the address bar.
  const m = /[#&]t=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(key, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname);
  }
  inspector.value = sessionStorage.getItem(key) || '';
  document.getElementById('photo').addEventListener('change', async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    if (!('BarcodeDetector' in window)) {
      out.textContent = 'Trình duyệt không đọc được mã QR: hãy dán đường dẫn. / ' +
        'This browser cannot read QR codes: paste the URL.';
      return;
    }
    try {
      const codes = await new BarcodeDetector({formats: ['qr_code']})
        .detect(await createImageBitmap(file));
      if (codes.length) document.getElementById('token').value = codes[0].rawValue;
      else out.textContent = 'Không thấy mã QR. / No QR code found.';
    } catch (e) {
      out.textContent = 'Không đọc được ảnh. / The photo cannot be read.';
    }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(key, inspector.value);
    const body = {};
    for (const name of ['token', 'number', 'serial', 'lab_code', 'found', 'action',
      'instrument_type']) {
      body[name] = document.getElementById(name).value;
    }
    out.textContent = '…';
    const r = await fetch('/api/v1/inspections/' + form.dataset.round + '/checks', {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'X-Inspector-Token': inspector.value},
      body: JSON.stringify(body),
    });
    const data = await r.json();
    if (r.ok) {
      out.textContent = data.label_vi + ' / ' + data.label_en + ' — ' + (data.number || '') +
        ' (#' + data.id + ')';
      for (const name of ['token', 'number', 'serial', 'lab_code', 'action', 'instrument_type']) {
        document.getElementById(name).value = '';
      }
    } else {
      out.textContent = (data.detail_vi ? data.detail_vi + ' / ' : '') + data.detail;
    }
  });
})();
"""
