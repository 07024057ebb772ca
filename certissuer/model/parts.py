"""The parts of a certificate: parties, instruments, ranges, results, standards, signatories.

Each part is a frozen, validated pydantic model; measured values are `Decimal`, units are legal
units (`certissuer.model.units`), dates are ``YYYY-MM-DD`` and never timestamps.

>>> Party(name="Công ty TNHH ABC").address
''
"""

import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from certissuer.model.numbers import (
    P_T_TABLE,
    PrintedRow,
    check_typed_error,
    format_decimal,
    format_row,
    t_factor,
)
from certissuer.model.units import check_unit

__all__ = [
    "PASS_CONCLUSION",
    "CheckPoint",
    "Conditions",
    "Conformity",
    "Date",
    "FrozenModel",
    "Instrument",
    "Measurement",
    "MetrologicalRange",
    "OptText",
    "Party",
    "ReferenceStandard",
    "Replacement",
    "Signatory",
    "Text",
    "Unit",
    "VerificationMode",
    "check_after",
]


class VerificationMode(StrEnum):
    """Chế độ kiểm định / Verification mode."""

    INITIAL = "initial"
    PERIODIC = "periodic"
    AFTER_REPAIR = "after_repair"

    @property
    def words(self) -> tuple[str, str]:
        """The mode as the forms print it, in Vietnamese and English: ("Định kỳ", "Periodic")."""
        return _MODE_WORDS[self]


_MODE_WORDS = {
    VerificationMode.INITIAL: ("Ban đầu", "Initial"),
    VerificationMode.PERIODIC: ("Định kỳ", "Periodic"),
    VerificationMode.AFTER_REPAIR: ("Sau sửa chữa", "After repair"),
}

PASS_CONCLUSION = ("Đạt yêu cầu kỹ thuật đo lường", "Meets the metrological requirements")
"""The conclusion of a verification certificate (Mẫu 18.GCNKĐ), in Vietnamese and English."""


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


def check_after(info: ValidationInfo, value: date | None, earlier: str, *, strict: bool) -> None:
    """Raise `ValueError` when the date `value` is before the field `earlier` (or on the same
    day, when `strict`); nothing to say when either is missing."""
    other = info.data.get(earlier)
    if value is None or other is None:
        return  # the earlier field failed on its own, or nothing to compare
    if value < other or (strict and value == other):
        word = "after" if strict else "on or after"
        raise ValueError(f"expected a date {word} {earlier} {other}, got {value}")


