"""Signing with a key on a PKCS#11 token: a real SoftHSM2 token that these tests create.

The token lives in a temporary folder with its own ``SOFTHSM2_CONF``; the key is imported
with ``softhsm2-util --import`` and its certificate written with python-pkcs11. Then
certissuer signs through the token (pyHanko's PKCS11Signer) and its verifier checks the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certissuer.config import Settings
from certissuer.errors import SigningError
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Sealer, SigningPolicy
from certissuer.verify import Verdict, Verifier

from .conftest import PASSPHRASE, ROOT, SAMPLES, load_json

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN = "lab-token"
PIN = "pin-canary-4242"
SO_PIN = "so-pin-98765432"

pytestmark = pytest.mark.skipif(
    not MODULE.exists() or shutil.which("softhsm2-util") is None,
    reason="SoftHSM2 is not installed (apt-get install softhsm2; .ci/run does)",
)


@dataclass
class Token:
    module: Path
    label: str
    conf: Path


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory, pki: KeyPaths) -> Iterator[Token]:
    """A fresh SoftHSM2 token holding the test lab's signing key and certificate."""
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass

    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["softhsm2-util", *args], check=True, capture_output=True, text=True
        )
        run("--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN)
        key, cert, _ = pkcs12.load_key_and_certificates(pki.signer_p12.read_bytes(), PASSPHRASE)
        assert key is not None and cert is not None
        pem = home / "signer-key.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        run("--import", str(pem), "--token", TOKEN, "--label", "signer", "--id", "01", "--pin", PIN)
        pem.unlink()
        lib = pkcs11.lib(str(MODULE))
        lib.reinitialize()  # SoftHSM2 reads its configuration and tokens at C_Initialize
        with lib.get_token(token_label=TOKEN).open(rw=True, user_pin=PIN) as session:
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.LABEL: "signer",
                    Attribute.ID: b"\x01",
                    Attribute.SUBJECT: cert.subject.public_bytes(),
                    Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
                }
            )
        yield Token(MODULE, TOKEN, conf)
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def _token_settings(settings: Settings, token: Token, **more: Any) -> Settings:
    return settings.replace(
        signing_pkcs12=None,
        signing_pkcs11_module=token.module,
        signing_pkcs11_token=token.label,
        signing_pkcs11_key_label="signer",
        **more,
    )


def test_issue_with_a_token_key_and_verify(
    token: Token, settings: Settings, ledger: Ledger, renderer: Any, tmp_path: Path
) -> None:
    lab = _token_settings(settings, token)
    with Sealer.from_settings(lab, PIN.encode()) as sealer:
        assert "PKCS#11 token 'lab-token'" in sealer.origin
        issuer = Issuer(
            lab,
            ledger=ledger,
            sealer=sealer,
            token_key=load_token_key(lab),
            out_dir=tmp_path,
            renderer=renderer,
        )
        data = load_json(SAMPLES / "calibration.json")
        first = issuer.issue(parse_certificate(data)).path.read_bytes()
        data["ref"] = "second-on-token"
        second = issuer.issue(parse_certificate(data)).path.read_bytes()
    verifier = Verifier.from_settings(lab, ledger=ledger)
    for pdf in (first, second):
        report = verifier.verify_pdf(pdf)
        assert report.verdict is Verdict.VALID, report.reasons
        assert "Test lab" in (report.signer or "")
        assert report.signatures[0].algorithm == "sha256 / sha256_rsa"


def test_select_the_key_by_id(token: Token) -> None:
    from .test_sign import _pdf

    with Sealer.from_pkcs11(
        token.module, token_label=token.label, pin=PIN, key_id=b"\x01"
    ) as sealer:
        assert sealer.sign(_pdf()).count(b"/ByteRange") == 1


def test_token_signer_encodes_the_certificate_attribute_once(
    token: Token, pki: KeyPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyhanko.sign.attributes
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from .test_sign import _pdf

    def rebuilt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("signing-certificate-v2 rebuilt for a signature")

    monkeypatch.setattr(pyhanko.sign.attributes, "as_signing_certificate_v2", rebuilt)
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(pki.ca_cert))])
    with Sealer.from_pkcs11(
        token.module, token_label=token.label, pin=PIN, key_label="signer"
    ) as sealer:
        for _ in range(2):
            (sig,) = PdfFileReader(BytesIO(sealer.sign(_pdf()))).embedded_signatures
            assert validate_pdf_signature(sig, ctx).bottom_line


def test_wrong_pin_is_one_line_without_the_pin(token: Token) -> None:
    with pytest.raises(SigningError) as info:
        Sealer.from_pkcs11(
            token.module, token_label=token.label, pin="wrong-pin-1357", key_label="signer"
        )
    message = str(info.value)
    assert message == "PKCS#11 token 'lab-token': wrong PIN"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "1357" not in repr(info.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"token_label": "no-such-token", "key_label": "signer"},
            "no token labelled 'no-such-token'",
        ),
        ({"token_label": TOKEN, "key_label": "nope"}, "no private key with label 'nope'"),
        ({"token_label": TOKEN}, "name the key by label or id"),
        ({"token_label": TOKEN, "key_label": "signer", "pin": ""}, "no PIN was given"),
    ],
)
def test_token_errors_say_what_is_missing(
    token: Token, kwargs: dict[str, Any], expected: str
) -> None:
    kwargs = {"pin": PIN, **kwargs}
    with pytest.raises(SigningError, match=expected):
        Sealer.from_pkcs11(token.module, **kwargs)


