"""The visible signature measured on the certificate: text sizes and positions from the
widget's appearance stream, the seal's width and the ink on a poppler render.

Issues the shipped samples with the demo profile and keys (as `make demo` does), with a seal
and a signature image, then reads what a reader draws: every text of the appearance at 6 pt or
more, no text on an image, all of it inside its box and the box inside the page margins, the
seal as wide as configured, and the signature still valid.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.sign import MIN_FONT_SIZE, StampPainter

from .conftest import ROOT, SAMPLES

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="needs poppler-utils (.ci/run installs them)"
)

MM = 72 / 25.4
MARGIN = 18 * MM  # the shipped templates' left and right margins
SEAL_MM = 30.0
SEAL_PX = (600, 600)  # the test seal's pixel size, to tell it from the signature image
LONG_NAME = (
    "Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Đồng Tháp, Chi nhánh Kiểm định "
    "Phương tiện đo Khu vực Đồng bằng sông Cửu Long (DEMO)"
)


def _seal(path: Path) -> Path:
    img = Image.new("RGBA", SEAL_PX, (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((4, 4, 596, 596), outline=(220, 20, 20, 255), width=30)
    draw.ellipse((120, 120, 480, 480), outline=(220, 20, 20, 255), width=12)
    draw.regular_polygon((300, 300, 90), 5, fill=(220, 20, 20, 255))
    img.save(path)
    return path


def _signature(path: Path) -> Path:
    img = Image.new("RGBA", (500, 200), (0, 0, 0, 0))
    points = [(20, 150), (120, 40), (180, 160), (260, 50), (330, 150), (480, 60)]
    ImageDraw.Draw(img).line(points, fill=(20, 30, 140, 255), width=10)
    img.save(path)
    return path


def _profile(tmp: Path, *, name_vi: str | None = None, approval: bool = False) -> Path:
    """The demo profile with absolute key paths, a seal, a signature image, a seal size."""
    text = (SAMPLES / "certissuer.toml").read_text(encoding="utf-8")
    text = text.replace('"../keys.example/', f'"{ROOT / "keys.example"}/')
    if name_vi:
        text = text.replace(
            'name_vi = "Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Đồng Tháp (DEMO)"',
            f'name_vi = "{name_vi}"',
        )
        assert name_vi in text
        # two header lines for the name: the address lines make room
        text = "\n".join(
            line for line in text.splitlines() if not line.startswith(("address_vi", "address_en"))
        )
    extra = (
        f'seal_image = "{_seal(tmp / "seal.png")}"\n'
        f'signature_image = "{_signature(tmp / "signature.png")}"\n'
        f"seal_size_mm = {SEAL_MM}\n" + ("approval = true\n" if approval else "")
    )
    text = text.replace('trust_roots = ["', extra + 'trust_roots = ["', 1)
    if approval:  # the verifier signs first, with their own key
        verifier = ROOT / "keys.example" / "pham-minh-tuan.p12"
        text += (
            f'\n[[people]]\nname = "Phạm Minh Tuấn"\nroles = ["verifier"]\npkcs12 = "{verifier}"\n'
        )
    path = tmp / "certissuer.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _issue(tmp: Path, profile: Path, *records: str) -> list[Path]:
    env = {
        "CERTISSUER_P12_PASSPHRASE": "demo",
        "CERTISSUER_LEDGER_URL": f"sqlite:///{tmp / 'ledger.db'}",
    }
    args = ["--config", str(profile), "issue", "--json", "--out", str(tmp)]
    result = CliRunner().invoke(app, [*args, *(str(SAMPLES / r) for r in records)], env=env)
    assert result.exit_code == 0, result.stderr
    return [Path(i["entry"]["pdf_path"]) for i in json.loads(result.stdout)["issued"]]


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The samples with the demo profile, and a verification for a lab with a long name."""
    tmp = tmp_path_factory.mktemp("appearance")
    cal, ver = _issue(tmp, _profile(tmp), "calibration.json", "verification.json")
    long_dir = tmp_path_factory.mktemp("long-name")
    (long_ver,) = _issue(long_dir, _profile(long_dir, name_vi=LONG_NAME), "verification.json")
    two_dir = tmp_path_factory.mktemp("approval")
    (two,) = _issue(two_dir, _profile(two_dir, approval=True), "verification.json")
    return {"calibration": cal, "verification": ver, "long": long_ver, "approval": two}


