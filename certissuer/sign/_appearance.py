"""Visible signatures: where they go on the certificate and what they show.

Vietnamese official documents show a signature as the signer's signature image with the
organisation's seal over its left third, beside the signer's name, role, organisation and the
signing time (FORMS.md, "Signatures"). `StampPainter` draws that, in the embedded Be Vietnam
Pro font, as a one-page PDF that pyHanko places in the signature widget. `find_text` finds the
signer's printed name on the last page; the signature goes in the blank space above it (the
templates leave 15 mm there), so the box follows the layout however long the results table is.

>>> painter = StampPainter(seal=Path("seal.png"))  # doctest: +SKIP
>>> pdf = painter.paint(200, 42, signer="Lê Hoàng Phúc", role="Thủ trưởng đơn vị / Head",
...                     organisation="TTKT TĐC Đồng Tháp", when=datetime.now(UTC))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import fontpkg
import pikepdf
from PIL import Image, UnidentifiedImageError
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from certissuer._vn import VIETNAM_TZ
from certissuer.errors import ConfigError
from certissuer.model import AnyCertificate, CalibrationCertificate

__all__ = [
    "SIGNED_BY",
    "Box",
    "SignatureSlot",
    "StampPainter",
    "TextRun",
    "find_text",
    "locate_slot",
    "signature_slots",
]

_logger = logging.getLogger(__name__)

SIGNED_BY = "Ký bởi / Signed by"
"""The label over the signer's name in every visible signature (FORMS.md)."""

_FONT_REGULAR = "CertissuerSig-Regular"
_FONT_BOLD = "CertissuerSig-SemiBold"
_SPACE_ABOVE_NAME = 42.0
"""Height of the blank space above a signer's name in the shipped templates (15 mm), in pt."""
_MAX_WIDTH = 190.0
_MIN_FONT = 3.5


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle on a page, in PDF points from the lower left corner."""

    page: int
    """Page index from 0."""
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def rect(self) -> tuple[int, int, int, int]:
        """The rectangle rounded to whole points, as pyHanko's field spec wants it."""
        return (round(self.x1), round(self.y1), round(self.x2), round(self.y2))


@dataclass(frozen=True, slots=True)
class SignatureSlot:
    """One signature on a certificate: its field, the printed name it sits over, its role."""

    field: str
    """The signature field's name ("Signature1", "Approval")."""
    role: str
    """The signer's role as the form prints it, Vietnamese / English."""
    name_on_page: str | None = None
    """The name printed under the signature space; None: an invisible signature."""
    occurrence: int = 0
    """Which match of `name_on_page` on the last page, left to right (0 first, -1 last)."""


@dataclass(frozen=True, slots=True)
class TextRun:
    """One string a page draws, where it starts and how wide it is."""

    text: str
    x: float
    y: float
    """Baseline."""
    width: float
    size: float


def signature_slots(
    cert: AnyCertificate, *, approval: bool
) -> tuple[SignatureSlot, SignatureSlot | None]:
    """The lab's signature and, with `approval`, the field left for the head's approval.

    A calibration certificate carries one signature, over the authorised signatory's name. A
    verification certificate is signed over the head's name; with `approval` (the two-signer
    flow) the verifier signs over their own name and the head's column gets an empty field.
    """
    head_role = "Thủ trưởng đơn vị / Head of organisation"
    if isinstance(cert, CalibrationCertificate):
        return (
            SignatureSlot(
                "Signature1",
                "Người có thẩm quyền ký / Authorised signatory",
                cert.signatory.name,
                occurrence=-1,
            ),
            None,
        )
    if not approval:
        return SignatureSlot("Signature1", head_role, cert.head.name, occurrence=-1), None
    return (
        SignatureSlot("Signature1", "Kiểm định viên / Verifier", cert.verifier.name, occurrence=0),
        SignatureSlot("Approval", head_role, cert.head.name, occurrence=-1),
    )


# -- finding the signer's name on the page --------------------------------------------------

_BFCHAR = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)
_BFRANGE = re.compile(rb"beginbfrange(.*?)endbfrange", re.S)
_PAIR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_TRIPLE = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")


@dataclass(frozen=True, slots=True)
class _Font:
    chars: dict[int, str]
    widths: dict[int, float]


