"""The rows of a testing report: one test parameter each, with its requirement and conformity.

A `TestResult` is what a testing organisation reports per parameter (chỉ tiêu thử nghiệm):
the method, the result as a number or as text ("< 0.05" below the limit of quantification,
"không phát hiện / not detected"), its unit and expanded uncertainty, the requirement it is
compared with (a lower and/or upper limit, or a text specification, and the standard it comes
from), and the conformity that certissuer computes from them under the report's decision
rule (ISO/IEC 17025 §7.8.6, ILAC-G8:09/2019).

>>> row = TestResult(parameter="Chì / Lead", result="0.12", unit="mg/L", limit_max="0.01")
>>> row.conformity_under("simple")
<RowConformity.FAIL: 'fail'>
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from certissuer.model.parts import FrozenModel, OptText, Text

__all__ = [
    "DECISION_RULES",
    "OVERALL_WORDS",
    "DecisionRule",
    "ReadResult",
    "RowConformity",
    "RowProblem",
    "TestResult",
    "read_result",
]


class RowProblem(ValueError):
    """A problem the report finds in one of its list rows, across rows or against report-wide
    fields (a limit without a decision rule, a typed conformity the figures contradict): it
    names the list (``tests``), the row's index and the row's field, so that the intake can
    point to the row of ``NAME.tests.csv`` (or the ``tests`` sheet) and its column rather than
    to the report's row. Its text reads ``tests[1] (Chì / Lead): problem``."""

    def __init__(self, table: str, index: int, name: str, field: str, problem: str) -> None:
        super().__init__(f"{table}[{index}] ({name}): {problem}")
        self.table = table
        self.index = index
        self.field = field
        self.problem = problem


DecisionRule = Literal["simple", "guarded"]
"""The report's decision rule: simple acceptance (w = 0) or guarded acceptance (w = U)."""

DECISION_RULES: dict[str, tuple[str, str]] = {
    "simple": (
        "Quy tắc quyết định: chấp nhận đơn giản (ILAC-G8:09/2019 §4.2.1, w = 0): đạt khi kết quả "
        "nằm trong giới hạn; độ không đảm bảo đo không được tính đến.",
        "Decision rule: simple acceptance (ILAC-G8:09/2019 §4.2.1, w = 0): pass when the result "
        "lies within the limit; the measurement uncertainty is not taken into account.",
    ),
    "guarded": (
        "Quy tắc quyết định: chấp nhận có dải bảo vệ (ILAC-G8:09/2019 §4.2.3, w = U): đạt khi "
        "kết quả cách giới hạn ít nhất U; không đạt khi vượt giới hạn hơn U; không kết luận khi "
        "khoảng kết quả ± U chứa giới hạn.",
        "Decision rule: guarded acceptance (ILAC-G8:09/2019 §4.2.3, w = U): pass when the result "
        "lies at least U inside the limit; fail when it lies more than U outside; inconclusive "
        "when the interval result ± U contains the limit.",
    ),
}
"""The decision rules a testing report states (vi, en)."""


