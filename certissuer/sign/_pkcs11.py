"""Open a signing key on a PKCS#11 token (USB token, HSM) without leaking the PIN.

Vietnamese signing certificates live on USB tokens from licensed CAs; each comes with a
PKCS#11 module (a ``.so`` / ``.dll``). The token is chosen by its label or serial (slot
numbers change when tokens are plugged in or initialised), the key by label or id. The user
logs in once per run, with the PIN or on the reader's PIN pad; the PIN is then held only in
the closure that logs in again when the token has logged the user out. Every failure becomes
a one-line `SigningError`; no exception from the PKCS#11 layer is chained (the PIN is not in
python-pkcs11's messages, but the original exception would carry the call's context into a
traceback), and no configuration object that holds the PIN is built (pyHanko's
``PKCS11SignatureConfig`` shows its PIN in ``repr``).

>>> opened = open_token_signer(Path("/usr/lib/softhsm/libsofthsm2.so"), token_label="lab",
...                            pin=pin, key_label="signer")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.sign.signers.pdf_cms import Signer

from certissuer.errors import SigningError
from certissuer.sign._pyhanko import CertIdOnce, TokenCertsOnce

__all__ = [
    "OpenedToken",
    "login_error",
    "login_secret",
    "open_token_signer",
    "token_has_pin_pad",
]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenedToken:
    """A logged-in token session and the pyHanko signer on it."""

    signer: Signer
    """A `pyhanko.sign.pkcs11.PKCS11Signer`."""
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    close: Callable[[], None]

    def __repr__(self) -> str:
        return f"OpenedToken(subject={self.certificate.subject.rfc4514_string()!r})"


def login_secret(pin: str | None, token_flags: int, where: str) -> object:
    """What to log in with: the PIN, or pyHanko's ``PROTECTED_AUTH`` for a PIN-pad reader.

    A token whose flags carry CKF_PROTECTED_AUTHENTICATION_PATH takes the PIN on its own
    keypad, so no PIN is needed here. Raises `SigningError` when no PIN is given to any other.
    """
    from pkcs11 import PROTECTED_AUTH, TokenFlag

    if pin:
        return pin
    if token_flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
        return PROTECTED_AUTH
    raise SigningError(
        f"{where}: no PIN was given",
        hint="set the variable named by [signing] pin_env, or run in a terminal",
    )


def token_has_pin_pad(module: Path, *, token_label: str = "", token_serial: str = "") -> bool:
    """True when the token's reader takes the PIN on its own keypad (protected
    authentication path); False when it does not or cannot be asked (the login says why)."""
    try:
        import pkcs11
        from pkcs11 import TokenFlag

        token = _find_token(pkcs11.lib(str(module)), module, token_label, token_serial)
    except (ImportError, SigningError, OSError, RuntimeError):
        return False
    except Exception as exc:  # python-pkcs11's errors, when the module cannot list tokens
        _logger.debug("%s: cannot ask for a PIN pad (%s)", module, type(exc).__name__)
        return False
    return bool(token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH)


def login_error(exc: BaseException, where: str) -> SigningError:
    """The one-line error for a failed C_Login (`exc` from python-pkcs11); never the PIN."""
    from pkcs11 import exceptions as p11_errors

    if isinstance(exc, p11_errors.PinIncorrect | p11_errors.PinInvalid | p11_errors.PinLenRange):
        return SigningError(f"{where}: wrong PIN", hint="a few more wrong tries lock the token")
    if isinstance(exc, p11_errors.PinLocked):
        return SigningError(
            f"{where}: the PIN is locked after too many wrong tries",
            hint="unlock it with the token's SO PIN (the CA's tool)",
        )
    if isinstance(exc, p11_errors.PinExpired):
        return SigningError(f"{where}: the PIN has expired", hint="change it with the CA's tool")
    return SigningError(f"{where}: cannot log in ({type(exc).__name__})")


def _describe(token: Any) -> str:
    label = token.label.strip() or "(no label)"
    serial = token.serial.decode("ascii", "replace").strip() if token.serial else ""
    return f"'{label}' (serial {serial})" if serial else f"'{label}'"


def _find_token(lib: Any, module: Path, label: str, serial: str) -> Any:
    """The token with `label` (and `serial`, when given); else a `SigningError` listing those
    seen."""
    seen = list(lib.get_tokens())
    for token in seen:
        if label and token.label.strip() != label:
            continue
        if serial and (token.serial or b"").decode("ascii", "replace").strip() != serial:
            continue
        return token
    wanted = " and ".join(
        part for part in (f"labelled '{label}'" if label else "", f"with serial {serial}"
                          if serial else "") if part
    )  # fmt: skip
    tokens = ", ".join(_describe(t) for t in seen if t.label.strip()) or "none"
    raise SigningError(
        f"{module}: no token {wanted}; tokens seen: {tokens}",
        hint="check that the token is plugged in and [signing] pkcs11_token / pkcs11_token_serial",
    )


def open_token_signer(
    module: Path,
    *,
    token_label: str = "",
    token_serial: str = "",
    pin: str | None,
    key_label: str | None = None,
    key_id: bytes | None = None,
    cert_label: str | None = None,
    chain: Sequence[asn1_x509.Certificate] = (),
    pss: bool = False,
) -> OpenedToken:
    """Log in once to the token labelled `token_label` (or with serial `token_serial`) in
    PKCS#11 `module` and find the key and its certificate.

    Without a PIN, a reader with a PIN pad (protected authentication path) is logged in on
    its keypad. When the token later says "user not logged in" (it was unplugged briefly,
    another program logged out), the signer logs in again once and retries the signature.
    Raises `SigningError` for a missing module, token, key or certificate, a wrong or locked
    PIN, or a missing PIN.
    """
    try:
        import pkcs11
        from pkcs11 import exceptions as p11_errors
        from pyhanko.sign.pkcs11 import PKCS11Signer
    except ImportError:
        raise SigningError(
            "PKCS#11 tokens need python-pkcs11",
            hint="pip install 'certissuer[pkcs11]'",
        ) from None
    where = f"PKCS#11 token '{token_label or token_serial}'"
    if not module.exists():
        raise SigningError(
            f"{module}: the PKCS#11 module does not exist",
            hint="set [signing] pkcs11_module to the token vendor's library",
        )
    if not (token_label or token_serial):
        raise SigningError(
            f"{module}: name the token by label or serial",
            hint="set [signing] pkcs11_token (pkcs11-tool --list-token-slots shows them)",
        )
    if key_label is None and key_id is None:
        raise SigningError(
            f"{where}: name the key by label or id",
            hint="set [signing] pkcs11_key_label or pkcs11_key_id",
        )
    try:
        lib = pkcs11.lib(str(module))
        token = _find_token(lib, module, token_label, token_serial)
    except pkcs11.PKCS11Error as exc:
        raise SigningError(f"{module}: cannot list the tokens ({type(exc).__name__})") from None
    except (OSError, RuntimeError) as exc:
        raise SigningError(f"{module}: cannot load the PKCS#11 module ({exc})") from None
    # NOTE: the secret stays in this closure for one re-login; it is never logged or shown.
    secret = login_secret(pin, token.flags, where)
    del pin
    sessions: list[Any] = []

    def login() -> Any:
        try:
            session = token.open(user_pin=secret)
        except p11_errors.UserAlreadyLoggedIn:
            # another session of this process (a second signer on the token) is logged in:
            # the login is the token's, so a plain session signs too
            session = token.open()
        except pkcs11.PKCS11Error as exc:
            raise login_error(exc, where) from None
        sessions.append(session)
        return session

    def close() -> None:
        while sessions:
            try:
                sessions.pop().close()
            except pkcs11.PKCS11Error:
                _logger.debug("%s: the session was already closed", where)

    logged_out = (
        p11_errors.UserNotLoggedIn,
        p11_errors.ObjectHandleInvalid,
        p11_errors.KeyHandleInvalid,
    )
    session = login()
    try:

        class _TokenSigner(CertIdOnce, TokenCertsOnce, PKCS11Signer):
            """pyHanko's PKCS#11 signer; its certificate sent and its attribute encoded once;
            one re-login when the token has logged the user out."""

            async def async_sign_raw(
                self, data: bytes, digest_algorithm: str, dry_run: bool = False
            ) -> bytes:
                try:
                    return await super().async_sign_raw(data, digest_algorithm, dry_run)
                except logged_out as exc:
                    # SoftHSM2 says "object handle invalid": a logout drops private handles
                    _logger.info(
                        "%s: the token logged the user out (%s); logging in again",
                        where,
                        type(exc).__name__,
                    )
                login()  # the login state is the token's: this session is logged in again
                # NOTE: pyHanko's key-handle loader, for a handle valid after the new login
                self._key_handle = self._pull_signing_key_handle()  # type: ignore[no-untyped-call]
                try:
                    return await super().async_sign_raw(data, digest_algorithm, dry_run)
                except logged_out as exc:
                    raise SigningError(
                        f"{where}: the token keeps logging the user out ({type(exc).__name__})"
                    ) from None

        signer = _TokenSigner(
            session,
            cert_label=cert_label or key_label,
            key_label=key_label,
            key_id=key_id,
            cert_id=key_id if not (cert_label or key_label) else None,
            ca_chain=list(chain),
            prefer_pss=pss,
            other_certs_to_pull=None,
        )
        asn1_cert = signer.signing_cert  # loads the certificate and the key handle
    except pkcs11.PKCS11Error as exc:
        missing = _missing_object(session, key_label, key_id, cert_label)
        close()
        if missing:
            raise SigningError(f"{where}: {missing[0]}", hint=missing[1]) from None
        raise SigningError(f"{where}: cannot read the key ({type(exc).__name__})") from None
    except ValueError as exc:
        close()
        raise SigningError(f"{where}: cannot read the key ({type(exc).__name__})") from None
    if asn1_cert.public_key.algorithm == "ec":
        # Many tokens (SoftHSM2 among them) offer only the raw CKM_ECDSA: hash here then.
        offered = set(token.slot.get_mechanisms())
        hashed = {pkcs11.Mechanism.ECDSA_SHA256, pkcs11.Mechanism.ECDSA_SHA384,
                  pkcs11.Mechanism.ECDSA_SHA512}  # fmt: skip
        signer.use_raw_mechanism = not hashed <= offered
    certificate = x509.load_der_x509_certificate(asn1_cert.dump())
    pulled = [x509.load_der_x509_certificate(c.dump()) for c in signer.cert_registry]
    _logger.debug("opened %s: %s", where, certificate.subject.rfc4514_string())
    return OpenedToken(signer, certificate, pulled, close)


def _missing_object(
    session: Any, key_label: str | None, key_id: bytes | None, cert_label: str | None
) -> tuple[str, str] | None:
    """What is missing on the token: the private key, or the certificate of a key that is
    there (with a hint), or None when both are there."""
    from pkcs11 import Attribute, ObjectClass, PKCS11Error

    def count(kind: Any, label: str | None, obj_id: bytes | None) -> int:
        query: dict[Any, Any] = {Attribute.CLASS: kind}
        if label is not None:
            query[Attribute.LABEL] = label
        if obj_id is not None:
            query[Attribute.ID] = obj_id
        return len(list(session.get_objects(query)))

    named = f"label '{key_label}'" if key_label is not None else f"id {(key_id or b'').hex()}"
    try:
        if count(ObjectClass.PRIVATE_KEY, key_label, key_id) == 0:
            return (
                f"no private key with {named}",
                "pkcs11-tool --list-objects --login shows the keys on the token",
            )
        wanted = cert_label or key_label
        if count(ObjectClass.CERTIFICATE, wanted, None if wanted else key_id) == 0:
            where = f"label '{wanted}'" if wanted else f"id {(key_id or b'').hex()}"
            return (
                f"the key with {named} has no certificate (none with {where}) on the token",
                "write it there: pkcs11-tool --login --write-object cert.der --type cert "
                "--id <the key's id> --label <the key's label>, or set [signing] "
                "pkcs11_cert_label",
            )
    except PKCS11Error:  # a token that cannot be searched: the caller's message stands
        return None
    return None
