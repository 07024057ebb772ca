from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from certissuer.errors import AmbiguousNumber, LedgerError
from certissuer.ledger import (
    BatchClaim,
    CertificateEntry,
    EventKind,
    Ledger,
    LedgerEvent,
    Status,
    format_number,
)

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def _builder(ref: str, *, valid_until: date | None = None):  # type: ignore[no-untyped-def]
    def build(number: str, seq: int) -> CertificateEntry:
        return CertificateEntry(
            number=number,
            lab_code="L1",
            series="HC",
            year=2026,
            seq=seq,
            kind="calibration",
            ref=ref,
            instrument_name="Cân",
            instrument_model="X",
            instrument_serial="S1",
            customer_name="Khách",
            work_date=date(2026, 11, 20),
            issue_date=date(2026, 11, 27),
            valid_until=valid_until,
            issued_at=NOW,
            data_digest="ab" * 32,
            data_json="{}",
            token="tok",
        )

    return build


def _issue(ledger: Ledger, ref: str, sha: str, **kw: object) -> CertificateEntry:
    entry = ledger.reserve_with("L1", "HC", 2026, _builder(ref, **kw))  # type: ignore[arg-type]
    return ledger.complete(entry.number, pdf_sha256=sha, pdf_path="x.pdf", signer="CN=x", at=NOW)


