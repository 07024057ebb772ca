"""Tests for certissuer.intake: real JSON, CSV and XLSX files under tmp_path."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import tracemalloc
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import openpyxl
import pytest

from certissuer import intake
from certissuer.errors import InputError, InputErrors
from certissuer.intake import Record, Rejected
from certissuer.model import CalibrationCertificate, VerificationCertificate, canonical_json

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LISTS = ("results", "standards", "ranges", "checks")
MakeResults = Callable[..., Path]


def _load_make_xlsx() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_xlsx", SAMPLES / "make_xlsx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_xlsx = _load_make_xlsx()


def calibration(ref: str) -> dict[str, Any]:
    """A small valid calibration certificate with two results."""
    return {
        "ref": ref,
        "kind": "calibration",
        "item": {"name": "Cân kỹ thuật / Precision balance", "serial": f"SN-{ref}", "year": 2020},
        "customer": {"name": "Công ty TNHH Sa Đéc", "address": "phường Sa Đéc, Đồng Tháp"},
        "place_of_calibration": "Phòng thí nghiệm khối lượng",
        "method": "ĐLVN 286:2015",
        "received": "2026-11-20",
        "calibrated": "2026-11-24",
        "results": [
            {"nominal": "100", "measured": "100.002", "uncertainty": "0.0012", "unit": "g"},
            {"nominal": "200", "measured": "200.004", "uncertainty": "0.10", "unit": "g"},
        ],
        "standards": [
            {"name": "Quả cân E2", "certificate_number": "V09-1", "calibration_due": "2027-03-31"}
        ],
        "conditions": {"temperature": "21.5", "humidity": "55"},
        "performed_by": {"name": "Nguyễn Thị Thu Hà"},
        "signatory": {"name": "Lê Hoàng Phúc", "title": "Giám đốc"},
    }


def verification(ref: str) -> dict[str, Any]:
    """A small valid verification certificate."""
    return {
        "ref": ref,
        "kind": "verification",
        "instrument": {"name": "Cột đo xăng dầu", "serial": f"SN-{ref}"},
        "ranges": [{"lower": "5", "upper": "50", "unit": "L/min", "accuracy_class": "0.5"}],
        "owner": {"name": "Cửa hàng xăng dầu số 12"},
        "place_of_use": "Quốc lộ 30, Đồng Tháp",
        "method": "ĐLVN 10:2017",
        "mode": "periodic",
        "verification_date": "2026-11-25",
        "checks": [{"nominal": "20", "error": "0.04", "mpe": "0.10", "unit": "L"}],
        "valid_until": "2027-11-24",
        "verifier": {"name": "Phạm Minh Tuấn"},
        "head": {"name": "Lê Hoàng Phúc"},
    }


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _tables(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Split records into the certificate table and the list tables, as a person would."""
    tables: dict[str, list[dict[str, Any]]] = {"certificates": []}
    for record in records:
        main = {k: v for k, v in record.items() if k not in LISTS}
        tables["certificates"].append(_flatten(main))
        for name in LISTS:
            for entry in record.get(name, []):
                tables.setdefault(name, []).append({"ref": record.get("ref"), **entry})
    return tables


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


@pytest.fixture
def make_results(tmp_path: Path) -> MakeResults:
    """Write the same logical certificates as JSON, CSV (+ list tables) or XLSX."""

    def make(fmt: str, records: list[dict[str, Any]], name: str = "batch") -> Path:
        if fmt == "json":
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
            return path
        tables = _tables(records)
        if fmt == "csv":
            for table, rows in tables.items():
                stem = name if table == "certificates" else f"{name}.{table}"
                columns = _columns(rows)
                with (tmp_path / f"{stem}.csv").open("w", encoding="utf-8", newline="") as f:
                    writer = csv.writer(f)
                    writer.writerow(columns)
                    writer.writerows([row.get(c, "") for c in columns] for row in rows)
            return tmp_path / f"{name}.csv"
        assert fmt == "xlsx"
        workbook = openpyxl.Workbook()
        workbook.remove(workbook.active)
        for table, rows in tables.items():
            sheet = workbook.create_sheet(table)
            columns = _columns(rows)
            sheet.append(columns)
            for number, row in enumerate(rows, start=2):
                for index, column in enumerate(columns, start=1):
                    if row.get(column) is not None:
                        value, number_format = make_xlsx.typed(str(row[column]))
                        cell = sheet.cell(row=number, column=index, value=value)
                        cell.number_format = number_format or "General"
        path = tmp_path / f"{name}.xlsx"
        workbook.save(path)
        return path

    return make


