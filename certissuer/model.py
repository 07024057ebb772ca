"""The certificate and its parts, as typed and validated values.

Two kinds of certificate exist, as Vietnamese labs issue them (Circular 24/2013/TT-BKHCN,
forms 18.GCNKĐ and 19.GCNHC; ISO/IEC 17025:2017 §7.8):

* `VerificationCertificate` (giấy chứng nhận kiểm định): legal metrology, pass only.
* `CalibrationCertificate` (giấy chứng nhận hiệu chuẩn): results with expanded uncertainty.

Measured values are `Decimal`, never float. `canonical_json` gives the one canonical form of the
data (sorted keys, Decimal as string) whose SHA-256 is the data digest recorded in the ledger and
carried by the QR token.

>>> from certissuer.model import parse_certificate, data_digest
>>> text = Path("samples/calibration.json").read_text()  # doctest: +SKIP
>>> cert = parse_certificate(json.loads(text, parse_float=Decimal))  # doctest: +SKIP
>>> len(data_digest(cert))  # doctest: +SKIP
64
"""

import hashlib
import json
import re
from datetime import date
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "CalibrationCertificate",
    "Certificate",
    "CheckPoint",
    "Conditions",
    "Conformity",
    "Instrument",
    "Kind",
    "Measurement",
    "MetrologicalRange",
    "Party",
    "ReferenceStandard",
    "Replacement",
    "Signatory",
    "VerificationCertificate",
    "VerificationMode",
    "canonical_json",
    "certificate_json_schema",
    "data_digest",
    "format_result",
    "is_legal_unit",
    "parse_certificate",
]


class Kind(StrEnum):
    """The two kinds of certificate."""

    VERIFICATION = "verification"
    CALIBRATION = "calibration"


class VerificationMode(StrEnum):
    """Chế độ kiểm định / Verification mode."""

    INITIAL = "initial"
    PERIODIC = "periodic"
    AFTER_REPAIR = "after_repair"


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


def _unit(value: str) -> str:
    value = value.strip()
    if not is_legal_unit(value):
        raise ValueError(
            f"expected a legal unit of measurement (for example kg, g, mm, L, °C, kPa, %), "
            f"got '{value}'"
        )
    return value


Unit = Annotated[str, Field(min_length=1, max_length=20)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
OptText = Annotated[str, Field(max_length=2000)]


def _iso_date(value: Any) -> Any:
    # Pydantic would read "0" or 86400 as a Unix timestamp: a certificate date is never that.
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        raise ValueError(f"expected a date YYYY-MM-DD, got '{value}'")
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise ValueError(f"expected a date YYYY-MM-DD, got '{value}'")
    return value


Date = Annotated[date, BeforeValidator(_iso_date)]
"""A calendar date given as ``YYYY-MM-DD`` (or a `date`), never a timestamp."""


def _after(info: ValidationInfo, value: date | None, earlier: str, *, strict: bool) -> None:
    other = info.data.get(earlier)
    if value is None or other is None:
        return  # the earlier field failed on its own, or nothing to compare
    if value < other or (strict and value == other):
        word = "after" if strict else "on or after"
        raise ValueError(f"expected a date {word} {earlier} {other}, got {value}")


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True
    )


class Party(_Frozen):
    """A customer, owner or user of an instrument (name and address as they should print)."""

    name: Text
    address: OptText = ""


class Instrument(_Frozen):
    """The measuring instrument or item (Tên phương tiện đo / Đối tượng hiệu chuẩn)."""

    name: Text
    model: OptText = ""
    """Kiểu / Type or model."""
    serial: Text
    """The maker's serial number, or the number the verifier marked on it."""
    manufacturer: OptText = ""
    """Maker and country, as printed: "Mettler Toledo (Thụy Sĩ / Switzerland)"."""
    year: int | None = Field(default=None, ge=1850, le=2100)
    condition: OptText = ""
    """Condition on receipt (calibration, ISO/IEC 17025 §7.8.2.1 f)."""


