"""PAdES levels B-B to B-LTA, long-term validation, visible signatures and the two-signer flow.

Every file is signed by certissuer's `Sealer` with the certomancer test PKI (TSA, OCSP and
CRLs answered in-process) and judged by `Verifier` (pyHanko's validator), offline.
"""

from __future__ import annotations

import json
import subprocess
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore

from certissuer.config import Settings
from certissuer.errors import ConfigError, SigningError, VerificationFailed
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Level, Sealer, SigningPolicy, policy_from_settings
from certissuer.verify import Verdict, Verifier

from ._pki import LabPKI
from .conftest import PASSPHRASE, SAMPLES, lab_settings, load_json

LEVELS = [level.value for level in Level]


ALICE = "Phạm Minh Tuấn"
"""The common name of the test PKI's signer Alice: who signs what she issues."""


def _cert(name: str, ref: str, **printed: str) -> Any:
    """The sample `name` as record `ref`; `printed` replaces people's names ("head")."""
    data = load_json(SAMPLES / name)
    data["ref"] = ref
    for role, person in printed.items():
        data[role]["name"] = person
    if data.get("stamp_number"):  # a stamp is used once per lab: each record its own
        data["stamp_number"] = f"ĐT-26 {zlib.crc32(ref.encode()) % 10**7:07d}"
    return parse_certificate(data)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_pki: LabPKI, pki: KeyPaths) -> Settings:
    """A lab profile signing with the test PKI's signer Alice (RSA-2048, CRL + OCSP)."""
    home = tmp_path_factory.mktemp("pades-lab")
    return lab_settings(
        pki,
        ledger=home,
        lab_code="PADES",
        signing_pkcs12=lab_pki.p12("alice", PASSPHRASE),
        signing_trust_roots=(lab_pki.pem("root"),),
        signing_tsa_url=lab_pki.tsa_url,
    )


@pytest.fixture(scope="module")
def lab_ledger(lab: Settings) -> Ledger:
    return Ledger.open(lab.ledger_url)


@pytest.fixture(scope="module")
def issued(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, renderer: Any, tmp_path_factory: Any
) -> dict[str, bytes]:
    """One calibration certificate per PAdES level, issued into the module's ledger."""
    out = tmp_path_factory.mktemp("pades-out")
    files = {}
    with lab_pki.services():
        for level in LEVELS:
            sealer = Sealer.from_settings(lab, PASSPHRASE, level=level)
            issuer = Issuer(
                lab,
                ledger=lab_ledger,
                sealer=sealer,
                token_key=load_token_key(lab),
                out_dir=out / level,
                renderer=renderer,
            )
            files[level] = issuer.issue(
                _cert("calibration.json", f"pades-{level}", signatory=ALICE)
            ).path.read_bytes()
    return files


@pytest.fixture
def lab_verifier(lab: Settings, lab_ledger: Ledger) -> Verifier:
    return Verifier.from_settings(lab, ledger=lab_ledger)


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_validates_offline(
    level: str, issued: dict[str, bytes], lab_verifier: Verifier
) -> None:
    report = lab_verifier.verify_pdf(issued[level])
    assert report.verdict is Verdict.VALID, report.reasons
    sig = report.signatures[0]
    assert (sig.kind, sig.level, sig.trusted, sig.valid) == ("signature", level, True, True)
    assert sig.time_trusted is (level != "B-B")
    assert sig.trust_path == ["Phạm Minh Tuấn", "Test Root CA"]
    assert sig.algorithm == "sha256 / sha256_rsa"
    kinds = [s.kind for s in report.signatures]
    assert kinds == (["signature", "document timestamp"] if level == "B-LTA" else ["signature"])
    if level != "B-B":
        assert sig.timestamp_authority and "Time Stamping" in sig.timestamp_authority
    if level in ("B-LT", "B-LTA"):
        assert sig.revocation == "not revoked (CRL/OCSP in the file's validation data)"
        assert sig.modification == "validation data and document timestamps only"
    else:
        assert sig.revocation.startswith("not checked")
        assert sig.coverage == "the entire file"


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_long_term_levels_carry_revocation_data_in_the_dss(
    level: str, issued: dict[str, bytes]
) -> None:
    dss = DocumentSecurityStore.read_dss(PdfFileReader(BytesIO(issued[level])))
    assert dss.ocsps or dss.crls
    assert len(list(dss.load_certs())) >= 2  # the signer's chain and the TSA's


