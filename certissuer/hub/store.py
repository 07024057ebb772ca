"""The hub's store: registered labs, the logs it witnesses, and the records labs push.

>>> hub = Hub.open("postgresql+psycopg://hub@db/hub")  # doctest: +SKIP
>>> hub.register_lab("DT01", "Trung tâm Kỹ thuật Đồng Tháp", token_keys=load_public_keys(p))
... # doctest: +SKIP
>>> hub.accept(envelope)  # doctest: +SKIP

`Hub.accept` is the witness: a push is stored only when its signature and its checkpoint's
check with the lab's registered keys and the checkpoint extends, by a valid RFC 9162
consistency proof, the log the hub already holds for the lab. Anything else is refused with
`PushRefused` naming the lab and the sizes, and changes nothing. Every certificate record of
a push must be proven in that checkpoint, leaf by leaf, and be what its leaves hold
(`certissuer.hub.inclusion`): one record that is not refuses the whole push (all or nothing).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from certissuer import merkle
from certissuer.errors import ConfigError, InputError, LedgerError
from certissuer.hub.catalogue import index_pushed
from certissuer.hub.inclusion import record_problem
from certissuer.hub.push import PushRefused, open_push
from certissuer.hub.tables import HubCertificate, HubCheckpoint, HubLab, HubLabKey, HubRecord
from certissuer.ledger import Checkpoint
from certissuer.report.sector import RECORD_TYPES, Cursor
from certissuer.token import TokenPublicKey

__all__ = ["Hub", "HubHead", "PushResult", "certificate_kid", "keys_pem"]

_logger = logging.getLogger(__name__)

_RECORD_KEYS = {
    "instruments": ("owner_code", "type_code", "serial"),
    "standards": ("lab_code", "code"),
    "inspectors": ("lab_code", "name"),
}
"""What names one register row of a lab at the hub."""


@dataclass(frozen=True, slots=True)
class HubHead:
    """What the hub holds of a lab's log: size, root, and the cursor of the last push."""

    lab_code: str
    tree_size: int
    root_hash: str | None
    cursor: str | None


@dataclass(frozen=True, slots=True)
class PushResult:
    """An accepted push: the log sizes before and after, and what it changed."""

    lab_code: str
    from_size: int
    tree_size: int
    cursor: str
    stored: int
    """Records new or changed."""
    unchanged: int
    """Records the hub already held as pushed."""


def _pem_key(pem: str) -> TokenPublicKey:
    """The public key of `pem` (as `HubLabKey.pem` holds it)."""
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
    return TokenPublicKey.of(public)