def problems(path: Path) -> list[str]:
    """Every problem `read_certificates` reports for `path`, as printed."""
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    return [str(e) for e in info.value.errors]


def where(path: Path, table: str) -> str:
    """How messages name `table` of the input `path`."""
    if path.suffix == ".json":
        return str(path)
    if path.suffix == ".xlsx":
        return f"{path} [{table}]"
    return str(path if table == "certificates" else path.with_name(f"batch.{table}.csv"))


# --- the samples -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("calibration.json", ["calibration"]),
        ("verification.json", ["verification"]),
        ("batch.csv", ["verification", "calibration", "calibration"]),
        ("batch.xlsx", ["verification", "calibration", "calibration"]),
    ],
)
def test_sample_reads(name: str, kinds: list[str]) -> None:
    records = intake.read_certificates(SAMPLES / name)
    assert [r.cert.kind.value for r in records] == kinds
    first_row = 1 if name.endswith(".json") else 2
    assert [r.row for r in records] == list(range(first_row, first_row + len(kinds)))
    assert all(r.source == str(SAMPLES / name) for r in records)


def test_csv_and_xlsx_samples_hold_the_same_certificates_as_the_json_samples() -> None:
    from_csv = [canonical_json(r.cert) for r in intake.read_certificates(SAMPLES / "batch.csv")]
    from_xlsx = [canonical_json(r.cert) for r in intake.read_certificates(SAMPLES / "batch.xlsx")]
    assert from_csv == from_xlsx
    for name, index in (("verification.json", 0), ("calibration.json", 1)):
        (record,) = intake.read_certificates(SAMPLES / name)
        assert canonical_json(record.cert) == from_csv[index]
    assert "Tháp" in from_csv[2].decode()  # Vietnamese text came through as UTF-8


def test_sample_xlsx_is_what_make_xlsx_builds(tmp_path: Path) -> None:
    out = tmp_path / "rebuilt.xlsx"
    make_xlsx.build(SAMPLES, out)
    rebuilt = [canonical_json(r.cert) for r in intake.read_certificates(out)]
    committed = [canonical_json(r.cert) for r in intake.read_certificates(SAMPLES / "batch.xlsx")]
    assert rebuilt == committed


def test_xlsx_numbers_keep_their_decimal_digits() -> None:
    records = intake.read_certificates(SAMPLES / "batch.xlsx")
    cal = records[1].cert
    ver = records[0].cert
    assert isinstance(cal, CalibrationCertificate)
    assert isinstance(ver, VerificationCertificate)
    assert cal.results[0].uncertainty == Decimal("0.000062")  # a float cell, no binary noise
    assert str(ver.checks[0].mpe) == "0.10"  # the trailing zero the number format shows
    assert cal.item.year == 2021


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx"])
def test_round_trip_of_each_format(make_results: MakeResults, fmt: str) -> None:
    records = [calibration("HC-1"), verification("KD-1")]
    path = make_results(fmt, records)
    got = intake.read_certificates(path)
    assert [r.cert.ref for r in got] == ["HC-1", "KD-1"]
    cal = got[0].cert
    assert isinstance(cal, CalibrationCertificate)
    assert [str(m.uncertainty) for m in cal.results] == ["0.0012", "0.10"]
    assert cal.checked_by is None  # no checked_by.* cell: the optional object stays absent


# --- one bad value: the exact message --------------------------------------------------------


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        node = record
        *groups, last = key.split(".")
        for group in groups:
            node = node[group]
        del node[last]

    return change


def _drop_result(field: str) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        del record["results"][1][field]

    return change


