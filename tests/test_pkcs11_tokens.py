"""Tokens as labs have them: SoftHSM2 tokens made here, keys generated on the token or
imported with OpenSC's ``pkcs11-tool``, chains of one and two CA levels, RSA and ECDSA.

Every issued PDF is checked by certissuer's verifier, by pyHanko's validator against the
test root and, when poppler is installed, by ``pdfsig``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certissuer.config import Settings
from certissuer.errors import SigningError
from certissuer.issue import Issuer, load_token_key
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Sealer
from certissuer.verify import Verdict, Verifier

from .conftest import SAMPLES, load_json

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "token-pin-canary-5150"
SO_PIN = "token-so-pin-77331"

pytestmark = pytest.mark.skipif(
    not MODULE.exists()
    or shutil.which("softhsm2-util") is None
    or shutil.which("pkcs11-tool") is None,
    reason="SoftHSM2 and OpenSC are not installed (apt-get install softhsm2 opensc)",
)

_Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _new_key(kind: str) -> _Key:
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(65537, int(kind.removeprefix("rsa")))


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Token lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: str, public: Any, issuer: str, issuer_key: _Key, *, ca: bool
) -> x509.Certificate:
    start = datetime.now(UTC) - timedelta(days=1)
    usage = (
        x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        if ca
        else x509.KeyUsage(True, True, False, False, False, False, False, False, False)
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class Chain:
    """A root CA, optional intermediate CAs, and a function that certifies a public key."""

    root: x509.Certificate
    intermediates: list[x509.Certificate]
    issuer_key: _Key
    issuer_name: str

    def certify(self, cn: str, public: Any) -> x509.Certificate:
        return _cert(cn, public, self.issuer_name, self.issuer_key, ca=False)


def _chain(kind: str, levels: int) -> Chain:
    """A root and `levels` - 1 intermediates, all with keys of `kind`."""
    root_key = _new_key(kind)
    root = _cert("Token lab Root CA", root_key.public_key(), "Token lab Root CA", root_key, ca=True)
    key, name, inter = root_key, "Token lab Root CA", []
    for level in range(1, levels):
        sub_key = _new_key(kind)
        sub_name = f"Token lab Issuing CA {level}"
        inter.append(_cert(sub_name, sub_key.public_key(), name, key, ca=True))
        key, name = sub_key, sub_name
    return Chain(root, inter, key, name)


@dataclass
class SoftHsm:
    conf: Path
    home: Path

    def run(self, *args: str) -> str:
        return subprocess.run(
            ["softhsm2-util", *args], check=True, capture_output=True, text=True
        ).stdout

    def tool(self, label: str, *args: str) -> str:
        return subprocess.run(
            [
                "pkcs11-tool",
                "--module",
                str(MODULE),
                "--token-label",
                label,
                "--login",
                "--pin",
                PIN,
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def new_token(self, label: str) -> None:
        self.run("--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN)

    def write(self, label: str, der: bytes, kind: str, obj_id: str, obj_label: str) -> None:
        path = self.home / f"{label}-{obj_label}-{kind}.der"
        path.write_bytes(der)
        try:
            self.tool(
                label,
                "--write-object",
                str(path),
                "--type",
                kind,
                "--id",
                obj_id,
                "--label",
                obj_label,
            )
        finally:
            path.unlink()

    def import_key(self, label: str, key: _Key, cert: x509.Certificate, obj_id: str) -> None:
        """The lab's existing key and certificate, written as OpenSC's tool writes them."""
        der = serialization.Encoding.DER
        self.write(
            label,
            key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            "privkey",
            obj_id,
            "signer",
        )
        self.write(label, cert.public_bytes(der), "cert", obj_id, "signer")

    def generate_key(self, label: str, kind: str, obj_id: str) -> Any:
        """A key pair made on the token; its public key, loaded with cryptography."""
        spec = {"rsa2048": "rsa:2048", "rsa3072": "rsa:3072", "p256": "EC:prime256v1"}[kind]
        self.tool(label, "--keypairgen", "--key-type", spec, "--id", obj_id, "--label", "signer")
        out = self.home / f"{label}-pub.der"
        self.tool(
            label, "--read-object", "--type", "pubkey", "--id", obj_id, "--output-file", str(out)
        )
        return serialization.load_der_public_key(out.read_bytes())


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    home = tmp_path_factory.mktemp("softhsm-labs")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield SoftHsm(conf, home)
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


@dataclass
class LabToken:
    label: str
    chain: Chain
    cert: x509.Certificate
    chain_in_profile: list[Path]


def _pem(path: Path, certs: list[x509.Certificate]) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


# (label, key type, chain levels, how the key got there, where the intermediate is)
CASES = [
    ("rsa2048-imported", "rsa2048", 1, "imported", None),
    ("rsa2048-generated", "rsa2048", 1, "generated", None),
    ("rsa3072-imported-2lvl", "rsa3072", 2, "imported", "token"),
    ("rsa3072-generated-2lvl", "rsa3072", 2, "generated", "profile"),
    ("p256-imported", "p256", 1, "imported", None),
    ("p256-generated-2lvl", "p256", 2, "generated", "token"),
]


@pytest.fixture(scope="module")
def lab_tokens(softhsm: SoftHsm) -> dict[str, LabToken]:
    made: dict[str, LabToken] = {}
    for label, kind, levels, how, where in CASES:
        softhsm.new_token(label)
        chain = _chain("p256" if kind == "p256" else "rsa3072", levels)
        if how == "imported":
            key = _new_key(kind)
            cert = chain.certify(f"Signer {label}", key.public_key())
            softhsm.import_key(label, key, cert, "01")
        else:
            cert = chain.certify(f"Signer {label}", softhsm.generate_key(label, kind, "01"))
            softhsm.write(
                label, cert.public_bytes(serialization.Encoding.DER), "cert", "01", "signer"
            )
        in_profile: list[Path] = []
        if where == "token":
            for i, sub in enumerate(chain.intermediates):
                softhsm.write(
                    label,
                    sub.public_bytes(serialization.Encoding.DER),
                    "cert",
                    f"c{i}",
                    f"issuing-ca-{i}",
                )
        elif where == "profile":
            in_profile.append(_pem(softhsm.home / f"{label}-chain.pem", chain.intermediates))
        made[label] = LabToken(label, chain, cert, in_profile)
    # a key made on the token whose certificate was never written there
    softhsm.new_token("no-cert")
    softhsm.generate_key("no-cert", "rsa2048", "07")
    # SoftHSM2 reads its configuration and tokens at C_Initialize: another test module may
    # have loaded it in this process with its own configuration
    import pkcs11

    pkcs11.lib(str(MODULE)).reinitialize()
    return made


def _lab(settings: Settings, tok: LabToken, home: Path, **more: Any) -> Settings:
    return settings.replace(
        signing_pkcs12=None,
        signing_pkcs11_module=MODULE,
        signing_pkcs11_token=tok.label,
        signing_pkcs11_key_label="signer",
        signing_chain=tuple(tok.chain_in_profile),
        signing_trust_roots=(_pem(home / f"{tok.label}-root.pem", [tok.chain.root]),),
        **more,
    )


def _pdfsig(path: Path) -> str | None:
    if shutil.which("pdfsig") is None:
        return None
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout


def _pyhanko_valid(pdf: bytes, root: x509.Certificate) -> tuple[int, int]:
    """Validate each signature with pyHanko; return the first one's CMS size and reserved size."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    ctx = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))]
    )
    sigs = [
        s
        for s in PdfFileReader(BytesIO(pdf)).embedded_signatures
        if s.sig_object["/Type"] == "/Sig"  # document timestamps are checked by the verifier
    ]
    assert sigs
    for sig in sigs:
        status = validate_pdf_signature(sig, ctx)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    start, length, next_start, _ = sigs[0].sig_object["/ByteRange"]
    reserved_hex = next_start - (start + length) - 2  # between '<' and '>'
    from asn1crypto import cms

    return len(cms.ContentInfo.load(sigs[0].pkcs7_content).dump()), reserved_hex // 2


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_lab_token_issues_a_valid_certificate(
    case: str,
    lab_tokens: dict[str, LabToken],
    softhsm: SoftHsm,
    settings: Settings,
    ledger: Ledger,
    renderer: Any,
    tmp_path: Path,
) -> None:
    tok = lab_tokens[case]
    lab = _lab(settings, tok, softhsm.home)
    with Sealer.from_settings(lab, PIN.encode()) as sealer:
        issuer = Issuer(
            lab,
            ledger=ledger,
            sealer=sealer,
            token_key=load_token_key(lab),
            out_dir=tmp_path,
            renderer=renderer,
        )
        data = load_json(SAMPLES / "calibration.json")
        data["signatory"]["name"] = f"Signer {case}"  # the token's owner signs
        issued = issuer.issue(parse_certificate(data)).path
    pdf = issued.read_bytes()
    report = Verifier.from_settings(lab, ledger=ledger).verify_pdf(pdf)
    assert report.verdict is Verdict.VALID, report.reasons
    assert f"Signer {case}" in (report.signer or "")
    actual, reserved = _pyhanko_valid(pdf, tok.chain.root)
    # the whole chain below the root travels in the signature, wherever it was found
    signed_certs = {c.dump() for c in _signed_data(pdf)["certificates"]}
    for sub in tok.chain.intermediates:
        assert sub.public_bytes(serialization.Encoding.DER) in signed_certs
    names = [c.chosen.subject.native["common_name"] for c in _signed_data(pdf)["certificates"]]
    print(f"{case}: CMS {actual} bytes, reserved {reserved} bytes, certificates {names}")
    assert actual <= reserved < actual + 2048 + 1
    # each certificate once: the token signer's own is not sent twice
    assert len(names) == len(set(names)) == 1 + len(tok.chain.intermediates)
    shown = _pdfsig(issued)
    if shown is not None:
        assert "Signature is Valid" in shown, shown


