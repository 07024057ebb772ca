"""A QR code made for paper: it survives a photocopy, and older QR codes keep verifying (issue 18).

The certificate's QR code holds an upper-case URL with a base32 token, all in the QR code's
alphanumeric mode, printed at `QR_MODULE_MM` per module. These tests render an issued
certificate with poppler, photocopy it with Pillow (rotation, blur, 150 dpi, noise, JPEG) and
read it back with zbar, as an inspector's phone would.
"""

from __future__ import annotations

import base64
import io
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageFilter

from certissuer.config import Settings
from certissuer.errors import TokenError
from certissuer.render._z3c import qr_fitted
from certissuer.render.renderer import QR_MODULE_MM
from certissuer.token import read_token, token_from_url, verification_url
from certissuer.verify import Verdict

pytestmark = pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("zbarimg") and shutil.which("pdfimages")),
    reason="needs poppler-utils (pdftoppm, pdfimages) and zbar-tools (zbarimg)",
)

ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")
"""The QR code's alphanumeric character set (ISO/IEC 18004 §7.4.4)."""


def page_one(pdf: bytes, dpi: int = 300) -> Image.Image:
    done = subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", str(dpi), "-gray", "-png"],
        input=pdf,
        capture_output=True,
        check=True,
    )
    return Image.open(io.BytesIO(done.stdout))


