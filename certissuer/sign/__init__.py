"""PAdES signing: the lab's legal signature on every certificate.

* `sealer`: `Sealer` (one key, many documents) and the checks on a signing certificate.
* `keyring`: `Keyring`, each signing person's key, opened when first needed.
* `policy`: `SigningPolicy`, `Level`, `policy_from_settings` (the lab profile's ``[signing]``).
* `_appearance`: visible signatures, where they go and what they show.
* `_pkcs11`: keys on USB tokens and HSMs.
* `_pyhanko`: every patch of pyHanko's internals.

>>> from certissuer.sign import Sealer
>>> sealer = Sealer.from_pkcs12(Path("keys.example/signer.p12"), b"demo")  # doctest: +SKIP
>>> signed = sealer.sign(pdf_bytes, info={"CertissuerQR": url})  # doctest: +SKIP
"""

from __future__ import annotations

from certissuer.sign._appearance import (
    DEFAULT_SEAL_MM,
    MIN_FONT_SIZE,
    SIGNED_BY,
    Box,
    SignatureSlot,
    StampPainter,
    TextRun,
    find_text,
    locate_slot,
    signature_slots,
)
from certissuer.sign._pkcs11 import token_has_pin_pad
from certissuer.sign.keyring import (
    Keyring,
    SecretSource,
    env_secret,
    public_key_of,
    signer_public_keys,
)
from certissuer.sign.policy import Level, SigningPolicy, load_certificates, policy_from_settings
from certissuer.sign.sealer import (
    APPROVAL_FIELD,
    SIGNATURE_FIELD,
    Sealer,
    check_signing_certificate,
)

__all__ = [
    "APPROVAL_FIELD",
    "DEFAULT_SEAL_MM",
    "MIN_FONT_SIZE",
    "SIGNATURE_FIELD",
    "SIGNED_BY",
    "Box",
    "Keyring",
    "Level",
    "Sealer",
    "SecretSource",
    "SignatureSlot",
    "SigningPolicy",
    "StampPainter",
    "TextRun",
    "check_signing_certificate",
    "env_secret",
    "find_text",
    "load_certificates",
    "locate_slot",
    "policy_from_settings",
    "public_key_of",
    "signature_slots",
    "signer_public_keys",
    "token_has_pin_pad",
]