@pytest.mark.parametrize("level", LEVELS)
def test_after_the_signer_expired_only_timestamped_levels_stay_valid(
    level: str, issued: dict[str, bytes], lab_verifier: Verifier, lab_pki: LabPKI
) -> None:
    later = lab_pki.signer_expires + timedelta(days=365)
    report = lab_verifier.verify_pdf(issued[level], at=later)
    if level == "B-B":
        # intact and from the lab's signer, but when it was signed is only the signer's word
        assert report.verdict is Verdict.TIME_NOT_PROVEN and not report.ok, report.reasons
        assert report.label_en == "SIGNING TIME NOT PROVEN"
        assert "expired and no trusted timestamp" in report.reasons[-1]
        assert "the signing time cannot be proven" in report.reasons[-1]
        (sig,) = report.signatures
        assert not sig.valid and not sig.trusted and not sig.time_trusted
        return
    assert report.verdict is Verdict.VALID, report.reasons
    sig = report.signatures[0]
    assert sig.time_trusted and sig.level == level
    assert sig.signed_at is not None and sig.signed_at < lab_pki.signer_expires


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LTA"])
def test_cli_verify_at_after_the_signer_expired(
    level: str, issued: dict[str, bytes], lab: Settings, lab_pki: LabPKI, tmp_path: Path
) -> None:
    """`certissuer verify --at`: the signing time of a B-B file cannot be proven once its
    signer expired; a timestamp proves it was signed while the signer was valid."""
    from typer.testing import CliRunner

    from certissuer.cli import app

    toml = tmp_path / "lab.toml"
    toml.write_text(
        f"""
[lab]
code = "{lab.lab_code}"
[signing]
trust_roots = ["{lab_pki.pem("root")}"]
[token]
key = "{lab.token_key}"
[ledger]
url = "{lab.ledger_url}"
""",
        encoding="utf-8",
    )
    pdf = tmp_path / f"{level}.pdf"
    pdf.write_bytes(issued[level])
    args = ["--config", str(toml), "verify", str(pdf)]
    before = lab_pki.signer_expires - timedelta(days=30)
    after = lab_pki.signer_expires + timedelta(days=365)
    result = CliRunner().invoke(app, [*args, "--at", f"{before:%Y-%m-%d}"])
    assert result.exit_code == 0 and "HỢP LỆ / VALID" in result.stdout, result.output
    result = CliRunner().invoke(app, [*args, "--at", f"{after:%Y-%m-%d}"])
    if level == "B-B":
        assert result.exit_code == 1 and "HỢP LỆ" not in result.stdout, result.output
        headline = "KHÔNG CHỨNG MINH ĐƯỢC THỜI ĐIỂM KÝ / SIGNING TIME NOT PROVEN"
        assert result.stdout.startswith(headline), result.output
        assert "KHÔNG XÁC THỰC" not in result.stdout and "NOT GENUINE" not in result.stdout
        assert "the signing time cannot be proven" in result.stdout
    else:
        assert result.exit_code == 0 and "HỢP LỆ / VALID" in result.stdout, result.output
        assert "(dấu thời gian tin cậy / trusted timestamp)" in result.stdout


def test_after_expiry_a_change_still_says_altered(
    issued: dict[str, bytes], lab_verifier: Verifier, lab_pki: LabPKI
) -> None:
    """An unproven signing time is said only of an otherwise sound file: a B-B file changed
    after signing is ALTERED, before and after its signer expired."""
    from . import _forge

    data = issued["B-B"]
    number, content = _forge.page_content(data)
    changed = _forge.append_revision(
        data, {number: _forge.stream(content.replace(b"Tj", b"Tj ", 1))}
    )
    later = lab_pki.signer_expires + timedelta(days=365)
    for at in (None, later):
        report = lab_verifier.verify_pdf(changed, at=at)
        assert report.verdict is Verdict.ALTERED, (at, report.reasons)


