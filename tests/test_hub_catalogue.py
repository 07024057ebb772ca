"""The province's catalogue on the hub (issue 22, second part): two labs push to one hub
(SQLite and PostgreSQL); search folds marks and finds a serial across labs; recall sees every
lab's newest certificate; the hub's own sector export runs from a cursor."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from certissuer.cli import app as cli_app
from certissuer.hub.catalogue import Catalogue, CatalogueQuery, Status
from certissuer.hub.export import export_hub
from certissuer.hub.tables import HUB_METADATA
from certissuer.model import parse_certificate
from certissuer.report.sector import Cursor

from . import test_hub
from .conftest import SAMPLES, load_json
from .test_hub import ISSUED_AT, TODAY, Lab, World
from .test_sector_export import _valid

world = test_hub.world
"""Two labs with their own ledgers and keys, registered at one hub (`tests.test_hub`)."""

SERIAL_X = "TS-2019-88231"
"""Verified at lab A a year ago (lapsed) and again at lab B this week."""
SERIAL_Y = "VL-7781"
"""Verified at lab A a year ago only: lapsed everywhere. Its owner is in Vĩnh Long."""
SERIAL_Z = "SD-0042"
"""Verified at lab B; its certificate lapses in December."""


def _verify(
    lab: Lab,
    ref: str,
    serial: str,
    *,
    on: date,
    until: date,
    owner: str | None = None,
    place: str | None = None,
    now: datetime = ISSUED_AT,
) -> str:
    """Issue lab `lab`'s verification certificate of the fuel dispenser `serial`."""
    data: dict[str, Any] = load_json(SAMPLES / "verification.json")
    data["ref"] = ref
    data["instrument"] = {**data["instrument"], "serial": serial}
    data["verification_date"] = on.isoformat()
    data["valid_until"] = until.isoformat()
    data["stamp_number"] = f"ĐT-26 {len(lab.numbers) + 1:07d}"  # a stamp is used once per lab
    if owner:
        data["owner"] = {**data["owner"], "name": owner}
    if place:
        data["owner"] = {**data["owner"], "address": place}
        data["place_of_use"] = place
    issued = lab.issuer.issue(parse_certificate(data), now=now)
    lab.numbers[ref] = issued.number
    return issued.number


def _province(world: World) -> None:
    """Lab A: X and Y, verified a year ago (lapsed); lab B: X again this week, and Z."""
    old = datetime(2025, 11, 21, 3, tzinfo=UTC)
    _verify(world.a, "A-X", SERIAL_X, on=date(2025, 11, 20), until=date(2026, 11, 19), now=old)
    _verify(
        world.a,
        "A-Y",
        SERIAL_Y,
        on=date(2025, 11, 20),
        until=date(2026, 11, 19),
        owner="Cửa hàng xăng dầu Vĩnh Long",
        place="Phường 1, tỉnh Vĩnh Long",
        now=old,
    )
    _verify(world.b, "B-X", SERIAL_X, on=date(2026, 11, 25), until=date(2027, 11, 24))
    _verify(world.b, "B-Z", SERIAL_Z, on=date(2025, 12, 20), until=date(2026, 12, 19))
    world.push(world.a)
    world.push(world.b)


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_search_folds_marks_and_finds_a_serial_across_labs(
    world: World, any_ledger_url: str
) -> None:
    _province(world)
    cat = Catalogue(world.hub)

    # "vinh long" finds "Vĩnh Long": the certificate (customer) and the instrument (owner)
    hits = cat.search(CatalogueQuery(owner="vinh long"), today=TODAY)
    assert {(h.lab_code, h.record) for h in hits} == {
        ("DT01", "certificates"),
        ("DT01", "instruments"),
    }
    assert all(h.data.get("instrument_serial", h.data.get("serial")) == SERIAL_Y for h in hits)
    assert cat.search(CatalogueQuery(owner="VĨNH   LONG"), today=TODAY) == hits
    assert cat.search(CatalogueQuery(owner="vinh phuc"), today=TODAY) == []

    # a serial typed another way finds its certificates at both labs
    certs = cat.search(
        CatalogueQuery(records=("certificates",), serial="ts 2019 88231"), today=TODAY
    )
    assert sorted((h.lab_code, h.key) for h in certs) == [
        ("DT01", world.a.numbers["A-X"]),
        ("DT02", world.b.numbers["B-X"]),
    ]
    # standing on the day: A's has expired, B's is valid; the status filter agrees
    assert {h.lab_code: h.status for h in certs} == {
        "DT01": Status.EXPIRED,
        "DT02": Status.VALID,
    }
    expired = cat.search(
        CatalogueQuery(records=("certificates",), status=Status.EXPIRED), today=TODAY
    )
    assert {h.key for h in expired} == {world.a.numbers["A-X"], world.a.numbers["A-Y"]}
    only_b = cat.search(CatalogueQuery(records=("certificates",), lab="DT02"), today=TODAY)
    assert {h.key for h in only_b} == {world.b.numbers["B-X"], world.b.numbers["B-Z"]}

    # a certificate is found by its instrument's place (the owner's address, folded)
    at = cat.search(CatalogueQuery(records=("certificates",), place="tinh vinh long"), today=TODAY)
    assert [h.key for h in at] == [world.a.numbers["A-Y"]]

    # the same through the hub's JSON API, and the CLI
    answer = world.client.get("/api/v1/catalogue/search", params={"owner": "vinh long"})
    assert answer.status_code == 200
    assert {(r["lab_code"], r["record"]) for r in answer.json()["results"]} == {
        ("DT01", "certificates"),
        ("DT01", "instruments"),
    }
    bad = world.client.get("/api/v1/catalogue/search", params={"status": "lapsed"})
    assert bad.status_code == 400 and "status" in bad.json()["detail"]
    out = _invoke(
        "hub", "search", "--db", any_ledger_url, "--serial", SERIAL_X.lower(),
        "--record", "certificates", "--today", TODAY.isoformat(), "--json",
    ).stdout  # fmt: skip
    assert sorted(h["lab_code"] for h in json.loads(out)) == ["DT01", "DT02"]