def _font_info(font: pikepdf.Object) -> _Font:
    chars: dict[int, str] = {}
    if "/ToUnicode" in font:
        cmap = font.ToUnicode.read_bytes()
        for block in _BFCHAR.findall(cmap):
            for src, dst in _PAIR.findall(block):
                chars[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be", "replace")
        for block in _BFRANGE.findall(cmap):
            for lo, hi, dst in _TRIPLE.findall(block):
                start, base = int(lo, 16), int(dst, 16)
                for code in range(start, int(hi, 16) + 1):
                    chars[code] = chr(base + code - start)
    widths: dict[int, float] = {}
    if "/Widths" in font and "/FirstChar" in font:
        first = int(font.FirstChar)
        widths = {first + i: float(w) for i, w in enumerate(font.Widths)}
    return _Font(chars, widths)


def _mul(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]


def find_text(pdf: bytes, *, page: int = -1) -> tuple[int, list[TextRun]]:
    """The strings that page `page` of `pdf` draws, with their positions.

    Reads the content stream with qpdf (pikepdf) and maps the one-byte codes of simple fonts
    (what reportlab writes) through their ToUnicode maps: about 8 ms for a certificate page,
    a quarter of a general text extractor. Returns the page index and the runs.
    """
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        index = page % len(doc.pages)
        pg = doc.pages[index]
        resources: Any = pg.obj.get("/Resources") or {}
        fonts: Any = resources.get("/Font") or {}
        cache: dict[str, _Font] = {}
        ctm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        stack: list[list[float]] = []
        tm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        font, size = _Font({}, {}), 0.0
        runs: list[TextRun] = []
        for instruction in pikepdf.parse_content_stream(pg, "q Q cm BT Tm Td Tf Tj TJ"):
            operands: Any = getattr(instruction, "operands", ())
            name = str(getattr(instruction, "operator", ""))
            if name == "q":
                stack.append(ctm)
            elif name == "Q" and stack:
                ctm = stack.pop()
            elif name == "cm":
                ctm = _mul([float(v) for v in operands], ctm)
            elif name == "BT":
                tm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
            elif name == "Tm":
                tm = [float(v) for v in operands]
            elif name == "Td":
                tm = _mul([1, 0, 0, 1, float(operands[0]), float(operands[1])], tm)
            elif name == "Tf":
                key = str(operands[0])
                if key not in cache and key in fonts:
                    cache[key] = _font_info(fonts[key])
                font, size = cache.get(key, _Font({}, {})), float(operands[1])
            else:  # Tj, TJ
                parts = [operands[0]] if name == "Tj" else list(operands[0])
                raw = b"".join(bytes(p) for p in parts if isinstance(p, pikepdf.String))
                text = "".join(font.chars.get(b, chr(b)) for b in raw)
                width = sum(font.widths.get(b, 500.0) for b in raw) * size / 1000
                at = _mul(tm, ctm)
                runs.append(TextRun(text, at[4], at[5], width * at[0], size * at[3]))
        return index, runs


def locate_slot(pdf: bytes, slot: SignatureSlot) -> Box | None:
    """The box above the printed name of `slot`, or None when the name is not on the last page."""
    if not slot.name_on_page:
        return None
    try:
        index, runs = find_text(pdf)
    except (pikepdf.PdfError, ValueError, KeyError, TypeError) as exc:
        _logger.debug("cannot read the page to place the signature: %s", exc)
        return None
    wanted = " ".join(slot.name_on_page.split())
    matches = sorted(
        (r for r in runs if " ".join(r.text.split()) == wanted), key=lambda r: (r.x, -r.y)
    )
    if not matches:
        _logger.warning("'%s' is not printed on the last page: invisible signature", wanted)
        return None
    try:
        run = matches[slot.occurrence]
    except IndexError:
        run = matches[-1]
    centre = run.x + run.width / 2
    half = _MAX_WIDTH / 2
    bottom = run.y + run.size * 1.05
    return Box(index, centre - half, bottom, centre + half, bottom + _SPACE_ABOVE_NAME - 2)


# -- painting the appearance ----------------------------------------------------------------


@functools.cache
def _fonts() -> tuple[TTFont, TTFont]:
    regular = TTFont(_FONT_REGULAR, str(fontpkg.path("Be Vietnam Pro", 400)))
    bold = TTFont(_FONT_BOLD, str(fontpkg.path("Be Vietnam Pro", 600)))
    return regular, bold


def _load_image(path: Path, what: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGBA")
    except (OSError, UnidentifiedImageError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} image ({exc})") from None


def _composite(seal: Path | None, signature: Path | None, height_px: int) -> Image.Image | None:
    """The signature image with the seal over its left third (FORMS.md), `height_px` high."""
    images = []
    sig = _load_image(signature, "signature") if signature else None
    stamp = _load_image(seal, "seal") if seal else None
    if sig is not None:
        h = int(height_px * (0.8 if stamp is not None else 1.0))
        sig = sig.resize((max(1, sig.width * h // sig.height), h), Image.Resampling.LANCZOS)
        images.append(sig)
    if stamp is not None:
        stamp = stamp.resize(
            (max(1, stamp.width * height_px // stamp.height), height_px),
            Image.Resampling.LANCZOS,
        )
    if not images and stamp is None:
        return None
    if sig is None:
        return stamp
    if stamp is None:
        return sig
    sig_left = max(0, stamp.width - sig.width // 3)
    canvas = Image.new("RGBA", (max(stamp.width, sig_left + sig.width), height_px), (0, 0, 0, 0))
    canvas.alpha_composite(sig, (sig_left, (height_px - sig.height) // 2))
    canvas.alpha_composite(stamp, (0, 0))
    return canvas


class StampPainter:
    """Paints visible signatures for one signer: images prepared once, text per signature."""

    def __init__(self, *, seal: Path | None = None, signature: Path | None = None) -> None:
        picture = _composite(seal, signature, 160)
        self._overlap = 0.85 if signature is not None else 1.05
        """Where the text starts, in image widths: over a signature image's blank right edge."""
        self._image: ImageReader | None = None
        self._aspect = 0.0
        if picture is not None:
            buf = io.BytesIO()
            picture.save(buf, "PNG")
            self._image = ImageReader(io.BytesIO(buf.getvalue()))
            self._aspect = picture.width / picture.height
        _fonts()

    def __repr__(self) -> str:
        return f"StampPainter(images={self._image is not None})"

    def paint(
        self,
        width: float,
        height: float,
        *,
        signer: str,
        role: str,
        organisation: str,
        when: datetime,
    ) -> bytes:
        """A one-page PDF, `width` × `height` pt: images left, then who, as what, when."""
        regular, bold = _fonts()
        out = io.BytesIO()
        # NOTE: reportlab's font registry and settings are process-wide, and z3c.rml resets
        # them for every document it lays out: register the fonts each time, under the lock
        # the renderer holds (imported here so that importing the signer does not load
        # z3c.rml; whoever paints a signature has rendered, or is about to).
        from certissuer.render import reportlab_lock

        with reportlab_lock:
            pdfmetrics.registerFont(regular)
            pdfmetrics.registerFont(bold)
            c = Canvas(
                out,
                pagesize=(width, height),
                invariant=True,
                pageCompression=1,
                initialFontName=_FONT_REGULAR,  # else reportlab declares a bare Helvetica
            )
            left = 0.0
            if self._image is not None:
                img_w = min(height * self._aspect, width * 0.45)
                img_h = img_w / self._aspect
                c.drawImage(self._image, 0, (height - img_h) / 2, img_w, img_h, mask="auto")
                left = img_w * self._overlap
            stamp_time = when.astimezone(VIETNAM_TZ).isoformat(timespec="seconds")
            lines = [
                (_FONT_REGULAR, 5.5, SIGNED_BY + ":"),
                (_FONT_BOLD, 7.5, signer),
                (_FONT_REGULAR, 5.5, role),
                (_FONT_REGULAR, 5.5, organisation),
                (_FONT_REGULAR, 5.5, stamp_time),
            ]
            lines = [line for line in lines if line[2]]
            room = width - left - 1
            total = sum(size * 1.2 for _, size, _ in lines)
            scale = min(1.0, (height - 2) / total)
            y = height - (height - total * scale) / 2
            c.setFillColorRGB(0.1, 0.1, 0.3)
            for font, size, text in lines:
                size *= scale
                fitted = min(size, size * room / max(1.0, pdfmetrics.stringWidth(text, font, size)))
                y -= size * 1.2
                c.setFont(font, max(_MIN_FONT, fitted))
                c.drawString(left + 1, y + size * 0.25, text)
            c.showPage()
            c.save()
        return out.getvalue()