def test_after_expiry_a_signer_untrusted_when_it_claims_to_sign_is_unknown(
    lab_pki: LabPKI, lab: Settings, lab_verifier: Verifier
) -> None:
    """Without a timestamp, the signing time a B-B signature claims is judged too: signed
    (by its own clock) after the signer's certificate had expired, it is an unknown signer,
    not merely an unproven time."""
    from .test_sign import _pdf

    policy = SigningPolicy(trust_roots=(lab_pki.cert("root"),), revocation_check=False)
    late = lab_pki.signer_expires + timedelta(days=10)
    with freeze_time(late):  # the signer's clock says a date after its certificate expired
        sealer = Sealer.from_pkcs12(
            lab_pki.p12("alice", PASSPHRASE),
            PASSPHRASE,
            policy=policy,
            now=lab_pki.signer_expires - timedelta(days=1),
        )
        data = sealer.sign(_pdf())
    report = lab_verifier.verify_pdf(data, at=late + timedelta(days=1))
    assert report.verdict is Verdict.UNKNOWN_SIGNER, report.reasons
    assert "not trusted at the time the signature claims" in report.reasons[-1]


def test_frozen_clock_after_expiry(
    issued: dict[str, bytes], lab_verifier: Verifier, lab_pki: LabPKI
) -> None:
    """The same judgement with the process clock moved (freezegun) instead of `at=`."""
    later = lab_pki.signer_expires + timedelta(days=400)
    with freeze_time(later):
        lta = lab_verifier.verify_pdf(issued["B-LTA"])
        bb = lab_verifier.verify_pdf(issued["B-B"])
    assert lta.verdict is Verdict.VALID, lta.reasons
    assert bb.verdict is Verdict.TIME_NOT_PROVEN


def test_levels_above_b_b_need_a_tsa(lab: Settings) -> None:
    with pytest.raises(ConfigError, match="B-T needs a time-stamping authority"):
        policy = policy_from_settings(
            lab.replace(signing_tsa_url="", signing_revocation_check=False), level="B-T"
        )
        Sealer.from_pkcs12(lab.signing_pkcs12, PASSPHRASE, policy=policy).sign(b"%PDF-1.7")  # type: ignore[arg-type]


def test_unknown_level_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="B-B, B-T, B-LT, B-LTA"):
        Level.parse("B-LLT")
    assert Level.parse("lta") is Level.B_LTA


def test_b_lt_without_revocation_sources_is_refused(pki: KeyPaths, renderer: Any) -> None:
    """The demo CA publishes no CRL or OCSP: B-LT cannot be reached; say so in one line."""
    from .test_sign import _pdf

    policy = SigningPolicy(level=Level.B_LT, tsa_url="http://tsa.invalid/")
    sealer = Sealer.from_pkcs12(pki.signer_p12, PASSPHRASE, policy=policy)
    with pytest.raises(SigningError, match="B-LT needs revocation data, but") as info:
        sealer.sign(_pdf(), level=Level.B_LT, reserve=None)
    assert "\n" not in str(info.value)


def test_revoked_signing_certificate_is_refused(lab_pki: LabPKI, pki_services: Any) -> None:
    policy = SigningPolicy(trust_roots=(lab_pki.cert("root"),))
    with pytest.raises(SigningError, match=r"is revoked .*key_compromise|is revoked"):
        Sealer.from_pkcs12(lab_pki.p12("mallory", PASSPHRASE), PASSPHRASE, policy=policy)
    # the same check passes for a certificate in good standing
    Sealer.from_pkcs12(lab_pki.p12("alice", PASSPHRASE), PASSPHRASE, policy=policy)


def test_rsassa_pss_and_pem_keys(
    lab_pki: LabPKI, lab: Settings, lab_verifier: Verifier, pki_services: Any
) -> None:
    from .test_sign import _pdf

    policy = SigningPolicy(trust_roots=(lab_pki.cert("root"),), pss=True)
    sealer = Sealer.from_pem(
        lab_pki.key_path("alice"), lab_pki.pem("alice"), [lab_pki.pem("root")], policy=policy
    )
    report = lab_verifier.verify_pdf(sealer.sign(_pdf()))
    # not in the ledger, but the signature itself is judged fully
    assert report.verdict is Verdict.NOT_IN_LEDGER, report.reasons
    assert report.signatures[0].algorithm == "sha256 / rsassa_pss"
    assert report.signatures[0].valid


