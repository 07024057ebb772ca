"""The key register: every token key and signing certificate a lab used, with its window.

A lab's keys change: a signing certificate expires, a token key is rotated, a key is lost or
stolen. The register records, for each key, when it was in use (``not_before`` to
``not_after``) and, when it was compromised, since when (``compromised_since``). A token or a
signature by key K made at time t is genuine only when K's window holds t and K was not
compromised at t (`KeyRegister.judge_token`, `KeyRegister.judge_signature`).

The register is a JSON file, ``key-register.json``, in the folder of the token key file the
profile names (``[token] key``, or ``[web] token_public`` for the page), signed like
``keys.json`` with a compact JWS by the lab's current token key. A file rather than a ledger
table because verification needs it where no ledger is open: ``certissuer verify --qr``
offline, the checking child process of ``verify FILE``, a page whose ledger is out of reach.
It travels with the keys; a workstation or page that verifies needs a copy beside its key.

Token keys are named by their key id (8 hex digits, as in tokens); signing certificates by
the SHA-256 of their DER encoding (64 hex digits; any unique prefix of 8 or more is accepted).

>>> register = KeyRegister.empty()  # doctest: +SKIP
>>> register = register.rotate_token(old.public, new.public, now=now)  # doctest: +SKIP
>>> save_register(path, register, signer=new)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certissuer._vn import local_date, local_time
from certissuer.config import Settings
from certissuer.errors import ConfigError, TokenError
from certissuer.token import PublishedKey, TokenKey, TokenPublicKey, load_public_keys

__all__ = [
    "REGISTER_NAME",
    "KeyKind",
    "KeyProblem",
    "KeyRegister",
    "RegisteredKey",
    "certificate_id",
    "check_in_use",
    "key_set",
    "lab_token_keys",
    "load_certificate",
    "load_register",
    "mark_compromised",
    "read_key_file",
    "register_path",
    "register_signing",
    "rotate_signing",
    "rotate_token",
    "save_register",
]

REGISTER_NAME = "key-register.json"
"""The register's file name, in the folder of the token key file."""

_TYPE = "certissuer-key-register"
_JWS_TYPE = "certissuer-key-register+json"
_MIN_PREFIX = 8


class KeyKind(StrEnum):
    """What a registered key signs."""

    TOKEN = "token"
    """QR tokens, ledger events and checkpoints, keys.json and this register."""
    SIGNING = "signing"
    """PDF signatures (a signing certificate)."""


