"""Inspection rounds (kiểm tra nhà nước về đo lường): an inspector's record on the hub.

A round has a place, a date and a team; each check names an instrument by its QR token (or
URL) or by certificate number and serial, and records the verdict the hub itself gives for it
at that moment (`certissuer.hub.verify`: computed, never typed), what the team found and the
action taken. Each round has an inspector token (random, shown once when the round is opened,
stored as its SHA-256) that the phone page's API requires.

>>> rounds = Inspections(hub)  # doctest: +SKIP
>>> opened = rounds.open_round("Chợ Cao Lãnh", date(2026, 12, 4), ["An", "Bình"])  # doctest: +SKIP
>>> rounds.add_check(opened.round.id, token=url, found=Found.NONE, action="",
...                  today=date(2026, 12, 4))  # doctest: +SKIP
"""

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import Column, Date, DateTime, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, col, select

from certissuer._vn import local_date
from certissuer.errors import CertissuerError, TokenError
from certissuer.hub.store import Hub
from certissuer.hub.tables import HUB_METADATA, HubCertificate, HubRecord
from certissuer.hub.verify import HubAnswer, HubVerdict, answer_for, verify_token
from certissuer.token import token_from_url

__all__ = [
    "FOUND_LABELS",
    "Found",
    "InspectionCheck",
    "InspectionError",
    "InspectionRound",
    "Inspections",
    "RoundOpened",
]


class InspectionError(CertissuerError):
    """An inspection round or check cannot be recorded as asked."""

    exit_code = 2


class Found(StrEnum):
    """What the team found at an instrument."""

    NONE = "none"
    NO_CERTIFICATE = "no_certificate"
    EXPIRED = "expired"
    STAMP_MISSING = "stamp_missing"
    ALTERED = "altered"
    OTHER = "other"


FOUND_LABELS: dict[Found, tuple[str, str]] = {
    Found.NONE: ("Không vi phạm", "No violation"),
    Found.NO_CERTIFICATE: ("Không có chứng chỉ kiểm định", "No certificate"),
    Found.EXPIRED: ("Chứng chỉ hết hiệu lực", "Certificate expired"),
    Found.STAMP_MISSING: ("Không có tem kiểm định", "Stamp missing"),
    Found.ALTERED: ("Chứng chỉ bị tẩy xóa, sửa chữa", "Certificate altered"),
    Found.OTHER: ("Vi phạm khác", "Other"),
}
"""Vietnamese and English wording of each finding."""

_RANK = (
    HubVerdict.VALID,
    HubVerdict.AWAITING_APPROVAL,
    HubVerdict.EXPIRED,
    HubVerdict.NO_LONGER_VALID,
    HubVerdict.SUPERSEDED,
    HubVerdict.REVOKED,
    HubVerdict.NOT_IN_HUB,
    HubVerdict.SERIAL_MISMATCH,
    HubVerdict.ALTERED,
    HubVerdict.NOT_GENUINE,
)
"""Which verdict answers a typed number several labs have pushed: the best first."""

_registry = registry(metadata=HUB_METADATA)


class _InspectionModel(SQLModel, registry=_registry):
    """Inspection tables on the hub's own `HUB_METADATA`."""


