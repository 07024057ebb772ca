"""Open a signing key on a PKCS#11 token (USB token, HSM) without leaking the PIN.

Vietnamese signing certificates live on USB tokens from licensed CAs; each comes with a
PKCS#11 module (a ``.so`` / ``.dll``). The token is chosen by its label (slot numbers change
when tokens are plugged in or initialised), the key by label or id. Every failure becomes a
one-line `SigningError`; no exception from the PKCS#11 layer is chained (the PIN is not in
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

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.sign.signers.pdf_cms import Signer

from certissuer.errors import SigningError
from certissuer.sign._pyhanko import CertIdOnce, TokenCertsOnce

__all__ = ["OpenedToken", "open_token_signer"]

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


def open_token_signer(
    module: Path,
    *,
    token_label: str,
    pin: str | None,
    key_label: str | None = None,
    key_id: bytes | None = None,
    cert_label: str | None = None,
    chain: Sequence[asn1_x509.Certificate] = (),
    pss: bool = False,
) -> OpenedToken:
    """Log in to the token labelled `token_label` in PKCS#11 `module` and find the key.

    Raises `SigningError` for a missing module, token, key or certificate, a wrong or locked
    PIN, or a missing PIN.
    """
    try:
        import pkcs11
        from pkcs11 import exceptions as p11_errors
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
    except ImportError:
        raise SigningError(
            "PKCS#11 tokens need python-pkcs11",
            hint="pip install 'certissuer[pkcs11]'",
        ) from None
    where = f"PKCS#11 token '{token_label}'"
    if not module.exists():
        raise SigningError(
            f"{module}: the PKCS#11 module does not exist",
            hint="set [signing] pkcs11_module to the token vendor's library",
        )
    if not pin:
        raise SigningError(
            f"{where}: no PIN was given",
            hint="set the variable named by [signing] pin_env, or run in a terminal",
        )
    if key_label is None and key_id is None:
        raise SigningError(
            f"{where}: name the key by label or id",
            hint="set [signing] pkcs11_key_label or pkcs11_key_id",
        )
    try:
        session = open_pkcs11_session(
            str(module), token_criteria=TokenCriteria(label=token_label), user_pin=pin
        )
    except (p11_errors.PinIncorrect, p11_errors.PinInvalid, p11_errors.PinLenRange):
        raise SigningError(f"{where}: wrong PIN") from None
    except p11_errors.PinLocked:
        raise SigningError(
            f"{where}: the PIN is locked after too many wrong tries",
            hint="unlock it with the token's SO PIN (the CA's tool)",
        ) from None
    except pkcs11.PKCS11Error as exc:
        # pyHanko raises the base class itself for "No token matching criteria …"
        if type(exc) is pkcs11.PKCS11Error and "No token" in str(exc):
            raise SigningError(
                f"{module}: no token labelled '{token_label}'",
                hint="check that the token is plugged in and [signing] pkcs11_token",
            ) from None
        raise SigningError(f"{module}: cannot open {where} ({type(exc).__name__})") from None
    except (OSError, RuntimeError) as exc:
        raise SigningError(f"{module}: cannot load the PKCS#11 module ({exc})") from None
    del pin
    try:

        class _TokenSigner(CertIdOnce, TokenCertsOnce, PKCS11Signer):
            """pyHanko's PKCS#11 signer; its certificate sent and its attribute encoded once."""

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
        session.close()
        if type(exc) is pkcs11.PKCS11Error and str(exc):
            # pyHanko's message names what is missing ("Could not find private key with …")
            raise SigningError(f"{where}: {exc}") from None
        raise SigningError(f"{where}: cannot read the key ({type(exc).__name__})") from None
    except ValueError as exc:
        session.close()
        raise SigningError(f"{where}: cannot read the key ({type(exc).__name__})") from None
    if asn1_cert.public_key.algorithm == "ec":
        # Many tokens (SoftHSM2 among them) offer only the raw CKM_ECDSA: hash here then.
        offered = set(session.token.slot.get_mechanisms())
        hashed = {pkcs11.Mechanism.ECDSA_SHA256, pkcs11.Mechanism.ECDSA_SHA384,
                  pkcs11.Mechanism.ECDSA_SHA512}  # fmt: skip
        signer.use_raw_mechanism = not hashed <= offered
    certificate = x509.load_der_x509_certificate(asn1_cert.dump())
    pulled = [
        x509.load_der_x509_certificate(c.dump())
        for c in signer.cert_registry
        if c.dump() != asn1_cert.dump()
    ]
    _logger.debug("opened %s: %s", where, certificate.subject.rfc4514_string())
    return OpenedToken(signer, certificate, pulled, session.close)