def certificate_id(cert: x509.Certificate) -> str:
    """The register's id of a signing certificate: SHA-256 (hex) of its DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _when(text: Any, where: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{where}: {text!r} has no time zone")
    return moment.astimezone(UTC)


def _shown(moment: datetime) -> str:
    return f"{local_time(moment):%Y-%m-%d %H:%M} (UTC+7)"


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """Why a token or signature by a registered key is not genuine."""

    compromised: bool
    """True: made by a compromised key after (or when it cannot be shown before) it was."""
    reason: str
    """A sentence naming the key and the time."""


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    """One key of the register."""

    kid: str
    """Token key: its key id (8 hex digits); signing: the certificate's SHA-256 (hex)."""
    kind: KeyKind
    pem: str
    """Token key: its public key (PEM); signing: its certificate (PEM)."""
    label: str = ""
    """What people call it: the algorithm of a token key, the subject of a certificate."""
    not_before: datetime | None = None
    """From when the key was in use (None: since before the register)."""
    not_after: datetime | None = None
    """Until when the key was in use (None: it still is)."""
    compromised_since: datetime | None = None
    """Since when someone else may hold the key (None: not compromised)."""

    @property
    def current(self) -> bool:
        """True when the key is in use: no end, not compromised."""
        return self.not_after is None and self.compromised_since is None

    def token_key(self) -> TokenPublicKey:
        """The public key of a token key."""
        public = serialization.load_pem_public_key(self.pem.encode())
        return TokenPublicKey.of(public)  # type: ignore[arg-type]  # checked by `of`

    def window(self) -> str:
        """The window in words: ``2026-01-01 08:00 (UTC+7) - 2026-12-04 09:00 (UTC+7)``."""
        start = "the start" if self.not_before is None else _shown(self.not_before)
        end = "now" if self.not_after is None else _shown(self.not_after)
        return f"{start} - {end}"

    def judge(self, when: datetime | None, *, what: str) -> KeyProblem | None:
        """Why `what`, made by this key at `when`, is not genuine; None when it is.

        `when` None means no time can be trusted: only a compromised key fails then.
        """
        name = f"{self.kind.value} key {self.kid[:16]}"
        if self.compromised_since is not None and (when is None or when >= self.compromised_since):
            at = "at an unproven time" if when is None else f"at {_shown(when)}"
            return KeyProblem(
                True,
                f"{what} was made {at} by the {name}, compromised since "
                f"{_shown(self.compromised_since)}",
            )
        if when is not None and not (
            (self.not_before is None or when >= self.not_before)
            and (self.not_after is None or when <= self.not_after)
        ):
            return KeyProblem(
                False,
                f"{what} was made at {_shown(when)}, outside the {name}'s window ({self.window()})",
            )
        return None

    def judge_day(self, day: date, *, what: str) -> KeyProblem | None:
        """As `judge`, for a token dated `day` (a day in Vietnam, all a token carries).

        A token dated the day a key was compromised cannot be shown to be older than the
        compromise: it fails. Windows count whole days (a key retired at noon covers the day).
        """
        name = f"{self.kind.value} key {self.kid[:16]}"
        since = self.compromised_since
        if since is not None and day >= local_date(since):
            return KeyProblem(
                True,
                f"{what} is dated {day.isoformat()}, on or after the day the {name} was "
                f"compromised (compromised since {_shown(since)})",
            )
        if (self.not_before is not None and day < local_date(self.not_before)) or (
            self.not_after is not None and day > local_date(self.not_after)
        ):
            return KeyProblem(
                False,
                f"{what} is dated {day.isoformat()}, outside the {name}'s window ({self.window()})",
            )
        return None

    def published(self) -> PublishedKey:
        """The token key as keys.json lists it: its window in days, ending the day before it
        was compromised (the offline page then refuses its later tokens)."""
        end = None if self.not_after is None else local_date(self.not_after)
        if self.compromised_since is not None:
            last = local_date(self.compromised_since) - timedelta(days=1)
            end = last if end is None else min(end, last)
        start = None if self.not_before is None else local_date(self.not_before)
        return PublishedKey(self.token_key(), start, end)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`from_dict` reads it back)."""
        return {
            "kid": self.kid,
            "kind": self.kind.value,
            "label": self.label,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "compromised_since": _iso(self.compromised_since),
            "pem": self.pem,
        }

    @classmethod
    def from_dict(cls, item: Any, where: str) -> RegisteredKey:
        """The key `to_dict` wrote; `ConfigError` naming `where` otherwise."""
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected an object")
        try:
            kind = KeyKind(str(item.get("kind")))
        except ValueError:
            raise ConfigError(f"{where}: kind must be 'token' or 'signing'") from None
        key = cls(
            kid=str(item.get("kid", "")),
            kind=kind,
            pem=str(item.get("pem", "")),
            label=str(item.get("label", "")),
            not_before=_when(item.get("not_before"), f"{where}, field 'not_before'"),
            not_after=_when(item.get("not_after"), f"{where}, field 'not_after'"),
            compromised_since=_when(
                item.get("compromised_since"), f"{where}, field 'compromised_since'"
            ),
        )
        # The id must be the key's own: a register cannot file one key under another's name.
        try:
            if kind is KeyKind.TOKEN:
                actual = key.token_key().kid.hex()
            else:
                actual = certificate_id(x509.load_pem_x509_certificate(key.pem.encode()))
        except (ValueError, TypeError, TokenError):
            raise ConfigError(f"{where}, field 'pem': not a usable {kind.value} key") from None
        if actual != key.kid:
            raise ConfigError(f"{where}: the key is filed under id {key.kid}, its id is {actual}")
        return key


@dataclass(frozen=True, slots=True)
class KeyRegister:
    """The lab's keys over time (see the module docstring)."""

    keys: tuple[RegisteredKey, ...] = ()

    @classmethod
    def empty(cls) -> KeyRegister:
        """A register that knows no key: every key is judged by its signature alone."""
        return cls()

    def find(self, kid: str) -> RegisteredKey | None:
        """The key whose id is `kid` (exactly, any case), or None."""
        kid = kid.lower()
        return next((k for k in self.keys if k.kid == kid), None)

    def resolve(self, kid: str) -> RegisteredKey:
        """The key whose id is or starts with `kid` (8 hex digits at least).

        Raises `ConfigError` for an unknown, too short or ambiguous id.
        """
        kid = kid.strip().lower()
        found = [k for k in self.keys if k.kid == kid] or [
            k for k in self.keys if len(kid) >= _MIN_PREFIX and k.kid.startswith(kid)
        ]
        if len(found) == 1:
            return found[0]
        known = ", ".join(f"{k.kind.value} {k.kid[:16]}" for k in self.keys) or "none"
        if not found and len(kid) < _MIN_PREFIX:
            raise ConfigError(
                f"key id {kid!r} is too short: give at least {_MIN_PREFIX} hex digits ({known})"
            )
        if not found:
            raise ConfigError(
                f"no key {kid!r} in the key register (keys: {known})",
                hint="'certissuer keys list' shows each key's id",
            )
        raise ConfigError(f"key id {kid!r} names several keys: give more of it ({known})")

    def token_keys(self) -> list[TokenPublicKey]:
        """The public keys of every registered token key."""
        return [k.token_key() for k in self.keys if k.kind is KeyKind.TOKEN]

    def current(self, kind: KeyKind) -> list[RegisteredKey]:
        """The keys of `kind` in use now."""
        return [k for k in self.keys if k.kind is kind and k.current]

    def published(self) -> list[PublishedKey]:
        """The token keys as keys.json lists them (`RegisteredKey.published`)."""
        return [k.published() for k in self.keys if k.kind is KeyKind.TOKEN]

    def judge_token(self, kid: str, issued: date) -> KeyProblem | None:
        """Why a QR token by key `kid` dated `issued` is not genuine; None when it is (or when
        the register does not know the key: its signature alone decides)."""
        key = self.find(kid)
        return None if key is None else key.judge_day(issued, what="the QR token")

    def judge_signature(
        self, cert_sha256: str, when: datetime | None, *, what: str
    ) -> KeyProblem | None:
        """Why the signature `what` by the certificate `cert_sha256` made at `when` (None: no
        time can be trusted) is not genuine; None when it is or the register does not know
        the certificate."""
        key = self.find(cert_sha256) if cert_sha256 else None
        return None if key is None else key.judge(when, what=what)

    def with_key(self, key: RegisteredKey) -> KeyRegister:
        """A register with `key` added, or replacing the key of the same id."""
        rest = tuple(k for k in self.keys if k.kid != key.kid)
        return KeyRegister((*rest, key))

    def retire(self, kind: KeyKind, *, now: datetime, keep: str) -> KeyRegister:
        """A register whose keys of `kind` in use, other than `keep`, end at `now`."""
        out = self
        for key in self.current(kind):
            if key.kid != keep:
                out = out.with_key(dataclasses.replace(key, not_after=now))
        return out

    def to_bytes(self, signer: TokenKey, *, now: datetime | None = None) -> bytes:
        """The register as JSON, signed by `signer` (the lab's current token key)."""
        body = {
            "type": _TYPE,
            "version": 1,
            "written": _iso(now or datetime.now(UTC)),
            "keys": [k.to_dict() for k in self.keys],
        }
        header = {"alg": signer.public.alg, "kid": signer.public.kid.hex(), "typ": _JWS_TYPE}
        head = _b64url(_canonical(header)) + "." + _b64url(_canonical(body))
        signed = head + "." + _b64url(signer.sign(head.encode("ascii")))
        return (
            json.dumps({**body, "signed": signed}, ensure_ascii=False, indent=2) + "\n"
        ).encode()

    @classmethod
    def from_bytes(
        cls, data: bytes, *, trusted: Iterable[TokenPublicKey], where: str
    ) -> KeyRegister:
        """The register `to_bytes` wrote, its signature checked with the `trusted` keys (the
        token keys of the profile). Raises `ConfigError` naming `where` when it is damaged,
        altered or signed by another key."""
        try:
            document = json.loads(data)
            head, payload, sig = str(document["signed"]).split(".")
            header = json.loads(_unb64url(head))
            body = json.loads(_unb64url(payload))
            signature = _unb64url(sig)
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise ConfigError(f"{where}: not a signed key register") from None
        if not isinstance(body, dict) or body.get("type") != _TYPE:
            raise ConfigError(f"{where}: not a {_TYPE} document")
        if {k: v for k, v in document.items() if k != "signed"} != body:
            raise ConfigError(f"{where}: the readable copy differs from what its signature covers")
        trusted = list(trusted)
        signers = [
            k for k in trusted if k.kid.hex() == header.get("kid") and k.alg == header.get("alg")
        ]
        if not any(k.verify(signature, f"{head}.{payload}".encode("ascii")) for k in signers):
            named = ", ".join(k.kid.hex() for k in trusted)
            raise ConfigError(
                f"{where}: the key register's signature does not verify with the profile's "
                f"token key ({named}): it was altered, or it is signed by token key "
                f"{header.get('kid')} and the profile names an older key",
                hint="'certissuer keys rotate' writes the key file and the register together: "
                "copy both to every workstation and to the page",
            )
        keys = tuple(
            RegisteredKey.from_dict(item, f"{where}, key {i}")
            for i, item in enumerate(body.get("keys", []), 1)
        )
        register = cls(keys)
        # Signed by a key it still holds in use: a retired or compromised key (which someone
        # else may hold) cannot rewrite the register, even where a verifier still trusts it.
        if header.get("kid") not in {k.kid for k in register.current(KeyKind.TOKEN)}:
            raise ConfigError(
                f"{where}: the key register is signed by token key {header.get('kid')}, which "
                "it does not list as the key in use"
            )
        return register


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def register_path(key_file: Path | None) -> Path | None:
    """Where the register of the token key file `key_file` lives (None without a key)."""
    return None if key_file is None else key_file.parent / REGISTER_NAME


