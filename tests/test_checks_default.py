"""The checks every certificate passes with no register set up (issue 16).

A lab that never ran ``registry add lab`` gets them all: the valid-until date from the cycle
table, the instrument type by whole words, the dates against today in Vietnam, the reference
standards' due dates and the instrument's year. A refusal is `IssueRefused` (exit 9), one line
per problem, and no number is taken.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from certissuer.config import Settings
from certissuer.errors import IssueRefused
from certissuer.issue import Issuer, load_token_key
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.registry import load_instrument_types
from certissuer.registry.checks import check_basics, closest_types, find_types, match_type

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
"""Issue time of the tests: 2026-12-03 in Vietnam, after the samples' work dates."""

TYPES = load_instrument_types()


@pytest.fixture
def bare_issuer(
    settings: Settings, any_ledger_url: str, sealer: Any, renderer: Any, tmp_path: Path
) -> Issuer:
    """An issuer on a fresh ledger (SQLite, or PostgreSQL when set up) with no register."""
    issuer = Issuer(
        settings.replace(ledger_url=any_ledger_url),
        ledger=Ledger.open(any_ledger_url),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path / "out",
        renderer=renderer,
    )
    assert not issuer.register.enabled()
    return issuer


def refused(issuer: Issuer, data: dict[str, Any], *, now: datetime = NOW) -> IssueRefused:
    """Refused by `check` and by `issue`, with exit 9, and no number taken."""
    cert = parse_certificate(data)
    before = list(issuer.ledger.entries())
    with pytest.raises(IssueRefused) as checked:
        issuer.check(cert, now=now)
    with pytest.raises(IssueRefused) as info:
        issuer.issue(cert, now=now)
    assert str(checked.value) == str(info.value)
    assert info.value.exit_code == 9 and info.value.hint
    assert list(issuer.ledger.entries()) == before
    return info.value


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


# -- valid-until --------------------------------------------------------------------------


