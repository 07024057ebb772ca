"""The trial PKI: `keys init --person`, `trial-services` as a real subprocess, and PAdES B-T,
B-LT and B-LTA signed against it, each judged by pyHanko and by poppler's ``pdfsig``.

``pdfsig`` checks the CMS signatures (not document timestamps: see FIELD-NOTES); with NSS's
``certutil`` at hand the trial CA is trusted in a private NSS database, and ``pdfsig`` then
asks the trial OCSP responder about the signer itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.errors import SigningError
from certissuer.sign import Level, Sealer, SigningPolicy
from certissuer.sign.policy import asn1_certificate

from .conftest import ROOT, SAMPLES

PASSWORD = "trial-pass-7c2e"
VERIFIER = "Phạm Minh Tuấn"
HEAD = "Lê Hoàng Phúc"
DOOMED = "Trần Văn Đức"
"""A person whose key the revocation test revokes (nobody else signs with it)."""
PDFSIG = shutil.which("pdfsig")
CERTUTIL = shutil.which("certutil")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Trial:
    keys: Path
    url: str
    output: str
    """What `keys init` printed."""

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.keys / name).read_bytes())

    @property
    def ca(self) -> x509.Certificate:
        return self.cert("ca.pem")

    def sealer(self, p12: str, level: str) -> Sealer:
        policy = SigningPolicy(
            level=Level.parse(level),
            tsa_url=f"{self.url}/tsa",
            trust_roots=(asn1_certificate(self.ca),),
        )
        return Sealer.from_pkcs12(self.keys / p12, PASSWORD.encode(), policy=policy)


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trial]:
    """A trial PKI for three people, its services running in a real subprocess."""
    home = tmp_path_factory.mktemp("trial")
    url = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "CERTISSUER_P12_PASSPHRASE": PASSWORD}
    people = [(VERIFIER, "verifier"), (HEAD, "head,signatory"), (DOOMED, "verifier")]
    args = ["keys", "init", str(home / "keys"), "--organisation", "Trial lab"]
    for name, roles in people:
        args += ["--person", name, "--role", roles]
    made = CliRunner().invoke(app, [*args, "--services-url", url], env=env)
    assert made.exit_code == 0, made.output
    port = url.rsplit(":", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "certissuer", "trial-services", str(home / "keys"), "--port", port],
        env={**env, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline() + proc.stderr.readline()
        assert "NOT FOR PRODUCTION" in banner and f"listening on {url}" in banner, banner
        yield Trial(home / "keys", url, made.stdout)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _get(url: str, body: bytes | None = None, ctype: str = "") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": ctype} if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _blank_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    out = BytesIO()
    pdf.save(out)
    return out.getvalue()


def _pdfsig(path: Path, nssdir: Path | None) -> str:
    assert PDFSIG is not None
    args = [PDFSIG, *(["-nssdir", f"sql:{nssdir}"] if nssdir else []), str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def nssdir(trial: Trial, tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """An NSS database trusting the trial CA (None without NSS's certutil)."""
    if CERTUTIL is None:
        return None
    db = tmp_path_factory.mktemp("nss")
    subprocess.run([CERTUTIL, "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    add = ["-A", "-d", f"sql:{db}", "-n", "trial-ca", "-t", "CT,C,C"]
    subprocess.run([CERTUTIL, *add, "-i", str(trial.keys / "ca.pem")], check=True)
    return db


# -- keys init ---------------------------------------------------------------------------


def test_keys_init_makes_a_key_per_person_naming_crl_and_ocsp(trial: Trial) -> None:
    assert "Trial CA - NOT FOR PRODUCTION" in trial.ca.subject.rfc4514_string()
    for name, stem in ((VERIFIER, "pham-minh-tuan"), (HEAD, "le-hoang-phuc")):
        p12 = trial.keys / f"{stem}.p12"
        key, cert, chain = pkcs12.load_key_and_certificates(p12.read_bytes(), PASSWORD.encode())
        assert key is not None and cert is not None and chain == [trial.ca]
        (cn,) = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        (org,) = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
        assert (cn.value, org.value) == (name, "Trial lab")
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert [n.value for p in points for n in p.full_name or []] == [f"{trial.url}/crl"]
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp_urls = [
            a.access_location.value
            for a in aia
            if a.access_method == AuthorityInformationAccessOID.OCSP
        ]
        assert ocsp_urls == [f"{trial.url}/ocsp"]
        assert stat.S_IMODE(p12.stat().st_mode) == 0o600
        with pytest.raises(ValueError):
            pkcs12.load_key_and_certificates(p12.read_bytes(), b"wrong")
    for private in ("ca-key.pem", "tsa-key.pem", "token-key.pem"):
        assert stat.S_IMODE((trial.keys / private).stat().st_mode) == 0o600
    assert b"ENCRYPTED" in (trial.keys / "ca-key.pem").read_bytes()
    eku = trial.cert("tsa.pem").extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    index = json.loads((trial.keys / "index.json").read_text(encoding="utf-8"))
    serials = {int(i["serial"], 16) for i in index["issued"]}
    assert trial.cert("pham-minh-tuan.pem").serial_number in serials
    assert trial.cert("tsa.pem").serial_number in serials
    assert index["revoked"] == []


def test_keys_init_prints_the_people_tables(trial: Trial) -> None:
    keys = trial.keys.as_posix()
    assert f'tsa_url = "{trial.url}/tsa"' in trial.output
    assert f'trust_roots = ["{keys}/ca.pem"]' in trial.output
    assert (
        "[[people]]\n"
        f'name = "{HEAD}"\n'
        'roles = ["head", "signatory"]\n'
        f'pkcs12 = "{keys}/le-hoang-phuc.p12"\n'
    ) in trial.output
    assert 'pkcs12 = "' + keys + '/signer.p12"' not in trial.output  # no single signer asked


def test_keys_init_without_people_is_as_before(tmp_path: Path) -> None:
    env = {"CERTISSUER_P12_PASSPHRASE": PASSWORD}
    result = CliRunner().invoke(app, ["keys", "init", str(tmp_path / "k")], env=env)
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate((tmp_path / "k" / "signer.pem").read_bytes())
    for ext in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(ext)
    assert not (tmp_path / "k" / "index.json").exists()
    assert not (tmp_path / "k" / "ca-key.pem").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--person", "A B", "--role", "boss"], "--role of 'A B' must be one of verifier, head"),
        (["--person", "A B"], "1 --person but 0 --role given"),
        (["--person", "Ấ B", "--role", "head", "--person", "a b", "--role", "verifier"], "a-b.p12"),
    ],
)
def test_keys_init_bad_people_say_what_is_wrong(
    tmp_path: Path, args: list[str], message: str
) -> None:
    env = {"CERTISSUER_P12_PASSPHRASE": PASSWORD}
    result = CliRunner().invoke(app, ["keys", "init", str(tmp_path / "k"), *args], env=env)
    assert result.exit_code == 3 and message in result.output, result.output
    assert not (tmp_path / "k").exists()


def test_keys_init_for_a_department_with_its_full_vietnamese_name(tmp_path: Path) -> None:
    """A CA common name is at most 64 bytes of UTF-8: a real Department's name (39 letters,
    many with marks) plus " Trial CA - NOT FOR PRODUCTION" used to be an internal error."""
    env = {"CERTISSUER_P12_PASSPHRASE": PASSWORD}
    org = "Sở Khoa học và Công nghệ tỉnh Đồng Tháp"
    result = CliRunner().invoke(
        app,
        ["keys", "init", str(tmp_path / "k"), "--organisation", org,
         "--person", "Trần Thị Thanh Tra", "--role", "signatory"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = {}
    for stem in ("ca", "tsa", "tran-thi-thanh-tra"):
        cert = x509.load_pem_x509_certificate((tmp_path / "k" / f"{stem}.pem").read_bytes())
        names[stem] = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == org
    assert names["ca"] == "Sở Khoa học và Công ngh… Trial CA - NOT FOR PRODUCTION"
    assert names["tsa"].endswith("… Trial TSA - NOT FOR PRODUCTION")
    assert all(len(str(n).encode()) <= 64 for n in names.values())
    assert names["tran-thi-thanh-tra"] == "Trần Thị Thanh Tra"
    # a person's name that no certificate can hold is refused, naming it
    long_name = "Nguyễn Thị Hồng Nhung Phương Thảo Ngọc Ánh Diễm Lệ"
    refused = CliRunner().invoke(
        app,
        ["keys", "init", str(tmp_path / "k2"), "--person", long_name, "--role", "head"],
        env=env,
    )
    assert refused.exit_code == 3 and f"--person '{long_name}'" in refused.output
    assert not (tmp_path / "k2").exists()


# -- the services --------------------------------------------------------------------------


def test_every_answer_says_not_for_production(trial: Trial) -> None:
    for path in ("/", "/crl", "/nowhere"):
        _, headers, body = _get(trial.url + path)
        assert headers["X-Certissuer-Trial"] == "NOT FOR PRODUCTION"
        assert "NOT FOR PRODUCTION" in headers["Server"]
    status, _, body = _get(f"{trial.url}/tsa", b"not DER", "application/timestamp-query")
    assert status == 400 and b"NOT FOR PRODUCTION" in body


def test_tsa_answers_a_timestamp_pyhanko_accepts(trial: Trial) -> None:
    from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data

    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"a certificate")
    imprint = digest.finalize()
    stamper = RequestsHTTPTimeStamper(f"{trial.url}/tsa")  # type: ignore[no-untyped-call]
    token = asyncio.run(stamper.async_timestamp(imprint, "sha256"))
    context = ValidationContext(trust_roots=[asn1_certificate(trial.ca)])
    status = asyncio.run(
        validate_tst_signed_data(
            token["content"], context, expected_tst_imprint=lambda _algo: imprint
        )
    )
    assert status["intact"] and status["valid"] and status["trust_problem_indic"] is None
    assert "Trial TSA" in status["signing_cert"].subject.human_friendly
    # the same token is refused for other data: the imprint is checked
    other = asyncio.run(
        validate_tst_signed_data(
            token["content"], context, expected_tst_imprint=lambda _algo: b"\0" * 32
        )
    )
    assert not other["intact"]


def _ocsp_request(trial: Trial, serial: int | None = None, cert: str = "pham-minh-tuan.pem") -> Any:
    builder = ocsp.OCSPRequestBuilder()
    if serial is None:
        builder = builder.add_certificate(trial.cert(cert), trial.ca, hashes.SHA1())
    else:
        probe = ocsp.OCSPRequestBuilder().add_certificate(trial.cert(cert), trial.ca, hashes.SHA1())
        req = probe.build()
        builder = builder.add_certificate_by_hash(
            req.issuer_name_hash, req.issuer_key_hash, serial, hashes.SHA1()
        )
    nonce = os.urandom(16)
    return builder.add_extension(x509.OCSPNonce(nonce), critical=False).build(), nonce


def _ask_ocsp(trial: Trial, request: Any, *, get: bool = False) -> ocsp.OCSPResponse:
    der = request.public_bytes(serialization.Encoding.DER)
    if get:
        status, headers, body = _get(f"{trial.url}/ocsp/{base64.b64encode(der).decode()}")
    else:
        status, headers, body = _get(f"{trial.url}/ocsp", der, "application/ocsp-request")
    assert status == 200 and headers["Content-Type"] == "application/ocsp-response"
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    # signed by the CA's own key, and the nonce sent back
    public = trial.ca.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and response.signature_hash_algorithm
    public.verify(
        response.signature,
        response.tbs_response_bytes,
        padding.PKCS1v15(),
        response.signature_hash_algorithm,
    )
    return response


def test_ocsp_good_unknown_and_malformed(trial: Trial) -> None:
    request, nonce = _ocsp_request(trial)
    for get in (False, True):
        response = _ask_ocsp(trial, request, get=get)
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert response.serial_number == trial.cert("pham-minh-tuan.pem").serial_number
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert response.next_update_utc - response.this_update_utc <= timedelta(hours=1)
    unknown, _ = _ocsp_request(trial, serial=123456789)
    assert _ask_ocsp(trial, unknown).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    _, _, body = _get(f"{trial.url}/ocsp", b"\x30\x03junk", "application/ocsp-request")
    malformed = ocsp.load_der_ocsp_response(body)
    assert malformed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _crl(trial: Trial) -> x509.CertificateRevocationList:
    status, headers, body = _get(f"{trial.url}/crl")
    assert status == 200 and headers["Content-Type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(body)


def test_crl_is_signed_by_the_ca_and_short_lived(trial: Trial) -> None:
    crl = _crl(trial)
    assert crl.issuer == trial.ca.subject
    assert crl.is_signature_valid(trial.ca.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc is not None
    assert timedelta(0) < crl.next_update_utc - crl.last_update_utc <= timedelta(hours=1)


def test_revoked_key_is_refused_and_every_checker_says_revoked(
    trial: Trial, tmp_path: Path, nssdir: Path | None
) -> None:
    """The defence: a revoked key cannot sign (the Sealer asks the trial OCSP responder), and
    a file it signed before is reported revoked by OCSP, the CRL and pdfsig."""
    signed = tmp_path / "before.pdf"
    signed.write_bytes(trial.sealer("tran-van-duc.p12", "B-B").sign(_blank_pdf()))
    serial = trial.cert("tran-van-duc.pem").serial_number
    result = CliRunner().invoke(app, ["keys", "revoke-trial", str(trial.keys), "tran van duc"])
    assert result.exit_code == 0 and f"revoked {serial:x}" in result.stdout, result.output

    with pytest.raises(SigningError, match="is revoked"):
        trial.sealer("tran-van-duc.p12", "B-B")
    request, _ = _ocsp_request(trial, cert="tran-van-duc.pem")
    response = _ask_ocsp(trial, request)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert [r.serial_number for r in _crl(trial)] == [serial]
    # the others are still good
    request, _ = _ocsp_request(trial)
    assert _ask_ocsp(trial, request).certificate_status is ocsp.OCSPCertStatus.GOOD
    if PDFSIG and nssdir:
        assert "Certificate has been Revoked" in _pdfsig(signed, nssdir)


# -- PAdES levels against the services -----------------------------------------------------


@pytest.fixture(scope="module")
def signed(trial: Trial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("levels")
    files = {}
    for level in ("B-T", "B-LT", "B-LTA"):
        files[level] = out / f"{level}.pdf"
        files[level].write_bytes(trial.sealer("pham-minh-tuan.p12", level).sign(_blank_pdf()))
    return files


@pytest.mark.parametrize("level", ["B-T", "B-LT", "B-LTA"])
def test_level_validates_with_pyhanko(trial: Trial, signed: dict[str, Path], level: str) -> None:
    reader = PdfFileReader(BytesIO(signed[level].read_bytes()))
    sigs = reader.embedded_signatures
    context = ValidationContext(trust_roots=[asn1_certificate(trial.ca)])
    status = validate_pdf_signature(sigs[0], context)
    assert status.bottom_line, status.summary()
    assert status.signer_reported_dt is not None
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert status.signing_cert.subject.native["common_name"] == VERIFIER
    kinds = [s.sig_object_type for s in sigs]
    assert kinds == (["/Sig", "/DocTimeStamp"] if level == "B-LTA" else ["/Sig"])
    if level != "B-T":
        dss = DocumentSecurityStore.read_dss(reader)
        assert dss.ocsps or dss.crls  # fetched from the trial services


@pytest.mark.skipif(PDFSIG is None, reason="needs poppler-utils (pdfsig)")
@pytest.mark.parametrize("level", ["B-T", "B-LT", "B-LTA"])
def test_level_validates_with_pdfsig(
    signed: dict[str, Path], level: str, nssdir: Path | None
) -> None:
    report = _pdfsig(signed[level], nssdir)
    first = report.split("Signature #2")[0]
    assert f"Signer Certificate Common Name: {VERIFIER}" in first
    assert "Signature Validation: Signature is Valid." in first
    assert "Signature Type: ETSI.CAdES.detached" in first
    if nssdir is not None:  # trusted, and pdfsig asked the trial OCSP responder itself
        assert "Certificate Validation: Certificate is Trusted." in first
    if level == "B-LTA":  # pdfsig lists the document timestamp but cannot check it
        assert "Trial TSA - NOT FOR PRODUCTION" in report.split("Signature #2")[1]


def test_altered_file_fails_both_checkers(
    trial: Trial, signed: dict[str, Path], tmp_path: Path
) -> None:
    data = bytearray(signed["B-T"].read_bytes())
    at = data.index(b"/MediaBox")
    data[at + 1 : at + 9] = b"MediaBoy"  # inside the signed byte range
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(data))
    reader = PdfFileReader(BytesIO(bytes(data)), strict=False)
    status = validate_pdf_signature(
        reader.embedded_signatures[0],
        ValidationContext(trust_roots=[asn1_certificate(trial.ca)]),
    )
    assert not status.intact
    if PDFSIG:
        assert "Signature is Valid." not in _pdfsig(bad, None)


# -- the demo: B-LTA with two signers --------------------------------------------------------


def test_two_signers_at_b_lta_through_the_cli(
    trial: Trial, tmp_path: Path, nssdir: Path | None
) -> None:
    profile_text = (SAMPLES / "certissuer-trial.toml").read_text(encoding="utf-8")
    keys = trial.keys
    profile_text = profile_text.replace('"../keys.example/', f'"{keys}/')
    profile_text = profile_text.replace("http://127.0.0.1:8790", trial.url)
    profile = tmp_path / "trial.toml"
    profile.write_text(profile_text, encoding="utf-8")
    env = {
        "CERTISSUER_P12_PASSPHRASE": PASSWORD,
        "CERTISSUER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
    }
    run = CliRunner()
    base = ["--config", str(profile)]
    issued = run.invoke(
        app,
        [*base, "issue", "--json", "--out", str(tmp_path), str(SAMPLES / "verification.json")],
        env=env,
    )
    assert issued.exit_code == 0, issued.output
    (item,) = json.loads(issued.stdout)["issued"]
    pdf = Path(item["entry"]["pdf_path"])
    waiting = run.invoke(app, [*base, "verify", "--json", str(pdf)], env=env)
    assert json.loads(waiting.stdout)["verdict"] == "awaiting_approval", waiting.output

    wrong = run.invoke(
        app,
        [*base, "sign-approve", str(pdf), "--pkcs12", str(keys / "pham-minh-tuan.p12")],
        env=env,
    )
    assert wrong.exit_code != 0 and "head printed" in wrong.output
    approved = run.invoke(
        app, [*base, "sign-approve", str(pdf), "--pkcs12", str(keys / "le-hoang-phuc.p12")], env=env
    )
    assert approved.exit_code == 0, approved.output

    verdict = run.invoke(app, [*base, "verify", "--json", str(pdf)], env=env)
    assert verdict.exit_code == 0, verdict.output
    report = json.loads(verdict.stdout)
    assert report["verdict"] == "valid", report["reasons"]
    regular = [s for s in report["signatures"] if s["kind"] != "document timestamp"]
    assert [(s["level"], s["trusted"], s["valid"]) for s in regular] == [("B-LTA", True, True)] * 2
    assert [s["trust_path"][0] for s in regular] == [VERIFIER, HEAD]
    assert sum(s["kind"] == "document timestamp" for s in report["signatures"]) == 2
    if PDFSIG:
        out = _pdfsig(pdf, nssdir)
        assert out.count("Signature Validation: Signature is Valid.") == 2, out
        assert re.search(rf"Common Name: {HEAD}\n", out)


def test_trial_services_refuse_a_wrong_passphrase_and_a_folder_without_a_trial_ca(
    trial: Trial, tmp_path: Path
) -> None:
    run = CliRunner()
    wrong = run.invoke(
        app, ["trial-services", str(trial.keys)], env={"CERTISSUER_P12_PASSPHRASE": "nope"}
    )
    assert wrong.exit_code == 3 and "ca-key.pem: cannot open the key: wrong passphrase" in (
        wrong.output
    )
    assert "nope" not in wrong.output
    empty = run.invoke(
        app, ["trial-services", str(tmp_path)], env={"CERTISSUER_P12_PASSPHRASE": PASSWORD}
    )
    assert empty.exit_code == 3 and "index.json: no trial CA index here" in empty.output
    taken = run.invoke(
        app,
        ["trial-services", str(trial.keys), "--port", trial.url.rsplit(":", 1)[1]],
        env={"CERTISSUER_P12_PASSPHRASE": PASSWORD},
    )
    assert taken.exit_code == 3 and "cannot listen on 127.0.0.1:" in taken.output