def test_recall_takes_the_newest_certificate_from_any_lab(
    world: World, any_ledger_url: str
) -> None:
    _province(world)
    cat = Catalogue(world.hub)

    # X lapsed at A but was verified again at B: not listed. Y lapsed everywhere: listed.
    lapsed = cat.recall(today=TODAY)
    assert [(r.serial, r.lab_code, r.state) for r in lapsed] == [(SERIAL_Y, "DT01", "lapsed")]
    assert lapsed[0].owner == "Cửa hàng xăng dầu Vĩnh Long"
    # within 30 days: Z's certificate at B lapses on 19 December
    soon = cat.recall(today=TODAY, within_days=30)
    assert [(r.serial, r.state) for r in soon] == [(SERIAL_Y, "lapsed"), (SERIAL_Z, "lapses")]
    assert cat.recall(today=TODAY, within_days=30, place="vinh long") == lapsed[:1]

    # revoking B's certificate of X puts X back on the list (A's lapsed one is what is left)
    world.b.ledger.revoke(world.b.numbers["B-X"], reason="seal broken", at=ISSUED_AT)
    world.push(world.b)
    states = {r.serial: (r.lab_code, r.state) for r in cat.recall(today=TODAY)}
    assert states == {SERIAL_X: ("DT02", "revoked"), SERIAL_Y: ("DT01", "lapsed")}

    answer = world.client.get("/api/v1/catalogue/recall", params={"within": "30d"})
    assert answer.status_code == 200
    assert [i["serial"] for i in answer.json()["instruments"]] == [SERIAL_Y, SERIAL_Z, SERIAL_X]
    out = _invoke(
        "hub", "recall", "--db", any_ledger_url, "--within", "30d", "--place", "vinh long",
        "--today", TODAY.isoformat(), "--json",
    ).stdout  # fmt: skip
    assert [r["serial"] for r in json.loads(out)] == [SERIAL_Y]


