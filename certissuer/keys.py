"""Make a lab's keys with the cryptography library: a CA, signing certificates, a token key.

``certissuer keys init DIR`` calls `make_keys`. The result is a *self-made* PKI, fit for demos,
tests and a lab's internal trial; a legally valid signature needs a certificate from a licensed
CA (VNPT-CA, Viettel-CA, ...) on a USB token.

With `people` (``keys init --person NAME --role ROLE``) it makes a **trial PKI**: a CA named
"... Trial CA - NOT FOR PRODUCTION" whose certificates point to a CRL (``{url}/crl``) and an
OCSP responder (``{url}/ocsp``), a PKCS#12 file per person, a time-stamping authority's key
and certificate, and ``index.json``, the serials the CA issued and revoked. ``certissuer
trial-services DIR`` (`certissuer.trial`) answers those URLs and time-stamps on localhost, so
PAdES B-T, B-LT and B-LTA work offline.

>>> paths = make_keys(Path("keys"), passphrase=b"demo", organisation="Demo lab")  # doctest: +SKIP
>>> trial = make_keys(Path("trial"), passphrase=b"demo",
...                   people=[Person("Phạm Minh Tuấn", (Role.VERIFIER,))])  # doctest: +SKIP
>>> trial.people[0].pkcs12.name  # doctest: +SKIP
'pham-minh-tuan.p12'
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, assert_never

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certissuer._vn import search_key
from certissuer.config import Choice
from certissuer.errors import ConfigError
from certissuer.token import TokenKey

__all__ = [
    "DEFAULT_SERVICES_URL",
    "NOT_FOR_PRODUCTION",
    "KeyPaths",
    "KeyType",
    "Person",
    "PersonKey",
    "Role",
    "TrialIndex",
    "make_keys",
    "person_file_stem",
    "profile_snippet",
    "read_index",
    "renew_signer",
    "revoke_trial",
]

NOT_FOR_PRODUCTION = "NOT FOR PRODUCTION"
DEFAULT_SERVICES_URL = "http://127.0.0.1:8790"
"""Where ``certissuer trial-services`` listens unless told otherwise."""
INDEX_NAME = "index.json"


class KeyType(Choice, label="key type"):
    """The kind of key `make_keys` makes for the CA and the signer."""

    RSA2048 = "rsa2048"
    """RSA, 2048 bits, signing with PKCS#1 v1.5."""
    P256 = "p256"
    """ECDSA on NIST P-256."""


class Role(Choice, label="role"):
    """What a person signs on a certificate (``[[people]] roles`` in the lab profile)."""

    VERIFIER = "verifier"
    """Kiểm định viên: performs and signs verifications."""
    HEAD = "head"
    """Thủ trưởng: approves verification certificates (the second signature)."""
    SIGNATORY = "signatory"
    """Người có thẩm quyền ký: signs calibration certificates."""


@dataclass(frozen=True, slots=True)
class Person:
    """A person of the lab who gets a key of their own in a trial PKI."""

    name: str
    """The name exactly as printed on certificates; the certificate's common name."""
    roles: tuple[Role, ...]


@dataclass(frozen=True, slots=True)
class PersonKey:
    """Where `make_keys` wrote one person's key, and its certificate's serial number."""

    name: str
    roles: tuple[Role, ...]
    pkcs12: Path
    cert: Path
    serial: int


@dataclass(frozen=True, slots=True)
class KeyPaths:
    """Where `make_keys` wrote each file (the trial PKI's files are None without one)."""

    ca_cert: Path
    signer_p12: Path | None
    """The single signer (no CRL or OCSP named); None when only people got keys."""
    signer_cert: Path | None
    token_key: Path
    token_public: Path
    people: tuple[PersonKey, ...] = ()
    ca_key: Path | None = None
    """The trial CA's private key (PKCS#8, encrypted with the passphrase)."""
    tsa_cert: Path | None = None
    tsa_key: Path | None = None
    index: Path | None = None
    services_url: str | None = None
    """Base URL of the trial services the certificates name (``{url}/crl``, ``{url}/ocsp``)."""


