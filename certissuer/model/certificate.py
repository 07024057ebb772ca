"""The certificates and the testing report, parsed from data; their canonical form and digest.

`canonical_json` gives the one canonical form of the data (sorted keys, Decimal as string) whose
SHA-256 is the data digest recorded in the ledger and carried by the QR token.

>>> cert = parse_certificate(json.loads(text, parse_float=Decimal))  # doctest: +SKIP
>>> len(data_digest(cert))  # doctest: +SKIP
64
"""

import hashlib
import json
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from certissuer.model.kinds import Kind
from certissuer.model.parts import (
    STORED,
    CheckPoint,
    Conditions,
    Conformity,
    Date,
    ExtraColumn,
    FrozenModel,
    Instrument,
    Measurement,
    MetrologicalRange,
    OptText,
    Party,
    ReferenceStandard,
    Replacement,
    Signatory,
    Text,
    Verdict,
    VerificationMode,
    check_after,
)
from certissuer.model.testing import (
    DECISION_RULES,
    OVERALL_WORDS,
    DecisionRule,
    RowConformity,
    RowProblem,
    TestResult,
)

__all__ = [
    "CONFORMITY_RULES",
    "CONFORMITY_WORDS",
    "CUSTOMER_FIELDS",
    "GUARDED_ACCEPTANCE",
    "SIMPLE_ACCEPTANCE",
    "TESTING_STATEMENT",
    "AnyCertificate",
    "CalibrationCertificate",
    "Certificate",
    "TestingReport",
    "VerificationCertificate",
    "canonical_json",
    "certificate_json_schema",
    "data_digest",
    "field_path",
    "parse_certificate",
]


class _Common(FrozenModel):
    ref: Annotated[str, Field(min_length=1, max_length=100)]
    """The lab's own reference for this record; issuing the same ref again is refused."""
    replaces: Replacement | None = None
    """Set by `certissuer amend`: the certificate this one replaces and why."""
    language_note: OptText = ""


SIMPLE_ACCEPTANCE = (
    "Chấp nhận đơn giản theo quy trình kiểm định: đạt khi |sai số| ≤ MPE tại mọi điểm kiểm tra; "
    "độ không đảm bảo đo của phép kiểm tra không được tính đến.",
    "Simple acceptance per the verification procedure: pass when |error| ≤ MPE at every check "
    "point; the measurement uncertainty of the check is not taken into account.",
)
"""The decision rule of a verification whose checks carry no uncertainty (vi, en)."""

GUARDED_ACCEPTANCE = (
    "Chấp nhận có dải bảo vệ theo ILAC-G8:09/2019 (w = U): đạt khi |sai số| ≤ MPE − U; "
    "không xác định được khi MPE − U < |sai số| ≤ MPE + U; không đạt khi |sai số| > MPE + U. "
    "Tỷ số độ không đảm bảo đo của phép thử TUR = MPE/U, nhỏ nhất: {tur}.",
    "Guarded acceptance per ILAC-G8:09/2019 (w = U): pass when |error| ≤ MPE − U; "
    "indeterminate when MPE − U < |error| ≤ MPE + U; fail when |error| > MPE + U. "
    "Test uncertainty ratio TUR = MPE/U, lowest: {tur}.",
)
"""The decision rule of a verification whose checks carry their uncertainty U (vi, en), with
the lowest test uncertainty ratio of the checks in place of ``{tur}``."""


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
        """True when every check point passes under the decision rule (`CheckPoint.verdict`)."""
        return all(c.passes for c in self.checks)

    @property
    def verdict(self) -> Verdict:
        """Fail when a check fails, else indeterminate when one is, else pass."""
        verdicts = {c.verdict for c in self.checks}
        for worst in (Verdict.FAIL, Verdict.INDETERMINATE):
            if worst in verdicts:
                return worst
        return Verdict.PASS

    @property
    def lowest_tur(self) -> Decimal | None:
        """The lowest test uncertainty ratio of the checks; None when they carry no U."""
        ratios = [t for c in self.checks if (t := c.test_uncertainty_ratio) is not None]
        return min(ratios) if ratios else None

    @property
    def decision_rule(self) -> tuple[str, str]:
        """The decision rule as printed on the certificate, in Vietnamese and English."""
        tur = self.lowest_tur
        if tur is None:
            return SIMPLE_ACCEPTANCE
        vi, en = GUARDED_ACCEPTANCE
        return vi.format(tur=f"{tur:f}".replace(".", ",")), en.format(tur=f"{tur:f}")

    @field_validator("checks")
    @classmethod
    def _one_rule(cls, checks: list[CheckPoint]) -> list[CheckPoint]:
        # One decision rule per certificate: every check carries its U, or none does.
        given = [c.uncertainty is not None for c in checks]
        if any(given) and not all(given):
            missing = ", ".join(f"checks[{i}]" for i, g in enumerate(given) if not g)
            raise ValueError(
                f"expected an uncertainty on every check point or on none (one decision rule "
                f"per certificate); missing on {missing}"
            )
        return checks

    @field_validator("valid_until")
    @classmethod
    def _valid_after_verification(cls, value: date, info: ValidationInfo) -> date:
        check_after(info, value, "verification_date", strict=True)
        return value