def test_export_from_a_cursor_carries_only_newer_records(
    world: World, any_ledger_url: str, tmp_path: Path
) -> None:
    _verify(world.a, "A-X", SERIAL_X, on=date(2026, 11, 25), until=date(2027, 11, 24))
    world.push(world.a)
    first = export_hub(world.hub)
    _valid(first)
    assert [c["number"] for c in first["certificates"]] == [world.a.numbers["A-X"]]
    assert {(i["lab_code"], i["serial"]) for i in first["instruments"]} == {("DT01", SERIAL_X)}
    assert first["version"] == "1.2"
    c1 = Cursor.parse(first["cursor"])

    # lab B pushes, lab A pushes nothing new: from c1 only B's records, and a newer cursor
    _verify(world.b, "B-Z", SERIAL_Z, on=date(2026, 11, 25), until=date(2027, 11, 24))
    world.push(world.b)
    world.push(world.a)
    second = export_hub(world.hub, after=c1)
    _valid(second)
    assert second["after"] == c1.text
    assert [(c["lab_code"], c["number"]) for c in second["certificates"]] == [
        ("DT02", world.b.numbers["B-Z"])
    ]
    assert {(i["lab_code"], i["serial"]) for i in second["instruments"]} == {("DT02", SERIAL_Z)}
    c2 = Cursor.parse(second["cursor"])
    assert c2.log > c1.log and c2.register > c1.register
    # everything from the start is both exports together
    assert len(export_hub(world.hub)["certificates"]) == 2

    # nothing since: an empty export with the same cursor; a revocation is carried once
    assert export_hub(world.hub, after=c2)["counts"] == dict.fromkeys(
        ("certificates", "instruments", "standards", "inspectors"), 0
    )
    world.a.ledger.revoke(world.a.numbers["A-X"], reason="wrong serial", at=ISSUED_AT)
    world.push(world.a)
    out = tmp_path / "hub.json"
    text = _invoke(
        "hub", "export", "--db", any_ledger_url, "--since-cursor", c2.text, "--out", str(out)
    ).stdout
    third = json.loads(out.read_text(encoding="utf-8"))
    bad = CliRunner().invoke(
        cli_app, ["hub", "export", "--db", any_ledger_url, "--since-cursor", "v2:1", "--out", "x"]
    )
    assert bad.exit_code == 2 and "expected a cursor such as v1:1907:5123" in bad.output
    _valid(third)
    assert f"cursor {third['cursor']}" in text
    assert [(c["number"], c["status"]) for c in third["certificates"]] == [
        (world.a.numbers["A-X"], "revoked")
    ]


def test_the_catalogue_lists_labs_with_kind_scope_and_what_they_pushed(
    world: World, any_ledger_url: str
) -> None:
    _verify(world.a, "A-X", SERIAL_X, on=date(2026, 11, 25), until=date(2027, 11, 24))
    world.push(world.a)
    _invoke(
        "hub", "lab-profile", "--db", any_ledger_url, "--code", "DT02", "--kind", "calibration",
        "--kind", "testing", "--scope", "Cân, áp kế; thử nghiệm phân bón",
        "--accreditation", "VILAS 1234",
    )  # fmt: skip
    labs = {lab["code"]: lab for lab in world.client.get("/api/v1/catalogue/labs").json()["labs"]}
    assert labs["DT01"]["counts"]["certificates"] == 1 and labs["DT02"]["counts"] == dict.fromkeys(
        ("certificates", "instruments", "standards", "inspectors"), 0
    )
    assert labs["DT02"]["kinds"] == ["calibration", "testing"]
    testing = world.client.get("/api/v1/catalogue/labs", params={"q": "phan bon"}).json()["labs"]
    assert [lab["code"] for lab in testing] == ["DT02"]
    refused = CliRunner().invoke(
        cli_app, ["hub", "lab-profile", "--db", any_ledger_url, "--code", "XX", "--kind", "x"]
    )
    assert refused.exit_code != 0 and "unknown kind 'x'" in refused.output


def test_records_stored_before_the_catalogue_are_indexed_once(
    world: World, any_ledger_url: str
) -> None:
    _province(world)
    cat = Catalogue(world.hub)
    wanted = cat.search(CatalogueQuery(owner="vinh long"), today=TODAY)
    with world.hub.engine.begin() as conn:  # a hub from before the catalogue: no index
        conn.execute(sa.delete(HUB_METADATA.tables["hub_catalogue"]))
    assert cat.search(CatalogueQuery(owner="vinh long"), today=TODAY) == []
    out = _invoke("hub", "reindex", "--db", any_ledger_url).stdout
    assert out.startswith(f"{len(world.hub.certificates()) + _register_rows(world)} records")
    assert {
        (h.lab_code, h.key) for h in cat.search(CatalogueQuery(owner="vinh long"), today=TODAY)
    } == {(h.lab_code, h.key) for h in wanted}
    assert [r.serial for r in cat.recall(today=TODAY)] == [SERIAL_Y]
    assert cat.index_missing() == 0


