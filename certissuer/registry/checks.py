"""The checks at issue time: the register against a certificate, and the cycle rules.

`Register.clear` (called by `Issuer.issue` before a number is reserved) checks reference
standards within their calibration due date, the verifier's card valid and covering the
instrument type, the signatory approved for the scope, the work inside the accreditation scope,
the stamp in stock and unused, and the valid-until date equal to the one the cycle table gives.
Each of these parts runs once the register holds its rows (`RegisterChecks.coverage`; issue
16): a lab with no verifier cards registered is not refused for a missing card. A refusal is a
`RegisterRefused` naming what failed and how to fix it. `cmc_problems` holds calibration
results to the CMC of the accredited scope line they fall in (ILAC-P14).

`check_basics` makes the checks that need no register (issue 16), for every lab: dates
against today in Vietnam, reference standards' due dates, the year of manufacture, and for a
verification the instrument type (`find_types`: whole words, diacritics and case folded) and
the valid-until date of the cycle table. `Issuer` runs it (`RegisterChecks.basic_check`)
before the register's own checks.

>>> valid_until_for(date(2026, 11, 25), 12)
datetime.date(2027, 11, 24)
>>> parse_stamp("ĐT-26 0012345")
('ĐT-26', 12345)
"""

import calendar
import difflib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from certissuer._vn import fold, strip_marks
from certissuer.config import TestingScopeLine
from certissuer.errors import IssueRefused, LedgerError, RegisterRefused
from certissuer.model import (
    CalibrationCertificate,
    ReferenceStandard,
    TestingReport,
    VerificationCertificate,
)
from certissuer.model.units import convert
from certissuer.registry.base import RegisterBase
from certissuer.registry.tables import (
    Instrument,
    InstrumentType,
    Lab,
    Owner,
    Person,
    RegisteredStandard,
    Scope,
    StampStock,
    StampUse,
    StandardUse,
    TestingScope,
)

__all__ = [
    "BASIC_CHECKS",
    "REGISTER_CHECKS",
    "Basics",
    "Cert",
    "Clearance",
    "CmcLine",
    "RegisterChecks",
    "add_months",
    "check_basics",
    "closest_types",
    "cmc_problems",
    "find_types",
    "match_type",
    "parse_cmc",
    "parse_stamp",
    "refuse",
    "valid_until_for",
]

_logger = logging.getLogger(__name__)

Cert = VerificationCertificate | CalibrationCertificate


