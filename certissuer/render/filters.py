"""Filters and globals that certificate and report templates use.

Dates print as on paper ("27/11/2026"; "Đồng Tháp, ngày 27 tháng 11 năm 2026"), measured
values keep their trailing zeros, results are rounded to the decimal place of their
uncertainty. `install` puts them into a Jinja2 environment under the names templates use.

>>> dmy(date(2026, 11, 27))
'27/11/2026'
>>> place_date_en("Đồng Tháp", date(2026, 11, 27))
'Dong Thap, 27 November 2026'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import jinja2

from certissuer._vn import dmy, strip_marks
from certissuer.model import (
    CONFORMITY_RULES,
    CONFORMITY_WORDS,
    RELATIVE_MPE_UNITS,
    TESTING_STATEMENT,
    Measurement,
    PrintedRow,
    ReferenceStandard,
    VerificationMode,
    format_decimal,
    format_extra,
    format_percent,
    format_result,
)

__all__ = [
    "VERIFICATION_MODES",
    "CoverageRun",
    "coverage_runs",
    "coverage_statement",
    "dmy",
    "extra_value",
    "install",
    "keep_tail",
    "mpe_unit",
    "num",
    "place_date_en",
    "place_date_vi",
    "printed",
    "result",
    "split_bilingual",
    "supplied",
    "traceability_statement",
    "uncertainty",
]

_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
VERIFICATION_MODES = {mode: mode.words for mode in VerificationMode}
"""Each verification mode in Vietnamese and English (templates: ``verification_modes``)."""


def place_date_vi(place: str, value: date) -> str:
    """The Vietnamese place-and-date line: "Đồng Tháp, ngày 27 tháng 11 năm 2026".

    Decree 30/2020/NĐ-CP: days below 10 and the months 1 and 2 take a leading zero.
    """
    day = f"{value.day:02d}"
    month = f"{value.month:02d}" if value.month <= 2 else str(value.month)
    return f"{place}, ngày {day} tháng {month} năm {value.year}"


def place_date_en(place: str, value: date) -> str:
    """The English place-and-date line: "Dong Thap, 27 November 2026" (marks dropped)."""
    return f"{strip_marks(place)}, {value.day} {_MONTHS_EN[value.month - 1]} {value.year}"


def num(value: Decimal | int | None) -> str:
    """A Decimal as printed: no exponent, trailing zeros kept ("0.10" stays "0.10")."""
    if value is None:
        return ""
    return format_decimal(Decimal(value))


def result(value: Decimal | None, uncertainty: Decimal) -> str:
    """`value` rounded to the decimal place of the rounded expanded uncertainty."""
    if value is None:
        return ""
    return format_result(value, uncertainty)[0]


def uncertainty(uncertainty: Decimal) -> str:
    """The expanded uncertainty rounded up to two significant digits."""
    return format_result(uncertainty, uncertainty)[1]


def extra_value(text: str) -> str:
    """A value of a row's extra quantity as printed: rounded as a result is when it carries
    its uncertainty ("20.031 ± 0.052"), else as given, trimmed (`format_extra`)."""
    return format_extra(text)


def printed(m: Measurement) -> PrintedRow:
    """A calibration result row as printed: signed error, U's decimals, one prefix per row."""
    return m.printed()


@dataclass(frozen=True)
class CoverageRun:
    """Consecutive result rows that share one coverage factor and probability."""

    k: str
    p: str
    rows: list[Measurement]

    @property
    def key(self) -> tuple[str, str]:
        """(k, p) as printed: runs with equal keys share one statement's wording."""
        return self.k, self.p


def coverage_runs(rows: list[Measurement]) -> list[CoverageRun]:
    """Split `rows` (in their order) into runs of one (k, p), each to be followed by its own
    uncertainty statement; rows with the same k and p are one run."""
    runs: list[CoverageRun] = []
    for m in rows:
        k = format_decimal(m.coverage_factor.normalize())
        p = "" if m.probability is None else format_percent(m.probability)
        if runs and runs[-1].key == (k, p):
            runs[-1].rows.append(m)
        else:
            runs.append(CoverageRun(k, p, [m]))
    return runs


def coverage_statement(k: str, p: str) -> tuple[str, str]:
    """The uncertainty statement of the calibration form, with k and p filled in.

    An empty `p` (a result stored before issue 16 with k ≠ 2 and no stated probability) gives
    the statement without a probability: nothing is claimed that the lab never stated.
    """
    if not p:
        return (
            f"Độ không đảm bảo đo mở rộng được công bố là độ không đảm bảo đo chuẩn nhân với hệ "
            f"số phủ k = {k}.",
            f"The reported expanded uncertainty is the standard uncertainty multiplied by the "
            f"coverage factor k = {k}.",
        )
    return (
        f"Độ không đảm bảo đo mở rộng được công bố là độ không đảm bảo đo chuẩn nhân với hệ số "
        f"phủ k = {k}, tương ứng với xác suất phủ xấp xỉ {p} %.",
        f"The reported expanded uncertainty is the standard uncertainty multiplied by the "
        f"coverage factor k = {k}, corresponding to a coverage probability of approximately "
        f"{p} %.",
    )


def split_bilingual(text: str) -> tuple[str, str]:
    """Split "Giám đốc / Director" into ("Giám đốc", "Director"); no " / " gives (text, "")."""
    vi, sep, en = text.partition(" / ")
    return (vi.strip(), en.strip()) if sep else (text.strip(), "")