def test_pem_key_must_match_its_certificate(lab_pki: LabPKI) -> None:
    with pytest.raises(SigningError, match="does not belong to"):
        Sealer.from_pem(lab_pki.key_path("bob"), lab_pki.pem("alice"))


# -- visible signatures ---------------------------------------------------------------------


def _red_seal(path: Path) -> Path:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((8, 8, 192, 192), outline=(220, 0, 0, 255), width=14)
    img.save(path)
    return path


def _widget(data: bytes, field: str) -> Any:
    reader = PdfFileReader(BytesIO(data))
    for ref in reader.root["/AcroForm"]["/Fields"]:
        fld = ref.get_object()
        if fld["/T"] == field:
            return fld
    raise AssertionError(f"no field {field}")


def _pixels(pdf: Path, rect: Any, tmp_path: Path, page: int = 0) -> list[tuple[int, int, int]]:
    from PIL import Image

    first = str(page + 1)
    subprocess.run(
        ["pdftoppm", "-r", "144", "-png", "-f", first, "-l", first, str(pdf), str(tmp_path / "p")],
        check=True,
    )
    img = Image.open(next(tmp_path.glob("p*.png"))).convert("RGB")
    x1, y1, x2, y2 = (float(v) * 2 for v in rect)  # 144 dpi: 2 pixels per point
    h = img.height
    crop = img.crop((int(x1), int(h - y2), int(x2), int(h - y1)))
    crop.save(tmp_path / "box.png")
    return [crop.getpixel((x, y)) for y in range(crop.height) for x in range(crop.width)]


def test_visible_signature_over_the_signers_name(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, renderer: Any, tmp_path: Path
) -> None:
    # signed by the head printed under the signature: Bob, "Lê Hoàng Phúc"
    settings = lab.replace(
        signing_seal_image=_red_seal(tmp_path / "seal.png"),
        signing_pkcs12=lab_pki.p12("bob", PASSPHRASE),
    )
    with lab_pki.services():
        sealer = Sealer.from_settings(settings, PASSPHRASE, level="B-B")
    issuer = Issuer(
        settings,
        ledger=lab_ledger,
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path,
        renderer=renderer,
    )
    cert = _cert("verification.json", "visible-1")
    done = issuer.issue(cert)
    data = done.path.read_bytes()
    field = _widget(data, "Signature1")
    x1, y1, x2, y2 = (float(v) for v in field["/Rect"])
    assert x2 - x1 > 100 and 80 < y2 - y1 < 100  # the 31 mm the template leaves
    assert str(field["/TU"]) == "Thủ trưởng đơn vị / Head of organisation"
    # the name printed under it: the head's, right below the box
    page, runs = __import__("certissuer.sign", fromlist=["find_text"]).find_text(data)
    (name,) = [r for r in runs if r.text.strip() == cert.head.name]
    assert x1 < name.x < x2 and 0 < y1 - name.y < 15
    # what the box shows: drawn (dark text, the red seal), fonts embedded
    pixels = _pixels(done.path, field["/Rect"], tmp_path, page)
    assert sum(1 for r, g, b in pixels if r > 180 and g < 80 and b < 80) > 50  # the seal
    assert sum(1 for r, g, b in pixels if r < 90 and g < 90 and b < 120) > 50  # the text
    fonts = subprocess.run(["pdffonts", str(done.path)], capture_output=True, text=True).stdout
    assert "BeVietnamPro-SemiBold" in fonts  # the signature's font, embedded
    assert all(line.split()[-5] == "yes" for line in fonts.splitlines()[2:]), fonts
    stream = field["/AP"]["/N"].get_object()
    assert stream["/Resources"]["/XObject"]  # the painted stamp
    assert Verifier.from_settings(settings, ledger=lab_ledger).verify_pdf(data).ok


def test_invisible_when_the_name_is_not_printed(
    lab: Settings, lab_pki: LabPKI, tmp_path: Path
) -> None:
    from certissuer.sign import SignatureSlot

    from .test_sign import _pdf

    policy = policy_from_settings(lab.replace(signing_revocation_check=False))
    sealer = Sealer.from_pkcs12(lab.signing_pkcs12, PASSPHRASE, policy=policy)  # type: ignore[arg-type]
    data = sealer.sign(_pdf(), slot=SignatureSlot("Signature1", "x", "Nobody Here"))
    rect = [float(v) for v in _widget(data, "Signature1")["/Rect"]]
    assert rect == [0, 0, 0, 0]


