"""The hub's first schema (issue 22): labs, checkpoints, pushed records, catalogue, inspections.

A hub made before migrations (``create_all``, no ``hub_alembic_version``) is adopted: only the
tables it lacks are created (inspection tables were made at the first inspection), every row
is kept.

Revision ID: 0001
Revises:
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _lab() -> None:
    op.create_table(
        "hub_lab",
        sa.Column("code", AutoString(length=50), nullable=False),
        sa.Column("name", AutoString(length=300), nullable=False),
        sa.Column("token_keys_pem", sa.Text(), nullable=False),
        sa.Column("checkpoint_keys_pem", sa.Text(), nullable=True),
        sa.Column("signing_cert_pem", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", AutoString(length=64), nullable=True),
        sa.Column("cursor", AutoString(length=60), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )


def _checkpoint() -> None:
    op.create_table(
        "hub_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", AutoString(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", AutoString(length=16), nullable=False),
        sa.Column("signature", AutoString(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lab_code", "tree_size", "root_hash"),
    )
    op.create_index("ix_hub_checkpoint_lab_code", "hub_checkpoint", ["lab_code"])


def _certificate() -> None:
    op.create_table(
        "hub_certificate",
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("number", AutoString(length=60), nullable=False),
        sa.Column("kind", AutoString(length=30), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("revoked_at", AutoString(length=40), nullable=True),
        sa.Column("superseded_by", AutoString(length=60), nullable=True),
        sa.Column("pdf_sha256", AutoString(length=64), nullable=True),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("lab_code", "number"),
    )


def _record() -> None:
    op.create_table(
        "hub_record",
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("kind", AutoString(length=20), nullable=False),
        sa.Column("key", AutoString(length=300), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("lab_code", "kind", "key"),
    )


def _counter() -> None:
    op.create_table(
        "hub_counter",
        sa.Column("name", AutoString(length=20), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def _catalogue() -> None:
    op.create_table(
        "hub_catalogue",
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("record", AutoString(length=20), nullable=False),
        sa.Column("key", AutoString(length=300), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", AutoString(length=30), nullable=False),
        sa.Column("serial_key", AutoString(length=200), nullable=False),
        sa.Column("identity", AutoString(length=300), nullable=False),
        sa.Column("owner_key", sa.Text(), nullable=False),
        sa.Column("place_key", sa.Text(), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("lab_code", "record", "key"),
    )
    op.create_index("ix_hub_catalogue_identity", "hub_catalogue", ["identity"])
    op.create_index("ix_hub_catalogue_seq", "hub_catalogue", ["seq"])
    op.create_index("ix_hub_catalogue_serial_key", "hub_catalogue", ["serial_key"])


def _lab_profile() -> None:
    op.create_table(
        "hub_lab_profile",
        sa.Column("code", AutoString(length=50), nullable=False),
        sa.Column("kinds", AutoString(length=100), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("accreditation", AutoString(length=300), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )


def _inspection_round() -> None:
    op.create_table(
        "hub_inspection_round",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("place", AutoString(length=300), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("team", AutoString(length=500), nullable=False),
        sa.Column("token_sha256", AutoString(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hub_inspection_round_on", "hub_inspection_round", ["on"])


def _inspection_check() -> None:
    op.create_table(
        "hub_inspection_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", AutoString(length=10), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("number", AutoString(length=60), nullable=True),
        sa.Column("serial", AutoString(length=100), nullable=True),
        sa.Column("lab_code", AutoString(length=50), nullable=True),
        sa.Column("verdict", AutoString(length=20), nullable=False),
        sa.Column("reasons_json", sa.Text(), nullable=False),
        sa.Column("found", AutoString(length=20), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("instrument_type", AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hub_inspection_check_round_id", "hub_inspection_check", ["round_id"])


_TABLES: dict[str, Callable[[], None]] = {
    "hub_lab": _lab,
    "hub_checkpoint": _checkpoint,
    "hub_certificate": _certificate,
    "hub_record": _record,
    "hub_counter": _counter,
    "hub_catalogue": _catalogue,
    "hub_lab_profile": _lab_profile,
    "hub_inspection_round": _inspection_round,
    "hub_inspection_check": _inspection_check,
}


def upgrade() -> None:
    bind = op.get_bind()
    present = set(sa.inspect(bind).get_table_names())
    for name, create in _TABLES.items():
        if name not in present:
            create()
    # The catalogue's two change counters: each push then only locks and bumps one.
    held = set(bind.execute(sa.text("SELECT name FROM hub_counter")).scalars())
    for counter in ("log", "register"):
        if counter not in held:
            bind.execute(
                sa.text("INSERT INTO hub_counter (name, value) VALUES (:n, 0)"), {"n": counter}
            )


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_table(name)