class RowConformity(StrEnum):
    """The conformity of one test result with its requirement."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    """Under guarded acceptance, result ± U straddles the limit: neither pass nor fail."""
    NOT_ASSESSED = "not_assessed"
    """No requirement was given (or none certissuer can compare the result with)."""

    @property
    def words(self) -> tuple[str, str]:
        """As printed: ("Đạt", "Pass")."""
        return _ROW_WORDS[self]


_ROW_WORDS = {
    RowConformity.PASS: ("Đạt", "Pass"),
    RowConformity.FAIL: ("Không đạt", "Fail"),
    RowConformity.INCONCLUSIVE: ("Không kết luận", "Inconclusive"),
    RowConformity.NOT_ASSESSED: ("Không đánh giá", "Not assessed"),
}

_TYPED = {
    "pass": RowConformity.PASS,
    "đạt": RowConformity.PASS,
    "fail": RowConformity.FAIL,
    "không đạt": RowConformity.FAIL,
    "inconclusive": RowConformity.INCONCLUSIVE,
    "không kết luận": RowConformity.INCONCLUSIVE,
    "not_assessed": RowConformity.NOT_ASSESSED,
    "not assessed": RowConformity.NOT_ASSESSED,
    "không đánh giá": RowConformity.NOT_ASSESSED,
}

OVERALL_WORDS = {
    RowConformity.PASS: (
        "Mẫu thử đạt yêu cầu ở tất cả các chỉ tiêu đã thử nghiệm.",
        "The item tested meets the requirements for every parameter tested.",
    ),
    RowConformity.FAIL: (
        "Mẫu thử không đạt yêu cầu ở ít nhất một chỉ tiêu (xem cột Đánh giá).",
        "The item tested does not meet the requirement for at least one parameter (see the "
        "Conformity column).",
    ),
    RowConformity.INCONCLUSIVE: (
        "Không kết luận được sự phù hợp của mẫu thử ở ít nhất một chỉ tiêu (xem cột Đánh giá).",
        "Conformity of the item tested cannot be concluded for at least one parameter (see the "
        "Conformity column).",
    ),
}
"""The overall statement of a report whose every row was assessed (vi, en)."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    """A result as certissuer reads it: a number, a bound ("< 0.05": below `value`), or text."""

    value: Decimal | None
    """The number; for a bound the bound itself; None for a text result."""
    bound: Literal["", "<", ">"] = ""


_BOUND = re.compile(r"^\s*(<|>|≤|≥|<=|>=)\s*([-+]?\d+(?:[.,]\d+)?)\s*$")


def read_result(text: str) -> ReadResult:
    """Read a typed result: "7.21" → 7.21; "< 0.05" (also "≤", "<=") → below 0.05; any other
    text ("không phát hiện / not detected") → a text result."""
    found = _BOUND.match(text)
    if found:
        sign = "<" if found.group(1) in ("<", "≤", "<=") else ">"
        return ReadResult(Decimal(found.group(2).replace(",", ".")), sign)  # type: ignore[arg-type]
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return ReadResult(None)
    return ReadResult(value) if value.is_finite() else ReadResult(None)


class TestResult(FrozenModel):
    """One row of a testing report: a test parameter (chỉ tiêu thử nghiệm) and its result."""

    __test__ = False  # a model, not a pytest test class

    parameter: Text
    """The test parameter (chỉ tiêu), e.g. "Hàm lượng chì / Lead content"."""
    method: OptText = ""
    """The test method of this row; empty: the report's `method`."""
    result: Annotated[str, Field(min_length=1, max_length=200)]
    """A number ("0.42"), a bound below the limit of quantification ("< 0.05") or text
    ("không phát hiện / not detected")."""
    loq: Decimal | None = Field(default=None, gt=0)
    """The limit of quantification (LOQ) of the method, when stated."""
    unit: Annotated[str, Field(max_length=30)] = ""
    uncertainty: Decimal | None = Field(default=None, gt=0)
    """The expanded uncertainty U of a numeric result, in `unit`."""
    coverage_factor: Decimal | None = Field(default=None, gt=0)
    """k of `uncertainty`; 2 when U is given without it."""
    limit_min: Decimal | None = None
    """The requirement's lower limit (the result must be ≥ it)."""
    limit_max: Decimal | None = None
    """The requirement's upper limit (the result must be ≤ it)."""
    requirement: OptText = ""
    """The requirement as text, for a text specification ("Không phát hiện / Not detected") or
    to print the limits otherwise ("≤ 0,01")."""
    requirement_source: OptText = ""
    """The standard or regulation the requirement comes from, e.g. "QCVN 01-1:2018/BYT"."""
    conformity: RowConformity | None = None
    """The conformity as typed by the lab: checked against the computed one where certissuer
    can compute it (a contradiction is refused); taken as typed for a text requirement."""
    accredited: bool | None = None
    """False: the parameter × method is outside the lab's accredited testing scope (set when
    the report is issued, from ``[lab] testing_scope``); None: not judged."""

    @model_serializer(mode="wrap")
    def _absent_when_unset(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name, value in list(data.items()):
                if value is None or value == "":
                    data.pop(name)
        return data

    @model_validator(mode="before")
    @classmethod
    def _typed_words(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("conformity"), str):
            text = " ".join(data["conformity"].split()).casefold()
            if not text:
                data = {k: v for k, v in data.items() if k != "conformity"}
            else:
                head = text.split("/")[0].strip()
                if head in _TYPED:
                    data = {**data, "conformity": _TYPED[head].value}
                elif text not in _TYPED:
                    raise ValueError(
                        f"conformity: expected pass/đạt, fail/không đạt, inconclusive/không kết "
                        f"luận or not_assessed/không đánh giá, got '{data['conformity']}'"
                    )
                else:
                    data = {**data, "conformity": _TYPED[text].value}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "TestResult":
        lo, hi = self.limit_min, self.limit_max
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"limit_min {lo} is above limit_max {hi}")
        read = self.read
        if self.uncertainty is not None and (read.value is None or read.bound):
            raise ValueError(
                f"uncertainty: an expanded uncertainty needs a numeric result, got '{self.result}'"
            )
        if self.coverage_factor is not None and self.uncertainty is None:
            raise ValueError("coverage_factor is given without an uncertainty")
        return self

    @property
    def read(self) -> ReadResult:
        """The result as certissuer reads it (`read_result`)."""
        return read_result(self.result)

    @property
    def k(self) -> Decimal | None:
        """The coverage factor printed beside U (2 unless stated); None without U."""
        if self.uncertainty is None:
            return None
        return self.coverage_factor if self.coverage_factor is not None else Decimal(2)

    @property
    def has_limit(self) -> bool:
        """True when a numeric limit is given."""
        return self.limit_min is not None or self.limit_max is not None

    def computed(self, rule: DecisionRule | None) -> RowConformity | None:
        """The conformity certissuer computes under `rule`; None when it cannot (a text
        requirement only, or a text result with no LOQ): the typed one then stands."""
        if not self.has_limit:
            return None if self.requirement else RowConformity.NOT_ASSESSED
        read = self.read
        value, bound = read.value, read.bound
        if value is None and self.loq is not None:
            value, bound = self.loq, "<"  # "not detected": below the method's LOQ
        if value is None or rule is None:
            return None
        lo, hi = self.limit_min, self.limit_max
        if bound == "<":  # the true value lies below `value`
            if lo is not None and value <= lo:
                return RowConformity.FAIL
            if lo is not None:
                return RowConformity.INCONCLUSIVE
            return (
                RowConformity.PASS if hi is not None and value <= hi else RowConformity.INCONCLUSIVE
            )
        if bound == ">":
            if hi is not None and value >= hi:
                return RowConformity.FAIL
            if hi is not None:
                return RowConformity.INCONCLUSIVE
            return (
                RowConformity.PASS if lo is not None and value >= lo else RowConformity.INCONCLUSIVE
            )
        w = Decimal(0)
        if rule == "guarded":
            assert self.uncertainty is not None  # checked by the report
            w = self.uncertainty
        if (lo is not None and value < lo - w) or (hi is not None and value > hi + w):
            return RowConformity.FAIL
        if (lo is None or value >= lo + w) and (hi is None or value <= hi - w):
            return RowConformity.PASS
        return RowConformity.INCONCLUSIVE

    def conformity_under(self, rule: DecisionRule | None) -> RowConformity:
        """The row's conformity as printed: computed where certissuer can, else as typed, else
        not assessed."""
        computed = self.computed(rule)
        if computed is not None:
            return computed
        return self.conformity or RowConformity.NOT_ASSESSED

    @property
    def printed_result(self) -> str:
        """The result as printed: a number or bound as typed in figures ("< 0.003"), text as
        typed."""
        read = self.read
        if read.value is None:
            return self.result
        text = _num(read.value)
        return f"{read.bound} {text}" if read.bound else text

    @property
    def printed_requirement(self) -> str:
        """The requirement as printed: its text, else the limits ("≥ 6.5; ≤ 8.5")."""
        if self.requirement:
            return self.requirement
        parts = []
        if self.limit_min is not None and self.limit_max is not None:
            return f"{_num(self.limit_min)} – {_num(self.limit_max)}"
        if self.limit_min is not None:
            parts.append(f"≥ {_num(self.limit_min)}")
        if self.limit_max is not None:
            parts.append(f"≤ {_num(self.limit_max)}")
        return "; ".join(parts)


def _num(value: Decimal) -> str:
    return f"{value:f}"