CONFORMITY_WORDS = {
    Verdict.PASS: ("Phù hợp", "Conforms"),
    Verdict.FAIL: ("Không phù hợp", "Does not conform"),
    Verdict.INDETERMINATE: ("Không xác định được", "Indeterminate"),
}
"""A computed statement of conformity as printed (vi, en)."""

CONFORMITY_RULES = {
    "simple": (
        "Chấp nhận đơn giản theo ILAC-G8:09/2019 §4.2.1 (w = 0): phù hợp khi |sai số| ≤ MPE tại "
        "mọi điểm đo; độ không đảm bảo đo không được tính đến.",
        "Simple acceptance per ILAC-G8:09/2019 §4.2.1 (w = 0): conforms when |error| ≤ MPE at "
        "every point; the measurement uncertainty is not taken into account.",
    ),
    "guarded": (
        "Chấp nhận có dải bảo vệ theo ILAC-G8:09/2019 §4.2.3 (w = U): phù hợp khi |sai số| ≤ "
        "MPE − U; không phù hợp khi |sai số| > MPE + U; không xác định được khi ở giữa.",
        "Guarded acceptance per ILAC-G8:09/2019 §4.2.3 (w = U): conforms when |error| ≤ MPE − U; "
        "does not conform when |error| > MPE + U; indeterminate in between.",
    ),
}
"""The decision rules a computed statement of conformity names (vi, en)."""