def add_months(day: date, months: int) -> date:
    """`day` plus `months` calendar months; a day past the month's end becomes its last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def valid_until_for(verification_date: date, cycle_months: int) -> date:
    """The last day of a verification cycle: verification date + cycle months − 1 day.

    A fuel dispenser (12 months) verified on 2026-11-25 is valid until 2027-11-24 (Circular
    24/2013 form 18.GCNKĐ: "Có giá trị đến", the last day of the cycle). A date past the end of
    the target month is moved to its last day first (2024-02-29 + 12 months → 2025-02-28, so
    valid until 2025-02-27).
    """
    return add_months(verification_date, cycle_months) - timedelta(days=1)


_STAMP = re.compile(r"^(?P<series>.*?)\s*(?P<number>\d+)$")


def parse_stamp(text: str) -> tuple[str, int]:
    """Split a stamp as printed ("ĐT-26 0012345") into series ("ĐT-26") and number (12345).

    The number is the last group of digits; everything before it, trimmed, is the series.
    Raises `ValueError` when there is no trailing number.
    """
    match = _STAMP.match(text.strip())
    if match is None:
        raise ValueError(
            f"expected a stamp series and number such as 'ĐT-26 0012345', got {text!r}"
        )
    series = match["series"].strip().rstrip("-").strip()
    return series, int(match["number"])


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(";") if p.strip()]


def _words(text: str) -> list[str]:
    """The whole words of `text`, diacritics and case folded ("Đồng hồ" → ["dong", "ho"])."""
    return re.findall(r"\w+", strip_marks(fold(text)))


def _in_order(words: Sequence[str], label: Sequence[str]) -> bool:
    """True when every word of `label` is a whole word of `words`, in the same order."""
    rest = iter(words)
    return bool(label) and all(any(w == word for w in rest) for word in label)


def _labels(t: InstrumentType) -> list[str]:
    return [label for label in (t.name_vi, t.name_en, *_split(t.aliases)) if label.strip()]


def find_types(name: str, types: Sequence[InstrumentType]) -> list[InstrumentType]:
    """The types whose name (vi or en) or an alias names the instrument `name`.

    A label matches when each of its words is a whole word of `name`, in order, with other
    words allowed between them (diacritics and case folded; each part of a bilingual name
    "vi / en" is matched on its own): "Đồng hồ đo nước lạnh cơ khí" names "Đồng hồ nước
    lạnh cơ khí", "Huyết áp kế điện tử" names "Huyết áp kế". The label with the most words
    wins, so "Huyết áp kế" is not an "Áp kế"; when types of different codes tie, all of them
    are returned and the caller refuses the name as ambiguous. An empty list: no type.
    """
    parts = [_words(part) for part in name.split("/")]
    best: list[InstrumentType] = []
    score = 0
    for t in types:
        found = max(
            (
                len(label)
                for label in map(_words, _labels(t))
                if any(_in_order(words, label) for words in parts)
            ),
            default=0,
        )
        if found and found > score:
            best, score = [t], found
        elif found and found == score and all(b.code != t.code for b in best):
            best.append(t)
    return best


def match_type(name: str, types: Sequence[InstrumentType]) -> str | None:
    """The code of the one type `find_types` finds for `name`; None when none or several."""
    found = find_types(name, types)
    return found[0].code if len(found) == 1 else None


def closest_types(name: str, types: Sequence[InstrumentType], n: int = 3) -> list[InstrumentType]:
    """The `n` types whose names or aliases read most like `name` (difflib, marks folded)."""
    key = " ".join(_words(name))
    by_label = {" ".join(_words(label)): t for t in types for label in _labels(t)}
    near = difflib.get_close_matches(key, list(by_label), n=n * 3, cutoff=0.0)
    out: list[InstrumentType] = []
    for label in near:
        if by_label[label] not in out:
            out.append(by_label[label])
    return out[:n]


@dataclass(frozen=True, slots=True)
class Basics:
    """What the checks without a register found for one certificate (see `check_basics`)."""

    type_code: str | None
    """The instrument type of a verification certificate (None for a calibration)."""
    valid_until: date | None
    """The valid-until date the cycle table gives (None: a calibration, or a type verified
    only once, before first use)."""


def _type_line(t: InstrumentType) -> str:
    return f"{t.name_vi} / {t.name_en} ({t.code})" if t.name_en else f"{t.name_vi} ({t.code})"


def check_basics(
    cert: VerificationCertificate | CalibrationCertificate,
    types: Sequence[InstrumentType],
    *,
    today: date,
    type_code: str | None = None,
) -> Basics:
    """The checks every certificate passes, with or without a register (issue 16).

    `types` is the cycle table; `today` the issue date (today in Vietnam time); `type_code` the
    instrument's type when the register already knows the instrument. Checked: the dates
    (received ≤ calibrated or verified ≤ issue date = today), every reference standard's
    calibration due date on or after the work date, the instrument's year of manufacture not
    after the work date, and for a verification the instrument's type (found by name or
    alias, see `find_types`) and its valid-until date (`valid_until_for`; computed when
    absent, none for a type verified only initially). Raises `IssueRefused` with one line per
    problem, each with its hint; returns what it found.
    """
    ref = f"ref '{cert.ref}'"
    problems: list[str] = []
    if isinstance(cert, VerificationCertificate):
        item, work, work_field = cert.instrument, cert.verification_date, "verification_date"
    else:
        item, work, work_field = cert.item, cert.calibrated, "calibrated"
        if cert.received > today:
            problems.append(
                f"{ref}: received {cert.received} is after the issue date {today} (today in "
                "Vietnam); hint: an item cannot be received in the future, check the date"
            )
    if work > today:
        problems.append(
            f"{ref}: {work_field} {work} is after the issue date {today} (today in Vietnam); "
            f"hint: issue the certificate on or after the work is done, or correct {work_field}"
        )
    if item.year is not None and item.year > work.year:
        problems.append(
            f"{ref}: the instrument's year of manufacture {item.year} is after the work date "
            f"{work}; hint: check the instrument's year"
        )
    standards = cert.standards if isinstance(cert, CalibrationCertificate) else []
    problems.extend(
        f"{ref}: reference standard {std.name} ({std.serial or std.certificate_number}) was "
        f"due for calibration on {std.calibration_due}, before the calibration date {work}; "
        "hint: have the standard recalibrated and give its new certificate and due date, or "
        "use another standard"
        for std in standards
        if std.calibration_due < work
    )
    basics = Basics(type_code=None, valid_until=None)
    if isinstance(cert, VerificationCertificate):
        basics = _check_cycle(cert, types, type_code, problems)
    refuse(problems)
    return basics


def refuse(problems: Sequence[str]) -> None:
    """Raise `IssueRefused` for `problems` ("…; hint: …" lines): one line per problem, with
    its hint when there is one; nothing when there are none."""
    if len(problems) == 1:
        message, _, hint = problems[0].partition("; hint: ")
        raise IssueRefused(message, hint=hint)
    if problems:
        raise IssueRefused(
            "\n".join(problems),
            hint="fix every line above in the record and issue it again; no number was taken",
        )


def parse_cmc(text: str, unit: str) -> tuple[Decimal, str]:
    """A scope line's CMC as (value, unit): "0.1 mg", or a bare number in the line's `unit`.

    Raises `ValueError` when it is not a positive number, or its unit is not `unit` or
    `unit` with another SI prefix (so that uncertainties in the line's unit compare).
    """
    value, _, cmc_unit = text.strip().partition(" ")
    cmc_unit = cmc_unit.strip() or unit
    try:
        cmc = Decimal(value)
    except InvalidOperation:
        cmc = Decimal(0)
    if not cmc.is_finite() or cmc <= 0:
        raise ValueError(f"expected a positive number with an optional unit, got '{text}'")
    if convert(cmc, cmc_unit, unit) is None:
        raise ValueError(
            f"expected the CMC in {unit} or a multiple of it (the line's unit), got '{text}'"
        )
    return cmc, cmc_unit


def _range_covers(
    unit: str, lower: Decimal, upper: Decimal, _item: str, u: str, value: Decimal
) -> bool:
    return u == unit and lower <= value <= upper


@dataclass(frozen=True, slots=True)
class CmcLine:
    """An accredited scope line with a CMC, from the register or the profile."""

    label: str
    """How a message names the line."""
    covers: Callable[[str, str, Decimal], bool]
    """Whether the line covers a result: (item name, unit, nominal or measured value)."""
    cmc: Decimal
    cmc_unit: str


def cmc_problems(cert: CalibrationCertificate, lines: Sequence[CmcLine]) -> list[str]:
    """One line (with its hint) per result of `cert` inside a scope line whose expanded
    uncertainty, in the CMC's unit, is below the line's CMC (ILAC-P14: a lab may not claim a
    smaller uncertainty than its accredited CMC)."""
    ref = f"ref '{cert.ref}'"
    problems = []
    for row, m in enumerate(cert.results, 1):
        value = m.nominal if m.nominal is not None else m.measured
        line = next((x for x in lines if x.covers(cert.item.name, m.unit, value)), None)
        if line is None:
            continue
        u = convert(m.uncertainty, m.unit, line.cmc_unit)
        if u is None:
            problems.append(
                f"{ref}: results row {row} ({value} {m.unit}): U {m.uncertainty} {m.unit} "
                f"cannot be compared with the CMC {line.cmc} {line.cmc_unit} of the scope line "
                f"'{line.label}'; hint: state the CMC in {m.unit} or a multiple of it"
            )
        elif u < line.cmc:
            problems.append(
                f"{ref}: results row {row} ({value} {m.unit}): U {m.uncertainty} {m.unit} is "
                f"below the CMC {line.cmc} {line.cmc_unit} of the accredited scope line "
                f"'{line.label}'; hint: state an uncertainty no smaller than the CMC (ILAC-P14), "
                "or have the scope line's CMC corrected if the lab's capability is better"
            )
    return problems


def _check_cycle(
    cert: VerificationCertificate,
    types: Sequence[InstrumentType],
    type_code: str | None,
    problems: list[str],
) -> Basics:
    ref = f"ref '{cert.ref}'"
    name = cert.instrument.name
    found = [t for t in types if t.code == type_code] if type_code else []
    found = found or find_types(name, types)
    if not found:
        near = "; ".join(_type_line(t) for t in closest_types(name, types))
        problems.append(
            f"{ref}: instrument '{name}' names no type of the cycle table; closest: "
            f"{near or 'none'}; hint: name the instrument as the table does (or by an alias), "
            "or add the instrument or its type to the register or to the lab's cycle table "
            "([registry] instrument_types)"
        )
        return Basics(type_code=None, valid_until=None)
    if len(found) > 1:
        problems.append(
            f"{ref}: instrument '{name}' could be any of "
            f"{'; '.join(_type_line(t) for t in found)}, whose cycles differ; hint: name the "
            "instrument fully, as the cycle table does"
        )
        return Basics(type_code=None, valid_until=None)
    kind = found[0]
    if kind.cycle_months <= 0:
        # Verified once, before first use: the law sets no date until which it is valid.
        if cert.valid_until is not None:
            problems.append(
                f"{ref}: valid_until is {cert.valid_until}, but a {kind.name_vi} / "
                f"{kind.name_en} needs only initial verification and has no valid-until "
                "date; hint: leave valid_until out"
            )
        return Basics(type_code=kind.code, valid_until=None)
    computed = valid_until_for(cert.verification_date, kind.cycle_months)
    if cert.valid_until is not None and cert.valid_until != computed:
        problems.append(
            f"{ref}: valid_until is {cert.valid_until}, but a {kind.name_vi} / "
            f"{kind.name_en} verified on {cert.verification_date} with a cycle of "
            f"{kind.cycle_months} months is valid until {computed}; hint: set valid_until to "
            f"{computed}, or leave it out to have it computed"
        )
    return Basics(type_code=kind.code, valid_until=computed)


def _registered(
    used: ReferenceStandard, standards: Iterable[RegisteredStandard]
) -> RegisteredStandard | None:
    """The register's row for the standard a certificate `used`: the same serial, calibration
    certificate or name (case and diacritics folded)."""
    return next(
        (
            r
            for r in standards
            if (used.serial and fold(r.serial) == fold(used.serial))
            or fold(r.certificate_number) == fold(used.certificate_number)
            or fold(r.name) == fold(used.name)
        ),
        None,
    )


def _own(standard: RegisteredStandard) -> bool:
    """A standard the lab registered, not one issuing added (`_auto_code`)."""
    return not standard.code.startswith("auto-")


BASIC_CHECKS = (
    "valid-until (cycle table)",
    "instrument type",
    "stamp once per lab",
    "dates",
    "standards' due dates",
    "year of manufacture",
    "MPE (procedure table)",
)
"""The checks every issue makes, with or without a register (`check_basics`, the ledger's
stamp key, the MPE table)."""

REGISTER_CHECKS = (
    "verifier cards",
    "scopes and signatories",
    "stamp stock",
    "standards in the register",
    "CMC",
)
"""The checks that need register rows; each runs when the lab's register holds its rows."""


def _auto_code(text: str) -> str:
    """A register code derived from `text`, as owners created while issuing get one."""
    return "auto-" + re.sub(r"[^a-z0-9]+", "-", strip_marks(text).lower()).strip("-")[:50]


@dataclass(frozen=True, slots=True)
class Clearance:
    """What the checks found for one certificate, used while issuing it."""

    ref: str
    accredited: bool
    """False when the work is outside the accreditation scope and the lab profile lets it be
    issued without the accreditation mark."""
    type_code: str | None = None
    instrument_id: int | None = None
    stamp: tuple[str, int] | None = None
    valid_until: date | None = None


class RegisterChecks(RegisterBase):
    """The checks of the register before issuing, and the record of what was issued."""

    # -- checks before issuing -----------------------------------------------------------

    def clear(self, cert: Cert, *, now: datetime | None = None) -> Clearance:
        """Check `cert` against the register and claim its stamp; return what was found.

        Raises `RegisterRefused` naming the first rule it breaks and how to fix it: a standard
        past its calibration due date (or not in the register), a verifier card that is
        missing, expired or does not cover the instrument type, a signatory not approved for
        the scope, work outside the accreditation scope (unless the profile allows issuing
        without the accreditation mark), a stamp not in stock or already used, a valid-until
        date other than the cycle table's. The stamp is claimed for ``cert.ref`` (a unique
        row per series and number), so two issues can never use the same stamp.
        """
        clearance = self.check(cert)
        if clearance.stamp is not None:
            self._claim_stamp(clearance.stamp, cert.ref, now or datetime.now(UTC))
        return clearance

    def check(self, cert: Cert) -> Clearance:
        """The checks of `clear`, without claiming the stamp."""
        with self.session() as s:
            lab = s.get(Lab, self.lab_code)
            if lab is None:
                raise RegisterRefused(
                    f"lab {self.lab_code} is not in the register",
                    hint="add it with 'certissuer registry add lab code=…'",
                )
            item = cert.instrument if isinstance(cert, VerificationCertificate) else cert.item
            types = self.cycle_types()  # the register's: it holds the lab, so its table
            instrument = self._find_instrument(s, item.serial, item.model, item.manufacturer)
            type_code = instrument.type_code if instrument else match_type(item.name, types)
            persons = {
                fold(p.name): p
                for p in s.exec(select(Person).where(Person.lab_code == self.lab_code)).all()
            }
            scopes = list(s.exec(select(Scope).where(Scope.lab_code == self.lab_code)).all())
            if isinstance(cert, VerificationCertificate):
                return self._check_verification(
                    s, cert, types, type_code, instrument, persons, scopes
                )
            return self._check_calibration(s, cert, type_code, persons, scopes)

    def basic_check(self, cert: Cert, *, today: date) -> Basics:
        """`check_basics` for `cert` against `cycle_types`, with or without the lab's row.

        An instrument the register already holds (by serial, model and maker) keeps its
        registered type; any other is typed by its name.
        """
        type_code = None
        if isinstance(cert, VerificationCertificate):
            item = cert.instrument
            with self.session() as s:
                instrument = self._find_instrument(s, item.serial, item.model, item.manufacturer)
            type_code = instrument.type_code if instrument else None
        return check_basics(cert, self.cycle_types(), today=today, type_code=type_code)

    def cmc_lines(self, cert: CalibrationCertificate) -> list[CmcLine]:
        """The register's calibration scope lines of this lab that state a CMC and apply to
        `cert`'s item (any type, or the item's type as the register or its name gives it)."""
        with self.session() as s:
            scopes = [
                sc
                for sc in s.exec(
                    select(Scope).where(
                        Scope.lab_code == self.lab_code, Scope.kind == "calibration"
                    )
                ).all()
                if sc.cmc.strip()
            ]
            if not scopes:
                return []
            item = cert.item
            instrument = self._find_instrument(s, item.serial, item.model, item.manufacturer)
        type_code = (
            instrument.type_code if instrument else match_type(item.name, self.cycle_types())
        )
        lines = []
        for sc in scopes:
            if sc.instrument_type and sc.instrument_type != type_code:
                continue
            cmc, cmc_unit = parse_cmc(sc.cmc, sc.unit)
            covers = partial(_range_covers, sc.unit, Decimal(sc.lower), Decimal(sc.upper))
            what = sc.quantity or sc.instrument_type or "calibration"
            label = f"{what} ({sc.lower} ÷ {sc.upper}) {sc.unit}, CMC {sc.cmc}"
            lines.append(CmcLine(label, covers, cmc, cmc_unit))
        return lines

    def computed_valid_until(self, cert: VerificationCertificate) -> date | None:
        """The valid-until date of `cert` from the cycle table, or None when the table does
        not name its type or the type is verified only initially (no refusal: see
        `basic_check` for that)."""
        try:
            return self.basic_check(cert, today=date.max).valid_until
        except IssueRefused:
            return None

    def _find_instrument(
        self, s: Session, serial: str, model: str, manufacturer: str
    ) -> Instrument | None:
        found = list(s.exec(select(Instrument).where(Instrument.serial == serial)).all())
        if len(found) > 1:
            found = [i for i in found if fold(i.model) == fold(model)] or found
        if len(found) > 1:
            found = [i for i in found if fold(i.manufacturer) == fold(manufacturer)] or found
        return found[0] if found else None

    def _check_verification(
        self,
        s: Session,
        cert: VerificationCertificate,
        types: Sequence[InstrumentType],
        type_code: str | None,
        instrument: Instrument | None,
        persons: Mapping[str, Person],
        scopes: Sequence[Scope],
    ) -> Clearance:
        ref = f"ref '{cert.ref}'"
        kind = next((t for t in types if t.code == type_code), None)
        if kind is None:
            raise RegisterRefused(
                f"{ref}: the type of instrument '{cert.instrument.name}' (serial "
                f"{cert.instrument.serial}) is not in the register"
                + (f" (type code '{type_code}' is not in the cycle table)" if type_code else ""),
                hint="add the instrument with 'certissuer registry add instrument type_code=… "
                "serial=… owner_code=…', or name it as the cycle table does",
            )
        computed = (
            valid_until_for(cert.verification_date, kind.cycle_months)
            if kind.cycle_months > 0
            else None  # verified only initially: no valid-until date
        )
        if cert.valid_until != computed:
            raise RegisterRefused(
                f"{ref}: valid_until is {cert.valid_until}, but a {kind.name_vi} / "
                f"{kind.name_en} verified on {cert.verification_date} with a cycle of "
                f"{kind.cycle_months} months is valid until {computed}",
                hint=f"set valid_until to {computed}" if computed else "leave valid_until out",
            )
        if any(p.verifier_card for p in persons.values()):  # else: no cards, no data
            self._check_card(ref, cert, kind, persons)
        ranges = [(r.unit, r.lower, r.upper) for r in cert.ranges]
        accredited = True  # no scope lines in the register: that check has no data
        if scopes:
            accredited = self._in_scope(
                ref, "verification", kind.code, ranges, cert.head.name, persons, scopes
            )
        stamp = None
        if cert.stamp_number and self._has_stock(s):
            stamp = self._check_stamp(s, ref, cert.stamp_number)
        return Clearance(
            ref=cert.ref,
            accredited=accredited,
            type_code=kind.code,
            instrument_id=instrument.id if instrument else None,
            stamp=stamp,
            valid_until=computed,
        )

    def _check_card(
        self,
        ref: str,
        cert: VerificationCertificate,
        kind: InstrumentType,
        persons: Mapping[str, Person],
    ) -> None:
        verifier = persons.get(fold(cert.verifier.name))
        if verifier is None or not verifier.verifier_card:
            raise RegisterRefused(
                f"{ref}: verifier {cert.verifier.name} has no verifier card in the register",
                hint="add the card with 'certissuer registry add person name=… verifier_card=… "
                "card_types=… card_expiry=…'",
            )
        if verifier.card_expiry is None or verifier.card_expiry < cert.verification_date:
            raise RegisterRefused(
                f"{ref}: the verifier card {verifier.verifier_card} of {verifier.name} expired on "
                f"{verifier.card_expiry}, before the verification date {cert.verification_date}",
                hint="renew the card and update card_expiry, or have a verifier with a valid "
                "card verify the instrument",
            )
        if kind.code not in _split(verifier.card_types):
            raise RegisterRefused(
                f"{ref}: the verifier card {verifier.verifier_card} of {verifier.name} does not "
                f"cover {kind.name_vi} / {kind.name_en} ({kind.code}); it covers "
                f"{', '.join(_split(verifier.card_types)) or 'no type'}",
                hint="have a verifier whose card covers this type verify the instrument",
            )

    def _check_calibration(
        self,
        s: Session,
        cert: CalibrationCertificate,
        type_code: str | None,
        persons: Mapping[str, Person],
        scopes: Sequence[Scope],
    ) -> Clearance:
        ref = f"ref '{cert.ref}'"
        standards = list(
            s.exec(
                select(RegisteredStandard).where(RegisteredStandard.lab_code == self.lab_code)
            ).all()
        )
        if not any(_own(r) for r in standards):
            standards = []  # only rows issuing added: the lab registered none of its own
        for used in cert.standards if standards else ():
            known = _registered(used, standards)
            if known is None:
                raise RegisterRefused(
                    f"{ref}: reference standard {used.name} (serial {used.serial or '-'}, "
                    f"certificate {used.certificate_number}) is not in the register",
                    hint="add it with 'certissuer registry add standard code=… name=… "
                    "certificate_number=… calibration_due=…'",
                )
            due = min(known.calibration_due, used.calibration_due)
            if due < cert.calibrated:
                raise RegisterRefused(
                    f"{ref}: reference standard {known.name} ({known.code}) was due for "
                    f"calibration on {due}, before the calibration date {cert.calibrated}",
                    hint="have the standard recalibrated and record its new certificate with "
                    "'certissuer registry add standard …', or use another standard",
                )
        signer = persons.get(fold(cert.signatory.name))
        has_signatories = bool(scopes) or any(p.signatory for p in persons.values())
        if has_signatories and (signer is None or not signer.signatory):
            raise RegisterRefused(
                f"{ref}: {cert.signatory.name} is not an authorised signatory in the register",
                hint="add them with 'certissuer registry add person name=… signatory=yes'",
            )
        ranges = [
            (m.unit, m.nominal if m.nominal is not None else m.measured, None) for m in cert.results
        ]
        accredited = True  # no scope lines in the register: that check has no data
        # A testing report (issue 22) is not judged against calibration scope lines: its rows
        # are judged against the testing scope (`testing_scope_lines`) while it is issued.
        if scopes and not isinstance(cert, TestingReport):
            accredited = self._in_scope(
                ref, "calibration", type_code, ranges, cert.signatory.name, persons, scopes
            )
        return Clearance(ref=cert.ref, accredited=accredited, type_code=type_code)

    def _in_scope(
        self,
        ref: str,
        kind: str,
        type_code: str | None,
        ranges: Iterable[tuple[str, Decimal, Decimal | None]],
        signatory: str,
        persons: Mapping[str, Person],
        scopes: Sequence[Scope],
    ) -> bool:
        """True when every range lies inside a scope line that approves `signatory`."""
        lines = [
            sc
            for sc in scopes
            if sc.kind == kind and (not sc.instrument_type or sc.instrument_type == type_code)
        ]
        matched: list[Scope] = []
        for unit, low, high in ranges:
            top = low if high is None else high
            line = next(
                (
                    sc
                    for sc in lines
                    if sc.unit == unit and Decimal(sc.lower) <= low and top <= Decimal(sc.upper)
                ),
                None,
            )
            if line is None:
                what = f"{low} {unit}" if high is None else f"({low} ÷ {high}) {unit}"
                if self.outside_scope == "unaccredited":
                    _logger.info("%s: %s outside the scope, issued without the mark", ref, what)
                    return False
                raise RegisterRefused(
                    f"{ref}: {what} for {kind} of {type_code or 'this item'} is outside the "
                    f"accreditation scope of lab {self.lab_code}",
                    hint="add the scope line ('certissuer registry add scope …') if the lab is "
                    'accredited for it, or set [registry] outside_scope = "unaccredited" to '
                    "issue without the accreditation mark",
                )
            matched.append(line)
        folded = fold(signatory)
        for line in matched:
            if folded not in {fold(n) for n in _split(line.signatories)}:
                raise RegisterRefused(
                    f"{ref}: {signatory} is not an approved signatory for the scope "
                    f"'{line.quantity or line.instrument_type or line.unit}' "
                    f"(({line.lower} ÷ {line.upper}) {line.unit}); approved: "
                    f"{', '.join(_split(line.signatories)) or 'nobody'}",
                    hint="have an approved signatory sign, or add the name to the scope line's "
                    "signatories",
                )
        if folded not in persons:
            _logger.debug("%s: signatory %s approved by scope but not in personnel", ref, signatory)
        return True

    def has_scope(self) -> bool:
        """True when the register holds this lab and scope lines of it."""
        if not self.enabled():
            return False
        with self.session() as s:
            return (
                s.exec(select(Scope.id).where(Scope.lab_code == self.lab_code)).first() is not None
            )

    def testing_scope_lines(self) -> tuple[TestingScopeLine, ...]:
        """The register's testing scope lines of this lab (issue 22), as `TestingScopeLine`s
        matched like ``[lab] testing_scope``; none while the register does not hold the lab."""
        if not self.enabled():
            return ()
        try:
            with self.session() as s:
                rows = s.exec(
                    select(TestingScope)
                    .where(TestingScope.lab_code == self.lab_code)
                    .order_by(col(TestingScope.id))
                ).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"the register cannot be read: {exc}") from exc
        return tuple(
            TestingScopeLine(
                row.parameter,
                row.method,
                Decimal(row.lower) if row.lower else None,
                Decimal(row.upper) if row.upper else None,
                row.unit,
            )
            for row in rows
        )

    def _has_stock(self, s: Session) -> bool:
        return (
            s.exec(select(StampStock.id).where(StampStock.lab_code == self.lab_code)).first()
            is not None
        )

    def coverage(self) -> dict[str, bool]:
        """Which checks of the register (`REGISTER_CHECKS`) have data for this lab: they run
        on every issue when it has, and are skipped when it has none (issue 16). None have
        data while the register does not hold the lab; "CMC" is the register's lines only."""
        if not self.enabled():
            return dict.fromkeys(REGISTER_CHECKS, False)
        with self.session() as s:
            persons = list(s.exec(select(Person).where(Person.lab_code == self.lab_code)).all())
            scopes = list(s.exec(select(Scope).where(Scope.lab_code == self.lab_code)).all())
            standards = s.exec(
                select(RegisteredStandard).where(RegisteredStandard.lab_code == self.lab_code)
            ).all()
            have = [
                any(p.verifier_card for p in persons),
                bool(scopes) or any(p.signatory for p in persons),
                self._has_stock(s),
                any(_own(r) for r in standards),
                any(sc.cmc.strip() for sc in scopes if sc.kind == "calibration"),
            ]
        return dict(zip(REGISTER_CHECKS, have, strict=True))

    def missing(self) -> dict[str, str]:
        """For each check of `coverage` that has no data, exactly what the register lacks and
        how to add it (never "no data" when it holds rows the check would use)."""
        have = self.coverage()
        if not any(have.values()) and not self.enabled():
            with self.session() as s:
                rows = s.exec(
                    select(RegisteredStandard).where(RegisteredStandard.lab_code == self.lab_code)
                ).all()
                held = sum(1 for r in rows if _own(r))
            lacks = (
                f"the register holds no row for lab {self.lab_code}: add it with "
                f"'certissuer registry add lab code={self.lab_code} …'"
            )
            gaps = dict.fromkeys(REGISTER_CHECKS, lacks)
            if held:
                gaps["standards in the register"] = (
                    f"the register holds {held} standard(s) of lab {self.lab_code} but no row "
                    f"for the lab itself, so they are not checked: add it with "
                    f"'certissuer registry add lab code={self.lab_code} …'"
                )
            return gaps
        lab = self.lab_code
        why = {
            "verifier cards": f"no person of lab {lab} in the register has a verifier card: add "
            "one with 'certissuer registry add person name=… verifier_card=… card_types=… "
            "card_expiry=…'",
            "scopes and signatories": f"the register holds no scope line and no signatory of "
            f"lab {lab}: add them with 'certissuer registry add scope …' or "
            "'certissuer registry add person name=… signatory=yes'",
            "stamp stock": f"the register holds no stamp stock of lab {lab}: add it with "
            "'certissuer registry add stamp series=… first=… last=…'",
            "standards in the register": f"the register holds no standard of lab {lab} "
            "registered by the lab (only those issuing added): add them with "
            "'certissuer registry add standard code=… name=… certificate_number=… "
            "calibration_due=…'",
            "CMC": f"no calibration scope line of lab {lab} in the register states a CMC: add "
            "one with 'certissuer registry add scope kind=calibration … cmc=…'",
        }
        return {name: why[name] for name, has in have.items() if not has}

    def _check_stamp(self, s: Session, ref: str, stamp_text: str) -> tuple[str, int]:
        try:
            series, number = parse_stamp(stamp_text)
        except ValueError as exc:
            raise RegisterRefused(f"{ref}: stamp_number: {exc}") from None
        stock = s.exec(
            select(StampStock).where(
                StampStock.lab_code == self.lab_code,
                StampStock.series == series,
                StampStock.first <= number,
                StampStock.last >= number,
            )
        ).first()
        if stock is None:
            raise RegisterRefused(
                f"{ref}: stamp {stamp_text} (series {series}, number {number}) is not in the "
                f"stamp stock of lab {self.lab_code}",
                hint="check the stamp number, or record the stamps received with "
                "'certissuer registry add stamp series=… first=… last=…'",
            )
        used = s.get(StampUse, (series, number))
        if used is not None and used.ref != ref.removeprefix("ref '").removesuffix("'"):
            raise RegisterRefused(
                f"{ref}: stamp {stamp_text} was already used"
                + (
                    f" by certificate {used.certificate_number}"
                    if used.certificate_number
                    else f" by record '{used.ref}'"
                ),
                hint="each stamp number is used once: take the next stamp from stock",
            )
        return series, number

    def _claim_stamp(self, stamp: tuple[str, int], ref: str, now: datetime) -> None:
        # The primary key (series, number) is the lock: of two processes inserting the same
        # stamp, the second gets an IntegrityError (PostgreSQL waits for the first to commit;
        # SQLite serialises the transactions with BEGIN IMMEDIATE).
        series, number = stamp

        def refused(other: str) -> RegisterRefused:
            return RegisterRefused(
                f"ref '{ref}': stamp {series} {number} was just used by record '{other}'",
                hint="each stamp number is used once: take the next stamp from stock",
            )

        with self.session() as s:
            # A record that changed its stamp before it was issued gives the old one back.
            s.exec(
                delete(StampUse).where(
                    col(StampUse.lab_code) == self.lab_code,
                    col(StampUse.ref) == ref,
                    col(StampUse.certificate_number).is_(None),
                    or_(col(StampUse.series) != series, col(StampUse.number) != number),
                )
            )
            used = s.get(StampUse, (series, number))
            if used is not None and used.ref != ref:
                s.rollback()
                raise refused(used.ref)
            if used is None:
                s.add(
                    StampUse(
                        series=series, number=number, lab_code=self.lab_code, ref=ref, used_at=now
                    )
                )
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
            else:
                return
        with self.session() as s:
            used = s.get(StampUse, (series, number))
            if used is None or used.ref != ref:
                raise refused(used.ref if used else "?")

    def accredited(self, cert: Cert) -> bool:
        """False when `cert` is issued without the accreditation mark (outside the scope)."""
        if self.outside_scope == "refuse" or not self.enabled():
            return True
        try:
            return self.check(cert).accredited
        except RegisterRefused:
            return True

    def record(self, clearance: Clearance, cert: object, number: str) -> None:
        """Record an issued certificate: its stamp, the instrument's latest certificate, and the
        reference standards a calibration used (`used_by` lists them per standard).

        A verified instrument that is not yet in the register is added, with its owner; a
        standard that is not, with a code derived from its serial or certificate. The
        certificate is already issued: a failure here is logged, not raised, and a concurrent
        insert of the same owner or instrument is retried.
        """
        for attempt in range(3):
            try:
                self._record(clearance, cert, number)
                return
            except IntegrityError:
                _logger.debug("recording %s raced another issue; retry %d", number, attempt + 1)
            except SQLAlchemyError as exc:
                _logger.error("%s was issued but the register could not record it: %s", number, exc)
                return
        _logger.error("%s was issued but the register could not record it", number)

    def _record(self, clearance: Clearance, cert: object, number: str) -> None:
        with self.session() as s:
            if clearance.stamp is not None:
                series, stamp_no = clearance.stamp
                s.exec(
                    update(StampUse)
                    .where(col(StampUse.series) == series, col(StampUse.number) == stamp_no)
                    .values(certificate_number=number)
                )
            if isinstance(cert, VerificationCertificate) and clearance.type_code:
                instrument = (
                    s.get(Instrument, clearance.instrument_id)
                    if clearance.instrument_id is not None
                    else None
                )
                owner = None
                if instrument is None:
                    owner = self._owner_for(s, cert.owner.name, cert.owner.address)
                    instrument = s.exec(
                        select(Instrument).where(
                            Instrument.owner_id == owner.id,
                            Instrument.type_code == clearance.type_code,
                            Instrument.serial == cert.instrument.serial,
                        )
                    ).first()
                if instrument is None:
                    assert owner is not None and owner.id is not None
                    instrument = Instrument(
                        owner_id=owner.id,
                        type_code=clearance.type_code,
                        name=cert.instrument.name,
                        model=cert.instrument.model,
                        serial=cert.instrument.serial,
                        manufacturer=cert.instrument.manufacturer,
                        year=cert.instrument.year,
                        ranges="; ".join(f"({r.lower} ÷ {r.upper}) {r.unit}" for r in cert.ranges),
                        accuracy_class="; ".join(
                            r.accuracy_class for r in cert.ranges if r.accuracy_class
                        ),
                        place_of_use=cert.place_of_use,
                    )
                instrument.last_certificate = number
                instrument.verified_on = cert.verification_date
                instrument.valid_until = cert.valid_until
                s.add(instrument)
            if isinstance(cert, CalibrationCertificate):
                self._record_standards(s, cert, number)
            s.commit()

    def _record_standards(self, s: Session, cert: CalibrationCertificate, number: str) -> None:
        # Issue 16: every reference standard used is in the register (added, with a code
        # derived from its serial or certificate, when it is not) and linked to the
        # certificate, so the certificates a standard served can be listed if it is found faulty.
        held = list(
            s.exec(
                select(RegisteredStandard).where(RegisteredStandard.lab_code == self.lab_code)
            ).all()
        )
        linked: set[int] = set()
        for used in cert.standards:
            row = _registered(used, held)
            if row is None:
                codes = {r.code for r in held}
                base = _auto_code(used.serial or used.certificate_number or used.name)
                code = next(
                    c for c in (base, *(f"{base}-{i}" for i in range(2, 1000))) if c not in codes
                )
                row = RegisteredStandard(
                    lab_code=self.lab_code,
                    code=code,
                    name=used.name,
                    serial=used.serial,
                    certificate_number=used.certificate_number,
                    calibration_due=used.calibration_due,
                    traceable_to=used.traceable_to or "",
                    calibrated_by=used.calibrated_by,
                )
                s.add(row)
                s.flush()
                held.append(row)
            assert row.id is not None
            if row.id in linked:
                continue
            linked.add(row.id)
            s.add(
                StandardUse(
                    certificate_number=number,
                    standard_id=row.id,
                    lab_code=self.lab_code,
                    used_on=cert.calibrated,
                    standard_certificate=used.certificate_number,
                    calibration_due=used.calibration_due,
                )
            )

    def used_by(self, standard: str) -> list[tuple[RegisteredStandard, StandardUse]]:
        """The certificates that used the reference `standard` (its register code, serial or
        calibration certificate number, case folded), oldest first, with the standard."""
        key = fold(standard.strip())
        with self.session() as s:
            found = {
                r.id: r
                for r in s.exec(
                    select(RegisteredStandard).where(RegisteredStandard.lab_code == self.lab_code)
                ).all()
                if key in {fold(r.code), fold(r.serial), fold(r.certificate_number)}
            }
            if not found:
                return []
            uses = s.exec(
                select(StandardUse)
                .where(col(StandardUse.standard_id).in_(list(found)))
                .order_by(col(StandardUse.used_on), col(StandardUse.certificate_number))
            ).all()
            return [(found[u.standard_id], u) for u in uses]

    def _owner_for(self, s: Session, name: str, address: str) -> Owner:
        found = s.exec(select(Owner).where(Owner.name == name)).first()
        if found is not None:
            return found
        owner = Owner(code=_auto_code(name), name=name, address=address)
        s.add(owner)
        s.flush()
        return owner