# -- reading the appearance stream -------------------------------------------------------------


@dataclass(frozen=True)
class Drawn:
    """Something the appearance draws, in page coordinates (pt)."""

    kind: str  # "text" or "image"
    x1: float
    y1: float
    x2: float
    y2: float
    size: float = 0.0  # text: the font size as drawn
    text: str = ""
    pixels: tuple[int, int] = (0, 0)  # image: its pixel size

    def meets(self, other: Drawn) -> bool:
        return (
            self.x1 < other.x2 and other.x1 < self.x2 and self.y1 < other.y2 and other.y1 < self.y2
        )


def _mul(a: list[float], b: list[float]) -> list[float]:
    return [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]


def _apply(m: list[float], x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


_PAIR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")


def _to_unicode(font: Any) -> dict[int, str]:
    """The one-byte codes of a reportlab font subset, as text (its ToUnicode bfchar pairs)."""
    cmap = font.ToUnicode.read_bytes()
    return {
        int(src, 16): bytes.fromhex(dst.decode()).decode("utf-16-be")
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S)
        for src, dst in _PAIR.findall(block)
    }


def _walk(xobject: Any, ctm: list[float], out: list[Drawn]) -> None:
    """Everything the form `xobject` draws under `ctm`: text runs (with the Tf size times the
    text and graphics scale) and images, each with its bounding box."""
    if "/Matrix" in xobject:
        ctm = _mul([float(v) for v in xobject.Matrix], ctm)
    resources = xobject.get("/Resources") or {}
    fonts = resources.get("/Font") or {}
    xobjects = resources.get("/XObject") or {}
    stack: list[list[float]] = []
    tm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    font: Any = None
    size = leading = 0.0
    for op in pikepdf.parse_content_stream(xobject):
        name, args = str(op.operator), list(op.operands)
        if name == "q":
            stack.append(ctm)
        elif name == "Q":
            ctm = stack.pop()
        elif name == "cm":
            ctm = _mul([float(v) for v in args], ctm)
        elif name == "BT":
            tm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        elif name == "Tm":
            tm = [float(v) for v in args]
        elif name in ("Td", "TD"):
            tm = _mul([1, 0, 0, 1, float(args[0]), float(args[1])], tm)
            leading = -float(args[1]) if name == "TD" else leading
        elif name == "TL":
            leading = float(args[0])
        elif name == "T*":
            tm = _mul([1, 0, 0, 1, 0, -leading], tm)
        elif name == "Tf":
            font, size = fonts[str(args[0])], float(args[1])
        elif name in ("Tj", "TJ", "'", '"'):
            if name in ("'", '"'):
                tm = _mul([1, 0, 0, 1, 0, -leading], tm)
            parts = list(args[0]) if name == "TJ" else [args[-1]]
            raw = b"".join(bytes(p) for p in parts if isinstance(p, pikepdf.String))
            first = int(font.FirstChar)
            widths = [float(w) for w in font.Widths]
            width = sum(widths[b - first] for b in raw) * size / 1000
            m = _mul(tm, ctm)
            scale = math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))
            x1, y1 = _apply(m, 0, -0.25 * size)
            x2, y2 = _apply(m, width, 0.95 * size)
            chars = _to_unicode(font)
            text = "".join(chars.get(b, chr(b)) for b in raw)
            out.append(Drawn("text", x1, y1, x2, y2, size=size * scale, text=text))
        elif name == "Do":
            obj = xobjects[str(args[0])]
            if obj.Subtype == "/Image":
                (x1, y1), (x2, y2) = _apply(ctm, 0, 0), _apply(ctm, 1, 1)
                pixels = (int(obj.Width), int(obj.Height))
                out.append(
                    Drawn(
                        "image", min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), pixels=pixels
                    )
                )
            else:
                _walk(obj, ctm, out)


