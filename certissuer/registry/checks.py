"""The checks at issue time: the register against a certificate, and the cycle rules.

`Register.clear` (called by `Issuer.issue` before a number is reserved) checks reference
standards within their calibration due date, the verifier's card valid and covering the
instrument type, the signatory approved for the scope, the work inside the accreditation scope,
the stamp in stock and unused, and the valid-until date equal to the one the cycle table gives.
A refusal is a `RegisterRefused` naming what failed and how to fix it.

>>> valid_until_for(date(2026, 11, 25), 12)
datetime.date(2027, 11, 24)
>>> parse_stamp("ĐT-26 0012345")
('ĐT-26', 12345)
"""

import calendar
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from certissuer._vn import fold, strip_marks
from certissuer.errors import RegisterRefused
from certissuer.model import CalibrationCertificate, VerificationCertificate
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
)

__all__ = [
    "Cert",
    "Clearance",
    "RegisterChecks",
    "add_months",
    "match_type",
    "parse_stamp",
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


def match_type(name: str, types: Sequence[InstrumentType]) -> str | None:
    """The type whose name (vi or en) or alias appears in `name`; the longest match wins."""
    folded = fold(name)
    best: tuple[int, str] | None = None
    for t in types:
        for label in (t.name_vi, t.name_en, *_split(t.aliases)):
            needle = fold(label)
            if needle and needle in folded and (best is None or len(needle) > best[0]):
                best = (len(needle), t.code)
    return best[1] if best else None


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
            types = list(s.exec(select(InstrumentType)).all())
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

    def computed_valid_until(self, cert: VerificationCertificate) -> date | None:
        """The valid-until date of `cert` from the cycle table, or None when the register does
        not know the instrument's type (by its registered serial, or by its name)."""
        with self.session() as s:
            types = list(s.exec(select(InstrumentType)).all())
            item = cert.instrument
            instrument = self._find_instrument(s, item.serial, item.model, item.manufacturer)
            code = instrument.type_code if instrument else match_type(item.name, types)
        kind = next((t for t in types if t.code == code), None)
        return valid_until_for(cert.verification_date, kind.cycle_months) if kind else None

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
        computed = valid_until_for(cert.verification_date, kind.cycle_months)
        if cert.valid_until != computed:
            raise RegisterRefused(
                f"{ref}: valid_until is {cert.valid_until}, but a {kind.name_vi} / "
                f"{kind.name_en} verified on {cert.verification_date} with a cycle of "
                f"{kind.cycle_months} months is valid until {computed}",
                hint=f"set valid_until to {computed}",
            )
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
        ranges = [(r.unit, r.lower, r.upper) for r in cert.ranges]
        accredited = self._in_scope(
            ref, "verification", kind.code, ranges, cert.head.name, persons, scopes
        )
        stamp = None
        if cert.stamp_number:
            stamp = self._check_stamp(s, ref, cert.stamp_number)
        return Clearance(
            ref=cert.ref,
            accredited=accredited,
            type_code=kind.code,
            instrument_id=instrument.id if instrument else None,
            stamp=stamp,
            valid_until=computed,
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
        for used in cert.standards:
            known = next(
                (
                    r
                    for r in standards
                    if (used.serial and fold(r.serial) == fold(used.serial))
                    or fold(r.certificate_number) == fold(used.certificate_number)
                    or fold(r.name) == fold(used.name)
                ),
                None,
            )
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
        if signer is None or not signer.signatory:
            raise RegisterRefused(
                f"{ref}: {cert.signatory.name} is not an authorised signatory in the register",
                hint="add them with 'certissuer registry add person name=… signatory=yes'",
            )
        ranges = [
            (m.unit, m.nominal if m.nominal is not None else m.measured, None) for m in cert.results
        ]
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
        """Record an issued certificate: its stamp, and the instrument's latest certificate.

        A verified instrument that is not yet in the register is added, with its owner. The
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
            s.commit()

    def _owner_for(self, s: Session, name: str, address: str) -> Owner:
        found = s.exec(select(Owner).where(Owner.name == name)).first()
        if found is not None:
            return found
        code = "auto-" + re.sub(r"[^a-z0-9]+", "-", strip_marks(name).lower()).strip("-")[:50]
        owner = Owner(code=code, name=name, address=address)
        s.add(owner)
        s.flush()
        return owner