@dataclass(frozen=True, slots=True)
class TrialIndex:
    """``index.json`` of a trial CA: what it issued and what it revoked."""

    services_url: str
    issued: dict[int, str]
    """Serial number -> the certificate's subject (RFC 4514)."""
    revoked: dict[int, datetime]
    """Serial number -> when it was revoked."""


def _name(common: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def person_file_stem(name: str) -> str:
    """The file name (without extension) of `name`'s key: ``Phạm Minh Tuấn`` ->
    ``pham-minh-tuan``. Raises `ConfigError` when no letter or digit is left."""
    stem = re.sub(r"[^a-z0-9]+", "-", search_key(name)).strip("-")
    if not stem:
        raise ConfigError(f"the person's name {name!r} has no letter or digit to name a file by")
    return stem


_NAME_MAX = 64
"""UTF-8 bytes a certificate's common name may hold (RFC 5280's ub-common-name, as the
`cryptography` package counts it: a Vietnamese letter with marks takes two or three)."""


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _fit(base: str, suffix: str) -> str:
    """`base` + `suffix` within `_NAME_MAX` bytes, `base` shortened with "…" if need be."""
    if _size(base + suffix) <= _NAME_MAX:
        return base + suffix
    while base and _size(base.rstrip() + "…" + suffix) > _NAME_MAX:
        base = base[:-1]
    return base.rstrip() + "…" + suffix


def _ca_common_name(organisation: str) -> str:
    """The trial CA's common name; the TSA's replaces "Trial CA" with "Trial TSA", so the
    organisation is shortened to leave room for that too."""
    base = re.sub(r"[\s\-–]*NOT FOR PRODUCTION[\s\-–]*", " ", organisation, flags=re.I).strip()
    longest = f" Trial TSA - {NOT_FOR_PRODUCTION}"
    fitted = _fit(base or "certissuer", longest)[: -len(longest)]
    return f"{fitted} Trial CA - {NOT_FOR_PRODUCTION}"


def _check_people(people: Sequence[Person]) -> None:
    seen: dict[str, str] = {}
    for person in people:
        if not person.name.strip():
            raise ConfigError("--person: a person's name is empty")
        if not person.roles:
            raise ConfigError(
                f"--person {person.name!r}: no role given",
                hint="follow each --person with --role verifier, head or signatory",
            )
        stem = person_file_stem(person.name)
        if stem in seen:
            raise ConfigError(
                f"--person {person.name!r}: the key file {stem}.p12 is already {seen[stem]!r}'s",
                hint="give each person once",
            )
        seen[stem] = person.name


def _revocation_pointers(url: str) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(f"{url}/crl")],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            False,
        ),
        (
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(f"{url}/ocsp"),
                    )
                ]
            ),
            False,
        ),
    ]


