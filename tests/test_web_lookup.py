"""The lookup for a torn QR code: certificate number AND serial number, both must match."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi.testclient import TestClient

from certissuer.ledger import EventKind, LedgerEvent

from . import test_web
from .test_web import Lab, _web, field

lab = test_web.lab  # the module's lab: issued certificates on a SQLite ledger (a fixture)
client = test_web.client

SERIAL = "TS-2019-88231"  # the verification sample's instrument
UNKNOWN = "KĐ-2099-999999"


def page(client: TestClient, number: str, serial: str) -> str:
    r = client.get(f"/lookup?{urlencode({'number': number, 'serial': serial})}")
    assert r.status_code == 200, r.text
    return r.text


def api(client: TestClient, number: str, serial: str) -> dict[str, object]:
    r = client.get(f"/api/v1/lookup?{urlencode({'number': number, 'serial': serial})}")
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_start_page_has_the_lookup_form(client: TestClient) -> None:
    html = client.get("/").text
    assert '<form method="get" action="lookup">' in html
    assert '<input id="number" name="number" type="text"' in html
    assert '<input id="serial" name="serial" type="text"' in html
    assert "Tra cứu" in html and "Look up" in html
    assert "There is no search by certificate number" not in html


def test_number_and_serial_give_the_ledgers_verdict(lab: Lab, client: TestClient) -> None:
    html = page(client, lab.ver.number, SERIAL)
    assert '<h1 id="verdict-vi" data-verdict="valid">HỢP LỆ</h1>' in html
    assert field(html, "number") == lab.ver.number and field(html, "serial") == SERIAL
    assert field(html, "sha256") == lab.ver.pdf_sha256
    # It says what was not checked: the paper's file and QR code.
    assert 'id="looked-up"' in html and "chưa được kiểm tra" in html
    assert "the PDF file and the QR code themselves were not checked" in html
    body = api(client, lab.ver.number, SERIAL)
    assert body["verdict"] == "valid" and body["ok"] is True
    assert body["number"] == lab.ver.number
    assert body["certificate"]["serial"] == SERIAL  # type: ignore[index]
    assert any("no QR token or file was checked" in r for r in body["reasons"])  # type: ignore[attr-defined]
    # Not looked up: the QR page has no such note.
    assert 'id="looked-up"' not in client.get(f"/V/{test_web.token(lab.ver)}").text


def test_numbers_and_serials_as_people_type_them(lab: Lab, client: TestClient) -> None:
    typed_number = lab.ver.number.replace("Đ", "D").lower()  # "kd-2026-000001"
    assert typed_number.startswith("kd-")
    for number, serial in (
        (typed_number, SERIAL),
        (f"  {lab.ver.number} ", "ts 2019 88231"),
        (f"out/{typed_number.upper()}.pdf", "ts201988231"),
        (lab.ver.number, "TS – 2019 – 88231"),
    ):
        html = page(client, number, serial)
        assert 'data-verdict="valid"' in html, (number, serial)
        assert field(html, "number") == lab.ver.number
        assert api(client, number, serial)["number"] == lab.ver.number


def test_a_wrong_serial_answers_exactly_like_an_unknown_number(
    lab: Lab, client: TestClient
) -> None:
    unknown_html = page(client, UNKNOWN, SERIAL)
    unknown_json = client.get(f"/api/v1/lookup?{urlencode({'number': UNKNOWN, 'serial': SERIAL})}")
    assert 'data-verdict="not_in_ledger"' in unknown_html
    for number, serial in (
        (lab.ver.number, "TS-2019-88232"),  # one digit off
        (lab.ver.number, "B912345678"),  # another certificate's instrument
        (lab.cal.number, SERIAL),
        (lab.ver.number, "TS-2019"),  # a prefix is not the serial
        (lab.ver.number, "TS-2019-88231Đ"),  # not ASCII: compared all the same
    ):
        assert page(client, number, serial) == unknown_html, (number, serial)
        r = client.get(f"/api/v1/lookup?{urlencode({'number': number, 'serial': serial})}")
        assert (r.status_code, r.content) == (unknown_json.status_code, unknown_json.content)
        assert r.json()["number"] is None and r.json()["certificate"] is None
        assert lab.ver.number not in r.text and "Tatsuno" not in r.text


def test_blank_fields_are_refused(lab: Lab, client: TestClient) -> None:
    r = client.get(f"/lookup?{urlencode({'number': lab.ver.number, 'serial': '  '})}")
    assert r.status_code == 400 and "serial number" in r.text
    r = client.get(f"/api/v1/lookup?{urlencode({'serial': SERIAL})}")
    assert r.status_code == 400 and "certificate number" in r.json()["detail"]


def test_a_revoked_certificate_looks_up_as_revoked(lab: Lab, client: TestClient) -> None:
    revoked = lab.issue("calibration")
    lab.ledger.add_event(
        LedgerEvent(
            number=revoked.number,
            kind=EventKind.REVOKED,
            at=datetime.now(UTC),
            reason="tem bị mất",
        )
    )
    html = page(client, revoked.number, "b912345678")
    assert "ĐÃ THU HỒI (lý do tem bị mất)" in html and 'class="verdict warn"' in html


def test_lookups_are_rate_limited_dearly(lab: Lab) -> None:
    from certissuer.web import create_app

    app = create_app(_web(lab.settings, web_rate_limit=60, web_rate_burst=10))
    query = urlencode({"number": lab.ver.number, "serial": SERIAL})
    with TestClient(app) as c, TestClient(app, client=("192.0.2.9", 4000)) as other:
        # A lookup costs as much as an upload (5 requests): two fill a burst of 10.
        assert [c.get(f"/api/v1/lookup?{query}").status_code for _ in range(2)] == [200, 200]
        r = c.get(f"/api/v1/lookup?{query}")
        assert r.status_code == 429 and r.json()["detail"].startswith("Too many requests")
        assert int(r.headers["retry-after"]) >= 1
        r = c.get(f"/lookup?{query}")
        assert r.status_code == 429 and "Quá nhiều yêu cầu" in r.text
        assert other.get(f"/lookup?{query}").status_code == 200  # another address has its own