def certificate_kid(pem: bytes) -> str:
    """A certificate's id at the hub: the first 4 bytes of the SHA-256 of its DER, hex.

    Raises `ConfigError` when `pem` is not a PEM certificate.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError("expected a PEM certificate") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()[:4].hex()


def keys_pem(keys: Sequence[TokenPublicKey]) -> str:
    """`keys` as PEM public keys, one after another (never a private key)."""
    return "".join(k.pem().decode() for k in keys)


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


class Hub:
    """The province's hub database (PostgreSQL, or SQLite for a trial), opened on `engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Hub:
        """Open the hub database at `url`, creating or upgrading its schema (`upgrade`).

        Raises `ConfigError` for an unusable URL and `LedgerError` when the database fails.
        """
        try:
            engine = create_engine(url)
        except (SQLAlchemyError, ValueError) as exc:
            raise ConfigError(f"hub database URL is not usable: {exc}") from None
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # BEGIN IMMEDIATE below serialises writers

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        hub = cls(engine)
        hub.upgrade()
        return hub

    def upgrade(self) -> str:
        """Bring the hub's schema to the newest revision (Alembic, version table
        ``hub_alembic_version``); return the revision reached.

        A new database gets every table; one made before the hub's migrations (no version
        table) is adopted, keeping every row (`certissuer.hub.migrations`). Raises
        `LedgerError` when the database fails.
        """
        from certissuer.hub.migrations import upgrade

        try:
            return upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the hub database: {exc.__class__.__name__}") from exc

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session; database failures become `LedgerError`."""
        try:
            with Session(self.engine, expire_on_commit=False) as s:
                yield s
        except SQLAlchemyError as exc:
            raise LedgerError(f"the hub database failed: {exc.__class__.__name__}") from exc

    # -- the register of labs ----------------------------------------------------------------

    def register_lab(
        self,
        code: str,
        name: str | None = None,
        *,
        token_keys: Sequence[TokenPublicKey] = (),
        checkpoint_keys: Sequence[TokenPublicKey] = (),
        signing_cert_pem: bytes | None = None,
        rotate: bool = False,
        now: datetime | None = None,
    ) -> HubLab:
        """Register lab `code` named `name` with its public keys, or, with `rotate`, add keys.

        `token_keys` check its QR tokens, pushes and (unless checkpoint keys are registered)
        its checkpoints; `signing_cert_pem` is the certificate of its PDF signing key, kept for
        the catalogue. A lab already registered is refused unless `rotate`: then the keys given
        are added beside the ones it holds (none is replaced; `retire_key` ends one's use), and
        a given `name` renames it. Each key is recorded with the time it was added
        (`HubLabKey`). Rotating keeps the log the hub holds: the lab still has to extend it.

        Raises `ConfigError` for a new lab without a name or token key, a registered lab
        without `rotate` (or `rotate` for an unregistered one), a rotation adding no key, a
        retired key given again, or a key another lab holds.
        """
        at = (now or datetime.now(UTC)).astimezone(UTC)
        given: list[tuple[str, str, str]] = [
            ("token", k.kid.hex(), k.pem().decode()) for k in token_keys
        ] + [("checkpoint", k.kid.hex(), k.pem().decode()) for k in checkpoint_keys]
        if signing_cert_pem:
            given.append(("signing", certificate_kid(signing_cert_pem), signing_cert_pem.decode()))
        with self.session() as s:
            lab = s.get(HubLab, code, with_for_update=True)
            if lab is not None and not rotate:
                raise ConfigError(
                    f"lab {code} is already registered; its keys are not replaced",
                    hint="to add a new key beside the old ones: hub register-lab --code "
                    f"{code} --rotate ...; to end an old key's use: --retire KID",
                )
            if lab is None and rotate:
                raise ConfigError(f"lab {code} is not registered: nothing to rotate")
            if lab is None and (not name or not token_keys):
                raise ConfigError(
                    f"lab {code}: a name and at least one token public key are needed"
                )
            held = {
                (k.kind, k.kid): k
                for k in s.exec(select(HubLabKey).where(HubLabKey.lab_code == code))
            }
            for kind, kid, _pem in given:
                others = s.exec(
                    select(HubLabKey.lab_code).where(
                        HubLabKey.kid == kid,
                        HubLabKey.lab_code != code,
                        HubLabKey.kind != "signing",
                    )
                ).first()
                if others is not None and kind != "signing":
                    raise ConfigError(
                        f"lab {code}: the {kind} key {kid} is registered for lab {others}",
                        hint="each lab signs with keys of its own",
                    )
                old = held.get((kind, kid))
                if old is not None and old.retired_at is not None:
                    raise ConfigError(
                        f"lab {code}: the {kind} key {kid} was retired at "
                        f"{old.retired_at.isoformat(timespec='seconds')}; a retired key is not "
                        "taken back"
                    )
            new = [
                (kind, kid, pem)
                for kind, kid, pem in dict.fromkeys(given)
                if (kind, kid) not in held
            ]
            if lab is not None and not new and name in (None, lab.name):
                raise ConfigError(f"lab {code}: every key given is already registered for it")
            if lab is None:
                assert name is not None
                lab = HubLab(code=code, name=name, registered_at=at)
            elif name:
                lab.name = name
            s.add(lab)
            for kind, kid, pem in new:
                s.add(HubLabKey(lab_code=code, kind=kind, pem=pem, kid=kid, added_at=at))
            s.commit()
            return lab

    def retire_key(self, code: str, kid: str, *, now: datetime | None = None) -> list[HubLabKey]:
        """End the use of lab `code`'s key `kid` (every kind it is registered as) at `now`.

        From then on pushes and checkpoints signed by it are refused, and a token it signed
        dated after that day is NOT GENUINE; tokens dated up to it keep verifying. Returns the
        keys retired. Raises `ConfigError` when the lab holds no such key in use, or when the
        lab would be left without a token key in use (add the new one first, ``--rotate``).
        """
        at = (now or datetime.now(UTC)).astimezone(UTC)
        kid = kid.strip().lower()
        with self.session() as s:
            if s.get(HubLab, code, with_for_update=True) is None:
                raise ConfigError(f"lab {code} is not registered at the hub")
            keys = list(s.exec(select(HubLabKey).where(HubLabKey.lab_code == code)))
            retiring = [k for k in keys if k.kid == kid and k.in_use(at)]
            if not retiring:
                held = ", ".join(sorted({k.kid for k in keys if k.in_use(at)})) or "none"
                raise ConfigError(
                    f"lab {code} holds no key {kid} in use (keys in use: {held})",
                    hint="'certissuer hub labs' lists each lab's keys",
                )
            left = [k for k in keys if k.kind == "token" and k.in_use(at) and k not in retiring]
            if any(k.kind == "token" for k in retiring) and not left:
                raise ConfigError(
                    f"lab {code}: retiring key {kid} leaves it no token key in use",
                    hint="add the new key first: hub register-lab --code "
                    f"{code} --rotate --token-key NEW.pem",
                )
            for k in retiring:
                k.retired_at = at
                s.add(k)
            s.commit()
            return retiring

    def lab_keys(self, code: str, *, session: Session | None = None) -> list[HubLabKey]:
        """Every key lab `code` has registered, retired ones too, oldest first (read in
        `session` when given: a writer holding SQLite's lock must not wait for itself)."""
        q = (
            select(HubLabKey)
            .where(HubLabKey.lab_code == code)
            .order_by(col(HubLabKey.added_at), col(HubLabKey.id))
        )
        if session is not None:
            return list(session.exec(q))
        with self.session() as s:
            return list(s.exec(q))

    def labs(self) -> list[HubLab]:
        """Every registered lab, by code."""
        with self.session() as s:
            return list(s.exec(select(HubLab).order_by(col(HubLab.code))))

    def lab(self, code: str) -> HubLab | None:
        """The registered lab `code`, or None."""
        with self.session() as s:
            return s.get(HubLab, code)

    def head(self, code: str) -> HubHead | None:
        """What the hub holds of lab `code`'s log, or None when it is not registered."""
        lab = self.lab(code)
        if lab is None:
            return None
        return HubHead(lab.code, lab.tree_size, lab.root_hash, lab.cursor)

    def token_keys(
        self, lab: HubLab, *, at: datetime | None = None, session: Session | None = None
    ) -> list[TokenPublicKey]:
        """The keys in use (at `at`, default now) that check `lab`'s pushes."""
        moment = at or datetime.now(UTC)
        return [
            _pem_key(k.pem)
            for k in self.lab_keys(lab.code, session=session)
            if k.kind == "token" and k.in_use(moment)
        ]

    def token_keys_with_id(self, kid: str) -> list[tuple[HubLab, TokenPublicKey, datetime | None]]:
        """The token keys registered with key id `kid` (hex, as tokens carry it), each with its
        lab and when its use ended (None: in use), by lab code: one query, however many labs
        the hub holds."""
        q = (
            select(HubLabKey, HubLab)
            .where(
                HubLabKey.kind == "token",
                HubLabKey.kid == kid.lower(),
                HubLabKey.lab_code == HubLab.code,
            )
            .order_by(col(HubLab.code), col(HubLabKey.added_at), col(HubLabKey.id))
        )
        with self.session() as s:
            return [(lab, _pem_key(k.pem), k.retired_at) for k, lab in s.exec(q)]

    def checkpoint_keys(
        self, lab: HubLab, *, at: datetime | None = None, session: Session | None = None
    ) -> list[TokenPublicKey]:
        """The keys in use (at `at`, default now) that check `lab`'s checkpoints: its
        checkpoint keys in use, or its token keys in use when it has none."""
        moment = at or datetime.now(UTC)
        keys = [
            _pem_key(k.pem)
            for k in self.lab_keys(lab.code, session=session)
            if k.kind == "checkpoint" and k.in_use(moment)
        ]
        return keys or self.token_keys(lab, at=moment, session=session)

    # -- the witness -------------------------------------------------------------------------

    def accept(self, envelope: Any, *, now: datetime | None = None) -> PushResult:
        """Check and store the push `envelope` (`certissuer.hub.push.make_push`).

        Raises `PushRefused` (nothing stored) when the lab is not registered, the push or
        its checkpoint is not signed by a key of the lab in use at `now` (a retired key signs
        nothing new), the checkpoint is not a consistent extension of the log the hub holds for
        the lab, or a certificate record is not proven in the checkpoint's log as it is pushed
        (naming lab, number and why).
        """
        now = now or datetime.now(UTC)
        named: list[str] = []

        def keys_of(code: str) -> list[TokenPublicKey] | None:
            named.append(code)
            lab = self.lab(code)
            if lab is None:
                return None
            return self.token_keys(lab, at=now) + self.checkpoint_keys(lab, at=now)

        try:
            payload = open_push(envelope, keys_of)
        except PushRefused:
            self._refuse_if_retired(named, envelope, "push")
            raise
        code: str = payload["lab_code"]
        try:
            cp = Checkpoint.from_json(payload.get("checkpoint"), origin=f"lab {code}'s push")
        except LedgerError as exc:
            raise PushRefused(str(exc)) from None
        export: dict[str, Any] = payload["export"]
        try:
            cursor = Cursor.parse(str(export.get("cursor")))
        except InputError:
            raise PushRefused(f"lab {code}: the export's cursor is not readable") from None
        with self.session() as s:
            lab = s.get(HubLab, code, with_for_update=True)
            if lab is None:  # deregistered meanwhile
                raise PushRefused(f"lab {code} is not registered at the hub")
            self._check_checkpoint(
                s, lab, cp, payload.get("from_size"), payload.get("consistency"), at=now
            )
            if cursor.log > cp.tree_size:
                raise PushRefused(
                    f"lab {code}: the export reaches log size {cursor.log}, beyond its "
                    f"checkpoint of size {cp.tree_size}"
                )
            from_size = lab.tree_size
            self._check_inclusion(lab, cp, export, payload.get("inclusion"))
            stored, unchanged = self._store_records(s, lab, cp, export)
            if cp.tree_size > lab.tree_size or lab.root_hash is None:
                s.add(
                    HubCheckpoint(
                        lab_code=code,
                        tree_size=cp.tree_size,
                        root_hash=cp.root_hash,
                        at=cp.at,
                        kid=cp.kid,
                        signature=cp.signature,
                        received_at=now,
                    )
                )
                lab.tree_size, lab.root_hash = cp.tree_size, cp.root_hash
                stored += 1
            held_cursor = Cursor.parse(lab.cursor) if lab.cursor else None
            if held_cursor is None or (
                cursor.log >= held_cursor.log and cursor.register >= held_cursor.register
            ):
                lab.cursor = cursor.text  # never back: a replayed older push keeps the newer
            if stored:
                lab.pushed_at = now
            s.add(lab)
            s.commit()
        _logger.debug("lab %s: log %d -> %d, %d stored", code, from_size, cp.tree_size, stored)
        return PushResult(code, from_size, lab.tree_size, lab.cursor or "", stored, unchanged)

    def _refuse_if_retired(
        self, named: list[str], envelope: Any, what: str, *, session: Session | None = None
    ) -> None:
        """Raise `PushRefused` naming the retirement when `envelope`'s key is a retired key of
        the lab its payload named (a clearer refusal than "not a registered key")."""
        kid = str(envelope.get("kid", "")).lower() if isinstance(envelope, dict) else ""
        for code in named[-1:]:
            for k in self.lab_keys(code, session=session):
                if k.kid == kid and k.retired_at is not None:
                    raise PushRefused(
                        f"lab {code}: the {what} is signed by key {kid}, retired at "
                        f"{k.retired_at.isoformat(timespec='seconds')}",
                        hint="sign with the lab's key in use (hub register-lab --rotate adds "
                        "a new one)",
                    )

    def _check_checkpoint(
        self,
        s: Session,
        lab: HubLab,
        cp: Checkpoint,
        from_size: Any,
        proof: Any,
        *,
        at: datetime | None = None,
    ) -> None:
        code, held = lab.code, lab.tree_size
        if cp.lab_code != code:
            raise PushRefused(f"lab {code}: the checkpoint is lab {cp.lab_code}'s")
        keys = self.checkpoint_keys(lab, at=at, session=s)
        if not any(
            k.kid.hex() == cp.kid and k.verify(bytes.fromhex(cp.signature), cp.message())
            for k in keys
        ):
            self._refuse_if_retired([code], {"kid": cp.kid}, "checkpoint", session=s)
            raise PushRefused(
                f"lab {code}: the checkpoint of size {cp.tree_size} is not signed by a key "
                f"in use for the lab (key id {cp.kid})"
            )
        refused = PushRefused(
            f"lab {code}: checkpoint of size {cp.tree_size} is not an extension of the "
            f"size-{held} log the hub holds",
            hint="the lab's log was rolled back, forked or rewritten; the hub keeps what it "
            "witnessed",
        )
        if held == 0 or self._witnessed(s, lab, cp):
            return  # the first push, or a checkpoint the hub already holds (a replay)
        if cp.tree_size < held or from_size != held or not isinstance(proof, list):
            raise refused
        try:
            path = [bytes.fromhex(str(h)) for h in proof]
        except ValueError:
            raise refused from None
        assert lab.root_hash is not None
        if not merkle.verify_consistency(
            held, cp.tree_size, path, bytes.fromhex(lab.root_hash), bytes.fromhex(cp.root_hash)
        ):
            raise refused

    @staticmethod
    def _check_inclusion(lab: HubLab, cp: Checkpoint, export: dict[str, Any], proofs: Any) -> None:
        """Refuse the whole push unless every certificate record it carries is proven in the
        checkpointed log and matches its logged events (`certissuer.hub.inclusion`)."""
        if not isinstance(proofs, dict):
            proofs = {}
        root = bytes.fromhex(cp.root_hash)
        for record in _records(export, "certificates", lab.code):
            number = record.get("number")
            problem = record_problem(record, proofs.get(number), cp.tree_size, root)
            if problem is not None:
                raise PushRefused(
                    f"lab {lab.code}: certificate {number}: {problem}",
                    hint="nothing of this push was stored; the lab's records must be the ones "
                    "its log holds",
                )

    def _witnessed(self, s: Session, lab: HubLab, cp: Checkpoint) -> bool:
        """True when the hub already accepted `cp` of `lab`: every checkpoint it accepted
        extended the one before, so each is a prefix of the log it holds."""
        if cp.tree_size == lab.tree_size:
            return cp.root_hash == lab.root_hash
        found = s.exec(
            select(HubCheckpoint.id).where(
                HubCheckpoint.lab_code == lab.code,
                HubCheckpoint.tree_size == cp.tree_size,
                HubCheckpoint.root_hash == cp.root_hash,
            )
        ).first()
        return found is not None

    def _store_records(
        self, s: Session, lab: HubLab, cp: Checkpoint, export: dict[str, Any]
    ) -> tuple[int, int]:
        stored = unchanged = 0
        code = lab.code
        for record in _records(export, "certificates", code):
            number, log_index = record.get("number"), record.get("log_index")
            if not isinstance(number, str) or not isinstance(log_index, int):
                raise PushRefused(f"lab {code}: a certificate record has no number or log index")
            if record.get("lab_code") != code:
                raise PushRefused(
                    f"lab {code}: certificate {number} is lab {record.get('lab_code')}'s"
                )
            if not 0 <= log_index < cp.tree_size:
                raise PushRefused(
                    f"lab {code}: certificate {number} is at log index {log_index}, outside "
                    f"the checkpoint of size {cp.tree_size}"
                )
            text = json.dumps(record, sort_keys=True, ensure_ascii=False)
            row = s.get(HubCertificate, (code, number))
            if row is not None and row.record_json == text:
                unchanged += 1
                continue
            if row is not None and row.log_index > log_index:
                unchanged += 1  # an older state of a certificate the hub holds newer
                continue
            row = row or HubCertificate(
                lab_code=code, number=number, kind="", log_index=0, record_json=""
            )
            row.kind = str(record.get("kind") or "")
            row.issue_date = _date(record.get("issue_date"))
            row.valid_until = _date(record.get("valid_until"))
            row.revoked_at = record.get("revoked_at")
            row.superseded_by = record.get("superseded_by")
            row.pdf_sha256 = record.get("pdf_sha256")
            row.log_index = log_index
            row.record_json = text
            s.add(row)
            index_pushed(s, code, "certificates", number, record)
            stored += 1
        for kind, fields in _RECORD_KEYS.items():
            for record in _records(export, kind, code):
                key = "|".join(str(record.get(f) or "") for f in fields)
                text = json.dumps(record, sort_keys=True, ensure_ascii=False)
                existing = s.get(HubRecord, (code, kind, key))
                if existing is not None and (
                    existing.record_json == text
                    or json.loads(existing.record_json).get("change_seq", 0)
                    > (record.get("change_seq") or 0)
                ):
                    unchanged += 1  # as held, or an older state of a row the hub holds newer
                    continue
                existing = existing or HubRecord(lab_code=code, kind=kind, key=key, record_json="")
                existing.record_json = text
                s.add(existing)
                index_pushed(s, code, kind, key, record)
                stored += 1
        return stored, unchanged

    # -- what the hub holds ------------------------------------------------------------------

    def certificate(self, code: str, number: str) -> HubCertificate | None:
        """The pushed summary of certificate `number` of lab `code`, or None."""
        with self.session() as s:
            return s.get(HubCertificate, (code, number))

    def certificates(self, code: str | None = None) -> list[HubCertificate]:
        """The pushed certificate summaries (of lab `code`), by lab and number."""
        with self.session() as s:
            q = select(HubCertificate).order_by(
                col(HubCertificate.lab_code), col(HubCertificate.number)
            )
            if code is not None:
                q = q.where(HubCertificate.lab_code == code)
            return list(s.exec(q))

    def records(self, code: str, kind: str) -> list[HubRecord]:
        """The pushed register rows of `kind` (instruments, standards, inspectors) of `code`."""
        with self.session() as s:
            return list(
                s.exec(
                    select(HubRecord)
                    .where(HubRecord.lab_code == code, HubRecord.kind == kind)
                    .order_by(col(HubRecord.key))
                )
            )

    def checkpoints(self, code: str) -> list[HubCheckpoint]:
        """The checkpoints of lab `code` the hub accepted, oldest first."""
        with self.session() as s:
            return list(
                s.exec(
                    select(HubCheckpoint)
                    .where(HubCheckpoint.lab_code == code)
                    .order_by(col(HubCheckpoint.id))
                )
            )


def _records(export: dict[str, Any], kind: str, code: str) -> Sequence[dict[str, Any]]:
    assert kind in RECORD_TYPES
    rows = export.get(kind, [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise PushRefused(f"lab {code}: the export's {kind} are not a list of records")
    return rows