# -- two signers -------------------------------------------------------------------------------


@pytest.fixture
def two_signer(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, renderer: Any, tmp_path: Path
) -> Iterator[tuple[Settings, Path]]:
    """A verification certificate signed by the verifier (Alice), awaiting the head (Bob)."""
    settings = lab.replace(signing_approval=True, signing_level="B-T")
    with lab_pki.services():
        issuer = Issuer(
            settings,
            ledger=lab_ledger,
            sealer=Sealer.from_settings(settings, PASSPHRASE),
            token_key=load_token_key(settings),
            out_dir=tmp_path,
            renderer=renderer,
        )
        done = issuer.issue(_cert("verification.json", f"two-{tmp_path.name}"))
        yield settings, done.path


def test_two_signers_end_to_end(
    two_signer: tuple[Settings, Path], lab_ledger: Ledger, lab_pki: LabPKI
) -> None:
    from certissuer.approve import approve_pdf

    settings, path = two_signer
    verifier = Verifier.from_settings(settings, ledger=lab_ledger)
    issued_bytes = path.read_bytes()
    first = verifier.verify_pdf(issued_bytes)
    assert first.verdict is Verdict.AWAITING_APPROVAL and not first.ok, first.reasons
    assert first.signatures[0].kind == "certification (fill_forms)"
    assert any("'Approval' is not signed yet" in r for r in first.reasons)

    head = settings.replace(signing_pkcs12=lab_pki.p12("bob", PASSPHRASE))
    with Sealer.from_settings(head, PASSPHRASE) as sealer:
        done = approve_pdf(
            path,
            sealer=sealer,
            verifier=verifier,
            location="Đồng Tháp",
            ledger_key=load_token_key(settings),
        )
    approved = path.read_bytes()
    assert approved.startswith(issued_bytes) and done.signer == "Lê Hoàng Phúc"
    report = verifier.verify_pdf(approved)
    assert report.verdict is Verdict.VALID, report.reasons
    first_sig, second_sig = report.signatures
    assert (
        first_sig.kind == "certification (fill_forms)"
        and first_sig.signer.find("Phạm Minh Tuấn") > 0
    )
    assert first_sig.modification == "signature fields filled"
    assert second_sig.kind == "signature" and "Lê Hoàng Phúc" in second_sig.signer
    assert second_sig.level == "B-T" and second_sig.coverage == "the entire file"
    assert report.number == first.number  # found in the ledger through the issued revision
    assert not any("not signed yet" in r for r in report.reasons)
    # the approval box sits over the head's name, as reserved at issue
    assert float(_widget(approved, "Approval")["/Rect"][2]) > 300

    with (
        pytest.raises(SigningError, match="no empty signature field 'Approval'"),
        Sealer.from_settings(head, PASSPHRASE) as sealer,
    ):
        approve_pdf(path, sealer=sealer, verifier=verifier)


def test_approval_refuses_a_certificate_that_does_not_verify(
    two_signer: tuple[Settings, Path], lab_ledger: Ledger, lab_pki: LabPKI, tmp_path: Path
) -> None:
    from certissuer.approve import approve_pdf

    settings, path = two_signer
    data = bytearray(path.read_bytes())
    at = data.index(b"stream") + 20
    data[at] ^= 1
    forged = tmp_path / "forged.pdf"
    forged.write_bytes(bytes(data))
    verifier = Verifier.from_settings(settings, ledger=lab_ledger)
    head = settings.replace(signing_pkcs12=lab_pki.p12("bob", PASSPHRASE))
    with (
        Sealer.from_settings(head, PASSPHRASE) as sealer,
        pytest.raises(VerificationFailed, match="will not approve"),
    ):
        approve_pdf(forged, sealer=sealer, verifier=verifier)
    assert forged.read_bytes() == bytes(data)


