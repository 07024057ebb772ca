"""A DCC written by another lab or by measurement software → certificate records (issue 21).

`certissuer.dcc.read` reads back certissuer's own DCC exactly; this module reads a DCC as the
schema allows it, from DCC 3.0 to 3.3 (`READ_VERSIONS`):

* ``si:real``, ``si:hybrid``, ``si:realListXMLList`` and ``si:constant``: one result row per
  list element, with the unit and the expanded uncertainty that apply (a hybrid gives the
  representation whose unit certissuer prints; an uncertainty stated on another representation
  of the same hybrid is carried over by the representations' ratio, ``\\one`` → ``\\percent``);
* several items: one certificate per item, or only item N (`Fill.item`, ``--item N``);
* a performance date range: the calibration date is the end date, and the range is kept as a
  note that the command prints;
* environmental conditions as one value, a list or a range (``basic_temperatureMin`` and
  ``...Max``): the model's value ± half the spread, the range itself printed;
* results grouped by ``dcc:result`` (the quantity), with ``refType`` mapped: nominal or reference
  value, indicated (measured) value, error, uncertainty; every other quantity with one value
  per row becomes an extra column of the results table (``extra`` of each row, headed by
  ``extra_columns``), and what is not per row is kept as a line (`Imported.extras`) and printed
  rather than dropped.

What the Vietnamese forms need and a DCC does not carry (date received, place of calibration,
who performed and who signs, the standards' certificate numbers and due dates) comes from `Fill`
(the lab profile and the command's options); what is still missing is reported in one list.

>>> root = parse_root(raw, where="humidity.xml")  # doctest: +SKIP
>>> [first, second] = read_foreign(root, where="humidity.xml", fill=Fill(received="2021-07-20"))
... # doctest: +SKIP
>>> first.data["results"][0]["measured"]  # doctest: +SKIP
'19.7'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from certissuer.dcc.schema import DCC_PREFIX as _D
from certissuer.dcc.schema import SI_PREFIX as _S
from certissuer.dcc.units import unit_symbol
from certissuer.errors import InputError

__all__ = [
    "READ_VERSIONS",
    "Fill",
    "Imported",
    "StandardLookup",
    "is_foreign",
    "missing_error",
    "read_foreign",
    "version_supported",
]

_logger = logging.getLogger(__name__)

READ_VERSIONS: Final = ("3.0", "3.1", "3.2", "3.3")
"""The DCC schema versions (major.minor) read; any patch release of them is read."""

MAX_EXTRA_COLUMNS: Final = 12
"""The extra columns a certificate holds (`Certificate.extra_columns`); more are notes."""

StandardLookup = Callable[[str, str], "tuple[str, str] | None"]
"""``(name, serial) → (certificate number, calibration due date)`` from the lab's register."""


@dataclass(frozen=True)
class Fill:
    """What a DCC does not carry and a Vietnamese certificate needs: from options or profile."""

    item: int | None = None
    """Issue only this item (1-based); None issues one certificate per item."""
    performed_by: str | None = None
    signatory: str | None = None
    received: str | None = None
    """The date the item was received, ISO 8601."""
    place: str | None = None
    """Place of calibration."""
    standards: StandardLookup | None = None
    """The register's certificate number and due date of a standard, when it has it."""
    lab_place: str | None = None
    """The lab profile's place: the place of calibration of work done in the lab, when the
    DCC gives no address for it."""
    report: Callable[[str], None] | None = None
    """Told each note and extra column that the certificate's fields cannot hold."""


@dataclass
class Imported:
    """One certificate record read from a foreign DCC, with what was kept beside it."""

    item: int
    """The item (1-based) the record is for."""
    data: dict[str, Any]
    """The certificate record, as read from JSON."""
    notes: list[str] = field(default_factory=list)
    """What the certificate's fields cannot hold: the performance range, condition ranges."""
    extras: list[str] = field(default_factory=list)
    """Quantities that are not nominal, indicated, error or uncertainty, one line each."""
    missing: list[str] = field(default_factory=list)
    """Fields still missing, each with the option or register entry that fills it."""


