"""The hub's own tables, on their own `MetaData` (`HUB_METADATA`), apart from any lab's ledger.

The hub keeps, per registered lab, its public keys, the newest log head it witnessed (tree size
and root of a checkpoint the lab signed), the sector-export cursor of its last push, every
checkpoint it accepted, and the pushed records (certificates by number, register rows by key).
The schema is made and upgraded by the Alembic revisions of `certissuer.hub.migrations`
(version table ``hub_alembic_version``); the models and the revisions are checked to agree.
"""

from datetime import date, datetime

from sqlalchemy import Column, DateTime, MetaData, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

__all__ = ["HUB_METADATA", "HubCertificate", "HubCheckpoint", "HubLab", "HubRecord"]


class _HubModel(SQLModel, registry=registry()):
    """Base of the hub's tables: a registry of their own, so `create_all` makes only these."""


HUB_METADATA: MetaData = _HubModel.metadata
"""The hub's tables, and only these."""


class HubLab(_HubModel, table=True):
    """A lab registered at the hub, with its public keys and the log head the hub holds."""

    __tablename__ = "hub_lab"
    code: str = Field(primary_key=True, max_length=50)
    name: str = Field(max_length=300)
    token_keys_pem: str = Field(sa_column=Column(Text, nullable=False))
    """The lab's token (and ledger event) public keys, PEM: they check its QR tokens and, when
    no checkpoint key is registered, its checkpoints and pushes."""
    checkpoint_keys_pem: str | None = Field(default=None, sa_column=Column(Text))
    """Public keys that sign the lab's checkpoints, when they are not its token keys."""
    signing_cert_pem: str | None = Field(default=None, sa_column=Column(Text))
    """The certificate of the key that signs the lab's PDFs (kept for the catalogue)."""
    registered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    tree_size: int = 0
    """Size of the lab's log the hub holds (0: nothing pushed yet)."""
    root_hash: str | None = Field(default=None, max_length=64)
    cursor: str | None = Field(default=None, max_length=60)
    """The sector-export cursor of the last accepted push (``v1:<log>:<register>``)."""
    pushed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


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