def test_cli_sign_approve_and_verify_show_each_signature(
    two_signer: tuple[Settings, Path], lab_pki: LabPKI, tmp_path: Path, monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app

    settings, path = two_signer
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f"""
[lab]
code = "{settings.lab_code}"
[signing]
pkcs12 = "{lab_pki.p12("bob", PASSPHRASE)}"
trust_roots = ["{lab_pki.pem("root")}"]
tsa_url = "{lab_pki.tsa_url}"
level = "B-T"
[token]
key = "{settings.token_key}"
[ledger]
url = "{settings.ledger_url}"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(toml), "sign-approve", str(path)])
    assert result.exit_code == 0, result.output
    assert "approved KĐ-" in result.output and "Lê Hoàng Phúc" in result.output
    result = runner.invoke(app, ["--config", str(toml), "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "HỢP LỆ / VALID" in result.output
    assert "Chữ ký chứng thực / certification (fill_forms) 1 (Signature1)" in result.output
    assert "Người ký / Signer: Common Name: Lê Hoàng Phúc" in result.output
    assert "Mức PAdES / PAdES level: B-T" in result.output
    assert "(dấu thời gian tin cậy / trusted timestamp)" in result.output
    result = runner.invoke(app, ["--config", str(toml), "verify", "--json", str(path)])
    data = json.loads(result.output)
    assert [s["field_name"] for s in data["signatures"]] == ["Signature1", "Approval"]
    assert data["signatures"][1]["level"] == "B-T" and data["signatures"][1]["time_trusted"]


def test_cli_issue_level_option(
    lab: Settings, lab_pki: LabPKI, tmp_path: Path, monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app

    toml = tmp_path / "lab.toml"
    toml.write_text(
        f"""
[lab]
code = "CLI1"
[signing]
pkcs12 = "{lab.signing_pkcs12}"
trust_roots = ["{lab_pki.pem("root")}"]
tsa_url = "{lab_pki.tsa_url}"
[token]
key = "{lab.token_key}"
[ledger]
url = "sqlite:///{tmp_path / "l.db"}"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    record = load_json(SAMPLES / "calibration.json")
    record["signatory"]["name"] = ALICE  # who signs with the profile's key
    results = tmp_path / "calibration.json"
    results.write_text(json.dumps(record, ensure_ascii=False, default=str), encoding="utf-8")
    runner = CliRunner()
    with lab_pki.services():
        result = runner.invoke(
            app,
            [
                "--config",
                str(toml),
                "issue",
                "--level",
                "B-LTA",
                "--out",
                str(tmp_path / "o"),
                str(results),
            ],
        )
    assert result.exit_code == 0, result.output
    (pdf,) = (tmp_path / "o").glob("*.pdf")
    result = runner.invoke(app, ["--config", str(toml), "verify", "--json", str(pdf)])
    report = json.loads(result.output)
    assert report["verdict"] == "valid", report
    assert [s["level"] for s in report["signatures"]] == ["B-LTA", None]
    later = (datetime.now(UTC) + timedelta(days=365 * 6)).strftime("%Y-%m-%dT%H:%M:%S")
    result = runner.invoke(app, ["--config", str(toml), "verify", "--at", later, str(pdf)])
    assert result.exit_code == 0, result.output


# -- an ECDSA signer at B-LTA ----------------------------------------------------------------


class _SecondPerCall(datetime):
    """pyHanko's XMP clock, one second later at each call: every revision of the file then
    refreshes xmp:ModifyDate, as it does whenever a revision is written in a later second."""

    calls = 0

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        cls.calls += 1
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=cls.calls)


@pytest.fixture(scope="module")
def ecdsa_lta(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, renderer: Any, tmp_path_factory: Any
) -> tuple[Settings, Path]:
    """A calibration certificate signed at B-LTA by Bob (ECDSA P-256, from a PKCS#12 file)."""
    from pyhanko.pdf_utils.metadata import xmp_xml

    settings = lab.replace(signing_pkcs12=lab_pki.p12("bob", PASSPHRASE))
    out = tmp_path_factory.mktemp("ecdsa-lta")
    with pytest.MonkeyPatch.context() as patch, lab_pki.services():
        patch.setattr(xmp_xml, "datetime", _SecondPerCall)
        issuer = Issuer(
            settings,
            ledger=lab_ledger,
            sealer=Sealer.from_settings(settings, PASSPHRASE, level="B-LTA"),
            token_key=load_token_key(settings),
            out_dir=out,
            renderer=renderer,
        )
        done = issuer.issue(_cert("calibration.json", "ecdsa-lta"))
    return settings, done.path