class FrozenModel(BaseModel):
    """The base of every part: frozen, unknown fields refused, text stripped."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True
    )


class Party(FrozenModel):
    """A customer, owner or user of an instrument (name and address as they should print)."""

    name: Text
    address: OptText = ""


class Instrument(FrozenModel):
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


class MetrologicalRange(FrozenModel):
    """One measuring range and its metrological characteristics (an instrument may have several)."""

    lower: Decimal
    upper: Decimal
    unit: Unit
    scale_interval: Decimal | None = Field(default=None, gt=0)
    accuracy_class: OptText = ""
    mpe: Decimal | None = Field(default=None, gt=0)
    """Maximum permissible error, in `unit`."""

    _check_unit = field_validator("unit")(classmethod(lambda cls, v: check_unit(v)))

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


class CheckPoint(FrozenModel):
    """One verification check point: the error found against the maximum permissible error."""

    nominal: Decimal
    error: Decimal
    mpe: Decimal = Field(gt=0)
    unit: Unit

    _check_unit = field_validator("unit")(classmethod(lambda cls, v: check_unit(v)))

    @property
    def passes(self) -> bool:
        """True when |error| ≤ MPE."""
        return abs(self.error) <= self.mpe


class Measurement(FrozenModel):
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
    degrees_of_freedom: int | None = Field(default=None, ge=1)
    """ν_eff of the combined uncertainty (Welch–Satterthwaite, GUM G.4): with it and no stated
    probability, k must be t₉₅.₄₅(ν) of GUM Table G.2 and p is 95.45 %."""
    coverage_probability: Decimal | None = Field(default=None, gt=0, lt=1, validate_default=True)
    """p, as a fraction (0.9545 for 95.45 %): required unless k = 2, where it defaults to
    ≈ 0.95 (GUM 6.2.2; 0.95 with k = 2 is that default and is stored as absent), or unless
    `degrees_of_freedom` gives it."""
    unit: Unit
    stage: Literal["", "before", "after"] = ""
    """Before or after adjustment, where the item was adjusted."""
    resolution: Decimal | None = Field(default=None, gt=0)
    """The instrument's display step (0.01 for a display reading 10.00): the indicated value is
    printed no finer, and must be a reading the display can show."""

    _check_unit = field_validator("unit")(classmethod(lambda cls, v: check_unit(v)))

    @field_validator("error")
    @classmethod
    def _error_is_the_difference(
        cls, error: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        nominal, measured = info.data.get("nominal"), info.data.get("measured")
        if error is not None and nominal is not None and measured is not None:
            check_typed_error(measured, nominal, error)
        return error

    @field_validator("coverage_probability")
    @classmethod
    def _probability_stated(cls, p: Decimal | None, info: ValidationInfo) -> Decimal | None:
        k = info.data.get("coverage_factor")
        if k is None:
            return p  # k failed on its own
        nu = info.data.get("degrees_of_freedom")
        if nu is not None and p in (None, P_T_TABLE):  # 95.45 % is what ν gives: stored absent
            t = t_factor(nu)
            if k != t:
                raise ValueError(
                    f"expected k = {t} for {nu} degrees of freedom (t-distribution, 95.45 %, "
                    f"GUM Table G.2), got k = {format_decimal(k)}; or state the coverage "
                    f"probability"
                )
            return None
        if k == 2:
            return None if p == Decimal("0.95") else p
        if p is None:
            raise ValueError(
                f"expected the coverage probability for k = {format_decimal(k)}, as a fraction "
                f"(0.9973 for k = 3 and a normal distribution); only k = 2 defaults to ≈ 95 %"
            )
        return p

    @field_validator("resolution")
    @classmethod
    def _reading_on_the_display(cls, step: Decimal | None, info: ValidationInfo) -> Decimal | None:
        measured = info.data.get("measured")
        if step is not None and measured is not None and measured % step != 0:
            raise ValueError(
                f"expected an indicated value the display can show (a multiple of "
                f"{format_decimal(step)}), but measured is {format_decimal(measured)}"
            )
        return step

    @model_serializer(mode="wrap")
    def _absent_when_unset(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Records issued before these fields existed keep their canonical form and digest.
        data = handler(self)
        if isinstance(data, dict):
            for name in ("degrees_of_freedom", "coverage_probability", "resolution"):
                if data.get(name) is None:
                    data.pop(name, None)
        return data

    @property
    def probability(self) -> Decimal:
        """The coverage probability p: as stated; else 95.45 % with degrees of freedom (k was
        checked against GUM Table G.2); else 0.95 for k = 2."""
        if self.coverage_probability is not None:
            return self.coverage_probability
        return P_T_TABLE if self.degrees_of_freedom is not None else Decimal("0.95")

    @property
    def effective_error(self) -> Decimal | None:
        """The error as given, or measured − nominal when only the nominal value is given."""
        if self.error is not None:
            return self.error
        if self.nominal is not None:
            return self.measured - self.nominal
        return None

    def printed(self) -> PrintedRow:
        """The row as the certificate and the page print it: signed error, U's decimals, one
        prefix per row (ILAC-P14, GUM 7.2.6)."""
        return format_row(
            self.measured,
            self.uncertainty,
            self.unit,
            nominal=self.nominal,
            error=self.error,
            resolution=self.resolution,
        )


class ReferenceStandard(FrozenModel):
    """A reference standard used, with its own certificate (metrological traceability)."""

    name: Text
    serial: OptText = ""
    certificate_number: Text
    calibration_due: Date


class Conditions(FrozenModel):
    """Environmental conditions during the work."""

    temperature: Annotated[Decimal, Field(ge=-60, le=200)] | None = None
    """Air temperature in °C."""
    temperature_uncertainty: Decimal | None = Field(default=None, ge=0)
    humidity: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    """Relative humidity in %."""
    humidity_uncertainty: Decimal | None = Field(default=None, ge=0)


class Signatory(FrozenModel):
    """A person who performs, checks, verifies, approves or signs."""

    name: Text
    title: OptText = ""


class Conformity(FrozenModel):
    """A statement of conformity, only where the customer asked for one (ISO/IEC 17025 §7.8.6)."""

    statement: Text
    decision_rule: Text


class Replacement(FrozenModel):
    """What an amended certificate replaces, and why (ISO/IEC 17025 §7.8.8)."""

    number: Annotated[str, Field(min_length=1, max_length=60)]
    reason: Text