@dataclass(frozen=True)
class Widget:
    page: int
    rect: tuple[float, float, float, float]
    page_size: tuple[float, float]
    drawn: list[Drawn]


def _widget(pdf: Path, field: str = "Signature1") -> Widget:
    with pikepdf.open(pdf) as doc:
        for index, page in enumerate(doc.pages):
            for annot in page.obj.get("/Annots") or []:
                if str(annot.get("/T", "")) != field:
                    continue
                rect = tuple(float(v) for v in annot.Rect)
                box = [float(v) for v in page.mediabox]
                drawn: list[Drawn] = []
                if "/AP" not in annot:  # an empty field, not signed yet
                    return Widget(index, rect, (box[2], box[3]), drawn)  # type: ignore[arg-type]
                ap = annot.AP.N
                # ISO 32000 12.5.5: the form's BBox, transformed by its Matrix, is mapped
                # onto the annotation's Rect; pyHanko's matrix is the identity.
                bbox = [float(v) for v in ap.BBox]
                assert "/Matrix" not in ap or [float(v) for v in ap.Matrix] == [1, 0, 0, 1, 0, 0]
                sx = (rect[2] - rect[0]) / (bbox[2] - bbox[0])
                sy = (rect[3] - rect[1]) / (bbox[3] - bbox[1])
                ctm = [sx, 0.0, 0.0, sy, rect[0] - bbox[0] * sx, rect[1] - bbox[1] * sy]
                _walk(ap, ctm, drawn)
                return Widget(index, rect, (box[2], box[3]), drawn)  # type: ignore[arg-type]
    raise AssertionError(f"{pdf}: no widget {field}")


# -- the render --------------------------------------------------------------------------------


def _render(pdf: Path, page: int, tmp: Path) -> Image.Image:
    """Page `page` (from 0) rendered at 150 dpi by poppler."""
    stem = tmp / f"{pdf.stem}-p{page}"
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "150",
            "-png",
            "-singlefile",
            "-f",
            str(page + 1),
            "-l",
            str(page + 1),
            str(pdf),
            str(stem),
        ],
        check=True,
    )
    return Image.open(f"{stem}.png").convert("RGB")


PX = 150 / 72  # pixels per point at 150 dpi


def _ink(img: Image.Image, page_h: float, x1: float, y1: float, x2: float, y2: float) -> Any:
    """The bounding box (in pt, PDF coordinates) of non-white pixels inside the given area."""
    crop = img.crop(
        (round(x1 * PX), round((page_h - y2) * PX), round(x2 * PX), round((page_h - y1) * PX))
    )
    box = Image.eval(crop.convert("L"), lambda v: 255 if v < 230 else 0).getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    return (x1 + left / PX, y2 - bottom / PX, x1 + right / PX, y2 - top / PX)


