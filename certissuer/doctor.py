"""``certissuer doctor``: checks a lab profile before the lab relies on it.

>>> checks = run_checks(Path("lab.toml"), env=os.environ)  # doctest: +SKIP
>>> [c.line() for c in checks]  # doctest: +SKIP
['OK    profile: lab.toml loads (lab VLH)', ...]

Each `Check` is OK, WARN (works, but act soon), FAIL (does not work) or SKIP (does not apply
to this profile), with what to do. The checks: the profile loads; the files it names exist and
are readable, private keys readable by their owner only; the signing key opens (the passphrase
from the variable the profile names; it is never printed), its certificate is within its
validity window (a warning under 30 days), names a person of ``[[people]]`` when the profile
has them, and chains to a trust root; the token key loads; the ledger is reachable and at the
schema this version needs; each TSA answers a real RFC 3161 request (for a dummy digest), and
the clock agrees with its time within a minute; the signing certificate's OCSP responder and
CRL answer, and do not say it is revoked; the keys the page would publish in ``keys.json``
include the key that signs tokens.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from certissuer._vn import same_name
from certissuer.config import Settings, load_settings
from certissuer.errors import CertissuerError

__all__ = [
    "CERT_WARN_DAYS",
    "CLOCK_SKEW_S",
    "Check",
    "Status",
    "as_json",
    "exit_code",
    "run_checks",
]

CERT_WARN_DAYS = 30
"""A signing certificate that ends within this many days is a warning."""
CLOCK_SKEW_S = 60.0
"""Seconds between this machine's clock and a TSA's time above which doctor warns."""
NETWORK_TIMEOUT_S = 10.0


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    message: str
    hint: str = ""
    """What to do about a WARN or FAIL."""

    def line(self) -> str:
        """One line: status, check, what was found, and what to do."""
        text = f"{self.status.value:<5} {self.name}: {self.message}"
        return text + (f" ({self.hint})" if self.hint else "")

    def as_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed, 1 when any check failed."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def as_json(checks: list[Check]) -> str:
    """The checks as a JSON document: ``{"ok": bool, "checks": [...]}``."""
    body = {"ok": exit_code(checks) == 0, "checks": [c.as_json() for c in checks]}
    return json.dumps(body, ensure_ascii=False, indent=2)


def run_checks(
    profile: Path | None, *, env: Mapping[str, str], now: datetime | None = None
) -> list[Check]:
    """Every check of the profile at `profile` (None: ``./certissuer.toml`` and defaults),
    with the variables `env` (passphrases are read from it, never shown). `now` fixes the
    clock for validity windows. Never raises for what it finds: a problem is a FAIL."""
    moment = now or datetime.now(UTC)
    try:
        settings = load_settings(profile, env=env)
    except CertissuerError as exc:
        return [Check("profile", Status.FAIL, str(exc), exc.hint or "")]
    if settings.source is None:
        found = Check(
            "profile",
            Status.WARN,
            "no profile found: the built-in defaults",
            "pass --config PROFILE, set $CERTISSUER_CONFIG, or run 'certissuer init'",
        )
    else:
        found = Check("profile", Status.OK, f"{settings.source} loads (lab {settings.lab_code})")
    checks = [found]
    checks += list(_files(settings))
    signer, chain = None, []
    for check, cert, extra in _signing_key(settings, env):
        checks.append(check)
        signer, chain = cert, extra
    if signer is not None:
        checks.append(_validity(signer, moment))
        checks.append(_names(settings, signer))
        checks.append(_chain(settings, signer, chain))
    checks.append(_token_key(settings))
    checks.append(_ledger(settings))
    checks += list(_tsa(settings))
    if signer is not None:
        checks += list(_revocation(settings, signer, chain))
    checks.append(_published_keys(settings))
    return checks


# -- files ------------------------------------------------------------------------------------


def _named_files(settings: Settings) -> Iterator[tuple[str, Path, bool]]:
    """(profile key, path, private) for every file the profile names."""
    single: list[tuple[str, Path | None, bool]] = [
        ("[signing] pkcs12", settings.signing_pkcs12, True),
        ("[signing] key", settings.signing_key, True),
        ("[signing] cert", settings.signing_cert, False),
        ("[token] key", settings.token_key, True),
        ("[web] token_public", settings.web_token_public, False),
        ("[lab] logo", settings.lab_logo, False),
    ]
    for key, path, private in single:
        if path is not None:
            yield key, path, private
    for key, paths in (
        ("[signing] trust_roots", settings.signing_trust_roots),
        ("[signing] chain", settings.signing_chain),
        ("[signing] tsa_roots", settings.signing_tsa_roots),
        ("[verify] crls", settings.verify_crls),
    ):
        for path in paths:
            yield key, path, False


def _files(settings: Settings) -> Iterator[Check]:
    for key, path, private in _named_files(settings):
        name = f"file {key}"
        try:
            mode = path.stat().st_mode
            with path.open("rb") as f:
                head = f.read(4096)
        except FileNotFoundError:
            yield Check(name, Status.FAIL, f"{path} does not exist", f"fix {key} in the profile")
            continue
        except OSError as exc:
            yield Check(
                name,
                Status.FAIL,
                f"{path} cannot be read ({exc.strerror})",
                "give the user that runs certissuer read access",
            )
            continue
        # A PEM public key in [token] key (a page that only checks) is not secret.
        secret = private and b"PUBLIC KEY-----" not in head
        if secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
            yield Check(
                name,
                Status.FAIL,
                f"{path} is a private key others can read (mode {stat.S_IMODE(mode):04o})",
                f"chmod 600 {path}",
            )
            continue
        yield Check(name, Status.OK, f"{path}" + (" (private, owner only)" if secret else ""))


# -- the signing key and its certificate --------------------------------------------------------


def _signing_key(
    settings: Settings, env: Mapping[str, str]
) -> Iterator[tuple[Check, x509.Certificate | None, list[x509.Certificate]]]:
    name = "signing key"
    if settings.signing_pkcs11_module is not None:
        msg = "on a PKCS#11 token: not opened (it would ask for the PIN)"
        cert = _load_cert(settings.signing_cert) if settings.signing_cert else None
        yield Check(name, Status.SKIP, msg), cert, _load_chain(settings)
        return
    if settings.signing_pkcs12 is None and settings.signing_key is None:
        hint = "set [signing] pkcs12 to issue certificates"
        yield Check(name, Status.WARN, "none configured: this profile cannot issue", hint), None, []
        return
    variable = settings.signing_passphrase_env
    passphrase = env.get(variable)
    if passphrase is None:
        hint = f"set ${variable} to check that the key opens"
        yield Check(name, Status.WARN, "not opened: no passphrase", hint), None, []
        return
    where = settings.signing_pkcs12 or settings.signing_key
    try:
        if settings.signing_pkcs12 is not None:
            data = settings.signing_pkcs12.read_bytes()
            _key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase.encode())
        else:
            assert settings.signing_key is not None
            serialization.load_pem_private_key(
                settings.signing_key.read_bytes(), password=passphrase.encode() or None
            )
            cert = _load_cert(settings.signing_cert) if settings.signing_cert else None
            extra = []
    except OSError:
        return  # the files check has said why
    except (ValueError, TypeError):
        msg = f"{where} does not open with the passphrase in ${variable}"
        yield (
            Check(name, Status.FAIL, msg, "check the passphrase, or the file is damaged"),
            None,
            [],
        )
        return
    if cert is None:
        yield Check(name, Status.FAIL, f"{where}: no certificate", "set [signing] cert"), None, []
        return
    chain = [*list(extra or []), *_load_chain(settings)]
    yield Check(name, Status.OK, f"{where} opens: {_subject(cert)}"), cert, chain


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        return None


def _load_chain(settings: Settings) -> list[x509.Certificate]:
    certs = (_load_cert(p) for p in settings.signing_chain)
    return [c for c in certs if c is not None]


def _subject(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _validity(cert: x509.Certificate, now: datetime) -> Check:
    name = "signing certificate"
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return Check(name, Status.FAIL, f"not valid before {start:%Y-%m-%d %H:%M} UTC")
    if now > end:
        return Check(
            name,
            Status.FAIL,
            f"expired on {end:%Y-%m-%d}",
            "get a new certificate for the signing key (or a new key) and update the profile",
        )
    left = end - now
    if left < timedelta(days=CERT_WARN_DAYS):
        return Check(
            name, Status.WARN, f"ends on {end:%Y-%m-%d}, in {left.days} days", "renew it now"
        )
    return Check(name, Status.OK, f"valid until {end:%Y-%m-%d} ({left.days} days)")


def _names(settings: Settings, cert: x509.Certificate) -> Check:
    people = settings.people
    if not people:
        return Check("signer's name", Status.SKIP, "no [[people]] in the profile to compare with")
    names = [str(p.name) for p in people]
    common = _subject(cert)
    if any(same_name(common, name) for name in names):  # diacritics, case, spacing aside
        return Check("signer's name", Status.OK, f"{common} is in [[people]]")
    return Check(
        "signer's name",
        Status.FAIL,
        f"the certificate names {common!r}, who is not in [[people]]",
        "the printed name and the key's certificate must agree",
    )


def _chain(settings: Settings, cert: x509.Certificate, extra: list[x509.Certificate]) -> Check:
    name = "trust chain"
    roots = [c for c in (_load_cert(p) for p in settings.signing_trust_roots) if c is not None]
    if not roots:
        return Check(name, Status.FAIL, "no trust root loads", "set [signing] trust_roots")
    current, seen = cert, 0
    while seen < 8:
        for root in roots:
            if _issued_by(current, root):
                return Check(name, Status.OK, f"{_subject(cert)} <- {_subject(root)}")
        parent = next((c for c in extra if c != current and _issued_by(current, c)), None)
        if parent is None:
            break
        current, seen = parent, seen + 1
    return Check(
        name,
        Status.FAIL,
        f"{_subject(cert)} does not chain to [signing] trust_roots",
        "add the issuing CA to trust_roots (or its intermediates to [signing] chain)",
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # another issuer's name, key type or signature: not this one
        return False
    return True


# -- token key, ledger, published keys ----------------------------------------------------------


def _token_key(settings: Settings) -> Check:
    from certissuer.token import TokenKey

    if settings.token_key is None:
        return Check("token key", Status.FAIL, "none configured", "set [token] key")
    try:
        key = TokenKey.load(settings.token_key)
    except CertissuerError as exc:
        if b"PUBLIC KEY-----" in _head(settings.token_key):
            return Check("token key", Status.OK, "public key only: this profile checks tokens")
        return Check("token key", Status.FAIL, str(exc), exc.hint or "")
    return Check("token key", Status.OK, f"loads (key id {key.public.kid.hex()})")


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(4096)
    except OSError:
        return b""


def _ledger(settings: Settings) -> Check:
    from sqlalchemy.engine import make_url

    from certissuer.ledger import Ledger
    from certissuer.ledger.migrations import current_revision, head_revision

    name = "ledger"
    url = make_url(settings.ledger_url)
    where = url.database if url.get_backend_name() == "sqlite" else None
    where = where or url.render_as_string(hide_password=True)
    try:
        ledger = Ledger.open_readonly(
            settings.ledger_url, lab_code=settings.lab_code, profile=settings.source
        )
    except CertissuerError as exc:
        return Check(name, Status.FAIL, str(exc), exc.hint or "")
    try:
        at, head = current_revision(ledger.engine), head_revision()
        if at != head:
            return Check(
                name,
                Status.FAIL,
                f"{where} is at schema revision {at or 'none'}, this version needs {head}",
                "run 'certissuer ledger upgrade' (after a backup)",
            )
        return Check(name, Status.OK, f"{where} reachable, schema {head}")
    except Exception as exc:  # the driver's own errors, unwrapped
        return Check(name, Status.FAIL, f"{where} cannot be read: {exc}")
    finally:
        ledger.close()


def _published_keys(settings: Settings) -> Check:
    from certissuer.token import TokenKey, lab_public_keys

    name = "keys.json"
    try:
        page = lab_public_keys(settings.web_token_public or settings.token_key)
        signing = TokenKey.load(settings.token_key) if settings.token_key else None
    except CertissuerError:
        return Check(name, Status.SKIP, "the token keys do not load (see above)")
    kids = ", ".join(k.kid.hex() for k in page)
    if signing is None:
        return Check(name, Status.SKIP, f"no token key signs here; the page publishes {kids}")
    if signing.public.kid not in {k.kid for k in page}:
        return Check(
            name,
            Status.FAIL,
            f"the page would publish keys {kids}, but tokens are signed with key "
            f"{signing.public.kid.hex()}: its QR codes would be NOT GENUINE",
            "add the token key's public half to [web] token_public",
        )
    return Check(name, Status.OK, f"publishes key {signing.public.kid.hex()} among {kids}")


# -- network: TSA, OCSP, CRL, clock ---------------------------------------------------------------


def _post(url: str, body: bytes, content_type: str) -> bytes:
    import requests

    answer = requests.post(
        url, data=body, headers={"Content-Type": content_type}, timeout=NETWORK_TIMEOUT_S
    )
    answer.raise_for_status()
    return answer.content


def _get(url: str) -> bytes:
    import requests

    answer = requests.get(url, timeout=NETWORK_TIMEOUT_S)
    answer.raise_for_status()
    return answer.content


def _tsa(settings: Settings) -> Iterator[Check]:
    from asn1crypto import tsp

    if not settings.signing_tsa_url:
        needs = settings.signing_level.value != "B-B"
        status = Status.FAIL if needs else Status.SKIP
        hint = "set [signing] tsa_url" if needs else ""
        yield Check("TSA", status, f"none configured (level {settings.signing_level})", hint)
        return
    skews: list[float] = []
    for url in settings.signing_tsa_url:
        name = f"TSA {url}"
        digest = hashlib.sha256(b"certissuer doctor " + secrets.token_bytes(16)).digest()
        nonce = secrets.randbits(63)
        request = tsp.TimeStampReq(
            {
                "version": 1,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": digest,
                },
                "nonce": nonce,
                "cert_req": True,
            }
        )
        asked = datetime.now(UTC)
        try:
            body = _post(url, request.dump(), "application/timestamp-query")
        except Exception as exc:  # requests' errors: refused, time-out, HTTP status
            yield Check(name, Status.FAIL, f"no answer: {_short(exc)}", "check the URL/network")
            continue
        answered = datetime.now(UTC)
        try:
            response = tsp.TimeStampResp.load(body)
            granted = response["status"]["status"].native
            if granted not in ("granted", "granted_with_mods"):
                raise ValueError(f"status {granted}")
            info = response["time_stamp_token"]["content"]["encap_content_info"]["content"]
            tst = info.parsed
            if tst["message_imprint"]["hashed_message"].native != digest:
                raise ValueError("it stamped another digest")
            if tst["nonce"].native != nonce:
                raise ValueError("the nonce does not match")
            gen_time: datetime = tst["gen_time"].native
        except Exception as exc:  # asn1crypto raises many kinds on bad input
            yield Check(name, Status.FAIL, f"not a usable time stamp: {_short(exc)}")
            continue
        middle = asked + (answered - asked) / 2
        skews.append((middle - gen_time).total_seconds())
        yield Check(name, Status.OK, f"stamped a test digest at {gen_time:%Y-%m-%d %H:%M:%S} UTC")
    if skews:
        skew = max(skews, key=abs)
        if abs(skew) > CLOCK_SKEW_S:
            ahead = "ahead of" if skew > 0 else "behind"
            yield Check(
                "clock",
                Status.WARN,
                f"this machine is {abs(skew):.0f} s {ahead} the TSA's time",
                "synchronise the clock (NTP): issue dates and signing times come from it",
            )
        else:
            yield Check("clock", Status.OK, f"within {abs(skew):.1f} s of the TSA's time")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _revocation(
    settings: Settings, cert: x509.Certificate, chain: list[x509.Certificate]
) -> Iterator[Check]:
    issuers = [*chain, *(c for c in map(_load_cert, settings.signing_trust_roots) if c)]
    issuer = next((c for c in issuers if _issued_by(cert, c)), None)
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
        ocsp_urls = [
            d.access_location.value
            for d in aia.value
            if d.access_method == AuthorityInformationAccessOID.OCSP
        ]
    except x509.ExtensionNotFound:
        ocsp_urls = []
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        crl_urls = [n.value for dp in dps.value for n in (dp.full_name or [])]
    except x509.ExtensionNotFound:
        crl_urls = []
    if not ocsp_urls and not crl_urls:
        yield Check("OCSP/CRL", Status.SKIP, "the signing certificate names no OCSP or CRL")
        return
    for url in ocsp_urls:
        name = f"OCSP {url}"
        if issuer is None:
            yield Check(name, Status.FAIL, "the issuer is unknown: cannot ask")
            continue
        # SHA-1 in the request's CertID is what responders expect (RFC 5019), not a signature.
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
        try:
            body = _post(
                url, request.public_bytes(serialization.Encoding.DER), "application/ocsp-request"
            )
            answer = ocsp.load_der_ocsp_response(body)
        except Exception as exc:
            yield Check(
                name, Status.FAIL, f"no usable answer: {_short(exc)}", "check the URL/network"
            )
            continue
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            yield Check(name, Status.FAIL, f"answered {answer.response_status.name}")
        elif answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            yield Check(
                name, Status.FAIL, "says the signing certificate is REVOKED", "get a new key"
            )
        else:
            yield Check(name, Status.OK, f"answers: {answer.certificate_status.name.lower()}")
    for url in crl_urls:
        name = f"CRL {url}"
        try:
            data = _get(url)
            crl = (
                x509.load_pem_x509_crl(data)
                if data.startswith(b"-----")
                else x509.load_der_x509_crl(data)
            )
        except Exception as exc:
            yield Check(name, Status.FAIL, f"no usable CRL: {_short(exc)}", "check the URL/network")
            continue
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            yield Check(
                name, Status.FAIL, "lists the signing certificate as revoked", "get a new key"
            )
            continue
        next_update = crl.next_update_utc
        if next_update is not None and next_update < datetime.now(UTC):
            yield Check(name, Status.WARN, f"out of date since {next_update:%Y-%m-%d %H:%M} UTC")
            continue
        yield Check(name, Status.OK, "reachable; the signing certificate is not on it")
