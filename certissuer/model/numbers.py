"""Measured values as metrologists print them (GUM 7.2.6, ILAC-P14).

* The expanded uncertainty U is rounded *up* to two significant digits; the value, the
  error and the indicated value are printed to U's decimal place.
* The error keeps its sign, even when it rounds to zero: measured 9.9996 for nominal 10 with
  U 0.01 prints "−0.000", not "0".
* A row whose numbers would run into trailing zeros that look significant (U 1 300 000 kWh)
  or into a long run of zeros (1E-9 kPa) is printed with one SI prefix, or one ×10ⁿ, that its
  value, error and U share: "1.0001 TWh ± 0.0013 TWh", never "1000100000".
* An indicated value keeps only the digits the instrument displays (its `resolution`).

>>> format_result(Decimal("10.01234"), Decimal("0.0123"))
('10.012', '0.013')
>>> row = format_row(Decimal("9.9996"), Decimal("0.01"), "g", nominal=Decimal("10"))
>>> row.measured, row.error, row.uncertainty, row.unit
('10.000', '−0.000', '0.010', 'g')
>>> row = format_row(Decimal("1E-9"), Decimal("1E-12"), "kPa")
>>> row.measured, row.uncertainty, row.unit
('1.0000', '0.0010', 'µPa')
"""

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation

from certissuer.model.units import is_legal_unit, split_prefix

__all__ = [
    "MINUS",
    "P_T_TABLE",
    "PrintedRow",
    "check_typed_error",
    "format_decimal",
    "format_extra",
    "format_percent",
    "format_result",
    "format_row",
    "round_uncertainty",
    "t_factor",
]

MINUS = "\u2212"
"""The minus sign printed before a negative number (U+2212, as typeset, not the hyphen)."""

MAX_PLAIN_WIDTH = 12
"""A row whose longest number would print wider than this many digits is given a prefix."""

_PREFIX_OF = {
    24: "Y", 21: "Z", 18: "E", 15: "P", 12: "T", 9: "G", 6: "M", 3: "k", 0: "",
    -3: "m", -6: "µ", -9: "n", -12: "p",
}  # fmt: skip
"""The SI prefixes a row may be given: powers of a thousand, as engineering notation uses."""


P_T_TABLE = Decimal("0.9545")
"""The coverage probability of `t_factor`: 95.45 %, the normal distribution's ±2σ."""

_T_95_45 = {
    1: "13.97", 2: "4.53", 3: "3.31", 4: "2.87", 5: "2.65", 6: "2.52", 7: "2.43", 8: "2.37",
    9: "2.32", 10: "2.28", 11: "2.25", 12: "2.23", 13: "2.21", 14: "2.20", 15: "2.18",
    16: "2.17", 17: "2.16", 18: "2.15", 19: "2.14", 20: "2.13", 25: "2.11", 30: "2.09",
    35: "2.07", 40: "2.06", 45: "2.06", 50: "2.05", 100: "2.025",
}  # fmt: skip
"""t₉₅.₄₅(ν) of the t-distribution: JCGM 100:2008 (GUM), Annex G, Table G.2, column
p = 95.45 %, exactly as printed there."""


def t_factor(degrees_of_freedom: int) -> Decimal:
    """The coverage factor k = t₉₅.₄₅(ν) for ν effective degrees of freedom (GUM G.4, G.6.4).

    Between the table's rows, the row below is used (the larger t: the interval never shrinks),
    as GUM G.6.4 truncates ν_eff; above 100, the row for 100.

    >>> t_factor(8), t_factor(22), t_factor(1000)
    (Decimal('2.37'), Decimal('2.13'), Decimal('2.025'))
    """
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {degrees_of_freedom}")
    row = max(nu for nu in _T_95_45 if nu <= degrees_of_freedom)
    return Decimal(_T_95_45[row])


