"""The QR payload: a compact signed token inside a verification URL.

A token binds a certificate number, its issue date and the first 128 bits of its data digest,
signed by the lab's token key (ECDSA P-256 for new keys, which browsers verify with WebCrypto;
Ed25519 keys made before keep working). It is checked offline with the lab's public key; the
ledger check comes after, online.

Binary layout, then base32 (RFC 4648, upper case) without padding::

    version (1) | key id (4) | issue date: days since 2000-01-01 (2, big-endian)
    | data digest prefix (16) | certificate number (UTF-8, rest) | signature (64)

The key id is the first 4 bytes of SHA-256 over the public key's DER SubjectPublicKeyInfo.
An ECDSA signature is stored as raw r‖s (32 + 32 bytes).

The URL is printed in upper case (`verification_url`): ``HTTPS://HOST/V/<token>``. Every
character is then in the QR code's alphanumeric set (0-9, A-Z, space and ``$%*+-./:``), 5.5 bits
a character instead of byte mode's 8: with a 30-character URL base the whole URL (about 190
characters) fits a version 8 QR code at error correction M where the older base64url URL
(about 170 characters in byte mode) needed version 9 or 10, so each module can be printed
larger on the same paper. Tokens issued before are base64url and keep verifying: the first
byte (the version, 1) reads ``A`` then one of ``E``-``H`` in base32 and ``A`` then one of
``Q``-``Z``, ``a``-``f`` in base64url, so a token's spelling says which it is.

>>> from certissuer.token import TokenKey, make_token, read_token
>>> key = TokenKey.generate()
>>> tok = make_token(key, number="HC-2026-000001", issued=date(2026, 11, 27), digest="ab" * 32)
>>> read_token(tok, [key.public]).number
'HC-2026-000001'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from certissuer.errors import ConfigError, TokenError

__all__ = [
    "INFO_CHECKPOINT_KEY",
    "INFO_QR_KEY",
    "KEYS_PATH",
    "PublishedKey",
    "TokenClaims",
    "TokenKey",
    "TokenPublicKey",
    "keys_document",
    "lab_public_keys",
    "load_public_keys",
    "make_token",
    "read_keys_document",
    "read_token",
    "token_from_url",
    "token_key_id",
    "verification_url",
    "wrong_host",
]

INFO_QR_KEY = "CertissuerQR"
"""Name of the PDF document-information entry that carries the QR URL (the signed file keeps
the URL beside its QR code, so a verifier reads the token without decoding the image)."""

INFO_CHECKPOINT_KEY = "CertissuerCheckpoint"
"""Name of the PDF document-information entry of a signed report of the lab: ``<tree size>
<root hex>`` of the ledger checkpoint the report counts, in the signed revision. A verifier
takes a file carrying it for a report, not a certificate."""

_VERSION = 1
_EPOCH = date(2000, 1, 1)
_DIGEST_BYTES = 16
_SIG_BYTES = 64
_HEADER = struct.Struct(">B4sH16s")
_MAX_TOKEN = 400
"""Longest token read, in characters (a real one is about 165 in base32, 135 in base64url)."""
_NOT_BASE64URL = re.compile(r"[^A-Za-z0-9_-]")
_NOT_BASE32 = re.compile(r"[^A-Z2-7]")
_BASE32_HEAD = re.compile(r"A[E-H]")
"""How a base32 token begins: the version byte 1 is 00000 001.. (base64url: A then Q-Z, a-f)."""
_TO_STANDARD = str.maketrans("-_", "+/")
_PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _key_id(public: _PublicKey) -> bytes:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()[:4]


def _check_supported(key: _PublicKey | _PrivateKey | object, origin: str) -> None:
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return
    raise TokenError(f"{origin}: a token key must be Ed25519 or ECDSA P-256")


@dataclass(frozen=True, slots=True)
class TokenPublicKey:
    """A public key that checks tokens, with its key id."""

    key: _PublicKey
    kid: bytes

    @classmethod
    def of(cls, key: _PublicKey) -> TokenPublicKey:
        """Wrap `key` (Ed25519 or ECDSA P-256) and compute its key id."""
        _check_supported(key, "public key")
        return cls(key, _key_id(key))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER public key, hex, as shown to inspectors."""
        der = self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when `signature` (64 bytes) over `message` is valid for this key."""
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, message)
            else:
                r = int.from_bytes(signature[:32], "big")
                s = int.from_bytes(signature[32:], "big")
                self.key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def alg(self) -> str:
        """The JOSE algorithm of this key's signatures: ``ES256`` or ``EdDSA`` (RFC 8037)."""
        return "EdDSA" if isinstance(self.key, ed25519.Ed25519PublicKey) else "ES256"

    def jwk(self) -> dict[str, str]:
        """The public key as a JSON Web Key (RFC 7517/7518; Ed25519: RFC 8037).

        A P-256 key's JWK is what WebCrypto's ``importKey("jwk", ...)`` takes.
        """
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
        numbers = self.key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> TokenPublicKey:
        """The key of the JSON Web Key `jwk` (as `jwk` writes it); `TokenError` otherwise."""
        try:
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                public: _PublicKey = ed25519.Ed25519PublicKey.from_public_bytes(
                    _unb64url(str(jwk["x"]))
                )
            elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                x, y = _unb64url(str(jwk["x"])), _unb64url(str(jwk["y"]))
                if len(x) != 32 or len(y) != 32:
                    raise ValueError("a P-256 coordinate is 32 bytes")
                public = ec.EllipticCurvePublicNumbers(
                    int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
                ).public_key()
            else:
                raise ValueError("expected an EC P-256 or OKP Ed25519 key")
        except (KeyError, ValueError, binascii.Error) as exc:
            raise TokenError(f"not a usable token key JWK: {exc}") from None
        return cls.of(public)