def load_register(key_file: Path | None, trusted: Sequence[TokenPublicKey]) -> KeyRegister:
    """The register beside the token key file `key_file`, checked with the `trusted` keys.

    An absent register is empty (a lab that never rotated). Raises `ConfigError` for one
    that is damaged, altered or signed by another key.
    """
    path = register_path(key_file)
    if path is None or not path.exists():
        return KeyRegister.empty()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key register ({exc.strerror})") from None
    return KeyRegister.from_bytes(data, trusted=trusted, where=str(path))


def save_register(
    path: Path, register: KeyRegister, *, signer: TokenKey, now: datetime | None = None
) -> None:
    """Write `register` to `path`, signed by `signer`, atomically (temporary file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(register.to_bytes(signer, now=now))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def check_in_use(settings: Settings, token: TokenKey, cert: x509.Certificate | None) -> None:
    """Refuse to issue with a token key or signing certificate the register has retired.

    `token` is the key that would sign tokens and events, `cert` the signing certificate
    (None: not known here). A retired or compromised key's new tokens and signatures would
    verify as NOT GENUINE. Raises `ConfigError` naming the key.
    """
    register = load_register(settings.token_key, [token.public])
    found = [register.find(token.public.kid.hex())]
    if cert is not None:
        found.append(register.find(certificate_id(cert)))
    for key in found:
        if key is not None and not key.current:
            raise ConfigError(
                f"the {key.kind.value} key {key.kid[:16]} was retired ({key.window()}"
                + (", compromised" if key.compromised_since else "")
                + "): what it signs now would verify as NOT GENUINE",
                hint="use the key in use ('certissuer keys list'); copy it from the "
                "workstation that rotated it",
            )


def lab_token_keys(
    settings: Settings, token_public: Path | None = None
) -> tuple[list[TokenPublicKey], KeyRegister]:
    """The token public keys a verifier checks with, and the lab's key register.

    The keys of the key file (`token_public`, else ``[token] key``) first, then every token
    key of the register beside it (older keys, so their tokens, events and checkpoints keep
    verifying). Raises `ConfigError` when no key file is configured or the register is not
    signed by one of the file's keys, `TokenError` when the key file cannot be read.
    """
    path = token_public or settings.token_key
    if path is None:
        raise ConfigError("no token key configured", hint="set [token] key in the lab profile")
    keys = load_public_keys(path)
    register = load_register(path, keys)
    seen = {k.kid for k in keys}
    for key in register.token_keys():
        if key.kid not in seen:
            keys.append(key)
            seen.add(key.kid)
    return keys, register


def key_set(
    keys: Iterable[TokenPublicKey],
    register: KeyRegister,
    dates: dict[str, tuple[date, date]],
    current: bytes | None,
) -> list[PublishedKey]:
    """The token keys keys.json publishes, each with its window in days.

    A key the register knows gets the register's window (`RegisteredKey.published`: it ends
    the day before the key was compromised). Another gets one from the ledger's `dates`
    (first and last issue date of its tokens, by key id): from its first; a key other than
    `current` (the id of the key in use; None: not known) ends at its last.
    """
    published = []
    for key in keys:
        known = register.find(key.kid.hex())
        if known is not None:
            published.append(known.published())
            continue
        first, last = dates.get(key.kid.hex(), (None, None))
        retired = current is not None and key.kid != current
        published.append(PublishedKey(key, first, last if retired else None))
    return published


# -- changing the register: rotation and compromise ------------------------------------------


def _token_entry(key: TokenPublicKey, *, not_before: datetime | None) -> RegisteredKey:
    return RegisteredKey(
        key.kid.hex(), KeyKind.TOKEN, key.pem().decode(), key.alg, not_before=not_before
    )


def _signing_entry(cert: x509.Certificate, *, not_before: datetime | None) -> RegisteredKey:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return RegisteredKey(
        certificate_id(cert), KeyKind.SIGNING, pem, cert.subject.rfc4514_string(), not_before
    )


def _current_token(settings: Settings) -> tuple[Path, TokenKey, KeyRegister]:
    """The token key file, its key and its register, with the key registered (in use)."""
    path = settings.token_key
    if path is None:
        raise ConfigError("no token key configured", hint="set [token] key in the lab profile")
    key = TokenKey.load(path)
    register = load_register(path, [key.public])
    if register.find(key.public.kid.hex()) is None:
        register = register.with_key(_token_entry(key.public, not_before=None))
    return path, key, register


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _keep_aside(path: Path, kid: str) -> Path:
    """Copy the key file `path` to ``<stem>.<kid><suffix>`` (0600) and return that path."""
    kept = path.with_name(f"{path.stem}.{kid}{path.suffix}")
    if not kept.exists():
        _write_private(kept, path.read_bytes())
        shutil.copystat(path, kept)
        os.chmod(kept, 0o600)
    return kept


def rotate_token(
    settings: Settings, *, now: datetime | None = None, new: TokenKey | None = None
) -> tuple[RegisteredKey, RegisteredKey, Path]:
    """Replace the token key of `settings` with `new` (default: a fresh P-256 key).

    The new key is written at ``[token] key``'s path (0600; the profile does not change),
    the old one kept beside it as ``<stem>.<kid>.pem``; the register ends the old key's
    window at `now` and opens the new key's there, signed by the new key; a
    ``token-public.pem`` beside the key (what the page may check with) gets the new public
    key. Returns the old key's and the new key's entries and where the old key was kept.
    Raises `ConfigError` when no token key is configured or `new` is the key in use.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    path, old, register = _current_token(settings)
    new = new or TokenKey.generate()
    if new.public.kid == old.public.kid:
        raise ConfigError(f"{path}: the new token key is the key in use")
    if register.find(new.public.kid.hex()) is not None:
        raise ConfigError(f"token key {new.public.kid.hex()} was used before: take a new key")
    entry = _token_entry(new.public, not_before=now)
    register = register.retire(KeyKind.TOKEN, now=now, keep="").with_key(entry)
    kept = _keep_aside(path, old.public.kid.hex())
    tmp = path.with_name(path.name + ".tmp")
    _write_private(tmp, new.pem())
    # The register first, then the key: a verifier reading in between trusts neither, and a
    # rerun after a crash finds the old key still in place.
    save_register(path.parent / REGISTER_NAME, register, signer=new, now=now)
    os.replace(tmp, path)
    public = path.parent / "token-public.pem"
    if public.exists() and public != path:
        public.write_bytes(new.public.pem())
    old_entry = register.find(old.public.kid.hex())
    assert old_entry is not None
    return old_entry, entry, kept