def round_uncertainty(u: Decimal) -> Decimal:
    """Round an expanded uncertainty up to at most two significant digits (GUM 7.2.6).

    Rounding up never understates the uncertainty (ILAC-P14).
    """
    if u <= 0:
        raise ValueError(f"uncertainty must be positive, got {u}")
    exponent = u.adjusted() - 1  # keep two significant digits
    quantum = Decimal(1).scaleb(exponent)
    rounded = u.quantize(quantum, rounding=ROUND_UP)
    if rounded.adjusted() > u.adjusted():  # 99 -> 100: still two significant digits
        rounded = rounded.quantize(Decimal(1).scaleb(exponent + 1), rounding=ROUND_UP)
    return rounded


def format_result(value: Decimal, uncertainty: Decimal) -> tuple[str, str]:
    """Return (value, U) as plain numbers: U to two significant digits, value to the same place.

    No prefix is chosen here: `format_row` does that for a whole row of a certificate.
    """
    u = round_uncertainty(uncertainty)
    quantum = Decimal(1).scaleb(_exponent(u))
    v = value.quantize(quantum, rounding=ROUND_HALF_UP)
    return _plain(v), _plain(u)


def format_decimal(value: Decimal) -> str:
    """Print a Decimal without exponent notation ("1E+1" becomes "10")."""
    return _plain(value)


_NUMBER = r"[+\-\u2212]?(?:\d+\.?\d*|\.\d+)(?:[eE][+\-]?\d+)?"
_EXTRA = re.compile(rf"\s*({_NUMBER})\s*(?:±\s*({_NUMBER}))?\s*")

MAX_EXTRA_DIGITS = 15
"""A value of an extra quantity without uncertainty prints at most this many significant
digits: what is beyond is the noise of a binary float (20.000000000000004), not a digit
measured."""


def format_extra(text: str) -> str:
    """A value of an extra quantity of a result row (`Measurement.extra`) as printed.

    "value ± U" prints as a result does, U rounded up to two significant digits and the
    value to U's place; a number alone prints as given, without exponent notation and
    without the noise of a binary float; a minus is the typeset one. Any other text prints
    as it is. Only the print: the stored text is kept as it came.

    >>> format_extra("20.0312 ± 0.0512"), format_extra("-0.5"), format_extra("1.5E+3")
    ('20.031 ±\\xa00.052', '−0.5', '1500')
    >>> format_extra("20.000000000000004"), format_extra("20.0"), format_extra("n/a")
    ('20', '20.0', 'n/a')
    >>> format_extra("-0.0004 ± 0.01")
    '−0.000 ±\\xa00.010'
    """
    match = _EXTRA.fullmatch(text)
    if match is None:
        return text
    try:
        value = Decimal(match[1].replace(MINUS, "-"))
        u = None if match[2] is None else Decimal(match[2].replace(MINUS, "-"))
    except InvalidOperation:
        return text
    if not value.is_finite() or (u is not None and (not u.is_finite() or u <= 0)):
        return text
    if u is not None:
        u = round_uncertainty(u)
        # A no-break space after ±: a narrow column wraps before it, never after.
        return f"{_signed(_at(value, _exponent(u)), value < 0)} ±\u00a0{_plain(u)}"
    digits = len(value.as_tuple().digits)
    if digits > MAX_EXTRA_DIGITS:
        place = value.adjusted() - MAX_EXTRA_DIGITS + 1
        value = _at(value, place).normalize()
        if _exponent(value) > 0:
            value = value.quantize(Decimal(1))
    return _signed(value, value < 0)


def format_percent(p: Decimal) -> str:
    """A coverage probability (a fraction) as a percentage: 0.95 → "95", 0.9545 → "95.45"."""
    return _plain((p * 100).normalize())


def check_typed_error(measured: Decimal, nominal: Decimal, error: Decimal) -> None:
    """Raise `ValueError` unless the typed `error` equals measured − nominal to within half a
    unit of its last digit (a typed error is the difference rounded, never another number)."""
    exact = measured - nominal
    half = Decimal(5).scaleb(_exponent(error) - 1)
    if abs(error - exact) > half:
        raise ValueError(
            f"expected measured − nominal = {_plain(exact)} (to within ±{_plain(half)}, half a "
            f"unit of the last digit typed), got {_plain(error)}; leave 'error' empty to "
            f"have it computed"
        )