def photocopy(page: Image.Image, dpi: int = 150, seed: int = 18) -> bytes:
    """`page` (300 dpi) as a poor copy: 2.5° rotation, blur, scanned at `dpi`, noise, JPEG 40."""
    img = page.convert("L").rotate(2.5, Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    img = img.filter(ImageFilter.GaussianBlur(1))
    img = img.resize((img.width * dpi // 300, img.height * dpi // 300), Image.Resampling.BILINEAR)
    noise = Image.frombytes("L", img.size, random.Random(seed).randbytes(img.width * img.height))
    img = ImageChops.add(img, noise.point(lambda v: v * 48 // 255), offset=-24)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=40)
    return out.getvalue()


def zbar(image: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "scan.jpg"
    path.write_bytes(image)
    done = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in done.stdout.splitlines() if line]


def base64url(token: str) -> str:
    """The same token bytes spelled as tokens were before base32 (an older certificate's)."""
    raw = base64.b32decode(token + "=" * (-len(token) % 8))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@pytest.fixture
def issued(issuer: Any, ver_cert: Any) -> Any:
    return issuer.issue(ver_cert)


def test_a_photocopied_certificate_scans_and_its_token_verifies(
    issued: Any, verifier: Any, tmp_path: Path
) -> None:
    page = page_one(issued.path.read_bytes())
    assert zbar(photocopy(page), tmp_path) == [issued.url]
    assert verifier.verify_url(issued.url).verdict is Verdict.VALID


def test_the_new_qr_code_survives_worse_copies_than_the_old_one(
    issued: Any, settings: Settings, ver_cert: Any, tmp_path: Path
) -> None:
    # The same certificate as printed before: base64url token, lower-case URL (byte mode,
    # version 9), 0.5 mm per module. At 150 dpi it decoded only now and then, while the new
    # QR code does on every copy; scanned at 120 dpi the old one never does, the new one on
    # most copies (each issue signs a new token, so the symbol, and its luck, changes).
    from certissuer.render import Renderer

    old_url = f"https://verify.test.invalid/v/{base64url(token_from_url(issued.url))}"
    old_pdf = Renderer(qr_module_mm=0.5).render_pdf(
        ver_cert, number=issued.number, issued=ver_cert.verification_date, qr_url=old_url,
        settings=settings,
    )  # fmt: skip
    old, new = page_one(old_pdf), page_one(issued.path.read_bytes())
    assert zbar(photocopy(old, dpi=300), tmp_path) == [old_url]  # it is there to be read
    new_at_120 = 0
    for seed in (1, 2, 3):
        assert zbar(photocopy(new, dpi=150, seed=seed), tmp_path) == [issued.url], seed
        assert zbar(photocopy(old, dpi=120, seed=seed), tmp_path) == [], seed
        new_at_120 += zbar(photocopy(new, dpi=120, seed=seed), tmp_path) == [issued.url]
    assert new_at_120 >= 1


def test_the_qr_code_is_alphanumeric_version_8_at_0_65_mm(issued: Any) -> None:
    url = issued.url
    assert url.startswith("HTTPS://VERIFY.TEST.INVALID/V/A")
    assert ALPHANUMERIC.fullmatch(url), url
    qr = qr_fitted(url)
    assert [chunk.mode for chunk in qr.data_list] == [2]  # qrcode's MODE_ALPHA_NUM
    assert qr.version == 8 and qr.error_correction == 0  # qrcode's ERROR_CORRECT_M

    # As printed: the PNG has 4 pixels a module and a 4-module quiet zone.
    listing = subprocess.run(
        ["pdfimages", "-f", "1", "-l", "1", "-list", str(issued.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[2:]
    side = 4 * (4 * qr.version + 17 + 2 * 4)
    rows = [line.split() for line in listing if line.split()[3:5] == [str(side), str(side)]]
    assert len(rows) == 1, listing
    ppi = int(rows[0][12])
    module_mm = 4 / ppi * 25.4
    assert module_mm == pytest.approx(QR_MODULE_MM, abs=0.01) and module_mm >= 0.6
    assert (4 * qr.version + 17) * module_mm == pytest.approx(31.9, abs=0.2)


def test_an_older_base64url_token_still_verifies(issued: Any, verifier: Any) -> None:
    token = token_from_url(issued.url)
    old = base64url(token)
    assert old != token and re.match("A[Q-Za-f]", old)
    keys = verifier.token_keys
    assert read_token(old, keys) == read_token(token, keys)
    for url in (f"https://verify.test.invalid/v/{old}", old):
        report = verifier.verify_url(url)
        assert report.verdict is Verdict.VALID and report.number == issued.number, url

    # `verify --qr` with an older URL: tests/test_cli_verify.py


def test_base32_and_base64url_are_told_apart_by_their_first_characters(issued: Any) -> None:
    token = token_from_url(issued.url)
    assert re.fullmatch(r"A[E-H][A-Z2-7]+", token), token
    assert re.fullmatch(r"A[Q-Za-f][A-Za-z0-9_-]+", base64url(token))
    # A base32 token is upper case, as printed: any other spelling is refused by name.
    with pytest.raises(TokenError, match="only A-Z and 2-7"):
        read_token(token[:2] + token[2:].lower(), [])
    with pytest.raises(TokenError, match="'=' padding"):
        read_token(token + "=" * (-len(token) % 8 or 8), [])


def test_the_verification_url_is_upper_case_where_case_does_not_matter() -> None:
    assert (
        verification_url("https://verify.example.vn/", "AEAB") == "HTTPS://VERIFY.EXAMPLE.VN/V/AEAB"
    )
    # A path of the lab's own is case-sensitive on its server: kept as written.
    assert (
        verification_url("https://lab.example.vn:8443/kiemdinh", "AEAB")
        == "HTTPS://LAB.EXAMPLE.VN:8443/kiemdinh/V/AEAB"
    )
    for url in ("HTTPS://X.VN/V/AEAB", "https://x.vn/v/AEAB", "https://x.vn/p/V/AEAB"):
        assert token_from_url(url) == "AEAB"
    with pytest.raises(TokenError, match="expected '<base>/V/<token>'"):
        token_from_url("https://x.vn/W/AEAB")


def test_the_page_answers_the_upper_case_url_and_the_old_one(
    issued: Any, settings: Settings, ledger: Any
) -> None:
    from fastapi.testclient import TestClient

    from certissuer.web import create_app

    token = token_from_url(issued.url)
    web = settings.replace(web_rate_limit=0, web_pdf_workers=1, web_allow_download=True)
    with TestClient(create_app(web, ledger=ledger)) as client:
        for path in (f"/V/{token}", f"/v/{token}", f"/v/{base64url(token)}"):
            html = client.get(path).text
            assert 'data-verdict="valid"' in html and issued.number in html, path
        # The download link is relative: under /V/ it must lead to the PDF too.
        pdf = client.get(f"/V/{token}/pdf")
        assert pdf.status_code == 200 and pdf.content == issued.path.read_bytes()
        assert client.get(f"/V/{token[:-4]}").text.count('data-verdict="altered"') == 1
