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
from typing import Annotated, Any, Final, Literal

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
from certissuer.model.units import check_unit, normalise_unit

__all__ = [
    "PASS_CONCLUSION",
    "RELATIVE_MPE_UNITS",
    "STORED",
    "CheckPoint",
    "Conditions",
    "Conformity",
    "Date",
    "ExtraColumn",
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
    "Verdict",
    "VerificationMode",
    "check_after",
    "check_mpe_unit",
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


RELATIVE_MPE_UNITS = {
    "% of reading": ("% giá trị đo", "% of reading"),
    "% of volume": ("% thể tích", "% of volume"),
}
"""MPE units relative to the check point's reference value, with their printed words (vi, en):
a rate of 0.5 "% of volume" permits ±0.1 L at a check of 20 L."""


def check_mpe_unit(value: str) -> str:
    """`value` stripped when it is a relative MPE unit ("% of reading", "% of volume") or a
    legal unit; raises `ValueError` (for pydantic) if not. Empty means "the range's unit"."""
    value = value.strip()
    if not value or value in RELATIVE_MPE_UNITS:
        return value
    try:
        return check_unit(value)
    except ValueError:
        raise ValueError(
            f"expected a legal unit or one of {', '.join(map(repr, RELATIVE_MPE_UNITS))}, "
            f"got '{value}'"
        ) from None


class Verdict(StrEnum):
    """What a check point's error says about the instrument under the decision rule."""

    PASS = "pass"
    FAIL = "fail"
    INDETERMINATE = "indeterminate"
    """The error lies in the guard band: the check cannot tell pass from fail (ILAC-G8)."""

    @property
    def words(self) -> tuple[str, str]:
        """The verdict as printed, in Vietnamese and English."""
        return _VERDICT_WORDS[self]


_VERDICT_WORDS = {
    Verdict.PASS: ("Đạt", "Pass"),
    Verdict.FAIL: ("Không đạt", "Fail"),
    Verdict.INDETERMINATE: ("Không xác định được", "Indeterminate"),
}


class MetrologicalRange(FrozenModel):
    """One measuring range and its metrological characteristics (an instrument may have several)."""

    lower: Decimal
    upper: Decimal
    unit: Unit
    scale_interval: Decimal | None = Field(default=None, gt=0)
    scale_interval_unit: Annotated[str, Field(max_length=20)] = ""
    """The unit of `scale_interval` when it is not `unit` (a dispenser measuring flow in L/min
    shows volume in L); empty: `unit`."""
    accuracy_class: OptText = ""
    mpe: Decimal | None = Field(default=None, gt=0)
    """Maximum permissible error, in `mpe_unit`."""
    mpe_unit: Annotated[str, Field(max_length=20)] = ""
    """The unit of `mpe`: a legal unit, "% of reading" or "% of volume"; empty: `unit`."""

    _check_unit = field_validator("unit")(classmethod(lambda cls, v, i: check_unit(_unit(v, i))))
    _check_si_unit = field_validator("scale_interval_unit")(
        classmethod(lambda cls, v, i: check_unit(_unit(v, i)) if v.strip() else "")
    )
    _check_mpe_unit = field_validator("mpe_unit")(
        classmethod(lambda cls, v, i: check_mpe_unit(_unit(v, i)))
    )

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
        if self.mpe_unit and self.mpe is None:
            raise ValueError("mpe_unit is given without an mpe")
        if self.scale_interval_unit and self.scale_interval is None:
            raise ValueError("scale_interval_unit is given without a scale_interval")
        return self

    @property
    def scale_interval_symbol(self) -> str:
        """The unit `scale_interval` is printed in."""
        return self.scale_interval_unit or self.unit

    @property
    def mpe_symbol(self) -> str:
        """The unit `mpe` is printed in: a legal unit or a relative unit ("% of volume")."""
        return self.mpe_unit or self.unit


class CheckPoint(FrozenModel):
    """One verification check point: the error found against the maximum permissible error.

    The one home of the pass/fail logic (`verdict`): without an `uncertainty`, simple
    acceptance (|error| ≤ MPE, the procedure's rule); with one, guarded acceptance per
    ILAC-G8:09/2019 §4.2.3 with the guard band w = U: pass when |error| ≤ MPE − U, fail when
    |error| > MPE + U, indeterminate in between.

    >>> CheckPoint(nominal="20", error="0.06", mpe="0.5", mpe_unit="% of volume",
    ...            unit="L").permitted_error
    Decimal('0.100')
    """

    nominal: Decimal
    """The reference value of the check (what the standard delivered or indicated)."""
    error: Decimal
    mpe: Decimal = Field(gt=0)
    """The maximum permissible error at this check, in `mpe_unit`."""
    unit: Unit
    mpe_unit: Annotated[str, Field(max_length=20)] = ""
    """`unit` (empty means the same), "% of reading" or "% of volume": a relative MPE permits
    `mpe` % of the check's reference value `nominal`."""
    uncertainty: Decimal | None = Field(default=None, gt=0)
    """The expanded uncertainty U of the check, in `unit`; given, the decision is guarded."""

    _check_unit = field_validator("unit")(classmethod(lambda cls, v, i: check_unit(_unit(v, i))))
    _check_mpe_unit = field_validator("mpe_unit")(
        classmethod(lambda cls, v, i: check_mpe_unit(_unit(v, i)))
    )

    @model_validator(mode="after")
    def _mpe_unit_known(self) -> "CheckPoint":
        if self.mpe_unit and self.mpe_unit != self.unit and not self.relative:
            raise ValueError(
                f"expected mpe_unit '{self.unit}' (the check's unit), "
                f"{' or '.join(map(repr, RELATIVE_MPE_UNITS))}, got '{self.mpe_unit}'"
            )
        if self.relative and self.nominal == 0:
            raise ValueError("a relative MPE needs a non-zero nominal value to apply to")
        return self

    @property
    def relative(self) -> bool:
        """True when `mpe` is a rate of the reference value ("% of volume")."""
        return self.mpe_unit in RELATIVE_MPE_UNITS

    @property
    def mpe_symbol(self) -> str:
        """The unit `mpe` is given in."""
        return self.mpe_unit or self.unit

    @property
    def permitted_error(self) -> Decimal:
        """The MPE at this check in `unit`: `mpe` itself, or `mpe` % of |nominal|."""
        if self.relative:
            return self.mpe * abs(self.nominal) / 100
        return self.mpe

    @property
    def test_uncertainty_ratio(self) -> Decimal | None:
        """TUR = MPE / U (ILAC-G8:09/2019), to one decimal; None without an uncertainty."""
        if self.uncertainty is None:
            return None
        return (self.permitted_error / self.uncertainty).quantize(Decimal("0.1"))

    @property
    def verdict(self) -> Verdict:
        """Pass, fail or indeterminate under the decision rule (see the class docstring)."""
        size, mpe = abs(self.error), self.permitted_error
        if self.uncertainty is None:
            return Verdict.PASS if size <= mpe else Verdict.FAIL
        if size <= mpe - self.uncertainty:
            return Verdict.PASS
        return Verdict.FAIL if size > mpe + self.uncertainty else Verdict.INDETERMINATE

    @property
    def passes(self) -> bool:
        """True when the verdict is pass (|error| ≤ MPE, or ≤ MPE − U when U is given)."""
        return self.verdict is Verdict.PASS

    @property
    def finding(self) -> str:
        """The check's result in one line, as a refusal names it."""
        limit = f"MPE {self.mpe} {self.unit}"
        if self.relative:
            limit = (
                f"MPE {self.permitted_error.normalize():f} {self.unit} ({self.mpe} {self.mpe_unit})"
            )
        text = f"{self.nominal} {self.unit}: error {self.error} {self.unit}"
        if self.uncertainty is None:
            word = "within" if self.passes else "exceeds"
            return f"{text} {word} {limit}"
        return f"{text}, U {self.uncertainty} {self.unit}, {limit}: {self.verdict.value}"


STORED: Final = "stored"
"""The validation context key (``{STORED: True}``) of a record read back after it was issued,
from the ledger or a signed PDF (`certissuer.model.parse_certificate`)."""


def _stored(info: ValidationInfo) -> bool:
    return bool(isinstance(info.context, dict) and info.context.get(STORED))


def _unit(value: str, info: ValidationInfo) -> str:
    """A unit as read: new input normalised (`normalise_unit`), a stored record as issued."""
    return value if _stored(info) else normalise_unit(value)


ExtraName = Annotated[str, Field(min_length=1, max_length=200)]
"""The name of an extra quantity of a result row, with its unit: "Gas temperature (°C)"."""


class ExtraColumn(FrozenModel):
    """An extra column of the results table: a quantity given once per result row that the
    nominal, indicated, error and uncertainty columns cannot hold (issue 21), such as the gas
    temperature at each point of a humidity calibration."""

    name: ExtraName
    """The key of the column's values in `Measurement.extra`: the name with its unit."""
    vi: Annotated[str, Field(max_length=200)] = ""
    """The Vietnamese heading, where the source gives one; else `name` heads the column."""
    en: Annotated[str, Field(max_length=200)] = ""
    """The English heading, printed under the Vietnamese one."""


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
    extra: dict[ExtraName, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=dict, max_length=12
    )
    """Further quantities of this row, printed as they are: name with unit → value text (the
    certificate's `extra_columns` give their headings). Absent from the canonical form when
    empty, so the digests of earlier records are unchanged."""

    _check_unit = field_validator("unit")(classmethod(lambda cls, v, i: check_unit(_unit(v, i))))

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
        if p is None and _stored(info):
            # Issued before p was asked for (issue 16): read as issued; `probability` is None
            # and the statement names k alone, claiming no probability it never stated.
            return None
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
            if not data.get("extra"):
                data.pop("extra", None)
            for name in ("degrees_of_freedom", "coverage_probability", "resolution"):
                if data.get(name) is None:
                    data.pop(name, None)
        return data

    @property
    def probability(self) -> Decimal | None:
        """The coverage probability p: as stated; else 95.45 % with degrees of freedom (k was
        checked against GUM Table G.2); else 0.95 for k = 2; else None, for a result with
        another k stored before a probability was required (read with `STORED`)."""
        if self.coverage_probability is not None:
            return self.coverage_probability
        if self.degrees_of_freedom is not None:
            return P_T_TABLE
        return Decimal("0.95") if self.coverage_factor == 2 else None

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
    traceable_to: Literal["national", "si"] | None = None
    """What the standard's own calibration traces to: "national" (chuẩn quốc gia của Việt
    Nam / the national standards of Vietnam) or "si" (the SI through another national
    metrology institute or an accredited laboratory, named in `calibrated_by`). Unset: the
    certificate claims neither and says only that the results trace through the standards."""
    calibrated_by: OptText = ""
    """The laboratory or national metrology institute that calibrated the standard."""


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
    """A statement of conformity, only where the customer asked for one (ISO/IEC 17025 §7.8.6).

    With a specification (`mpe`), the conformity is computed from the results, not typed:
    `decision_rule` is then "simple" (|error| ≤ MPE) or "guarded" (ILAC-G8:09/2019 §4.2.3,
    w = U), and `statement` names what the item is compared with; a statement that claims the
    opposite of the computed verdict is refused. Without `mpe`, both are free text as typed.
    """

    statement: OptText = ""
    decision_rule: Text
    mpe: Decimal | None = Field(default=None, gt=0)
    """The specification: the largest |error| permitted at every result, in `mpe_unit`."""
    mpe_unit: Annotated[str, Field(max_length=20)] = ""
    """The results' unit (empty), or "% of reading" (a rate of each result's nominal value)."""

    _check_mpe_unit = field_validator("mpe_unit")(
        classmethod(lambda cls, v, i: check_mpe_unit(_unit(v, i)))
    )

    @model_validator(mode="after")
    def _rule_named(self) -> "Conformity":
        if self.mpe is None:
            if not self.statement:
                raise ValueError("expected a statement, or an mpe to compute it from")
            if self.mpe_unit:
                raise ValueError("mpe_unit is given without an mpe")
        elif self.decision_rule not in ("simple", "guarded"):
            raise ValueError(
                f"expected decision_rule 'simple' or 'guarded' with an mpe, "
                f"got '{self.decision_rule}'"
            )
        return self

    def judge(self, error: Decimal, nominal: Decimal | None, u: Decimal, unit: str) -> Verdict:
        """The verdict on one result under this specification and decision rule."""
        assert self.mpe is not None
        check = CheckPoint(
            nominal=nominal if nominal is not None else Decimal(0),
            error=error,
            mpe=self.mpe,
            mpe_unit=self.mpe_unit,
            unit=unit,
            uncertainty=u if self.decision_rule == "guarded" else None,
        )
        return check.verdict

    @property
    def claim(self) -> Verdict | None:
        """What the typed `statement` claims: fail ("không phù hợp", "does not conform"), pass
        ("phù hợp", "conforms", "complies"), or None when it only names a specification."""
        text = self.statement.casefold()
        if any(w in text for w in ("không phù hợp", "not conform", "not comply", "non-conform")):
            return Verdict.FAIL
        if any(w in text for w in ("phù hợp", "conform", "compl")):
            return Verdict.PASS
        return None


class Replacement(FrozenModel):
    """What an amended certificate replaces, and why (ISO/IEC 17025 §7.8.8)."""

    number: Annotated[str, Field(min_length=1, max_length=60)]
    reason: Text