class InspectionRound(_InspectionModel, table=True):
    """A round of inspections: a place, a day and a team."""

    __tablename__ = "hub_inspection_round"
    id: int | None = Field(default=None, primary_key=True)
    place: str = Field(max_length=300)
    on: date = Field(sa_column=Column(Date, nullable=False, index=True))
    team: str = Field(max_length=500)
    """The team's names, comma-separated as given."""
    token_sha256: str = Field(max_length=64)
    """SHA-256 of the inspector token (the token itself is never stored)."""
    opened_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class InspectionCheck(_InspectionModel, table=True):
    """One instrument checked in a round, with the verdict the hub gave at that moment."""

    __tablename__ = "hub_inspection_check"
    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(index=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    by: str = Field(max_length=10)
    """How the instrument was named: ``token`` (QR) or ``number`` (number and serial)."""
    token: str | None = Field(default=None, sa_column=Column(Text))
    number: str | None = Field(default=None, max_length=60)
    serial: str | None = Field(default=None, max_length=100)
    lab_code: str | None = Field(default=None, max_length=50)
    verdict: str = Field(max_length=20)
    """The hub's verdict (`HubVerdict` value), computed when the check was recorded."""
    reasons_json: str = Field(sa_column=Column(Text, nullable=False))
    found: str = Field(max_length=20)
    action: str = Field(sa_column=Column(Text, nullable=False))
    instrument_type: str = Field(max_length=200)
    """The instrument's type as the inspector gave it, else the certificate's instrument name
    or the register's type code; empty when nothing names it."""


@dataclass(frozen=True, slots=True)
class RoundOpened:
    """A round just opened and its inspector token (shown this once, stored only hashed)."""

    round: InspectionRound
    inspector_token: str


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Inspections:
    """The inspection rounds held by `hub` (tables of the hub's schema, `Hub.open`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def open_round(
        self, place: str, on: date, team: list[str], *, now: datetime | None = None
    ) -> RoundOpened:
        """Open a round at `place` on `on` with `team`; returns it with its inspector token.

        Raises `InspectionError` for an empty place or team.
        """
        place = place.strip()
        names = [n.strip() for n in team if n.strip()]
        if not place:
            raise InspectionError("an inspection round needs a place (--place)")
        if not names:
            raise InspectionError('an inspection round needs a team (--team "A, B")')
        token = secrets.token_urlsafe(24)
        row = InspectionRound(
            place=place,
            on=on,
            team=", ".join(names),
            token_sha256=_sha256(token),
            opened_at=now or datetime.now(UTC),
        )
        with self.hub.session() as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        return RoundOpened(row, token)

    def get(self, round_id: int) -> InspectionRound:
        """Round `round_id`; raises `InspectionError` when there is none."""
        with self.hub.session() as s:
            row = s.get(InspectionRound, round_id)
        if row is None:
            raise InspectionError(f"there is no inspection round {round_id}")
        return row

    def inspector_may(self, round_id: int, token: str | None) -> bool:
        """True when `token` is round `round_id`'s inspector token and the round is open."""
        if not token:
            return False
        with self.hub.session() as s:
            row = s.get(InspectionRound, round_id)
        if row is None or row.closed_at is not None:
            return False
        return hmac.compare_digest(row.token_sha256, _sha256(token))

    def add_check(
        self,
        round_id: int,
        *,
        token: str | None = None,
        number: str | None = None,
        serial: str | None = None,
        found: Found | str,
        action: str = "",
        instrument_type: str | None = None,
        lab_code: str | None = None,
        today: date | None = None,
        now: datetime | None = None,
    ) -> InspectionCheck:
        """Record one instrument checked in round `round_id`, with the hub's verdict now.

        The instrument is named by `token` (a QR token or its URL) or by `number` and
        `serial` (and `lab_code` when numbers of several labs may be alike: each lab numbers
        its own); `found` is what the team found, `action` what it did. `today` decides
        EXPIRED (default: today in Vietnam). Raises `InspectionError` for a closed or unknown
        round, a bad finding, or neither or both ways of naming the instrument.
        """
        at = now or datetime.now(UTC)
        day = today or local_date(at)
        try:
            finding = Found(found)
        except ValueError:
            choices = ", ".join(f.value for f in Found)
            raise InspectionError(
                f"finding {found!r} is not known: expected one of {choices}"
            ) from None
        rnd = self.get(round_id)
        if rnd.closed_at is not None:
            raise InspectionError(f"inspection round {round_id} is closed")
        if bool(token) == bool(number or serial):
            raise InspectionError(
                "name the instrument by its QR token (or URL), or by certificate number and serial"
            )
        if token:
            try:
                bare = token_from_url(token)
            except TokenError as exc:
                raise InspectionError(str(exc)) from None
            answer = verify_token(self.hub, bare, today=day)
            by = "token"
        else:
            if not (number and serial):
                raise InspectionError("a check by number needs both --number and --serial")
            bare = None
            answer = self._by_number(number.strip(), serial.strip(), day, lab_code)
            by = "number"
        row = InspectionCheck(
            round_id=round_id,
            at=at,
            by=by,
            token=bare,
            number=answer.number or (number.strip() if number else None),
            serial=(serial.strip() if serial else None)
            or (str(answer.record.get("instrument_serial") or "") if answer.record else None)
            or None,
            lab_code=answer.lab_code,
            verdict=answer.verdict.value,
            reasons_json=json.dumps(answer.reasons, ensure_ascii=False),
            found=finding.value,
            action=action.strip(),
            instrument_type=(instrument_type or "").strip() or self._type_of(answer),
        )
        with self.hub.session() as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        return row

    def close_round(self, round_id: int, *, now: datetime | None = None) -> InspectionRound:
        """Close round `round_id`: no more checks, its inspector token stops working."""
        with self.hub.session() as s:
            row = s.get(InspectionRound, round_id)
            if row is None:
                raise InspectionError(f"there is no inspection round {round_id}")
            if row.closed_at is None:
                row.closed_at = now or datetime.now(UTC)
                s.add(row)
                s.commit()
                s.refresh(row)
            return row

    def rounds(self, year: int | None = None) -> list[InspectionRound]:
        """The rounds (of `year`), by date and id."""
        q = select(InspectionRound).order_by(col(InspectionRound.on), col(InspectionRound.id))
        if year is not None:
            q = q.where(
                col(InspectionRound.on) >= date(year, 1, 1),
                col(InspectionRound.on) <= date(year, 12, 31),
            )
        with self.hub.session() as s:
            return list(s.exec(q))

    def checks(self, round_ids: list[int]) -> list[InspectionCheck]:
        """The checks of the rounds `round_ids`, in the order they were recorded."""
        if not round_ids:
            return []
        with self.hub.session() as s:
            return list(
                s.exec(
                    select(InspectionCheck)
                    .where(col(InspectionCheck.round_id).in_(round_ids))
                    .order_by(col(InspectionCheck.id))
                )
            )

    # -- the verdict for a typed number ----------------------------------------------------

    def _by_number(self, number: str, serial: str, today: date, lab_code: str | None) -> HubAnswer:
        """The verdict for a typed number and serial. Each lab numbers its own certificates,
        so several labs may have pushed the same number: those whose instrument has `serial`
        are all answered and the best verdict is kept, naming the others in its reasons."""
        q = select(HubCertificate).where(HubCertificate.number == number)
        if lab_code:
            q = q.where(HubCertificate.lab_code == lab_code.strip())
        with self.hub.session() as s:
            rows = list(s.exec(q.order_by(col(HubCertificate.lab_code))))
        if not rows:
            where = f"lab {lab_code}" if lab_code else "no registered lab"
            return HubAnswer(
                HubVerdict.NOT_IN_HUB,
                [f"{where} has not pushed certificate {number} to the hub"],
                lab_code=lab_code or None,
                number=number,
            )
        answers = []
        for row in rows:
            record = json.loads(row.record_json)
            if str(record.get("instrument_serial") or "").strip() == serial:
                lab = self.hub.lab(row.lab_code)
                name = lab.name if lab is not None else ""
                answers.append(answer_for(self.hub, row.lab_code, name, number, today=today))
        if not answers:
            # NOTE: a typing slip is as likely as a false certificate, so not NOT GENUINE; the
            # reason names only what was typed: the hub's serial would let anyone read it off.
            return HubAnswer(
                HubVerdict.SERIAL_MISMATCH,
                [
                    f"certificate {number} is not for an instrument with serial {serial}: "
                    "check the number and the serial as typed"
                ],
                number=number,
            )
        best = min(answers, key=lambda a: _RANK.index(a.verdict))
        others = [a for a in answers if a is not best]
        if not others:
            return best
        also = "; ".join(f"lab {a.lab_code}: {a.label_en}" for a in others)
        return replace(best, reasons=[*best.reasons, f"the same number and serial at {also}"])

    def _type_of(self, answer: HubAnswer) -> str:
        if answer.record and answer.record.get("instrument_name"):
            return str(answer.record["instrument_name"])
        serial = str((answer.record or {}).get("instrument_serial") or "")
        if answer.lab_code and serial:
            with self.hub.session() as s:
                for rec in s.exec(
                    select(HubRecord).where(
                        HubRecord.lab_code == answer.lab_code, HubRecord.kind == "instruments"
                    )
                ):
                    data = json.loads(rec.record_json)
                    if str(data.get("serial") or "") == serial:
                        return str(data.get("name") or data.get("type_code") or "")
        return ""