def _signed_data(pdf: bytes) -> Any:
    from pyhanko.pdf_utils.reader import PdfFileReader

    return PdfFileReader(BytesIO(pdf)).embedded_signatures[0].signed_data


# -- logging in: PIN pad, one login, a re-login when the token logs the user out ------------


def test_token_logs_in_again_when_it_logged_the_user_out(
    lab_tokens: dict[str, LabToken], softhsm: SoftHsm
) -> None:
    """Mid-batch, the token forgets the login (C_Logout from elsewhere in the process, as a
    token unplugged for a moment does): the next signature logs in again and is valid."""
    from .test_sign import _pdf

    tok = lab_tokens["rsa2048-imported"]
    with Sealer.from_pkcs11(MODULE, token_label=tok.label, pin=PIN, key_label="signer") as sealer:
        first = sealer.sign(_pdf())
        session = sealer._signer.pkcs11_session  # type: ignore[attr-defined]
        rv = ctypes.CDLL(str(MODULE)).C_Logout(ctypes.c_ulong(session.handle))
        assert rv == 0  # CKR_OK: the user is logged out of the token
        second = sealer.sign(_pdf())
    for pdf in (first, second):
        _pyhanko_valid(pdf, tok.chain.root)


def test_login_secret_uses_the_pin_pad_only_when_the_reader_has_one(
    lab_tokens: dict[str, LabToken],
) -> None:
    import pkcs11
    from pkcs11 import PROTECTED_AUTH, TokenFlag

    from certissuer.sign import token_has_pin_pad
    from certissuer.sign._pkcs11 import login_secret

    label = next(iter(lab_tokens))
    token = pkcs11.lib(str(MODULE)).get_token(token_label=label)
    flags = token.flags  # SoftHSM2: no protected authentication path
    assert not flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH
    assert not token_has_pin_pad(MODULE, token_label=label)
    assert login_secret(PIN, flags, "t") == PIN
    with pytest.raises(SigningError, match="no PIN was given"):
        login_secret(None, flags, "t")
    # a reader with a PIN pad: log in with no PIN, the PIN is typed on the reader
    pad = flags | TokenFlag.PROTECTED_AUTHENTICATION_PATH
    assert login_secret(None, pad, "t") is PROTECTED_AUTH
    assert login_secret("", pad, "t") is PROTECTED_AUTH
    assert login_secret(PIN, pad, "t") == PIN


