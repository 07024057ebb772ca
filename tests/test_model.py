from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from certissuer.model import (
    CalibrationCertificate,
    VerificationCertificate,
    canonical_json,
    data_digest,
    format_result,
    is_legal_unit,
    parse_certificate,
    round_uncertainty,
)


@pytest.mark.parametrize(
    ("u", "expected"),
    [
        ("0.0123", "0.013"),
        ("0.0999", "0.10"),
        ("1.234", "1.3"),
        ("0.000062", "0.000062"),
        ("12", "12"),
        ("0.05", "0.050"),
        ("99.1", "1.0E+2"),
    ],
)
def test_uncertainty_rounds_up_to_two_significant_digits(u: str, expected: str) -> None:
    assert round_uncertainty(Decimal(u)) == Decimal(expected)
    assert len(round_uncertainty(Decimal(u)).as_tuple().digits) <= 2


def test_result_is_rounded_to_the_uncertainty_place() -> None:
    assert format_result(Decimal("10.00347"), Decimal("0.0123")) == ("10.003", "0.013")
    assert format_result(Decimal("200.00031"), Decimal("0.00019")) == ("200.00031", "0.00019")
    assert format_result(Decimal("7.5"), Decimal("99.1")) == ("10", "100")


@pytest.mark.parametrize("unit", ["kg", "g", "mg", "mm", "L", "mL", "L/min", "°C", "kPa", "%"])
def test_legal_units(unit: str) -> None:
    assert is_legal_unit(unit)


@pytest.mark.parametrize("unit", ["lbs", "psi", "KG", "inch", "gal", ""])
def test_illegal_units(unit: str) -> None:
    assert not is_legal_unit(unit)


def test_samples_parse_into_the_right_kind(
    cal_data: dict[str, Any], ver_data: dict[str, Any]
) -> None:
    assert isinstance(parse_certificate(cal_data), CalibrationCertificate)
    ver = parse_certificate(ver_data)
    assert isinstance(ver, VerificationCertificate) and ver.passes


def test_canonical_json_is_stable_and_decimal_as_string(cal_data: dict[str, Any]) -> None:
    a = parse_certificate(cal_data)
    shuffled = json.loads(
        json.dumps(cal_data, default=str), object_pairs_hook=lambda p: dict(reversed(p))
    )
    b = parse_certificate(shuffled)
    assert canonical_json(a) == canonical_json(b)
    assert data_digest(a) == data_digest(b)
    assert '"uncertainty":"0.000062"' in canonical_json(a).decode()
    changed = parse_certificate({**cal_data, "method": cal_data["method"] + " (rev)"})
    assert data_digest(changed) != data_digest(a)


def test_failed_check_point_makes_instrument_fail(ver_data: dict[str, Any]) -> None:
    ver_data["checks"][0]["error"] = "0.11"
    assert not parse_certificate(ver_data).passes


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("results", 0, "unit"), "lbs", "legal unit"),
        (("results", 0, "uncertainty"), "-0.1", "greater than 0"),
        (("kind",), "inspection", "calibration"),
        (("received",), "2026-12-01", "on or after received 2026-12-01"),
        (("calibrated",), "86400", "expected a date YYYY-MM-DD"),
        (("standards", 0, "calibration_due"), 0, "expected a date YYYY-MM-DD"),
        (("item", "serial"), 12345, None),
    ],
)
def test_bad_values_are_refused(
    cal_data: dict[str, Any], path: tuple[Any, ...], value: Any, fragment: str | None
) -> None:
    target: Any = cal_data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    if fragment is None:  # accepted: a number where text is expected is read as text
        assert parse_certificate(cal_data).item.serial == "12345"
        return
    with pytest.raises(ValidationError, match=fragment):
        parse_certificate(cal_data)


def test_one_home_for_pass_fail_the_worst_check_decides(ver_data: dict[str, Any]) -> None:
    from certissuer.model import Verdict

    checks = [{**c, "uncertainty": "0.02"} for c in ver_data["checks"]]
    checks[0]["error"] = "0.09"  # in the guard band
    cert = parse_certificate({**ver_data, "checks": checks})
    assert cert.verdict is Verdict.INDETERMINATE and not cert.passes
    checks[1]["error"] = "-0.5"  # beyond MPE + U
    cert = parse_certificate({**ver_data, "checks": checks})
    assert cert.verdict is Verdict.FAIL and [c.passes for c in cert.checks] == [False] * 2 + [True]


def test_mpe_units_are_in_the_json_schema() -> None:
    from certissuer.model import certificate_json_schema

    text = json.dumps(certificate_json_schema())
    for name in ("scale_interval_unit", "mpe_unit", "uncertainty"):
        assert f'"{name}"' in text
