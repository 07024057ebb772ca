"""Measured values as printed: an uncertainty to two significant digits, the value to match.

>>> format_result(Decimal("10.01234"), Decimal("0.0123"))
('10.012', '0.013')
"""

import re
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal

__all__ = ["format_decimal", "format_result", "round_uncertainty"]


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
    """Return (value, U) as printed: U to two significant digits, value to the same place."""
    u = round_uncertainty(uncertainty)
    exp = u.as_tuple().exponent
    assert isinstance(exp, int)
    quantum = Decimal(1).scaleb(exp)
    v = value.quantize(quantum, rounding=ROUND_HALF_UP)
    return _plain(v), _plain(u)


def format_decimal(value: Decimal) -> str:
    """Print a Decimal without exponent notation ("1E+1" becomes "10")."""
    return _plain(value)


def _plain(d: Decimal) -> str:
    s = format(d, "f")
    return "0" if re.fullmatch(r"-0(\.0*)?", s) and d == 0 else s