def _red_extent(img: Image.Image, page_h: float, rect: tuple[float, ...]) -> float:
    """Width in mm of the red ink (the seal) inside `rect` on the render."""
    x1, y1, x2, y2 = rect
    crop = img.crop(
        (round(x1 * PX), round((page_h - y2) * PX), round(x2 * PX), round((page_h - y1) * PX))
    )
    red = [
        x
        for y in range(crop.height)
        for x in range(crop.width)
        if (p := crop.getpixel((x, y)))[0] > 170 and p[1] < 110 and p[2] < 110  # type: ignore[index]
    ]
    assert red, "no seal on the render"
    return (max(red) - min(red) + 1) / PX / MM


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["verification", "calibration", "long", "approval"])
def test_appearance_text_sizes_and_no_overlap(issued: dict[str, Path], which: str) -> None:
    widget = _widget(issued[which])
    texts = [d for d in widget.drawn if d.kind == "text"]
    images = [d for d in widget.drawn if d.kind == "image"]
    assert len(texts) >= 4 and len(images) == 2, widget.drawn
    assert min(t.size for t in texts) >= MIN_FONT_SIZE - 0.01, [(t.text, t.size) for t in texts]
    for text in texts:
        for image in images:
            assert not text.meets(image), (text, image)
    # the signing time (ISO 8601) and the signer are always there, whatever the room
    joined = " ".join(t.text for t in texts)
    # the person printed under the signature, whose key signed it (issue 17)
    assert ("Phạm Minh Tuấn" if which == "approval" else "Lê Hoàng Phúc") in joined
    assert any(t.text.startswith("20") and "T" in t.text and "+07:00" in t.text for t in texts)


@pytest.mark.parametrize("which", ["verification", "calibration", "long", "approval"])
def test_appearance_inside_its_box_and_the_margins(issued: dict[str, Path], which: str) -> None:
    widget = _widget(issued[which])
    x1, y1, x2, y2 = widget.rect
    page_w, _ = widget.page_size
    assert MARGIN - 0.5 <= x1 < x2 <= page_w - MARGIN + 0.5, widget.rect
    for d in widget.drawn:
        assert x1 - 0.5 <= d.x1 and d.x2 <= x2 + 0.5, (d, widget.rect)
        assert y1 - 0.5 <= d.y1 and d.y2 <= y2 + 0.5, (d, widget.rect)


@pytest.mark.parametrize("which", ["verification", "calibration", "long", "approval"])
def test_seal_drawn_at_its_size(issued: dict[str, Path], which: str) -> None:
    widget = _widget(issued[which])
    (seal,) = [d for d in widget.drawn if d.kind == "image" and d.pixels == SEAL_PX]
    (signature,) = [d for d in widget.drawn if d.kind == "image" and d.pixels != SEAL_PX]
    assert abs((seal.x2 - seal.x1) / MM - SEAL_MM) <= 1.0
    # over the signature image's left third (FORMS.md): it covers about a third of its width
    covered = (min(seal.x2, signature.x2) - max(seal.x1, signature.x1)) / (
        signature.x2 - signature.x1
    )
    assert 0.25 <= covered <= 0.45, covered
    assert seal.x1 < signature.x1


@pytest.mark.parametrize("which", ["verification", "calibration", "long", "approval"])
def test_render_ink_inside_the_margins_and_seal_width(
    issued: dict[str, Path], which: str, tmp_path: Path
) -> None:
    widget = _widget(issued[which])
    page_w, page_h = widget.page_size
    img = _render(issued[which], widget.page, tmp_path)
    x1, y1, x2, y2 = widget.rect
    # the box's ink, seen on the render, is inside the box
    ink = _ink(img, page_h, x1 - 30, y1, x2 + 30, y2)
    assert ink is not None
    # ... at the sides: nothing in the margins next to the box
    assert _ink(img, page_h, 0, y1, MARGIN - 0.5, y2) is None
    assert _ink(img, page_h, page_w - MARGIN + 0.5, y1, page_w, y2) is None
    # the seal's red ink is as wide as configured
    assert abs(_red_extent(img, page_h, widget.rect) - SEAL_MM) <= 1.0


def _pages(pdf: Path) -> int:
    with pikepdf.open(pdf) as doc:
        return len(doc.pages)


