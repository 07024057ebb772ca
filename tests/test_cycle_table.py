"""The shipped cycle table: each row cites its source, and the rows checked against the law
carry the law's cycle (issue 16, "Cycle table checked")."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from certissuer.errors import ConfigError
from certissuer.registry import load_instrument_types
from certissuer.registry.checks import match_type

TYPES = load_instrument_types()
BY_CODE = {t.code: t for t in TYPES}
RAW: list[dict[str, Any]] = tomllib.loads(
    resources.files("certissuer").joinpath("data/instrument_types.toml").read_text("utf-8")
)["type"]

# Read on 2026-12-03 in the Article 4(1) table of Circular 23/2013/TT-BKHCN as replaced by
# Circular 03/2024/TT-BKHCN (in force 2024-10-15): (code, months).
CONFIRMED = [
    ("taximet", 18),  # row 2; was 12 here before
    ("do-toc-do-xe", 24),  # row 3; was 12
    ("can-phan-tich", 12),  # row 6
    ("can-ky-thuat", 12),  # row 7
    ("can-dong-ho-lo-xo", 24),  # row 8; was 12
    ("can-ban", 12),  # row 8
    ("can-dia", 12),  # row 8
    ("can-treo", 12),  # rows 8 and 9
    ("can-o-to", 12),  # row 10
    ("sac-xe-dien-ac-xe-may", 60),  # charger energy meters, added by 03/2024
    ("sac-xe-dien-ac-o-to", 36),
    ("sac-xe-dien-dc-o-to", 36),
]
# Read in sources quoting the table as amended by Circular 07/2019/TT-BKHCN only.
CONFIRMED_2019 = [
    ("cot-do-xang-dau", 12),
    ("dong-ho-nuoc-co", 60),
    ("dong-ho-nuoc-dien-tu", 36),
]


def test_every_row_cites_a_source() -> None:
    for entry in RAW:
        assert isinstance(entry.get("source"), str) and entry["source"].strip(), entry["code"]
        assert entry["source"].startswith("Circular 23/2013/TT-BKHCN"), entry["code"]


def test_every_row_says_whether_its_cycle_was_confirmed() -> None:
    for t in TYPES:
        said = ("confirmed 2026-12-03", "as read 2026-12-03", "not confirmed")
        assert any(s in t.source for s in said), t.code
    checked = {code for code, _ in CONFIRMED + CONFIRMED_2019}
    for t in TYPES:
        if t.code not in checked:
            assert "not confirmed" in t.source, t.code


def test_initial_only_rows_have_no_cycle() -> None:
    initial = [e for e in RAW if e.get("initial_only") is True]
    assert {e["code"] for e in initial} == {"nhiet-ke-y-hoc-thuy-tinh", "nhiet-ke-y-hoc-dien-tu"}
    for entry in initial:
        assert "cycle_months" not in entry, entry["code"]
        assert BY_CODE[entry["code"]].cycle_months == 0
        assert "initial verification only" in entry["source"]
    others = [e for e in RAW if e.get("initial_only") is not True]
    assert all(BY_CODE[e["code"]].cycle_months > 0 for e in others)


@pytest.mark.parametrize(("code", "months"), CONFIRMED)
def test_a_confirmed_row_carries_the_law_cycle(code: str, months: int) -> None:
    t = BY_CODE[code]
    assert t.cycle_months == months
    assert "Circular 03/2024/TT-BKHCN" in t.source
    assert f"{months} months; confirmed 2026-12-03 from" in t.source
    assert "http" in t.source  # the address where it was read


@pytest.mark.parametrize(("code", "months"), CONFIRMED_2019)
def test_a_row_read_in_the_2019_text_says_so(code: str, months: int) -> None:
    t = BY_CODE[code]
    assert t.cycle_months == months
    assert "Circular 07/2019/TT-BKHCN" in t.source and f"{months} months" in t.source
    assert "its row for this type was not read" in t.source


def test_the_type_taken_out_of_the_list_says_so() -> None:
    assert "REMOVED" in BY_CODE["cong-to-1p-cam-ung"].source
    assert "not confirmed" in BY_CODE["cong-to-1p-cam-ung"].source


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Thiết bị đo điện năng xoay chiều sạc pin xe ô tô điện", "sac-xe-dien-ac-o-to"),
        ("Thiết bị đo điện năng một chiều sạc pin xe ô tô điện", "sac-xe-dien-dc-o-to"),
        ("Thiết bị đo điện năng sạc pin xe máy điện", "sac-xe-dien-ac-xe-may"),
        ("Cân treo móc cẩu 5 t", "can-treo"),
        ("Phương tiện đo kiểm tra tốc độ phương tiện giao thông", "do-toc-do-xe"),
        ("Taximet điện tử", "taximet"),
    ],
)
def test_the_law_names_find_their_types(name: str, code: str) -> None:
    assert match_type(name, TYPES) == code


def test_initial_only_with_a_cycle_is_refused(tmp_path: Path) -> None:
    own = tmp_path / "types.toml"
    own.write_text(
        '[[type]]\ncode = "nk"\nname_vi = "Nhiệt kế y học"\ninitial_only = true\n'
        "cycle_months = 12\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_instrument_types(own)
    assert f"{own}: [[type]] number 1: type 'nk' has initial_only = true and a cycle_months" in (
        str(info.value)
    )
    assert "remove cycle_months" in str(info.value)
