"""certissuer.sign._pyhanko: the pyHanko internals it patches are still there and still used.

Each test names one internal a patch relies on and fails when a new pyHanko moves it, so an
upgrade cannot silently drop a speed-up (or sign each document twice). pyproject.toml pins
pyHanko to the range these pass on.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pyhanko.pdf_utils.content import PdfContent
from pyhanko.sign.attributes import SigningCertificateV2Provider
from pyhanko.sign.signers.pdf_cms import Signer, SimpleSigner
from pyhanko.sign.signers.pdf_signer import PdfSigner

from certissuer.sign import Sealer, _pyhanko

from .test_sign import _pdf


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_signed_attribute_hook_exists_and_yields_the_signing_certificate() -> None:
    """`CertIdOnce` overrides ``Signer._signed_attr_providers`` and swaps one provider."""
    assert _parameters(Signer._signed_attr_providers)[:3] == ["self", "data_digest",
                                                              "digest_algorithm"]  # fmt: skip
    assert "_signed_attr_providers" in vars(_pyhanko.CertIdOnce)
    assert SigningCertificateV2Provider.__init__ is not object.__init__
    assert _pyhanko.EncodedCertId.attribute_type == "signing_certificate_v2"


def test_each_signature_goes_through_the_patched_hooks_once(
    sealer: Sealer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fixed `bytes_reserved`, pyHanko builds the signed attributes and signs once
    per document (no dry run), through `KeptKeySigner.sign_raw` and `CertIdOnce`."""
    calls = {"sign_raw": 0, "providers": 0}
    sign_raw = _pyhanko.KeptKeySigner.sign_raw
    providers = _pyhanko.CertIdOnce._signed_attr_providers

    def counting_sign_raw(self: Any, *args: Any, **kwargs: Any) -> bytes:
        calls["sign_raw"] += 1
        return sign_raw(self, *args, **kwargs)

    def counting_providers(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["providers"] += 1
        return providers(self, *args, **kwargs)

    monkeypatch.setattr(_pyhanko.KeptKeySigner, "sign_raw", counting_sign_raw)
    monkeypatch.setattr(_pyhanko.CertIdOnce, "_signed_attr_providers", counting_providers)
    sealer.sign(_pdf())
    assert calls == {"sign_raw": 1, "providers": 1}


def test_signer_and_pdf_signer_take_what_the_patches_pass() -> None:
    """`KeptKeySigner.sign_raw` overrides SimpleSigner's; the reserved size is a parameter."""
    assert _parameters(SimpleSigner.sign_raw)[:3] == ["self", "data", "digest_algorithm"]
    assert callable(SimpleSigner.get_signature_mechanism_for_digest)
    assert "bytes_reserved" in _parameters(PdfSigner.sign_pdf)


def test_stamp_background_uses_the_content_writer() -> None:
    """`PdfBytesPage.render` imports the page through ``PdfContent._ensure_writer``."""
    assert isinstance(inspect.getattr_static(PdfContent, "_ensure_writer"), property)
    assert callable(PdfContent.render)


def test_token_signer_internals_the_patches_use() -> None:
    """`TokenCertsOnce` overrides PKCS11Signer's ``_load_objects``; the re-login reloads the
    key through ``_pull_signing_key_handle``; the probe signs through ``async_sign``."""
    pkcs11 = pytest.importorskip("pyhanko.sign.pkcs11")
    signer = pkcs11.PKCS11Signer
    assert _parameters(signer._load_objects) == ["self"]
    assert _parameters(signer._pull_signing_key_handle) == ["self"]
    assert _parameters(signer.async_sign_raw)[:4] == ["self", "data", "digest_algorithm", "dry_run"]
    assert {"use_pades", "signed_attr_settings"} <= set(_parameters(signer.async_sign))