def make_keys(
    directory: Path,
    *,
    passphrase: bytes,
    organisation: str = "certissuer demo lab",
    signer_name: str | None = "Demo signer",
    key_type: KeyType | str = KeyType.RSA2048,
    valid_days: int = 3650,
    now: datetime | None = None,
    overwrite: bool = False,
    people: Iterable[Person] = (),
    services_url: str | None = None,
) -> KeyPaths:
    """Write a CA certificate, signing keys and an Ed25519 token key into `directory`.

    `passphrase` encrypts the PKCS#12 files (and a trial CA's and TSA's private keys).
    `key_type` is a `KeyType` or its name (``rsa2048``, ``p256``). `signer_name` names the
    single signer (``signer.p12``, no CRL or OCSP named); None makes none. `people` or
    `services_url` make a trial PKI (see the module's docstring): each person's certificate
    names the CRL and OCSP responder under `services_url` (default `DEFAULT_SERVICES_URL`);
    the TSA's key is RSA-2048 whatever `key_type` is. `now` fixes the clock for tests.
    Raises `ConfigError` for an unknown key type or role, an empty or twice-given name, and
    refuses to overwrite existing keys unless `overwrite` is set.
    """
    kind = KeyType.parse(key_type)
    people = tuple(people)
    _check_people(people)
    for person in people:
        if _size(person.name) > _NAME_MAX:
            raise ConfigError(
                f"--person {person.name!r}: {_size(person.name)} bytes in UTF-8; a "
                f"certificate's common name holds at most {_NAME_MAX}",
                hint="give the name as printed under the signature, without titles",
            )
    trial = bool(people) or services_url is not None
    url = (services_url or DEFAULT_SERVICES_URL).rstrip("/") if trial else None
    if url is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        raise ConfigError(
            f"--services-url must be an http:// or https:// URL, got {services_url!r}"
        )
    if signer_name is None and not people:
        raise ConfigError("no signer and no person: nobody would get a signing key")
    now = now or datetime.now(UTC)
    paths = KeyPaths(
        directory / "ca.pem",
        directory / "signer.p12" if signer_name is not None else None,
        directory / "signer.pem" if signer_name is not None else None,
        directory / "token-key.pem",
        directory / "token-public.pem",
        people=tuple(
            PersonKey(
                p.name,
                p.roles,
                directory / f"{person_file_stem(p.name)}.p12",
                directory / f"{person_file_stem(p.name)}.pem",
                0,
            )
            for p in people
        ),
        ca_key=directory / "ca-key.pem" if trial else None,
        tsa_cert=directory / "tsa.pem" if trial else None,
        tsa_key=directory / "tsa-key.pem" if trial else None,
        index=directory / INDEX_NAME if trial else None,
        services_url=url,
    )
    if not overwrite:
        planned = [p for p in dataclasses.astuple(paths) if isinstance(p, Path)]
        planned += [f for k in paths.people for f in (k.pkcs12, k.cert)]
        existing = [p for p in planned if p.exists()]
        if existing:
            raise ConfigError(
                f"{existing[0]}: a key file is already there; refusing to overwrite it",
                hint="choose another folder or pass --force",
            )
    directory.mkdir(parents=True, exist_ok=True)

    def new_key() -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        match kind:
            case KeyType.P256:
                return ec.generate_private_key(ec.SECP256R1())
            case KeyType.RSA2048:
                return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert_never(kind)

    ca_key = new_key()
    ca_name = _name(
        _ca_common_name(organisation) if trial else _fit(organisation, " CA"), organisation
    )
    start = now - timedelta(days=1)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days + 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            # keyCertSign + cRLSign; a trial CA also signs its own OCSP responses
            x509.KeyUsage(trial, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        name: x509.Name,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        *,
        pointers: bool,
        timestamping: bool = False,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                # digitalSignature + contentCommitment (non-repudiation), as PAdES signers carry
                x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if timestamping:
            # RFC 3161 2.3: the TSA's certificate has this one purpose, marked critical
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
        if pointers and url is not None:
            for ext, critical in _revocation_pointers(url):
                builder = builder.add_extension(ext, critical)
        return builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    encrypted = serialization.BestAvailableEncryption(passphrase)
    issued: dict[int, dict[str, Any]] = {}

    def write_p12(p12: Path, cert_path: Path, label: str, pointers: bool) -> int:
        key = new_key()
        cert = issue(_name(label, organisation), key, pointers=pointers)
        _write(cert_path, cert.public_bytes(pem))
        _write(
            p12,
            pkcs12.serialize_key_and_certificates(label.encode(), key, cert, [ca_cert], encrypted),
            private=True,
        )
        issued[cert.serial_number] = {
            "subject": cert.subject.rfc4514_string(),
            "file": p12.name,
        }
        return cert.serial_number

    _write(paths.ca_cert, ca_cert.public_bytes(pem))
    if paths.signer_p12 is not None and paths.signer_cert is not None and signer_name:
        write_p12(paths.signer_p12, paths.signer_cert, signer_name, False)
    people_keys = []
    for person_key in paths.people:
        serial = write_p12(person_key.pkcs12, person_key.cert, person_key.name, True)
        issued[serial]["name"] = person_key.name
        issued[serial]["roles"] = [r.value for r in person_key.roles]
        people_keys.append(dataclasses.replace(person_key, serial=serial))
    paths = dataclasses.replace(paths, people=tuple(people_keys))
    if trial:
        assert paths.ca_key and paths.tsa_cert and paths.tsa_key and paths.index and url
        # NOTE: RSA whatever `kind` is: pyHanko's DummyTimeStamper, which the trial TSA
        # answers with, signs with RSA only.
        tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tsa_name = _name(
            _ca_common_name(organisation).replace("Trial CA", "Trial TSA"), organisation
        )
        tsa_cert = issue(tsa_name, tsa_key, pointers=True, timestamping=True)
        issued[tsa_cert.serial_number] = {
            "subject": tsa_cert.subject.rfc4514_string(),
            "file": paths.tsa_cert.name,
        }
        pkcs8 = serialization.PrivateFormat.PKCS8
        _write(paths.ca_key, ca_key.private_bytes(pem, pkcs8, encrypted), private=True)
        _write(paths.tsa_cert, tsa_cert.public_bytes(pem))
        _write(paths.tsa_key, tsa_key.private_bytes(pem, pkcs8, encrypted), private=True)
        _write_index(
            paths.index,
            {
                "note": f"trial CA - {NOT_FOR_PRODUCTION}",
                "services_url": url,
                "ca": paths.ca_cert.name,
                "ca_key": paths.ca_key.name,
                "tsa": paths.tsa_cert.name,
                "tsa_key": paths.tsa_key.name,
                "issued": [{"serial": f"{s:x}", **v} for s, v in issued.items()],
                "revoked": [],
            },
        )
    token = TokenKey.generate()
    _write(paths.token_key, token.pem(), private=True)
    _write(paths.token_public, token.public.pem())
    return paths


def _write_index(path: Path, data: dict[str, Any]) -> None:
    _write(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode())


def _load_index(directory: Path) -> tuple[Path, dict[str, Any]]:
    path = directory / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no trial CA index here",
            hint="make a trial PKI with 'certissuer keys init DIR --person NAME --role ROLE'",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the trial CA index: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the trial CA index must be a JSON object")
    return path, data


def read_index(directory: Path) -> TrialIndex:
    """The trial CA index in `directory` (``index.json``). Raises `ConfigError` naming the
    file and the entry when it cannot be read."""
    path, data = _load_index(directory)
    issued: dict[int, str] = {}
    revoked: dict[int, datetime] = {}
    where = "'services_url'"
    try:
        url = str(data["services_url"])
        for n, item in enumerate(data["issued"], 1):
            where = f"'issued' entry {n}"
            issued[int(item["serial"], 16)] = str(item.get("subject", ""))
        for n, item in enumerate(data["revoked"], 1):
            where = f"'revoked' entry {n}"
            at = datetime.fromisoformat(item["at"])
            revoked[int(item["serial"], 16)] = at if at.tzinfo else at.replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{path}, {where}: cannot be read ({type(exc).__name__}: {exc})",
            hint='expected {"serial": hex digits, "at": ISO 8601 time} entries',
        ) from None
    return TrialIndex(url, issued, revoked)


