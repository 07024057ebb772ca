"""Attacks on a signed certificate, each refused by `Verifier` (real pyHanko validation)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from certissuer.config import Settings
from certissuer.errors import VerificationFailed
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import EventKind, Ledger, LedgerEvent
from certissuer.sign import Keyring, Sealer
from certissuer.token import TokenKey, make_token, verification_url
from certissuer.verify import Report, Verdict, Verifier

from .conftest import PASSPHRASE


@pytest.fixture
def signed(issuer: Issuer, cal_cert: Any) -> tuple[Any, bytes]:
    issued = issuer.issue(cal_cert)
    return issued, issued.path.read_bytes()


def test_genuine_certificate_is_valid(verifier: Verifier, signed: tuple[Any, bytes]) -> None:
    issued, data = signed
    report = verifier.verify_pdf(data)
    assert report.verdict is Verdict.VALID and report.ok
    assert report.number == issued.number and report.pdf_sha256 == issued.pdf_sha256
    assert report.label_vi == "HỢP LỆ" and report.serial == "B912345678"
    assert "Test lab" in (report.signer or "")


def _content_stream_offset(data: bytes) -> int:
    # The first byte of the first page content stream's data (inside the signed range).
    match = re.search(rb"stream\r?\n", data)
    assert match is not None
    return match.end() + 5


def test_flipped_byte_in_content_is_altered(verifier: Verifier, signed: tuple[Any, bytes]) -> None:
    _, data = signed
    at = _content_stream_offset(data)
    tampered = data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]
    report = verifier.verify_pdf(tampered)
    assert report.verdict is Verdict.ALTERED, report.reasons


@pytest.mark.parametrize("where", [0.02, 0.2, 0.98])  # in the CMS ... in the zero padding
def test_flipped_byte_in_signature_is_altered(
    verifier: Verifier, signed: tuple[Any, bytes], where: float
) -> None:
    _, data = signed
    begin = data.rindex(b"/Contents <") + len(b"/Contents <")
    end = data.index(b">", begin)
    start = begin + int((end - begin) * where)
    flipped = b"0" if data[start : start + 1] != b"0" else b"1"
    report = verifier.verify_pdf(data[:start] + flipped + data[start + 1 :])
    assert report.verdict is Verdict.ALTERED, report.reasons


def test_incremental_update_changing_a_value_is_altered(
    verifier: Verifier, signed: tuple[Any, bytes]
) -> None:
    _, data = signed
    writer = IncrementalPdfFileWriter(BytesIO(data))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    fake = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (PASS 0.000 g) Tj ET")
    page["/Contents"] = writer.add_object(fake)
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    report = verifier.verify_pdf(out.getvalue())
    assert report.verdict is Verdict.ALTERED
    assert any("changed after it was signed" in r for r in report.reasons)


def test_incremental_update_of_metadata_only_is_altered(
    verifier: Verifier, signed: tuple[Any, bytes]
) -> None:
    _, data = signed
    writer = IncrementalPdfFileWriter(BytesIO(data))
    info = writer.trailer["/Info"]
    info["/CertissuerQR"] = generic.TextStringObject("https://evil.example/v/x")
    writer.update_container(info)
    out = BytesIO()
    writer.write(out)
    assert verifier.verify_pdf(out.getvalue()).verdict is Verdict.ALTERED


def test_pdf_signed_by_another_key_is_unknown_signer(
    issuer: Issuer, other_pki: KeyPaths, verifier: Verifier, cal_cert: Any
) -> None:
    # the forger's certificate names the printed signatory, but no trusted CA issued it
    issuer.keys = Keyring(
        issuer.settings, sealer=Sealer.from_pkcs12(other_pki.signer_p12, PASSPHRASE)
    )
    data = issuer.issue(cal_cert).path.read_bytes()
    report = verifier.verify_pdf(data)
    assert report.verdict is Verdict.UNKNOWN_SIGNER
    assert "Forger" in " ".join(report.reasons)


def test_genuine_pdf_missing_from_ledger_is_not_in_ledger(
    signed: tuple[Any, bytes], settings: Settings, tmp_path: Path
) -> None:
    _, data = signed
    empty = Ledger.open(f"sqlite:///{tmp_path / 'empty.db'}")
    report = Verifier.from_settings(settings, ledger=empty).verify_pdf(data)
    assert report.verdict is Verdict.NOT_IN_LEDGER
    assert report.label_en == "NOT IN THE LEDGER"


def test_genuine_pdf_checked_offline_is_file_genuine_ledger_not_consulted(
    signed: tuple[Any, bytes], settings: Settings, ledger: Ledger
) -> None:
    issued, data = signed
    offline = Verifier.from_settings(settings, ledger=None)
    report = offline.verify_pdf(data)
    assert report.verdict is Verdict.FILE_LEDGER_NOT_CONSULTED and report.exit_code == 10
    assert not report.ok and report.label_en == "FILE GENUINE, LEDGER NOT CONSULTED"
    assert report.label_vi == "TỆP DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP"
    entry = ledger.get(issued.number)
    assert entry is not None
    digest = hashlib.sha256(entry.data_json.encode()).hexdigest()
    assert report.number == issued.number and report.issue_date == entry.issue_date
    assert report.token_digest == digest[:32] and report.token_kid
    assert report.signatures and any("intact, valid" in r for r in report.reasons)
    assert any("not consulted (offline)" in r for r in report.reasons)
    assert report.data_digest is None  # the stored data were not recomputed
    assert Report.from_dict(report.to_dict()) == report
    altered = offline.verify_pdf(data + b"\n% appended\n")
    assert altered.verdict is Verdict.ALTERED and altered.exit_code == 1


def test_forged_token_in_a_signed_pdf_is_altered(
    issuer: Issuer, verifier: Verifier, cal_cert: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    forger = TokenKey.generate()
    real_sign = issuer.sealer.sign

    def sign_with_forged_token(pdf: bytes, **kw: Any) -> bytes:
        url = verification_url(
            "https://verify.test.invalid",
            make_token(forger, number="HC-2026-999999", issued=date.today(), digest="00" * 32),
        )
        return real_sign(pdf, **{**kw, "info": {"CertissuerQR": url}})

    monkeypatch.setattr(issuer.sealer, "sign", sign_with_forged_token)
    data = issuer.issue(cal_cert).path.read_bytes()
    report = verifier.verify_pdf(data)
    assert report.verdict is Verdict.ALTERED
    assert any("unknown key" in r for r in report.reasons)
    offline = Verifier(
        trust_roots=verifier.trust_roots, token_keys=verifier.token_keys, ledger=None
    ).verify_pdf(data)
    assert offline.verdict is Verdict.ALTERED  # offline: still NOT GENUINE


def test_unsigned_pdf_is_altered(
    verifier: Verifier, renderer: Any, cal_cert: Any, settings: Settings
) -> None:
    pdf = renderer.render_pdf(
        cal_cert,
        number="HC-2026-000001",
        issued=date.today(),
        qr_url="https://verify.test.invalid/v/x",
        settings=settings,
    )
    report = verifier.verify_pdf(pdf)
    assert report.verdict is Verdict.ALTERED and "no signature" in report.reasons[0]


def test_not_a_pdf_fails_clearly(verifier: Verifier) -> None:
    with pytest.raises(VerificationFailed, match="not a PDF"):
        verifier.verify_pdf(b"GIF89a....")


def test_revoked_superseded_and_expired(
    verifier: Verifier, signed: tuple[Any, bytes], issuer: Issuer
) -> None:
    issued, data = signed
    ledger = issuer.ledger
    assert verifier.verify_pdf(data, today=date(2099, 1, 1)).verdict is Verdict.VALID  # no expiry
    ledger.add_event(
        LedgerEvent(
            number=issued.number,
            kind=EventKind.SUPERSEDED,
            at=datetime.now(UTC),
            reason="typo in serial",
            related_number="HC-2026-000002",
        ),
        ledger_key=issuer.token_key,
    )
    report = verifier.verify_pdf(data)
    assert report.verdict is Verdict.SUPERSEDED and report.superseded_by == "HC-2026-000002"
    ledger.add_event(
        LedgerEvent(
            number=issued.number,
            kind=EventKind.REVOKED,
            at=datetime.now(UTC),
            reason="standard out of calibration",
        ),
        ledger_key=issuer.token_key,
    )
    report = verifier.verify_pdf(data)
    assert report.verdict is Verdict.REVOKED and not report.ok
    assert report.revocation_reason == "standard out of calibration"


def test_verification_certificate_expires(
    verifier: Verifier, issuer: Issuer, ver_cert: Any
) -> None:
    data = issuer.issue(ver_cert).path.read_bytes()
    assert verifier.verify_pdf(data, today=date(2027, 11, 24)).verdict is Verdict.VALID
    report = verifier.verify_pdf(data, today=date(2027, 11, 25))
    assert report.verdict is Verdict.EXPIRED and report.label_vi == "HẾT HIỆU LỰC"


def test_qr_url_checks(verifier: Verifier, signed: tuple[Any, bytes], settings: Settings) -> None:
    issued, _ = signed
    assert verifier.verify_url(issued.url).verdict is Verdict.VALID
    assert verifier.verify_url(issued.url[:-6]).verdict is Verdict.ALTERED  # truncated
    offline = Verifier.from_settings(settings, ledger=None)
    report = offline.verify_url(issued.url)
    assert report.verdict is Verdict.LEDGER_NOT_CONSULTED and report.number == issued.number
    assert not report.ok and report.exit_code == 10
    assert report.label_en == "QR GENUINE, LEDGER NOT CONSULTED"
    assert any("genuine" in r for r in report.reasons)
    assert any("not consulted (offline)" in r for r in report.reasons)
    forged = verification_url(
        settings.token_url_base,
        make_token(
            TokenKey.generate(), number=issued.number, issued=date.today(), digest="00" * 32
        ),
    )
    assert verifier.verify_url(forged).verdict is Verdict.ALTERED
    assert offline.verify_url(forged).verdict is Verdict.ALTERED  # offline: still NOT GENUINE


def test_an_unreachable_ledger_gives_the_offline_verdict_with_what_the_token_proves(
    signed: tuple[Any, bytes], settings: Settings, ledger: Ledger
) -> None:
    from sqlalchemy import create_engine

    issued, _ = signed
    entry = ledger.get(issued.number)
    assert entry is not None
    # Nothing listens on port 9: every read of this ledger fails with LedgerError.
    dead = Ledger(create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none"))
    report = Verifier.from_settings(settings, ledger=dead).verify_url(issued.url)
    assert report.verdict is Verdict.LEDGER_NOT_CONSULTED and report.exit_code == 10
    assert report.number == issued.number and report.issue_date == entry.issue_date
    digest = hashlib.sha256(entry.data_json.encode()).hexdigest()
    assert report.token_digest == digest[:32] and report.token_kid
    assert any("could not be reached" in r for r in report.reasons)
    assert Report.from_dict(report.to_dict()) == report


def test_token_for_other_data_is_altered(
    verifier: Verifier, signed: tuple[Any, bytes], settings: Settings
) -> None:
    issued, _ = signed
    key = load_token_key(settings)  # even the lab's own key cannot vouch for other data
    url = verification_url(
        settings.token_url_base,
        make_token(
            key, number=issued.number, issued=date.today() - timedelta(days=0), digest="11" * 32
        ),
    )
    report = verifier.verify_url(url)
    assert report.verdict is Verdict.ALTERED and "digest" in report.reasons[-1]


@pytest.mark.parametrize("junk", [b"\n% appended\n", b"\n" + b"A" * 4096])
def test_bytes_appended_after_eof_are_altered(
    verifier: Verifier, signed: tuple[Any, bytes], junk: bytes
) -> None:
    _, data = signed
    report = verifier.verify_pdf(data + junk)
    assert report.verdict is Verdict.ALTERED, report.reasons