def _xmp_dates(data: bytes) -> list[bytes]:
    """xmp:ModifyDate of each version of the XMP packet in the file, in file order."""
    import re

    return re.findall(rb'xmp:ModifyDate="([^"]+)"', data)


def test_ecdsa_b_lta_with_refreshed_xmp_is_valid(
    ecdsa_lta: tuple[Settings, Path], lab_ledger: Ledger
) -> None:
    """An ECDSA signature makes the file PDF 2.0 (ISO/TS 32002), so pyHanko writes XMP
    metadata and refreshes its ModifyDate in the DSS and document timestamp revisions; that
    refresh is not a change to what was signed (it was judged ALTERED, "annotation(s) /Widget
    were added", whenever those revisions fell in a later second than the signature)."""
    settings, path = ecdsa_lta
    data = path.read_bytes()
    dates = _xmp_dates(data)
    assert len(dates) >= 3 and len(set(dates)) == len(dates), dates  # refreshed each revision
    report = Verifier.from_settings(settings, ledger=lab_ledger).verify_pdf(data)
    assert report.verdict is Verdict.VALID, report.reasons
    sig, stamp = report.signatures
    assert (sig.level, sig.algorithm, sig.trusted) == ("B-LTA", "sha256 / sha256_ecdsa", True)
    assert sig.modification == "validation data and document timestamps only"
    assert stamp.kind == "document timestamp" and stamp.valid


def test_ecdsa_b_lta_validates_in_pyhanko_and_pdfsig(
    ecdsa_lta: tuple[Settings, Path], lab_pki: LabPKI
) -> None:
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    _, path = ecdsa_lta
    reader = PdfFileReader(BytesIO(path.read_bytes()))
    context = ValidationContext(trust_roots=[lab_pki.cert("root")], allow_fetching=False)
    status = validate_pdf_signature(reader.embedded_signatures[0], context)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.modification_level is ModificationLevel.LTA_UPDATES
    result = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
    assert "Signature #1" in result.stdout, result.stdout
    first = result.stdout.split("Signature #2")[0]
    assert "Signature Validation: Signature is Valid." in first, result.stdout
    assert "ECDSA" in first or "Signature Type: ETSI.CAdES.detached" in first, result.stdout


def test_an_xmp_change_beyond_the_date_after_signing_is_altered(
    ecdsa_lta: tuple[Settings, Path], lab_ledger: Ledger
) -> None:
    """Only the modification date may be refreshed: a new title in the XMP, written with
    validation data after signing, still makes the file ALTERED."""
    from . import _forge

    settings, path = ecdsa_lta
    data = path.read_bytes()
    reader = _forge.reader(data)
    number = reader.root.raw_get("/Metadata").idnum
    packet = bytes(reader.root["/Metadata"].data)
    forged = packet.replace(
        b'rdf:about=""/>',
        b'rdf:about=""><dc:title xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Alt>'
        b'<rdf:li xml:lang="x-default">PASS</rdf:li></rdf:Alt></dc:title></rdf:Description>',
    )
    assert forged != packet
    dss = reader.root.raw_get("/DSS")
    xml = b"/Type /Metadata /Subtype /XML "
    revision = {dss.idnum: _forge.serialise(dss.get_object())}  # the DSS written again
    verifier = Verifier.from_settings(settings, ledger=lab_ledger)
    # the control: the packet rewritten as it was, with a later date, passes
    later = packet.replace(_xmp_dates(packet)[0], b"2031-01-01T00:00:00+00:00")
    same = _forge.append_revision(data, {**revision, number: _forge.stream(later, xml)})
    check = verifier.verify_pdf(same)  # the ledger notices the appended bytes, nothing else
    assert all(s.valid for s in check.signatures), check.reasons
    assert "differs from the registered copy" in check.reasons[-1], check.reasons
    changed = _forge.append_revision(data, {**revision, number: _forge.stream(forged, xml)})
    report = verifier.verify_pdf(changed)
    assert report.verdict is Verdict.ALTERED, report.reasons
    assert not report.signatures[0].valid
    assert "the document was changed after it was signed" in report.reasons[-1], report.reasons