def test_valid_until_off_the_cycle_is_refused_without_a_register(
    bare_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    ver_data["valid_until"] = "2031-12-31"  # a 12-month fuel dispenser: 2027-11-24
    exc = refused(bare_issuer, ver_data)
    assert "valid_until is 2031-12-31" in str(exc)
    assert "cycle of 12 months is valid until 2027-11-24" in str(exc)
    assert exc.hint == "set valid_until to 2027-11-24, or leave it out to have it computed"


def test_valid_until_left_out_is_computed_without_a_register(
    bare_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    del ver_data["valid_until"]
    issued = bare_issuer.issue(parse_certificate(ver_data), now=NOW)
    entry = bare_issuer.ledger.get(issued.number)
    assert entry is not None and entry.valid_until == date(2027, 11, 24)
    assert "24/11/2027" in pdf_text(issued.path)


def test_a_type_verified_only_initially_has_no_valid_until(
    bare_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    ver_data["instrument"]["name"] = "Nhiệt kế y học điện tử / Clinical electronic thermometer"
    ver_data["stamp_number"] = ""
    exc = refused(bare_issuer, ver_data)  # a valid_until given for it is refused
    assert "needs only initial verification" in str(exc)
    del ver_data["valid_until"]
    issued = bare_issuer.issue(parse_certificate(ver_data), now=NOW)
    entry = bare_issuer.ledger.get(issued.number)
    assert entry is not None and entry.valid_until is None
    assert "Có giá trị đến" not in pdf_text(issued.path)


# -- the instrument type ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Đồng hồ đo nước lạnh cơ khí", "dong-ho-nuoc-co"),
        ("DONG HO DO NUOC LANH CO KHI DN15", "dong-ho-nuoc-co"),  # no marks, upper case
        ("Đồng hồ nước lạnh có cơ cấu điện tử", "dong-ho-nuoc-dien-tu"),
        ("Đồng hồ nước điện tử DN50", "dong-ho-nuoc-dien-tu"),
        ("Cột đo xăng dầu / Fuel dispenser", "cot-do-xang-dau"),
        ("Fuel dispenser", "cot-do-xang-dau"),
        ("Huyết áp kế điện tử", "huyet-ap-ke"),  # not a pressure gauge ("áp kế")
        ("Áp kế lò xo", "ap-ke"),
        ("Công tơ điện 1 pha điện tử", "cong-to-1p-dien-tu"),
        ("Công tơ điện 3 pha điện tử", "cong-to-3p-dien-tu"),
        ("Cân kiểm tra tải trọng xe ô tô", "can-kiem-tra-tai-trong-xe"),
        ("Máy biến dòng đo lường", "bien-dong-do-luong"),
        ("Xitéc ô tô", "xi-tec-o-to"),
    ],
)
def test_a_realistic_name_finds_its_type(name: str, code: str) -> None:
    assert match_type(name, TYPES) == code


@pytest.mark.parametrize(
    "name",
    [
        "Đồng hồ đo nước lạnh",  # mechanical (60 months) or electronic (36)? not said
        "Đồng hồ đo nhiệt độ",  # no type: "đo" and "đồng hồ" alone name nothing
        "Cân điện tử",  # which scale?
        "Máy lạ",
    ],
)
def test_a_name_that_does_not_say_the_type_finds_none(name: str) -> None:
    assert match_type(name, TYPES) is None


def test_whole_words_only() -> None:
    # "áp kế" inside "cáp kế" is no pressure gauge: words match whole, never inside others.
    assert find_types("Cáp kế", TYPES) == []
    assert find_types("Taximeters", TYPES) == []
    assert match_type("Cân bàn", TYPES) == "can-ban"


def test_an_unknown_type_is_refused_listing_the_closest(
    bare_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    ver_data["instrument"]["name"] = "Đồng hồ đo nước lạnh"
    exc = refused(bare_issuer, ver_data)
    assert "instrument 'Đồng hồ đo nước lạnh' names no type of the cycle table" in str(exc)
    assert "Đồng hồ nước lạnh cơ khí" in str(exc)
    assert "Đồng hồ nước lạnh có cơ cấu điện tử" in str(exc)
    assert [t.code for t in closest_types("Đồng hồ đo nước lạnh", TYPES, n=2)] == [
        "dong-ho-nuoc-co",
        "dong-ho-nuoc-dien-tu",
    ]


# -- dates ---------------------------------------------------------------------------------


def test_a_verification_dated_in_the_future_is_refused(
    bare_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    ver_data["verification_date"] = "2027-01-02"  # 30 days after the issue date
    del ver_data["valid_until"]
    exc = refused(bare_issuer, ver_data)
    assert "verification_date 2027-01-02 is after the issue date 2026-12-03" in str(exc)


def test_today_is_the_day_in_vietnam(bare_issuer: Issuer, ver_data: dict[str, Any]) -> None:
    # 2026-11-24 18:00 UTC is already 2026-11-25 01:00 in Vietnam: the sample's date.
    evening = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    assert bare_issuer.issue(parse_certificate(ver_data), now=evening).number
    ver_data["ref"] = "next"
    ver_data["stamp_number"] = "ĐT-26 0012346"
    ver_data["verification_date"] = "2026-11-26"
    ver_data["valid_until"] = "2027-11-25"
    exc = refused(bare_issuer, ver_data, now=evening)
    assert "after the issue date 2026-11-25" in str(exc)


def test_a_calibration_dated_after_its_issue_date_is_refused(
    bare_issuer: Issuer, cal_data: dict[str, Any]
) -> None:
    cal_data["received"] = "2026-12-01"
    cal_data["calibrated"] = "2026-12-04"
    exc = refused(bare_issuer, cal_data)
    assert "calibrated 2026-12-04 is after the issue date 2026-12-03" in str(exc)


def test_a_record_received_in_the_future_is_refused(
    bare_issuer: Issuer, cal_data: dict[str, Any]
) -> None:
    cal_data["received"] = "2026-12-05"
    cal_data["calibrated"] = "2026-12-05"
    exc = refused(bare_issuer, cal_data)
    lines = str(exc).splitlines()
    assert len(lines) == 2  # one line per problem, each with its hint
    assert "received 2026-12-05 is after the issue date" in lines[0] and "hint:" in lines[0]
    assert "calibrated 2026-12-05 is after the issue date" in lines[1] and "hint:" in lines[1]


def test_a_standard_past_its_due_date_is_refused_without_a_register(
    bare_issuer: Issuer, cal_data: dict[str, Any]
) -> None:
    cal_data["standards"][0]["calibration_due"] = "2025-11-24"  # a year before it was used
    exc = refused(bare_issuer, cal_data)
    assert "(E2-0457) was due for calibration on 2025-11-24, before the calibration date " in str(
        exc
    )


def test_a_standard_due_on_the_calibration_day_passes(
    bare_issuer: Issuer, cal_data: dict[str, Any]
) -> None:
    cal_data["standards"][0]["calibration_due"] = cal_data["calibrated"]
    assert bare_issuer.issue(parse_certificate(cal_data), now=NOW).number


def test_an_instrument_made_after_the_work_date_is_refused(
    bare_issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    ver_data["instrument"]["year"] = 2027
    exc = refused(bare_issuer, ver_data)
    assert "year of manufacture 2027 is after the work date 2026-11-25" in str(exc)


def test_every_problem_is_listed_at_once(ver_data: dict[str, Any]) -> None:
    ver_data["instrument"]["year"] = 2027
    ver_data["valid_until"] = "2031-12-31"
    with pytest.raises(IssueRefused) as info:
        check_basics(parse_certificate(ver_data), TYPES, today=date(2026, 12, 3))
    assert len(str(info.value).splitlines()) == 2


# -- the cycle table -----------------------------------------------------------------------


def test_every_row_of_the_cycle_table_cites_its_source() -> None:
    assert all(t.source.startswith("Circular 23/2013/TT-BKHCN") for t in TYPES)
    codes = {t.code: t for t in TYPES}
    for code in (
        "bien-dong-do-luong",
        "bien-ap-do-luong",
        "qua-can",
        "xi-tec-o-to",
        "be-dong-co-dinh",
        "nhiet-ke-y-hoc-dien-tu",
        "do-khi-thai-xe",
        "do-dien-tro-cach-dien",
        "do-dien-tro-tiep-dat",
        "can-kiem-tra-tai-trong-xe",
    ):
        assert code in codes, code
    assert codes["nhiet-ke-y-hoc-thuy-tinh"].cycle_months == 0  # initial verification only
    assert all(t.cycle_months > 0 for t in TYPES if "initial verification only" not in t.source)
    assert len(codes) == len(TYPES)


def test_the_profile_cycle_table_is_used_without_a_register(
    settings: Settings, any_ledger_url: str, sealer: Any, renderer: Any, tmp_path: Path,
    ver_data: dict[str, Any],
) -> None:  # fmt: skip
    own = tmp_path / "types.toml"
    own.write_text(
        'source = "lab list"\n[[type]]\ncode = "cot-do-xang-dau"\n'
        'name_vi = "Cột đo xăng dầu"\ncycle_months = 6\n',
        encoding="utf-8",
    )
    issuer = Issuer(
        settings.replace(ledger_url=any_ledger_url, registry_instrument_types=own),
        ledger=Ledger.open(any_ledger_url),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path / "out",
        renderer=renderer,
    )
    exc = refused(issuer, ver_data)
    assert "cycle of 6 months is valid until 2027-05-24" in str(exc)


def test_a_name_two_types_fit_equally_is_refused_as_ambiguous(ver_data: dict[str, Any]) -> None:
    from certissuer.registry import InstrumentType

    types = [
        InstrumentType(code="w-mech", name_vi="Nước lạnh cơ khí", cycle_months=60,
                       aliases="đồng hồ nước lạnh"),
        InstrumentType(code="w-elec", name_vi="Nước lạnh điện tử", cycle_months=36,
                       aliases="đồng hồ nước lạnh"),
    ]  # fmt: skip
    ver_data["instrument"]["name"] = "Đồng hồ đo nước lạnh"
    assert [t.code for t in find_types("Đồng hồ đo nước lạnh", types)] == ["w-mech", "w-elec"]
    assert match_type("Đồng hồ đo nước lạnh", types) is None
    with pytest.raises(IssueRefused, match="could be any of Nước lạnh cơ khí"):
        check_basics(parse_certificate(ver_data), types, today=date(2026, 12, 3))


def test_a_csv_row_with_an_empty_valid_until_gets_the_cycle_date(
    bare_issuer: Issuer, tmp_path: Path
) -> None:
    from certissuer import intake

    from .conftest import SAMPLES

    text = (SAMPLES / "batch.csv").read_text(encoding="utf-8").replace(",2027-11-24", ",", 1)
    (tmp_path / "rows.csv").write_text(text, encoding="utf-8")
    for name in ("ranges", "checks", "results", "standards"):
        src = SAMPLES / f"batch.{name}.csv"
        if src.exists():
            (tmp_path / src.name.replace("batch.", "rows.")).write_bytes(src.read_bytes())
    first = intake.read_certificates(tmp_path / "rows.csv")[0].cert
    assert first.kind == "verification" and first.valid_until is None
    issued = bare_issuer.issue(first, now=NOW)
    entry = bare_issuer.ledger.get(issued.number)
    assert entry is not None and entry.valid_until == date(2027, 11, 24)
