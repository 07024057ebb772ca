"""Machine-readable certificates: PTB Digital Calibration Certificate (DCC) 3.1.2 XML.

A certificate of either kind maps to one DCC document: administrative data (software, core data
with the certificate number and the lab's reference, the item, the lab, the responsible persons,
the customer or owner, statements), and one measurement result with the method, the reference
standards, the environmental conditions and the results as D-SI quantities (value, D-SI unit such
as ``\\kilogram``, expanded uncertainty with coverage factor and coverage probability). Every
document is validated against the official schema (``dcc-3.1.2.xsd`` with ``SI_Format-2.1.0.xsd``)
before it leaves this module: invalid output is a bug and is never written.

The mapping goes both ways: `read_document` maps a DCC back to the model's fields (hardened: no
DTD, no entities, no network, one schema version), so ``certissuer issue FILE.xml`` accepts the
documents this module writes, and model → DCC → model gives back the same certificate, Decimal
digits, units and uncertainties included.

The DCC goes into the PDF before it is signed, as an associated file (``/AF``, relationship
``/Source``, MIME type ``application/xml``), so the one signature covers both.

>>> schema = Schema.load(find_schema_dir(settings))  # doctest: +SKIP
>>> xml = to_xml(cert, number="HC-2026-000001", settings=settings, schema=schema)  # doctest: +SKIP
>>> read_certificate(xml) == cert  # doctest: +SKIP
True
>>> writer = DccWriter.from_settings(settings)  # doctest: +SKIP
>>> pdf_with_dcc = writer.embed(pdf, cert, number="HC-2026-000001")  # doctest: +SKIP
>>> extract(pdf_with_dcc) == xml  # doctest: +SKIP
True

Units: `dsi_unit` maps every legal unit symbol the intake accepts (`model.is_legal_unit`) to
D-SI, or to None for the few that have no D-SI form (``var``, ``kvarh``, ``pH``, ``°Bx``,
``kgf/cm²``, a prefix on ``kg/m³``); `problems` reports those, and anything else the schema
could not hold, at intake. Where the D-SI unit maps back to another symbol than the one printed
(``%RH`` and ``%`` are both ``\\percent``), the printed symbol travels in a ``nonSIUnit``
metadata entry so that the round trip is exact.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lxml import etree

from certissuer.config import Settings
from certissuer.errors import CertissuerError, ConfigError, InputError, InputErrors
from certissuer.model import (
    CalibrationCertificate,
    Conditions,
    Instrument,
    Measurement,
    Party,
    Signatory,
    VerificationCertificate,
    data_digest,
    parse_certificate,
)

if TYPE_CHECKING:
    from pyhanko.pdf_utils.reader import PdfFileReader

    from certissuer.ledger import CertificateEntry

__all__ = [
    "DCC_NAMESPACE",
    "MAX_XML_BYTES",
    "SCHEMA_VERSION",
    "SI_NAMESPACE",
    "DccDocument",
    "DccError",
    "DccWriter",
    "Schema",
    "check_embedded",
    "dsi_unit",
    "embed",
    "export_entry",
    "extract",
    "find_schema_dir",
    "problems",
    "read_certificate",
    "read_document",
    "to_xml",
    "unit_symbol",
]

_logger = logging.getLogger(__name__)

Cert = VerificationCertificate | CalibrationCertificate
Loc = tuple[str | int, ...]

DCC_NAMESPACE: Final = "https://ptb.de/dcc"
SI_NAMESPACE: Final = "https://ptb.de/si"
SCHEMA_VERSION: Final = "3.1.2"
SCHEMA_FILE: Final = "dcc-3.1.2.xsd"
SI_SCHEMA_FILE: Final = "SI_Format-2.1.0.xsd"
_SI_SCHEMA_URL: Final = "https://ptb.de/si/v2.1.0/SI_Format.xsd"
"""Where dcc-3.1.2.xsd imports the D-SI schema from; mapped to the local file, never fetched."""
SCHEMA_DIR_ENV: Final = "CERTISSUER_DCC_SCHEMA_DIR"
MAX_XML_BYTES: Final = 25 * 1024 * 1024
"""Largest DCC document read or extracted (the intake's limit for any input file)."""
MIME_TYPE: Final = "application/xml"
_SCHEMA_HINT: Final = f"set [dcc] schema_dir or ${SCHEMA_DIR_ENV} to the folder with {SCHEMA_FILE}"

_D = "{" + DCC_NAMESPACE + "}"
_S = "{" + SI_NAMESPACE + "}"
_NSMAP: Final = {"dcc": DCC_NAMESPACE, "si": SI_NAMESPACE}
_ROOT_TAG: Final = _D + "digitalCalibrationCertificate"


class DccError(CertissuerError):
    """A DCC document cannot be made, embedded or extracted.

    An export that fails the schema is a bug in certissuer (the intake refuses what the schema
    cannot hold), so the message says so.
    """

    exit_code = 1


# --- units ---------------------------------------------------------------------------------

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

_UNIT_HINT: Final = (
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


# --- what a certificate must satisfy to become a DCC ---------------------------------------

_K_PATTERN: Final = re.compile(r"\+?(([1-9]\d*\.\d*)|([1-9]\d*))")
"""si:kValueType: a coverage factor of at least 1, written without an exponent."""
_XML_BAD_CHARS: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
"""Characters XML 1.0 cannot hold (control characters other than tab, LF and CR)."""


def problems(cert: Cert) -> list[tuple[Loc, str]]:
    """What in `cert` cannot go into a valid DCC, as ``(location, problem)`` pairs.

    The intake reports these with the file, row and field, so a certificate that would fail at
    export is refused when it is read. Checks: every unit has a D-SI form (`dsi_unit`), every
    coverage factor is at least 1 (the D-SI schema allows no less), and no text holds a
    control character. `location` is a pydantic-style path such as ``("results", 2, "unit")``.
    """
    found: list[tuple[Loc, str]] = []
    lists: list[tuple[str, Iterable[Any]]] = []
    if isinstance(cert, CalibrationCertificate):
        lists.append(("results", cert.results))
    else:
        lists += [("ranges", cert.ranges), ("checks", cert.checks)]
    for name, entries in lists:
        for index, entry in enumerate(entries):
            if dsi_unit(entry.unit) is None:
                found.append(
                    (
                        (name, index, "unit"),
                        f"'{entry.unit}' has no D-SI form, so it cannot go into the "
                        "machine-readable certificate (DCC)",
                    )
                )
            if isinstance(entry, Measurement) and not _K_PATTERN.fullmatch(
                str(entry.coverage_factor)
            ):
                found.append(
                    (
                        (name, index, "coverage_factor"),
                        f"expected a coverage factor of at least 1 written without an exponent "
                        f"(DCC / D-SI), got '{entry.coverage_factor}'",
                    )
                )
    found += [
        (loc, "contains a control character, which XML (and so the DCC) cannot hold")
        for loc, value in _strings(cert.model_dump(), ())
        if _XML_BAD_CHARS.search(value)
    ]
    return found


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


# --- the schema ----------------------------------------------------------------------------


def find_schema_dir(
    settings: Settings | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The folder holding ``dcc-3.1.2.xsd`` and ``SI_Format-2.1.0.xsd``, or None.

    Looked for in this order: ``[dcc] schema_dir`` of `settings`; ``$CERTISSUER_DCC_SCHEMA_DIR``
    in `env` (default ``os.environ``); ``shared/schemas/dcc`` beside the project folder (where
    a checkout keeps the official schemas, unmodified). A folder that is named but lacks the
    files raises `ConfigError`.
    """
    env = os.environ if env is None else env
    named = settings.dcc_schema_dir if settings is not None else None
    if named is None and env.get(SCHEMA_DIR_ENV):
        named = Path(env[SCHEMA_DIR_ENV])
    if named is not None:
        if not (named / SCHEMA_FILE).is_file() or not (named / SI_SCHEMA_FILE).is_file():
            raise ConfigError(
                f"{named}: no DCC schemas there (expected {SCHEMA_FILE} and {SI_SCHEMA_FILE})",
                hint="set [dcc] schema_dir to the folder with the official PTB schemas",
            )
        return named
    beside = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "dcc"
    if (beside / SCHEMA_FILE).is_file() and (beside / SI_SCHEMA_FILE).is_file():
        return beside
    return None


class _LocalSchemas(etree.Resolver):  # type: ignore[misc]  # lxml is untyped
    """Serve the D-SI schema import from the local folder: validation never goes online."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        if url == _SI_SCHEMA_URL:
            return self.resolve_filename(str(self.folder / SI_SCHEMA_FILE), context)
        return None


class Schema:
    """The DCC 3.1.2 schema, compiled once (about 5 ms) and reused for every document."""

    def __init__(self, folder: Path) -> None:
        parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
        parser.resolvers.add(_LocalSchemas(folder))
        try:
            self._xsd = etree.XMLSchema(etree.parse(str(folder / SCHEMA_FILE), parser))
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise ConfigError(f"{folder}: cannot load the DCC schema: {exc}") from exc
        self.folder = folder
        # NOTE: one compiled schema is shared by every thread (web workers); lxml keeps the
        # error log on the schema object, so validation is serialised.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Schema({str(self.folder)!r})"

    @staticmethod
    def load(folder: Path) -> Schema:
        """The compiled schema of `folder` (compiled on first use, then cached by the folder's
        real path, so a link to it or a relative spelling does not compile it again)."""
        return _compiled_schema(folder.resolve())

    def errors(self, tree: Any) -> list[tuple[int, str]]:
        """``(line, message)`` for each way `tree` (an lxml element or tree) breaks the schema."""
        with self._lock:
            if self._xsd.validate(tree):
                return []
            return [(e.line, _short_names(e.message)) for e in self._xsd.error_log]


@functools.cache
def _compiled_schema(folder: Path) -> Schema:
    return Schema(folder)


def _short_names(message: str) -> str:
    return message.replace(_D, "dcc:").replace(_S, "si:")


# --- model -> XML --------------------------------------------------------------------------

_KIND_REFTYPE: Final = {
    "calibration": "certissuer_calibration",
    "verification": "certissuer_verification",
}
_STAGE_REFTYPE: Final = {
    "before": "certissuer_beforeAdjustment",
    "after": "certissuer_afterAdjustment",
}
_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    "ref": ("Số tham chiếu của phòng thí nghiệm", "Laboratory reference"),
    "serial": ("Số", "Serial No."),
    "stamp": ("Số tem kiểm định", "Verification stamp No."),
    "certificate": ("Số giấy chứng nhận", "Certificate No."),
    "cal_results": ("Kết quả hiệu chuẩn", "Calibration results"),
    "ver_results": ("Kết quả kiểm định", "Verification results"),
    "range": ("Phạm vi đo", "Measuring range"),
    "check": ("Điểm kiểm tra", "Check point"),
    "temperature": ("Nhiệt độ", "Temperature"),
    "humidity": ("Độ ẩm tương đối", "Relative humidity"),
    "place_cal": ("Địa điểm hiệu chuẩn", "Place of calibration"),
    "place_use": ("Địa điểm sử dụng", "Place of use"),
    "valid_until": ("Có giá trị đến", "Valid until"),
    "mode": ("Chế độ kiểm định", "Verification mode"),
    "pass": ("Đạt yêu cầu kỹ thuật đo lường", "Meets the metrological requirements"),
}


def _software_release() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("certissuer")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


_RELEASE: Final = _software_release()


def _sub(parent: Any, tag: str, text: str | None = None, ref_type: str | None = None) -> Any:
    el = etree.SubElement(parent, _D + tag)
    if text is not None:
        el.text = text
    if ref_type:
        el.set("refType", ref_type)
    return el


def _text(parent: Any, tag: str, text: str, ref_type: str | None = None) -> Any:
    """A dcc:textType element with one content (our texts carry both languages already)."""
    el = _sub(parent, tag, ref_type=ref_type)
    _sub(el, "content", text)
    return el


def _label(parent: Any, tag: str, key: str) -> Any:
    """A dcc:textType element with the fixed Vietnamese and English wording of `key`."""
    el = _sub(parent, tag)
    vi, en = _LABELS[key]
    _sub(el, "content", vi).set("lang", "vi")
    _sub(el, "content", en).set("lang", "en")
    return el


def _decimal(value: Decimal) -> str:
    # str() of a Decimal keeps every digit and the exponent, and Decimal(str(d)) gives back d
    # exactly: what a round trip needs. Its forms ("0.10", "1E-8") all fit si:decimalType.
    return str(value)


def _coverage_probability(k: Decimal) -> str:
    """p for coverage factor `k`, assuming a normal distribution (GUM G.1.3).

    k = 2 gives 0.95, as the certificate states it ("approximately 95 %"); otherwise erf(k/√2)
    to three decimals, more where three would round to 1.
    """
    known = {Decimal(1): "0.683", Decimal(2): "0.95", Decimal(3): "0.997"}
    if k in known:
        return known[k]
    p = math.erf(float(k) / math.sqrt(2))
    digits = 3
    while round(p, digits) >= 1 and digits < 9:
        digits += 1
    return f"{p:.{digits}f}"


def _real(
    parent: Any,
    ref_type: str,
    value: Decimal,
    dsi: str,
    *,
    uncertainty: Decimal | None = None,
    k: Decimal | None = None,
) -> Any:
    quantity = _sub(parent, "quantity", ref_type=ref_type)
    real = etree.SubElement(quantity, _S + "real")
    etree.SubElement(real, _S + "value").text = _decimal(value)
    etree.SubElement(real, _S + "unit").text = dsi
    if uncertainty is not None and k is not None:
        unc = etree.SubElement(real, _S + "expandedUnc")
        etree.SubElement(unc, _S + "uncertainty").text = _decimal(uncertainty)
        etree.SubElement(unc, _S + "coverageFactor").text = _decimal(k)
        etree.SubElement(unc, _S + "coverageProbability").text = _coverage_probability(k)
        etree.SubElement(unc, _S + "distribution").text = "normal"
    return quantity


def _unit_for(symbol: str) -> str:
    dsi = dsi_unit(symbol)
    if dsi is None:  # the intake refuses these (problems()); reaching here is a bug
        raise DccError(f"unit '{symbol}' has no D-SI form", hint=_UNIT_HINT)
    return dsi


def _list_metadata(data_list: Any, symbol: str, conformity: str | None = None) -> None:
    """The printed unit symbol (when D-SI maps back to another one) and a check's verdict."""
    entries: list[tuple[str, str, str]] = []
    if unit_symbol(_unit_for(symbol)) != symbol:
        entries.append(("certissuer_unitSymbol", "nonSIUnit", symbol))
    if conformity is not None:
        entries.append(("basic_conformity", "conformity", conformity))
    if not entries:
        return
    meta = _sub(data_list, "measurementMetaData")
    for ref_type, tag, text in entries:
        _sub(_sub(meta, "metaData", ref_type=ref_type), tag, text)


def _identification(parent: Any, issuer: str, value: str, ref_type: str, label: str) -> None:
    ident = _sub(parent, "identification", ref_type=ref_type)
    _sub(ident, "issuer", issuer)
    _sub(ident, "value", value)
    _label(ident, "name", label)


def _statement(parent: Any, ref_type: str) -> Any:
    return _sub(parent, "statement", ref_type=ref_type)


def _contact(parent: Any, tag: str, party: Party) -> None:
    """A dcc:contactType: the schema requires an e-mail element and a location."""
    contact = _sub(parent, tag)
    _text(contact, "name", party.name)
    _sub(contact, "eMail", "")
    further = _sub(_sub(contact, "location"), "further")
    if party.address:
        _sub(further, "content", party.address)


def _item(adm: Any, instrument: Instrument, stamp: str) -> None:
    item = _sub(_sub(adm, "items"), "item")
    _text(item, "name", instrument.name)
    if instrument.year is not None or instrument.condition:
        description = _sub(item, "description")
        if instrument.year is not None:
            _sub(description, "content", str(instrument.year), "certissuer_yearOfManufacture")
        if instrument.condition:
            _sub(description, "content", instrument.condition, "certissuer_condition")
    _text(_sub(item, "manufacturer"), "name", instrument.manufacturer)
    if instrument.model:
        _sub(item, "model", instrument.model)
    idents = _sub(item, "identifications")
    _identification(idents, "manufacturer", instrument.serial, "certissuer_serial", "serial")
    if stamp:
        _identification(idents, "calibrationLaboratory", stamp, "certissuer_stampNumber", "stamp")


def _lab(adm: Any, settings: Settings) -> None:
    lab = _sub(adm, "calibrationLaboratory")
    _sub(lab, "calibrationLaboratoryCode", settings.lab_accreditation or settings.lab_code)
    contact = _sub(lab, "contact")
    name = _sub(contact, "name")
    _sub(name, "content", settings.lab_name_vi).set("lang", "vi")
    _sub(name, "content", settings.lab_name_en).set("lang", "en")
    _sub(contact, "eMail", "")
    location = _sub(contact, "location")
    if settings.lab_place:
        _sub(location, "city", settings.lab_place)
    _sub(location, "countryCode", "VN")
    if settings.lab_address_vi or settings.lab_address_en:
        further = _sub(location, "further")
        for lang, text in (("vi", settings.lab_address_vi), ("en", settings.lab_address_en)):
            if text:
                _sub(further, "content", text).set("lang", lang)


def _persons(adm: Any, persons: Iterable[tuple[str, Signatory | None, bool]]) -> None:
    resp = _sub(adm, "respPersons")
    for role, person, main in persons:
        if person is None:
            continue
        entry = _sub(resp, "respPerson")
        _text(_sub(entry, "person"), "name", person.name)
        if person.title:
            _sub(_sub(entry, "description"), "content", person.title)
        _sub(entry, "role", role)
        if main:
            _sub(entry, "mainSigner", "true")


def _build(cert: Cert, number: str, settings: Settings) -> Any:
    cal = isinstance(cert, CalibrationCertificate)
    root = etree.Element(_ROOT_TAG, nsmap=_NSMAP)
    root.set("schemaVersion", SCHEMA_VERSION)
    adm = _sub(root, "administrativeData")
    software = _sub(_sub(adm, "dccSoftware"), "software")
    _text(software, "name", "certissuer")
    _sub(software, "release", _RELEASE)
    _sub(software, "type", "application")

    core = _sub(adm, "coreData")
    _sub(core, "countryCodeISO3166_1", "VN")
    _sub(core, "usedLangCodeISO639_1", "vi")
    _sub(core, "usedLangCodeISO639_1", "en")
    _sub(core, "mandatoryLangCodeISO639_1", "vi")
    _sub(core, "uniqueIdentifier", number)
    idents = _sub(core, "identifications")
    _identification(idents, "calibrationLaboratory", cert.ref, "certissuer_ref", "ref")
    if isinstance(cert, CalibrationCertificate):
        _sub(core, "receiptDate", cert.received.isoformat())
        worked = cert.calibrated
    else:
        worked = cert.verification_date
    _sub(core, "beginPerformanceDate", worked.isoformat())
    _sub(core, "endPerformanceDate", worked.isoformat())
    # NOTE: the enumeration has no free text; the place itself is a statement below.
    _sub(core, "performanceLocation", "laboratory" if cal else "customer")

    if isinstance(cert, CalibrationCertificate):
        _item(adm, cert.item, "")
    else:
        _item(adm, cert.instrument, cert.stamp_number)
    _lab(adm, settings)
    if isinstance(cert, CalibrationCertificate):
        _persons(
            adm,
            [
                ("performed_by", cert.performed_by, False),
                ("checked_by", cert.checked_by, False),
                ("signatory", cert.signatory, True),
            ],
        )
        _contact(adm, "customer", cert.customer)
    else:
        _persons(adm, [("verifier", cert.verifier, False), ("head", cert.head, True)])
        _contact(adm, "customer", cert.owner)
    _statements(_sub(adm, "statements"), cert)

    result = _sub(_sub(root, "measurementResults"), "measurementResult")
    result.set("refType", _KIND_REFTYPE[cert.kind.value])
    _label(result, "name", "cal_results" if cal else "ver_results")
    _text(
        _sub(_sub(result, "usedMethods"), "usedMethod", ref_type="certissuer_method"),
        "name",
        cert.method,
    )
    if isinstance(cert, CalibrationCertificate):
        _standards(result, cert)
        _conditions(result, cert.conditions)
        _cal_results(_sub(result, "results"), cert)
    else:
        _ver_results(_sub(result, "results"), cert)
    return root


def _statements(parent: Any, cert: Cert) -> None:
    place = _statement(parent, "certissuer_place")
    cal = isinstance(cert, CalibrationCertificate)
    _label(place, "declaration", "place_cal" if cal else "place_use")
    text = (
        cert.place_of_calibration if isinstance(cert, CalibrationCertificate) else cert.place_of_use
    )
    _sub(_sub(_sub(place, "location"), "further"), "content", text)
    if isinstance(cert, VerificationCertificate):
        mode = _statement(parent, "certissuer_verificationMode")
        _sub(mode, "convention", cert.mode.value)
        _label(mode, "declaration", "mode")
        verdict = _statement(parent, "basic_conformity")
        _sub(verdict, "norm", cert.method)
        _label(verdict, "declaration", "pass")
        _sub(verdict, "conformity", "pass" if cert.passes else "fail")
    elif cert.conformity is not None:
        verdict = _statement(parent, "basic_conformity")
        _sub(verdict, "convention", cert.conformity.decision_rule)
        _sub(_sub(verdict, "declaration"), "content", cert.conformity.statement)
    if cert.valid_until is not None:
        valid = _statement(parent, "certissuer_validUntil")
        _label(valid, "declaration", "valid_until")
        _sub(valid, "date", cert.valid_until.isoformat())
    if isinstance(cert, CalibrationCertificate) and cert.deviations:
        _sub(
            _sub(_statement(parent, "certissuer_deviations"), "declaration"),
            "content",
            cert.deviations,
        )
    if cert.replaces is not None:  # an amended certificate (ISO/IEC 17025 §7.8.8)
        replaces = _statement(parent, "certissuer_replaces")
        _sub(replaces, "reference", cert.replaces.number)
        _sub(_sub(replaces, "declaration"), "content", cert.replaces.reason)
    if cert.language_note:
        note = _statement(parent, "certissuer_languageNote")
        _sub(_sub(note, "declaration"), "content", cert.language_note)


def _standards(result: Any, cert: CalibrationCertificate) -> None:
    equipment = _sub(result, "measuringEquipments")
    for standard in cert.standards:
        item = _sub(equipment, "measuringEquipment", ref_type="certissuer_referenceStandard")
        _text(item, "name", standard.name)
        due = standard.calibration_due.isoformat()
        _sub(_sub(item, "description"), "content", due, "certissuer_calibrationDue")
        idents = _sub(item, "identifications")
        if standard.serial:
            _identification(idents, "manufacturer", standard.serial, "certissuer_serial", "serial")
        _identification(
            idents,
            "other",
            standard.certificate_number,
            "certissuer_certificateNumber",
            "certificate",
        )


def _conditions(result: Any, conditions: Conditions) -> None:
    rows = [
        (
            "basic_temperature",
            "temperature",
            r"\degreecelsius",
            conditions.temperature,
            conditions.temperature_uncertainty,
        ),
        (
            "basic_humidityRelative",
            "humidity",
            r"\percent",
            conditions.humidity,
            conditions.humidity_uncertainty,
        ),
    ]
    present = [row for row in rows if row[3] is not None or row[4] is not None]
    if not present:
        return
    parent = _sub(result, "influenceConditions")
    for ref_type, key, dsi, value, uncertainty in present:
        condition = _sub(parent, "influenceCondition", ref_type=ref_type)
        _label(condition, "name", key)
        data = _sub(condition, "data")
        if value is not None:
            _real(data, ref_type, value, dsi)
        if uncertainty is not None:
            _real(data, "certissuer_uncertainty", uncertainty, dsi)


def _cal_results(results: Any, cert: CalibrationCertificate) -> None:
    for m in cert.results:
        ref_types = " ".join(filter(None, ["certissuer_result", _STAGE_REFTYPE.get(m.stage)]))
        result = _sub(results, "result", ref_type=ref_types)
        _text(result, "name", m.quantity)
        data_list = _sub(_sub(result, "data"), "list")
        dsi = _unit_for(m.unit)
        if m.nominal is not None:
            _real(data_list, "basic_nominalValue", m.nominal, dsi)
        _real(
            data_list,
            "basic_measuredValue",
            m.measured,
            dsi,
            uncertainty=m.uncertainty,
            k=m.coverage_factor,
        )
        if m.error is not None:
            _real(data_list, "basic_measurementError", m.error, dsi)
        _list_metadata(data_list, m.unit)


def _ver_results(results: Any, cert: VerificationCertificate) -> None:
    for r in cert.ranges:
        result = _sub(results, "result", ref_type="certissuer_range")
        _label(result, "name", "range")
        data_list = _sub(_sub(result, "data"), "list")
        dsi = _unit_for(r.unit)
        _real(data_list, "certissuer_rangeMin", r.lower, dsi)
        _real(data_list, "certissuer_rangeMax", r.upper, dsi)
        if r.scale_interval is not None:
            _real(data_list, "certissuer_scaleInterval", r.scale_interval, dsi)
        if r.mpe is not None:
            _real(data_list, "certissuer_mpe", r.mpe, dsi)
        if r.accuracy_class:
            quantity = _sub(data_list, "quantity", ref_type="certissuer_accuracyClass")
            _sub(_sub(quantity, "noQuantity"), "content", r.accuracy_class)
        _list_metadata(data_list, r.unit)
    for c in cert.checks:
        result = _sub(results, "result", ref_type="certissuer_check")
        _label(result, "name", "check")
        data_list = _sub(_sub(result, "data"), "list")
        dsi = _unit_for(c.unit)
        _real(data_list, "basic_nominalValue", c.nominal, dsi)
        _real(data_list, "basic_measurementError", c.error, dsi)
        _real(data_list, "certissuer_mpe", c.mpe, dsi)
        _list_metadata(data_list, c.unit, "pass" if c.passes else "fail")


def to_xml(cert: Cert, *, number: str, settings: Settings, schema: Schema) -> bytes:
    """The DCC 3.1.2 document of `cert`, as UTF-8 XML bytes, validated against `schema`.

    `number` is the certificate number (the DCC's unique identifier); `settings` gives the lab
    (name, address, place, accreditation). The output depends only on these, so exporting the
    same certificate again with the same lab profile gives the same bytes. Raises `DccError`
    when the document breaks the schema (a bug: it is never returned) or holds what XML cannot.
    """
    try:
        root = _build(cert, number, settings)
    except ValueError as exc:  # lxml refuses control characters; problems() catches them first
        raise DccError(f"{number}: the certificate data cannot go into XML: {exc}") from exc
    errors = schema.errors(root)
    if errors:
        _logger.error("DCC of %s is invalid: %s", number, errors)
        first = "; ".join(f"line {line}: {message}" for line, message in errors[:3])
        raise DccError(
            f"{number}: the DCC document is not valid against {SCHEMA_FILE} ({first})",
            hint="this is a bug in certissuer: please report it with the input record",
        )
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


# --- XML -> model --------------------------------------------------------------------------


@dataclass
class DccDocument:
    """A DCC document read back into the model's fields, with where each field came from."""

    where: str
    """The file, for messages."""
    data: dict[str, Any] | None
    """The certificate record (as read from JSON); None when the document broke the schema."""
    number: str | None = None
    """The document's unique identifier (the number it was issued under), if any."""
    problems: list[InputError] = field(default_factory=list)
    """Problems found while mapping the document, each with its line and field."""
    lines: dict[str, int] = field(default_factory=dict)
    """Source line of each field, by its path in JSON notation (``results[2].unit``)."""

    @property
    def ref(self) -> str | None:
        """The lab's reference of the record, when the document gives one."""
        ref = (self.data or {}).get("ref")
        return ref if isinstance(ref, str) else None

    def line_of(self, path: str) -> int:
        """The source line for the field `path`, or of the nearest enclosing element."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[\]]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return self.lines.get("", 1)

    def locate(self, error: InputError) -> InputError:
        """`error` (as the intake words it for this document) with the line of its field."""
        if error.path != self.where:
            return error  # already located
        return InputError(
            self._at(self.line_of(error.field or "")),
            error.problem,
            field=error.field,
            hint=error.hint,
        )

    def _at(self, line: int) -> str:
        return f"{self.where}, line {line}"

    def _problem(
        self, line: int, field_: str | None, problem: str, hint: str | None = None
    ) -> None:
        self.problems.append(InputError(self._at(line), problem, field=field_, hint=hint))


_PROLOG: Final = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.S)
"""What may come before a DOCTYPE: a byte-order mark, the XML declaration, PIs, comments."""


def _doctype_refused(where: str) -> InputError:
    return InputError(
        where,
        "the document has a DOCTYPE declaration: DTDs and entities are not allowed in a DCC",
        hint="remove the <!DOCTYPE ...> line and any entity references",
    )


def _parser() -> Any:
    # NOTE: a parser per document (lxml parsers are not thread-safe). No DTD is loaded, no
    # entity is resolved, nothing is fetched; huge_tree stays off (libxml2's depth and size
    # limits apply). Comments and processing instructions are dropped so text reads whole.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        # NOTE: not collect_ids=False: with it, lxml 6.1 / libxml2 2.14 opened the external
        # DTD named by a DOCTYPE despite load_dtd=False (found by test_dcc's FIFO test).
    )


def read_document(
    raw: bytes, *, where: str, schema: Schema | None = None, max_bytes: int = MAX_XML_BYTES
) -> DccDocument:
    """Parse the DCC document `raw` and map it to the model's fields.

    `where` names the file in messages ("file, line N, field 'x'"). `schema`, when given,
    validates the document first; a document that breaks it comes back with `DccDocument.data`
    None and the schema's complaints as `problems`. Raises `InputError` for a document that
    cannot be used at all: larger than `max_bytes`, not well-formed XML, with a DOCTYPE (DTDs
    and entities are refused, never read), not a DCC, or a DCC of another schema version.
    """
    if len(raw) > max_bytes:
        raise InputError(
            where, f"the document is {len(raw)} bytes, more than the limit of {max_bytes}"
        )
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw[:4]:
        raise InputError(where, "the document is not UTF-8 XML", hint="save it as UTF-8")
    prolog = _PROLOG.match(raw)
    if prolog is not None and raw.startswith(b"<!DOCTYPE", prolog.end()):
        # Refused before libxml2 sees it: no DTD, entity declaration or expansion is ever read.
        raise _doctype_refused(where)
    try:
        tree = etree.parse(BytesIO(raw), _parser())
    except etree.XMLSyntaxError as exc:
        line = getattr(exc, "lineno", None) or 1
        raise InputError(
            f"{where}, line {line}",
            f"not well-formed XML: {exc.msg}",
            hint="check that every element is closed and special characters are escaped",
        ) from exc
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise _doctype_refused(where)
    root = tree.getroot()
    if root.tag != _ROOT_TAG:
        raise InputError(
            f"{where}, line {root.sourceline}",
            f"not a DCC document: the root element is '{_short_names(root.tag)}', expected "
            "'dcc:digitalCalibrationCertificate' in namespace https://ptb.de/dcc",
        )
    version = root.get("schemaVersion")
    if version != SCHEMA_VERSION:
        raise InputError(
            f"{where}, line {root.sourceline}",
            f"a DCC of schema version {version or '(none)'}: certissuer reads version "
            f"{SCHEMA_VERSION} only",
            hint=f"export the certificate as DCC {SCHEMA_VERSION}",
        )
    if schema is not None:
        errors = schema.errors(tree)
        if errors:
            doc = DccDocument(where, None)
            for line, message in errors:
                doc._problem(
                    line, None, f"not valid against the DCC {SCHEMA_VERSION} schema: {message}"
                )
            return doc
    return _Reader(where, root).read()


def read_certificate(raw: bytes, *, where: str = "DCC", schema: Schema | None = None) -> Cert:
    """The certificate held by the DCC document `raw` (see `read_document`).

    Raises `InputError` for an unusable document and `InputErrors` listing every problem of a
    document that does not make a valid certificate.
    """
    return _read(raw, where, schema)[1]


def _read(raw: bytes, where: str, schema: Schema | None) -> tuple[DccDocument, Cert]:
    from pydantic import ValidationError

    doc = read_document(raw, where=where, schema=schema)
    if doc.problems or doc.data is None:
        raise InputErrors(doc.problems)
    try:
        return doc, parse_certificate(doc.data)
    except ValidationError as exc:
        errors = []
        for detail in exc.errors(include_url=False):
            path = _json_path(detail["loc"][1:])  # after the kind tag
            errors.append(InputError(doc._at(doc.line_of(path)), detail["msg"], field=path or None))
        raise InputErrors(errors) from exc


def _json_path(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _ref_types(el: Any) -> list[str]:
    value = el.get("refType") or ""
    return value.split()


def _content_text(el: Any | None) -> str | None:
    """The text of a dcc:textType or richContentType: its contents joined by " / "."""
    if el is None:
        return None
    parts = [c.text or "" for c in el.findall(_D + "content")]
    return " / ".join(parts) if parts else ""


class _Reader:
    """Maps one DCC document to a certificate record, recording the line of each field."""

    def __init__(self, where: str, root: Any) -> None:
        self.root = root
        self.doc = DccDocument(where, {}, lines={"": root.sourceline})

    def read(self) -> DccDocument:
        doc, root = self.doc, self.root
        data: dict[str, Any] = {}
        doc.data = data
        result = self._one(root, "measurementResults/dcc:measurementResult", "measurementResult")
        kind = (
            "verification"
            if result is not None and "certissuer_verification" in _ref_types(result)
            else "calibration"
        )
        data["kind"] = kind
        adm = root.find(_D + "administrativeData")
        core = adm.find(_D + "coreData") if adm is not None else None
        if core is not None:
            doc.number = (core.findtext(_D + "uniqueIdentifier") or "").strip() or None
            ref = self._identification(core, "certissuer_ref", "calibrationLaboratory")
            if ref is not None:
                self._set(data, "ref", ref.findtext(_D + "value"), ref)
            elif doc.number is not None:
                self._set(data, "ref", doc.number, core.find(_D + "uniqueIdentifier"))
            self._dates(data, core, kind)
        if adm is not None:
            self._item(data, adm, kind)
            self._persons(data, adm, kind)
            customer = adm.find(_D + "customer")
            if customer is not None:
                key = "customer" if kind == "calibration" else "owner"
                self._set(data, key, self._party(customer, key), customer)
            statements = adm.find(_D + "statements")
            if statements is not None:
                self._statements(data, statements, kind)
        if result is not None:
            method = result.find(f"{_D}usedMethods/{_D}usedMethod/{_D}name")
            if method is not None:
                self._set(data, "method", _content_text(method), method)
            if kind == "calibration":
                self._standards(data, result)
                self._conditions(data, result)
                self._cal_results(data, result)
            else:
                self._ver_results(data, result)
        return doc

    # -- helpers ------------------------------------------------------------------------

    def _set(self, target: dict[str, Any], path: str, value: Any, el: Any) -> None:
        """Set `path` (JSON notation, from the record's root) in `target`, remembering the line."""
        target[path.rsplit(".", 1)[-1]] = value
        if el is not None:
            self.doc.lines[path] = el.sourceline

    def _one(self, parent: Any, path: str, name: str) -> Any | None:
        found = parent.findall(_D + path.replace("dcc:", _D))
        if len(found) > 1:
            self.doc._problem(
                found[1].sourceline,
                None,
                f"expected one {name}, found {len(found)}: certissuer reads one item and one "
                "measurement result per certificate",
            )
        return found[0] if found else None

    @staticmethod
    def _identification(parent: Any, ref_type: str, issuer: str | None = None) -> Any | None:
        idents = parent.findall(f"{_D}identifications/{_D}identification")
        for ident in idents:
            if ref_type in _ref_types(ident):
                return ident
        for ident in idents:  # a DCC from elsewhere: the first one from the right issuer
            if issuer is not None and (ident.findtext(_D + "issuer") or "").strip() == issuer:
                return ident
        return None

    def _party(self, contact: Any, key: str) -> dict[str, Any]:
        party: dict[str, Any] = {}
        name = contact.find(_D + "name")
        if name is not None:
            self._set(party, f"{key}.name", _content_text(name), name)
        further = contact.find(f"{_D}location/{_D}further")
        address = _content_text(further)
        if address:
            self._set(party, f"{key}.address", address, further)
        return party

    def _dates(self, data: dict[str, Any], core: Any, kind: str) -> None:
        begin = core.find(_D + "beginPerformanceDate")
        end = core.find(_D + "endPerformanceDate")
        field_ = "calibrated" if kind == "calibration" else "verification_date"
        if (
            begin is not None
            and end is not None
            and (begin.text or "").strip() != (end.text or "").strip()
        ):
            self.doc._problem(
                end.sourceline,
                field_,
                f"expected the work on one day (beginPerformanceDate {begin.text}, "
                f"endPerformanceDate {end.text})",
                hint="certissuer records one calibration or verification date",
            )
        if end is not None:
            self._set(data, field_, (end.text or "").strip(), end)
        receipt = core.find(_D + "receiptDate")
        if kind == "calibration" and receipt is not None:
            self._set(data, "received", (receipt.text or "").strip(), receipt)

    def _item(self, data: dict[str, Any], adm: Any, kind: str) -> None:
        item = self._one(adm, "items/dcc:item", "item")
        if item is None:
            return
        key = "item" if kind == "calibration" else "instrument"
        out: dict[str, Any] = {}
        self._set(data, key, out, item)
        name = item.find(_D + "name")
        if name is not None:
            self._set(out, f"{key}.name", _content_text(name), name)
        for content in item.findall(f"{_D}description/{_D}content"):
            types = _ref_types(content)
            if "certissuer_yearOfManufacture" in types:
                self._set(out, f"{key}.year", (content.text or "").strip(), content)
            elif "certissuer_condition" in types:
                self._set(out, f"{key}.condition", content.text or "", content)
        maker = item.find(f"{_D}manufacturer/{_D}name")
        if maker is not None and _content_text(maker):
            self._set(out, f"{key}.manufacturer", _content_text(maker), maker)
        model = item.find(_D + "model")
        if model is not None and (model.text or "").strip():
            self._set(out, f"{key}.model", model.text, model)
        serial = self._identification(item, "certissuer_serial", "manufacturer")
        if serial is not None:
            self._set(out, f"{key}.serial", serial.findtext(_D + "value"), serial)
        stamp = self._identification(item, "certissuer_stampNumber")
        if kind == "verification" and stamp is not None:
            self._set(data, "stamp_number", stamp.findtext(_D + "value"), stamp)

    def _persons(self, data: dict[str, Any], adm: Any, kind: str) -> None:
        roles = (
            ("performed_by", "checked_by", "signatory")
            if kind == "calibration"
            else ("verifier", "head")
        )
        for person in adm.findall(f"{_D}respPersons/{_D}respPerson"):
            role = (person.findtext(_D + "role") or "").strip()
            if role not in roles:
                continue  # other responsible persons are not part of the model
            out: dict[str, Any] = {}
            self._set(data, role, out, person)
            name = person.find(f"{_D}person/{_D}name")
            if name is not None:
                self._set(out, f"{role}.name", _content_text(name), name)
            title = person.find(_D + "description")
            if title is not None and _content_text(title):
                self._set(out, f"{role}.title", _content_text(title), title)

    def _statements(self, data: dict[str, Any], statements: Any, kind: str) -> None:
        for statement in statements.findall(_D + "statement"):
            types = _ref_types(statement)
            declaration = statement.find(_D + "declaration")
            if "certissuer_place" in types:
                further = statement.find(f"{_D}location/{_D}further")
                key = "place_of_calibration" if kind == "calibration" else "place_of_use"
                self._set(
                    data, key, _content_text(further), further if further is not None else statement
                )
            elif "certissuer_verificationMode" in types and kind == "verification":
                convention = statement.find(_D + "convention")
                self._set(
                    data, "mode", (statement.findtext(_D + "convention") or "").strip(), convention
                )
            elif "basic_conformity" in types and kind == "calibration":
                out: dict[str, Any] = {}
                self._set(data, "conformity", out, statement)
                if declaration is not None:
                    self._set(out, "conformity.statement", _content_text(declaration), declaration)
                rule = statement.find(_D + "convention")
                if rule is not None:
                    self._set(out, "conformity.decision_rule", rule.text or "", rule)
            elif "certissuer_validUntil" in types:
                when = statement.find(_D + "date")
                if when is not None:
                    self._set(data, "valid_until", (when.text or "").strip(), when)
            elif "certissuer_deviations" in types and kind == "calibration":
                self._set(data, "deviations", _content_text(declaration), declaration)
            elif "certissuer_replaces" in types:
                out = {}
                self._set(data, "replaces", out, statement)
                number = statement.find(_D + "reference")
                if number is not None:
                    self._set(out, "replaces.number", number.text or "", number)
                if declaration is not None:
                    self._set(out, "replaces.reason", _content_text(declaration), declaration)
            elif "certissuer_languageNote" in types:
                self._set(data, "language_note", _content_text(declaration), declaration)

    def _standards(self, data: dict[str, Any], result: Any) -> None:
        standards: list[dict[str, Any]] = []
        equipment = result.findall(f"{_D}measuringEquipments/{_D}measuringEquipment")
        if equipment:
            self._set(data, "standards", standards, equipment[0].getparent())
        for index, item in enumerate(equipment):
            here = f"standards[{index}]"
            out: dict[str, Any] = {}
            standards.append(out)
            self.doc.lines[here] = item.sourceline
            name = item.find(_D + "name")
            if name is not None:
                self._set(out, f"{here}.name", _content_text(name), name)
            for content in item.findall(f"{_D}description/{_D}content"):
                if "certissuer_calibrationDue" in _ref_types(content):
                    self._set(out, f"{here}.calibration_due", (content.text or "").strip(), content)
            serial = self._identification(item, "certissuer_serial")
            if serial is not None:
                self._set(out, f"{here}.serial", serial.findtext(_D + "value"), serial)
            number = self._identification(item, "certissuer_certificateNumber")
            if number is not None:
                self._set(out, f"{here}.certificate_number", number.findtext(_D + "value"), number)

    def _conditions(self, data: dict[str, Any], result: Any) -> None:
        out: dict[str, Any] = {}
        names = {"basic_temperature": "temperature", "basic_humidityRelative": "humidity"}
        units = {"temperature": r"\degreecelsius", "humidity": r"\percent"}
        for condition in result.findall(f"{_D}influenceConditions/{_D}influenceCondition"):
            key = next((names[t] for t in _ref_types(condition) if t in names), None)
            if key is None:
                continue  # other conditions are not part of the model
            for quantity in condition.findall(f"{_D}data/{_D}quantity"):
                types = _ref_types(quantity)
                name = f"{key}_uncertainty" if "certissuer_uncertainty" in types else key
                real = self._real(quantity, f"conditions.{name}", units[key])
                if real is not None:
                    self._set(out, f"conditions.{name}", real[0], quantity)
        if out:
            self._set(data, "conditions", out, result.find(_D + "influenceConditions"))

    def _real(
        self, quantity: Any, path: str, expected_dsi: str | None = None
    ) -> tuple[str, str, Any] | None:
        """``(value, D-SI unit, si:real element)`` of a dcc:quantity, or None (problem noted)."""
        real = quantity.find(_S + "real")
        if real is None:
            self.doc._problem(quantity.sourceline, path, "expected a D-SI value (si:real)")
            return None
        value = (real.findtext(_S + "value") or "").strip()
        dsi = (real.findtext(_S + "unit") or "").strip()
        if expected_dsi is not None and dsi != expected_dsi:
            self.doc._problem(
                real.sourceline, path, f"expected the D-SI unit {expected_dsi}, got '{dsi}'"
            )
            return None
        return value, dsi, real

    def _list(self, result: Any, here: str) -> tuple[Any, dict[str, Any]] | None:
        data_list = result.find(f"{_D}data/{_D}list")
        if data_list is None:
            self.doc._problem(result.sourceline, here, "expected the values in a dcc:list")
            return None
        quantities: dict[str, Any] = {}
        for quantity in data_list.findall(_D + "quantity"):
            for ref_type in _ref_types(quantity):
                quantities.setdefault(ref_type, quantity)
        return data_list, quantities

    def _unit(self, data_list: Any, out: dict[str, Any], here: str, dsi_units: set[str]) -> None:
        """The printed unit of a list: its nonSIUnit entry, else the symbol of its D-SI unit."""
        if len(dsi_units) > 1:
            self.doc._problem(
                data_list.sourceline,
                f"{here}.unit",
                f"expected one unit for the values of an entry, got {', '.join(sorted(dsi_units))}",
            )
            return
        if not dsi_units:
            return
        dsi = next(iter(dsi_units))
        printed = None
        for meta in data_list.findall(f"{_D}measurementMetaData/{_D}metaData"):
            if "certissuer_unitSymbol" in _ref_types(meta):
                printed = meta.find(_D + "nonSIUnit")
        if printed is not None:
            symbol = (printed.text or "").strip()
            if dsi_unit(symbol) != dsi:
                self.doc._problem(
                    printed.sourceline,
                    f"{here}.unit",
                    f"the unit symbol '{symbol}' does not match the D-SI unit {dsi}",
                )
                return
            self._set(out, f"{here}.unit", symbol, printed)
            return
        symbol = unit_symbol(dsi)
        if symbol is None:
            self.doc._problem(
                data_list.sourceline,
                f"{here}.unit",
                f"the D-SI unit '{dsi}' is not one certissuer can print",
                hint="use the D-SI form of a legal unit, for example \\kilogram, \\degreecelsius, "
                "\\litre\\per\\minute",
            )
            return
        self._set(out, f"{here}.unit", symbol, data_list)

    def _values(
        self,
        quantities: Mapping[str, Any],
        here: str,
        names: Mapping[str, str],
        out: dict[str, Any],
    ) -> set[str]:
        dsi_units: set[str] = set()
        for ref_type, name in names.items():
            quantity = quantities.get(ref_type)
            if quantity is None:
                continue
            real = self._real(quantity, f"{here}.{name}")
            if real is None:
                continue
            value, dsi, _ = real
            dsi_units.add(dsi)
            self._set(out, f"{here}.{name}", value, quantity)
        return dsi_units

    def _cal_results(self, data: dict[str, Any], result: Any) -> None:
        entries = list(result.findall(f"{_D}results/{_D}result"))
        rows: list[dict[str, Any]] = []
        if entries:
            self._set(data, "results", rows, entries[0].getparent())
        for index, entry in enumerate(entries):
            here = f"results[{index}]"
            out: dict[str, Any] = {}
            rows.append(out)
            self.doc.lines[here] = entry.sourceline
            name = entry.find(_D + "name")
            if name is not None and _content_text(name):
                self._set(out, f"{here}.quantity", _content_text(name), name)
            stage = [s for s, t in _STAGE_REFTYPE.items() if t in _ref_types(entry)]
            if stage:
                self._set(out, f"{here}.stage", stage[0], entry)
            found = self._list(entry, here)
            if found is None:
                continue
            data_list, quantities = found
            names = {
                "basic_nominalValue": "nominal",
                "basic_measuredValue": "measured",
                "basic_measurementError": "error",
            }
            dsi_units = self._values(quantities, here, names, out)
            measured = quantities.get("basic_measuredValue")
            if measured is None:
                self.doc._problem(
                    data_list.sourceline,
                    f"{here}.measured",
                    "missing (required): a quantity with refType basic_measuredValue",
                )
            else:
                unc = measured.find(f"{_S}real/{_S}expandedUnc")
                if unc is None:
                    self.doc._problem(
                        measured.sourceline,
                        f"{here}.uncertainty",
                        "missing (required): the expanded uncertainty (si:expandedUnc)",
                    )
                else:
                    self._set(
                        out,
                        f"{here}.uncertainty",
                        (unc.findtext(_S + "uncertainty") or "").strip(),
                        unc,
                    )
                    self._set(
                        out,
                        f"{here}.coverage_factor",
                        (unc.findtext(_S + "coverageFactor") or "").strip(),
                        unc,
                    )
            self._unit(data_list, out, here, dsi_units)

    def _ver_results(self, data: dict[str, Any], result: Any) -> None:
        ranges: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        for entry in result.findall(f"{_D}results/{_D}result"):
            types = _ref_types(entry)
            if "certissuer_range" in types:
                key, rows, names = (
                    "ranges",
                    ranges,
                    {
                        "certissuer_rangeMin": "lower",
                        "certissuer_rangeMax": "upper",
                        "certissuer_scaleInterval": "scale_interval",
                        "certissuer_mpe": "mpe",
                    },
                )
            elif "certissuer_check" in types:
                key, rows, names = (
                    "checks",
                    checks,
                    {
                        "basic_nominalValue": "nominal",
                        "basic_measurementError": "error",
                        "certissuer_mpe": "mpe",
                    },
                )
            else:
                self.doc._problem(
                    entry.sourceline,
                    None,
                    "a result that is neither a range (refType certissuer_range) nor a check "
                    "point (refType certissuer_check)",
                )
                continue
            if not rows:
                self._set(data, key, rows, entry)
            here = f"{key}[{len(rows)}]"
            out: dict[str, Any] = {}
            rows.append(out)
            self.doc.lines[here] = entry.sourceline
            found = self._list(entry, here)
            if found is None:
                continue
            data_list, quantities = found
            dsi_units = self._values(quantities, here, names, out)
            accuracy = quantities.get("certissuer_accuracyClass")
            if key == "ranges" and accuracy is not None:
                text = _content_text(accuracy.find(_D + "noQuantity"))
                self._set(out, f"{here}.accuracy_class", text or "", accuracy)
            self._unit(data_list, out, here, dsi_units)


# --- PDF -----------------------------------------------------------------------------------


def _ascii_name(number: str) -> str:
    folded = unicodedata.normalize("NFKD", number.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in folded if c.isascii() and (c.isalnum() or c in "-_.")) or "dcc"


def embed(pdf: bytes, xml: bytes, *, filename: str = "dcc.xml") -> bytes:
    """`pdf` with `xml` attached as its DCC, ready to be signed.

    The file goes into the EmbeddedFiles name tree and the catalog's ``/AF`` array with
    ``/AFRelationship /Source`` and MIME type ``application/xml`` (the PDF/A-3 way of saying
    "this document was made from that data"), as an incremental update. Embed before signing:
    the signature then covers the XML. Raises `DccError` for a PDF that cannot take it.
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError

    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
        version = writer.root.get("/Version")
        output_version = writer.output_version
        stream = EmbeddedFileObject.from_file_data(
            writer, xml, params=EmbeddedFileParams(), mime_type=MIME_TYPE
        )
        spec = FileSpec(
            file_spec_string=filename,
            file_name=filename,
            embedded_data=stream,
            description=f"Digital Calibration Certificate (PTB DCC {SCHEMA_VERSION})",
            af_relationship=generic.pdf_name("/Source"),
        )
        embed_file(writer, spec)
        # NOTE: embed_file raises the catalog /Version to 2.0 for /AF (and pyHanko would then
        # write XMP metadata); the certificate stays a PDF 1.7 document (see FIELD-NOTES).
        if version is None:
            del writer.root["/Version"]
        else:
            writer.root["/Version"] = version
        writer.output_version = output_version
        out = BytesIO()
        writer.write(out)  # type: ignore[no-untyped-call]  # untyped in pyHanko
    except (PdfError, ValueError, KeyError, NotImplementedError) as exc:
        raise DccError(f"cannot attach the DCC to the PDF: {exc}") from exc
    return out.getvalue()


def extract(pdf: bytes | PdfFileReader, *, max_bytes: int = MAX_XML_BYTES) -> bytes | None:
    """The DCC XML attached to `pdf` (bytes or a pyHanko reader), or None if there is none.

    Looks for the catalog's associated file with relationship ``/Source`` and MIME type
    ``application/xml``. Its size is bounded by `max_bytes` while decompressing. Raises
    `DccError` for a damaged attachment, several DCCs, or one larger than the limit.
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = (
            pdf if isinstance(pdf, PdfFileReader) else PdfFileReader(BytesIO(pdf), strict=False)
        )
        files = reader.root.get("/AF")
        found = []
        for ref in files.get_object() if files is not None else []:
            spec = ref.get_object()
            if not isinstance(spec, generic.DictionaryObject):
                continue
            if spec.get("/AFRelationship") != "/Source" or "/EF" not in spec:
                continue
            ef = spec["/EF"].get_object()
            stream = (ef.get("/UF") or ef["/F"]).get_object()
            if stream.get("/Subtype") == "/" + MIME_TYPE:
                found.append(stream)
        if not found:
            return None
        if len(found) > 1:
            raise DccError(f"the PDF carries {len(found)} DCC documents; expected one")
        return _bounded(found[0], max_bytes)
    except (PdfError, ValueError, KeyError, TypeError, AttributeError, zlib.error) as exc:
        raise DccError(f"the DCC attached to the PDF cannot be read: {exc}") from exc


def _bounded(stream: Any, max_bytes: int) -> bytes:
    """The decoded stream, never inflating more than `max_bytes` (a deflate bomb stops early)."""
    encoded: bytes = stream.encoded_data
    filters = stream.get("/Filter")
    if isinstance(filters, list) and len(filters) == 1:
        filters = filters[0]
    if filters is None:
        data = encoded
    elif filters == "/FlateDecode" and "/DecodeParms" not in stream:
        data = zlib.decompressobj().decompress(encoded, max_bytes + 1)
    else:
        if len(encoded) > max_bytes:
            raise DccError(f"the attached DCC is larger than {max_bytes} bytes")
        data = stream.data
    if len(data) > max_bytes:
        raise DccError(f"the attached DCC is larger than {max_bytes} bytes")
    return data


def check_embedded(reader: PdfFileReader, *, number: str, digest: str) -> tuple[bool, str] | None:
    """Does the DCC attached to a signed PDF carry the ledger's data? None when none is attached.

    `number` and `digest` are the ledger entry's number and data digest. Returns
    ``(True, reason)`` when the DCC's certificate has the same data digest and number, else
    ``(False, reason)`` saying what differs (a DCC that cannot be read differs too).
    """
    try:
        xml = extract(reader)
    except DccError as exc:
        return False, f"embedded DCC: {exc}"
    if xml is None:
        return None
    try:
        doc, cert = _read(xml, "embedded DCC", None)
    except (InputError, InputErrors) as exc:
        return False, f"embedded DCC cannot be read: {str(exc).splitlines()[-1]}"
    if doc.number != number:
        return False, f"embedded DCC names certificate {doc.number}, the ledger entry is {number}"
    if data_digest(cert) != digest:
        return False, "embedded DCC does not match the ledger's data digest"
    return True, "embedded DCC: matches the ledger's data"


# --- what the issuer and the CLI use -------------------------------------------------------


class DccWriter:
    """Builds, validates and embeds the DCC of each certificate; built once per `Issuer`."""

    def __init__(self, settings: Settings, schema: Schema) -> None:
        self.settings = settings
        self.schema = schema

    def __repr__(self) -> str:
        return f"DccWriter(schema={self.schema!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> DccWriter | None:
        """The writer `settings` ask for, or None when no DCC is to be embedded.

        ``[dcc] embed``: true embeds (and raises `ConfigError` without the schemas), false
        never embeds, unset embeds when the schemas are found (`find_schema_dir`).
        """
        if settings.dcc_embed is False:
            return None
        folder = find_schema_dir(settings, env)
        if folder is None:
            if settings.dcc_embed:
                raise ConfigError(
                    "[dcc] embed is true, but the DCC schemas were not found",
                    hint=_SCHEMA_HINT,
                )
            _logger.debug("no DCC schemas found: certificates get no DCC")
            return None
        return cls(settings, Schema.load(folder))

    def xml(self, cert: Cert, *, number: str) -> bytes:
        """The validated DCC document of `cert` issued as `number` (see `to_xml`)."""
        return to_xml(cert, number=number, settings=self.settings, schema=self.schema)

    def embed(self, pdf: bytes, cert: Cert, *, number: str) -> bytes:
        """`pdf` with the DCC of `cert` attached as ``NUMBER.dcc.xml`` (see `embed`)."""
        return embed(pdf, self.xml(cert, number=number), filename=f"{_ascii_name(number)}.dcc.xml")


def export_entry(entry: CertificateEntry, settings: Settings) -> bytes:
    """The DCC of an issued certificate, rebuilt from the data its ledger `entry` holds.

    The same lab profile as at issue gives the same bytes as the DCC inside the signed PDF
    (which `extract` returns as signed). Raises `ConfigError` without the schemas and
    `DccError` for a pending entry.
    """
    if entry.is_pending:
        raise DccError(f"{entry.number} is reserved but not issued yet: it has no DCC")
    folder = find_schema_dir(settings)
    if folder is None:
        raise ConfigError(
            "the DCC schemas were not found",
            hint=_SCHEMA_HINT,
        )
    cert = parse_certificate(entry.data())
    return to_xml(cert, number=entry.number, settings=settings, schema=Schema.load(folder))
