"""The accredited scope's CMC (ILAC-P14): a calibration result inside a scope line may not
state an expanded uncertainty below the line's CMC, whether the scope is the register's or the
profile's [lab] accredited_scope (issue 16). Refused with exit 9, one line per result, before
a number is taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from certissuer.config import ScopeLine, Settings
from certissuer.errors import ConfigError, InputError
from certissuer.issue import Issuer
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate

from .test_checks_default import NOW, refused
from .test_registry import make_issuer, seed


@pytest.fixture
def make(
    settings: Settings, any_ledger_url: str, sealer: Any, renderer: Any, tmp_path: Path
) -> Any:
    """An issuer with no register whose profile states `scope` lines."""

    def build(*scope: str) -> Issuer:
        lab = settings.replace(lab_accreditation="VILAS 9", lab_accredited_scope=scope)
        return make_issuer(lab, any_ledger_url, sealer, renderer, tmp_path / "out")

    return build


# The sample's results, all in g: U = 0.062, 0.081, 0.12 and 0.19 mg.


def test_a_result_below_the_profile_cmc_is_refused(make: Any, cal_data: dict[str, Any]) -> None:
    issuer = make("Cân / Balance: 0..220 g, CMC 0.1 mg")
    exc = refused(issuer, cal_data)
    lines = str(exc).splitlines()
    assert len(lines) == 2  # results 1 and 2 are below 0.1 mg, 3 and 4 are not
    assert lines[0].startswith("ref 'HC-REQ-2026-0417': results row 1 (10 g): U 0.000062 g")
    assert "below the CMC 0.1 mg of the accredited scope line 'Cân / Balance: 0..220 g'" in lines[0]
    assert "results row 2 (50 g): U 0.000081 g" in lines[1]
    assert "hint: state an uncertainty no smaller than the CMC" in lines[1]


def test_one_result_below_the_cmc_gets_its_own_hint(make: Any, cal_data: dict[str, Any]) -> None:
    issuer = make("Cân / Balance: 0..220 g, CMC 0.07 mg")
    exc = refused(issuer, cal_data)
    assert "results row 1 (10 g): U 0.000062 g is below the CMC 0.07 mg" in str(exc)
    assert exc.hint is not None and exc.hint.startswith(
        "state an uncertainty no smaller than the CMC"
    )


def test_a_result_at_or_above_the_cmc_is_issued(make: Any, cal_data: dict[str, Any]) -> None:
    issuer = make("Cân / Balance: 0..220 g, CMC 0.062 mg")  # result 1 sits exactly on it
    issued = issuer.issue(parse_certificate(cal_data), now=NOW)
    assert issued.number.startswith("HC-") and issued.path.exists()


@pytest.mark.parametrize(
    ("cmc", "passes"),
    [("0.0000000621 kg", False), ("62 µg", True), ("62.1 µg", False), ("0.000062", True)],
)
def test_the_cmc_is_compared_in_one_unit(
    make: Any, cal_data: dict[str, Any], cmc: str, passes: bool
) -> None:
    issuer = make(f"Cân / Balance: 0..220 g, CMC {cmc}")
    if passes:
        issuer.check(parse_certificate(cal_data), now=NOW)
    else:
        assert "results row 1 (10 g)" in str(refused(issuer, cal_data))


def test_a_result_outside_every_cmc_line_is_not_held_to_it(
    make: Any, cal_data: dict[str, Any]
) -> None:
    issuer = make("Cân / Balance: 0..5 g, CMC 1 mg", "Cân / Balance: 5..220 g")
    issuer.check(parse_certificate(cal_data), now=NOW)  # no result lies in 0..5 g


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("Cân: 0..220 g, CMC abc", "the CMC must be a positive number, got 'abc'"),
        ("Cân: 0..220 g, CMC 0", "the CMC must be a positive number, got '0'"),
        ("Cân: 0..220 g, CMC", "the CMC must be a positive number, got ''"),
        ("Cân: 0..220 g CMC 0.1 mg", "the CMC must follow the range after a comma"),
        ("Cân: 0..x g, CMC 0.1 mg", "is not a scope line"),
    ],
)
def test_a_bad_profile_cmc_names_the_line(line: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        ScopeLine.parse(line, where="[lab] accredited_scope[0]")
    assert str(info.value).startswith("[lab] accredited_scope[0]: ") and says in str(info.value)
    assert "CMC 0.1 mg" in str(info.value.hint)


def test_a_profile_cmc_in_another_unit_is_refused_at_start(make: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make("Cân: 0..220 g, CMC 0.1 L")
    assert "[lab] accredited_scope[0]: 'Cân: 0..220 g'" in str(info.value)
    assert "expected the CMC in g or a multiple of it" in str(info.value)


def test_a_result_below_the_register_cmc_is_refused(
    settings: Settings, any_ledger_url: str, sealer: Any, renderer: Any, tmp_path: Path,
    cal_data: dict[str, Any],
) -> None:  # fmt: skip
    issuer = make_issuer(settings, any_ledger_url, sealer, renderer, tmp_path / "out")
    seed(issuer.register)
    issuer.register.add(
        "scope",
        {"kind": "calibration", "quantity": "Khối lượng / Mass", "unit": "g",
         "lower": "0.001", "upper": "500", "cmc": "0.1 mg"},
    )  # fmt: skip
    exc = refused(issuer, cal_data)
    assert len(str(exc).splitlines()) == 2
    assert "U 0.000062 g is below the CMC 0.1 mg of the accredited scope line" in str(exc)
    issuer.register.add(
        "scope",
        {"kind": "calibration", "quantity": "Khối lượng / Mass", "unit": "g",
         "lower": "0.001", "upper": "500", "cmc": "0.00006"},
    )  # fmt: skip
    issued = issuer.issue(parse_certificate(cal_data), now=NOW)
    assert issued.number.startswith("HC-")


def test_register_cmc_is_checked_on_add_import_and_exported(ledger: Ledger, tmp_path: Path) -> None:
    from certissuer.registry import Register

    register = Register(ledger.engine, lab_code="T01")
    with pytest.raises(InputError) as info:
        register.add(
            "scope",
            {"kind": "calibration", "unit": "g", "lower": "0", "upper": "1", "cmc": "0.1 L"},
        )
    assert info.value.field == "cmc" and "expected the CMC in g or a multiple of it" in str(
        info.value
    )
    src = tmp_path / "scope.csv"
    src.write_text(
        "kind,unit,lower,upper,cmc\ncalibration,g,0,220,0.1 mg\ncalibration,g,220,500,-1\n",
        encoding="utf-8",
    )
    report = register.import_file("scope", src)
    assert report.imported == 1
    (error,) = report.errors
    assert error.row == 3 and error.field == "cmc"
    out = tmp_path / "out.csv"
    register.export_file("scope", out)
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].split(",")[-1] == "cmc" and lines[1].endswith(",0.1 mg")