def version_supported(version: str | None) -> bool:
    """True when the DCC schema `version` is one this module reads (`READ_VERSIONS`)."""
    if not version:
        return False
    return any(version == v or version.startswith(v + ".") for v in READ_VERSIONS)


def is_foreign(root: Any) -> bool:
    """True when the DCC `root` was not written by certissuer (no ``certissuer_`` refType)."""
    return not any("certissuer_" in (el.get("refType") or "") for el in root.iter(_D + "*"))


# --- text helpers -------------------------------------------------------------------------


def _text(el: Any | None, lang: str = "en") -> str:
    """The text of a dcc:textType: the `lang` content, else the first one; trimmed."""
    if el is None:
        return ""
    contents = el.findall(_D + "content")
    if not contents:
        return (el.text or "").strip()
    for c in contents:
        if c.get("lang") == lang:
            return " ".join((c.text or "").split())
    return " ".join((contents[0].text or "").split())


def _languages(el: Any) -> dict[str, str]:
    """The contents of a dcc:textType by language (``vi``, ``en``, ...), trimmed."""
    out: dict[str, str] = {}
    for c in el.findall(_D + "content"):
        lang = c.get("lang")
        if lang and lang not in out:
            out[lang] = " ".join((c.text or "").split())
    return out


def _ref_types(el: Any) -> list[str]:
    return (el.get("refType") or "").split()


def _has(el: Any, *needles: str) -> bool:
    return any(n.lower() in t.lower() for t in _ref_types(el) for n in needles)


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


# --- D-SI values -----------------------------------------------------------------------------


@dataclass
class _Series:
    """One D-SI representation: values with one unit, and their expanded uncertainties."""

    values: list[str]
    unit: str
    uncertainties: list[str] | None = None
    coverage_factor: list[str] | None = None
    coverage_probability: list[str] | None = None


def _expand(items: list[str], n: int) -> list[str]:
    """A D-SI list of one element applies to every element."""
    return items * n if len(items) == 1 and n > 1 else items


def _series_of(el: Any) -> _Series | None:
    tag = el.tag.removeprefix(_S)
    if tag in ("real", "constant"):
        value = (el.findtext(_S + "value") or "").strip()
        unit = (el.findtext(_S + "unit") or "").strip()
        s = _Series([value], unit)
        unc = el.find(_S + "expandedUnc")
        value = "uncertainty"
        if unc is None:  # D-SI 2.2 (DCC 3.3): expandedMU
            unc, value = el.find(_S + "expandedMU"), "valueExpandedMU"
            if unc is None:  # where the official D-SI 2.2.0 schema puts it
                unc = el.find(f"{_S}measurementUncertaintyUnivariate/{_S}expandedMU")
        if unc is not None:
            s.uncertainties = [(unc.findtext(_S + value) or "").strip()]
            s.coverage_factor = [(unc.findtext(_S + "coverageFactor") or "").strip()]
            s.coverage_probability = [(unc.findtext(_S + "coverageProbability") or "").strip()]
        return s
    if tag == "realListXMLList":
        values = (el.findtext(_S + "valueXMLList") or "").split()
        units = (el.findtext(_S + "unitXMLList") or "").split()
        if len(set(units)) != 1:
            return None  # a unit per element that differ: not one column
        s = _Series(values, units[0])
        unc = el.find(_S + "expandedUncXMLList")
        value = "uncertaintyXMLList"
        if unc is None:  # D-SI 2.2 (DCC 3.3): expandedMUXMLList
            unc, value = el.find(_S + "expandedMUXMLList"), "valueExpandedMUXMLList"
            if unc is None:  # where the official D-SI 2.2.0 schema puts it
                unc = el.find(f"{_S}measurementUncertaintyUnivariateXMLList/{_S}expandedMUXMLList")
        if unc is not None:
            n = len(values)
            s.uncertainties = _expand((unc.findtext(_S + value) or "").split(), n)
            s.coverage_factor = _expand(
                (unc.findtext(_S + "coverageFactorXMLList") or "").split(), n
            )
            s.coverage_probability = _expand(
                (unc.findtext(_S + "coverageProbabilityXMLList") or "").split(), n
            )
        return s
    return None