class MetrologicalRange(_Frozen):
    """One measuring range and its metrological characteristics (an instrument may have several)."""

    lower: Decimal
    upper: Decimal
    unit: Unit
    scale_interval: Decimal | None = Field(default=None, gt=0)
    accuracy_class: OptText = ""
    mpe: Decimal | None = Field(default=None, gt=0)
    """Maximum permissible error, in `unit`."""

    _check_unit = field_validator("unit")(classmethod(lambda cls, v: _unit(v)))

    @field_validator("upper")
    @classmethod
    def _upper_above_lower(cls, upper: Decimal, info: ValidationInfo) -> Decimal:
        lower = info.data.get("lower")
        if lower is not None and upper <= lower:
            raise ValueError(f"expected a value above lower ({lower}), got {upper}")
        return upper

    @model_validator(mode="after")
    def _range_ok(self) -> "MetrologicalRange":
        if not self.accuracy_class and self.mpe is None:
            raise ValueError("expected an accuracy class or a maximum permissible error (mpe)")
        return self


class CheckPoint(_Frozen):
    """One verification check point: the error found against the maximum permissible error."""

    nominal: Decimal
    error: Decimal
    mpe: Decimal = Field(gt=0)
    unit: Unit

    _check_unit = field_validator("unit")(classmethod(lambda cls, v: _unit(v)))

    @property
    def passes(self) -> bool:
        """True when |error| ≤ MPE."""
        return abs(self.error) <= self.mpe


class Measurement(_Frozen):
    """One calibration result point."""

    quantity: OptText = ""
    nominal: Decimal | None = None
    """Giá trị danh định / Nominal value (the reference value)."""
    measured: Decimal
    """Giá trị chỉ thị / Indicated value."""
    error: Decimal | None = None
    """Measured minus nominal; computed when absent and a nominal value is given."""
    uncertainty: Decimal = Field(gt=0)
    """Expanded uncertainty U, in the unit of `measured`."""
    coverage_factor: Decimal = Field(default=Decimal(2), gt=0)
    """k, so that U = k·u_c (usually 2, about 95 % coverage)."""
    unit: Unit
    stage: Literal["", "before", "after"] = ""
    """Before or after adjustment, where the item was adjusted."""

    _check_unit = field_validator("unit")(classmethod(lambda cls, v: _unit(v)))

    @property
    def effective_error(self) -> Decimal | None:
        """The error as given, or measured − nominal when only the nominal value is given."""
        if self.error is not None:
            return self.error
        if self.nominal is not None:
            return self.measured - self.nominal
        return None


class ReferenceStandard(_Frozen):
    """A reference standard used, with its own certificate (metrological traceability)."""

    name: Text
    serial: OptText = ""
    certificate_number: Text
    calibration_due: Date


class Conditions(_Frozen):
    """Environmental conditions during the work."""

    temperature: Annotated[Decimal, Field(ge=-60, le=200)] | None = None
    """Air temperature in °C."""
    temperature_uncertainty: Decimal | None = Field(default=None, ge=0)
    humidity: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    """Relative humidity in %."""
    humidity_uncertainty: Decimal | None = Field(default=None, ge=0)


class Signatory(_Frozen):
    """A person who performs, checks, verifies, approves or signs."""

    name: Text
    title: OptText = ""


class Conformity(_Frozen):
    """A statement of conformity, only where the customer asked for one (ISO/IEC 17025 §7.8.6)."""

    statement: Text
    decision_rule: Text


class Replacement(_Frozen):
    """What an amended certificate replaces, and why (ISO/IEC 17025 §7.8.8)."""

    number: Annotated[str, Field(min_length=1, max_length=60)]
    reason: Text