# -- errors: one line each, never the PIN -----------------------------------------------------


def test_missing_token_lists_the_tokens_seen(lab_tokens: dict[str, LabToken]) -> None:
    with pytest.raises(SigningError) as info:
        Sealer.from_pkcs11(MODULE, token_label="lab-tokn", pin=PIN, key_label="signer")
    message = str(info.value)
    assert message.startswith(f"{MODULE}: no token labelled 'lab-tokn'; tokens seen: ")
    for label in lab_tokens:
        assert f"'{label}' (serial " in message
    assert "\n" not in message and PIN not in message


def test_token_chosen_by_serial(lab_tokens: dict[str, LabToken]) -> None:
    import pkcs11

    from .test_sign import _pdf

    label = "p256-imported"
    serial = pkcs11.lib(str(MODULE)).get_token(token_label=label).serial.decode().strip()
    with Sealer.from_pkcs11(MODULE, token_serial=serial, pin=PIN, key_label="signer") as sealer:
        assert sealer.signer_name == f"Signer {label}"
        _pyhanko_valid(sealer.sign(_pdf()), lab_tokens[label].chain.root)
    with pytest.raises(SigningError, match="no token with serial 0000; tokens seen: '"):
        Sealer.from_pkcs11(MODULE, token_serial="0000", pin=PIN, key_label="signer")


