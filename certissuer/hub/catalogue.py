"""The province's catalogue: what every lab pushed, searchable with marks folded, and recall.

>>> cat = Catalogue(Hub.open("postgresql+psycopg://hub@db/hub"))  # doctest: +SKIP
>>> cat.search(CatalogueQuery(owner="vinh long"), today=date(2026, 12, 1))  # doctest: +SKIP
>>> page = cat.page(CatalogueQuery(owner="vinh long", limit=100), today=date(2026, 12, 1))
... # doctest: +SKIP
>>> cat.page(CatalogueQuery(owner="vinh long", limit=100, after=page.next), today=...)
... # doctest: +SKIP
>>> cat.recall(today=date(2026, 12, 1), within_days=30, place="my tho")  # doctest: +SKIP

Every certificate summary and register row (instrument, standard, inspector) a push stores is
also indexed here, in the same transaction (`index_pushed`): its folded search keys (serial,
owner, place, `certissuer._vn.search_key`), its dates and flags, and a change number from one
of two hub-wide counters (``log`` for certificates, ``register`` for register rows). The
counters are locked until the push commits, so the numbers become visible in order: the hub's
own sector export (`certissuer.hub.export`) reads "everything above a cursor" without missing
or repeating a record.

An instrument is one instrument across labs when its serial and model agree, compared as
folded letters and digits only ("TS-2019/88231" = "ts201988231"). A lab that records no model
for an instrument another lab records with one makes two instruments: recall then lists the
one whose certificate lapsed rather than hiding it.
"""

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, Table, Text, and_, event, func, or_
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, col, select

from certissuer._vn import search_key
from certissuer.errors import InputError
from certissuer.hub.tables import HUB_METADATA, HubCertificate, HubLab, HubRecord

if TYPE_CHECKING:
    from certissuer.hub.store import Hub

__all__ = [
    "MAX_PAGE_SIZE",
    "RECORD_KINDS",
    "Catalogue",
    "CatalogueHit",
    "CataloguePage",
    "CatalogueQuery",
    "HubCounter",
    "HubIndex",
    "HubLabProfile",
    "LabSummary",
    "PageMark",
    "Recalled",
    "Status",
    "identity",
    "index_pushed",
    "page_size",
]

RECORD_KINDS = ("certificates", "instruments", "standards", "inspectors")
"""The record types of the catalogue, as the sector export names its arrays."""

MAX_PAGE_SIZE = 500
"""The most results one page of a search holds (`CatalogueQuery.limit`)."""

LAB_KINDS = ("verification", "calibration", "testing")
"""What a lab does: kiểm định, hiệu chuẩn, thử nghiệm."""


class _CatalogueModel(SQLModel, registry=registry(metadata=HUB_METADATA)):
    """Base of the catalogue's tables: on the hub's metadata, so `Hub.open` makes them."""


class HubCounter(_CatalogueModel, table=True):
    """A hub-wide change counter: ``log`` (certificates) and ``register`` (register rows)."""

    __tablename__ = "hub_counter"
    name: str = Field(primary_key=True, max_length=20)
    value: int = 0


@event.listens_for(HUB_METADATA.tables["hub_counter"], "after_create")
def _seed_counters(table: Table, connection: Connection, **_kw: Any) -> None:
    """The counters' rows, made with their table: each push then only locks and bumps one."""
    connection.execute(
        table.insert(), [{"name": "log", "value": 0}, {"name": "register", "value": 0}]
    )


class HubIndex(_CatalogueModel, table=True):
    """One pushed record as the catalogue finds it (its record is in `HubCertificate` or
    `HubRecord` under the same lab and key)."""

    __tablename__ = "hub_catalogue"
    lab_code: str = Field(primary_key=True, max_length=50)
    record: str = Field(primary_key=True, max_length=20)
    """certificates, instruments, standards or inspectors."""
    key: str = Field(primary_key=True, max_length=300)
    """The certificate's number, or the register row's key as `HubRecord` holds it."""
    seq: int = Field(index=True)
    """The change number (counter ``log`` for certificates, ``register`` otherwise)."""
    kind: str = Field(default="", max_length=30)
    """A certificate's kind; a standard's code; an instrument's type code."""
    serial_key: str = Field(default="", max_length=200, index=True)
    identity: str = Field(default="", max_length=300, index=True)
    """Serial and model, folded to letters and digits (`identity`)."""
    owner_key: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    place_key: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    issue_date: date | None = None
    valid_until: date | None = None
    revoked: bool = False
    superseded: bool = False
    standing: str = Field(default="", max_length=20)
    """``no_longer_valid`` or ``awaiting_approval`` when the lab pushed that status (proven
    against its log); empty otherwise."""