def _register_rows(world: World) -> int:
    return sum(
        len(world.hub.records(code, kind))
        for code in ("DT01", "DT02")
        for kind in ("instruments", "standards", "inspectors")
    )


def test_the_catalogue_page_finds_a_folded_owner_and_lists_the_recall(
    world: World, any_ledger_url: str
) -> None:
    _province(world)
    empty = world.client.get("/catalogue")
    assert empty.status_code == 200 and '<form method="get" action="/catalogue"' in empty.text
    assert "<script" not in empty.text
    assert "script-src 'self'" in empty.headers["content-security-policy"]

    page = world.client.get("/catalogue", params={"owner": "vinh long"})
    assert page.status_code == 200
    text = page.text
    assert text.index("Cơ sở dữ liệu đo lường") < text.index("Provincial measurement register")
    assert "Tìm thấy 2 kết quả / 2 results found" in text
    assert text.count("<tr><td>DT01</td>") == 2 and SERIAL_Y in text
    assert "Cửa hàng xăng dầu Vĩnh Long" in text
    assert world.a.numbers["A-Y"] in text and SERIAL_X not in text
    assert "HẾT HIỆU LỰC / EXPIRED" in text  # the certificate lapsed on 2026-11-19
    assert 'value="vinh long"' in text  # the form keeps what was asked
    nothing = world.client.get("/catalogue", params={"owner": "vinh phuc"})
    assert "Tìm thấy 0 kết quả / 0 results found" in nothing.text and SERIAL_Y not in nothing.text
    valid_b = world.client.get("/catalogue", params={"serial": SERIAL_X, "status": "valid"})
    assert world.b.numbers["B-X"] in valid_b.text and world.a.numbers["A-X"] not in valid_b.text
    bad = world.client.get("/catalogue", params={"status": "lapsed"})
    assert bad.status_code == 400 and "status: expected valid" in bad.text

    recall = world.client.get("/catalogue/recall", params={"within": "30d"})
    assert recall.status_code == 200
    assert SERIAL_Y in recall.text and SERIAL_Z in recall.text  # lapsed; lapses 2026-12-19
    assert SERIAL_X not in recall.text  # lab B verified it again this week
    assert "Đã hết hạn / Lapsed" in recall.text and "Sắp hết hạn / Lapses soon" in recall.text
    # dates as the lab's own page prints them (dd/mm/yyyy), on the list and in the search
    assert "<td>19/12/2026</td>" in recall.text and "2026-12-19" not in recall.text
    assert "<td>19/11/2026</td>" in text and "2026-11-19" not in text
    at_vl = world.client.get("/catalogue/recall", params={"place": "vinh long"})
    assert SERIAL_Y in at_vl.text and SERIAL_Z not in at_vl.text
    wrong = world.client.get("/catalogue/recall", params={"within": "soon"})
    assert wrong.status_code == 400


def test_the_catalogue_page_escapes_a_hostile_owner(world: World, any_ledger_url: str) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> & Co'
    _verify(
        world.a,
        "A-H",
        "HX-1",
        on=date(2026, 11, 25),
        until=date(2027, 11, 24),
        owner=hostile,
        place='"><b>Phường 2</b>',
    )
    world.push(world.a)
    page = world.client.get("/catalogue", params={"owner": "alert", "serial": '"><i>x'})
    assert page.status_code == 200
    # the serial asked does not match; ask again by serial to list the hostile rows
    assert '"><i>x' not in page.text and "&quot;&gt;&lt;i&gt;x" in page.text
    page = world.client.get("/catalogue", params={"serial": "HX-1"})
    assert "Tìm thấy 2 kết quả / 2 results found" in page.text
    assert "<script" not in page.text and "<img" not in page.text and "<b>" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    assert "&amp; Co" in page.text and "&lt;b&gt;Phường 2&lt;/b&gt;" in page.text
    recall = world.client.get("/catalogue/recall", params={"within": "12m"})
    assert "HX-1" in recall.text and "<script" not in recall.text and "<img" not in recall.text
