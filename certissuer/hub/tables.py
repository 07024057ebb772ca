"""The hub's own tables, on their own `MetaData` (`HUB_METADATA`), apart from any lab's ledger.

The hub keeps, per registered lab, its public keys, the newest log head it witnessed (tree size
and root of a checkpoint the lab signed), the sector-export cursor of its last push, every
checkpoint it accepted, and the pushed records (certificates by number, register rows by key).
The schema is made and upgraded by the Alembic revisions of `certissuer.hub.migrations`
(version table ``hub_alembic_version``); the models and the revisions are checked to agree.
"""

from datetime import UTC, date, datetime

from sqlalchemy import Column, DateTime, MetaData, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

__all__ = [
    "HUB_METADATA",
    "KEY_KINDS",
    "HubCertificate",
    "HubCheckpoint",
    "HubLab",
    "HubLabKey",
    "HubRecord",
]

KEY_KINDS = ("token", "checkpoint", "signing")
"""A lab's registered keys: token (QR tokens, pushes), checkpoint, signing (its PDF signing
certificate, kept for the catalogue)."""


class _HubModel(SQLModel, registry=registry()):
    """Base of the hub's tables: a registry of their own, so `create_all` makes only these."""


HUB_METADATA: MetaData = _HubModel.metadata
"""The hub's tables, and only these."""


class HubLab(_HubModel, table=True):
    """A lab registered at the hub and the log head the hub holds (its keys: `HubLabKey`)."""

    __tablename__ = "hub_lab"
    code: str = Field(primary_key=True, max_length=50)
    name: str = Field(max_length=300)
    registered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    tree_size: int = 0
    """Size of the lab's log the hub holds (0: nothing pushed yet)."""
    root_hash: str | None = Field(default=None, max_length=64)
    cursor: str | None = Field(default=None, max_length=60)
    """The sector-export cursor of the last accepted push (``v1:<log>:<register>``)."""
    pushed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class HubLabKey(_HubModel, table=True):
    """One public key of a lab, with when the hub took it and when its use ended.

    A key is never replaced or deleted: ``hub register-lab --rotate`` adds one, ``--retire``
    sets `retired_at`. Tokens dated up to a token key's retirement keep verifying; pushes and
    checkpoints must be signed by a key in use.
    """

    __tablename__ = "hub_lab_key"
    __table_args__ = (UniqueConstraint("lab_code", "kind", "kid"),)
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(max_length=50, index=True)
    kind: str = Field(max_length=20)
    """One of `KEY_KINDS`."""
    pem: str = Field(sa_column=Column(Text, nullable=False))
    """The public key (a certificate for ``signing``), PEM; never a private key."""
    kid: str = Field(max_length=64)
    """The key id tokens and checkpoints carry (hex); for a certificate, the first 4 bytes of
    the SHA-256 of its DER, hex."""
    added_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    retired_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))

    def in_use(self, at: datetime) -> bool:
        """True when the key was not retired at `at`."""
        return self.retired_at is None or _aware(self.retired_at) > _aware(at)


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes (stored as UTC).
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class HubCheckpoint(_HubModel, table=True):
    """A signed checkpoint of a lab that the hub accepted: the lab's log as witnessed."""

    __tablename__ = "hub_checkpoint"
    __table_args__ = (UniqueConstraint("lab_code", "tree_size", "root_hash"),)
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(max_length=50, index=True)
    tree_size: int
    root_hash: str = Field(max_length=64)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    kid: str = Field(max_length=16)
    signature: str = Field(max_length=200)
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class HubCertificate(_HubModel, table=True):
    """A certificate's summary as the lab's sector export gave it, newest push wins."""

    __tablename__ = "hub_certificate"
    lab_code: str = Field(primary_key=True, max_length=50)
    number: str = Field(primary_key=True, max_length=60)
    kind: str = Field(max_length=30)
    issue_date: date | None = None
    valid_until: date | None = None
    revoked_at: str | None = Field(default=None, max_length=40)
    superseded_by: str | None = Field(default=None, max_length=60)
    pdf_sha256: str | None = Field(default=None, max_length=64)
    log_index: int
    record_json: str = Field(sa_column=Column(Text, nullable=False))
    """The record as pushed (JSON, the export's field names)."""


class HubRecord(_HubModel, table=True):
    """A register row a lab pushed (instrument, standard, inspector), by its key."""

    __tablename__ = "hub_record"
    lab_code: str = Field(primary_key=True, max_length=50)
    kind: str = Field(primary_key=True, max_length=20)
    key: str = Field(primary_key=True, max_length=300)
    record_json: str = Field(sa_column=Column(Text, nullable=False))