class HubLabProfile(_CatalogueModel, table=True):
    """What the catalogue says of a registered lab beyond its keys: what it does, its scope
    and its accreditation (entered at the hub; a push does not carry them)."""

    __tablename__ = "hub_lab_profile"
    code: str = Field(primary_key=True, max_length=50)
    kinds: str = Field(default="", max_length=100)
    """Comma-separated `LAB_KINDS`."""
    scope: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    accreditation: str = Field(default="", max_length=300)
    """E.g. the designation decision or the VILAS/ISO 17025 number and its expiry."""
    paper_total: int | None = None
    """The certificates the lab holds on paper, as it declares (None: not reported); the hub's
    annual report measures its digitisation against it."""
    paper_as_of: date | None = None
    """The day the lab counted its paper archive."""


class Status(StrEnum):
    """A certificate's (or an instrument's) standing on a given day."""

    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    NO_LONGER_VALID = "no_longer_valid"
    """The instrument failed a later verification (a notice of failure names it)."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Issued, not approved by the lab's head yet: not in force."""


_STANDINGS = (Status.NO_LONGER_VALID.value, Status.AWAITING_APPROVAL.value)
"""The pushed statuses the index keeps beside the revoked and superseded flags."""


def _alnum(text: Any) -> str:
    return "".join(c for c in search_key(str(text or "")) if c.isalnum())


def identity(serial: Any, model: Any) -> str:
    """The key that makes one instrument across labs: serial and model, letters and digits of
    `search_key` only; empty when there is no serial."""
    s = _alnum(serial)
    return f"{s}|{_alnum(model)}" if s else ""


def _text(*parts: Any) -> str:
    return " ".join(search_key(str(p)) for p in parts if p)


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _next(s: Session, counter: str) -> int:
    """The next number of `counter`: its row is locked (read FOR UPDATE) once per transaction
    and held until commit, so numbers become visible in order; later calls count in memory."""
    txn = s.get_transaction()
    cached = s.info.get("hub_counters")
    if cached is None or cached[0] is not txn:  # a new transaction: lock again
        cached = s.info["hub_counters"] = (txn, {})
    held: dict[str, HubCounter] = cached[1]
    row = held.get(counter)
    if row is None:
        row = s.get(HubCounter, counter, with_for_update=True)
        if row is None:  # a database made before the counters' rows were seeded
            row = HubCounter(name=counter, value=0)
        held[counter] = row
    row.value += 1
    s.add(row)
    return row.value


def index_pushed(s: Session, lab_code: str, record: str, key: str, data: dict[str, Any]) -> None:
    """Index the record `data` of type `record` that lab `lab_code` pushed under `key`, in the
    push's session `s`: the caller commits (or rolls back) both together."""
    assert record in RECORD_KINDS
    row = s.get(HubIndex, (lab_code, record, key)) or HubIndex(
        lab_code=lab_code, record=record, key=key, seq=0
    )
    row.seq = _next(s, "log" if record == "certificates" else "register")
    if record == "certificates":
        row.kind = str(data.get("kind") or "")
        row.serial_key = _alnum(data.get("instrument_serial"))
        row.identity = identity(data.get("instrument_serial"), data.get("instrument_model"))
        row.owner_key = _text(data.get("customer_name"))
        row.place_key = ""
        row.issue_date = _date(data.get("issue_date"))
        row.valid_until = _date(data.get("valid_until"))
        row.revoked = bool(data.get("revoked_at"))
        row.superseded = bool(data.get("superseded_by"))
        status = str(data.get("status") or "")
        row.standing = status if status in _STANDINGS else ""
    elif record == "instruments":
        row.kind = str(data.get("type_code") or "")
        row.serial_key = _alnum(data.get("serial"))
        row.identity = identity(data.get("serial"), data.get("model"))
        row.owner_key = _text(data.get("owner_name"), data.get("owner_code"))
        row.place_key = _text(data.get("place_of_use"), data.get("owner_address"))
        row.issue_date = _date(data.get("verified_on"))
        row.valid_until = _date(data.get("valid_until"))
    elif record == "standards":
        row.kind = str(data.get("code") or "")
        row.serial_key = _alnum(data.get("serial"))
        row.owner_key = _text(data.get("name"))
        row.valid_until = _date(data.get("calibration_due"))
    else:
        row.owner_key = _text(data.get("name"), data.get("verifier_card"))
        row.valid_until = _date(data.get("card_expiry"))
    s.add(row)


