"""The sector export (issue 10): schema-valid output in JSON, CSV and XLSX, and incremental
exports whose cursor carries exactly the changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import codecs
import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from openpyxl import load_workbook

from certissuer import merkle
from certissuer.errors import InputError
from certissuer.hub.inclusion import certificate_leaves, record_problem
from certissuer.model import parse_certificate
from certissuer.registry import Register
from certissuer.report.sector import (
    COLUMNS,
    RECORD_TYPES,
    Cursor,
    SectorFormat,
    sector_export,
    write_sector_export,
)

from .conftest import ROOT, SAMPLES, load_json
from .test_report import World, build_world

SCHEMA = json.loads((ROOT / "docs" / "sector-export.schema.json").read_text(encoding="utf-8"))
TODAY = date(2026, 11, 30)


@pytest.fixture
def world(any_ledger_url: str, tmp_path: Path, pki: Any, sealer: Any, renderer: Any) -> World:
    return build_world(any_ledger_url, tmp_path, pki, sealer, renderer)


def _valid(document: dict[str, Any]) -> None:
    errors = [e.message for e in jsonschema_rs.validator_for(SCHEMA).iter_errors(document)]
    assert errors == []


def _keys(export: Any) -> dict[str, set[Any]]:
    return {
        "certificates": {r["number"] for r in export.records["certificates"]},
        "instruments": {(r["owner_code"], r["serial"]) for r in export.records["instruments"]},
        "standards": {r["code"] for r in export.records["standards"]},
        "inspectors": {r["name"] for r in export.records["inspectors"]},
    }


def test_export_then_changes_then_export_from_the_cursor_carries_exactly_the_changes(
    world: World, tmp_path: Path
) -> None:
    engine = world.ledger.engine
    first = sector_export(engine, since=None, after=None, today=TODAY)
    out = tmp_path / "first.json"
    write_sector_export(first, SectorFormat.JSON, out)
    document = json.loads(out.read_text(encoding="utf-8"))
    _valid(document)
    # everything is in the full export: every completed certificate, every register row
    with world.ledger.session() as s:
        from sqlmodel import col, func, select

        from certissuer.ledger import CertificateEntry

        completed = s.exec(
            select(func.count())
            .select_from(CertificateEntry)
            .where(col(CertificateEntry.pdf_sha256).is_not(None))
        ).one()
    assert document["counts"]["certificates"] == completed
    # S1-S3, and the calibration sample's standard, which issuing recorded (issue 16)
    assert document["counts"]["standards"] == 4
    assert len(first.records["instruments"]) >= 6
    revoked = {r["number"]: r for r in first.records["certificates"]}[world.numbers[1]]
    assert revoked["status"] == "revoked" and revoked["revocation_reason"].startswith("chuẩn")
    superseded = {r["number"]: r for r in first.records["certificates"]}[world.numbers[2]]
    assert superseded["status"] == "superseded" and superseded["superseded_by"]

    # nothing changed: the next export from the cursor is empty
    again = sector_export(engine, since=None, after=first.cursor, today=TODAY)
    assert all(not again.records[t] for t in RECORD_TYPES)
    assert again.cursor == first.cursor

    # changes: a new certificate, a revocation of an old one, an instrument edited, an owner
    # renamed (its instruments change), a standard re-calibrated, a new inspector
    ver = load_json(SAMPLES / "verification.json")
    new = world.issuer.issue(
        parse_certificate({**ver, "ref": "V9", "stamp_number": "ĐT-26 0000109"}),
        now=datetime(2026, 11, 25, 3, tzinfo=UTC),
    )
    world.ledger.revoke(world.numbers[0], reason="hư hỏng / damaged", at=datetime.now(UTC))
    register = Register(engine, lab_code="T01")
    register.add(
        "instrument",
        {
            "owner_code": "O1",
            "type_code": "can-ban",
            "serial": "I2",
            "place_of_use": "Cao Lãnh",
            "model": "New model",
        },
    )
    register.add("owner", {"code": "O3", "name": "Chủ mới O3", "kind": "hộ kinh doanh"})
    register.add(
        "standard",
        {
            "code": "S1",
            "name": "Chuẩn S1",
            "certificate_number": "HC-S1b",
            "calibration_due": "2027-10-01",
        },
    )
    register.add(
        "person",
        {
            "name": "Phạm Minh Tuấn",
            "verifier_card": "KĐV-0042",
            "card_types": "cot-do-xang-dau",
            "card_expiry": "2028-06-30",
        },
    )

    second = sector_export(engine, since=None, after=first.cursor, today=TODAY)
    keys = _keys(second)
    assert keys["certificates"] == {new.number, world.numbers[0]}
    # I6: its owner was renamed; the new certificate's instrument, recorded by issuing it (the
    # register fills itself, issue 16), under its owner's automatic code.
    verified = ("auto-cua-hang-xang-dau-so-12-cong-ty-xang-dau-dong-thap", "TS-2019-88231")
    assert keys["instruments"] == {("O1", "I2"), ("O3", "I6"), verified}
    assert keys["standards"] == {"S1"}
    assert keys["inspectors"] == {"Phạm Minh Tuấn"}
    records = {r["number"]: r for r in second.records["certificates"]}
    assert records[world.numbers[0]]["status"] == "revoked"
    assert records[new.number]["status"] == "valid"
    instrument = {r["serial"]: r for r in second.records["instruments"]}
    assert instrument["I2"]["model"] == "New model"
    assert instrument["I6"]["owner_name"] == "Chủ mới O3"
    assert second.cursor.log > first.cursor.log and second.cursor.register > first.cursor.register
    out2 = tmp_path / "second.json"
    write_sector_export(second, SectorFormat.JSON, out2)
    _valid(json.loads(out2.read_text(encoding="utf-8")))

    # the cursor round-trips as text, and a third export carries nothing
    third = sector_export(engine, since=None, after=Cursor.parse(second.cursor.text), today=TODAY)
    assert all(not third.records[t] for t in RECORD_TYPES)


def test_since_a_date_and_every_format_follow_the_schema(world: World, tmp_path: Path) -> None:
    engine = world.ledger.engine
    full = sector_export(engine, since=None, after=None, today=TODAY)
    since = datetime(2026, 10, 1, tzinfo=UTC)
    recent = sector_export(engine, since=since, after=None, today=TODAY)
    expected = {
        r["number"]
        for r in full.records["certificates"]
        if datetime.fromisoformat(r["changed_at"]) >= since
    }
    assert {r["number"] for r in recent.records["certificates"]} == expected
    assert 0 < len(expected) < len(full.records["certificates"])
    # register rows were all written today (after `since`)
    assert len(recent.records["standards"]) == 4  # S1-S3 and the one issuing recorded

    folder = tmp_path / "csv"
    files = write_sector_export(full, SectorFormat.CSV, folder)
    assert {f.name for f in files} == {f"{t}.csv" for t in RECORD_TYPES} | {"export.json"}
    meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    assert meta["cursor"] == full.cursor.text and meta["version"] == "1.2"
    for kind in RECORD_TYPES:
        assert (folder / f"{kind}.csv").read_bytes().startswith(codecs.BOM_UTF8)
        with open(folder / f"{kind}.csv", encoding="utf-8-sig", newline="") as fh:
            header, *rows = list(csv.reader(fh))
        assert tuple(header) == COLUMNS[kind]
        assert len(rows) == len(full.records[kind])
        # the same fields as the schema's record definition
        definition = SCHEMA["$defs"][{"inspectors": "inspector"}.get(kind, kind[:-1])]
        fields = tuple(definition["properties"])
        if kind == "instruments":  # 1.1: the hub's export names the lab that pushed the row
            assert fields[-1] == "lab_code"
            fields = fields[:-1]
        assert fields == COLUMNS[kind]

    xlsx = tmp_path / "sector.xlsx"
    write_sector_export(full, SectorFormat.XLSX, xlsx)
    wb = load_workbook(xlsx, read_only=True)
    assert wb.sheetnames == ["export", *RECORD_TYPES]
    meta_rows = dict(wb["export"].iter_rows(min_row=2, values_only=True))
    assert meta_rows["cursor"] == full.cursor.text
    for kind in RECORD_TYPES:
        rows = list(wb[kind].iter_rows(values_only=True))
        assert rows[0] == COLUMNS[kind] and len(rows) - 1 == len(full.records[kind])
    wb.close()


def test_each_certificate_carries_its_data_digest_proven_by_its_log_leaves(world: World) -> None:
    export = sector_export(world.ledger.engine, since=None, after=None, today=TODAY)
    certificates = export.records["certificates"]
    assert export.header()["version"] == "1.2" and len(certificates) >= 5
    assert {r["status"] for r in certificates} >= {"valid", "revoked", "superseded"}
    hashes = world.ledger.leaf_hashes()
    root = merkle.tree_hash(hashes)
    numbers = [r["number"] for r in certificates]
    leaves = certificate_leaves(world.ledger, numbers, hashes, below=export.cursor.log)
    for record in certificates:
        entry = world.ledger.get(record["number"])
        assert entry is not None and record["data_digest"] == entry.data_digest
        # what the hub checks at push: every kind of record here is proven by its leaves
        assert record_problem(record, leaves[record["number"]], len(hashes), root) is None
        changed = {**record, "customer_name": "Người khác"}
        problem = record_problem(changed, leaves[record["number"]], len(hashes), root)
        assert problem and problem.startswith("its customer_name is 'Người khác' in the push")
    document = {**export.header(), **{t: export.records[t] for t in RECORD_TYPES}}
    _valid(document)
    # an export of version 1.0 (no data digest) still follows the schema
    old = {**document, "version": "1.0"}
    old["certificates"] = [
        {k: v for k, v in r.items() if k != "data_digest"} for r in document["certificates"]
    ]
    _valid(old)

    # revoked after the export was read and before the checkpoint: the leaves sent are those
    # the export read (below its cursor), so its record still matches them
    valid = next(r for r in certificates if r["status"] == "valid")
    world.ledger.revoke(valid["number"], reason="sai / wrong", at=datetime.now(UTC))
    hashes = world.ledger.leaf_hashes()
    root = merkle.tree_hash(hashes)
    at_export = certificate_leaves(world.ledger, numbers, hashes, below=export.cursor.log)
    assert record_problem(valid, at_export[valid["number"]], len(hashes), root) is None
    now = certificate_leaves(world.ledger, numbers, hashes, below=len(hashes))
    problem = record_problem(valid, now[valid["number"]], len(hashes), root)
    assert problem and problem.startswith("its revoked_at is None in the push")


def test_a_bad_cursor_is_refused() -> None:
    with pytest.raises(InputError, match="expected a cursor"):
        Cursor.parse("12:34")
    assert Cursor.parse(" v1:12:34 ") == Cursor(12, 34)


def test_cli_export_prints_a_cursor(world: World, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app

    config = tmp_path / "c.toml"
    config.write_text(
        f'[lab]\ncode = "T01"\n[ledger]\nurl = "{world.settings.ledger_url}"\n', encoding="utf-8"
    )
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "--config",
            str(config),
            "export",
            "sector",
            "--format",
            "json",
            "--out",
            str(tmp_path / "s.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    cursor = result.output.strip().splitlines()[-1].split()[-1]
    again = runner.invoke(
        app,
        [
            "--config",
            str(config),
            "export",
            "sector",
            "--cursor",
            cursor,
            "--out",
            str(tmp_path / "t.json"),
        ],
    )
    assert again.exit_code == 0, again.output
    counts = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))["counts"]
    assert counts == dict.fromkeys(RECORD_TYPES, 0)
    bad = runner.invoke(
        app,
        [
            "--config",
            str(config),
            "export",
            "sector",
            "--cursor",
            "x",
            "--out",
            str(tmp_path / "u.json"),
        ],
    )
    assert bad.exit_code == 2 and "expected a cursor" in bad.output
