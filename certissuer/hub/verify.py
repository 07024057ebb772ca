"""The provincial verdict on a QR token: any registered lab's token, checked with that lab's
keys from the hub's register and answered from the certificate summaries it pushed.

>>> answer = verify_token(hub, token, today=date(2026, 12, 4))  # doctest: +SKIP
>>> answer.verdict, answer.label_en  # doctest: +SKIP
(<HubVerdict.VALID: 'valid'>, 'VALID')

The verdicts are a lab page's (`certissuer.verify.verdict`) where they mean the same; the hub
adds its own: the token is a registered lab's but the lab has not pushed that
certificate (NOT IN THE REGISTER OF THE HUB), and for a typed number whose instrument has
another serial, SERIAL DOES NOT MATCH (`certissuer.hub.inspections`). A token whose data
digest is not the one the lab pushed for its certificate (sector export 1.2, proven in the
lab's log at push) gets the lab page's verdict for a token that does not match the data:
NOT GENUINE (altered or forged).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from certissuer._vn import dmy, local_date
from certissuer.errors import TokenError
from certissuer.hub.store import Hub
from certissuer.hub.tables import HubLab
from certissuer.token import TokenPublicKey, read_token, token_key_id
from certissuer.verify.verdict import VERDICT_LABELS, Verdict

__all__ = [
    "HUB_VERDICT_LABELS",
    "RECORD_NOUNS",
    "HubAnswer",
    "HubVerdict",
    "answer_for",
    "page_date",
    "record_noun",
    "verify_token",
]


class HubVerdict(StrEnum):
    """The one answer the hub's page gives."""

    VALID = "valid"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    NO_LONGER_VALID = "no_longer_valid"
    """The lab pushed that the instrument failed a later verification."""
    AWAITING_APPROVAL = "awaiting_approval"
    """The lab pushed the certificate before its head approved it: not in force yet."""
    NOT_IN_HUB = "not_in_hub"
    """The token is a registered lab's, but the hub holds no pushed record of it."""
    SERIAL_MISMATCH = "serial_mismatch"
    """A typed certificate number the hub holds, with a serial its instrument does not have:
    a mistyped number or serial as likely as a false certificate, so not called NOT GENUINE."""
    ALTERED = "altered"
    """The token's signature is a registered lab's, but its data digest is not the one the lab
    pushed for that certificate (the lab page's ALTERED)."""
    NOT_GENUINE = "not_genuine"
    """The token is no registered lab's: altered, forged, or signed by an unknown key."""


RECORD_NOUNS: dict[str, tuple[str, str]] = {
    "testing": ("Phiếu kết quả thử nghiệm", "Test report"),
}
"""What the hub's pages call a record of a kind, as the lab's page does (issue 22): a test
report is a report; every other kind is a certificate (`record_noun`)."""


def record_noun(kind: object) -> tuple[str, str]:
    """The Vietnamese and English name of a record of `kind` (`RECORD_NOUNS`)."""
    return RECORD_NOUNS.get(str(kind or ""), ("Giấy chứng nhận", "Certificate"))


