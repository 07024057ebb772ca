"""A lab's keys with their history (``hub_lab_key``): each key added, none replaced, a retired
key's end of use recorded. The keys held in ``hub_lab``'s PEM columns move there (added when
the lab was registered, in use), then those columns go.

Revision ID: 0003
Revises: 0002
"""

import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel.sql.sqltypes import AutoString

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_END_KEY = "-----END PUBLIC KEY-----"
_END_CERT = "-----END CERTIFICATE-----"


def _blocks(text: str | None, end: str) -> list[str]:
    return [block.strip() + "\n" + end + "\n" for block in (text or "").split(end)[:-1]]


def _key_kid(pem: str) -> str:
    # As `certissuer.token` names a key: SHA-256 of its DER SubjectPublicKeyInfo, 4 bytes.
    public = serialization.load_pem_public_key(pem.encode())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()[:4].hex()


def _cert_kid(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).digest()[:4].hex()


def upgrade() -> None:
    keys = op.create_table(
        "hub_lab_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("kind", AutoString(length=20), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("kid", AutoString(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lab_code", "kind", "kid"),
    )
    assert keys is not None
    op.create_index("ix_hub_lab_key_lab_code", "hub_lab_key", ["lab_code"])
    bind = op.get_bind()
    lab = sa.table(
        "hub_lab",
        sa.column("code", sa.String()),
        sa.column("token_keys_pem", sa.Text()),
        sa.column("checkpoint_keys_pem", sa.Text()),
        sa.column("signing_cert_pem", sa.Text()),
        sa.column("registered_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(sa.select(*lab.columns).order_by(lab.c.code)).all()
    for code, token_pem, checkpoint_pem, cert_pem, registered_at in rows:
        moved: dict[tuple[str, str], str] = {}
        for kind, text, end, kid_of in (
            ("token", token_pem, _END_KEY, _key_kid),
            ("checkpoint", checkpoint_pem, _END_KEY, _key_kid),
            ("signing", cert_pem, _END_CERT, _cert_kid),
        ):
            for pem in _blocks(text, end):
                moved.setdefault((kind, kid_of(pem)), pem)
        if moved:
            bind.execute(
                keys.insert(),
                [
                    {
                        "lab_code": code,
                        "kind": kind,
                        "pem": pem,
                        "kid": kid,
                        "added_at": registered_at,
                        "retired_at": None,
                    }
                    for (kind, kid), pem in moved.items()
                ],
            )
    with op.batch_alter_table("hub_lab") as batch:
        batch.drop_column("token_keys_pem")
        batch.drop_column("checkpoint_keys_pem")
        batch.drop_column("signing_cert_pem")


def downgrade() -> None:
    with op.batch_alter_table("hub_lab") as batch:
        batch.add_column(sa.Column("token_keys_pem", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("checkpoint_keys_pem", sa.Text(), nullable=True))
        batch.add_column(sa.Column("signing_cert_pem", sa.Text(), nullable=True))
    op.drop_index("ix_hub_lab_key_lab_code", "hub_lab_key")
    op.drop_table("hub_lab_key")
