"""The hub's schema under Alembic (issue 22): its own version table, no drift between the
models and the migrations, and a hub made before migrations adopted with every row kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import certissuer.hub.inspections  # noqa: F401  (its tables are part of the hub's schema)
from certissuer.hub import Hub
from certissuer.hub.migrations import VERSION_TABLE, head_revision
from certissuer.hub.store import certificate_kid
from certissuer.hub.tables import HUB_METADATA
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.ledger.migrations import head_revision as ledger_head
from certissuer.token import TokenKey

NOW = datetime(2026, 12, 4, 3, tzinfo=UTC)

_FIRST_TABLES_MADE_AT_OPEN = (
    "hub_lab",
    "hub_checkpoint",
    "hub_certificate",
    "hub_record",
    "hub_counter",
    "hub_catalogue",
    "hub_lab_profile",
)
"""What ``Hub.open`` made with ``create_all`` before migrations (inspection tables came with
the first inspection)."""


def _first_schema() -> sa.MetaData:
    """The hub's tables as the code before migrations made them (``HUB_METADATA.create_all``)."""
    old = sa.MetaData()
    for name in _FIRST_TABLES_MADE_AT_OPEN:
        if name not in ("hub_lab", "hub_lab_profile"):
            HUB_METADATA.tables[name].to_metadata(old)
    sa.Table(
        "hub_lab",
        old,
        sa.Column("code", sa.String(50), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("token_keys_pem", sa.Text, nullable=False),
        sa.Column("checkpoint_keys_pem", sa.Text),
        sa.Column("signing_cert_pem", sa.Text),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tree_size", sa.Integer, nullable=False),
        sa.Column("root_hash", sa.String(64)),
        sa.Column("cursor", sa.String(60)),
        sa.Column("pushed_at", sa.DateTime(timezone=True)),
    )
    sa.Table(
        "hub_lab_profile",
        old,
        sa.Column("code", sa.String(50), primary_key=True),
        sa.Column("kinds", sa.String(100), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("accreditation", sa.String(300), nullable=False),
    )
    # hub_catalogue as it was then: without the column revision 0004 adds
    old.tables["hub_catalogue"]._columns.remove(old.tables["hub_catalogue"].c.standing)
    return old


def _version(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def test_the_migrations_make_exactly_the_models_schema(any_ledger_url: str) -> None:
    hub = Hub.open(any_ledger_url)
    with hub.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert ctx.get_current_revision() == head_revision()
        diff = compare_metadata(ctx, HUB_METADATA)
    hub.close()
    assert diff == []


def test_a_hub_and_a_ledger_share_one_database(any_ledger_url: str, tmp_path: Path) -> None:
    ledger = Ledger.open(any_ledger_url)
    hub = Hub.open(any_ledger_url)
    with hub.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        ledger_version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert {"alembic_version", VERSION_TABLE, "certificate", "hub_lab"} <= tables
    assert _version(hub.engine) == head_revision()
    assert ledger_version == ledger_head()
    hub.close()
    ledger.close()
    # Opened again, in the other order: each finds its own schema current, nothing is redone.
    Hub.open(any_ledger_url).close()
    again = Ledger.open(any_ledger_url)
    assert again.log_size() == 0
    again.close()


def test_a_hub_made_before_migrations_is_adopted_with_every_row(
    any_ledger_url: str, pki: KeyPaths
) -> None:
    key, other, checkpoint = TokenKey.generate(), TokenKey.generate("ed25519"), TokenKey.generate()
    cert = pki.signer_cert.read_bytes()
    engine = sa.create_engine(any_ledger_url)
    old = _first_schema()
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            old.tables["hub_lab"].insert(),
            {
                "code": "DT01",
                "name": "Trung tâm Kỹ thuật Đồng Tháp",
                "token_keys_pem": (key.public.pem() + other.public.pem()).decode(),
                "checkpoint_keys_pem": checkpoint.public.pem().decode(),
                "signing_cert_pem": cert.decode(),
                "registered_at": NOW,
                "tree_size": 2,
                "root_hash": "ab" * 32,
                "cursor": "v1:2:3",
            },
        )
        conn.execute(
            old.tables["hub_counter"].insert(),
            [{"name": "log", "value": 5}, {"name": "register", "value": 3}],
        )
        conn.execute(
            old.tables["hub_certificate"].insert(),
            {
                "lab_code": "DT01",
                "number": "HC-2026-000001",
                "kind": "calibration",
                "log_index": 0,
                "record_json": "{}",
            },
        )
        conn.execute(
            old.tables["hub_lab_profile"].insert(),
            {"code": "DT01", "kinds": "calibration", "scope": "Cân", "accreditation": "VILAS"},
        )
    assert _version(engine) is None
    engine.dispose()

    hub = Hub.open(any_ledger_url)
    assert _version(hub.engine) == head_revision()
    lab = hub.lab("DT01")
    assert lab is not None and (lab.tree_size, lab.cursor) == (2, "v1:2:3")
    assert [k.kid for k in hub.token_keys(lab)] == [key.public.kid, other.public.kid]
    assert [k.kid for k in hub.checkpoint_keys(lab)] == [checkpoint.public.kid]
    moved = [(k.kind, k.kid, k.retired_at) for k in hub.lab_keys("DT01")]
    assert moved == [
        ("token", key.public.kid.hex(), None),
        ("token", other.public.kid.hex(), None),
        ("checkpoint", checkpoint.public.kid.hex(), None),
        ("signing", certificate_kid(cert), None),
    ]
    for k in hub.lab_keys("DT01"):  # added when the lab was registered (SQLite: naive UTC)
        assert (k.added_at if k.added_at.tzinfo else k.added_at.replace(tzinfo=UTC)) == NOW
    assert [c.number for c in hub.certificates("DT01")] == ["HC-2026-000001"]
    with hub.engine.connect() as conn:
        counters = dict(conn.execute(sa.text("SELECT name, value FROM hub_counter")).all())
        profile = conn.execute(sa.text("SELECT scope FROM hub_lab_profile")).scalar()
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}),
            HUB_METADATA,
        )
    assert counters == {"log": 5, "register": 3}  # not reseeded
    assert profile == "Cân"
    assert diff == []  # the tables it lacked (inspections) were made, the rest upgraded
    hub.close()


@pytest.mark.parametrize("empty", [True, False])
def test_a_new_hub_has_its_counters_once(tmp_path: Path, empty: bool) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    Hub.open(url).close()
    if not empty:
        Hub.open(url).close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, value FROM hub_counter ORDER BY name")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("log", 0), ("register", 0)]


def test_cli_hub_upgrade_names_the_revision(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app as cli_app

    db = f"sqlite:///{tmp_path / 'hub.db'}"
    result = CliRunner().invoke(cli_app, ["hub", "upgrade", "--db", db])
    assert result.exit_code == 0, result.output
    assert f"schema revision {head_revision()}" in result.output
    assert _version(sa.create_engine(db)) == head_revision()