def _representations(quantity: Any) -> list[_Series]:
    """Every D-SI representation of a dcc:quantity (one, or each member of an si:hybrid)."""
    out: list[_Series] = []
    for child in quantity:
        if not isinstance(child.tag, str):
            continue
        if child.tag == _S + "hybrid":
            for member in child:
                s = _series_of(member) if isinstance(member.tag, str) else None
                if s is not None:
                    out.append(s)
        elif child.tag.startswith(_S):
            s = _series_of(child)
            if s is not None:
                out.append(s)
    return out


def _scale(a: _Series, b: _Series) -> Decimal | None:
    """The factor f with a = f·b at every element (1 for K and °C, an offset), or None."""
    xs = [_decimal(v) for v in a.values]
    ys = [_decimal(v) for v in b.values]
    if len(xs) != len(ys) or any(v is None for v in xs + ys):
        return None
    if {a.unit, b.unit} == _KELVIN_CELSIUS:
        return Decimal(1)  # an offset: a difference is the same in both
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
    ratios = {(x / y).quantize(Decimal("0.01")) for x, y in pairs if x and y}
    return ratios.pop() if len(ratios) == 1 else None  # else no safe factor


def _pick(quantity: Any, prefer: str | None = None) -> _Series | None:
    """The representation to print: unit `prefer` if present, else the first printable one;
    an uncertainty stated on another representation is carried over by their ratio."""
    reps = _representations(quantity)
    # A ratio (\one) is the last choice: a hybrid gives it beside the unit a lab prints (%).
    printable = sorted(
        (r for r in reps if _symbol(r.unit) is not None),
        key=lambda r: (r.unit == r"\one", r.unit == r"\kelvin"),  # °C before K, as printed
    )
    if not printable:
        return reps[0] if reps else None
    chosen = next((r for r in printable if r.unit == prefer), printable[0])
    if chosen.uncertainties is None:
        for other in reps:
            if other is chosen or other.uncertainties is None:
                continue
            factor = _scale(chosen, other)
            if factor is None:
                continue
            chosen.uncertainties = [
                _plain(Decimal(u) * factor) if _decimal(u) is not None else u
                for u in other.uncertainties
            ]
            chosen.coverage_factor = other.coverage_factor
            chosen.coverage_probability = other.coverage_probability
            break
    return chosen


_BASE: Final = {
    "metre": "m",
    "kilogram": "kg",
    "second": "s",
    "ampere": "A",
    "kelvin": "K",
    "mole": "mol",
    "candela": "cd",
}
_COHERENT: Final = (r"\ohm", r"\volt", r"\watt", r"\pascal", r"\newton", r"\joule", r"\hertz")
_DIMENSIONS: Final = {
    r"\ohm": {"kg": 1, "m": 2, "s": -3, "A": -2},
    r"\volt": {"kg": 1, "m": 2, "s": -3, "A": -1},
    r"\watt": {"kg": 1, "m": 2, "s": -3},
    r"\pascal": {"kg": 1, "m": -1, "s": -2},
    r"\newton": {"kg": 1, "m": 1, "s": -2},
    r"\joule": {"kg": 1, "m": 2, "s": -2},
    r"\hertz": {"s": -1},
}
r"""Coherent derived units a DCC may write in base units (the GP resistance example writes the
ohm as ``\kilogram\metre\tothe{2}\second\tothe{-3}\ampere\tothe{-2}``)."""


