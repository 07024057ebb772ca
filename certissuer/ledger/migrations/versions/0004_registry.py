"""The shared measurement register (issue 8).

Labs and their accreditation scope, instrument types with their verification cycles, owners and
their instruments, reference standards, personnel, stamp stock and the stamps used. Only new
tables: existing rows are untouched.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_lab",
        sa.Column("code", AutoString(length=50), nullable=False),
        sa.Column("name_vi", AutoString(), nullable=False),
        sa.Column("name_en", AutoString(), nullable=False),
        sa.Column("address_vi", AutoString(), nullable=False),
        sa.Column("address_en", AutoString(), nullable=False),
        sa.Column("designation", AutoString(), nullable=False),
        sa.Column("accreditation", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "registry_scope",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("kind", AutoString(length=20), nullable=False),
        sa.Column("quantity", AutoString(), nullable=False),
        sa.Column("instrument_type", AutoString(length=40), nullable=False),
        sa.Column("unit", AutoString(length=20), nullable=False),
        sa.Column("lower", AutoString(), nullable=False),
        sa.Column("upper", AutoString(), nullable=False),
        sa.Column("signatories", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_registry_scope_lab_code", "registry_scope", ["lab_code"])
    op.create_table(
        "registry_instrument_type",
        sa.Column("code", AutoString(length=40), nullable=False),
        sa.Column("name_vi", AutoString(), nullable=False),
        sa.Column("name_en", AutoString(), nullable=False),
        sa.Column("quantity", AutoString(), nullable=False),
        sa.Column("cycle_months", sa.Integer(), nullable=False),
        sa.Column("aliases", AutoString(), nullable=False),
        sa.Column("source", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "registry_owner",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", AutoString(length=60), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("address", AutoString(), nullable=False),
        sa.Column("kind", AutoString(), nullable=False),
        sa.Column("email", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "registry_instrument",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("type_code", AutoString(length=40), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("model", AutoString(), nullable=False),
        sa.Column("serial", AutoString(length=100), nullable=False),
        sa.Column("manufacturer", AutoString(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("ranges", AutoString(), nullable=False),
        sa.Column("accuracy_class", AutoString(), nullable=False),
        sa.Column("place_of_use", AutoString(), nullable=False),
        sa.Column("last_certificate", AutoString(length=60), nullable=True),
        sa.Column("verified_on", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["registry_owner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "type_code", "serial"),
    )
    op.create_index("ix_registry_instrument_owner_id", "registry_instrument", ["owner_id"])
    op.create_index("ix_registry_instrument_type_code", "registry_instrument", ["type_code"])
    op.create_index("ix_registry_instrument_serial", "registry_instrument", ["serial"])
    op.create_index("ix_registry_instrument_valid_until", "registry_instrument", ["valid_until"])
    op.create_table(
        "registry_standard",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("code", AutoString(length=60), nullable=False),
        sa.Column("name", AutoString(), nullable=False),
        sa.Column("serial", AutoString(), nullable=False),
        sa.Column("certificate_number", AutoString(), nullable=False),
        sa.Column("calibration_due", sa.Date(), nullable=False),
        sa.Column("quantities", AutoString(), nullable=False),
        sa.Column("ranges", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lab_code", "code"),
    )
    op.create_index("ix_registry_standard_lab_code", "registry_standard", ["lab_code"])
    op.create_index(
        "ix_registry_standard_calibration_due", "registry_standard", ["calibration_due"]
    )
    op.create_table(
        "registry_person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("title", AutoString(), nullable=False),
        sa.Column("verifier_card", AutoString(), nullable=False),
        sa.Column("card_types", AutoString(), nullable=False),
        sa.Column("card_expiry", sa.Date(), nullable=True),
        sa.Column("signatory", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lab_code", "name"),
    )
    op.create_index("ix_registry_person_lab_code", "registry_person", ["lab_code"])
    op.create_table(
        "registry_stamp_stock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("series", AutoString(length=40), nullable=False),
        sa.Column("first", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.Column("received", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_registry_stamp_stock_lab_code", "registry_stamp_stock", ["lab_code"])
    op.create_table(
        "registry_stamp_use",
        sa.Column("series", AutoString(length=40), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("ref", AutoString(length=100), nullable=False),
        sa.Column("certificate_number", AutoString(length=60), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("series", "number"),
    )
    op.create_index("ix_registry_stamp_use_ref", "registry_stamp_use", ["ref"])


def downgrade() -> None:
    op.drop_index("ix_registry_stamp_use_ref", "registry_stamp_use")
    op.drop_table("registry_stamp_use")
    op.drop_index("ix_registry_stamp_stock_lab_code", "registry_stamp_stock")
    op.drop_table("registry_stamp_stock")
    op.drop_index("ix_registry_person_lab_code", "registry_person")
    op.drop_table("registry_person")
    op.drop_index("ix_registry_standard_calibration_due", "registry_standard")
    op.drop_index("ix_registry_standard_lab_code", "registry_standard")
    op.drop_table("registry_standard")
    for column in ("valid_until", "serial", "type_code", "owner_id"):
        op.drop_index(f"ix_registry_instrument_{column}", "registry_instrument")
    op.drop_table("registry_instrument")
    op.drop_table("registry_owner")
    op.drop_table("registry_instrument_type")
    op.drop_index("ix_registry_scope_lab_code", "registry_scope")
    op.drop_table("registry_scope")
    op.drop_table("registry_lab")