def page_date(value: object) -> str:
    """A date as the lab's page prints it (dd/mm/yyyy, `dmy`); a record's ISO text is read
    first; anything else as it is; nothing for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, date):
        return dmy(value)
    try:
        return dmy(date.fromisoformat(str(value)))
    except ValueError:
        return str(value)


HUB_VERDICT_LABELS: dict[HubVerdict, tuple[str, str]] = {
    HubVerdict.VALID: VERDICT_LABELS[Verdict.VALID],
    HubVerdict.REVOKED: VERDICT_LABELS[Verdict.REVOKED],
    HubVerdict.SUPERSEDED: VERDICT_LABELS[Verdict.SUPERSEDED],
    HubVerdict.EXPIRED: VERDICT_LABELS[Verdict.EXPIRED],
    HubVerdict.NO_LONGER_VALID: VERDICT_LABELS[Verdict.NO_LONGER_VALID],
    HubVerdict.AWAITING_APPROVAL: VERDICT_LABELS[Verdict.AWAITING_APPROVAL],
    HubVerdict.NOT_IN_HUB: (
        "KHÔNG CÓ TRONG CƠ SỞ DỮ LIỆU CỦA TỈNH",
        "NOT IN THE REGISTER OF THE HUB",
    ),
    HubVerdict.SERIAL_MISMATCH: ("SỐ SERI KHÔNG KHỚP", "SERIAL DOES NOT MATCH"),
    HubVerdict.ALTERED: VERDICT_LABELS[Verdict.ALTERED],
    HubVerdict.NOT_GENUINE: ("KHÔNG XÁC THỰC", "NOT GENUINE"),
}
"""Vietnamese and English wording of each verdict."""


@dataclass(frozen=True, slots=True)
class HubAnswer:
    """The verdict, why, and what the hub holds of the certificate."""

    verdict: HubVerdict
    reasons: list[str] = field(default_factory=list)
    lab_code: str | None = None
    lab_name: str | None = None
    number: str | None = None
    record: dict[str, Any] | None = None
    """The certificate's summary as the lab pushed it."""

    @property
    def ok(self) -> bool:
        """True only for VALID."""
        return self.verdict is HubVerdict.VALID

    @property
    def label_vi(self) -> str:
        """The verdict in Vietnamese."""
        return HUB_VERDICT_LABELS[self.verdict][0]

    @property
    def label_en(self) -> str:
        """The verdict in English."""
        return HUB_VERDICT_LABELS[self.verdict][1]

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON values (``/api/v1/verify/<token>``)."""
        return {
            "verdict": self.verdict.value,
            "label_vi": self.label_vi,
            "label_en": self.label_en,
            "ok": self.ok,
            "reasons": self.reasons,
            "lab_code": self.lab_code,
            "lab_name": self.lab_name,
            "number": self.number,
            "record": self.record,
        }


def verify_token(hub: Hub, token: str, *, today: date) -> HubAnswer:
    """The hub's verdict on QR token `token` on `today` (which decides EXPIRED).

    The lab is the registered one holding the token's key; its signature must check with it
    (`certissuer.token.read_token`), and a token dated after that key's retirement (Vietnam's
    date) is NOT GENUINE; one dated up to it keeps its verdict. Never raises for a bad token:
    it is NOT GENUINE.
    """
    kid = token_key_id(token)
    if kid is None:
        return HubAnswer(HubVerdict.NOT_GENUINE, ["the token cannot be read"])
    by_lab: dict[str, tuple[HubLab, list[tuple[TokenPublicKey, datetime | None]]]] = {}
    for holder, public, ended in hub.token_keys_with_id(kid):
        if hmac.compare_digest(public.kid.hex(), kid):  # the stored id is the key's own
            by_lab.setdefault(holder.code, (holder, []))[1].append((public, ended))
    for lab, held in by_lab.values():
        try:
            claims = read_token(token, [k for k, _end in held])
        except TokenError as exc:
            return HubAnswer(HubVerdict.NOT_GENUINE, [str(exc)], lab.code, lab.name)
        retired = held[0][1]
        if retired is not None and claims.issued > local_date(retired):
            # Whoever holds a retired key may still sign: only what it signed before counts.
            return HubAnswer(
                HubVerdict.NOT_GENUINE,
                [
                    f"the token is dated {claims.issued.isoformat()}, after the lab's key "
                    f"{kid} was retired on {local_date(retired).isoformat()}"
                ],
                lab.code,
                lab.name,
                claims.number,
            )
        return answer_for(
            hub,
            lab.code,
            lab.name,
            claims.number,
            today=today,
            issued=claims.issued,
            digest_prefix=claims.digest_prefix,
        )
    return HubAnswer(
        HubVerdict.NOT_GENUINE,
        [f"the token was signed by a key no registered lab holds (key id {kid})"],
    )


def answer_for(
    hub: Hub,
    code: str,
    name: str,
    number: str,
    *,
    today: date,
    issued: date | None = None,
    digest_prefix: str | None = None,
) -> HubAnswer:
    """The hub's verdict on certificate `number` of lab `code` (named `name`) on `today`.

    `issued` and `digest_prefix` are the issue date and the data digest's first 128 bits (hex)
    a token carries (None when the number was typed: nothing to compare them with). Used for
    a token once its signature has checked, and for an inspector who types a number and
    serial.
    """
    row = hub.certificate(code, number)
    if row is None:
        return HubAnswer(
            HubVerdict.NOT_IN_HUB,
            [f"lab {code} has not pushed certificate {number} to the hub"],
            code,
            name,
            number,
        )
    record = json.loads(row.record_json)
    notes: list[str] = []

    def answer(verdict: HubVerdict, *reasons: str) -> HubAnswer:
        return HubAnswer(verdict, [*reasons, *notes], code, name, number, record)

    if issued is not None and row.issue_date is not None and row.issue_date != issued:
        return answer(
            HubVerdict.NOT_GENUINE,
            f"the token says issued {issued.isoformat()}, the lab's record "
            f"{row.issue_date.isoformat()}",
        )
    if digest_prefix is not None:
        pushed = record.get("data_digest")
        if not isinstance(pushed, str):
            notes.append(
                f"the hub holds no data digest of {number} (pushed before the sector export "
                "carried it): the token's data digest was not compared"
            )
        elif not hmac.compare_digest(pushed[: len(digest_prefix)].lower(), digest_prefix.lower()):
            return answer(
                HubVerdict.ALTERED,
                f"the QR token's data digest does not match the data of {number} the lab "
                "pushed: the token is not this certificate's, or was altered",
            )
    if row.pdf_sha256 is None:
        return answer(HubVerdict.NOT_IN_HUB, f"certificate {number} was not completed")
    if row.revoked_at is not None:
        return answer(HubVerdict.REVOKED, f"revoked at {row.revoked_at}")
    if row.superseded_by is not None:
        return answer(HubVerdict.SUPERSEDED, f"superseded by {row.superseded_by}")
    status = record.get("status")  # as the lab pushed it, proven against its log
    if status == "no_longer_valid":
        return answer(
            HubVerdict.NO_LONGER_VALID,
            "the lab recorded that the instrument failed a later verification",
        )
    if row.valid_until is not None and today > row.valid_until:
        return answer(HubVerdict.EXPIRED, f"valid until {row.valid_until.isoformat()}")
    if status == "awaiting_approval":
        return answer(
            HubVerdict.AWAITING_APPROVAL,
            "the lab pushed it before its head approved it: not in force until the approval "
            "is pushed",
        )
    return answer(HubVerdict.VALID)