def revoke_trial(directory: Path, who: str, *, now: datetime | None = None) -> tuple[int, str]:
    """Revoke a certificate of the trial CA in `directory`: `who` is a serial number in hex
    (as ``openssl x509 -serial`` prints it, colons allowed) or a person's name.

    Returns the serial number and the subject. The trial services answer "revoked" from the
    next request on. Raises `ConfigError` when `who` names no certificate of this CA.
    """
    path, data = _load_index(directory)
    now = now or datetime.now(UTC)
    wanted = search_key(who)
    digits = who.replace(":", "").strip().lower()
    match = None
    for item in data.get("issued", []):
        serial = str(item.get("serial", ""))
        if (digits and serial.lstrip("0") == digits.lstrip("0")) or search_key(
            str(item.get("name", ""))
        ) == wanted:
            match = item
            break
    if match is None:
        raise ConfigError(
            f"{path}: no certificate with serial or person {who!r}",
            hint="give a serial number in hex or a person's name as 'keys init' was given it",
        )
    serial_hex = str(match["serial"])
    revoked = data.setdefault("revoked", [])
    if not any(r.get("serial") == serial_hex for r in revoked):
        revoked.append({"serial": serial_hex, "at": now.isoformat(timespec="seconds")})
        _write_index(path, data)
    return int(serial_hex, 16), str(match.get("subject", ""))