CustomerField = Literal[
    "item.name",
    "item.model",
    "item.serial",
    "item.manufacturer",
    "item.year",
    "customer.name",
    "customer.address",
    "place_of_calibration",
]
"""A field a calibration certificate may mark as supplied by the customer."""
CUSTOMER_FIELDS: tuple[str, ...] = get_args(CustomerField)


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
    external_provider: OptText = ""
    """The external provider whose results these are (ISO/IEC 17025 §7.8.2.1 p): every result
    row is marked and a footnote names the provider."""
    customer_supplied: list[CustomerField] = Field(default_factory=list)
    """Fields whose values the customer supplied (§7.8.2.2), from `CUSTOMER_FIELDS`: they are
    marked with an asterisk and the lab's disclaimer is printed."""
    source_notes: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=200
    )
    """Further data of a DCC read from elsewhere that the fields above cannot hold (the
    performance date range, condition ranges, quantities other than nominal, indicated, error
    and uncertainty), one line each, printed as they are (issue 21). Absent from the canonical
    form when empty, so the digests of earlier records are unchanged."""
    extra_columns: list[ExtraColumn] = Field(default_factory=list, max_length=12)
    """The headings of the results' extra quantities (`Measurement.extra`), in the order they
    print; a quantity a row names and this list does not is headed by its name. Absent from the
    canonical form when empty."""

    _ABSENT_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("source_notes", "extra_columns")

    @model_serializer(mode="wrap")
    def _notes_absent_when_empty(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self._ABSENT_WHEN_EMPTY:
                if not data.get(name):
                    data.pop(name, None)
        return data

    @field_validator("extra_columns")
    @classmethod
    def _columns_named_once(cls, columns: list[ExtraColumn]) -> list[ExtraColumn]:
        names = [c.name for c in columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"expected each extra column once, got twice: {', '.join(twice)}")
        return columns

    @property
    def extra_headings(self) -> list[ExtraColumn]:
        """Every extra column the results print (`Measurement.extra`), in order: the declared
        `extra_columns`, then names only rows give, headed by the name itself."""
        columns = list(self.extra_columns)
        known = {c.name for c in columns}
        for m in self.results:
            for name in m.extra:
                if name not in known:
                    known.add(name)
                    columns.append(ExtraColumn(name=name))
        return columns

    @property
    def conformity_verdict(self) -> Verdict | None:
        """The conformity computed from the results (the worst point decides); None without
        a specification (`Conformity.mpe`). Results after adjustment are judged, where given."""
        spec = self.conformity
        if spec is None or spec.mpe is None:
            return None
        judged = [m for m in self.results if m.stage == "after"] or [
            m for m in self.results if m.stage != "before"
        ]
        verdicts = set()
        for m in judged:
            error = m.effective_error
            assert error is not None  # checked by _conformity_computed
            verdicts.add(spec.judge(error, m.nominal, m.uncertainty, m.unit))
        for worst in (Verdict.FAIL, Verdict.INDETERMINATE):
            if worst in verdicts:
                return worst
        return Verdict.PASS

    @model_validator(mode="after")
    def _conformity_computed(self) -> "CalibrationCertificate":
        spec = self.conformity
        if spec is None or spec.mpe is None:
            return self
        for i, m in enumerate(self.results):
            if m.effective_error is None:
                raise ValueError(
                    f"conformity: results[{i}] has no error (give its nominal value) to judge "
                    "against the mpe"
                )
        computed = self.conformity_verdict
        claim = spec.claim
        if claim is not None and computed is not None and claim is not computed:
            raise ValueError(
                f"conformity.statement claims '{CONFORMITY_WORDS[claim][1].lower()}', but the "
                f"results give '{CONFORMITY_WORDS[computed][1].lower()}' under the "
                f"{spec.decision_rule} decision rule with MPE {spec.mpe} {spec.mpe_unit}".rstrip()
            )
        return self

    @property
    def adjusted(self) -> bool:
        """True when results are given before and after adjustment."""
        return any(m.stage for m in self.results)

    @field_validator("calibrated")
    @classmethod
    def _calibrated_after_receipt(cls, value: date, info: ValidationInfo) -> date:
        check_after(info, value, "received", strict=False)
        return value

    @field_validator("valid_until")
    @classmethod
    def _valid_after_calibration(cls, value: date | None, info: ValidationInfo) -> date | None:
        check_after(info, value, "calibrated", strict=True)
        return value


TESTING_STATEMENT = (
    "Kết quả thử nghiệm chỉ có giá trị đối với mẫu thử nghiệm.",
    "The results relate only to the items tested.",
)
"""The statement every testing report prints (ISO/IEC 17025 §7.8.2.1 n), (vi, en)."""


class TestingReport(CalibrationCertificate):
    """Phiếu kết quả thử nghiệm / Test report (ISO/IEC 17025 §7.8.2, §7.8.3, §7.8.6; issue 22).

    A testing report shares the calibration certificate's fields, read for a test: `item` is
    the sample (mẫu thử) as received (its `serial` the sample's ID), `customer` who asked for
    the test, `received` the date the sample was received, `calibrated` the (last) date of
    testing (`tested_from` the first, when testing took several days), `place_of_calibration`
    where the tests were done, `method` the report's test method, `standards` the measuring
    equipment used, and `signatory` the person who authorises the report (one signature, over
    that name). The numbers come from their own series (``[numbering] testing``, "TN").

    The results are `tests`, one `TestResult` per test parameter with its requirement and a
    conformity computed under `decision_rule`; a report issued before these rows existed
    carries calibration-shaped `results` instead and still reads, prints and verifies as it
    was (the new fields are absent from the canonical form when empty).
    """

    __test__ = False  # a model, not a pytest test class

    kind: Literal[Kind.TESTING] = Kind.TESTING  # type: ignore[assignment]  # the kind tag differs
    results: list[Measurement] = Field(default_factory=list)
    tests: list[TestResult] = Field(default_factory=list, max_length=500)
    """The test results, one row per parameter (with `results` empty)."""
    decision_rule: DecisionRule | None = None
    """How conformity is decided (§7.8.6.1): "simple" or "guarded" (w = U); needed when a row
    states a numeric limit."""
    tested_from: Date | None = None
    """The first day of testing, when it is not the last (`calibrated`)."""
    sampling: Literal["lab", "customer"] | None = None
    """Who took the sample (§7.8.2.2, §7.8.5): the lab, or the customer (then the results
    apply to the sample as received)."""
    sampling_note: OptText = ""
    """The sampling plan or method, place and date, where the lab sampled (§7.8.5)."""

    _ABSENT_WHEN_EMPTY: ClassVar[tuple[str, ...]] = (
        "source_notes",
        "extra_columns",
        "results",
        "tests",
        "decision_rule",
        "tested_from",
        "sampling",
        "sampling_note",
    )

    @model_validator(mode="after")
    def _rows_judged(self) -> "TestingReport":
        if not self.results and not self.tests:
            raise ValueError("expected test results: give 'tests' (one row per test parameter)")
        if self.results and self.tests:
            raise ValueError(
                "expected either 'tests' (test parameters) or 'results' (calibration-shaped "
                "rows of an earlier report), not both"
            )
        if self.tests and self.conformity is not None:
            raise ValueError(
                "conformity: a report with 'tests' states conformity per row (with "
                "decision_rule); leave the report-wide conformity out"
            )
        rule = self.decision_rule
        for i, row in enumerate(self.tests):
            if not row.has_limit:
                continue
            if rule is None:
                raise RowProblem(
                    "tests",
                    i,
                    row.parameter,
                    "limit_min" if row.limit_min is not None else "limit_max",
                    "a limit is given but the report names no decision_rule; expected "
                    "decision_rule 'simple' or 'guarded'",
                )
            read = row.read
            numeric = read.value is not None and not read.bound
            if rule == "guarded" and numeric and row.uncertainty is None:
                raise RowProblem(
                    "tests",
                    i,
                    row.parameter,
                    "uncertainty",
                    "guarded acceptance needs the expanded uncertainty U of the result; give "
                    "its uncertainty",
                )
            computed = row.computed(rule)
            if row.conformity is not None and computed is not None and row.conformity != computed:
                raise RowProblem(
                    "tests",
                    i,
                    row.parameter,
                    "conformity",
                    f"conformity is typed '{row.conformity.words[1].lower()}', but result "
                    f"{row.result} {row.unit} against '{row.printed_requirement}' gives "
                    f"'{computed.words[1].lower()}' under the {rule} decision rule".replace(
                        "  ", " "
                    ),
                )
        return self

    @field_validator("tested_from")
    @classmethod
    def _testing_after_receipt(cls, value: date | None, info: ValidationInfo) -> date | None:
        check_after(info, value, "received", strict=False)
        return value

    @model_validator(mode="after")
    def _first_day_before_last(self) -> "TestingReport":
        if self.tested_from is not None and self.tested_from > self.calibrated:
            raise ValueError(
                f"tested_from: expected a date on or before calibrated (the last day of "
                f"testing) {self.calibrated}, got {self.tested_from}"
            )
        return self

    @property
    def row_conformities(self) -> list[RowConformity]:
        """Each row's conformity as printed, in order."""
        return [row.conformity_under(self.decision_rule) for row in self.tests]

    @property
    def overall(self) -> RowConformity | None:
        """The overall conformity, only when every row was assessed (fail, else inconclusive,
        else pass); None otherwise (no overall statement is printed)."""
        found = self.row_conformities
        if not found or RowConformity.NOT_ASSESSED in found:
            return None
        for worst in (RowConformity.FAIL, RowConformity.INCONCLUSIVE):
            if worst in found:
                return worst
        return RowConformity.PASS

    @property
    def overall_words(self) -> tuple[str, str] | None:
        """The overall statement as printed (vi, en), or None."""
        overall = self.overall
        return None if overall is None else OVERALL_WORDS[overall]

    @property
    def decision_rule_words(self) -> tuple[str, str] | None:
        """The decision rule as printed (vi, en), or None when no row is judged against a
        limit."""
        return None if self.decision_rule is None else DECISION_RULES[self.decision_rule]


Certificate = Annotated[
    VerificationCertificate | CalibrationCertificate | TestingReport,
    Field(discriminator="kind"),
]
"""Any kind of certificate or report, told apart by its ``kind`` field (for pydantic)."""

AnyCertificate = VerificationCertificate | CalibrationCertificate | TestingReport
"""Any kind of certificate or report, as a type for annotations."""

_ADAPTER: TypeAdapter[AnyCertificate] = TypeAdapter(Certificate)


def parse_certificate(data: Any, *, stored: bool = False) -> AnyCertificate:
    """Validate `data` (a mapping as read from JSON) into a certificate.

    `stored` True reads a record that was issued (from the ledger, or the DCC inside a signed
    PDF): rules added after it was issued that only ask for more input are not applied to
    it, so it parses and prints as it was issued (a result with k ≠ 2 and no coverage
    probability, stored before issue 16, prints its statement without a probability). New
    input is always read with `stored` False. Raises `pydantic.ValidationError`;
    `certissuer.intake` turns it into `InputError`s that name the file, row and field.
    """
    return _ADAPTER.validate_python(data, context={STORED: True} if stored else None)


def certificate_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of one certificate record (either kind)."""
    return _ADAPTER.json_schema()


def field_path(loc: Iterable[str | int]) -> str:
    """A pydantic location as people read it: ``('results', 2, 'unit')`` → ``results[2].unit``
    (list indices from 0)."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def canonical_json(cert: BaseModel) -> bytes:
    """The canonical JSON form: sorted keys, no spaces, UTF-8, Decimal and dates as strings."""
    data = cert.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def data_digest(cert: BaseModel) -> str:
    """SHA-256 (hex) of `canonical_json(cert)`."""
    return hashlib.sha256(canonical_json(cert)).hexdigest()
