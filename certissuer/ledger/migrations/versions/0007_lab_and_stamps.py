"""One lab per ledger, and each verification stamp used once per lab (issue 16).

Adds ``ledger_lab``, the single row naming the lab code and profile a ledger belongs to (an
existing ledger gets it from the first lab that opens it: `certissuer.ledger.Ledger.bind`), and
``ledger_stamp``, one row per stamp number a certificate carries, keyed by (lab, series,
number) so that the database refuses a second use. The stamps of certificates already issued
are entered here, oldest first; an amendment takes over the stamp of the certificate it
replaces. A stamp found on two certificates before this revision stays with the first one (the
second is logged as a warning). No row is removed or altered otherwise.

Revision ID: 0007
Revises: 0006
"""

import json
import logging
import re

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_logger = logging.getLogger(__name__)

# The stamp as `certissuer.registry.parse_stamp` splits it when this revision was written: the
# last group of digits is the number, what comes before it (trimmed, no trailing '-') the series.
_STAMP = re.compile(r"^(?P<series>.*?)\s*(?P<number>\d+)$")


def upgrade() -> None:
    op.create_table(
        "ledger_lab",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("profile", AutoString(), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("adopted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    stamps = op.create_table(
        "ledger_stamp",
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("series", AutoString(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("certificate", AutoString(length=60), nullable=False),
        sa.Column("replaced", AutoString(length=60), nullable=True),
        sa.ForeignKeyConstraint(["certificate"], ["certificate.number"]),
        sa.PrimaryKeyConstraint("lab_code", "series", "number"),
    )
    op.create_index("ix_ledger_stamp_certificate", "ledger_stamp", ["certificate"])
    assert stamps is not None
    holders: dict[tuple[str, str, int], dict[str, object]] = {}
    rows = op.get_bind().execute(
        sa.text(
            "SELECT number, lab_code, data_json FROM certificate WHERE kind = 'verification' "
            "ORDER BY issued_at, year, seq"
        )
    )
    for number, lab_code, data_json in rows:
        try:
            data = json.loads(data_json)
        except ValueError:
            continue
        match = _STAMP.match(str(data.get("stamp_number") or "").strip())
        if match is None:
            continue
        key = (lab_code, match["series"].strip().rstrip("-").strip(), int(match["number"]))
        replaces = (data.get("replaces") or {}).get("number")
        held = holders.get(key)
        if held is None:
            holders[key] = {"certificate": number, "replaced": None}
        elif held["certificate"] == replaces:
            holders[key] = {"certificate": number, "replaced": replaces}
        else:
            _logger.warning(
                "stamp %s %s of %s was already on %s: it stays with %s",
                key[1], key[2], number, held["certificate"], held["certificate"],
            )  # fmt: skip
    if holders:
        op.bulk_insert(
            stamps,
            [{"lab_code": k[0], "series": k[1], "number": k[2], **v} for k, v in holders.items()],
        )


def downgrade() -> None:
    op.drop_index("ix_ledger_stamp_certificate", "ledger_stamp")
    op.drop_table("ledger_stamp")
    op.drop_table("ledger_lab")
