"""Legal units of measurement, as Vietnamese certificates may print them.

>>> is_legal_unit("kg"), is_legal_unit("psi")
(True, False)
"""

from decimal import Decimal

__all__ = ["check_unit", "convert", "is_legal_unit", "normalise_unit", "split_prefix"]

# Legal units of measurement (Decree 86/2012/NĐ-CP: SI units, their decimal multiples and
# units accepted for use with the SI). Symbols are case-sensitive, as printed on a certificate.
_SI_PREFIXES = tuple("Y Z E P T G M k h da d c m µ μ n p".split())
_PREFIXABLE = frozenset(
    """m g s A K mol cd Hz N Pa J W C V F Ω S Wb T H lm lx Bq Gy Sv L l t bar Wh VA var eV
    m² m³ m2 m3 m/s N·m N.m g/cm³ g/cm3 g/L kg/m³ kg/m3 L/min L/h m³/h m3/h m/s² m/s2""".split()
)
_PLAIN = frozenset(
    """°C % %RH ° ′ ″ rad sr min h d ha dB pH r/min vòng/phút km/h kWh kVAh kvarh 1 ppm °Bx
    %vol kgf/cm²""".split()
) | {"% vol"}


def is_legal_unit(symbol: str) -> bool:
    """Return True when `symbol` is a legal unit of measurement (SI, multiples, accepted units).

    `symbol` is compared exactly ("kg" is legal, "KG", "lbs" and "psi" are not).
    """
    s = symbol.strip()
    if s in _PLAIN or s in _PREFIXABLE:
        return True
    return any(s.startswith(p) and s[len(p) :] in _PREFIXABLE for p in _SI_PREFIXES)


_PREFIX_EXPONENT = {
    "Y": 24, "Z": 21, "E": 18, "P": 15, "T": 12, "G": 9, "M": 6, "k": 3, "h": 2, "da": 1,
    "d": -1, "c": -2, "m": -3, "µ": -6, "μ": -6, "n": -9, "p": -12,
}  # fmt: skip
_POWERED = ("m²", "m³", "m2", "m3")
"""Units whose prefix is raised to a power (1 km² = 10⁶ m²): a row never re-prefixes them."""


def split_prefix(symbol: str) -> tuple[int, str] | None:
    """(power of ten of the SI prefix, the unit it prefixes) for a unit that takes a prefix:
    "kPa" gives (3, "Pa"), "Pa" gives (0, "Pa"), "kWh" gives (3, "Wh"); None for a unit that
    takes none ("°C", "%") or whose prefix is squared or cubed ("mm²", "m³/h").
    """
    s = symbol.strip()
    candidates = [(0, s)] + [
        (exp, s[len(p) :]) for p, exp in _PREFIX_EXPONENT.items() if s.startswith(p)
    ]
    for exp, base in candidates:
        if base in _PREFIXABLE and not base.startswith(_POWERED):
            return exp, base
    return None


def convert(value: Decimal, unit: str, to: str) -> Decimal | None:
    """`value` in `unit` expressed in `to`, exactly: the same unit, or SI prefixes of one unit
    ("0.1 mg" is 0.0001 g; "2 kPa" is 2000 Pa). None when the units are not the same unit
    with other prefixes ("g" and "L", "°C" and "K").

    >>> convert(Decimal("0.1"), "mg", "g")
    Decimal('0.0001')
    """
    if unit.strip() == to.strip():
        return value
    have, want = split_prefix(unit), split_prefix(to)
    if have is None or want is None or have[1] != want[1]:
        return None
    return value.scaleb(have[0] - want[0])


_SAME_UNIT: dict[int, str] = {
    0x03BC: "\u00b5",  # GREEK SMALL LETTER MU → MICRO SIGN: the prefix µ
    0x2126: "\u03a9",  # OHM SIGN → GREEK CAPITAL LETTER OMEGA: the ohm (as NFKC does)
}


def normalise_unit(value: str) -> str:
    """`value` with each look-alike written one way: the Greek mu (U+03BC) as the micro sign
    µ (U+00B5), the ohm sign (U+2126) as the capital omega Ω (U+03A9).

    They are the same unit, and the certificate fonts draw only these forms. Only new input
    is normalised (`certissuer.model.parse_certificate` with ``stored=False``): a record
    already issued keeps the characters it was issued with, so its data digest still holds.

    >>> normalise_unit("\u03bcV") == "\u00b5V", normalise_unit("k\u2126") == "k\u03a9"
    (True, True)
    """
    return value.translate(_SAME_UNIT)


def check_unit(value: str) -> str:
    """`value` stripped, when it is a legal unit; raises `ValueError` (for pydantic) if not."""
    value = value.strip()
    if not is_legal_unit(value):
        raise ValueError(
            f"expected a legal unit of measurement (for example kg, g, mm, L, °C, kPa, %), "
            f"got '{value}'"
        )
    return value