def renew_signer(
    directory: Path,
    old_p12: bytes,
    *,
    passphrase: bytes,
    valid_days: int = 3650,
    now: datetime | None = None,
) -> bytes:
    """A new PKCS#12 file for the signer of `old_p12`, from the CA kept in `directory`.

    The new key is of the old one's type (RSA-2048 or P-256); its certificate has the old
    one's subject (the printed name and the certificate agree), a new serial number and,
    from a trial CA, the same CRL and OCSP pointers the old one had; the trial CA's index
    records it. `passphrase` opens `old_p12` and ``ca-key.pem`` and encrypts the new file.
    Raises `ConfigError` when the folder keeps no CA key (a demo PKI keeps none: a real
    certificate comes from the lab's CA) or a file cannot be opened.
    """
    ca_key_path, ca_path = directory / "ca-key.pem", directory / "ca.pem"
    if not ca_key_path.exists():
        raise ConfigError(
            f"{ca_key_path}: no CA key here to issue a new signing certificate",
            hint="get a new certificate from the lab's CA and pass it with --from FILE.p12 "
            "(or --cert FILE for a USB token)",
        )
    try:
        _, old_cert, _ = pkcs12.load_key_and_certificates(old_p12, passphrase)
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), passphrase)
        ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{directory}: cannot open the signer's PKCS#12 file or the CA's key and "
            f"certificate with this passphrase ({type(exc).__name__})"
        ) from None
    if old_cert is None or not isinstance(ca_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{directory}: the old PKCS#12 file holds no certificate")
    now = now or datetime.now(UTC)
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if isinstance(old_cert.public_key(), ec.EllipticCurvePublicKey)
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(old_cert.subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=valid_days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    for ext_type in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        try:
            ext = old_cert.extensions.get_extension_for_class(ext_type)
        except x509.ExtensionNotFound:
            continue
        builder = builder.add_extension(ext.value, ext.critical)
    cert = builder.sign(ca_key, hashes.SHA256())
    if (directory / INDEX_NAME).exists():
        path, data = _load_index(directory)
        data.setdefault("issued", []).append(
            {"serial": f"{cert.serial_number:x}", "subject": cert.subject.rfc4514_string()}
        )
        _write_index(path, data)
    names = old_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = str(names[0].value) if names else "signer"
    return pkcs12.serialize_key_and_certificates(
        label.encode(), key, cert, [ca_cert], serialization.BestAvailableEncryption(passphrase)
    )


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def profile_snippet(paths: KeyPaths) -> str:
    """The lab profile lines that use `paths`: ``[signing]`` (TSA, trust roots, the single
    signer if any) and one ``[[people]]`` table per person, paths as `paths` spells them
    (relative to the current folder when `make_keys` was given a relative folder)."""

    def p(path: Path) -> str:
        return _toml_string(path.as_posix())

    lines = ["[signing]"]
    if paths.signer_p12 is not None:
        lines.append(f"pkcs12 = {p(paths.signer_p12)}")
    if paths.services_url:
        lines.append(f"tsa_url = {_toml_string(paths.services_url + '/tsa')}")
    lines.append(f"trust_roots = [{p(paths.ca_cert)}]")
    for person in paths.people:
        roles = ", ".join(_toml_string(r.value) for r in person.roles)
        lines += [
            "",
            "[[people]]",
            f"name = {_toml_string(person.name)}",
            f"roles = [{roles}]",
            f"pkcs12 = {p(person.pkcs12)}",
        ]
    return "\n".join(lines) + "\n"