def read_key_file(path: Path) -> bytes:
    """The bytes of the key file `path`; `ConfigError` naming it when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key file ({exc.strerror})") from None


def load_certificate(path: Path) -> x509.Certificate:
    """The PEM (or DER) certificate in `path`; `ConfigError` naming it otherwise."""
    data = read_key_file(path)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ConfigError(f"{path}: not a PEM or DER certificate") from None


def _load_p12(data: bytes, passphrase: bytes, where: str) -> x509.Certificate:
    try:
        _, cert, _ = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError:
        raise ConfigError(
            f"{where}: not a PKCS#12 file this passphrase opens (wrong passphrase or damaged)"
        ) from None
    if cert is None:
        raise ConfigError(f"{where}: the PKCS#12 file holds no certificate")
    return cert


def register_signing(
    settings: Settings, cert: x509.Certificate, *, now: datetime | None = None
) -> tuple[list[RegisteredKey], RegisteredKey]:
    """Record `cert` as the signing certificate in use from `now`, ending the window of the
    one in use before (a USB token's or a person's new certificate; no key file changes).
    The certificate ``[signing] cert`` names, when set, is recorded as that one; point it to
    the new certificate afterwards.

    Returns the retired entries and the new one. Raises `ConfigError` for a certificate
    already in the register.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    path, token, register = _current_token(settings)
    entry = _signing_entry(cert, not_before=now)
    if register.find(entry.kid) is not None:
        raise ConfigError(f"signing certificate {entry.kid[:16]} is already in the key register")
    # The certificate the profile names ([signing] cert, beside a PEM key or a token's key),
    # if the register does not know it yet: it is the one retired now.
    if settings.signing_cert is not None and settings.signing_cert.exists():
        old = load_certificate(settings.signing_cert)
        if register.find(certificate_id(old)) is None and certificate_id(old) != entry.kid:
            register = register.with_key(_signing_entry(old, not_before=None))
    retired = [dataclasses.replace(k, not_after=now) for k in register.current(KeyKind.SIGNING)]
    register = register.retire(KeyKind.SIGNING, now=now, keep="").with_key(entry)
    save_register(path.parent / REGISTER_NAME, register, signer=token, now=now)
    return retired, entry