def test_key_without_a_certificate_says_so(lab_tokens: dict[str, LabToken]) -> None:
    with pytest.raises(SigningError) as info:
        Sealer.from_pkcs11(MODULE, token_label="no-cert", pin=PIN, key_label="signer")
    assert str(info.value) == (
        "PKCS#11 token 'no-cert': the key with label 'signer' has no certificate "
        "(none with label 'signer') on the token"
    )
    assert info.value.hint is not None and "--type cert" in info.value.hint
    with pytest.raises(SigningError, match="no private key with id 09"):
        Sealer.from_pkcs11(MODULE, token_label="no-cert", pin=PIN, key_id=b"\x09")


def test_softhsm_does_not_lock_so_the_locked_pin_is_mapped_where_python_pkcs11_raises_it(
    lab_tokens: dict[str, LabToken],
) -> None:
    """SoftHSM2 2.6 counts no wrong PINs: after many wrong tries the right one still works, so
    a locked PIN cannot be made here. The mapping is tested on python-pkcs11's own error for
    CKR_PIN_LOCKED, the exception `token.open` raises on a locked token."""
    from pkcs11 import exceptions as p11_errors

    from certissuer.sign._pkcs11 import login_error

    label = "p256-imported"
    for _ in range(12):
        with pytest.raises(SigningError, match="wrong PIN"):
            Sealer.from_pkcs11(MODULE, token_label=label, pin="0000-wrong", key_label="signer")
    with Sealer.from_pkcs11(MODULE, token_label=label, pin=PIN, key_label="signer") as sealer:
        assert sealer.signer_name == f"Signer {label}"  # not locked
    where = f"PKCS#11 token '{label}'"
    locked = login_error(p11_errors.PinLocked(), where)
    assert str(locked) == f"{where}: the PIN is locked after too many wrong tries"
    assert locked.hint is not None and "SO PIN" in locked.hint
    assert str(login_error(p11_errors.PinIncorrect(), where)) == f"{where}: wrong PIN"
    assert str(login_error(p11_errors.PinExpired(), where)) == f"{where}: the PIN has expired"


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "certissuer", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("signing", "pin", "expected"),
    [
        ('pkcs11_token = "rsa2048-imported"', "wrong-pin-canary-2468", "wrong PIN"),
        ('pkcs11_token = "rsa2048-imported"', "", "no PIN was given"),
        ('pkcs11_token = "gone"', PIN, "no token labelled 'gone'; tokens seen: '"),
        ('pkcs11_token = "no-cert"', PIN, "has no certificate"),
        ('pkcs11_token = "x"\npkcs11_module = "/nowhere/libvendor.so"', PIN, "does not exist"),
    ],
)
def test_cli_token_errors_are_one_line_with_exit_5(
    signing: str,
    pin: str,
    expected: str,
    lab_tokens: dict[str, LabToken],
    softhsm: SoftHsm,
    tmp_path: Path,
    pki: Any,
) -> None:
    module = "" if "pkcs11_module" in signing else f'pkcs11_module = "{MODULE}"\n'
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f"""
[lab]
code = "TOK"
[signing]
{module}{signing}
pkcs11_key_label = "signer"
pin_env = "LAB_PIN"
[token]
key = "{pki.token_key}"
[ledger]
url = "sqlite:///{tmp_path / "ledger.db"}"
""",
        encoding="utf-8",
    )
    proc = _cli(
        ["--config", str(toml), "issue", str(SAMPLES / "calibration.json"), "-o", str(tmp_path)],
        {"LAB_PIN": pin, "SOFTHSM2_CONF": str(softhsm.conf)},
        tmp_path,
    )
    assert proc.returncode == 5, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("WARNING")]
    assert lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), proc.stderr
    assert "Traceback" not in proc.stderr
    if pin:
        assert pin not in proc.stdout + proc.stderr


SPY = Path("/usr/lib/x86_64-linux-gnu/pkcs11-spy.so")