@pytest.mark.parametrize("which", ["verification", "long", "approval"])
def test_verification_fits_one_page_with_the_signature_on_it(
    issued: dict[str, Path], which: str
) -> None:
    """A verification certificate is read as a photocopy pinned to the instrument: one page,
    the signature space for a 30 mm seal included, the end mark on it."""
    assert _pages(issued[which]) == 1
    assert _widget(issued[which]).page == 0
    if which == "approval":
        assert _widget(issued[which], "Approval").page == 0
    text = subprocess.run(
        ["pdftotext", str(issued[which]), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Trang 1/1 (Page 1 of 1)" in text and "— Hết / End —" in text


def test_calibration_signature_on_the_results_page(issued: dict[str, Path]) -> None:
    """The calibration form points to its results on page 2 ("Xem kết quả tại trang 2"):
    the results, the signatures and the end mark share that page, no third page."""
    assert _pages(issued["calibration"]) == 2
    assert _widget(issued["calibration"]).page == 1


def test_two_signers_boxes_side_by_side(issued: dict[str, Path]) -> None:
    """With approval, the verifier's box and the head's empty field share the row: apart, each
    in its column, inside the margins."""
    verifier = _widget(issued["approval"], "Signature1").rect
    head = _widget(issued["approval"], "Approval").rect
    assert verifier[2] <= head[0], (verifier, head)
    assert verifier[0] >= 60 * MM - 0.5  # right of the QR code's 42 mm column
    assert head[2] <= 210 * MM - MARGIN + 0.5
    assert head[3] - head[1] > SEAL_MM * MM  # room for the head's seal too


def test_signatures_still_validate(issued: dict[str, Path]) -> None:
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    der = (ROOT / "keys.example" / "ca.pem").read_bytes()
    _, _, der = pem.unarmor(der)
    root = asn1_x509.Certificate.load(der)
    for pdf in issued.values():
        reader = PdfFileReader(BytesIO(pdf.read_bytes()))
        (sig,) = reader.embedded_signatures
        status = validate_pdf_signature(sig, ValidationContext(trust_roots=[root]))
        assert status.bottom_line, (pdf, status.summary())
        assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE


# -- the painter alone: the limits -----------------------------------------------------------


def _painted(pdf: bytes) -> list[Drawn]:
    with pikepdf.open(BytesIO(pdf)) as doc:
        page = doc.pages[0]
        drawn: list[Drawn] = []
        form = page.as_form_xobject()
        _walk(form, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], drawn)
        return drawn


@pytest.mark.parametrize(
    ("width", "height"), [(124.0, 128.0), (185.0, 89.0), (110.0, 60.0), (185.0, 40.0)]
)
def test_painter_keeps_text_legible_and_inside(tmp_path: Path, width: float, height: float) -> None:
    painter = StampPainter(
        seal=_seal(tmp_path / "seal.png"), signature=_signature(tmp_path / "sig.png")
    )
    pdf = painter.paint(
        width,
        height,
        signer="Nguyễn Thị Phương Thảo Ngọc Hoàng Kim Long",
        organisation=LONG_NAME,
        when=datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
    )
    drawn = _painted(pdf)
    texts = [d for d in drawn if d.kind == "text"]
    images = [d for d in drawn if d.kind == "image"]
    assert texts and min(t.size for t in texts) >= MIN_FONT_SIZE - 0.01
    for d in drawn:
        assert d.x1 >= 0 and d.x2 <= width + 0.01 and d.y1 >= 0 and d.y2 <= height + 0.01, d
    for text in texts:
        assert not any(text.meets(image) for image in images), text
    assert any("2026-12-03T17:00:00+07:00" in t.text for t in texts)  # the time is never cut
    assert any("Kim Long" in t.text for t in texts)  # nor the signer's name
    if width > 180 and height > 85:  # seal beside the text: drawn at its size
        (seal,) = [d for d in images if d.pixels == SEAL_PX]
        assert abs((seal.x2 - seal.x1) / MM - 30) < 1.0


def test_seal_size_is_configurable(tmp_path: Path) -> None:
    painter = StampPainter(seal=_seal(tmp_path / "seal.png"), seal_mm=36)
    pdf = painter.paint(300, 120, signer="A", organisation="B", when=datetime.now(UTC))
    (seal,) = [d for d in _painted(pdf) if d.kind == "image"]
    assert abs((seal.x2 - seal.x1) / MM - 36) < 0.01
