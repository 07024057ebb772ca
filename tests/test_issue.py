"""The pipeline end to end: real rendering, real signatures, a real SQLite ledger."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from certissuer.errors import IssueRefused, LedgerError, SigningError
from certissuer.issue import Issuer, pdf_filename
from certissuer.ledger import FailedVerification
from certissuer.model import canonical_json, parse_certificate
from certissuer.token import read_token, token_from_url
from certissuer.verify import Verdict

from .conftest import SAMPLES, load_json


def _files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_issue_writes_signed_pdf_and_ledger_row(
    issuer: Issuer, cal_cert: Any, verifier: Any
) -> None:
    issued = issuer.issue(cal_cert)
    assert issued.number == f"HC-{date.today().year}-000001"
    assert issued.path.name == f"HC-{date.today().year}-000001.pdf"
    data = issued.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == issued.pdf_sha256
    entry = issuer.ledger.get(issued.number)
    assert entry is not None and entry.pdf_sha256 == issued.pdf_sha256
    assert entry.instrument_serial == "B912345678" and entry.kind == "calibration"
    claims = read_token(token_from_url(issued.url), [issuer.token_key.public])
    assert claims.number == issued.number and claims.matches_digest(entry.data_digest)
    assert verifier.verify_pdf(data).verdict is Verdict.VALID


def test_verification_certificate_uses_its_series(issuer: Issuer, ver_cert: Any) -> None:
    issued = issuer.issue(ver_cert)
    assert issued.number.startswith("KĐ-") and issued.path.name.startswith("KD-")
    entry = issuer.ledger.get(issued.number)
    assert entry is not None and entry.valid_until == date(2027, 11, 24)


def test_same_record_twice_returns_the_first(issuer: Issuer, cal_cert: Any) -> None:
    first = issuer.issue(cal_cert)
    again = issuer.issue(cal_cert)
    assert again.reused and again.number == first.number and again.pdf_sha256 == first.pdf_sha256
    assert issuer.ledger.count() == 1
    assert _files(issuer.out_dir) == [first.path.name]


def test_same_ref_with_other_data_is_refused(issuer: Issuer, cal_data: dict[str, Any]) -> None:
    issuer.issue(parse_certificate(cal_data))
    with pytest.raises(LedgerError, match="already issued"):
        issuer.issue(parse_certificate({**cal_data, "method": "other method"}))


def test_failed_instrument_gets_no_certificate_but_is_recorded(
    issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    ver_data["checks"][1]["error"] = "-0.12"
    with pytest.raises(IssueRefused, match=r"check 2 .*exceeds MPE 0.10"):
        issuer.issue(parse_certificate(ver_data))
    # Issue 16: no certificate, but a notice of failure (its own series) is issued instead.
    (entry,) = issuer.ledger.entries()
    assert entry.kind == "failure" and entry.number.startswith("TB-")
    assert issuer.ledger.entries(kind="verification") == []
    assert _files(issuer.out_dir) == [f"{entry.number}.pdf"]
    from sqlmodel import Session, select

    with Session(issuer.ledger.engine) as s:
        (failed,) = s.exec(select(FailedVerification)).all()
    assert failed.ref == ver_data["ref"] and failed.instrument_serial == "TS-2019-88231"


def test_check_of_a_failed_instrument_writes_nothing(
    issuer: Issuer, ver_data: dict[str, Any]
) -> None:
    """Checking is not issuing: the failure is recorded only when its notice is issued."""
    from sqlmodel import Session, select

    ver_data["checks"][1]["error"] = "-0.12"
    issuer.check(parse_certificate(ver_data))  # the notice of failure would render
    with Session(issuer.ledger.engine) as s:
        assert s.exec(select(FailedVerification)).all() == []
    assert issuer.ledger.entries() == []


class _Boom(Exception):
    pass


def test_signer_failure_leaves_no_pdf_and_no_row(
    issuer: Issuer, cal_cert: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_a: object, **_k: object) -> bytes:
        raise SigningError("token removed")

    monkeypatch.setattr(issuer.sealer, "sign", fail)
    with pytest.raises(SigningError):
        issuer.issue(cal_cert)
    assert issuer.ledger.count() == 0
    assert _files(issuer.out_dir) == []
    monkeypatch.undo()
    assert issuer.issue(cal_cert).number.endswith("-000001")  # the number was given back


def test_ledger_failure_after_write_removes_the_pdf(
    issuer: Issuer, cal_cert: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_a: object, **_k: object) -> None:
        raise _Boom("disk full")

    monkeypatch.setattr(issuer.ledger, "complete", fail)
    with pytest.raises(_Boom):
        issuer.issue(cal_cert)
    assert _files(issuer.out_dir) == []
    assert issuer.ledger.count() == 0


def test_ledger_failure_after_a_database_store_removes_the_stored_pdf(
    issuer: Issuer, cal_cert: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlmodel import select

    from certissuer.config import PdfStore
    from certissuer.ledger.tables import StoredPdf

    issuer.settings = issuer.settings.replace(ledger_pdf_store=PdfStore.DATABASE)

    def fail(*_a: object, **_k: object) -> None:
        raise _Boom("disk full")

    monkeypatch.setattr(issuer.ledger, "complete", fail)
    with pytest.raises(_Boom):
        issuer.issue(cal_cert)
    assert issuer.ledger.count() == 0
    with issuer.ledger.session(read_only=True) as s:
        assert list(s.exec(select(StoredPdf))) == []  # no PDF without its ledger row
    monkeypatch.undo()
    issued = issuer.issue(cal_cert)
    with issuer.ledger.session(read_only=True) as s:
        assert [row.number for row in s.exec(select(StoredPdf))] == [issued.number]


def test_pending_entry_is_completed_from_its_stored_data(
    issuer: Issuer, cal_cert: Any, ver_cert: Any, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sign = issuer.sealer.sign
    calls = {"n": 0}

    def flaky(pdf: bytes, **kw: Any) -> bytes:
        calls["n"] += 1
        if calls["n"] == 1:
            # While the first certificate is being signed, another one takes the next number.
            issuer.ledger.reserve_with("T01", "HC", date.today().year, _other_entry(issuer))
            raise SigningError("token unplugged")
        return real_sign(pdf, **kw)

    monkeypatch.setattr(issuer.sealer, "sign", flaky)
    with pytest.raises(SigningError):
        issuer.issue(cal_cert)
    (pending,) = [e for e in issuer.ledger.pending() if e.ref == cal_cert.ref]
    assert pending.number.endswith("-000001")  # kept: releasing it would leave a gap
    done = {d.number: d for d in issuer.complete_pending()}
    assert pending.number in done
    report = verifier.verify_pdf(done[pending.number].path.read_bytes())
    assert report.verdict is Verdict.VALID and report.number == pending.number


def _other_entry(issuer: Issuer) -> Any:
    """A builder for a pending entry of another record, as a concurrent issuer would make."""
    data = load_json(SAMPLES / "calibration.json")
    data["ref"] = "other-ref"
    cert = parse_certificate(data)
    js = canonical_json(cert).decode()
    digest = hashlib.sha256(js.encode()).hexdigest()

    def build(number: str, seq: int) -> Any:
        return issuer._entry(cert, number, seq, "HC", date.today(), datetime.now(UTC), digest, js)

    return build


def test_no_temporary_files_remain(issuer: Issuer, cal_cert: Any, ver_cert: Any) -> None:
    issuer.issue(cal_cert)
    issuer.issue(ver_cert)
    assert all(not n.startswith(".") for n in _files(issuer.out_dir))
    assert len(_files(issuer.out_dir)) == 2


def test_pdf_filename_is_ascii() -> None:
    assert pdf_filename("KĐ-2026-000123") == "KD-2026-000123.pdf"
    assert pdf_filename("HC/2026/1") == "HC20261.pdf"