@dataclass(frozen=True, slots=True)
class CatalogueQuery:
    """What to look for; every field given must match (text fields: folded, as a part)."""

    records: Sequence[str] = ("certificates", "instruments")
    lab: str | None = None
    serial: str | None = None
    owner: str | None = None
    """Owner or customer (instruments, certificates), a standard's or a person's name."""
    place: str | None = None
    """Place of use or owner's address; a certificate matches through its instrument."""
    kind: str | None = None
    """A certificate's kind, an instrument's type code."""
    status: Status | None = None
    limit: int = 200
    """The page size: at most this many results (1 to `MAX_PAGE_SIZE`)."""
    after: "PageMark | None" = None
    """The page after this result (`CataloguePage.next`); the first page when None."""
    before: "PageMark | None" = None
    """The page before this result (`CataloguePage.previous`); not with `after`."""


def page_size(text: str | None, *, default: int, where: str = "limit") -> int:
    """The page size `text` asks for (`default` when not given), 1 to `MAX_PAGE_SIZE`;
    raises `InputError` naming `where` otherwise."""
    if text is None or not text.strip():
        return default
    value = text.strip()
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_PAGE_SIZE):
        raise InputError(
            where, f"expected a page size from 1 to {MAX_PAGE_SIZE}, got '{value[:20]}'"
        )
    return int(value)


_MARK_MAX = 1000
"""The longest page cursor text read (a longer one is not one this catalogue gave)."""


