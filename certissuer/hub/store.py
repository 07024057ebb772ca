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

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

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
from certissuer.hub.tables import HUB_METADATA, HubCertificate, HubCheckpoint, HubLab, HubRecord
from certissuer.ledger import Checkpoint
from certissuer.report.sector import RECORD_TYPES, Cursor
from certissuer.token import TokenPublicKey

__all__ = ["Hub", "HubHead", "PushResult", "keys_pem"]

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


def _pem_keys(text: str | None) -> list[TokenPublicKey]:
    """The public keys of the PEM blocks in `text` (as `keys_pem` wrote them)."""
    keys: list[TokenPublicKey] = []
    for block in (text or "").split("-----END PUBLIC KEY-----")[:-1]:
        public = serialization.load_pem_public_key((block + "-----END PUBLIC KEY-----\n").encode())
        assert isinstance(public, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
        keys.append(TokenPublicKey.of(public))
    return keys


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
        """Open the hub database at `url`, creating its tables (`HUB_METADATA`) when missing.

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

        try:
            HUB_METADATA.create_all(engine)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the hub database: {exc.__class__.__name__}") from exc
        return cls(engine)

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
        name: str,
        *,
        token_keys: Sequence[TokenPublicKey],
        checkpoint_keys: Sequence[TokenPublicKey] = (),
        signing_cert_pem: bytes | None = None,
        now: datetime | None = None,
    ) -> HubLab:
        """Register lab `code` named `name` with its public keys, or replace its keys and name.

        `token_keys` check its QR tokens, pushes and (unless `checkpoint_keys` are given) its
        checkpoints; `signing_cert_pem` is the certificate of its PDF signing key, kept for the
        catalogue. Replacing keys keeps the log the hub holds: the lab still has to extend it.
        Raises `ConfigError` when `token_keys` is empty.
        """
        if not token_keys:
            raise ConfigError(f"lab {code}: at least one token public key is needed")
        with self.session() as s:
            lab = s.get(HubLab, code, with_for_update=True)
            if lab is None:
                lab = HubLab(
                    code=code,
                    name=name,
                    token_keys_pem="",
                    registered_at=now or datetime.now(UTC),
                )
            lab.name = name
            lab.token_keys_pem = keys_pem(token_keys)
            lab.checkpoint_keys_pem = keys_pem(checkpoint_keys) if checkpoint_keys else None
            lab.signing_cert_pem = signing_cert_pem.decode() if signing_cert_pem else None
            s.add(lab)
            s.commit()
            return lab

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

    def token_keys(self, lab: HubLab) -> list[TokenPublicKey]:
        """The keys that check `lab`'s QR tokens and pushes."""
        return _pem_keys(lab.token_keys_pem)

    def checkpoint_keys(self, lab: HubLab) -> list[TokenPublicKey]:
        """The keys that check `lab`'s checkpoints (its token keys unless registered apart)."""
        return _pem_keys(lab.checkpoint_keys_pem) or self.token_keys(lab)

    # -- the witness -------------------------------------------------------------------------

    def accept(self, envelope: Any, *, now: datetime | None = None) -> PushResult:
        """Check and store the push `envelope` (`certissuer.hub.push.make_push`).

        Raises `PushRefused` (nothing stored) when the lab is not registered, the push or
        its checkpoint is not signed by the lab's registered keys, the checkpoint is not a
        consistent extension of the log the hub holds for the lab, or a certificate record is
        not proven in the checkpoint's log as it is pushed (naming lab, number and why).
        """
        now = now or datetime.now(UTC)

        def keys_of(code: str) -> list[TokenPublicKey] | None:
            lab = self.lab(code)
            return None if lab is None else self.token_keys(lab) + self.checkpoint_keys(lab)

        payload = open_push(envelope, keys_of)
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
            self._check_checkpoint(s, lab, cp, payload.get("from_size"), payload.get("consistency"))
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

    def _check_checkpoint(
        self, s: Session, lab: HubLab, cp: Checkpoint, from_size: Any, proof: Any
    ) -> None:
        code, held = lab.code, lab.tree_size
        if cp.lab_code != code:
            raise PushRefused(f"lab {code}: the checkpoint is lab {cp.lab_code}'s")
        keys = self.checkpoint_keys(lab)
        if not any(
            k.kid.hex() == cp.kid and k.verify(bytes.fromhex(cp.signature), cp.message())
            for k in keys
        ):
            raise PushRefused(
                f"lab {code}: the checkpoint of size {cp.tree_size} is not signed by a key "
                f"registered for the lab (key id {cp.kid})"
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