def rotate_signing(
    settings: Settings, new_p12: bytes, passphrase: bytes, *, now: datetime | None = None
) -> tuple[RegisteredKey, RegisteredKey, Path]:
    """Replace ``[signing] pkcs12`` with the PKCS#12 `new_p12` (opened with `passphrase`).

    The old file is kept beside it as ``<stem>.<first 12 hex of its id>.p12``; the register
    ends the old certificate's window at `now` and opens the new one's. Returns the old and
    new entries and where the old file was kept. Raises `ConfigError` when no PKCS#12 file is
    configured or a file cannot be opened with `passphrase`.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    p12 = settings.signing_pkcs12
    if p12 is None:
        raise ConfigError(
            "no [signing] pkcs12 configured to rotate",
            hint="for a USB token or a person's key, record the new certificate with "
            "'certissuer keys rotate --signing --cert FILE'",
        )
    old_cert = _load_p12(read_key_file(p12), passphrase, str(p12))
    new_cert = _load_p12(new_p12, passphrase, "the new PKCS#12 file")
    path, token, register = _current_token(settings)
    old = register.find(certificate_id(old_cert)) or _signing_entry(old_cert, not_before=None)
    register = register.with_key(old)
    new = _signing_entry(new_cert, not_before=now)
    if register.find(new.kid) is not None:
        raise ConfigError(f"signing certificate {new.kid[:16]} is already in the key register")
    register = register.retire(KeyKind.SIGNING, now=now, keep="").with_key(new)
    kept = _keep_aside(p12, old.kid[:12])
    tmp = p12.with_name(p12.name + ".tmp")
    _write_private(tmp, new_p12)
    save_register(path.parent / REGISTER_NAME, register, signer=token, now=now)
    os.replace(tmp, p12)
    old_entry = register.find(old.kid)
    assert old_entry is not None
    return old_entry, new, kept


def mark_compromised(
    settings: Settings, kid: str, since: datetime, *, now: datetime | None = None
) -> RegisteredKey:
    """Record that key `kid` (an id or a unique prefix) is compromised since `since`.

    Every token or signature by it from `since` on is then NOT GENUINE (key compromised).
    The key in use cannot be marked: rotate it first (the register is signed by the token
    key in use, and new certificates would be signed by a compromised key). Raises
    `ConfigError` for an unknown key, the key in use, or `since` in the future.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since = since.astimezone(UTC)
    if since > now:
        raise ConfigError(f"--since {_iso(since)} is in the future")
    path, token, register = _current_token(settings)
    key = register.resolve(kid)
    if key.current:
        what = "--token" if key.kind is KeyKind.TOKEN else "--signing"
        raise ConfigError(
            f"{key.kind.value} key {key.kid[:16]} is the key in use: rotate it first",
            hint=f"'certissuer keys rotate {what}', then mark the old key compromised",
        )
    if key.compromised_since is not None and key.compromised_since <= since:
        return key
    marked = dataclasses.replace(key, compromised_since=since)
    save_register(path.parent / REGISTER_NAME, register.with_key(marked), signer=token, now=now)
    return marked