@pytest.mark.skipif(not SPY.exists(), reason="OpenSC's pkcs11-spy is not installed")
def test_one_login_per_run(
    lab_tokens: dict[str, LabToken], softhsm: SoftHsm, tmp_path: Path, pki: Any
) -> None:
    """`certissuer issue` with three certificates logs in to the token once and signs four
    times (the size probe and three documents), as OpenSC's PKCS#11 spy records the calls."""
    import json

    tok = lab_tokens["p256-generated-2lvl"]
    root = _pem(tmp_path / "root.pem", [tok.chain.root])
    files = []
    for ref in ("spy-1", "spy-2", "spy-3"):
        data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
        data["ref"] = ref
        data["signatory"]["name"] = f"Signer {tok.label}"  # the token's owner signs
        files.append(tmp_path / f"{ref}.json")
        files[-1].write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f"""
[lab]
code = "SPY"
[signing]
pkcs11_module = "{SPY}"
pkcs11_token = "{tok.label}"
pkcs11_key_label = "signer"
pin_env = "LAB_PIN"
trust_roots = ["{root}"]
[token]
key = "{pki.token_key}"
[ledger]
url = "sqlite:///{tmp_path / "ledger.db"}"
""",
        encoding="utf-8",
    )
    log = tmp_path / "spy.log"
    proc = _cli(
        ["--config", str(toml), "issue", *map(str, files), "-o", str(tmp_path / "out")],
        {
            "LAB_PIN": PIN,
            "SOFTHSM2_CONF": str(softhsm.conf),
            "PKCS11SPY": str(MODULE),
            "PKCS11SPY_OUTPUT": str(log),
        },
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 issued" in proc.stdout, proc.stdout
    calls = [line.split()[1] for line in log.read_text().splitlines() if " C_" in line[:16]]
    assert calls.count("C_Login") == 1, calls
    assert calls.count("C_SignInit") == 4, calls  # C_Sign is called twice: size, then data
    assert PIN not in proc.stdout + proc.stderr


# NOTE: Bob (ECDSA) at B-LTA verifies as ALTERED from a PKCS#12 file as well (a widget
# "added after signing"), so that case is left out here: it is not the token's doing.
@pytest.mark.parametrize(
    ("person", "algorithm", "level"),
    [
        ("alice", "sha256_rsa", "B-T"),
        ("bob", "sha256_ecdsa", "B-T"),
        ("alice", "sha256_rsa", "B-LTA"),
    ],
)
def test_token_key_signs_timestamped_levels(
    person: str,
    algorithm: str,
    level: str,
    softhsm: SoftHsm,
    lab_tokens: dict[str, LabToken],
    lab_pki: Any,
    settings: Settings,
    ledger: Ledger,
    renderer: Any,
    tmp_path: Path,
) -> None:
    """The test PKI's signer imported into a token signs at B-T and B-LTA against the
    in-process TSA, OCSP responder and CRLs: the timestamp fits the reserved space."""
    import pkcs11

    label = f"pki-{person}"
    if label not in {t.label for t in pkcs11.lib(str(MODULE)).get_tokens()}:
        softhsm.new_token(label)
        key = serialization.load_pem_private_key(lab_pki.key_path(person).read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        softhsm.import_key(label, key, lab_pki.crypto_cert(person), "01")
        pkcs11.lib(str(MODULE)).reinitialize()
    lab = settings.replace(
        signing_pkcs12=None,
        signing_pkcs11_module=MODULE,
        signing_pkcs11_token=label,
        signing_pkcs11_key_label="signer",
        signing_trust_roots=(lab_pki.pem("root"),),
        signing_tsa_url=lab_pki.tsa_url,
    )
    with lab_pki.services(), Sealer.from_settings(lab, PIN.encode(), level=level) as sealer:
        issuer = Issuer(
            lab,
            ledger=ledger,
            sealer=sealer,
            token_key=load_token_key(lab),
            out_dir=tmp_path,
            renderer=renderer,
        )
        data = load_json(SAMPLES / "calibration.json")
        data["ref"] = f"{person}-{level}"
        data["signatory"]["name"] = sealer.signer_name  # the key's owner signs
        path = issuer.issue(parse_certificate(data)).path
    with lab_pki.services():
        report = Verifier.from_settings(lab, ledger=ledger).verify_pdf(path.read_bytes())
    assert report.verdict is Verdict.VALID, report.reasons
    sig = report.signatures[0]
    assert (sig.level, sig.trusted, sig.valid, sig.time_trusted) == (level, True, True, True)
    assert sig.algorithm == f"sha256 / {algorithm}"
    actual, reserved = _pyhanko_valid(path.read_bytes(), lab_pki.crypto_cert("root"))
    print(f"{person} {level}: CMS with timestamp {actual} bytes, reserved {reserved} bytes")
    assert actual <= reserved
    shown = _pdfsig(path)
    if shown is not None:
        assert "Signature is Valid" in shown, shown
