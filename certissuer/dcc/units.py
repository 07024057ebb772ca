"""D-SI units: the D-SI form of each legal unit symbol, and back.

D-SI (SI_Format 2.1.0, PTB) writes units as ``\\metre``, ``\\kilogram``, ``\\degreecelsius``;
`dsi_unit` maps every legal unit symbol the intake accepts (`model.is_legal_unit`) to D-SI, or to
None for the few that have no D-SI form; `unit_symbol` maps back.

>>> dsi_unit("L/min")
'\\litre\\per\\minute'
>>> unit_symbol("\\kilogram")
'kg'
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

__all__ = ["UNIT_HINT", "dsi_unit", "unit_symbol"]

# D-SI (SI_Format 2.1.0, PTB): units are written \metre, \kilogram, \degreecelsius; prefixes
# \kilo, \milli, ...; products by juxtaposition, \per for division, \tothe{n} for powers.
_DSI_PREFIXES: Final[Mapping[str, str]] = {
    "Y": r"\yotta",
    "Z": r"\zetta",
    "E": r"\exa",
    "P": r"\peta",
    "T": r"\tera",
    "G": r"\giga",
    "M": r"\mega",
    "k": r"\kilo",
    "h": r"\hecto",
    "da": r"\deca",
    "d": r"\deci",
    "c": r"\centi",
    "m": r"\milli",
    "µ": r"\micro",  # U+00B5 MICRO SIGN
    "μ": r"\micro",  # U+03BC GREEK SMALL LETTER MU
    "n": r"\nano",
    "p": r"\pico",
}
"""In the order `model.is_legal_unit` tries them, so a symbol is read the same way."""

_PREFIXABLE_DSI: Final[Mapping[str, str | None]] = {
    "m": r"\metre",
    "g": r"\gram",
    "s": r"\second",
    "A": r"\ampere",
    "K": r"\kelvin",
    "mol": r"\mole",
    "cd": r"\candela",
    "Hz": r"\hertz",
    "N": r"\newton",
    "Pa": r"\pascal",
    "J": r"\joule",
    "W": r"\watt",
    "C": r"\coulomb",
    "V": r"\volt",
    "F": r"\farad",
    "Ω": r"\ohm",
    "S": r"\siemens",
    "Wb": r"\weber",
    "T": r"\tesla",
    "H": r"\henry",
    "lm": r"\lumen",
    "lx": r"\lux",
    "Bq": r"\becquerel",
    "Gy": r"\gray",
    "Sv": r"\sievert",
    "L": r"\litre",
    "l": r"\litre",
    "t": r"\tonne",
    "bar": r"\bar",
    "Wh": r"\watt\hour",
    "VA": r"\volt\ampere",
    "var": None,  # reactive power: D-SI has no var, and \volt\ampere would say apparent power
    "eV": r"\electronvolt",
    "m²": r"\metre\tothe{2}",
    "m2": r"\metre\tothe{2}",
    "m³": r"\metre\tothe{3}",
    "m3": r"\metre\tothe{3}",
    "m/s": r"\metre\per\second",
    "N·m": r"\newton\metre",
    "N.m": r"\newton\metre",
    "g/cm³": r"\gram\per\centi\metre\tothe{3}",
    "g/cm3": r"\gram\per\centi\metre\tothe{3}",
    "g/L": r"\gram\per\litre",
    "kg/m³": r"\kilogram\per\metre\tothe{3}",
    "kg/m3": r"\kilogram\per\metre\tothe{3}",
    "L/min": r"\litre\per\minute",
    "L/h": r"\litre\per\hour",
    "m³/h": r"\metre\tothe{3}\per\hour",
    "m3/h": r"\metre\tothe{3}\per\hour",
    "m/s²": r"\metre\per\second\tothe{2}",
    "m/s2": r"\metre\per\second\tothe{2}",
}
"""Units that take an SI prefix (`model._PREFIXABLE`); the first symbol of a D-SI unit is the
one it maps back to."""

_PLAIN_DSI: Final[Mapping[str, str | None]] = {
    "°C": r"\degreecelsius",
    "%": r"\percent",
    "%RH": r"\percent",
    "%vol": r"\percent",
    "% vol": r"\percent",
    "°": r"\degree",
    "′": r"\arcminute",
    "″": r"\arcsecond",
    "rad": r"\radian",
    "sr": r"\steradian",
    "min": r"\minute",
    "h": r"\hour",
    "d": r"\day",
    "ha": r"\hectare",
    "dB": r"\decibel",
    "r/min": r"\one\per\minute",
    "vòng/phút": r"\one\per\minute",
    "km/h": r"\kilo\metre\per\hour",
    "kWh": r"\kilo\watt\hour",
    "kVAh": r"\kilo\volt\ampere\hour",
    "1": r"\one",
    "ppm": r"\ppm",
    "kvarh": None,  # see var
    "pH": None,  # a logarithmic scale, not a unit; D-SI has no symbol for it
    "°Bx": None,  # degrees Brix: not in D-SI
    "kgf/cm²": None,  # not an SI unit: give the pressure in kPa or bar
}
"""Units without prefixes (`model._PLAIN`)."""

UNIT_HINT: Final = (
    "the DCC (machine-readable certificate) needs a D-SI unit: give the value in an SI unit "
    "(for example kPa or bar instead of kgf/cm², VA or W instead of var)"
)


@functools.lru_cache(maxsize=4096)  # bounded: imported documents bring arbitrary text
def dsi_unit(symbol: str) -> str | None:
    """The D-SI form of the legal unit `symbol` (``"L/min"`` → ``\\litre\\per\\minute``).

    `symbol` is read as `model.is_legal_unit` reads it (exact symbol, then an SI prefix and a
    prefixable unit). Returns None for a symbol that is not a legal unit or has no D-SI form.
    """
    s = symbol.strip()
    if s in _PLAIN_DSI:
        return _PLAIN_DSI[s]
    if s in _PREFIXABLE_DSI:
        return _PREFIXABLE_DSI[s]
    for prefix, dsi_prefix in _DSI_PREFIXES.items():
        rest = s[len(prefix) :]
        if s.startswith(prefix) and rest in _PREFIXABLE_DSI:
            base = _PREFIXABLE_DSI[rest]
            if base is None or base.startswith(r"\kilogram"):
                return None  # no D-SI form, or a second prefix on the kilogram
            if base.startswith(r"\gram") and prefix == "k":
                return r"\kilogram" + base[len(r"\gram") :]
            return dsi_prefix + base
    return None


@functools.cache
def _symbols() -> Mapping[str, str]:
    """D-SI unit → the symbol it maps back to (the first symbol giving it, in table order)."""
    reverse: dict[str, str] = {}
    candidates = [*_PLAIN_DSI, *_PREFIXABLE_DSI]
    candidates += [p + b for p in _DSI_PREFIXES for b in _PREFIXABLE_DSI]
    for symbol in candidates:
        dsi = dsi_unit(symbol)
        if dsi is not None:
            reverse.setdefault(dsi, symbol)
    return reverse


def unit_symbol(dsi: str) -> str | None:
    """The legal unit symbol for the D-SI unit `dsi` (``\\kilogram`` → ``kg``), or None."""
    return _symbols().get(dsi.strip())