def _dimension(dsi: str) -> dict[str, int] | None:
    """The base-unit exponents of an unprefixed D-SI unit in base units, or None."""
    out: dict[str, int] = {}
    last: str | None = None
    sign = 1
    for name, arg in re.findall(r"\\([a-z]+)(?:\{([^}]*)\})?", dsi):
        if name == "per":
            sign = -1
        elif name == "tothe" and last is not None and arg:
            try:
                power = int(arg)
            except ValueError:
                return None
            out[last] += (power - 1) * (1 if out[last] > 0 else -1)
        elif name in _BASE:
            last = _BASE[name]
            out[last] = out.get(last, 0) + sign
            sign = 1
        else:
            return None
    return {k: v for k, v in out.items() if v} or None


def _symbol(dsi: str) -> str | None:
    """The printed symbol of the D-SI unit `dsi`, also when it is written in base units."""
    symbol = unit_symbol(dsi)
    if symbol is not None:
        return symbol
    dims = _dimension(dsi)
    for unit in _COHERENT:
        if dims is not None and dims == _DIMENSIONS[unit]:
            return unit_symbol(unit)
    return None


_KELVIN_CELSIUS: Final = {r"\kelvin", r"\degreecelsius"}


def _same_step(a: str, b: str) -> bool:
    """True when a difference (an error, an uncertainty) in unit `a` reads the same in `b`."""
    return a == b or {a, b} == _KELVIN_CELSIUS


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


# --- the reader ------------------------------------------------------------------------------

_NOMINAL: Final = ("basic_referenceValue", "basic_nominalValue")
_MEASURED: Final = ("basic_measuredValue", "basic_indicatedValue")
_ERROR: Final = ("basic_measurementError", "basic_error")
_UNCERTAINTY: Final = ("basic_measurementUncertainty", "basic_expandedUncertainty")