def _set_result(field: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        record["results"][1][field] = value

    return change


def _set(field: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        record[field] = value

    return change


BAD_VALUES = {
    # case: (change to the 2nd certificate, table, field in spreadsheets, JSON path, problem)
    "missing field": (
        _drop("item.serial"),
        "certificates",
        "item.serial",
        "item.serial",
        "missing (required)",
    ),
    "missing list field": (
        _drop_result("measured"),
        "results",
        "measured",
        "results[1].measured",
        "missing (required)",
    ),
    "wrong unit": (
        _set_result("unit", "lbs"),
        "results",
        "unit",
        "results[1].unit",
        "expected a legal unit of measurement (for example kg, g, mm, L, °C, kPa, %), got 'lbs'",
    ),
    "negative uncertainty": (
        _set_result("uncertainty", "-0.1"),
        "results",
        "uncertainty",
        "results[1].uncertainty",
        "expected a positive number, got '-0.1'",
    ),
    "text in a number": (
        _set_result("measured", "abc"),
        "results",
        "measured",
        "results[1].measured",
        "expected a number, got 'abc'",
    ),
    "day-first date": (
        _set("received", "24/11/2026"),
        "certificates",
        "received",
        "received",
        "expected a date YYYY-MM-DD, got '24/11/2026'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_bad_value_names_file_row_and_field(make_results: MakeResults, fmt: str, case: str) -> None:
    change, table, column, json_path, problem = BAD_VALUES[case]
    records = [calibration("HC-1"), calibration("HC-2")]
    change(records[1])
    path = make_results(fmt, records)
    if fmt == "json":
        expected = f"{path}, row 2, field '{json_path}': {problem}"
    else:
        # spreadsheet rows count the header: HC-2 is row 3; its second result is row 5
        row = 3 if table == "certificates" else 5
        expected = f"{where(path, table)}, row {row}, field '{column}': {problem}"
    assert problems(path) == [expected]


@pytest.mark.parametrize(("fmt", "row"), [("csv", 3), ("xlsx", 3), ("json", 2)])
def test_unknown_kind(make_results: MakeResults, fmt: str, row: int) -> None:
    records = [calibration("HC-1"), {**calibration("HC-2"), "kind": "inspection"}]
    path = make_results(fmt, records)
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    (error,) = info.value.errors
    assert str(error) == (
        f"{where(path, 'certificates')}, row {row}, field 'kind': "
        "expected 'verification' or 'calibration', got 'inspection'"
    )
    assert error.hint is not None and "hiệu chuẩn" in error.hint


def test_decimal_comma_gets_a_hint(make_results: MakeResults) -> None:
    records = [calibration("HC-1"), calibration("HC-2")]
    records[1]["results"][1]["uncertainty"] = "0,05"
    path = make_results("csv", records)
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    (error,) = info.value.errors
    assert str(error) == (
        f"{path.with_name('batch.results.csv')}, row 5, field 'uncertainty': "
        "expected a number, got '0,05'"
    )
    assert error.hint == "use a dot as the decimal separator"
    assert (error.path, error.row, error.field) == (
        str(path.with_name("batch.results.csv")),
        5,
        "uncertainty",
    )


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_every_problem_is_reported_at_once(make_results: MakeResults, fmt: str) -> None:
    records = [calibration("HC-1"), calibration("HC-2"), calibration("HC-3")]
    records[0]["results"][0]["uncertainty"] = "n/a"
    records[2]["item"]["year"] = "năm ngoái"
    path = make_results(fmt, records)
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    located = [(e.path, e.row, e.field) for e in info.value.errors]
    if fmt == "json":
        assert located == [
            (str(path), 1, "results[0].uncertainty"),
            (str(path), 3, "item.year"),
        ]
    else:
        assert located == [
            (where(path, "results"), 2, "uncertainty"),
            (where(path, "certificates"), 4, "item.year"),
        ]
    assert str(info.value).startswith("2 problems in the input:\n")


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_batch_mode_keeps_going_past_bad_certificates(make_results: MakeResults, fmt: str) -> None:
    records = [calibration("HC-1"), calibration("HC-2"), verification("KD-3")]
    records[1]["standards"][0]["calibration_due"] = "sắp tới"  # a bad list-table row
    path = make_results(fmt, records)
    items = list(intake.iter_records(path))
    assert [type(i) for i in items] == [Record, Rejected, Record]
    first = 1 if fmt == "json" else 2
    assert [i.row for i in items] == [first, first + 1, first + 2]
    rejected = items[1]
    assert isinstance(rejected, Rejected)
    assert rejected.ref == "HC-2"
    assert rejected.source == str(path)
    (error,) = rejected.errors
    assert "expected a date YYYY-MM-DD, got 'sắp tới'" in str(error)
    if fmt != "json":
        assert (error.path, error.row) == (where(path, "standards"), 3)


# --- whole-file problems ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".csv", ".xlsx"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with pytest.raises(InputError) as info:
        intake.iter_records(path)
    assert str(info.value) == f"{path}: the file is empty"


def test_too_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: instant, and unreadable as CSV anyway
    with pytest.raises(InputError) as info:
        intake.iter_records(path)  # raised by the call itself, not while iterating
    assert str(info.value) == f"{path}: the file is 50 MB, more than the limit of 25 MB"
    with pytest.raises(InputErrors):
        intake.read_certificates(path)


def test_size_limit_is_a_parameter(make_results: MakeResults) -> None:
    path = make_results("json", [calibration("HC-1")])
    with pytest.raises(InputError, match=r"more than the limit of 100 bytes"):
        intake.iter_records(path, max_bytes=100)


def test_broken_utf8_in_csv_names_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    head = b"ref,kind\nHC-1,calibration\n"
    path.write_bytes(head + b"HC-2,hi\xeau chu\xe2n\n")  # Windows-1258 bytes
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    error = info.value.errors[-1]
    offset = len(head) + len(b"HC-2,hi")
    assert str(error) == (
        f"{path}: the file is not UTF-8 text: byte 0xEA at line 3 "
        f"(byte offset {offset}) cannot be decoded"
    )
    assert error.hint is not None and error.hint.startswith("save the file as UTF-8")


def test_broken_utf8_in_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    head = b'{\n  "ref": "HC-1",\n  "kind": "Ki'
    path.write_bytes(head + b'\xc3m"\n}\n')  # 0xC3 starts a 2-byte sequence; "m" cannot end it
    with pytest.raises(InputError) as info:
        list(intake.iter_records(path))
    assert str(info.value).endswith(
        f"byte 0xC3 at line 3 (byte offset {len(head)}) cannot be decoded"
    )
    assert info.value.hint == "save the file as UTF-8"


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_text('[\n  {"ref": "HC-1",\n   "kind" "calibration"}\n]\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(intake.iter_records(path))
    assert str(info.value) == (
        f"{path}: not valid JSON: expecting ':' delimiter at line 3, column 11"
    )


def test_unknown_suffix_names_the_accepted_ones(tmp_path: Path) -> None:
    path = tmp_path / "results.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError) as info:
        intake.iter_records(path)
    assert str(info.value) == (
        f"{path}: cannot read '.xls' files: expected one of .json, .csv, .xlsx, .xml"
    )
    assert info.value.hint == "open it in Excel and save it as .xlsx"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file"):
        intake.iter_records(tmp_path / "nowhere.csv")


def test_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "batch.xlsx"
    path.write_text("ref,kind\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"not an Excel workbook \(\.xlsx\)"):
        intake.iter_records(path)


def test_missing_certificates_sheet(tmp_path: Path) -> None:
    path = tmp_path / "batch.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "Trang tính1"
    workbook.save(path)
    with pytest.raises(InputError) as info:
        list(intake.iter_records(path))
    assert str(info.value) == (
        f"{path}: no sheet named 'certificates' (the workbook has 'Trang tính1')"
    )


@pytest.mark.parametrize("column", ["ref", "kind"])
def test_missing_ref_or_kind_column(make_results: MakeResults, column: str) -> None:
    path = make_results("csv", [calibration("HC-1")])
    rows = list(csv.reader(path.open(encoding="utf-8")))
    index = rows[0].index(column)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([c for i, c in enumerate(row) if i != index] for row in rows)
    with pytest.raises(InputError) as info:
        list(intake.iter_records(path))
    assert str(info.value) == f"{path}, row 1: no column '{column}'"


def test_semicolon_separated_csv_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("ref;kind\nHC-1;calibration\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(intake.iter_records(path))
    assert info.value.hint is not None and "semicolons" in info.value.hint


def test_utf8_bom_is_accepted(make_results: MakeResults) -> None:
    path = make_results("csv", [calibration("HC-1")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    (record,) = intake.read_certificates(path)
    assert record.cert.ref == "HC-1"


def test_rows_count_records_not_lines(make_results: MakeResults) -> None:
    # A quoted cell with a line break is still one spreadsheet row.
    first, second = calibration("HC-1"), calibration("HC-2")
    first["customer"]["address"] = "Khu công nghiệp C,\nphường Sa Đéc"
    second["item"]["year"] = "2020.5"
    path = make_results("csv", [first, second])
    assert problems(path) == [
        f"{path}, row 3, field 'item.year': expected a whole number, got '2020.5'"
    ]


def test_header_only_means_no_certificates(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("ref,kind\n,\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no certificates"):
        list(intake.iter_records(path))


# --- joining the list tables -----------------------------------------------------------------


def test_duplicate_ref_in_json_is_an_error_on_the_second(make_results: MakeResults) -> None:
    path = make_results("json", [calibration("HC-1"), verification("HC-1")])
    items = list(intake.iter_records(path))
    assert isinstance(items[0], Record)
    assert isinstance(items[1], Rejected)
    assert [str(e) for e in items[1].errors] == [
        f"{path}, row 2, field 'ref': duplicate ref 'HC-1': row 1 has it already"
    ]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_duplicate_ref_in_a_sheet_refuses_both_rows(make_results: MakeResults, fmt: str) -> None:
    # Both rows are refused: the list-table rows with that ref cannot be shared out.
    path = make_results(fmt, [calibration("HC-1"), calibration("HC-1"), calibration("HC-2")])
    items = list(intake.iter_records(path))
    assert [type(i) for i in items] == [Rejected, Rejected, Record]
    table = where(path, "certificates")
    assert [str(e) for i in items if isinstance(i, Rejected) for e in i.errors] == [
        f"{table}, row 2, field 'ref': duplicate ref 'HC-1': row 3 has it too",
        f"{table}, row 3, field 'ref': duplicate ref 'HC-1': row 2 has it already",
    ]


def test_list_row_with_unknown_ref_is_an_error(make_results: MakeResults) -> None:
    path = make_results("csv", [calibration("HC-1")])
    results = path.with_name("batch.results.csv")
    with results.open("a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow(["HC-l", "1", "1.0", "0.1", "g"])
    items = list(intake.iter_records(path))
    assert isinstance(items[0], Record)
    orphan = items[-1]
    assert isinstance(orphan, Rejected)
    assert (orphan.source, orphan.row, orphan.ref) == (str(results), 4, "HC-l")
    (error,) = orphan.errors
    assert str(error) == f"{results}, row 4, field 'ref': no certificate with ref 'HC-l' in {path}"
    assert error.hint == "did you mean 'HC-1'?"


def test_certificate_without_list_rows(make_results: MakeResults) -> None:
    record = calibration("HC-1")
    record["standards"] = []
    path = make_results("xlsx", [record])
    assert problems(path) == [
        f"{path} [certificates], row 2, field 'standards': missing (required): "
        f"{path} [standards] has no rows with ref 'HC-1'"
    ]


def test_list_rows_for_the_wrong_kind(make_results: MakeResults) -> None:
    path = make_results("csv", [calibration("HC-1"), verification("KD-1")])
    checks = path.with_name("batch.checks.csv")
    checks.write_text(checks.read_text(encoding="utf-8").replace("KD-1", "HC-1"), "utf-8")
    items = list(intake.iter_records(path))
    assert isinstance(items[0], Rejected)
    assert [str(e) for e in items[0].errors] == [
        f"{checks}, row 2, field 'ref': certificate 'HC-1' is a calibration certificate, "
        "which has no checks"
    ]
    assert isinstance(items[1], Rejected)  # KD-1 lost its only check row
    assert "missing (required)" in str(items[1].errors[0])


def test_missing_group_names_the_columns_to_fill(make_results: MakeResults) -> None:
    record = calibration("HC-1")
    del record["customer"]
    path = make_results("csv", [record])
    (rejected,) = intake.iter_records(path)
    assert isinstance(rejected, Rejected)
    (error,) = rejected.errors
    assert str(error) == f"{path}, row 2, field 'customer.name': missing (required)"
    assert error.hint == "add a column 'customer.name'"


def test_field_of_the_other_kind(make_results: MakeResults) -> None:
    record = calibration("HC-1")
    record["instrument"] = {"name": "Cột đo"}
    path = make_results("csv", [record])
    (message,) = problems(path)
    assert message == (
        f"{path}, row 2, field 'instrument.name': not used on a calibration certificate "
        "(it is a field of verification certificates)"
    )


def test_misspelt_column_gets_a_suggestion(make_results: MakeResults) -> None:
    record = calibration("HC-1")
    record["item"]["serail"] = record["item"].pop("serial")
    path = make_results("json", [record])
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    hints = {e.field: e.hint for e in info.value.errors}
    assert hints["item.serail"] == "did you mean 'serial'?"
    assert "item.serial" in hints  # and the real field is reported missing


# --- values ----------------------------------------------------------------------------------


def test_json_numbers_become_exact_decimals(tmp_path: Path) -> None:
    record = calibration("HC-1")
    record["results"][0]["uncertainty"] = "@U@"
    path = tmp_path / "one.json"
    path.write_text(json.dumps(record).replace('"@U@"', "0.1"), encoding="utf-8")
    (got,) = intake.read_certificates(path)
    assert isinstance(got.cert, CalibrationCertificate)
    uncertainty = got.cert.results[0].uncertainty
    assert uncertainty == Decimal("0.1") and str(uncertainty) == "0.1"


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_date_given_as_a_bare_number_is_refused(make_results: MakeResults, fmt: str) -> None:
    record = calibration("HC-1")
    record["valid_until"] = "0"  # pydantic alone would read 1970-01-01 (Unix time 0)
    path = make_results(fmt, [record])
    (message,) = problems(path)
    assert message.endswith("field 'valid_until': expected a date YYYY-MM-DD, got '0'")


def test_percentage_cell_is_refused_with_a_hint(make_results: MakeResults) -> None:
    path = make_results("xlsx", [calibration("HC-1")])
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["certificates"]
    header = [c.value for c in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("conditions.humidity") + 1, value=0.55)
    cell.number_format = "0%"
    workbook.save(path)
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    (error,) = info.value.errors
    assert str(error).endswith("field 'conditions.humidity': expected a number, got '55%'")
    assert error.hint is not None and "without %" in error.hint


def test_xlsx_reads_past_a_wrong_sheet_dimension(make_results: MakeResults, tmp_path: Path) -> None:
    path = make_results("xlsx", [calibration("HC-1"), calibration("HC-2")])
    # rewrite the stored dimension to claim a one-cell sheet, as some exporters do
    fixed = tmp_path / "fixed.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(fixed, "w") as dst:
        for member in src.infolist():
            data = src.read(member)
            if member.filename.startswith("xl/worksheets/"):
                data = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1"', data)
            dst.writestr(member, data)
    assert [r.cert.ref for r in intake.read_certificates(fixed)] == ["HC-1", "HC-2"]


def test_schema_json() -> None:
    schema = json.loads(intake.certificate_schema_json())
    assert {"VerificationCertificate", "CalibrationCertificate"} <= set(schema["$defs"])
    assert intake.certificate_schema_json().startswith("{\n  ")


def test_records_are_frozen() -> None:
    (record,) = intake.read_certificates(SAMPLES / "calibration.json")
    with pytest.raises(AttributeError):
        record.row = 5  # type: ignore[misc]


# --- streaming: memory does not grow with the number of rows ---------------------------------


def _json_error_location(text: str) -> str:
    """How `json.loads` locates the first syntax error of `text`, in our message's words."""
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(text)
    exc = info.value
    return f"{exc.msg.lower()} at line {exc.lineno}, column {exc.colno}"


def test_json_list_yields_records_before_a_late_syntax_error(tmp_path: Path) -> None:
    # 300 records of about 1.3 KB span several 64 KiB chunks; the last one is broken. The
    # records before it come out first, each with its number, then the error for the file.
    records = [calibration(f"HC-{i}") for i in range(1, 301)]
    text = json.dumps(records, ensure_ascii=False, indent=1)
    cut = text.rindex('"kind"')
    text = text[:cut] + text[cut:].replace('"kind":', '"kind"', 1)  # a missing ':'
    path = tmp_path / "batch.json"
    path.write_text(text, encoding="utf-8")
    assert len(text.encode()) > 4 * (1 << 16)
    items = intake.iter_records(path)
    seen: list[tuple[int, str]] = []
    with pytest.raises(InputError) as info:
        for item in items:
            assert isinstance(item, Record), item
            seen.append((item.row, item.cert.ref))
    assert seen == [(i, f"HC-{i}") for i in range(1, 300)]
    assert str(info.value) == f"{path}: not valid JSON: {_json_error_location(text)}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[{"a": 1} {"b": 2}]', "expecting ',' delimiter"),
        ("[1, 2,]", "expecting value"),
        ("[1, 2", "expecting ',' delimiter"),
        ("[1, 2] [", "extra data"),
        ('{"ref": "HC-1"} x', "extra data"),
        ("[\n  1,\n  2\n  3]", "expecting ',' delimiter"),
    ],
)
def test_json_list_syntax_errors_are_located_as_json_does(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "batch.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(intake.iter_records(path))
    location = _json_error_location(text)
    assert location.startswith(problem)
    assert str(info.value) == f"{path}: not valid JSON: {location}"


def test_json_number_cut_by_a_chunk_end_is_read_whole(tmp_path: Path) -> None:
    # Bare numbers as records, so that every chunk end falls inside one: each must be read
    # whole ("1." of "1.25" is not a record) and refused as a number, not as broken JSON.
    numbers = [f"{i}.25e1" for i in range(30_000)]
    path = tmp_path / "numbers.json"
    path.write_text("[" + ",".join(numbers) + "]", encoding="utf-8")
    items = list(intake.iter_records(path))
    assert len(items) == len(numbers)
    assert all(isinstance(i, Rejected) for i in items)
    last = items[-1]
    assert isinstance(last, Rejected)
    assert str(last.errors[0]) == (
        f"{path}, row 30000: expected a certificate object {{...}}, got '299992.5'"
    )


def test_json_list_memory_does_not_grow_with_the_number_of_records(tmp_path: Path) -> None:
    # tracemalloc's peak while reading 20,000 records stays about that of 2,000: the list is
    # never held whole. (The records have no ref: the duplicate check keeps one short entry per
    # ref, which is small and measured on its own by the batch benchmark.)
    def peak(n: int) -> int:
        path = tmp_path / f"rows-{n}.json"
        record = json.dumps({"kind": "inspection", "note": "x" * 200})
        path.write_text("[\n" + ",\n".join([record] * n) + "\n]\n", encoding="utf-8")
        tracemalloc.start()
        try:
            count = sum(1 for item in intake.iter_records(path) if isinstance(item, Rejected))
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == n
        return top

    small, large = peak(2_000), peak(20_000)
    assert large < 1.5 * small, (small, large)
    size = (tmp_path / "rows-20000.json").stat().st_size
    assert size > 4_000_000
    assert large < 2 * 1024 * 1024, large  # far less than the file: it was never held whole


def _add_rows(path: Path, table: str, rows: list[list[str]]) -> None:
    """Append raw rows to the list table `table` of a CSV set or a workbook."""
    if path.suffix == ".csv":
        with path.with_name(f"batch.{table}.csv").open("a", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows)
        return
    workbook = openpyxl.load_workbook(path)
    for row in rows:
        workbook[table].append([cell or None for cell in row])
    workbook.save(path)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_list_table_rows_are_joined_in_their_input_order(
    make_results: MakeResults, fmt: str
) -> None:
    # The results of 120 certificates, listed last certificate first and interleaved: each
    # certificate gets its own rows, in the order of the table.
    records = [calibration(f"HC-{i}") for i in range(120)]
    path = make_results(fmt, [{k: v for k, v in r.items() if k != "results"} for r in records])
    rows = []
    for i in reversed(range(120)):
        rows.append([f"HC-{i}", "100", f"100.{i:03d}", "0.0012", "g"])
        rows.append([f"HC-{(i + 7) % 120}", "200", f"200.{i:03d}", "0.0012", "g"])
    header = [["ref", "nominal", "measured", "uncertainty", "unit"]]
    if fmt == "csv":
        path.with_name("batch.results.csv").write_text("", encoding="utf-8")
    else:
        workbook = openpyxl.load_workbook(path)
        workbook.create_sheet("results")
        workbook.save(path)
    _add_rows(path, "results", header + rows)
    certs = {r.cert.ref: r.cert for r in intake.read_certificates(path)}
    assert len(certs) == 120
    for i in range(120):
        cert = certs[f"HC-{i}"]
        assert isinstance(cert, CalibrationCertificate)
        own, other = f"100.{i:03d}", f"200.{(i - 7) % 120:03d}"
        # HC-0..HC-6 get their second row from a certificate listed before them
        expected = [other, own] if i < 7 else [own, other]
        assert [str(m.measured) for m in cert.results] == expected


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_stray_list_rows_are_reported_after_the_certificates(
    make_results: MakeResults, fmt: str
) -> None:
    path = make_results(fmt, [calibration("HC-1"), calibration("HC-2")])
    # rows 6..9 of the results table: two rows of an unknown ref, one without a ref, another
    _add_rows(
        path,
        "results",
        [
            ["HC-9", "1", "1.0", "0.1", "g"],
            ["", "1", "1.0", "0.1", "g"],
            ["HC-9", "2", "2.0", "0.1", "g"],
            ["HC-20", "1", "1.0", "0.1", "g"],
        ],
    )
    items = list(intake.iter_records(path))
    assert [type(i) for i in items] == [Record, Record, Rejected, Rejected, Rejected]
    table = where(path, "results")
    source = table if fmt == "csv" else str(path)
    stray = [i for i in items if isinstance(i, Rejected)]
    assert [(i.source, i.row, i.ref) for i in stray] == [
        (source, 6, "HC-9"),
        (source, 9, "HC-20"),
        (source, 7, None),
    ]
    main = where(path, "certificates")
    assert [[str(e) for e in i.errors] for i in stray] == [
        [
            f"{table}, row 6, field 'ref': no certificate with ref 'HC-9' in {main}",
            f"{table}, row 8, field 'ref': no certificate with ref 'HC-9' in {main}",
        ],
        [f"{table}, row 9, field 'ref': no certificate with ref 'HC-20' in {main}"],
        [f"{table}, row 7, field 'ref': missing (required)"],
    ]
    assert stray[1].errors[0].hint == "did you mean 'HC-2'?"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_list_row_with_a_value_in_an_unnamed_column(make_results: MakeResults, fmt: str) -> None:
    path = make_results(fmt, [calibration("HC-1")])
    _add_rows(path, "results", [["HC-1", "300", "300.1", "0.1", "g", "", "stray note"]])
    column = "column 7" if fmt == "csv" else "column G"
    assert problems(path) == [
        f"{where(path, 'results')}, row 4: a value in {column}, which has no name in the first row"
    ]


def test_list_table_rows_are_not_held_in_memory(tmp_path: Path) -> None:
    # 10,000 stray results rows (each with its own unknown ref) cost no more Python memory than
    # 1,000: the rows wait in a temporary SQLite file (whose page cache, about 2 MB, is outside
    # tracemalloc's view but fixed), and each comes back as its own Rejected.
    def peak(n: int) -> int:
        folder = tmp_path / str(n)
        folder.mkdir()
        main = folder / "batch.csv"
        main.write_text("ref,kind\nHC-1,inspection\n", encoding="utf-8")
        with (folder / "batch.results.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ref", "nominal", "measured", "uncertainty", "unit", "note"])
            writer.writerows([f"X-{i}", "1", "1.0", "0.1", "g", "y" * 100] for i in range(n))
        tracemalloc.start()
        try:
            stray = 0
            for item in intake.iter_records(main):
                assert isinstance(item, Rejected)
                stray += item.ref is not None and item.ref.startswith("X-")
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert stray == n
        return top

    small, large = peak(1_000), peak(10_000)
    assert large < 1.5 * small, (small, large)
    assert large < 512 * 1024, large  # the 10,000 rows are 1.2 MB of CSV


# --- external provider and customer-supplied fields (ISO/IEC 17025 §7.8.2.1 p, §7.8.2.2) -----


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx"])
def test_external_provider_and_customer_supplied_are_columns(
    make_results: MakeResults, fmt: str
) -> None:
    record = calibration("HC-1")
    record["external_provider"] = "Phòng thí nghiệm X (VILAS 999)"
    # One cell in a table: the field names separated by commas, semicolons or spaces.
    names = ["item.serial", "place_of_calibration", "customer.address"]
    record["customer_supplied"] = (
        names if fmt == "json" else "item.serial, place_of_calibration;customer.address"
    )
    (cert,) = [r.cert for r in intake.read_certificates(make_results(fmt, [record]))]
    assert isinstance(cert, CalibrationCertificate)
    assert cert.external_provider == "Phòng thí nghiệm X (VILAS 999)"
    assert cert.customer_supplied == names


@pytest.mark.parametrize(("fmt", "field"), [
    ("json", "customer_supplied[1]"), ("csv", "customer_supplied"), ("xlsx", "customer_supplied"),
])  # fmt: skip
def test_customer_supplied_cell_names_the_row_field_and_known_names(
    make_results: MakeResults, fmt: str, field: str
) -> None:
    record = calibration("HC-1")
    record["customer_supplied"] = (
        ["item.serial", "item.colour"] if fmt == "json" else "item.serial, item.colour"
    )
    path = make_results(fmt, [record])
    (problem,) = problems(path)
    row = 1 if fmt == "json" else 2  # JSON records count from 1; a table counts its header
    assert problem.startswith(f"{where(path, 'certificates')}, row {row}, field '{field}': ")
    assert "got 'item.colour'" in problem and "'place_of_calibration'" in problem
    if fmt != "json":
        assert "name 2 in the cell" in problem
        with pytest.raises(InputErrors) as info:
            intake.read_certificates(path)
        assert info.value.errors[0].hint == "separate the names with commas"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_customer_supplied_is_not_a_verification_column(
    make_results: MakeResults, fmt: str
) -> None:
    record = verification("KĐ-1") | {"customer_supplied": "item.serial", "external_provider": "X"}
    path = make_results(fmt, [record])
    found = problems(path)
    assert len(found) == 2
    for name in ("customer_supplied", "external_provider"):
        assert any(
            f"row 2, field '{name}': not used on a verification certificate" in p for p in found
        ), found