@dataclass(frozen=True)
class PrintedRow:
    """One result row as printed: every number already a string, sharing one unit."""

    nominal: str
    """Giá trị danh định, as typed (in a scaled row, without the zeros the scaling brought)."""
    measured: str
    """Giá trị chỉ thị, to U's place, never finer than the instrument's resolution."""
    error: str
    """Sai số, to U's place, its sign kept ("−0.000")."""
    uncertainty: str
    """U rounded up to two significant digits."""
    unit: str
    """The unit, with the row's SI prefix when one was chosen ("µPa" for kPa scaled by 10⁻⁹)."""
    power: int = 0
    """n when the row is printed as ×10ⁿ `unit` (a unit that takes no prefix); else 0."""


def format_row(
    measured: Decimal,
    uncertainty: Decimal,
    unit: str,
    *,
    nominal: Decimal | None = None,
    error: Decimal | None = None,
    resolution: Decimal | None = None,
) -> PrintedRow:
    """Print one calibration result row (ILAC-P14, GUM 7.2.6).

    `error` is the typed error, or None to print measured − nominal (nothing without a
    nominal value). `resolution` is the instrument's display step: the indicated value is
    printed no finer than it.
    """
    u = round_uncertainty(uncertainty)
    e = _exponent(u)
    if error is None and nominal is not None:
        error = measured - nominal
    shift = _shift(u, [measured, nominal, error])
    unit_out, power = _scaled_unit(unit, shift)
    place = e - shift  # the exponent of the last printed digit, after scaling
    measured_place = place
    if resolution is not None:
        display = min(_exponent(resolution.normalize()), 0) - shift
        measured_place = max(place, display)
    return PrintedRow(
        nominal="" if nominal is None else _signed(_nominal(nominal, shift), nominal < 0),
        measured=_signed(_at(measured.scaleb(-shift), measured_place), measured < 0),
        error="" if error is None else _signed(_at(error.scaleb(-shift), place), error < 0),
        uncertainty=_plain(u.scaleb(-shift)),
        unit=unit_out,
        power=power,
    )


def _shift(u: Decimal, values: list[Decimal | None]) -> int:
    """The power of a thousand (0, ±3, ±6 …) by which a row's numbers are divided."""
    e = _exponent(u)
    magnitudes = [abs(v).adjusted() for v in values if v is not None and v != 0]
    top = max([*magnitudes, u.adjusted()])
    width = max(top, 0) + 1 + max(-e, 0)
    if e <= 0 and width <= MAX_PLAIN_WIDTH:
        return 0
    shift = 3 * (top // 3)  # engineering notation: the largest number between 1 and 999
    if e - shift > 0:  # U's last digit must not fall left of the decimal point
        shift = 3 * -(-e // 3)
    return shift


def _nominal(nominal: Decimal, shift: int) -> Decimal:
    """The nominal value as typed; in a scaled row without the zeros the scaling brought
    (1000000000 kWh prints as 1 TWh, not 1.000000000 TWh)."""
    if shift == 0:
        return nominal
    scaled = nominal.scaleb(-shift).normalize()
    return scaled.quantize(Decimal(1)) if _exponent(scaled) > 0 else scaled


def _scaled_unit(unit: str, shift: int) -> tuple[str, int]:
    """(`unit` with its prefix changed by 10^shift, 0), or (`unit`, shift) for ×10ⁿ."""
    if shift == 0:
        return unit, 0
    parts = split_prefix(unit)
    if parts is not None:
        prefix_exp, base = parts
        symbol = _PREFIX_OF.get(prefix_exp + shift)
        if symbol is not None and is_legal_unit(symbol + base):
            return symbol + base, 0
    return unit, shift


def _exponent(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    assert isinstance(exp, int), f"not a finite number: {d}"
    return exp


def _at(value: Decimal, exponent: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)


def _signed(d: Decimal, negative: bool) -> str:
    """`d` printed with all its decimals, after a typeset minus when the number it was rounded
    from is `negative` (so −0.0004 at three decimals stays "−0.000")."""
    s = format(d, "f").lstrip("-")
    return MINUS + s if negative else s


def _plain(d: Decimal) -> str:
    s = format(d, "f")
    return "0" if re.fullmatch(r"-0(\.0*)?", s) and d == 0 else s