def install(env: jinja2.Environment) -> None:
    """Add the filters (``dmy``, ``num``, ``result``, ``uncertainty``, ``bilingual``,
    ``printed``, ``extra_value``, ``coverage_runs``, ``mpe_unit``, ``keep_tail``) and globals
    (``place_date_vi``, ``place_date_en``, ``verification_modes``, ``coverage_statement``,
    ``conformity_words``, ``conformity_rules``, ``testing_statement``) to `env`."""
    env.filters.update(
        dmy=dmy,
        num=num,
        result=result,
        uncertainty=uncertainty,
        bilingual=split_bilingual,
        printed=printed,
        extra_value=extra_value,
        coverage_runs=coverage_runs,
        mpe_unit=mpe_unit,
        keep_tail=keep_tail,
    )
    env.globals.update(
        coverage_statement=coverage_statement,
        place_date_vi=place_date_vi,
        place_date_en=place_date_en,
        verification_modes=VERIFICATION_MODES,
        conformity_words=CONFORMITY_WORDS,
        conformity_rules=CONFORMITY_RULES,
        testing_statement=TESTING_STATEMENT,
    )
    install_wording(env)


def keep_tail(text: object) -> str:
    """`text` with a last word of one or two characters joined to the word before it by a
    no-break space, so a narrow table heading never leaves "U" or "k" alone on a line.

    >>> keep_tail("Expanded uncertainty U") == "Expanded uncertainty\\u00a0U"
    True
    """
    head, sep, tail = str(text).rpartition(" ")
    return f"{head}\u00a0{tail}" if sep and head and len(tail) <= 2 else str(text)


def mpe_unit(symbol: str) -> str:
    """An MPE's unit as printed: a legal unit as it is, a relative one in both languages
    ("% of volume" → "% thể tích / % of volume")."""
    words = RELATIVE_MPE_UNITS.get(symbol)
    return f"{words[0]} / {words[1]}" if words else symbol


_NATIONAL = ("chuẩn quốc gia của Việt Nam", "the national measurement standards of Vietnam")
_SI = ("hệ đơn vị đo quốc tế (SI)", "the International System of Units (SI)")


def traceability_statement(standards: Sequence[ReferenceStandard]) -> tuple[str, str]:
    """The traceability sentence (vi, en), composed from what the standards trace to.

    Each distinct (`traceable_to`, `calibrated_by`) is named once; when the standards differ,
    each part names its standards. Standards without `traceable_to` claim nothing: with none
    set, the sentence says only that the results trace through the standards listed — never
    both alternatives ("national / international") at once.

    >>> traceability_statement([])[1]
    'The results are traceable through the reference standards listed above.'
    """
    groups: dict[tuple[str | None, str], list[str]] = {}
    for s in standards:
        groups.setdefault((s.traceable_to, s.calibrated_by if s.traceable_to else ""), []).append(
            s.name
        )
    if set(groups) <= {(None, "")}:
        return (
            "Kết quả được liên kết chuẩn thông qua các chuẩn đo lường nêu trên.",
            "The results are traceable through the reference standards listed above.",
        )
    named = len(groups) > 1
    vi_parts: list[str] = []
    en_parts: list[str] = []
    for (to, by), names in groups.items():
        which = f" ({', '.join(names)})" if named else ""
        if to is None:
            vi_parts.append(f"thông qua {', '.join(names)}")
            en_parts.append(f"through {', '.join(names)}")
            continue
        vi, en = _NATIONAL if to == "national" else _SI
        if by:  # "Viện Đo lường Việt Nam / Vietnam Metrology Institute": each language its own
            by_vi, by_en = split_bilingual(by)
            vi, en = f"{vi} thông qua {by_vi}", f"{en} through {by_en or by_vi}"
        vi_parts.append(f"tới {vi}{which}")
        en_parts.append(f"to {en}{which}")
    return (
        f"Kết quả được liên kết chuẩn {'; '.join(vi_parts)}, "
        "thông qua các chuẩn đo lường nêu trên.",
        f"The results are traceable {'; '.join(en_parts)}, through the reference standards "
        "listed above.",
    )


CUSTOMER_DISCLAIMER = (
    "Thông tin do khách hàng cung cấp; phòng thí nghiệm không chịu trách nhiệm về thông tin "
    "này và các kết quả chịu ảnh hưởng của nó.",
    "Information supplied by the customer; the laboratory is not responsible for it or for "
    "results it may affect.",
)
"""ISO/IEC 17025 §7.8.2.2: the disclaimer printed under values marked with an asterisk."""


def supplied(value: object, fields: Sequence[str], name: str) -> str:
    """`value` as printed, with " *" when `name` is among the customer-supplied `fields`.

    >>> supplied("SN-1", ["item.serial"], "item.serial")
    'SN-1 *'
    """
    text = "" if value is None else str(value)
    return f"{text} *" if name in fields and text else text


def install_wording(env: jinja2.Environment) -> None:
    """Add ``supplied`` (filter), ``traceability_statement`` and ``customer_disclaimer``
    (globals) to `env`; `install` calls it."""
    env.filters.update(supplied=supplied)
    env.globals.update(
        traceability_statement=traceability_statement, customer_disclaimer=CUSTOMER_DISCLAIMER
    )
