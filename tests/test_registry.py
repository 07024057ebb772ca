"""The measurement register: checks at every issue, stamps, cycles, import (issue 8)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlmodel import Session, select

from certissuer.config import Settings
from certissuer.errors import InputError, IssueRefused, RegisterRefused
from certissuer.issue import Issuer, load_token_key
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.registry import (
    Instrument,
    Register,
    StampUse,
    add_months,
    load_instrument_types,
    parse_stamp,
    valid_until_for,
)

DIRECTOR = "Lê Hoàng Phúc"
VERIFIER = "Phạm Minh Tuấn"


def seed(register: Register) -> None:
    """A register in which both samples pass every check."""
    register.add("lab", {"code": register.lab_code, "name_vi": "PTN", "accreditation": "VILAS 9"})
    register.add(
        "person",
        {
            "name": VERIFIER,
            "verifier_card": "KĐV-0042",
            "card_types": "cot-do-xang-dau;can-ban",
            "card_expiry": "2028-06-30",
        },
    )
    register.add("person", {"name": DIRECTOR, "signatory": "yes"})
    register.add("person", {"name": "Trần Văn Đức", "signatory": "yes"})
    register.add(
        "scope",
        {
            "kind": "verification",
            "instrument_type": "cot-do-xang-dau",
            "unit": "L/min",
            "lower": "0",
            "upper": "100",
            "signatories": DIRECTOR,
        },
    )
    register.add(
        "scope",
        {
            "kind": "calibration",
            "quantity": "Khối lượng / Mass",
            "unit": "g",
            "lower": "0.001",
            "upper": "500",
            "signatories": f"{DIRECTOR}; Trần Văn Đức",
        },
    )
    register.add(
        "standard",
        {
            "code": "E2-0457",
            "name": "Bộ quả cân chuẩn E2",
            "serial": "E2-0457",
            "certificate_number": "V09.M-2026-0123",
            "calibration_due": "2027-03-31",
        },
    )
    register.add("stamp", {"series": "ĐT-26", "first": "12000", "last": "12999"})


def make_issuer(settings: Settings, url: str, sealer: Any, renderer: Any, out: Path) -> Issuer:
    return Issuer(
        settings.replace(ledger_url=url),
        ledger=Ledger.open(url),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=out,
        renderer=renderer,
    )


@pytest.fixture
def reg_issuer(
    settings: Settings, any_ledger_url: str, sealer: Any, renderer: Any, tmp_path: Path
) -> Issuer:
    issuer = make_issuer(settings, any_ledger_url, sealer, renderer, tmp_path / "out")
    seed(issuer.register)
    return issuer


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


# -- cycles ------------------------------------------------------------------------------


def test_valid_until_is_the_last_day_of_the_cycle() -> None:
    assert valid_until_for(date(2026, 11, 25), 12) == date(2027, 11, 24)  # the sample's date
    assert valid_until_for(date(2026, 1, 1), 36) == date(2028, 12, 31)
    assert valid_until_for(date(2024, 2, 29), 12) == date(2025, 2, 27)  # clamped, then −1 day
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


def test_shipped_cycle_table_has_the_circular_examples() -> None:
    cycles = {t.code: t.cycle_months for t in load_instrument_types()}
    assert cycles["can-ban"] == 12
    assert cycles["cot-do-xang-dau"] == 12
    assert cycles["dong-ho-nuoc-dien-tu"] == 36
    assert cycles["cong-to-1p-dien-tu"] == 72
    assert all(t.source.startswith("Circular 23/2013") for t in load_instrument_types())


def test_a_lab_cycle_table_replaces_the_shipped_one(
    settings: Settings, ledger: Ledger, tmp_path: Path
) -> None:
    own = tmp_path / "types.toml"
    own.write_text(
        'source = "lab list"\n[[type]]\ncode = "cot-do-xang-dau"\n'
        'name_vi = "Cột đo xăng dầu"\ncycle_months = 6\n',
        encoding="utf-8",
    )
    register = Register(ledger.engine, lab_code="T01", instrument_types=own)
    register.add("lab", {"code": "T01"})
    assert register.find("type", ["cot-do-xang-dau"]).cycle_months == 6


def test_the_cycle_table_is_read_once_per_run(ledger: Ledger) -> None:
    register = Register(ledger.engine, lab_code="T01")
    register.add("lab", {"code": "T01"})  # loads the shipped table into the register
    first = register.cycle_types()
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM registry_instrument_type")
    assert register.cycle_types() is first  # not read again for the next record
    register.add("type", {"code": "x", "name_vi": "X", "cycle_months": "6"})
    assert [t.code for t in register.cycle_types()] == ["x"]  # its own write is seen


def test_stamp_is_split_into_series_and_number() -> None:
    assert parse_stamp("ĐT-26 0012345") == ("ĐT-26", 12345)
    assert parse_stamp("A-000017") == ("A", 17)
    with pytest.raises(ValueError, match="expected a stamp series and number"):
        parse_stamp("no number")


# -- issuing -------------------------------------------------------------------------------


def test_samples_pass_every_check_and_are_recorded(
    reg_issuer: Issuer, ver_data: dict[str, Any], cal_cert: Any
) -> None:
    ver_data["stamp_number"] = "ĐT-26 0012345"
    issued = reg_issuer.issue(parse_certificate(ver_data))
    cal = reg_issuer.issue(cal_cert)
    assert issued.number.startswith("KĐ-") and cal.number.startswith("HC-")
    with Session(reg_issuer.ledger.engine) as s:
        use = s.get(StampUse, ("ĐT-26", 12345))
        assert use is not None and use.certificate_number == issued.number
        ins = s.exec(select(Instrument).where(Instrument.serial == "TS-2019-88231")).one()
    assert (ins.type_code, ins.last_certificate) == ("cot-do-xang-dau", issued.number)
    assert ins.valid_until == date(2027, 11, 24)
    recall = reg_issuer.register.recall(within_days=0, today=date(2027, 11, 24))
    assert [(g.owner_name, [i.serial for i in g.items]) for g in recall.groups] == [
        (ver_data["owner"]["name"], ["TS-2019-88231"])
    ]
    # issuing the same record again returns it, and does not trip over its own stamp
    assert reg_issuer.issue(parse_certificate(ver_data)).reused


def _no_new_entry(issuer: Issuer) -> None:
    assert list(issuer.ledger.entries()) == []


REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "verification",
        "valid-until off the cycle",
        {"valid_until": "2027-11-25"},
        r"valid_until is 2027-11-25, but a Cột đo xăng dầu / Fuel dispenser verified on "
        r"2026-11-25 with a cycle of 12 months is valid until 2027-11-24",
    ),
    (
        "verification",
        "verifier without a card",
        {"verifier": {"name": "Ai Đó"}},
        r"verifier Ai Đó has no verifier card in the register",
    ),
    (
        "verification",
        "card expired",
        {"verification_date": "2028-07-01", "valid_until": "2029-06-30"},
        r"the verifier card KĐV-0042 of Phạm Minh Tuấn expired on 2028-06-30, before the "
        r"verification date 2028-07-01",
    ),
    (
        "verification",
        "type not covered",
        {
            "instrument": {"name": "Đồng hồ nước lạnh có cơ cấu điện tử", "serial": "W-1"},
            "valid_until": "2029-11-24",
        },
        r"does not cover Đồng hồ nước lạnh có cơ cấu điện tử / Electronic cold-water meter",
    ),
    (
        "verification",
        "unknown type",
        {"instrument": {"name": "Máy lạ", "serial": "X-1"}},
        r"instrument 'Máy lạ' names no type of the cycle table",
    ),
    (
        "verification",
        "range outside the scope",
        {"ranges": [{"lower": "5", "upper": "150", "unit": "L/min", "mpe": "0.5"}]},
        r"\(5 ÷ 150\) L/min for verification of cot-do-xang-dau is outside the accreditation "
        r"scope of lab T01",
    ),
    (
        "verification",
        "head not approved",
        {"head": {"name": "Trần Văn Đức"}},
        r"Trần Văn Đức is not an approved signatory for the scope 'cot-do-xang-dau'",
    ),
    (
        "verification",
        "stamp not in stock",
        {"stamp_number": "ĐT-26 0013000"},
        r"stamp ĐT-26 0013000 \(series ĐT-26, number 13000\) is not in the stamp stock of lab T01",
    ),
    (
        "calibration",
        "standard past due",
        {"calibrated": "2027-04-01", "received": "2027-04-01"},
        r"reference standard Bộ quả cân chuẩn cấp chính xác E2 / Weight set class E2 "
        r"\(E2-0457\) was due for calibration on "
        r"2027-03-31, before the calibration date 2027-04-01",
    ),
    (
        "calibration",
        "standard not registered",
        {
            "standards": [
                {
                    "name": "Quả cân lạ",
                    "serial": "Q-9",
                    "certificate_number": "C-1",
                    "calibration_due": "2030-01-01",
                }
            ]
        },
        r"reference standard Quả cân lạ \(serial Q-9, certificate C-1\) is not in the register",
    ),
    (
        "calibration",
        "signatory not authorised",
        {"signatory": {"name": "Nguyễn Thị Thu Hà"}},
        r"Nguyễn Thị Thu Hà is not an authorised signatory in the register",
    ),
    (
        "calibration",
        "unit outside the scope",
        {
            "results": [
                {
                    "quantity": "Khối lượng",
                    "nominal": "10",
                    "measured": "10.00003",
                    "uncertainty": "0.000062",
                    "unit": "kg",
                }
            ]
        },
        r"10 kg for calibration of can-phan-tich is outside the accreditation scope",
    ),
]


@pytest.mark.parametrize(
    ("kind", "what", "change", "message"), REFUSALS, ids=[r[1] for r in REFUSALS]
)
def test_each_refusal_names_what_failed(
    reg_issuer: Issuer,
    ver_data: dict[str, Any],
    cal_data: dict[str, Any],
    kind: str,
    what: str,
    change: dict[str, Any],
    message: str,
) -> None:
    data = {**(ver_data if kind == "verification" else cal_data), **change}
    # Issued after every date of the cases, so that no work date lies in the future; the
    # checks that need no register (cycle, type, standards' due dates) refuse with
    # IssueRefused, the register's own with its subclass RegisterRefused.
    with pytest.raises(IssueRefused, match=message) as info:
        reg_issuer.issue(parse_certificate(data), now=datetime(2028, 7, 2, 12, tzinfo=UTC))
    assert info.value.hint and info.value.exit_code == 9
    _no_new_entry(reg_issuer)


def test_a_used_stamp_is_refused(reg_issuer: Issuer, ver_data: dict[str, Any]) -> None:
    first = reg_issuer.issue(parse_certificate(ver_data))
    again = {**ver_data, "ref": "another", "instrument": {**ver_data["instrument"], "serial": "Z"}}
    with pytest.raises(
        RegisterRefused,
        match=rf"stamp ĐT-26 0012345 was already used by "
        rf"certificate {first.number}",
    ):
        reg_issuer.issue(parse_certificate(again))


def test_failed_instrument_is_still_refused_and_recorded(
    reg_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    ver_data["checks"][0]["error"] = "0.5"
    with pytest.raises(IssueRefused, match="failed verification"):
        reg_issuer.issue(parse_certificate(ver_data))
    with Session(reg_issuer.ledger.engine) as s:  # the stamp was not taken
        assert s.get(StampUse, ("ĐT-26", 12345)) is None


def test_outside_scope_can_be_issued_without_the_accreditation_mark(
    settings: Settings, sealer: Any, renderer: Any, tmp_path: Path, cal_data: dict[str, Any]
) -> None:
    # The accreditation mark is printed on calibration certificates only (issue 16).
    settings = settings.replace(
        lab_accreditation="VILAS 1234", registry_outside_scope="unaccredited"
    )
    url = f"sqlite:///{tmp_path / 'l.db'}"
    issuer = make_issuer(settings, url, sealer, renderer, tmp_path / "out")
    seed(issuer.register)
    inside = issuer.issue(parse_certificate(cal_data))
    big = {**cal_data["results"][-1], "nominal": "1000", "measured": "1000.0004"}
    wide = {
        **cal_data,
        "ref": "wide",
        "item": {**cal_data["item"], "serial": "TS-2"},
        "results": [*cal_data["results"], big],
    }
    outside = issuer.issue(parse_certificate(wide))
    text_in, text_out = pdf_text(inside.path), pdf_text(outside.path)
    assert "VILAS 1234" in text_in and "outside the laboratory's scope" not in text_in
    assert "VILAS 1234" not in text_out
    assert "nằm ngoài phạm vi được công nhận" in text_out
    assert "outside the laboratory's scope of accreditation" in text_out


def test_a_lab_not_in_the_register_issues_as_before(
    issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    issued = issuer.issue(parse_certificate(ver_data))
    assert issued.path.exists() and not issuer.register.enabled()
    with Session(issuer.ledger.engine) as s:
        assert s.exec(select(StampUse)).all() == []


def test_register_checks_without_rows_have_no_data_and_do_not_refuse(
    settings: Settings, any_ledger_url: str, sealer: Any, renderer: Any, tmp_path: Path,
    ver_data: dict[str, Any], cal_data: dict[str, Any],
) -> None:  # fmt: skip
    """Issue 16: the register's checks run when their rows exist. A lab row alone (no cards,
    scope, stamp stock or standards of its own) refuses nothing; once a card exists, a
    verifier without one is refused."""
    issuer = make_issuer(settings, any_ledger_url, sealer, renderer, tmp_path / "out")
    issuer.register.add("lab", {"code": issuer.register.lab_code})
    assert set(issuer.register.coverage().values()) == {False}
    now = datetime(2026, 12, 3, 3, tzinfo=UTC)
    assert issuer.issue(parse_certificate(ver_data), now=now).path.exists()
    assert issuer.issue(parse_certificate(cal_data), now=now).path.exists()
    # The standard issuing added is not the lab's own: that check still has no data.
    assert issuer.register.coverage()["standards in the register"] is False
    issuer.register.add(
        "person", {"name": "Someone Else", "verifier_card": "KĐV-9", "card_types": "can-ban",
                   "card_expiry": "2030-01-01"},
    )  # fmt: skip
    assert issuer.register.coverage()["verifier cards"] is True
    again = {**ver_data, "ref": "KD-OTHER", "stamp_number": "ĐT-26 0099999"}
    with pytest.raises(RegisterRefused, match="has no verifier card in the register"):
        issuer.issue(parse_certificate(again), now=now)


# -- import ---------------------------------------------------------------------------------


HEADER = [
    "owner_code",
    "owner_name",
    "owner_address",
    "type_code",
    "name",
    "model",
    "serial",
    "manufacturer",
    "year",
    "ranges",
    "accuracy_class",
    "place_of_use",
    "last_certificate",
    "verified_on",
    "valid_until",
]


def test_import_500_instruments_reports_the_2_bad_rows(any_ledger_url: str, tmp_path: Path) -> None:
    path = tmp_path / "instruments.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for i in range(500):
        row = [
            f"MST-{i % 40:04d}",
            f"Cơ sở {i % 40}",
            "Đồng Tháp",
            "can-ban",
            "Cân bàn",
            "TPS-60",
            f"S{i:05d}",
            "Nhơn Hòa",
            2020,
            "(0 ÷ 60) kg",
            "III",
            "Chợ Cao Lãnh",
            f"KĐ-2026-{i:06d}",
            date(2026, 1, 1),
            date(2026, 12, 31),
        ]
        if i == 99:
            row[14] = "2026-13-01"
        if i == 400:
            row[6] = None
        sheet.append(row)
    book.save(path)
    register = Register(Ledger.open(any_ledger_url).engine, lab_code="T01")
    report = register.import_file("instrument", path)
    assert report.imported == 498
    assert [str(e) for e in report.errors] == [
        f"{path} [Sheet], row 101, field 'valid_until': expected a date YYYY-MM-DD, "
        "got '2026-13-01'",
        f"{path} [Sheet], row 402, field 'serial': a value is required",
    ]
    rows = register.list("instrument")
    assert len(rows) == 498 and len({r["owner_code"] for r in rows}) == 40
    assert rows[0]["valid_until"] == date(2026, 12, 31)
    # importing again updates in place
    assert register.import_file("instrument", path).imported == 498
    assert len(register.list("instrument")) == 498


def test_import_csv_bad_value_and_export_round_trip(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "name,verifier_card,card_types,card_expiry,signatory\n"
        "A,K1,can-ban,2027-01-01,no\nB,K2,can-ban,01/02/2027,no\nC,,,,maybe\n",
        encoding="utf-8",
    )
    register = Register(ledger.engine, lab_code="T01")
    report = register.import_file("person", path)
    assert report.imported == 1
    assert [(e.row, e.field) for e in report.errors] == [(3, "card_expiry"), (4, "signatory")]
    out = tmp_path / "people.xlsx"
    assert register.export_file("person", out) == 1
    other = Register(ledger.engine, lab_code="T02")
    assert other.import_file("person", out).imported == 1
    assert other.find("person", ["A"]).card_expiry == date(2027, 1, 1)


def test_add_names_the_bad_field(ledger: Ledger) -> None:
    register = Register(ledger.engine, lab_code="T01")
    with pytest.raises(InputError, match=r"field 'upper': expected a value above lower"):
        register.add("scope", {"kind": "calibration", "unit": "g", "lower": "5", "upper": "1"})
    with pytest.raises(InputError, match=r"unknown register part 'gadget'"):
        register.list("gadget")


def test_registry_tables_come_with_the_ledger(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        names = set(conn.dialect.get_table_names(conn))
    assert {"registry_instrument", "registry_stamp_use", "registry_scope"} <= names
    assert "registry_standard_use" in names  # migration 0008
    assert "registry_testing_scope" in names  # migration 0011
    assert json.dumps(sorted(n for n in names if n.startswith("registry_"))).count(",") == 10


def test_valid_until_is_computed_when_not_typed(
    reg_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    del ver_data["valid_until"]
    ver_data["stamp_number"] = "ĐT-26 0012345"
    issued = reg_issuer.issue(parse_certificate(ver_data))
    entry = reg_issuer.ledger.get(issued.number)
    # fuel dispenser, 12-month cycle, verified 2026-11-25
    assert entry is not None and entry.valid_until == date(2027, 11, 24)
    assert entry.data()["valid_until"] == "2027-11-24"
    assert "24/11/2027" in pdf_text(issued.path)


def test_missing_valid_until_without_a_cycle_is_refused(
    issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    del ver_data["valid_until"]
    ver_data["instrument"]["name"] = "Thiết bị lạ / Unknown device"
    with pytest.raises(IssueRefused, match="names no type of the cycle table") as info:
        issuer.issue(parse_certificate(ver_data))
    assert info.value.hint is not None and "register" in info.value.hint
    assert list(issuer.ledger.entries()) == []