@dataclass(frozen=True, slots=True)
class PageMark:
    """A result's place in the search order (newest change first, then lab, record, key):
    where the next or previous page starts. Its `text` is the ``after``/``before`` cursor of
    the API and the pages; opaque to users, read back by `parse`."""

    seq: int
    lab_code: str
    record: str
    key: str

    @property
    def text(self) -> str:
        """The cursor as links carry it (URL-safe base64 of JSON, no padding)."""
        raw = json.dumps([self.seq, self.lab_code, self.record, self.key], ensure_ascii=False)
        return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")

    @classmethod
    def parse(cls, text: str, *, where: str = "after") -> "PageMark":
        """Read a cursor `text` that `PageMark.text` gave; raises `InputError` naming `where` (the
        parameter) for anything else, a changed or truncated cursor included."""
        problem = InputError(
            where,
            "not a page cursor of this catalogue (changed or cut short); "
            "start again from the first page",
        )
        if len(text) > _MARK_MAX or not text.isascii():
            raise problem
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            seq, lab_code, record, key = json.loads(raw.decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
            raise problem from None
        if (
            type(seq) is not int
            or seq < 0
            or not all(isinstance(v, str) for v in (lab_code, record, key))
            or record not in RECORD_KINDS
            or not 0 < len(lab_code) <= 50
            or len(key) > 300
        ):
            raise problem
        mark = cls(seq, lab_code, record, key)
        if mark.text != text:  # one spelling only: no padding, no other JSON for the same mark
            raise problem
        return mark

    @classmethod
    def of(cls, row: "HubIndex") -> "PageMark":
        """The mark of the result `row`."""
        return cls(row.seq, row.lab_code, row.record, row.key)


@dataclass(frozen=True, slots=True)
class CataloguePage:
    """One page of a search: its results, how many match in all, and where the pages beside
    it start (None when there is none)."""

    hits: list["CatalogueHit"]
    total: int
    next: PageMark | None
    previous: PageMark | None


@dataclass(frozen=True, slots=True)
class CatalogueHit:
    """A record found, as its lab pushed it, with its standing on the day asked."""

    lab_code: str
    record: str
    key: str
    status: Status | None
    data: dict[str, Any] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready data."""
        return {
            "lab_code": self.lab_code,
            "record": self.record,
            "key": self.key,
            "status": self.status.value if self.status else None,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class Recalled:
    """An instrument whose newest certificate, from any lab, has lapsed or lapses soon."""

    serial: str
    model: str
    instrument_name: str
    owner: str
    place: str
    lab_code: str
    """The lab of the newest certificate."""
    number: str
    valid_until: date | None
    state: str
    """lapsed, lapses (within the window) or revoked."""

    def to_dict(self) -> dict[str, Any]:
        """The instrument as JSON-ready data."""
        return {
            "serial": self.serial,
            "model": self.model,
            "instrument_name": self.instrument_name,
            "owner": self.owner,
            "place": self.place,
            "lab_code": self.lab_code,
            "number": self.number,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class LabSummary:
    """A registered lab in the catalogue, with what it pushed."""

    code: str
    name: str
    kinds: tuple[str, ...]
    scope: str
    accreditation: str
    tree_size: int
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The lab as JSON-ready data."""
        return {
            "code": self.code,
            "name": self.name,
            "kinds": list(self.kinds),
            "scope": self.scope,
            "accreditation": self.accreditation,
            "tree_size": self.tree_size,
            "counts": self.counts,
        }


def _status(row: HubIndex, today: date) -> Status | None:
    if row.revoked:
        return Status.REVOKED
    if row.superseded:
        return Status.SUPERSEDED
    if row.standing == Status.NO_LONGER_VALID:
        return Status.NO_LONGER_VALID
    if row.valid_until is not None and row.valid_until < today:
        return Status.EXPIRED
    if row.standing == Status.AWAITING_APPROVAL:
        return Status.AWAITING_APPROVAL
    if row.record == "certificates" or row.valid_until is not None:
        return Status.VALID
    return None


def _has(column: Any, text: str | None) -> Any:
    """`column` (a folded key) contains `text` folded; None when `text` says nothing."""
    return (
        None
        if not text or not search_key(text)
        else col(column).contains(search_key(text), autoescape=True)
    )


class Catalogue:
    """The province's catalogue over the hub `hub`."""

    def __init__(self, hub: "Hub") -> None:
        self.hub = hub

    def search(self, query: CatalogueQuery, *, today: date) -> list[CatalogueHit]:
        """The records matching `query`, newest change first, at most `query.limit` (one
        page: `page` tells how many there are in all and where the next page starts).

        `today` decides which certificates have expired. Raises `LedgerError` when the
        database fails.
        """
        return self.page(query, today=today).hits

    def page(self, query: CatalogueQuery, *, today: date) -> CataloguePage:
        """One page of the records matching `query`: `query.limit` of them from `query.after`
        (or up to `query.before`), in the order newest change first, then lab code, record
        type and key, which holds every record exactly once; with the number matching in
        all and the marks of the pages before and after.

        Walking the pages with `CataloguePage.next` reaches every record once while nothing
        is pushed; a record changed by a push meanwhile moves to the first page. Raises
        `InputError` for a page size outside 1 to `MAX_PAGE_SIZE` or both marks given,
        `LedgerError` when the database fails.
        """
        if not 1 <= query.limit <= MAX_PAGE_SIZE:
            raise InputError(
                "limit", f"expected a page size from 1 to {MAX_PAGE_SIZE}, got {query.limit}"
            )
        if query.after is not None and query.before is not None:
            raise InputError("before", "give either after or before, not both")
        conds = self._conditions(query, today)
        position: list[Any] = []
        backwards = query.before is not None
        if query.after is not None:
            position.append(_beyond(query.after, later=True))
        elif query.before is not None:
            position.append(_beyond(query.before, later=False))
        order: list[Any] = [
            col(HubIndex.seq).desc(),
            col(HubIndex.lab_code),
            col(HubIndex.record),
            col(HubIndex.key),
        ]
        if backwards:
            order = [
                col(HubIndex.seq),
                col(HubIndex.lab_code).desc(),
                col(HubIndex.record).desc(),
                col(HubIndex.key).desc(),
            ]
        with self.hub.session() as s:
            total = s.exec(select(func.count()).select_from(HubIndex).where(*conds)).one()
            # the records themselves in the same query (one per page, not one per result)
            found = list(
                s.exec(
                    select(HubIndex, HubCertificate.record_json, HubRecord.record_json)
                    .outerjoin(
                        HubCertificate,
                        and_(
                            col(HubIndex.record) == "certificates",
                            col(HubCertificate.lab_code) == col(HubIndex.lab_code),
                            col(HubCertificate.number) == col(HubIndex.key),
                        ),
                    )
                    .outerjoin(
                        HubRecord,
                        and_(
                            col(HubRecord.lab_code) == col(HubIndex.lab_code),
                            col(HubRecord.kind) == col(HubIndex.record),
                            col(HubRecord.key) == col(HubIndex.key),
                        ),
                    )
                    .where(*conds, *position)
                    .order_by(*order)
                    .limit(query.limit + 1)
                )
            )
        more = len(found) > query.limit
        found = found[: query.limit]
        if backwards:
            found.reverse()
        rows = [row for row, _, _ in found]
        hits = [
            CatalogueHit(
                r.lab_code, r.record, r.key, _status(r, today), json.loads(cert or rec or "{}")
            )
            for r, cert, rec in found
        ]
        first = PageMark.of(rows[0]) if rows else None
        last = PageMark.of(rows[-1]) if rows else None
        if backwards:
            return CataloguePage(hits, int(total), last, first if more else None)
        return CataloguePage(
            hits, int(total), last if more else None, first if query.after else None
        )

    def _conditions(self, query: CatalogueQuery, today: date) -> list[Any]:
        """The conditions a record matching `query` meets (on `today`)."""
        records = [r for r in query.records if r in RECORD_KINDS]
        conds: list[Any] = [col(HubIndex.record).in_(records)]
        if query.lab:
            conds.append(HubIndex.lab_code == query.lab)
        if query.serial and _alnum(query.serial):
            conds.append(col(HubIndex.serial_key).contains(_alnum(query.serial), autoescape=True))
        if (owner := _has(HubIndex.owner_key, query.owner)) is not None:
            conds.append(owner)
        if query.kind:
            conds.append(HubIndex.kind == query.kind)
        if (place := _has(HubIndex.place_key, query.place)) is not None:
            # A certificate carries no place: it is where its instrument (any lab's) is.
            placed = select(HubIndex.identity).where(
                HubIndex.record == "instruments", HubIndex.identity != "", place
            )
            conds.append(
                or_(
                    place,
                    and_(
                        col(HubIndex.record) == "certificates", col(HubIndex.identity).in_(placed)
                    ),
                )
            )
        match query.status:
            case None:
                pass
            case Status.REVOKED:
                conds.append(col(HubIndex.revoked).is_(True))
            case Status.SUPERSEDED:
                conds += [col(HubIndex.revoked).is_(False), col(HubIndex.superseded).is_(True)]
            case Status.NO_LONGER_VALID:
                conds += [
                    col(HubIndex.revoked).is_(False),
                    col(HubIndex.superseded).is_(False),
                    col(HubIndex.standing) == Status.NO_LONGER_VALID.value,
                ]
            case Status.AWAITING_APPROVAL:
                conds += [
                    col(HubIndex.revoked).is_(False),
                    col(HubIndex.superseded).is_(False),
                    col(HubIndex.standing) == Status.AWAITING_APPROVAL.value,
                    or_(col(HubIndex.valid_until).is_(None), col(HubIndex.valid_until) >= today),
                ]
            case Status.EXPIRED | Status.VALID:
                conds += [col(HubIndex.revoked).is_(False), col(HubIndex.superseded).is_(False)]
                if query.status is Status.EXPIRED:
                    conds.append(col(HubIndex.standing) != Status.NO_LONGER_VALID.value)
                    conds.append(col(HubIndex.valid_until) < today)
                else:
                    conds.append(col(HubIndex.standing) == "")
                    conds.append(
                        or_(
                            col(HubIndex.valid_until) >= today,
                            and_(
                                col(HubIndex.valid_until).is_(None),
                                col(HubIndex.record) == "certificates",
                            ),
                        )
                    )
        return conds

    def recall(
        self, *, today: date, within_days: int = 0, place: str | None = None
    ) -> list[Recalled]:
        """Instruments whose newest certificate from any lab has lapsed (or was revoked), or
        lapses within `within_days` after `today`; only those at `place` (folded) if given.

        The newest certificate is the one issued last (superseded ones do not count: their
        amendment does), so an instrument re-verified by lab B after lab A's certificate
        lapsed is not listed. Certificates without a validity date (most calibrations) never
        lapse. Sorted by validity date, then serial.
        """
        horizon = today + timedelta(days=within_days)
        with self.hub.session() as s:
            certs = list(
                s.exec(
                    select(HubIndex).where(
                        HubIndex.record == "certificates",
                        HubIndex.identity != "",
                        col(HubIndex.superseded).is_(False),
                    )
                )
            )
            newest: dict[str, HubIndex] = {}
            for row in certs:
                held = newest.get(row.identity)
                if held is None or _order(row) > _order(held):
                    newest[row.identity] = row
            due = {
                ident: row
                for ident, row in newest.items()
                if row.revoked
                or row.standing == Status.NO_LONGER_VALID
                or (row.valid_until is not None and row.valid_until <= horizon)
            }
            if not due:
                return []
            where = _instruments_at(s, due, place)
            out: list[Recalled] = []
            for ident, row in due.items():
                if place and ident not in where:
                    continue
                cert = _data(s, row)
                inst = where.get(ident, {})
                state = (
                    "revoked"
                    if row.revoked
                    else "no_longer_valid"
                    if row.standing == Status.NO_LONGER_VALID
                    else "lapsed"
                    if row.valid_until is not None and row.valid_until < today
                    else "lapses"
                )
                out.append(
                    Recalled(
                        serial=str(cert.get("instrument_serial") or ""),
                        model=str(cert.get("instrument_model") or ""),
                        instrument_name=str(cert.get("instrument_name") or ""),
                        owner=str(inst.get("owner_name") or cert.get("customer_name") or ""),
                        place=str(inst.get("place_of_use") or inst.get("owner_address") or ""),
                        lab_code=row.lab_code,
                        number=row.key,
                        valid_until=row.valid_until,
                        state=state,
                    )
                )
        return sorted(out, key=lambda r: (r.valid_until or date.min, r.serial))

    def index_missing(self) -> int:
        """Index every pushed record the catalogue does not hold yet (records a hub stored
        before it had the catalogue), in the order they were stored; returns how many."""
        done = 0
        with self.hub.session() as s:
            held = set(s.exec(select(HubIndex.lab_code, HubIndex.record, HubIndex.key)))
            certs = s.exec(select(HubCertificate).order_by(col(HubCertificate.log_index)))
            for cert in certs:
                if (cert.lab_code, "certificates", cert.number) not in held:
                    index_pushed(
                        s, cert.lab_code, "certificates", cert.number, json.loads(cert.record_json)
                    )
                    done += 1
            for rec in s.exec(select(HubRecord)):
                if (rec.lab_code, rec.kind, rec.key) not in held and rec.kind in RECORD_KINDS:
                    index_pushed(s, rec.lab_code, rec.kind, rec.key, json.loads(rec.record_json))
                    done += 1
            s.commit()
        return done

    def set_lab_profile(
        self,
        code: str,
        *,
        kinds: Iterable[str] = (),
        scope: str | None = None,
        accreditation: str | None = None,
        paper_total: int | None = None,
        paper_as_of: date | None = None,
    ) -> HubLabProfile:
        """Record what registered lab `code` does (`LAB_KINDS`), its scope, accreditation and
        paper archive (`paper_total` certificates on paper, counted on `paper_as_of`); a value
        not given stays as it was. Raises `ConfigError` for an unregistered lab, an unknown
        kind, a negative paper total, or a date without a paper total."""
        from certissuer.errors import ConfigError

        if paper_total is not None and paper_total < 0:
            raise ConfigError(f"lab {code}: the paper total must be >= 0, got {paper_total}")
        kinds = list(kinds)
        for kind in kinds:
            if kind not in LAB_KINDS:
                raise ConfigError(
                    f"lab {code}: unknown kind '{kind}'; expected one of {', '.join(LAB_KINDS)}"
                )
        with self.hub.session() as s:
            if s.get(HubLab, code) is None:
                raise ConfigError(f"lab {code} is not registered at the hub")
            profile = s.get(HubLabProfile, code, with_for_update=True) or HubLabProfile(code=code)
            if kinds:
                profile.kinds = ",".join(dict.fromkeys(kinds))
            if scope is not None:
                profile.scope = scope
            if accreditation is not None:
                profile.accreditation = accreditation
            if paper_total is not None:
                profile.paper_total = paper_total
            if paper_as_of is not None:
                if profile.paper_total is None:
                    raise ConfigError(
                        f"lab {code}: a paper archive date without a paper total",
                        hint="give --paper-total N with --paper-as-of",
                    )
                profile.paper_as_of = paper_as_of
            s.add(profile)
            s.commit()
            return profile

    def labs(self, *, kind: str | None = None, text: str | None = None) -> list[LabSummary]:
        """The registered labs (doing `kind`; whose name or scope contains `text`, folded),
        with how many records of each type they pushed."""
        with self.hub.session() as s:
            counts: dict[tuple[str, str], int] = {
                (lab, rec): n
                for lab, rec, n in s.exec(
                    select(HubIndex.lab_code, HubIndex.record, func.count()).group_by(
                        HubIndex.lab_code, HubIndex.record
                    )
                )
            }
            out = []
            for lab in s.exec(select(HubLab).order_by(col(HubLab.code))):
                profile = s.get(HubLabProfile, lab.code) or HubLabProfile(code=lab.code)
                kinds = tuple(k for k in profile.kinds.split(",") if k)
                if kind and kind not in kinds:
                    continue
                if text and search_key(text) not in _text(lab.name, lab.code, profile.scope):
                    continue
                out.append(
                    LabSummary(
                        lab.code,
                        lab.name,
                        kinds,
                        profile.scope,
                        profile.accreditation,
                        lab.tree_size,
                        {r: counts.get((lab.code, r), 0) for r in RECORD_KINDS},
                    )
                )
            return out


def _beyond(mark: PageMark, *, later: bool) -> Any:
    """The records after `mark` in the search order (`later`), or before it."""
    seq, lab, record, key = (
        col(HubIndex.seq),
        col(HubIndex.lab_code),
        col(HubIndex.record),
        col(HubIndex.key),
    )
    if later:  # seq descending, then lab, record, key ascending
        return or_(
            seq < mark.seq,
            and_(seq == mark.seq, lab > mark.lab_code),
            and_(seq == mark.seq, lab == mark.lab_code, record > mark.record),
            and_(seq == mark.seq, lab == mark.lab_code, record == mark.record, key > mark.key),
        )
    return or_(
        seq > mark.seq,
        and_(seq == mark.seq, lab < mark.lab_code),
        and_(seq == mark.seq, lab == mark.lab_code, record < mark.record),
        and_(seq == mark.seq, lab == mark.lab_code, record == mark.record, key < mark.key),
    )


def _order(row: HubIndex) -> tuple[date, date, int]:
    return (row.issue_date or date.min, row.valid_until or date.min, row.seq)


def _data(s: Session, row: HubIndex) -> dict[str, Any]:
    if row.record == "certificates":
        cert = s.get(HubCertificate, (row.lab_code, row.key))
        text = cert.record_json if cert else "{}"
    else:
        rec = s.get(HubRecord, (row.lab_code, row.record, row.key))
        text = rec.record_json if rec else "{}"
    data: dict[str, Any] = json.loads(text)
    return data


def _instruments_at(
    s: Session, due: dict[str, HubIndex], place: str | None
) -> dict[str, dict[str, Any]]:
    """The newest register row (any lab) of each instrument in `due`, at `place` if given."""
    conds: list[Any] = [HubIndex.record == "instruments", col(HubIndex.identity).in_(list(due))]
    if (at := _has(HubIndex.place_key, place)) is not None:
        conds.append(at)
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for row in s.exec(select(HubIndex).where(*conds)):
        if row.identity not in found or row.seq > found[row.identity][0]:
            found[row.identity] = (row.seq, _data(s, row))
    return {ident: data for ident, (_, data) in found.items()}