class _Common(_Frozen):
    ref: Annotated[str, Field(min_length=1, max_length=100)]
    """The lab's own reference for this record; issuing the same ref again is refused."""
    replaces: Replacement | None = None
    """Set by `certissuer amend`: the certificate this one replaces and why."""
    language_note: OptText = ""


class VerificationCertificate(_Common):
    """Giấy chứng nhận kiểm định / Certificate of verification (Mẫu 18.GCNKĐ)."""

    kind: Literal[Kind.VERIFICATION] = Kind.VERIFICATION
    instrument: Instrument
    ranges: list[MetrologicalRange] = Field(min_length=1)
    owner: Party
    place_of_use: Text
    method: Text
    """Procedure: ĐLVN number and title."""
    mode: VerificationMode
    verification_date: Date
    checks: list[CheckPoint] = Field(min_length=1)
    stamp_number: OptText = ""
    """Series and number of the verification stamp; empty when none is used."""
    valid_until: Date | None = None
    """Last valid day. Leave it out to have it computed from the register's cycle table
    (verification date + cycle − 1 day); a given value is checked against the table."""
    verifier: Signatory
    head: Signatory

    @property
    def passes(self) -> bool:
        """True when every check point is within its maximum permissible error."""
        return all(c.passes for c in self.checks)

    @field_validator("valid_until")
    @classmethod
    def _valid_after_verification(cls, value: date, info: ValidationInfo) -> date:
        _after(info, value, "verification_date", strict=True)
        return value


class CalibrationCertificate(_Common):
    """Giấy chứng nhận hiệu chuẩn / Calibration certificate (Mẫu 19.GCNHC, ISO/IEC 17025 §7.8)."""

    kind: Literal[Kind.CALIBRATION] = Kind.CALIBRATION
    item: Instrument
    customer: Party
    place_of_calibration: Text
    method: Text
    received: Date
    calibrated: Date
    results: list[Measurement] = Field(min_length=1)
    standards: list[ReferenceStandard] = Field(min_length=1)
    conditions: Conditions = Conditions()
    deviations: OptText = ""
    """Deviations from, additions to or exclusions from the method."""
    performed_by: Signatory
    checked_by: Signatory | None = None
    signatory: Signatory
    conformity: Conformity | None = None
    valid_until: Date | None = None
    """Only where agreed with the customer (§7.8.4.3)."""

    @property
    def adjusted(self) -> bool:
        """True when results are given before and after adjustment."""
        return any(m.stage for m in self.results)

    @field_validator("calibrated")
    @classmethod
    def _calibrated_after_receipt(cls, value: date, info: ValidationInfo) -> date:
        _after(info, value, "received", strict=False)
        return value

    @field_validator("valid_until")
    @classmethod
    def _valid_after_calibration(cls, value: date | None, info: ValidationInfo) -> date | None:
        _after(info, value, "calibrated", strict=True)
        return value


Certificate = Annotated[
    VerificationCertificate | CalibrationCertificate, Field(discriminator="kind")
]
"""Either kind of certificate, told apart by its ``kind`` field."""

_ADAPTER: TypeAdapter[VerificationCertificate | CalibrationCertificate] = TypeAdapter(Certificate)


def parse_certificate(data: Any) -> VerificationCertificate | CalibrationCertificate:
    """Validate `data` (a mapping as read from JSON) into a certificate.

    Raises `pydantic.ValidationError`; `certissuer.intake` turns it into `InputError`s that name
    the file, row and field.
    """
    return _ADAPTER.validate_python(data)


def certificate_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of one certificate record (either kind)."""
    return _ADAPTER.json_schema()


def canonical_json(cert: BaseModel) -> bytes:
    """The canonical JSON form: sorted keys, no spaces, UTF-8, Decimal and dates as strings."""
    data = cert.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def data_digest(cert: BaseModel) -> str:
    """SHA-256 (hex) of `canonical_json(cert)`."""
    return hashlib.sha256(canonical_json(cert)).hexdigest()


_TWO = Decimal(2)


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
