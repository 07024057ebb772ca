from __future__ import annotations

import base64
from datetime import date
from pathlib import Path

import pytest
import qrcode

from certissuer.errors import TokenError
from certissuer.token import (
    TokenKey,
    load_public_keys,
    make_token,
    read_token,
    token_from_url,
    verification_url,
)

DIGEST = "9f" * 32


@pytest.fixture(params=["ed25519", "p256"])
def key(request: pytest.FixtureRequest) -> TokenKey:
    return TokenKey.generate(request.param)


def test_round_trip_carries_number_date_digest(key: TokenKey) -> None:
    tok = make_token(key, number="KĐ-2026-000123", issued=date(2026, 11, 27), digest=DIGEST)
    claims = read_token(tok, [key.public])
    assert claims.number == "KĐ-2026-000123"
    assert claims.issued == date(2026, 11, 27)
    assert claims.matches_digest(DIGEST)
    assert not claims.matches_digest("00" * 32)


def test_url_fits_a_version_8_qr_code_at_level_m_in_alphanumeric_mode(key: TokenKey) -> None:
    tok = make_token(key, number="KĐ-2026-000123", issued=date(2026, 11, 27), digest=DIGEST)
    url = verification_url("https://kiemdinh.dongthap.gov.vn/", tok)
    assert url.startswith("HTTPS://KIEMDINH.DONGTHAP.GOV.VN/V/")
    assert token_from_url(url) == tok
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(url)
    qr.make(fit=True)
    assert [chunk.mode for chunk in qr.data_list] == [qrcode.util.MODE_ALPHA_NUM]
    assert qr.version <= 8


def _bytes(tok: str) -> bytes:
    return base64.b32decode(tok + "=" * (-len(tok) % 8))


SPELLINGS = {
    "base32": lambda raw: base64.b32encode(raw).rstrip(b"=").decode(),
    "base64url (older tokens)": lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_flipped_byte_is_rejected(key: TokenKey, spelling: str) -> None:
    tok = make_token(key, number="HC-2026-000001", issued=date(2026, 1, 2), digest=DIGEST)
    raw = bytearray(_bytes(tok))
    assert read_token(SPELLINGS[spelling](bytes(raw)), [key.public]).number == "HC-2026-000001"
    for i in range(len(raw)):
        forged = bytearray(raw)
        forged[i] ^= 0x01
        with pytest.raises(TokenError):
            read_token(SPELLINGS[spelling](bytes(forged)), [key.public])


def test_forged_number_with_own_key_is_rejected(key: TokenKey) -> None:
    forger = TokenKey.generate()
    tok = make_token(forger, number="HC-2026-000001", issued=date(2026, 1, 2), digest=DIGEST)
    with pytest.raises(TokenError, match="unknown key"):
        read_token(tok, [key.public])


def test_forger_copying_the_key_id_is_rejected(key: TokenKey) -> None:
    forger = TokenKey.generate()
    honest = make_token(key, number="HC-2026-000001", issued=date(2026, 1, 2), digest=DIGEST)
    message = _bytes(honest)[:-64].replace(b"000001", b"000002")
    forged = message + forger.sign(message)
    for spell in SPELLINGS.values():
        with pytest.raises(TokenError, match="altered or forged"):
            read_token(spell(forged), [key.public])


@pytest.mark.parametrize("cut", [1, 10, 64, 80])
def test_truncated_token_is_rejected(key: TokenKey, cut: int) -> None:
    tok = make_token(key, number="HC-2026-000001", issued=date(2026, 1, 2), digest=DIGEST)
    with pytest.raises(TokenError):
        read_token(tok[:-cut], [key.public])


@pytest.mark.parametrize("bad", ["", "not base64 !!", "A" * 500, "AAAA"])
def test_garbage_is_rejected(key: TokenKey, bad: str) -> None:
    with pytest.raises(TokenError):
        read_token(bad, [key.public])


def test_url_without_token_path_is_rejected() -> None:
    with pytest.raises(TokenError, match="verification URL"):
        token_from_url("https://evil.example/login?next=/v/abc")


def test_public_keys_load_from_private_or_public_pem(tmp_path: Path, key: TokenKey) -> None:
    (tmp_path / "pub.pem").write_bytes(key.public.pem())
    assert [k.kid for k in load_public_keys(tmp_path / "pub.pem")] == [key.public.kid]


def test_repr_shows_no_key_material(key: TokenKey) -> None:
    assert "PRIVATE" not in repr(key) and key.pem().decode() not in repr(key)


def test_new_token_keys_are_ecdsa_p256_and_ed25519_keys_keep_verifying() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = TokenKey.generate()
    assert isinstance(key.private, ec.EllipticCurvePrivateKey)
    assert isinstance(key.private.curve, ec.SECP256R1)  # ES256: what browsers verify
    old = TokenKey.generate("ed25519")
    tok = make_token(old, number="HC-2025-000001", issued=date(2025, 3, 1), digest=DIGEST)
    assert read_token(tok, [key.public, old.public]).number == "HC-2025-000001"


@pytest.mark.parametrize("kind", ["p256", "ed25519"])
def test_a_key_set_signed_by_either_kind_of_key_reads_back_with_its_windows(kind: str) -> None:
    from certissuer.token import PublishedKey, keys_document, read_keys_document

    signer, other = TokenKey.generate(kind), TokenKey.generate()
    published = [
        PublishedKey(signer.public, date(2026, 1, 2), None),
        PublishedKey(other.public, None, date(2025, 12, 31)),
    ]
    data = keys_document(published, signer=signer, lab={"code": "T01"})
    keys, by = read_keys_document(data, pinned=[signer.public.fingerprint.upper()])
    assert keys == published and by == signer.public
    assert not keys[0].covers(date(2026, 1, 1)) and keys[0].covers(date(2030, 1, 1))
    assert keys[1].covers(date(2025, 12, 31)) and not keys[1].covers(date(2026, 1, 1))
    with pytest.raises(TokenError, match="not signed"):
        read_keys_document(keys_document(published, signer=None, lab={"code": "T01"}))
    with pytest.raises(TokenError, match="must be one of the keys"):
        keys_document(published[1:], signer=signer, lab={"code": "T01"})