def test_numbers_are_gapless_and_formatted(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    numbers = [_issue(ledger, f"r{i}", f"{i:064x}").number for i in range(1, 6)]
    assert numbers == [format_number("HC", 2026, i) for i in range(1, 6)]
    assert numbers[0] == "HC-2026-000001"


def test_series_and_years_count_separately(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    a = ledger.reserve_with("L1", "HC", 2026, _builder("a"))
    b = ledger.reserve_with("L1", "KĐ", 2026, _builder("b"))
    c = ledger.reserve_with("L1", "HC", 2027, _builder("c"))
    d = ledger.reserve_with("L2", "HC-L2", 2026, _builder("d"))
    assert [e.number for e in (a, b, c, d)] == [
        "HC-2026-000001",
        "KĐ-2026-000001",
        "HC-2027-000001",
        "HC-L2-2026-000001",
    ]


def test_two_labs_on_one_series_get_a_clear_error(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    ledger.reserve_with("L1", "HC", 2026, _builder("a"))
    with pytest.raises(LedgerError, match="for another lab") as info:
        ledger.reserve_with("L2", "HC", 2026, _builder("b"))
    assert info.value.hint is not None and "own series" in info.value.hint


def test_duplicate_ref_is_refused(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    _issue(ledger, "same", "1" * 64)
    with pytest.raises(LedgerError, match="ref 'same'"):
        ledger.reserve_with("L1", "HC", 2026, _builder("same"))
    # the refused attempt took no number
    assert _issue(ledger, "next", "2" * 64).number == "HC-2026-000002"


def test_release_gives_back_only_the_newest_number(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    first = ledger.reserve_with("L1", "HC", 2026, _builder("a"))
    second = ledger.reserve_with("L1", "HC", 2026, _builder("b"))
    assert not ledger.release(first.number)  # a later number exists: stays pending
    assert [e.number for e in ledger.pending()] == [first.number, second.number]
    assert ledger.release(second.number)
    assert ledger.get(second.number) is None
    assert ledger.reserve_with("L1", "HC", 2026, _builder("c")).number == second.number


def test_lookup_by_hash_and_status_from_events(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    entry = _issue(ledger, "a", "AB" * 32, valid_until=date(2027, 1, 1))
    found = ledger.by_pdf_sha256("ab" * 32)
    assert found is not None and found.number == entry.number
    assert ledger.status(entry, today=date(2026, 12, 1))[0] is Status.VALID
    assert ledger.status(entry, today=date(2027, 1, 2))[0] is Status.EXPIRED
    ledger.add_event(
        LedgerEvent(
            number=entry.number, kind=EventKind.REVOKED, at=NOW, reason="instrument repaired"
        )
    )
    status, event = ledger.status(entry, today=date(2026, 12, 1))
    assert status is Status.REVOKED and event is not None and event.reason == "instrument repaired"
    assert [e.kind for e in ledger.events(entry.number)] == ["issued", "revoked"]


def test_pending_entry_is_not_found_by_hash(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    entry = ledger.reserve_with("L1", "HC", 2026, _builder("a"))
    assert ledger.status(entry, today=date(2026, 12, 1))[0] is Status.PENDING
    assert ledger.count() == 1


def test_sqlite_runs_in_wal_with_full_sync(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_lookups_do_not_queue_behind_a_writer_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A verify or a batch's "already issued?" reads while another process holds the write
    lock (issuing): in WAL mode a reader needs no lock. Taking it would wait the 30 s busy
    timeout here."""
    path = tmp_path / "l.db"
    ledger = Ledger.open(f"sqlite:///{path}")
    _issue(ledger, "a", "cd" * 32)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another workstation in the middle of an issue
    found: list[object] = []

    def look() -> None:
        entry = ledger.by_ref("L1", "a")
        found.extend([entry.number if entry else None, ledger.count(), ledger.log_size()])

    reader = threading.Thread(target=look, daemon=True)
    reader.start()
    reader.join(timeout=10)
    try:
        assert not reader.is_alive(), "the lookup waited for the writer's lock"
        assert found == ["HC-2026-000001", 1, 1]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.join()


def test_completing_a_certificate_ends_its_batch_claim(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    assert ledger.claim_ref("L1", "a", "host:1")
    assert ledger.claim_ref("L1", "b", "host:1")
    _issue(ledger, "a", "cd" * 32)
    with ledger.session() as s:
        held = sorted(c.ref for c in s.exec(select(BatchClaim)))
    assert held == ["b"]  # "a" is issued: its claim went with the same transaction
    assert ledger.claim_ref("L1", "a", "host:2")  # free again (a rerun finds it issued)


def test_unreachable_database_is_a_ledger_error_without_password() -> None:
    with pytest.raises(LedgerError) as info:
        Ledger.open("postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/none?connect_timeout=2")
    assert "s3cret-pw" not in str(info.value)


# -- the read-only ledger and the event count -------------------------------------------------


def test_event_count_follows_appended_events(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    entry = _issue(ledger, "a", "cd" * 32)
    assert ledger.event_count(entry.number) == 1  # issued
    assert ledger.event_count("HC-2026-999999") == 0
    ledger.add_event(LedgerEvent(number=entry.number, kind=EventKind.REVOKED, at=NOW, reason="x"))
    assert ledger.event_count(entry.number) == 2 == len(ledger.events(entry.number))
    reader = Ledger.open_readonly(any_ledger_url)
    assert reader.event_count(entry.number) == 2
    assert reader.get(entry.number) is not None
    reader.close()
    assert reader.engine.pool.checkedin() == 0
    assert reader.event_count(entry.number) == 2  # a closed ledger opens new connections
    reader.close()
    ledger.close()


def test_nothing_writes_through_the_read_only_ledger(any_ledger_url: str) -> None:
    """The database refuses the writes, not our code: the ORM's and a raw statement alike."""
    writer = Ledger.open(any_ledger_url)
    entry = _issue(writer, "a", "cd" * 32)
    reader = Ledger.open_readonly(any_ledger_url)
    with pytest.raises((LedgerError, SQLAlchemyError), match=r"read-only|readonly"):
        reader.add_event(LedgerEvent(number=entry.number, kind=EventKind.REVOKED, at=NOW))
    with (
        pytest.raises(SQLAlchemyError, match=r"read-only|readonly"),
        reader.engine.begin() as conn,
    ):
        conn.exec_driver_sql(f"DELETE FROM {LedgerEvent.__tablename__}")
    assert writer.event_count(entry.number) == 1
    assert [e.kind for e in writer.events(entry.number)] == [EventKind.ISSUED]
    reader.close()
    writer.close()


def test_event_count_failures_are_ledger_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The driver's own error (no such table: the raw path bypasses SQLAlchemy's wrapping)...
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with pytest.raises(LedgerError, match="the ledger database failed: no such table"):
        Ledger.open_readonly(f"sqlite:///{path}").event_count("HC-2026-000001")
    # ...and SQLAlchemy's, when no connection can be made at all (nothing listens on port 9).
    dead = Ledger(create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none"))
    with pytest.raises(LedgerError, match="the ledger database failed"):
        dead.event_count("HC-2026-000001")


def test_read_only_event_count_does_not_queue_behind_a_writer_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "l.db"
    number = _issue(Ledger.open(f"sqlite:///{path}"), "a", "cd" * 32).number
    reader = Ledger.open_readonly(f"sqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # an issue in progress holds the write lock
    counted: list[int] = []
    look = threading.Thread(target=lambda: counted.append(reader.event_count(number)))
    look.start()
    look.join(timeout=10)
    try:
        assert not look.is_alive(), "the read-only count waited for the writer's lock"
        assert counted == [1]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        look.join()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite:///{tmp}/none.db", r"the ledger .*none\.db does not exist"),
        ("sqlite://", "needs a file, not an in-memory SQLite database"),
        ("sqlite:///:memory:", "needs a file, not an in-memory SQLite database"),
    ],
)
def test_read_only_ledger_needs_an_existing_file(tmp_path, url: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LedgerError, match=problem):
        Ledger.open_readonly(url.format(tmp=tmp_path))
    assert not (tmp_path / "none.db").exists(), "opening read-only created the file"


def test_unreachable_read_only_database_is_a_ledger_error_without_password() -> None:
    with pytest.raises(LedgerError, match="read-only") as info:
        Ledger.open_readonly("postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/none?connect_timeout=2")
    assert "s3cret-pw" not in str(info.value)


def test_status_at_a_moment_and_approval_events(any_ledger_url: str) -> None:
    """Events count from when they were recorded; approval is a state with its own events."""
    from datetime import timedelta

    from certissuer.token import TokenKey

    key = TokenKey.generate()
    ledger = Ledger.open(any_ledger_url, ledger_key=key)
    entry = ledger.reserve_with("L1", "HC", 2026, _builder("appr", valid_until=date(2027, 11, 24)))  # type: ignore[arg-type]
    entry = ledger.complete(
        entry.number, pdf_sha256="cd" * 32, pdf_path="x.pdf", signer="CN=x", at=NOW,
        awaiting_approval=True,
    )  # fmt: skip
    other = _issue(ledger, "plain", "ef" * 32)
    assert [e.number for e in ledger.awaiting_approval("L1")] == [entry.number]
    today = date(2026, 12, 1)

    def status(at: datetime | None = None, day: date = today) -> Status:
        return ledger.standing(entry, keys=[key.public], today=day, at=at).status

    assert status() is Status.AWAITING_APPROVAL
    approved_at = NOW + timedelta(days=2)
    ledger.approve(entry.number, approver="Lê Hoàng Phúc", at=approved_at)
    assert ledger.awaiting_approval("L1") == []
    assert status() is Status.VALID
    assert status(at=approved_at - timedelta(seconds=1)) is Status.AWAITING_APPROVAL
    assert status(day=date(2030, 1, 1)) is Status.EXPIRED
    with pytest.raises(LedgerError, match="not waiting for approval"):
        ledger.approve(entry.number, approver="x", at=approved_at)
    with pytest.raises(LedgerError, match="not waiting for approval"):
        ledger.approve(other.number, approver="x", at=approved_at)  # issued without approval

    revoked_at = NOW + timedelta(days=10)
    ledger.revoke(entry.number, reason="lỗi", at=revoked_at)
    assert status() is Status.REVOKED
    assert status(at=revoked_at - timedelta(seconds=1)) is Status.VALID
    assert status(at=revoked_at) is Status.REVOKED
    ledger.checkpoint(key, lab_code="L1", at=revoked_at)
    audit = ledger.audit(keys=[key.public], check_files=False)
    # The new events are logged and signed like any other (the builder's data are fake: the
    # only problem is that they do not hash to their made-up digest).
    assert audit.events_signed == 5 and audit.log_size == 5, audit
    assert all("its data no longer match its digest" in p for p in audit.problems), audit


# -- numbers as people type them; search that folds (issue 18) ------------------------------


def _issue_as(
    ledger: Ledger, series: str, ref: str, sha: str, customer: str = "Khách"
) -> CertificateEntry:
    def build(number: str, seq: int) -> CertificateEntry:
        entry = _builder(ref)(number, seq)
        entry.customer_name = customer
        return entry

    entry = ledger.reserve_with("L1", series, 2026, build)
    return ledger.complete(entry.number, pdf_sha256=sha, pdf_path="x.pdf", signer="CN=x", at=NOW)


@pytest.mark.parametrize(
    "typed",
    [
        "KĐ-2026-000001",
        "KD-2026-000001",
        "kđ-2026-000001",
        "kd-2026-000001",
        " KD-2026-000001.pdf ",
        "out/KD-2026-000001.pdf",
        r"C:\certificates\KD-2026-000001.PDF",
        "Kđ-2026-000001",
        "K\u0110-2026-000001",
        "KD-2026-00001",  # a digit short: another number, not found
    ],
)
def test_numbers_are_found_as_people_type_them(any_ledger_url: str, typed: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    _issue_as(ledger, "KĐ", "a", "1" * 64)
    entry = ledger.get(typed)
    if typed.endswith("-00001"):
        assert entry is None
        return
    assert entry is not None and entry.number == "KĐ-2026-000001"
    assert ledger.resolve(typed) == "KĐ-2026-000001"


def test_unknown_numbers_stay_unknown_and_writes_use_the_ledgers_spelling(
    any_ledger_url: str,
) -> None:
    ledger = Ledger.open(any_ledger_url)
    _issue_as(ledger, "KĐ", "a", "1" * 64)
    for typed in ("KD-2026-000002", "KD-2025-000001", "HC-2026-000001", "nonsense", ""):
        assert ledger.get(typed) is None and ledger.resolve(typed) is None
    with pytest.raises(LedgerError, match="certificate KD-2026-000002 is not in the ledger"):
        ledger.revoke("KD-2026-000002", reason="lost", at=NOW)
    ev = ledger.revoke("kd-2026-000001.pdf", reason="tem bị mất", at=NOW)
    assert ev.number == "KĐ-2026-000001"
    assert [e.kind for e in ledger.events("KĐ-2026-000001")] == ["issued", "revoked"]


def test_a_number_two_series_share_without_marks_must_be_typed_exactly(
    any_ledger_url: str,
) -> None:
    ledger = Ledger.open(any_ledger_url)
    _issue_as(ledger, "KĐ", "a", "1" * 64)
    _issue_as(ledger, "KD", "b", "2" * 64)
    assert ledger.resolve("KĐ-2026-000001") == "KĐ-2026-000001"
    assert ledger.resolve("KD-2026-000001") == "KD-2026-000001"
    with pytest.raises(AmbiguousNumber, match="fits several certificates") as info:
        ledger.get("kd-2026-000001")
    assert info.value.hint is not None and "as printed" in info.value.hint


def test_search_folds_case_and_diacritics(any_ledger_url: str) -> None:
    import unicodedata

    ledger = Ledger.open(any_ledger_url)
    _issue_as(ledger, "KĐ", "a", "1" * 64, customer="Cửa hàng vĩnh long")
    _issue_as(ledger, "HC", "b", "2" * 64, customer="CÔNG TY VĨNH LONG")
    # Stored decomposed (NFD), as some spreadsheets write it.
    _issue_as(ledger, "HC", "c", "3" * 64, customer=unicodedata.normalize("NFD", "Vĩnh Long 2"))
    _issue_as(ledger, "HC", "d", "4" * 64, customer="Công ty Đồng Tháp")
    _issue_as(ledger, "HC", "e", "5" * 64, customer="Vinh Lợi 100%")

    def found(**filters: str) -> set[str]:
        return {e.ref for e, _ in ledger.search(today=date(2026, 12, 1), **filters)}  # type: ignore[arg-type]

    for typed in ("vinh long", "VĨNH LONG", "Vĩnh Long", "vĩnh   long", "VINH LONG"):
        assert found(customer=typed) == {"a", "b", "c"}, typed
    assert found(customer="dong thap") == found(customer="ĐỒNG THÁP") == {"d"}
    assert found(customer="đồng") == {"d"}
    assert found(customer="100%") == {"e"}  # '%' is a character, not a wildcard
    assert found(customer="1_0") == set()
    assert found(number="kd-2026") == {"a"}
    assert found(number="KĐ-2026-000001") == {"a"}


def test_token_key_dates_give_each_keys_first_and_last_issue_date(any_ledger_url: str) -> None:
    import base64

    from certissuer.token import TokenKey, make_token

    new, old = TokenKey.generate(), TokenKey.generate("ed25519")

    def builder(ref: str, key: TokenKey, issued: date, *, old_spelling: bool = False):  # type: ignore[no-untyped-def]
        build = _builder(ref)

        def with_token(number: str, seq: int) -> CertificateEntry:
            entry = build(number, seq)
            token = make_token(key, number=number, issued=issued, digest="ab" * 32)
            if old_spelling:  # issued before tokens were base32
                raw = base64.b32decode(token + "=" * (-len(token) % 8))
                token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
            entry.token, entry.issue_date = token, issued
            return entry

        return with_token

    ledger = Ledger.open(any_ledger_url)
    try:
        for ref, key, issued, spelling in [
            ("a", old, date(2025, 1, 10), True),
            ("b", old, date(2025, 6, 30), False),
            ("c", new, date(2026, 2, 1), False),
            ("d", new, date(2026, 11, 27), False),
        ]:
            ledger.reserve_with("L1", "HC", 2026, builder(ref, key, issued, old_spelling=spelling))
        assert ledger.token_key_dates() == {
            old.public.kid.hex(): (date(2025, 1, 10), date(2025, 6, 30)),
            new.public.kid.hex(): (date(2026, 2, 1), date(2026, 11, 27)),
        }
    finally:
        ledger.close()
