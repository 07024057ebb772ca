"""The catalogue's pages beyond the first (issue 22): more than 500 indexed records on one
hub (SQLite and PostgreSQL) are reached exactly once by walking the pages of the library, the
JSON API, the HTML page and the CLI; a page parameter the hub did not give is a 400 naming it,
and the search terms carried in the page links are escaped."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from certissuer.cli import app as cli_app
from certissuer.errors import InputError
from certissuer.hub import Hub
from certissuer.hub.app import create_hub_app
from certissuer.hub.catalogue import (
    Catalogue,
    CatalogueQuery,
    HubIndex,
    PageMark,
    index_pushed,
)
from certissuer.hub.tables import HubCertificate, HubRecord

from .test_hub import TODAY

N = 330
"""Certificates per lab: 2 * N = 660 in all."""
DUE = 2 * len(range(0, N, 5))
"""Every fifth certificate has lapsed, and only these instruments are in the labs' registers
(at Chợ Cao Lãnh): 132 instruments, the certificate and register counters overlapping (ties
broken by lab, record and key)."""
TOTAL = 2 * N + DUE
"""Every record indexed: 792."""
OWNER = "Chợ Cao Lãnh"
HOSTILE = '"><script>alert(1)</script>'


def _fill(hub: Hub, n: int = N) -> None:
    """Index 2 * `n` certificates (half of them lapsed) and their instruments, as pushes would
    store them, in one transaction (seconds, not the minutes of real pushes)."""
    with hub.session() as s, s.no_autoflush:
        for lab in ("DT01", "DT02"):
            for i in range(n):
                serial = f"SN-{lab}-{i:05d}"
                until = TODAY + timedelta(days=365 if i % 5 else -1)
                cert = {
                    "number": f"KĐ-2026-{i:06d}",
                    "lab_code": lab,
                    "kind": "verification",
                    "issue_date": "2025-12-01",
                    "valid_until": until.isoformat(),
                    "instrument_name": "Cân bàn",
                    "instrument_model": "TB-300",
                    "instrument_serial": serial,
                    "customer_name": f"{OWNER} {HOSTILE}" if i == 7 else OWNER,
                }
                s.add(
                    HubCertificate(
                        lab_code=lab,
                        number=cert["number"],
                        kind="verification",
                        issue_date=date(2025, 12, 1),
                        valid_until=until,
                        log_index=i,
                        record_json=json.dumps(cert, ensure_ascii=False),
                    )
                )
                index_pushed(s, lab, "certificates", cert["number"], cert)
                if i % 5:
                    continue
                inst = {
                    "owner_code": "CL",
                    "owner_name": OWNER,
                    "type_code": "CAN",
                    "name": "Cân bàn",
                    "model": "TB-300",
                    "serial": serial,
                    "place_of_use": "Chợ Cao Lãnh, Đồng Tháp",
                }
                key = f"CL|{serial}"
                s.add(
                    HubRecord(
                        lab_code=lab,
                        kind="instruments",
                        key=key,
                        record_json=json.dumps(inst, ensure_ascii=False),
                    )
                )
                index_pushed(s, lab, "instruments", key, inst)
        s.commit()


def _hub(url: str, n: int) -> Iterator[tuple[Hub, TestClient]]:
    hub = Hub.open(url)
    _fill(hub, n)
    client = TestClient(create_hub_app(hub, today=lambda: TODAY))
    yield hub, client
    client.close()
    hub.close()


@pytest.fixture
def big(any_ledger_url: str) -> Iterator[tuple[Hub, TestClient]]:
    """A hub holding `TOTAL` indexed records."""
    yield from _hub(any_ledger_url, N)


@pytest.fixture
def small(any_ledger_url: str) -> Iterator[tuple[Hub, TestClient]]:
    """A hub holding 2 pages of 10 and more."""
    yield from _hub(any_ledger_url, 12)


def _expected_order(hub: Hub) -> list[tuple[str, str, str]]:
    """Every indexed record in the search order, computed apart from the code under test."""
    with hub.session() as s:
        rows = [(r.seq, r.lab_code, r.record, r.key) for r in s.exec(select(HubIndex))]
    return [(lab, rec, key) for _, lab, rec, key in sorted(rows, key=lambda r: (-r[0], *r[1:]))]


def test_walking_the_pages_reaches_every_record_once(big: tuple[Hub, TestClient]) -> None:
    hub, client = big
    cat = Catalogue(hub)
    want = _expected_order(hub)
    assert len(want) == TOTAL

    # the library, forwards with an odd page size: every record once, in a stable order
    seen: list[tuple[str, str, str]] = []
    after, pages = None, []
    while True:
        page = cat.page(CatalogueQuery(owner="cao lanh", limit=97, after=after), today=TODAY)
        assert page.total == TOTAL
        pages.append([(h.lab_code, h.record, h.key) for h in page.hits])
        seen += pages[-1]
        if page.next is None:
            break
        after = page.next
    assert seen == want and len(set(seen)) == len(want)
    assert [len(p) for p in pages] == [97] * (TOTAL // 97) + [TOTAL % 97]

    # backwards from the last page with "previous": the same pages in reverse
    back: list[list[tuple[str, str, str]]] = []
    before = cat.page(CatalogueQuery(owner="cao lanh", limit=97, after=after), today=TODAY)
    back.append([(h.lab_code, h.record, h.key) for h in before.hits])
    prev = before.previous
    while prev is not None:
        page = cat.page(CatalogueQuery(owner="cao lanh", limit=97, before=prev), today=TODAY)
        back.append([(h.lab_code, h.record, h.key) for h in page.hits])
        prev = page.previous
    assert back[::-1] == pages

    # the JSON API at the largest page size, following next_url
    url: str | None = "/api/v1/catalogue/search?owner=cao+lanh&limit=500"
    api: list[tuple[str, str, str]] = []
    sizes = []
    while url:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] == TOTAL and body["count"] == len(body["results"])
        sizes.append(body["count"])
        api += [(r["lab_code"], r["record"], r["key"]) for r in body["results"]]
        url = body["next_url"]
        assert (url is None) == (body["next"] is None)
    assert api == want and sizes == [500, TOTAL - 500]
    # the default page is 100 results; its previous_url leads back to the first page
    second = client.get("/api/v1/catalogue/search", params={"owner": "cao lanh"}).json()
    assert second["count"] == 100 and second["previous"] is None
    second = client.get(second["next_url"]).json()
    assert [r["key"] for r in client.get(second["previous_url"]).json()["results"]] == [
        key for _, _, key in want[:100]
    ]


def test_the_cli_pages_with_after(big: tuple[Hub, TestClient], any_ledger_url: str) -> None:
    hub, _ = big
    want = [key for _, rec, key in _expected_order(hub) if rec == "certificates"]
    args = ["hub", "search", "--db", any_ledger_url, "--record", "certificates", "--json"]
    keys: list[str] = []
    after: list[str] = []
    for _ in range(5):
        result = CliRunner().invoke(cli_app, [*args, "--limit", "250", *after])
        assert result.exit_code == 0, result.output
        keys += [h["key"] for h in json.loads(result.stdout)]
        found = re.search(r"next page: --after (\S+)", result.stderr)
        if found is None:
            break
        assert f"250 of {2 * N} found" in result.stderr
        after = ["--after", found[1]]
    assert keys == want
    bad = CliRunner().invoke(cli_app, [*args, "--after", "bm90IGEgY3Vyc29y"])
    assert bad.exit_code == 2 and "--after: not a page cursor of this catalogue" in bad.output
    big_page = CliRunner().invoke(cli_app, [*args, "--limit", "501"])
    assert big_page.exit_code == 2 and "--limit: expected 1 to 500, got 501" in big_page.output


def _b64(data: Any) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_tampered_page_parameter_is_a_400_naming_it(small: tuple[Hub, TestClient]) -> None:
    hub, client = small
    page = Catalogue(hub).page(CatalogueQuery(owner="cao lanh", limit=10), today=TODAY)
    assert page.next is not None
    good = page.next.text
    assert PageMark.parse(good) == page.next
    flipped = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    tampered = [
        flipped,  # one character changed
        good[:-5],  # cut short
        good + "==",  # padded: not the spelling the hub gives
        "%%%",
        "x" * 2000,
        "Trang-sau-é",
        _b64([1, "DT01", "certificates"]),  # three fields
        _b64(["1", "DT01", "certificates", "k"]),  # a text where a number belongs
        _b64([-1, "DT01", "certificates", "k"]),
        _b64([True, "DT01", "certificates", "k"]),
        _b64([1, "DT01", "owners", "k"]),  # no such record type
        _b64({"seq": 1}),
    ]
    for bad in tampered:
        if bad == flipped:
            # a flip may still decode to a well-formed mark: then it is a page, not an error
            try:
                PageMark.parse(bad)
                continue
            except InputError:
                pass
        for where in ("after", "before"):
            answer = client.get(
                "/api/v1/catalogue/search", params={"owner": "cao lanh", where: bad}
            )
            assert answer.status_code == 400, (where, bad)
            assert answer.json()["detail"].startswith(f"{where}: not a page cursor"), bad
            shown = client.get("/catalogue", params={"owner": "cao lanh", where: bad})
            assert shown.status_code == 400 and f"{where}: not a page cursor" in shown.text
    for limit in ("0", "501", "abc", "-5", "1e3", "٣"):
        answer = client.get("/api/v1/catalogue/search", params={"owner": "x", "limit": limit})
        assert answer.status_code == 400
        assert answer.json()["detail"].startswith("limit: expected a page size from 1 to 500")
        shown = client.get("/catalogue", params={"owner": "x", "limit": limit})
        assert shown.status_code == 400 and "limit: expected a page size" in shown.text
    both = client.get("/api/v1/catalogue/search", params={"after": good, "before": good})
    assert both.status_code == 400 and "either after or before" in both.json()["detail"]
    for number in ("0", "abc", "2.5", "99"):
        recall = client.get("/catalogue/recall", params={"within": "0d", "page": number})
        assert recall.status_code == 400 and "page: expected" in recall.text, number


def test_the_html_pages_link_on_with_the_search_escaped(big: tuple[Hub, TestClient]) -> None:
    _, client = big
    # a hostile search term (it matches the two certificates whose customer carries it): in
    # the form escaped, in the page links URL-encoded then escaped, never markup
    asked = {"owner": f"cao lanh {HOSTILE}", "limit": "1"}
    page = client.get("/catalogue", params=asked)
    assert page.status_code == 200
    assert "Tìm thấy 2 kết quả / 2 results found (trang này / this page: 1)" in page.text
    assert "<script>" not in page.text and HOSTILE not in page.text
    assert 'value="cao lanh &quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text
    hrefs = re.findall(r'<a rel="next" href="([^"]*)"', page.text)
    assert len(hrefs) == 2  # above and below the table
    link = urlsplit(html.unescape(hrefs[0]))
    assert not set('"<> ') & set(link.query)
    assert parse_qs(link.query)["owner"] == [asked["owner"]]
    second = client.get(html.unescape(hrefs[0]))
    assert "Tìm thấy 2 kết quả" in second.text and "Trang sau / Next" not in second.text
    back = re.findall(r'<a rel="prev" href="([^"]*)"', second.text)
    assert parse_qs(urlsplit(html.unescape(back[0])).query)["owner"] == [asked["owner"]]
    assert "<script>" not in second.text

    # a certificate is at its instrument's place: every record, in pages of 500 by the links
    page = client.get("/catalogue", params={"owner": "cao lanh", "place": "đồng tháp"})
    text = page.text
    assert f"Tìm thấy {2 * DUE} kết quả / {2 * DUE} results found" in text
    assert "Trang sau / Next" in text and "Trang trước / Previous" not in text
    follow = html.unescape(re.findall(r'<a rel="next" href="([^"]*)"', text)[0])
    assert follow.startswith("/catalogue?owner=cao+lanh&place=%C4%91%E1%BB%93ng+th%C3%A1p&after=")
    seen: list[tuple[str, str]] = []
    url: str | None = "/catalogue?owner=cao+lanh&place=%C4%91%E1%BB%93ng+th%C3%A1p&limit=100"
    while url:
        text = client.get(url).text
        seen += re.findall(r"<tr><td>(DT0\d)</td><td>[^<]*</td><td>([^<]+)</td>", text)
        nxt = re.search(r'<a rel="next" href="([^"]*)"', text)
        url = html.unescape(nxt[1]) if nxt else None
    assert len(seen) == 2 * DUE and len(set(seen)) == 2 * DUE
    assert "Trang trước / Previous" in text  # the last page links back

    # the recall list pages by number, keeping window and place
    recall = client.get("/catalogue/recall", params={"within": "0d", "place": "cao lanh"})
    assert f"số phương tiện / instruments: {DUE}" in recall.text
    assert "trang / page 1/3" in recall.text
    serials: list[str] = []
    url = "/catalogue/recall?within=0d&place=cao+lanh"
    while url:
        text = client.get(url).text
        serials += re.findall(r"<td>(SN-[^<]+)</td>", text)
        nxt = re.search(r'<a rel="next" href="([^"]*)"', text)
        url = html.unescape(nxt[1]) if nxt else None
    assert len(serials) == DUE == len(set(serials))
    assert "trang / page 3/3" in text
    assert '<a rel="prev" href="/catalogue/recall?within=0d&amp;place=cao+lanh&amp;page=2">' in text
