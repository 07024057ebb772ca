"""The ledger as a register: migrations, the Merkle log, checkpoints, proofs, audit, history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from certissuer import merkle
from certissuer.errors import LedgerError
from certissuer.ledger import (
    CertificateEntry,
    EventKind,
    Ledger,
    LedgerEvent,
    Status,
    leaf_data,
    migrations,
)
from certissuer.token import TokenKey

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TODAY = date(2026, 11, 27)


def _entry(
    number: str,
    seq: int,
    ref: str,
    *,
    serial: str = "S1",
    customer: str = "Khách A",
    kind: str = "calibration",
) -> CertificateEntry:
    import hashlib

    data = f'{{"ref":"{ref}"}}'
    return CertificateEntry(
        number=number,
        lab_code="L1",
        series="HC",
        year=2026,
        seq=seq,
        kind=kind,
        ref=ref,
        instrument_name="Cân",
        instrument_model="X",
        instrument_serial=serial,
        customer_name=customer,
        work_date=date(2026, 11, 20),
        issue_date=TODAY,
        valid_until=date(2027, 11, 20),
        issued_at=NOW,
        data_digest=hashlib.sha256(data.encode()).hexdigest(),
        data_json=data,
        token="tok",
    )


def _issue(ledger: Ledger, ref: str, **kw: Any) -> CertificateEntry:
    e = ledger.reserve_with("L1", "HC", 2026, lambda n, s: _entry(n, s, ref, **kw))
    return ledger.complete(
        e.number,
        pdf_sha256=f"{abs(hash(ref)):064x}"[-64:],
        pdf_path=f"/nonexistent/{ref}.pdf",
        signer="CN=t",
        at=NOW,
    )


@pytest.fixture
def key() -> TokenKey:
    return TokenKey.generate()


@pytest.fixture
def filled(any_ledger_url: str, key: TokenKey) -> Ledger:
    """Five issued certificates, one revoked, one superseded, and two checkpoints."""
    ledger = Ledger.open(any_ledger_url, ledger_key=key)
    numbers = [_issue(ledger, f"r{i}", serial=f"SN-{i}").number for i in range(1, 4)]
    ledger.checkpoint(key, lab_code="L1", at=NOW)
    numbers += [_issue(ledger, f"r{i}", serial=f"SN-{i}").number for i in range(4, 6)]
    ledger.revoke(numbers[0], reason="dụng cụ hỏng / damaged", at=NOW + timedelta(hours=1))
    ledger.supersede(numbers[1], by=numbers[4], reason="sai số hiệu", at=NOW + timedelta(hours=2))
    ledger.checkpoint(key, lab_code="L1", at=NOW + timedelta(hours=3))
    return ledger


def _sql(ledger: Ledger, statement: str, **params: Any) -> None:
    with ledger.engine.begin() as conn:
        if ledger.is_sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.execute(sa.text(statement), params)


def test_every_event_is_a_leaf_and_the_audit_is_clean(filled: Ledger, key: TokenKey) -> None:
    assert filled.log_size() == 7  # 5 issued + revoked + superseded
    report = filled.audit(keys=[key.public], check_files=False)
    assert report.ok, report.problems
    assert report.checkpoints_checked == 2 and report.log_size == 7


def test_edited_row_is_named_with_its_position(filled: Ledger, key: TokenKey) -> None:
    _sql(
        filled,
        "UPDATE certificate SET valid_until = :d WHERE number = 'HC-2026-000003'",
        d=date(2030, 1, 1),
    )
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any(p.startswith("edited: leaf 2 (HC-2026-000003, issued)") for p in problems), problems


def test_edited_revocation_reason_is_found(filled: Ledger, key: TokenKey) -> None:
    _sql(filled, "UPDATE certificate_event SET reason = 'nothing' WHERE kind = 'revoked'")
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any(p.startswith("edited: leaf 5 (HC-2026-000001, revoked)") for p in problems)


def test_deleted_row_is_named(filled: Ledger, key: TokenKey) -> None:
    _sql(filled, "DELETE FROM certificate_event WHERE kind = 'revoked'")
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any(p.startswith("deleted: leaf 5") for p in problems), problems
    # Hiding the deletion by editing the log too breaks the signed checkpoint instead.
    _sql(filled, "DELETE FROM log_leaf WHERE idx = 5")
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any("checkpoint 2" in p for p in problems), problems


def test_swapped_rows_are_reported_as_reordered(filled: Ledger, key: TokenKey) -> None:
    # Swap the serials of two certificates: each row now holds what the other logged.
    rows = {"HC-2026-000004": "SN-4", "HC-2026-000005": "SN-5"}
    _sql(filled, "UPDATE certificate SET instrument_serial = 'tmp' WHERE number = 'HC-2026-000004'")
    _sql(
        filled,
        "UPDATE certificate SET instrument_serial = :s WHERE number = 'HC-2026-000005'",
        s=rows["HC-2026-000004"],
    )
    _sql(
        filled,
        "UPDATE certificate SET instrument_serial = :s WHERE number = 'HC-2026-000004'",
        s=rows["HC-2026-000005"],
    )
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any("leaf 3 (HC-2026-000004, issued)" in p for p in problems), problems
    assert any("leaf 4 (HC-2026-000005, issued)" in p for p in problems), problems


def test_swapped_event_rows_are_reordered(filled: Ledger, key: TokenKey) -> None:
    with filled.session() as s:
        a, b = (
            s.exec(
                sa.select(LedgerEvent)
                .where(LedgerEvent.kind == "issued")
                .order_by(LedgerEvent.id)
                .limit(2)
            )
            .scalars()
            .all()
        )
        fields = ("number", "at", "pdf_sha256")
        va, vb = [getattr(a, f) for f in fields], [getattr(b, f) for f in fields]
    _sql(
        filled,
        "UPDATE certificate_event SET number = :n, at = :at, pdf_sha256 = :p WHERE id = :id",
        n=vb[0],
        at=vb[1],
        p=vb[2],
        id=a.id,
    )
    _sql(
        filled,
        "UPDATE certificate_event SET number = :n, at = :at, pdf_sha256 = :p WHERE id = :id",
        n=va[0],
        at=va[1],
        p=va[2],
        id=b.id,
    )
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any(p.startswith("reordered: leaf 0") and "leaf 1" in p for p in problems), problems
    assert any(p.startswith("reordered: leaf 1") and "leaf 0" in p for p in problems), problems


def test_inserted_row_is_named(filled: Ledger, key: TokenKey) -> None:
    _sql(
        filled,
        "INSERT INTO certificate_event (number, kind, at, reason) "
        "VALUES ('HC-2026-000003', 'revoked', :at, 'backdated')",
        at=NOW,
    )
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any(p.startswith("inserted: event row") and "HC-2026-000003" in p for p in problems)


def test_forged_checkpoint_is_found(filled: Ledger, key: TokenKey) -> None:
    _sql(filled, "UPDATE checkpoint SET tree_size = 2 WHERE id = 1")
    problems = filled.audit(keys=[key.public], check_files=False).problems
    assert any("checkpoint 1 (size 2): the signature is invalid" in p for p in problems)
    other = TokenKey.generate()
    assert not filled.audit(keys=[other.public], check_files=False).ok


def test_pdf_file_changed_on_disk_is_found(
    any_ledger_url: str, key: TokenKey, tmp_path: Path
) -> None:
    import hashlib

    ledger = Ledger.open(any_ledger_url)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.7 original")
    e = ledger.reserve_with("L1", "HC", 2026, lambda n, s: _entry(n, s, "f1"))
    ledger.complete(
        e.number,
        pdf_sha256=hashlib.sha256(pdf.read_bytes()).hexdigest(),
        pdf_path=str(pdf),
        signer="x",
        at=NOW,
    )
    assert ledger.audit(keys=[key.public]).files_checked == 1
    pdf.write_bytes(b"%PDF-1.7 changed")
    assert any(p.startswith("file:") for p in ledger.audit(keys=[key.public]).problems)


def test_inclusion_and_consistency_proofs_verify(filled: Ledger, key: TokenKey) -> None:
    proof = filled.inclusion("HC-2026-000001")
    cp = proof["checkpoint"]
    assert [leaf["event"] for leaf in proof["leaves"]] == ["issued", "revoked"]
    root = bytes.fromhex(cp["root_hash"])
    for leaf in proof["leaves"]:
        h = merkle.leaf_hash(leaf["leaf_data"].encode())
        assert h.hex() == leaf["leaf_hash"]
        path = [bytes.fromhex(p) for p in leaf["audit_path"]]
        assert merkle.verify_inclusion(leaf["leaf_index"], cp["tree_size"], h, path, root)
        # Each event carries the lab's signature over its leaf data (signed when written).
        signed = b"certissuer-event/v1\n" + leaf["leaf_data"].encode() + b"\nsigned-when-written\n"
        assert leaf["kid"] == key.public.kid.hex() and leaf["signed_at_upgrade"] is None
        assert key.public.verify(bytes.fromhex(leaf["signature"]), signed)
    from certissuer.ledger import checkpoint_message

    message = checkpoint_message(
        cp["lab_code"], cp["tree_size"], cp["root_hash"], datetime.fromisoformat(cp["at"])
    )
    assert key.public.verify(bytes.fromhex(cp["signature"]), message)

    first, second = filled.checkpoints()
    c = filled.consistency(first.tree_size, second.tree_size)
    assert c["first_root"] == first.root_hash and c["second_root"] == second.root_hash
    assert merkle.verify_consistency(
        first.tree_size,
        second.tree_size,
        [bytes.fromhex(p) for p in c["proof"]],
        bytes.fromhex(first.root_hash),
        bytes.fromhex(second.root_hash),
    )


def test_proof_needs_a_covering_checkpoint(any_ledger_url: str, key: TokenKey) -> None:
    ledger = Ledger.open(any_ledger_url)
    with pytest.raises(LedgerError, match="no checkpoint"):
        ledger.inclusion(_issue(ledger, "a").number)
    ledger.checkpoint(key, lab_code="L1", at=NOW)
    number = _issue(ledger, "b").number
    with pytest.raises(LedgerError, match="does not cover"):
        ledger.inclusion(number)


def test_history_is_appended_never_rewritten(filled: Ledger) -> None:
    e1 = filled.get("HC-2026-000001")
    e2 = filled.get("HC-2026-000002")
    assert e1 is not None and e2 is not None
    assert filled.status(e1, today=TODAY)[0] is Status.REVOKED
    status, ev = filled.status(e2, today=TODAY)
    assert status is Status.SUPERSEDED and ev is not None and ev.related_number == "HC-2026-000005"
    with pytest.raises(LedgerError, match="revoked"):
        filled.revoke("HC-2026-000001", reason="again", at=NOW)
    with pytest.raises(LedgerError, match="superseded"):
        filled.revoke("HC-2026-000002", reason="x", at=NOW)
    with pytest.raises(LedgerError, match="needs a reason"):
        filled.revoke("HC-2026-000003", reason=" ", at=NOW)
    with pytest.raises(LedgerError, match="not in the ledger"):
        filled.revoke("HC-1999-000001", reason="x", at=NOW)
    again = filled.supersede("HC-2026-000002", by="HC-2026-000005", reason="x", at=NOW)
    assert again.id == ev.id  # rerunning an amendment records nothing new
    assert [e.kind for e in filled.events("HC-2026-000001")] == [
        EventKind.ISSUED,
        EventKind.REVOKED,
    ]


def test_search_filters(filled: Ledger) -> None:
    def numbers(**kw: Any) -> list[str]:
        return sorted(e.number for e, _ in filled.search(today=TODAY, **kw))

    assert numbers(serial="sn-3") == ["HC-2026-000003"]
    assert numbers(status=Status.REVOKED) == ["HC-2026-000001"]
    assert numbers(status=Status.VALID) == ["HC-2026-000003", "HC-2026-000004", "HC-2026-000005"]
    assert len(numbers(customer="khách")) == 5 or len(numbers(customer="Khách")) == 5
    assert numbers(issued_from=TODAY + timedelta(days=1)) == []
    assert len(numbers(number="2026-00000")) == 5


def test_export_formats(filled: Ledger, tmp_path: Path) -> None:
    import csv
    import json

    from openpyxl import load_workbook

    from certissuer.report.export import COLUMNS, ExportFormat, export_entries

    rows = filled.search(today=TODAY)
    assert export_entries(rows, ExportFormat.CSV, tmp_path / "l.csv") == 5
    with open(tmp_path / "l.csv", encoding="utf-8-sig") as fh:
        table = list(csv.DictReader(fh))
    assert {r["number"]: r["status"] for r in table}["HC-2026-000001"] == "revoked"
    export_entries(rows, ExportFormat.JSON, tmp_path / "l.json")
    assert len(json.loads((tmp_path / "l.json").read_text(encoding="utf-8"))) == 5
    export_entries(rows, ExportFormat.XLSX, tmp_path / "l.xlsx")
    sheet = load_workbook(tmp_path / "l.xlsx").active
    assert [c.value for c in next(sheet.iter_rows(max_row=1))] == list(COLUMNS)
    assert sheet.max_row == 6


def test_claims_protect_live_work_and_free_dead_work(any_ledger_url: str) -> None:
    import subprocess

    ledger = Ledger.open(any_ledger_url)
    dead = subprocess.run(["true"])  # a pid that has exited
    assert dead.returncode == 0
    import socket

    host = socket.gethostname()
    ledger.reserve_with(
        "L1", "HC", 2026, lambda n, s: _entry(n, s, "live"), claim=f"{host}:1"
    )  # pid 1 runs
    ledger.reserve_with("L1", "HC", 2026, lambda n, s: _entry(n, s, "gone"), claim=f"{host}:999999")
    ledger.reserve_with("L1", "HC", 2026, lambda n, s: _entry(n, s, "far"), claim="other-host:42")
    taken = ledger.claim_pending("me:1")
    assert [e.ref for e in taken] == ["gone"]
    assert ledger.claim_pending("someone-else:2") == []  # a claim is taken once
    assert [e.ref for e in ledger.claim_pending("me:1", lease_seconds=0)] == ["far"]


def test_migrations_make_the_models_schema(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        command.upgrade(migrations.config(conn), "head")
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_old_schema_with_data_upgrades_losing_nothing(any_ledger_url: str, key: TokenKey) -> None:
    engine = sa.create_engine(any_ledger_url)
    assert migrations.upgrade(engine, migrations.FIRST_REVISION) == "0001"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO certificate (number, lab_code, series, year, seq, kind, ref, "
                "instrument_name, instrument_model, instrument_serial, customer_name, work_date, "
                "issue_date, valid_until, issued_at, data_digest, data_json, token, pdf_sha256, "
                "pdf_path, signer) VALUES ('HC-2026-000001', 'L1', 'HC', 2026, 1, 'calibration', "
                "'old', 'Cân', 'X', 'S1', 'Khách', '2026-11-20', '2026-11-27', NULL, :at, :dg, "
                "'{}', 'tok', :sha, '/x.pdf', 'CN=old')"
            ),
            {
                "at": NOW,
                "dg": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "sha": "ab" * 32,
            },
        )
        conn.execute(
            sa.text(
                "INSERT INTO certificate_event (number, kind, at, reason) "
                "VALUES ('HC-2026-000001', 'issued', :at, '')"
            ),
            {"at": NOW},
        )
        conn.execute(sa.text("INSERT INTO number_counter VALUES ('L1', 'HC', 2026, 1)"))
        if engine.dialect.name == "sqlite":  # the first release had no version table
            conn.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()

    ledger = Ledger.open(any_ledger_url, ledger_key=key)
    entry = ledger.get("HC-2026-000001")
    assert entry is not None and entry.signer == "CN=old" and entry.pdf_sha256 == "ab" * 32
    assert entry.claim == "" and [e.kind for e in ledger.events(entry.number)] == ["issued"]
    assert ledger.log_size() == 1  # the old history is in the log
    # Written before events were signed: named until the upgrade signs it, which it does only
    # under a checkpoint the lab signed.
    report = ledger.audit(keys=[key.public], check_files=False)
    assert [p.split(":")[0] for p in report.problems] == ["unsigned"], report.problems
    assert ledger.sign_unsigned(key, at=NOW)[0] == []
    ledger.checkpoint(key, lab_code="L1", at=NOW)
    signed, left = ledger.sign_unsigned(key, at=NOW + timedelta(days=1))
    assert [ev.number for ev in signed] == ["HC-2026-000001"] and left == []
    (ev,) = ledger.events("HC-2026-000001")
    assert ev.backfilled_at is not None and ev.kid == key.public.kid.hex()
    report = ledger.audit(keys=[key.public], check_files=False)
    assert report.ok and report.events_signed_at_upgrade == 1, report.problems
    standing = ledger.standing(entry, keys=[key.public], today=TODAY)
    assert standing.vouched and standing.status is Status.VALID
    assert _issue(ledger, "new").number == "HC-2026-000002"  # numbering goes on
    with ledger.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == migrations.head_revision()


def test_leaf_data_covers_the_entry_fields() -> None:
    e = _entry("HC-2026-000001", 1, "r")
    ev = LedgerEvent(number=e.number, kind=EventKind.ISSUED, at=NOW, pdf_sha256="ab" * 32)
    before = leaf_data(ev, e)
    e.customer_name = "other"
    assert leaf_data(ev, e) != before
