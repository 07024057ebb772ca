"""certissuer.model.numbers: the number-formatting table, as printed on a certificate.

Each row is a golden text: the inputs as typed, and the strings the results table prints
(GUM 7.2.6: U rounded up to two significant digits, the value to U's place; ILAC-P14: the error
keeps its sign; one SI prefix or ×10ⁿ per row; an indicated value no finer than the display).
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from pydantic import ValidationError

from certissuer import intake
from certissuer.model import (
    CalibrationCertificate,
    Measurement,
    format_extra,
    format_percent,
    format_result,
    format_row,
    t_factor,
)

from .test_intake import MakeResults, calibration, make_results, problems, where

__all__ = ["make_results"]  # the fixture, shared with the intake tests

M = "\u2212"  # the typeset minus sign the results table prints

# measured, U, unit, nominal, error, resolution → nominal, indicated, error, U, unit, power
GOLDEN = [
    # existing rounding cases (tests/test_model.py), in a row
    ("10.00347", "0.0123", "g", "10", None, None, ("10", "10.003", "0.003", "0.013", "g", 0)),
    ("200.00031", "0.00019", "g", "200", None, None,
     ("200", "200.00031", "0.00031", "0.00019", "g", 0)),
    ("10.00003", "0.000062", "g", "10", None, None,
     ("10", "10.000030", "0.000030", "0.000062", "g", 0)),
    # U 99.1 → 1.0E+2: "100" would look like three significant digits; the row goes to kg
    ("7.5", "99.1", "g", None, None, None, ("", "0.01", "", "0.10", "kg", 0)),
    # the error keeps its sign and U's decimals: 9.9996 − 10 at U 0.010
    ("9.9996", "0.01", "g", "10", None, None, ("10", "10.000", f"{M}0.000", "0.010", "g", 0)),
    ("9.9996", "0.01", "g", "10", "-0.0004", None,
     ("10", "10.000", f"{M}0.000", "0.010", "g", 0)),
    ("9.994", "0.01", "g", "10", None, None, ("10", "9.994", f"{M}0.006", "0.010", "g", 0)),
    ("10", "0.01", "g", "10", None, None, ("10", "10.000", "0.000", "0.010", "g", 0)),
    ("-5.12", "0.05", "°C", "-5", None, None,
     (f"{M}5", f"{M}5.120", f"{M}0.120", "0.050", "°C", 0)),
    # very small: a prefix for the row, not 0.000000001000
    ("1E-9", "1E-12", "kPa", "1E-9", None, None, ("1", "1.0000", "0.0000", "0.0010", "µPa", 0)),
    ("1.2E-9", "3E-11", "kPa", None, None, None, ("", "1.200", "", "0.030", "µPa", 0)),
    # very large: 1,000,123,456 kWh ± 1,234,567 kWh, never "1000100000"
    ("1000123456", "1234567", "kWh", "1000000000", None, None,
     ("1", "1.0001", "0.0001", "0.0013", "TWh", 0)),
    # large but unambiguous (U's last digit in the units): printed as it is
    ("123456789", "12", "kg", None, None, None, ("", "123456789", "", "12", "kg", 0)),
    # a unit that takes no prefix: ×10ⁿ, shared by the row
    ("1E-9", "1E-12", "%", "1E-9", None, None, ("1", "1.0000", "0.0000", "0.0010", "%", -9)),
    ("25000", "990", "°C", None, None, None, ("", "25.00", "", "0.99", "°C", 3)),
    # a squared unit is never re-prefixed (1 km² = 10⁶ m²)
    ("1E-9", "1E-12", "m²", None, None, None, ("", "1.0000", "", "0.0010", "m²", -9)),
    # resolution: the indicated value keeps the digits the display shows
    ("20.1", "0.012", "°C", "20", None, "0.1", ("20", "20.1", "0.100", "0.012", "°C", 0)),
    ("20.10", "0.012", "°C", "20", None, "0.01", ("20", "20.10", "0.100", "0.012", "°C", 0)),
    ("1240", "0.5", "g", "1240", None, "20", ("1240", "1240", "0.00", "0.50", "g", 0)),
    # a coarse U wins over a fine display (the value goes to U's place)
    ("20.13", "0.25", "°C", "20", None, "0.01", ("20", "20.13", "0.13", "0.25", "°C", 0)),
    ("20.13", "1.2", "°C", "20", None, "0.01", ("20", "20.1", "0.1", "1.2", "°C", 0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("measured", "u", "unit", "nominal", "error", "resolution", "expected"), GOLDEN
)
def test_golden_row(
    measured: str,
    u: str,
    unit: str,
    nominal: str | None,
    error: str | None,
    resolution: str | None,
    expected: tuple[str, str, str, str, str, int],
) -> None:
    row = format_row(
        Decimal(measured),
        Decimal(u),
        unit,
        nominal=None if nominal is None else Decimal(nominal),
        error=None if error is None else Decimal(error),
        resolution=None if resolution is None else Decimal(resolution),
    )
    assert (row.nominal, row.measured, row.error, row.uncertainty, row.unit, row.power) == expected


def test_no_printed_number_overflows_or_is_a_run_of_zeros() -> None:
    for measured, u, unit, nominal, error, resolution, _ in GOLDEN:
        row = format_row(
            Decimal(measured),
            Decimal(u),
            unit,
            nominal=None if nominal is None else Decimal(nominal),
            error=None if error is None else Decimal(error),
            resolution=None if resolution is None else Decimal(resolution),
        )
        for text in (row.nominal, row.measured, row.error, row.uncertainty):
            assert len(text.lstrip("\u2212")) <= 12 and not text.startswith("0.000000"), text


def test_plain_format_result_is_unchanged() -> None:
    # the primitive the row builds on: no prefix, the value at U's place
    assert format_result(Decimal("7.5"), Decimal("99.1")) == ("10", "100")
    assert format_result(Decimal("10.00347"), Decimal("0.0123")) == ("10.003", "0.013")


@pytest.mark.parametrize(
    ("p", "text"), [("0.95", "95"), ("0.9545", "95.45"), ("0.6827", "68.27"), ("0.9973", "99.73")]
)
def test_coverage_probability_as_percent(p: str, text: str) -> None:
    assert format_percent(Decimal(p)) == text


# -- the model's checks ---------------------------------------------------------------------

BASE = {"nominal": "10", "measured": "10.0001", "uncertainty": "0.001", "unit": "g"}


def _problem(**fields: str) -> tuple[str, str]:
    with pytest.raises(ValidationError) as info:
        Measurement(**{**BASE, **fields})
    [error] = info.value.errors()
    return ".".join(str(p) for p in error["loc"]), error["msg"]


def test_typed_error_that_is_not_measured_minus_nominal_is_refused() -> None:
    field, message = _problem(error="-0.00049")
    assert field == "error"
    assert "measured − nominal = 0.0001" in message and "got -0.00049" in message


@pytest.mark.parametrize("typed", ["0.0001", "0.00010", "0.000", "0.00014"])
def test_typed_error_within_half_a_unit_of_its_last_digit_is_kept(typed: str) -> None:
    # 0.000 is 0.0001 to three decimals; 0.00014 is not 0.0001 … but 0.0001 − 0.00014 is
    # 0.00004, beyond ±0.000005: see the refused case below
    if typed == "0.00014":
        assert _problem(error=typed)[0] == "error"
    else:
        assert Measurement(**{**BASE, "error": typed}).error == Decimal(typed)


def test_k_other_than_2_needs_a_coverage_probability() -> None:
    field, message = _problem(coverage_factor="3")
    assert field == "coverage_probability" and "k = 3" in message
    m = Measurement(**{**BASE, "coverage_factor": "3", "coverage_probability": "0.9973"})
    assert m.probability == Decimal("0.9973")


def test_k_2_defaults_to_95_percent_and_095_is_that_default() -> None:
    assert Measurement(**BASE).probability == Decimal("0.95")
    typed = Measurement(**{**BASE, "coverage_probability": "0.95"})
    assert typed.coverage_probability is None and typed == Measurement(**BASE)
    stated = Measurement(**{**BASE, "coverage_probability": "0.9545"})
    assert stated.probability == Decimal("0.9545")


@pytest.mark.parametrize("p", ["95", "0", "1"])
def test_coverage_probability_is_a_fraction(p: str) -> None:
    assert _problem(coverage_factor="3", coverage_probability=p)[0] == "coverage_probability"


def test_indicated_value_must_be_a_reading_of_the_display() -> None:
    field, message = _problem(resolution="0.001")
    assert field == "resolution" and "multiple of 0.001" in message
    assert Measurement(**{**BASE, "resolution": "0.0001"}).resolution == Decimal("0.0001")


def test_new_fields_left_out_keep_the_canonical_form() -> None:
    # records issued before coverage_probability and resolution existed keep their digest
    dumped = Measurement(**BASE).model_dump(mode="json")
    assert "coverage_probability" not in dumped and "resolution" not in dumped
    full = Measurement(**{**BASE, "coverage_factor": "3", "coverage_probability": "0.9973"})
    assert full.model_dump(mode="json")["coverage_probability"] == "0.9973"


# -- read from every input format ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_new_fields_are_read_and_checked_in_every_format(
    make_results: MakeResults, fmt: str
) -> None:
    good = calibration("HC-1")
    good["results"][0].update(coverage_factor="3", coverage_probability="0.9973")
    good["results"][1].update(resolution="0.001", error="0.004")
    [record] = intake.read_certificates(make_results(fmt, [good], name="good"))
    cert = record.cert
    assert isinstance(cert, CalibrationCertificate)
    first, second = cert.results
    assert first.probability == Decimal("0.9973") and second.resolution == Decimal("0.001")

    bad = calibration("HC-2")
    bad["results"][0]["coverage_factor"] = "2.1"  # no probability: refused, not "≈ 95 %"
    bad["results"][1]["error"] = "-0.00049"  # typed, but measured − nominal is 0.004
    path = make_results(fmt, [bad])
    found = problems(path)
    assert len(found) == 2, found
    results = where(path, "results")
    assert any(
        line.startswith(results) and "coverage_probability" in line and "k = 2.1" in line
        for line in found
    ), found
    assert any(
        line.startswith(results)
        and "error'" in line
        and "measured − nominal = 0.004" in line
        and "got -0.00049" in line
        for line in found
    ), found


# -- the t-distribution (GUM Table G.2) -----------------------------------------------------


def _t_coverage(t: float, nu: int, steps: int = 2000) -> float:
    """P(|T| ≤ t) for Student's t with `nu` degrees of freedom (Simpson's rule on the density)."""
    c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)
    h = t / steps
    total = sum(
        (1 if i in (0, steps) else 4 if i % 2 else 2)
        * c
        * (1 + (i * h) ** 2 / nu) ** (-(nu + 1) / 2)
        for i in range(steps + 1)
    )
    return float(2 * total * h / 3)


@pytest.mark.parametrize("nu", [1, 2, 3, 5, 8, 10, 14, 20, 25, 45, 100])
def test_t_table_is_gum_table_g2_as_printed(nu: int) -> None:
    # the true t₉₅.₄₅(ν) lies within half a unit of the table's last digit
    t = t_factor(nu)
    exponent = t.as_tuple().exponent
    assert isinstance(exponent, int)
    half = float(Decimal(5).scaleb(exponent - 1))
    assert _t_coverage(float(t) - half, nu) < 0.9545 < _t_coverage(float(t) + half, nu)


def test_degrees_of_freedom_give_9545_when_k_is_the_t_factor() -> None:
    m = Measurement(**{**BASE, "coverage_factor": "2.37", "degrees_of_freedom": "8"})
    assert m.probability == Decimal("0.9545") and m.coverage_probability is None
    field, message = _problem(coverage_factor="2", degrees_of_freedom="8")
    assert field == "coverage_probability"
    assert "expected k = 2.37 for 8 degrees of freedom" in message and "got k = 2" in message
    # between the table's rows the row below (larger t) is used: 22 → the row for 20
    between = Measurement(**{**BASE, "coverage_factor": "2.13", "degrees_of_freedom": "22"})
    assert between.probability == Decimal("0.9545")
    # a stated probability is taken as stated
    stated = {"coverage_factor": "2", "degrees_of_freedom": "8", "coverage_probability": "0.91"}
    assert Measurement(**{**BASE, **stated}).probability == Decimal("0.91")


@pytest.mark.parametrize(
    ("given", "printed"),
    [
        ("20.0312 ± 0.0512", "20.031 ±\u00a00.052"),  # U up, two digits; value to U's place
        ("101.35 ± 0.5", "101.35 ±\u00a00.50"),
        ("-0.0004 ± 0.01", "\u22120.000 ±\u00a00.010"),  # the sign of what was rounded
        ("1234.5 ± 99.1", "1230 ±\u00a0100"),
        ("20.0", "20.0"),  # as given: its trailing zero is a digit
        ("0.30000000000000004", "0.3"),  # a binary float's noise is not
        ("-1.5E+1", "\u221215"),
        ("1e-7", "0.0000001"),
        ("+3.0", "3.0"),
        ("n/a", "n/a"),
        ("20.0 ± 0", "20.0 ± 0"),  # no uncertainty to round to: as it is
        ("1.2.3", "1.2.3"),
    ],
)
def test_an_extra_quantity_prints_rounded_like_a_result(given: str, printed: str) -> None:
    assert format_extra(given) == printed