def test_missing_module_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="the PKCS#11 module does not exist"):
        Sealer.from_pkcs11(tmp_path / "nope.so", token_label="x", pin="1", key_label="k")


def test_sealer_repr_and_policy_hold_no_secret(token: Token) -> None:
    with Sealer.from_pkcs11(
        token.module,
        token_label=token.label,
        pin=PIN,
        key_label="signer",
        policy=SigningPolicy(),
    ) as sealer:
        everything = repr(sealer) + repr(sealer.policy) + repr(vars(sealer))
        assert PIN not in everything


# -- the secret canary: what the CLI prints never holds the passphrase or PIN --------------


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "certissuer", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return f"exit={proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _sample(tmp_path: Path, ref: str) -> str:
    import json

    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    data["ref"] = ref
    path = tmp_path / f"{ref}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _profile(tmp_path: Path, pki: KeyPaths, signing: str) -> Path:
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f"""
[lab]
code = "CANARY"
[signing]
{signing}
trust_roots = ["{pki.ca_cert}"]
[token]
key = "{pki.token_key}"
[ledger]
url = "sqlite:///{tmp_path / "ledger.db"}"
""",
        encoding="utf-8",
    )
    return toml


def test_pin_canary(token: Token, pki: KeyPaths, tmp_path: Path) -> None:
    """Sign through the token with a known PIN (verbose: debug log + tracebacks), then fail."""
    toml = _profile(
        tmp_path,
        pki,
        f'pkcs11_module = "{token.module}"\npkcs11_token = "{TOKEN}"\n'
        'pkcs11_key_label = "signer"\npin_env = "LAB_PIN"',
    )
    sample = str(SAMPLES / "calibration.json")
    env = {"SOFTHSM2_CONF": str(token.conf), "PYTHONPATH": str(ROOT)}
    ok = _cli(
        ["-v", "--config", str(toml), "issue", sample, "-o", str(tmp_path / "o")],
        {**env, "LAB_PIN": PIN},
        tmp_path,
    )
    assert "exit=0" in ok and "DEBUG" in ok and "1 issued" in ok, ok
    wrong = "wrong-pin-canary-8642"
    for verbose in ([], ["-v"]):
        out = _cli(
            [*verbose, "--config", str(toml), "issue", sample, "-o", str(tmp_path / "o")],
            {**env, "LAB_PIN": wrong},
            tmp_path,
        )
        assert "exit=5" in out or "Traceback" in out, out
        assert "wrong PIN" in out, out
        assert wrong not in out
    # a failure after a successful login, with the traceback shown
    out = _cli(
        [
            "-v",
            "--config",
            str(toml),
            "issue",
            "--level",
            "B-T",
            _sample(tmp_path, "canary-bt"),
            "-o",
            str(tmp_path / "o2"),
        ],
        {**env, "LAB_PIN": PIN},
        tmp_path,
    )
    assert "Traceback" in out and "time-stamping authority" in out, out
    for text in (ok, out):
        assert PIN not in text


def test_passphrase_canary(pki: KeyPaths, tmp_path: Path) -> None:
    """The same for a PKCS#12 passphrase: success with debug logging, failures, tracebacks."""
    toml = _profile(tmp_path, pki, f'pkcs12 = "{pki.signer_p12}"\npassphrase_env = "LAB_PASS"')
    sample = str(SAMPLES / "calibration.json")
    env = {"PYTHONPATH": str(ROOT)}
    secret = PASSPHRASE.decode()
    outputs = [
        _cli(
            ["-v", "--config", str(toml), "issue", sample, "-o", str(tmp_path / "o")],
            {**env, "LAB_PASS": secret},
            tmp_path,
        ),
        _cli(
            [
                "-v",
                "--config",
                str(toml),
                "issue",
                "--level",
                "B-LT",
                _sample(tmp_path, "canary-blt"),
                "-o",
                str(tmp_path / "o2"),
            ],
            {**env, "LAB_PASS": secret},
            tmp_path,
        ),
    ]
    assert "exit=0" in outputs[0] and "DEBUG" in outputs[0], outputs[0]
    assert "Traceback" in outputs[1] and "B-LT needs revocation data" in outputs[1], outputs[1]
    wrong = "wrong-passphrase-canary-1928"
    for verbose in ([], ["-v"]):
        out = _cli(
            [*verbose, "--config", str(toml), "issue", sample, "-o", str(tmp_path / "o")],
            {**env, "LAB_PASS": wrong},
            tmp_path,
        )
        assert "wrong passphrase" in out, out
        assert wrong not in out
    for text in outputs:
        assert secret not in text
    _ = x509  # the certificate on the token is checked by the first test
