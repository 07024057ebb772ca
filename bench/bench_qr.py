"""Benchmark: does the certificate's QR code survive a photocopy, and down to what resolution?

Renders page 1 of the sample verification certificate twice: as printed before issue 18 (the
base64url token in a lower-case URL, byte mode, 0.5 mm per module) and as printed now (base32
token in an upper-case URL, alphanumeric mode, `QR_MODULE_MM` per module). Each page is rendered
at 300 dpi with pdftoppm, then photocopied: rotated 2.5°, blurred (Gaussian, radius 1), scaled
down to the scan resolution, given noise and saved as JPEG at quality 40; zbarimg decodes it.
Prints, for each, the QR version, modules, module and symbol size in mm, and the smallest
resolution (of 300, 200, 150, 120, 100, 75 dpi) at which the copy still decodes to the URL.

    python bench/bench_qr.py

Needs pdftoppm (poppler-utils) and zbarimg (zbar-tools).
"""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "keys.example"
SAMPLE = ROOT / "samples" / "verification.json"
BASE = "https://kiemdinh.example.vn"
NUMBER = "KĐ-2026-000123"
DPIS = (300, 200, 150, 120, 100, 75)


def photocopy(page: Image.Image, dpi: int, seed: int = 18) -> bytes:
    """`page` (a 300 dpi greyscale render) as a poor copy scanned at `dpi`: a JPEG."""
    img = page.convert("L").rotate(
        2.5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255
    )
    img = img.filter(ImageFilter.GaussianBlur(1))
    if dpi != 300:
        size = (round(img.width * dpi / 300), round(img.height * dpi / 300))
        img = img.resize(size, Image.Resampling.BILINEAR)
    rng = random.Random(seed)
    noise = Image.frombytes("L", img.size, rng.randbytes(img.width * img.height))
    noise = noise.point(lambda v: v * 48 // 255)  # uniform, -24..+24 grey levels
    img = ImageChops.add(img, noise, offset=-24)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=40)
    return out.getvalue()


def zbar(jpeg: bytes) -> list[str]:
    """The QR codes zbarimg reads in `jpeg`."""
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        f.write(jpeg)
        f.flush()
        done = subprocess.run(
            ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", f.name],
            capture_output=True,
            text=True,
            check=False,
        )
    return [line for line in done.stdout.splitlines() if line]


def page_one(pdf: bytes, dpi: int = 300) -> Image.Image:
    """Page 1 of `pdf` rendered by pdftoppm at `dpi`, greyscale."""
    done = subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", str(dpi), "-gray", "-png"],
        input=pdf,
        capture_output=True,
        check=True,
    )
    return Image.open(io.BytesIO(done.stdout))


def _cert() -> Any:
    from certissuer.model import parse_certificate

    data = json.loads(SAMPLE.read_text(encoding="utf-8"), parse_float=Decimal)
    return parse_certificate(data)


def _settings() -> Any:
    from certissuer.config import Settings

    return Settings(lab_code="BENCH", token_key=KEYS / "token-key.pem", token_url_base=BASE)


def measure(label: str, url: str, module_mm: float) -> None:
    from certissuer.render import Renderer
    from certissuer.render._z3c import qr_fitted

    qr = qr_fitted(url)
    modes = sorted({{1: "numeric", 2: "alphanumeric", 4: "byte"}[d.mode] for d in qr.data_list})
    modules = 4 * qr.version + 17
    pdf = Renderer(qr_module_mm=module_mm).render_pdf(
        _cert(), number=NUMBER, issued=date(2026, 11, 27), qr_url=url, settings=_settings()
    )
    page = page_one(pdf)
    decoded = [dpi for dpi in DPIS if url in zbar(photocopy(page, dpi))]
    smallest = f"{min(decoded)} dpi" if decoded else "none"
    print(
        f"{label:6} {len(url):3} chars, {'+'.join(modes):12} version {qr.version:2}, "
        f"{modules} modules x {module_mm:.2f} mm = {modules * module_mm:.1f} mm "
        f"({(modules + 8) * module_mm:.1f} mm with the quiet zone); "
        f"degraded copy decodes at {', '.join(map(str, decoded)) or 'no'} dpi; "
        f"smallest {smallest}"
    )


def main() -> None:
    from certissuer.render.renderer import QR_MODULE_MM
    from certissuer.token import TokenKey, make_token, verification_url

    key = TokenKey.load(KEYS / "token-key.pem")
    token = make_token(key, number=NUMBER, issued=date(2026, 11, 27), digest="ab" * 32)
    raw = base64.b32decode(token + "=" * (-len(token) % 8))
    old_token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    measure("before", f"{BASE}/v/{old_token}", 0.5)
    measure("after", verification_url(BASE, token), QR_MODULE_MM)


if __name__ == "__main__":
    main()
