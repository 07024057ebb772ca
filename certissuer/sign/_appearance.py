"""Visible signatures: where they go on the certificate and what they show.

Vietnamese official documents show a signature as the signer's signature image with the
organisation's seal (actual size, about 30 mm) over its left third, with the organisation name
and the signing time (FORMS.md, "Signatures"). `StampPainter` draws that, the images above the
text ("Ký bởi / Signed by", name, organisation, ISO 8601 time, in the embedded Be Vietnam Pro
at 6 pt or more), as a one-page PDF that pyHanko places in the signature widget. `find_text`
finds the signer's printed name on the last page; the signature goes in the blank space above
it (the templates leave 31 mm there, 46 mm in three columns), within the signer's column
and the page margins, so the box follows the layout however long the results table is.

>>> painter = StampPainter(seal=Path("seal.png"))  # doctest: +SKIP
>>> pdf = painter.paint(185, 125, signer="Lê Hoàng Phúc", role="Thủ trưởng đơn vị / Head",
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
    "DEFAULT_SEAL_MM",
    "MIN_FONT_SIZE",
    "MM",
    "PAGE_MARGIN",
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
_SPACE_ABOVE_NAME = 31 * 72 / 25.4
"""Height of the blank space above a signer's name in the shipped templates (31 mm), in pt:
used when nothing is printed above the name."""
MM = 72 / 25.4
"""One millimetre in PDF points."""
MIN_FONT_SIZE = 6.0
"""The smallest text a visible signature draws, in pt."""
DEFAULT_SEAL_MM = 30.0
"""Width of the seal image in a visible signature: a round organisation seal, actual size."""
PAGE_MARGIN = 18 * MM
"""Left and right page margins of the shipped templates: the box never crosses them."""
_MAX_WIDTH = 200.0
_LEADING = 1.25
"""Line height, in font sizes: room for Vietnamese stacked diacritics."""
_BASELINE = 0.3
"""Baseline height in its line, in font sizes: room for descenders."""
_GAP = 2.0
"""Blank space between the images and the text, in pt."""


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
        leading = 0.0
        ops = "q Q cm BT Tm Td TD TL T* Tf Tj TJ ' \""
        for instruction in pikepdf.parse_content_stream(pg, ops):
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
            elif name in ("Td", "TD"):
                tm = _mul([1, 0, 0, 1, float(operands[0]), float(operands[1])], tm)
                if name == "TD":
                    leading = -float(operands[1])
            elif name == "TL":
                leading = float(operands[0])
            elif name == "T*":
                tm = _mul([1, 0, 0, 1, 0, -leading], tm)
            elif name == "Tf":
                key = str(operands[0])
                if key not in cache and key in fonts:
                    cache[key] = _font_info(fonts[key])
                font, size = cache.get(key, _Font({}, {})), float(operands[1])
            else:  # Tj, TJ, and ' and " (next line, then Tj)
                if name in ("'", '"'):
                    tm = _mul([1, 0, 0, 1, 0, -leading], tm)
                parts = [operands[-1]] if name != "TJ" else list(operands[0])
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
    return _box_above(index, run, runs, page_width=_page_width(pdf, index))


def _page_width(pdf: bytes, index: int) -> float:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        box = [float(v) for v in doc.pages[index].mediabox]
    return box[2] - box[0]


def _box_above(index: int, name: TextRun, runs: Sequence[TextRun], *, page_width: float) -> Box:
    """The blank space above the printed `name`: its column, between the margins, up to the
    role printed above it.

    The box is centred on the name and reaches halfway to the next name printed on the same
    line (the next signer's column), never past the page margins; its top is the lowest text
    above the name in that width.
    """
    centre = name.x + name.width / 2
    half = min(_MAX_WIDTH / 2, centre - PAGE_MARGIN, page_width - PAGE_MARGIN - centre)
    for other in runs:
        if other is not name and abs(other.y - name.y) < 1 and other.text.strip():
            half = min(half, abs(other.x + other.width / 2 - centre) / 2)
    half -= 1.0  # a point of white between neighbouring boxes
    bottom = name.y + name.size * 1.05
    above = [
        r.y - r.size * 0.3
        for r in runs
        if r.y > name.y + name.size
        and r.x < centre + half
        and r.x + r.width > centre - half
        and r.text.strip()
    ]
    top = min(above) - 1.0 if above else bottom + _SPACE_ABOVE_NAME - 2
    return Box(index, centre - half, bottom, centre + half, max(bottom + 1.0, top))


# -- painting the appearance ----------------------------------------------------------------


@functools.cache
def _fonts() -> tuple[TTFont, TTFont]:
    regular = TTFont(_FONT_REGULAR, str(fontpkg.path("Be Vietnam Pro", 400)))
    bold = TTFont(_FONT_BOLD, str(fontpkg.path("Be Vietnam Pro", 600)))
    return regular, bold


def _load_image(path: Path, what: str) -> ImageReader:
    try:
        with Image.open(path) as img:
            picture = img.convert("RGBA")
    except (OSError, UnidentifiedImageError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} image ({exc})") from None
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return ImageReader(io.BytesIO(buf.getvalue()))


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """`text` broken into lines no wider than `width` at `size` pt (a long word is cut)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if pdfmetrics.stringWidth(trial, font, size) <= width:
            line = trial
            continue
        if line:
            lines.append(line)
        line = word
        while pdfmetrics.stringWidth(line, font, size) > width and len(line) > 1:
            cut = len(line) - 1
            while cut > 1 and pdfmetrics.stringWidth(line[:cut], font, size) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line:
        lines.append(line)
    return lines


@dataclass(frozen=True, slots=True)
class _Line:
    font: str
    size: float
    text: str


def _lines(
    items: Sequence[tuple[str, float, str]], width: float, scale: float
) -> list[list[_Line]]:
    """Each item's lines at `scale` times its size (not below `MIN_FONT_SIZE`) in `width`."""
    out: list[list[_Line]] = []
    for font, size, text in items:
        if not text:
            out.append([])
            continue
        size = max(MIN_FONT_SIZE, size * scale)
        natural = pdfmetrics.stringWidth(text, font, size)
        if natural <= width:
            out.append([_Line(font, size, text)])
            continue
        fitted = max(MIN_FONT_SIZE, size * width / natural)
        out.append([_Line(font, fitted, part) for part in _wrap(text, font, fitted, width)])
    return out


def _layout(
    items: Sequence[tuple[str, float, str]],
    width: float,
    height: float,
    *,
    shorten: int = -1,
) -> list[_Line]:
    """The text lines of `items` (font, size, text) fitted in `width` × `height` pt.

    Too wide or too tall, the text shrinks (never below `MIN_FONT_SIZE`), then wraps; still
    too tall at that size, item `shorten` (the organisation) loses lines and ends with "…",
    so the other items (who signed, when) are always shown whole.
    """
    scale = 1.0
    while True:
        groups = _lines(items, width, scale)
        total = sum(line.size * _LEADING for group in groups for line in group)
        if total <= height or all(line.size <= MIN_FONT_SIZE for group in groups for line in group):
            break
        scale *= 0.95
    if total > height and groups:
        _logger.warning("the visible signature has no room for all its text: shortened")
        group = groups[shorten]
        while group and total > height:
            total -= group.pop().size * _LEADING
        if group:
            last = group[-1]
            text = last.text
            while text and pdfmetrics.stringWidth(text + "…", last.font, last.size) > width:
                text = text[:-1]
            group[-1] = _Line(last.font, last.size, text.rstrip() + "…")
        while total > height and any(groups):  # not even one line of it fits
            for g in reversed(groups):
                if g:
                    total -= g.pop().size * _LEADING
                    break
    return [line for group in groups for line in group]


_ORGANISATION = 2
"""Index of the organisation among a stamp's text items: the one shortened when room lacks."""
_MIN_IMAGE = 20.0
"""Smallest image height worth drawing, in pt (7 mm); less room: text only."""
_BESIDE_MIN = 80.0
"""Narrowest text column beside the seal, in pt; a narrower box puts the text under it."""


@dataclass(frozen=True, slots=True)
class _Placed:
    """An image drawn at (x, y), `w` × `h` pt, in the box."""

    reader: ImageReader
    x: float
    y: float
    w: float
    h: float


class StampPainter:
    """Paints visible signatures for one signer: images prepared once, text per signature.

    The seal is drawn `seal_mm` wide, as on paper, over the left third of the signature image.
    In a wide box the text stands right of the seal, under the signature image; in a narrow
    one, under both. Text is 6 pt or more and never touches an image; nothing leaves the box.
    """

    def __init__(
        self,
        *,
        seal: Path | None = None,
        signature: Path | None = None,
        seal_mm: float = DEFAULT_SEAL_MM,
    ) -> None:
        if seal_mm <= 0:
            raise ConfigError(
                f"[signing] seal_size_mm must be above 0, got {seal_mm}",
                hint="the seal's actual width in mm, usually 30 to 40",
            )
        self._seal = _load_image(seal, "seal") if seal else None
        self._signature = _load_image(signature, "signature") if signature else None
        self._seal_pt = seal_mm * MM
        _fonts()

    def __repr__(self) -> str:
        return (
            f"StampPainter(seal={self._seal is not None}, signature={self._signature is not None})"
        )

    def _seal_size(self, limit_w: float, limit_h: float) -> tuple[float, float]:
        """The seal's width and height: its configured width, unless the box is smaller."""
        assert self._seal is not None
        iw, ih = self._seal.getSize()
        w, h = self._seal_pt, self._seal_pt * ih / iw
        scale = min(1.0, limit_w / w, limit_h / h) if w and h else 1.0
        if scale < 1.0:
            _logger.warning(
                "the signature box (%.0f × %.0f mm) is too small for a %.0f mm seal: drawn "
                "%.0f mm wide",
                limit_w / MM,
                limit_h / MM,
                w / MM,
                w * scale / MM,
            )
        return max(0.0, w * scale), max(0.0, h * scale)

    def _signature_size(self, limit_w: float, limit_h: float) -> tuple[float, float]:
        assert self._signature is not None
        iw, ih = self._signature.getSize()
        h = max(0.0, limit_h)
        w = h * iw / ih
        if w > limit_w:
            w, h = limit_w, limit_w * ih / iw
        return max(0.0, w), max(0.0, h)

    def layout(
        self,
        width: float,
        height: float,
        items: Sequence[tuple[str, float, str]],
    ) -> tuple[list[_Placed], list[tuple[_Line, float, float]]]:
        """Where the images and the text lines go in a `width` × `height` box.

        Returns the images (the seal last, drawn over the signature) and the lines with the
        x of their centre and their baseline. Fonts must be registered (`paint` does it).
        """
        pad = 1.0
        inner_w, inner_h = width - 2 * pad, height - 2 * pad
        top = height - pad
        images: list[_Placed] = []
        text_x0, text_w, text_top, text_h = pad, inner_w, top, inner_h

        def need(w: float) -> float:
            return sum(
                len(_wrap(text, font, MIN_FONT_SIZE, w)) * MIN_FONT_SIZE * _LEADING
                for font, _, text in items
            )

        seal_w = self._seal_pt if self._seal is not None else 0.0
        beside = self._seal is not None and inner_w - seal_w - _GAP >= _BESIDE_MIN
        if beside:
            # seal left; right of it the signature image, the text under that
            seal_w, seal_h = self._seal_size(inner_w, inner_h)
            images_y = top - (inner_h + seal_h) / 2
            text_x0 = pad + seal_w + _GAP
            text_w = inner_w - seal_w - _GAP
            text_top, text_h = top, inner_h
            if self._signature is not None:
                room_h = min(seal_h * 0.6, inner_h - need(text_w) - _GAP)
                sig_w, sig_h = self._signature_size((text_w + _GAP) * 1.5, room_h)
                if sig_w and sig_h:
                    x = pad + seal_w - sig_w / 3
                    images.append(_Placed(self._signature, x, top - sig_h, sig_w, sig_h))
                    text_top, text_h = top - sig_h - _GAP, inner_h - sig_h - _GAP
            images.append(_Placed(self._seal, pad, images_y, seal_w, seal_h))
        elif (self._seal is not None or self._signature is not None) and (
            inner_h - need(inner_w) - _GAP < _MIN_IMAGE
        ):
            _logger.warning(
                "the signature box (%.0f × %.0f mm) has no room for the seal or signature "
                "image beside its text: text only",
                width / MM,
                height / MM,
            )
        elif self._seal is not None or self._signature is not None:
            # images on top, the text under them
            room_h = inner_h - need(inner_w) - _GAP
            row_h = 0.0
            row: list[tuple[ImageReader, float, float]] = []
            seal_w = seal_h = 0.0
            if self._seal is not None:
                seal_w, seal_h = self._seal_size(inner_w, room_h)
            if self._signature is not None:
                if self._seal is not None:
                    sig_w, sig_h = self._signature_size((inner_w - seal_w) * 1.5, seal_h * 0.7)
                else:
                    sig_w, sig_h = self._signature_size(inner_w, min(room_h, self._seal_pt * 0.7))
                row.append((self._signature, sig_w, sig_h))
            if self._seal is not None:
                row.append((self._seal, seal_w, seal_h))
            row_h = max(h for _, _, h in row)
            sig_part = row[0][1] * 2 / 3 if self._signature is not None and seal_w else 0.0
            total_w = seal_w + sig_part if seal_w else row[0][1]
            x0 = pad + (inner_w - total_w) / 2
            for reader, w, h in row:
                is_seal = reader is self._seal
                x = x0 + seal_w - w / 3 if not is_seal and seal_w else x0
                images.append(_Placed(reader, x, top - (row_h + h) / 2, w, h))
            text_top, text_h = top - row_h - _GAP, inner_h - row_h - _GAP
        lines = _layout(items, text_w, text_h, shorten=_ORGANISATION)
        block = sum(line.size * _LEADING for line in lines)
        # centred in its room, except under a row of images: right below it
        y = text_top if images and not beside else text_top - (text_h - block) / 2
        placed: list[tuple[_Line, float, float]] = []
        for line in lines:
            y -= line.size * _LEADING
            placed.append((line, text_x0 + text_w / 2, y + line.size * _BASELINE))
        return images, placed

    def paint(
        self,
        width: float,
        height: float,
        *,
        signer: str,
        role: str = "",
        organisation: str,
        when: datetime,
    ) -> bytes:
        """A one-page PDF, `width` × `height` pt: the images, then who, for whom, when.

        `role` is printed by the form right above the box and is not repeated in it.
        """
        del role
        regular, bold = _fonts()
        stamp_time = when.astimezone(VIETNAM_TZ).isoformat(timespec="seconds")
        items = [
            (_FONT_REGULAR, 6.5, SIGNED_BY + ":"),
            (_FONT_BOLD, 7.5, signer),
            (_FONT_REGULAR, 6.5, organisation),
            (_FONT_REGULAR, 6.5, stamp_time),
        ]
        out = io.BytesIO()
        # NOTE: reportlab's font registry and settings are process-wide, and z3c.rml resets
        # them for every document it lays out: register the fonts each time, under the lock
        # the renderer holds (imported here so that importing the signer does not load
        # z3c.rml; whoever paints a signature has rendered, or is about to).
        from certissuer.render import reportlab_lock

        with reportlab_lock:
            pdfmetrics.registerFont(regular)
            pdfmetrics.registerFont(bold)
            images, lines = self.layout(width, height, items)
            c = Canvas(
                out,
                pagesize=(width, height),
                invariant=True,
                pageCompression=1,
                initialFontName=_FONT_REGULAR,  # else reportlab declares a bare Helvetica
            )
            for img in images:
                c.drawImage(img.reader, img.x, img.y, img.w, img.h, mask="auto")
            c.setFillColorRGB(0.1, 0.1, 0.3)
            for line, centre, baseline in lines:
                c.setFont(line.font, line.size)
                c.drawCentredString(centre, baseline, line.text)
            c.showPage()
            c.save()
        return out.getvalue()