class _Foreign:
    def __init__(self, root: Any, where: str, fill: Fill) -> None:
        self.root, self.where, self.fill, self.lab_place = root, where, fill, fill.lab_place
        self.adm = root.find(_D + "administrativeData")
        core = self.adm.find(_D + "coreData") if self.adm is not None else None
        if core is None:
            raise InputError(where, "the DCC has no dcc:administrativeData/dcc:coreData")
        self.core: Any = core

    def _find(self, parent: Any | None, path: str) -> Any | None:
        if parent is None:
            return None
        return parent.find(_D + path.replace("/", "/" + _D))

    def _findall(self, parent: Any | None, path: str) -> list[Any]:
        if parent is None:
            return []
        return list(parent.findall(_D + path.replace("/", "/" + _D)))

    def read(self) -> list[Imported]:
        items = self._findall(self.adm, "items/item")
        if not items:
            raise InputError(self.where, "the DCC names no calibration item (dcc:items/dcc:item)")
        chosen = range(1, len(items) + 1)
        if self.fill.item is not None:
            if not 1 <= self.fill.item <= len(items):
                raise InputError(
                    self.where,
                    f"--item {self.fill.item}: the DCC has {len(items)} item(s)",
                    hint=f"give --item 1 to {len(items)}",
                )
            chosen = range(self.fill.item, self.fill.item + 1)
        return [self._record(items[n - 1], n, len(items)) for n in chosen]

    def _record(self, item: Any, n: int, count: int) -> Imported:
        out = Imported(n, {"kind": "calibration"})
        data = out.data
        uid = (self.core.findtext(_D + "uniqueIdentifier") or "").strip()
        data["ref"] = (uid or "DCC") + (f" item {n}" if count > 1 else "")
        self._dates(out)
        data["item"] = self._item(item)
        customer = self._find(self.adm, "customer")
        if customer is not None:
            data["customer"] = {"name": _text(customer.find(_D + "name"))}
            address = self._address(customer.find(_D + "location"))
            if address:
                data["customer"]["address"] = address
        else:
            out.missing.append("customer (dcc:customer)")
        self._persons(out)
        self._place(out)
        result = self._find(self.root, "measurementResults/measurementResult")
        if result is None:
            raise InputError(self.where, "the DCC has no dcc:measurementResult")
        data["method"] = self._method(result)
        if not data["method"]:
            out.missing.append("method (dcc:usedMethods)")
        self._standards(result, out)
        self._conditions(result, out)
        self._results(result, out)
        lines = [
            line[i : i + 2000] for line in out.notes + out.extras for i in range(0, len(line), 2000)
        ]
        if lines:
            data["source_notes"] = lines[:200]
        return out

    def _dates(self, out: Imported) -> None:
        begin = (self.core.findtext(_D + "beginPerformanceDate") or "").strip()
        end = (self.core.findtext(_D + "endPerformanceDate") or "").strip()
        out.data["calibrated"] = end
        if begin and begin != end:
            out.notes.append(f"performed {begin} … {end} (calibration date: {end})")
        receipt = (self.core.findtext(_D + "receiptDate") or "").strip()
        received = receipt or self.fill.received
        if received:
            out.data["received"] = received
        else:
            out.missing.append("date received (--received YYYY-MM-DD)")

    def _item(self, item: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": _text(item.find(_D + "name")) or "(unnamed)"}
        maker = _text(self._find(item, "manufacturer/name"))
        if maker:
            out["manufacturer"] = maker
        model = (item.findtext(_D + "model") or "").strip()
        if model:
            out["model"] = model
        idents = self._findall(item, "identifications/identification")
        serial = next(
            (i for i in idents if re.search(r"serial|serien", _text(i.find(_D + "name")), re.I)),
            idents[0] if idents else None,
        )
        out["serial"] = (serial.findtext(_D + "value") or "").strip() if serial is not None else ""
        return out

    @staticmethod
    def _address(location: Any | None) -> str:
        if location is None:
            return ""
        parts = [
            (location.findtext(_D + tag) or "").strip()
            for tag in ("street", "streetNo", "postCode", "city", "countryCode")
        ]
        parts += [_text(f) for f in location.findall(_D + "further")]
        return ", ".join(p for p in parts if p)

    def _persons(self, out: Imported) -> None:
        persons = self._findall(self.adm, "respPersons/respPerson")
        main = [p for p in persons if (p.findtext(_D + "mainSigner") or "").strip() == "true"]
        others = [p for p in persons if p not in main]
        signer = self.fill.signatory or (_text(self._find(main[0], "person/name")) if main else "")
        doer = self.fill.performed_by or (
            _text(self._find(others[0], "person/name")) if others else ""
        )
        if signer:
            out.data["signatory"] = {"name": signer}
        else:
            out.missing.append("signatory (--signatory NAME)")
        if doer:
            out.data["performed_by"] = {"name": doer}
        else:
            out.missing.append("performed by (--performed-by NAME)")

    def _place(self, out: Imported) -> None:
        if self.fill.place:
            out.data["place_of_calibration"] = self.fill.place
            return
        where = (self.core.findtext(_D + "performanceLocation") or "").strip()
        lab = self._find(self.adm, "calibrationLaboratory/contact/location")
        if where.lower() == "laboratory" and lab is not None and self._address(lab):
            out.data["place_of_calibration"] = self._address(lab)
        elif self.lab_place and where.lower() in ("", "laboratory"):
            out.data["place_of_calibration"] = self.lab_place
        else:
            out.missing.append("place of calibration (--place TEXT)")

    def _method(self, result: Any) -> str:
        methods = self._findall(result, "usedMethods/usedMethod")
        chosen = [m for m in methods if _has(m, "method")] or methods
        parts = []
        for m in chosen:
            norms = [(n.text or "").strip() for n in m.findall(_D + "norm")]
            parts.append(" ".join([_text(m.find(_D + "name")), *(f"({n})" for n in norms if n)]))
        return "; ".join(p for p in parts if p)

    def _standards(self, result: Any, out: Imported) -> None:
        rows = []
        for i, eq in enumerate(self._findall(result, "measuringEquipments/measuringEquipment")):
            name = _text(eq.find(_D + "name")) or f"standard {i + 1}"
            row: dict[str, Any] = {"name": name}
            idents = self._findall(eq, "identifications/identification")
            serial = next(
                (
                    x
                    for x in idents
                    if re.search(r"serial|serien", _text(x.find(_D + "name")), re.I)
                ),
                None,
            )
            if serial is not None:
                row["serial"] = (serial.findtext(_D + "value") or "").strip()
            referral = self._find(eq, "certificate/referralID")
            number = (referral.text or "").strip() if referral is not None else ""
            if number:
                row["certificate_number"] = number
            if self.fill.standards is not None and (
                "certificate_number" not in row or "calibration_due" not in row
            ):
                found = self.fill.standards(name, row.get("serial", ""))
                if found is not None:
                    row.setdefault("certificate_number", found[0])
                    row["calibration_due"] = found[1]
            for key, what in (
                ("certificate_number", "certificate number"),
                ("calibration_due", "calibration due date"),
            ):
                if key not in row:
                    out.missing.append(f"{what} of standard '{name}' (in the register)")
            rows.append(row)
        if rows:
            out.data["standards"] = rows
        else:
            out.missing.append("reference standards (dcc:measuringEquipments)")

    def _conditions(self, result: Any, out: Imported) -> None:
        wanted = {
            "temperature": ("basic_temperature", r"\degreecelsius", "°C"),
            "humidity": ("basic_humidityRelative", r"\percent", "%"),
        }
        conditions: dict[str, str] = {}
        for condition in self._findall(result, "influenceConditions/influenceCondition"):
            key = next((k for k, (t, _, _) in wanted.items() if t in _ref_types(condition)), None)
            values: list[Decimal] = []
            unit = ""
            for quantity in condition.findall(f"{_D}data/{_D}quantity"):
                s = _pick(quantity, wanted[key][1] if key else None)
                if s is None:
                    continue
                unit = s.unit
                values += [d for v in s.values if (d := _decimal(v)) is not None]
            label = _text(condition.find(_D + "name")) or " ".join(_ref_types(condition))
            if key is None or not values:
                if values:
                    shown = " … ".join(_plain(v) for v in sorted({min(values), max(values)}))
                    out.extras.append(f"condition {label}: {shown} {_symbol(unit) or unit}")
                continue
            if unit == r"\kelvin" and key == "temperature":
                values, unit = [v - Decimal("273.15") for v in values], r"\degreecelsius"
            if unit == r"\one" and key == "humidity":
                values, unit = [v * 100 for v in values], r"\percent"
            if unit != wanted[key][1]:
                out.extras.append(f"condition {label}: in {unit}, not read")
                continue
            low, high = min(values), max(values)
            conditions[key] = _plain((low + high) / 2)
            if high != low:
                conditions[f"{key}_uncertainty"] = _plain((high - low) / 2)
                out.notes.append(f"{label}: {_plain(low)} … {_plain(high)} {wanted[key][2]}")
        if conditions:
            out.data["conditions"] = conditions

    def _results(self, result: Any, out: Imported) -> None:
        rows: list[dict[str, Any]] = []
        for entry in self._findall(result, "results/result"):
            name = _text(entry.find(_D + "name")) or " ".join(_ref_types(entry))
            data = entry.find(_D + "data")
            holder = data.find(_D + "list") if data is not None else None
            if holder is None:
                holder = data
            quantities = [] if holder is None else holder.findall(_D + "quantity")
            these = self._rows(name, quantities, out)
            rows += these
            for condition in entry.iter(_D + "influenceCondition"):  # of the result, or its list
                label = _text(condition.find(_D + "name")) or " ".join(_ref_types(condition))
                for quantity in condition.findall(f"{_D}data/{_D}quantity"):
                    # A condition per point (the gas temperature of each humidity point, or
                    # the one value of a result of one row) is a column of the rows; one for
                    # a whole result of several rows stays a line.
                    if not self._column(quantity, these, out, condition.find(_D + "name")):
                        self._extra(f"{name} / {label}", quantity, out)
        if rows:
            out.data["results"] = rows
        else:
            out.missing.append(
                "results: no dcc:result gives indicated values (refType basic_measuredValue)"
            )

    def _rows(self, name: str, quantities: Sequence[Any], out: Imported) -> list[dict[str, Any]]:
        def role(q: Any) -> str | None:
            types = _ref_types(q)
            for key, refs in (
                ("nominal", _NOMINAL),
                ("measured", _MEASURED),
                ("error", _ERROR),
                ("uncertainty", _UNCERTAINTY),
            ):
                if any(r in types for r in refs):
                    return key
            return None

        by_role = {r: q for q in quantities if (r := role(q)) is not None}
        extras = [q for q in quantities if role(q) is None]
        if "measured" not in by_role:
            for q in quantities:
                self._extra(name, q, out)
            return []
        measured = _pick(by_role["measured"])
        if measured is None:
            out.missing.append(f"results '{name}': indicated values as D-SI (si:real or a list)")
            return []
        unit = measured.unit
        n = len(measured.values)
        columns: dict[str, _Series] = {"measured": measured}
        for key in ("nominal", "error", "uncertainty"):
            if key in by_role:
                s = _pick(by_role[key], unit)
                if s is not None:
                    columns[key] = s
        symbol = _symbol(unit)
        if symbol is None:
            out.missing.append(
                f"results '{name}' in a unit certissuer prints (the DCC gives D-SI '{unit}')"
            )
            return []
        rows: list[dict[str, Any]] = []
        for i in range(n):
            row: dict[str, Any] = {"quantity": name, "unit": symbol}
            row["measured"] = measured.values[i]
            for key in ("nominal", "error"):
                s = columns.get(key)
                # An error is a difference: the same in K and °C; a nominal value is not.
                fits = s is not None and (
                    s.unit == unit if key == "nominal" else _same_step(s.unit, unit)
                )
                if s is not None and fits and i < len(_expand(s.values, n)):
                    row[key] = _expand(s.values, n)[i]
            source = next(
                (
                    s
                    for s in (columns.get(k) for k in ("measured", "error", "nominal"))
                    if s is not None and s.uncertainties and _same_step(s.unit, unit)
                ),
                None,
            )
            if source is not None and source.uncertainties is not None:
                row["uncertainty"] = _expand(source.uncertainties, n)[i]
                k = _expand(source.coverage_factor or [], n)
                p = _expand(source.coverage_probability or [], n)
                if k and k[i]:
                    row["coverage_factor"] = k[i]
                if p and p[i]:
                    row["coverage_probability"] = p[i]
            elif "uncertainty" in columns and _same_step(columns["uncertainty"].unit, unit):
                row["uncertainty"] = _expand(columns["uncertainty"].values, n)[i]
            rows.append(row)
        if not any("uncertainty" in row for row in rows):
            # One line rather than a "missing" per row: where the DCC was expected to say it.
            out.missing.append(
                f"results '{name}': an expanded uncertainty (si:expandedUnc of the indicated "
                "values, or of a quantity of refType basic_measurementError or "
                "basic_measurementUncertainty)"
            )
        for q in extras:
            if not self._column(q, rows, out):
                self._extra(name, q, out)
        return rows

    def _column(
        self,
        quantity: Any,
        rows: list[dict[str, Any]],
        out: Imported,
        heading: Any | None = None,
    ) -> bool:
        """Put `quantity` as an extra column of `rows` when it gives one value per row (a
        result of one row included: its one value is that row's). It is headed by its own
        dcc:name, else by `heading` (the name of the condition it is in). Not when the
        certificate has all the extra columns it may (`MAX_EXTRA_COLUMNS`): a note then."""
        s = _pick(quantity)
        n = len(rows)
        if s is None or n < 1 or len(s.values) != n:
            return False
        if quantity.find(_D + "name") is not None:
            heading = quantity.find(_D + "name")
        label = _text(heading) or " ".join(_ref_types(quantity)) or "value"
        unit = _symbol(s.unit)
        unit = s.unit if unit is None else unit
        key = f"{label} ({unit})" if unit else label
        columns = out.data.setdefault("extra_columns", [])
        if len(columns) >= MAX_EXTRA_COLUMNS and all(c["name"] != key for c in columns):
            return False
        uncertainties = _expand(s.uncertainties or [], n)
        for i, row in enumerate(rows):
            text = s.values[i] + (f" ± {uncertainties[i]}" if i < len(uncertainties) else "")
            row.setdefault("extra", {})[key] = text
        if all(c["name"] != key for c in columns):
            column = {"name": key}
            words = {} if heading is None else _languages(heading)
            if words.get("vi"):
                column["vi"] = f"{words['vi']} ({unit})" if unit else words["vi"]
                en = words.get("en") or label
                column["en"] = f"{en} ({unit})" if unit else en
            columns.append(column)
        return True

    def _extra(self, result: str, quantity: Any, out: Imported) -> None:
        s = _pick(quantity)
        label = _text(quantity.find(_D + "name")) or " ".join(_ref_types(quantity)) or "value"
        if s is None:
            text = _text(quantity.find(_D + "noQuantity")) or "(no D-SI value)"
            out.extras.append(f"{result} / {label}: {text}")
            return
        unit = _symbol(s.unit) or s.unit
        values = " ".join(s.values)
        unc = f" ± {' '.join(s.uncertainties)}" if s.uncertainties else ""
        out.extras.append(f"{result} / {label}: {values}{unc} {unit}")


_OPTION: Final = re.compile(r"\((--[a-z-]+)")
"""An option named in a missing field, as in "date received (--received YYYY-MM-DD)"."""
_IN_REGISTER: Final = "(in the register)"


def read_foreign(root: Any, *, where: str, fill: Fill | None = None) -> list[Imported]:
    """The certificate records of the foreign DCC `root` (an lxml element), one per item.

    `where` names the file in messages; `fill` gives what the DCC does not carry. Raises
    `InputError` when the DCC has no item or no measurement result, or `fill.item` is out of
    range. Fields still missing are listed in `Imported.missing`.
    """
    return _Foreign(root, where, fill or Fill()).read()


def missing_error(where: str, missing: Iterable[str], item: int | None) -> InputError:
    """One error listing every field still missing (`Imported.missing`)."""
    fields = list(dict.fromkeys(missing))
    names = "; ".join(fields)
    # A DCC has items, not rows: the item is part of the place ("FILE, item 1").
    return InputError(
        f"{where}, item {item}" if item is not None else where,
        f"the DCC lacks what a Vietnamese certificate needs: {names}",
        hint=_missing_hint(fields),
    )


def _missing_hint(fields: list[str]) -> str:
    """What fills `fields`, and only that: the options each names, the register for a
    standard's data, and the DCC's issuer for what only the DCC can carry (results, the
    reference standards themselves, the customer, the method)."""
    options = list(dict.fromkeys(m.group(1) for f in fields for m in _OPTION.finditer(f)))
    register = any(f.endswith(_IN_REGISTER) for f in fields)
    from_dcc = [f for f in fields if not _OPTION.search(f) and not f.endswith(_IN_REGISTER)]
    steps: list[str] = []
    if options:
        steps.append("give " + ", ".join(options))
    if register:
        steps.append(
            "add each standard named with 'certissuer registry add standard code=… name=… "
            "certificate_number=… calibration_due=YYYY-MM-DD'"
        )
    if from_dcc and steps:
        steps.append("for the rest, ask the DCC's issuer for a DCC that carries it")
    elif from_dcc:
        steps.append("no option or register fills this: ask the DCC's issuer for a DCC with it")
    return "; ".join(steps)