@dataclass(frozen=True, slots=True)
class TokenKey:
    """The lab's token signing key. Its `repr` never shows key material."""

    private: _PrivateKey
    public: TokenPublicKey

    def __repr__(self) -> str:
        return f"TokenKey(kid={self.public.kid.hex()})"

    @classmethod
    def generate(cls, kind: str = "p256") -> TokenKey:
        """A fresh key: ``p256`` (ECDSA P-256, the default) or ``ed25519``.

        New keys are P-256 because every current browser's WebCrypto verifies ECDSA P-256
        (ES256): the verification page checks tokens offline with it (issue 18). Ed25519 keys
        made before keep signing and verifying in Python.
        """
        if kind not in ("p256", "ed25519"):
            raise TokenError(f"unknown token key kind {kind!r}: expected 'p256' or 'ed25519'")
        private: _PrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if kind == "ed25519"
            else ec.generate_private_key(ec.SECP256R1())
        )
        return cls(private, TokenPublicKey.of(private.public_key()))

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None = None) -> TokenKey:
        """Load a PEM private key from `path`; raise `TokenError` naming the file on failure."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TokenError(f"{path}: cannot read the token key ({exc.strerror})") from None
        try:
            private = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError):
            raise TokenError(
                f"{path}: not a usable PEM private key (wrong passphrase or damaged file)"
            ) from None
        _check_supported(private, str(path))
        assert isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
        return cls(private, TokenPublicKey.of(private.public_key()))

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature over `message`."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(message)
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (for `keys init` of demo keys only)."""
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def load_public_keys(path: Path) -> list[TokenPublicKey]:
    """Public keys from a PEM file holding public keys or a private key (its public half)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenError(f"{path}: cannot read the token key ({exc.strerror})") from None
    if b"PRIVATE KEY" in data:
        return [TokenKey.load(path).public]
    keys: list[TokenPublicKey] = []
    for block in data.split(b"-----END PUBLIC KEY-----")[:-1]:
        try:
            pub = serialization.load_pem_public_key(block + b"-----END PUBLIC KEY-----\n")
        except ValueError:
            raise TokenError(f"{path}: not a PEM public key") from None
        assert isinstance(pub, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
        keys.append(TokenPublicKey.of(pub))
    if not keys:
        raise TokenError(f"{path}: no PEM public key found")
    return keys


def lab_public_keys(path: Path | None) -> list[TokenPublicKey]:
    """The lab's token (and ledger event) public keys from the key file `path` of its profile.

    Raises `ConfigError` when no file is configured (`path` is None), `TokenError` when it
    cannot be read.
    """
    if path is None:
        raise ConfigError("no token key configured", hint="set [token] key in the lab profile")
    return load_public_keys(path)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says."""

    number: str
    issued: date
    digest_prefix: str
    """First 128 bits of the data digest, hex."""
    kid: str

    def matches_digest(self, digest: str) -> bool:
        """True when the full data digest `digest` (hex) starts with this token's prefix."""
        return hmac.compare_digest(digest[: 2 * _DIGEST_BYTES].lower(), self.digest_prefix)

    def to_dict(self) -> dict[str, str]:
        """The claims as JSON-ready strings (`from_dict` reads them back)."""
        return {
            "number": self.number,
            "issued": self.issued.isoformat(),
            "digest_prefix": self.digest_prefix,
            "kid": self.kid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> TokenClaims:
        """The claims `to_dict` wrote."""
        return cls(
            number=data["number"],
            issued=date.fromisoformat(data["issued"]),
            digest_prefix=data["digest_prefix"],
            kid=data["kid"],
        )


def make_token(key: TokenKey, *, number: str, issued: date, digest: str) -> str:
    """A token for certificate `number` issued on `issued` whose data digest is `digest` (hex)."""
    days = (issued - _EPOCH).days
    if not 0 <= days < 2**16:
        raise TokenError(f"issue date {issued} is outside the range a token can carry")
    body = _HEADER.pack(_VERSION, key.public.kid, days, bytes.fromhex(digest)[:_DIGEST_BYTES])
    message = body + number.encode()
    return base64.b32encode(message + key.sign(message)).rstrip(b"=").decode("ascii")


def _decode_base32(token: str) -> bytes:
    """The bytes of the base32 token `token`, which must be spelled as `make_token` spells it."""
    if "=" in token:
        raise TokenError(
            "the token carries '=' padding: a certissuer token is base32 without padding"
        )
    if bad := _NOT_BASE32.search(token):
        raise TokenError(
            f"the token contains {bad.group()!r} at position {bad.start() + 1}: only A-Z and "
            "2-7 may appear in a base32 certissuer token (upper case, as printed)"
        )
    if len(token) % 8 in (1, 3, 6):  # no byte count encodes to these lengths
        raise TokenError("the token is not valid base32 (damaged or truncated)")
    try:
        raw = base64.b32decode(token + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        raise TokenError("the token is not valid base32 (damaged or truncated)") from None
    if base64.b32encode(raw).rstrip(b"=") != token.encode("ascii"):
        raise TokenError(
            "the token's last character is not the canonical one (its unused bits are set): "
            "the token was altered"
        )
    return raw


def _decode_canonical(token: str) -> bytes:
    """The bytes of `token`, which must be spelled exactly as `make_token` spells them, or
    as it spelled them before tokens were base32 (base64url, see the module docstring).

    base32 and base64 decoders forgive a lot: ``=`` padding or none, lower case in base32,
    ``+`` and ``/`` for ``-`` and ``_``, characters outside the alphabet skipped, and a last
    character whose unused low bits are not zero (``A`` and ``B`` can end the same bytes).
    Each leniency gives one token several URLs,
    several cache entries and several spellings to compare, so none is allowed: a token is
    accepted only when re-encoding its bytes gives back the very same text.
    """
    if not token or len(token) > _MAX_TOKEN:
        raise TokenError("the token is empty or too long to be a certissuer token")
    if _BASE32_HEAD.match(token):
        return _decode_base32(token)
    if "=" in token:
        raise TokenError(
            "the token carries '=' padding: a certissuer token is base64url without padding"
        )
    if bad := _NOT_BASE64URL.search(token):
        raise TokenError(
            f"the token contains {bad.group()!r} at position {bad.start() + 1}: only A-Z, a-z, "
            "0-9, '-' and '_' may appear in a certissuer token"
        )
    if len(token) % 4 == 1:  # no byte count encodes to 4n+1 characters
        raise TokenError("the token is not valid base64url (damaged or truncated)")
    try:
        raw = base64.b64decode(
            token.translate(_TO_STANDARD) + "=" * (-len(token) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        raise TokenError("the token is not valid base64url (damaged or truncated)") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode("ascii"):
        # Only the last character can differ: its unused low bits are not zero.
        raise TokenError(
            "the token's last character is not the canonical one (its unused bits are set): "
            "the token was altered"
        )
    return raw


def read_token(token: str, keys: Iterable[TokenPublicKey]) -> TokenClaims:
    """Decode `token` and check its signature against `keys`.

    `token` must be canonical base32, exactly as `make_token` writes it (or canonical base64url,
    as tokens issued before were written): no padding, no characters outside the alphabet (no
    lower case in base32), no unused bits set, so that a certificate has one token, one URL
    and one cache entry. Raises `TokenError` for a token spelled otherwise, a
    malformed, truncated or forged one, or one signed by a key not in `keys`.
    """
    raw = _decode_canonical(token)
    if len(raw) < _HEADER.size + 1 + _SIG_BYTES:
        raise TokenError("the token is too short (truncated)")
    message, signature = raw[:-_SIG_BYTES], raw[-_SIG_BYTES:]
    version, kid, days, digest = _HEADER.unpack_from(message)
    if version != _VERSION:
        raise TokenError(f"unknown token version {version}")
    candidates = [k for k in keys if hmac.compare_digest(k.kid, kid)]
    if not candidates:
        raise TokenError(f"the token was signed by an unknown key (key id {kid.hex()})")
    if not any(k.verify(signature, message) for k in candidates):
        raise TokenError("the token's signature does not verify: it was altered or forged")
    try:
        number = message[_HEADER.size :].decode()
    except UnicodeDecodeError:
        raise TokenError("the token's certificate number is not valid UTF-8") from None
    return TokenClaims(number, _EPOCH + timedelta(days=days), digest.hex(), kid.hex())


def verification_url(base: str, token: str) -> str:
    """The URL printed in the QR code: ``<BASE>/V/<token>``, scheme and host in upper case.

    Scheme and host are case-insensitive, so upper case changes nothing for a browser and keeps
    the URL in the QR code's alphanumeric mode (see the module docstring). A path in `base` is
    kept as written: a server may tell its cases apart (lower case costs a few bits of QR).

    >>> verification_url("https://verify.example.invalid/", "AEAB")
    'HTTPS://VERIFY.EXAMPLE.INVALID/V/AEAB'
    """
    parts = urlsplit(base.rstrip("/"))
    if not parts.scheme or not parts.netloc:
        return f"{base.rstrip('/')}/V/{token}"
    return f"{parts.scheme.upper()}://{parts.netloc.upper()}{parts.path}/V/{token}"


def token_from_url(url: str) -> str:
    """The token of a verification URL (or `url` itself when it is a bare token).

    The URL is ``<base>/V/<token>`` (since tokens are base32) or ``<base>/v/<token>``.
    """
    url = url.strip()
    if "/" not in url:
        return url
    path = urlsplit(url).path
    cut = max(path.rfind("/v/"), path.rfind("/V/"))
    tail = path[cut + 3 :] if cut >= 0 else ""
    if not tail or "/" in tail:
        raise TokenError(
            f"not a certissuer verification URL: expected '<base>/V/<token>', got {url!r}"
        )
    return tail


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # not a port at all: matches nothing
    default = {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").rstrip(".").lower(), default if port is None else port


def wrong_host(url: str, base: str) -> str | None:
    """Why the QR URL `url` is not on the lab's verification page `base`, or None if it is.

    `base` is ``[token] url_base``. The scheme, host and port of `url` must be those of
    `base`: a genuine token can be copied into a QR code that leads to a look-alike page, so a
    URL elsewhere is worth a warning even when its token verifies. A bare token (no URL) has
    no host and gives None.
    """
    url = url.strip()
    if "/" not in url:
        return None
    got, want = _origin(url), _origin(base)
    if got == want:
        return None
    shown = urlsplit(url)
    where = f"{shown.scheme}://{shown.netloc}" if shown.scheme else repr(re.split("/[vV]/", url)[0])
    return (
        f"the QR URL is on {where}, not on the lab's verification page "
        f"{want[0]}://{urlsplit(base).netloc} ([token] url_base)"
    )


def token_key_id(token: str) -> str | None:
    """The key id (hex) of the token `token`, unchecked, or None when it cannot carry one.

    A token's first 8 characters hold its version and key id (base32: exactly these 40
    bits; base64url: 48 bits, the last 8 the issue date's): the ledger groups its tokens by
    them to find each key's first and last issue date.
    """
    head = token[:8]
    try:
        decode = base64.b32decode if _BASE32_HEAD.match(head) else base64.urlsafe_b64decode
        raw = decode(head)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 5 or raw[0] != _VERSION:
        return None
    return raw[1:5].hex()


# -- the published key set: /.well-known/certissuer/keys.json ---------------------------------

KEYS_PATH = ".well-known/certissuer/keys.json"
"""Where the verification page publishes its token keys (relative to its root)."""

_KEYS_TYPE = "certissuer-token-keys"
_JWS_TYPE = "certissuer-keys+json"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if _NOT_BASE64URL.search(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """A token public key as the key set publishes it, with its validity window."""

    key: TokenPublicKey
    not_before: date | None = None
    """The earliest issue date a token signed by this key may carry (None: no limit)."""
    not_after: date | None = None
    """The latest issue date a token signed by this key may carry (None: open-ended)."""

    def covers(self, issued: date) -> bool:
        """True when a token issued on `issued` falls inside this key's window."""
        return (self.not_before is None or issued >= self.not_before) and (
            self.not_after is None or issued <= self.not_after
        )


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def keys_document(
    keys: Sequence[PublishedKey],
    *,
    signer: TokenKey | None,
    lab: Mapping[str, str],
    published: datetime | None = None,
) -> bytes:
    """The key set ``/.well-known/certissuer/keys.json`` as UTF-8 JSON bytes.

    `keys` are the token public keys with their validity windows; `lab` names the lab (code,
    names, `url_base`); `published` is when the set was made (default: now). `signer` (the
    lab's current token key) signs the set: ``signed`` is a compact JWS (RFC 7515) whose
    header names the signer's key id (``kid``) and algorithm (``ES256`` for P-256, raw r‖s as
    WebCrypto verifies it; ``EdDSA`` for Ed25519) and whose payload is the rest of the
    document, canonical (sorted keys, no spaces). A client trusts the payload, not the
    readable copy beside it, and pins the signer by its SHA-256 fingerprint (`read_keys_document`).
    Without `signer`, ``signed`` is null and a client cannot rely on the set.
    """
    moment = (published or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    body: dict[str, Any] = {
        "type": _KEYS_TYPE,
        "version": 1,
        "lab": dict(lab),
        "published": moment.isoformat().replace("+00:00", "Z"),
        "keys": [
            {
                "kid": k.key.kid.hex(),
                "alg": k.key.alg,
                "jwk": k.key.jwk(),
                "sha256": k.key.fingerprint,
                "not_before": None if k.not_before is None else k.not_before.isoformat(),
                "not_after": None if k.not_after is None else k.not_after.isoformat(),
            }
            for k in keys
        ],
    }
    signed = None
    if signer is not None:
        if signer.public.kid not in {k.key.kid for k in keys}:
            raise TokenError("the key that signs the key set must be one of the keys it lists")
        header = {"alg": signer.public.alg, "kid": signer.public.kid.hex(), "typ": _JWS_TYPE}
        head = _b64url(_canonical(header)) + "." + _b64url(_canonical(body))
        signed = head + "." + _b64url(signer.sign(head.encode("ascii")))
    text = json.dumps({**body, "signed": signed}, ensure_ascii=False, indent=2)
    return (text + "\n").encode()


def read_keys_document(
    data: bytes, *, pinned: Iterable[str] | None = None
) -> tuple[list[PublishedKey], TokenPublicKey]:
    """The keys of the key set `data` (as `keys_document` writes it), and the key that signed it.

    The JWS in ``signed`` is checked with the listed key its header names; its payload is
    what is read (the readable copy must say the same). `pinned` are the SHA-256
    fingerprints (hex) of the lab keys the set may be signed by (shown on the page and by
    ``certissuer keys``); None accepts any listed key, which proves only that the set is
    whole. Raises `TokenError` saying what is wrong.
    """
    try:
        document = json.loads(data)
        jws = document["signed"]
    except (ValueError, TypeError, KeyError):
        raise TokenError("the key set is not JSON with a 'signed' member") from None
    if not isinstance(jws, str) or jws.count(".") != 2:
        raise TokenError("the key set is not signed (no compact JWS in 'signed')")
    head, payload, sig = jws.split(".")
    try:
        header = json.loads(_unb64url(head))
        body = json.loads(_unb64url(payload))
        signature = _unb64url(sig)
    except (ValueError, binascii.Error):
        raise TokenError("the key set's signature is not a well-formed compact JWS") from None
    if not isinstance(body, dict) or body.get("type") != _KEYS_TYPE:
        raise TokenError(f"the key set's payload is not a {_KEYS_TYPE} document")
    if {k: v for k, v in document.items() if k != "signed"} != body:
        raise TokenError("the key set's readable copy differs from what its signature covers")
    published: list[PublishedKey] = []
    for item in body.get("keys", []):
        key = TokenPublicKey.from_jwk(item["jwk"])
        if key.kid.hex() != item.get("kid") or key.alg != item.get("alg"):
            raise TokenError(f"the key set lists key {item.get('kid')!r} under a wrong id or alg")
        published.append(
            PublishedKey(
                key,
                None if item.get("not_before") is None else date.fromisoformat(item["not_before"]),
                None if item.get("not_after") is None else date.fromisoformat(item["not_after"]),
            )
        )
    signers = [
        p.key
        for p in published
        if p.key.kid.hex() == header.get("kid") and p.key.alg == header.get("alg")
    ]
    if not signers or not signers[0].verify(signature, f"{head}.{payload}".encode("ascii")):
        raise TokenError("the key set's signature does not verify: it was altered or forged")
    if pinned is not None and signers[0].fingerprint not in {p.lower() for p in pinned}:
        raise TokenError(
            f"the key set is signed by key {signers[0].fingerprint}, which is not pinned"
        )
    return published, signers[0]
