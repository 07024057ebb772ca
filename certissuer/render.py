"""Render a certificate to PDF: Jinja2 template → RML → sanitised RML → z3c.rml → PDF bytes.

A lab's template folder holds ``verification.rml.j2`` and ``calibration.rml.j2`` (see
``templates/README.md``). Rendering is pure: the output depends only on the certificate, the
number, the issue date, the QR URL, the settings and the template folder; no clock is read
(the PDF is written with reportlab's *invariant* flag) and nothing is written to disk.

Templates are data, not code: after Jinja2 renders them, `sanitize_rml` checks the RML
against an allowlist of elements and attributes and keeps every file reference inside the
template folder and the font package, so a template cannot run Python (``plugInFlowable``,
``evalString``), read ``/etc/passwd`` or fetch a URL.

>>> from certissuer.render import Renderer
>>> renderer = Renderer()  # the templates shipped with certissuer
>>> pdf = renderer.render_pdf(cert, number="HC-2026-000123", issued=date(2026, 11, 27),
...                           qr_url="https://verify.example.invalid/v/…",
...                           settings=settings)  # doctest: +SKIP
>>> pdf[:5]  # doctest: +SKIP
b'%PDF-'
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import logging
import re
import threading
import traceback
import unicodedata
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import fontpkg
import jinja2
import qrcode
import z3c.rml.attr
import z3c.rml.document
import z3c.rml.flowable
import z3c.rml.interfaces
import z3c.rml.paraparser
import z3c.rml.stylesheet
import zope.interface  # type: ignore[import-untyped, unused-ignore]  # no type hints
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # lxml-stubs not installed
from PIL import Image
from qrcode import util as qrutil
from qrcode.constants import ERROR_CORRECT_M
from reportlab import rl_config
from reportlab.graphics import shapes
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

import certissuer
from certissuer.config import Settings
from certissuer.errors import CertissuerError, ConfigError, TemplateError
from certissuer.model import (
    CalibrationCertificate,
    VerificationCertificate,
    VerificationMode,
    format_decimal,
    format_result,
)

__all__ = ["Renderer", "default_template_dir", "qr_png", "sanitize_rml"]

_logger = logging.getLogger(__name__)

AnyCertificate = VerificationCertificate | CalibrationCertificate

_FONT_FAMILY = "Be Vietnam Pro"


def default_template_dir() -> Path:
    """Return the folder of the templates shipped with certissuer.

    A wheel carries them as ``certissuer/templates``; in a source checkout they are the
    repository's top-level ``templates/`` folder.
    """
    package = Path(certissuer.__file__).resolve().parent
    bundled = package / "templates"
    if bundled.is_dir():
        return bundled
    return package.parent / "templates"


# --------------------------------------------------------------------------------------------
# QR code
# --------------------------------------------------------------------------------------------
#
# qrcode's own `best_mask_pattern` builds the matrix eight times and scores each with nested
# Python loops: about three quarters of its ~20 ms. We build the matrix once, XOR each of the
# eight masks over it as Python big integers (one bit per module, every row and every column
# packed into one integer), and compute qrcode's exact penalty (`qrcode.util.lost_point`,
# ISO/IEC 18004 §7.8.3 N1–N4) with a few dozen shifts, ANDs and popcounts per mask. The chosen
# mask is the one qrcode would choose (tests compare both on many URLs).

_QR_BOX = 4
"""Pixels per module in the PNG; the template decides the printed size."""
_QR_BORDER = 4
"""Quiet zone in modules (ISO/IEC 18004 asks for 4)."""
_QR_FINDER_1 = "10111010000"
_QR_FINDER_2 = "00001011101"
_ZERO_ONE = bytes.maketrans(b"\x00\x01", b"01")


class _DataCellProbe(qrcode.QRCode):  # type: ignore[misc]  # qrcode is untyped
    """A QR code whose data placement is skipped: the cells left as None are the data cells."""

    def map_data(self, data: Any, mask_pattern: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _QrLayout:
    """Per-version constants for the mask penalty, all as packed bit integers."""

    size: int
    stride: int
    masks: tuple[int, ...]
    """Mask k XORed onto data cells only, rows then columns."""
    win5: int
    win11: int
    win2: int
    rows: int


def _pack(lines: Sequence[str], stride: int) -> int:
    """Pack '0'/'1' strings so that cell c of line k is bit k*stride + c."""
    pad = "0" * (stride - len(lines[0]))
    return int("".join(line + pad for line in lines)[::-1], 2)


def _windows(lines: int, stride: int, size: int, span: int) -> int:
    """Bits where a window of `span` cells starting there lies inside its line."""
    one_line = (1 << (size - span + 1)) - 1
    return sum(one_line << (k * stride) for k in range(lines))


@functools.cache
def _qr_layout(version: int) -> _QrLayout:
    probe = _DataCellProbe(version=version, error_correction=ERROR_CORRECT_M)
    probe.makeImpl(True, 0)
    size: int = probe.modules_count
    stride = size + 11  # a zero gap wider than any window, so no window spans two lines
    free = [[cell is None for cell in row] for row in probe.modules]
    masks = []
    for k in range(8):
        applies = qrutil.mask_func(k)
        rows = [
            "".join("1" if free[r][c] and applies(r, c) else "0" for c in range(size))
            for r in range(size)
        ]
        cols = ["".join(col) for col in zip(*rows, strict=True)]
        masks.append(_pack(rows + cols, stride))
    return _QrLayout(
        size=size,
        stride=stride,
        masks=tuple(masks),
        win5=_windows(2 * size, stride, size, 5),
        win11=_windows(2 * size, stride, size, 11),
        win2=_windows(size - 1, stride, size, 2),
        rows=(1 << (size * stride)) - 1,
    )


def _qr_penalty(x: int, layout: _QrLayout) -> int:
    """qrcode's `lost_point` of the packed matrix `x` (rows, then columns)."""
    stride = layout.stride
    same = ~(x ^ (x >> 1))  # cell equals its right (row) / lower (column) neighbour
    # N1: each run of k >= 5 equal cells scores k - 2 = (k - 4 windows of 5) + 2 per run
    uniform5 = layout.win5 & same & (same >> 1) & (same >> 2) & (same >> 3)
    run_starts = uniform5 & ~(uniform5 << 1)
    n1 = uniform5.bit_count() + 2 * run_starts.bit_count()
    # N2: 3 per 2x2 block of one colour (rows only, as qrcode counts them)
    vertical = ~(x ^ (x >> stride))
    n2 = 3 * (layout.win2 & same & vertical & (vertical >> 1)).bit_count()
    # N3: 40 per 1:1:3:1:1 finder-like pattern with four light cells on one side
    m1 = m2 = layout.win11
    for i in range(11):
        shifted = x >> i
        m1 &= shifted if _QR_FINDER_1[i] == "1" else ~shifted
        m2 &= shifted if _QR_FINDER_2[i] == "1" else ~shifted
    n3 = 40 * (m1.bit_count() + m2.bit_count())
    # N4: 10 per 5 % that the dark share departs from 50 % (float, exactly as qrcode does)
    percent = float((x & layout.rows).bit_count()) / (layout.size**2)
    n4 = int(abs(percent * 100 - 50) / 5) * 10
    return n1 + n2 + n3 + n4


def _best_mask(qr: Any) -> int:
    """The mask pattern qrcode's `best_mask_pattern` would pick, about 15x faster."""
    layout = _qr_layout(qr.version)
    qr.makeImpl(True, 0)  # data with mask 0, format and version areas light (test mode)
    rows = [bytes(row).translate(_ZERO_ONE).decode("ascii") for row in qr.modules]
    cols = ["".join(col) for col in zip(*rows, strict=True)]
    unmasked = _pack(rows + cols, layout.stride) ^ layout.masks[0]
    penalties = [_qr_penalty(unmasked ^ mask, layout) for mask in layout.masks]
    return penalties.index(min(penalties))  # the first minimum, as qrcode takes it


def _qr_modules(url: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    qr.add_data(url)
    qr.best_fit()
    qr.makeImpl(False, _best_mask(qr))
    modules: list[list[bool]] = qr.modules
    return modules


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")


def _png_1bit(modules: Sequence[Sequence[bool]], box: int, border: int) -> bytes:
    """A 1-bit greyscale PNG of `modules`, `box` pixels per module, `border` light modules."""
    side = (len(modules) + 2 * border) * box
    expand = {ord("1"): "0" * box, ord("0"): "1" * box}  # PNG grey: 0 black, 1 white
    light_row = "1" * side
    padding = "0" * (-side % 8)

    def scanline(bits: str) -> bytes:
        return b"\x00" + int(bits + padding, 2).to_bytes((side + 7) // 8, "big")

    quiet = scanline(light_row) * (border * box)
    lines = [quiet]
    edge = "1" * (border * box)
    for row in modules:
        bits = bytes(row).translate(_ZERO_ONE).decode("ascii").translate(expand)
        lines.append(scanline(edge + bits + edge) * box)
    lines.append(quiet)
    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # 1 bit, grey, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(b"".join(lines), 6)),
            _png_chunk(b"IEND", b""),
        )
    )


def qr_png(url: str) -> bytes:
    """Return a PNG of a QR code for `url`, error correction level M.

    `url` is encoded as given. The PNG has 4 pixels per module and the 4-module quiet zone;
    printed at 0.5 mm per module it decodes from a 150 dpi scan. The mask is the one qrcode's
    own scoring picks, chosen with a bitwise penalty (see the comment above `_QR_BOX`).
    """
    return _png_1bit(_qr_modules(url), _QR_BOX, _QR_BORDER)


def _qr_image(url: str) -> tuple[str, int]:
    """The QR code as a ``data:`` URI, and its width in modules including the quiet zone."""
    modules = _qr_modules(url)
    png = _png_1bit(modules, _QR_BOX, _QR_BORDER)
    return _data_uri(png), len(modules) + 2 * _QR_BORDER


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------------------------
# RML allowlist
# --------------------------------------------------------------------------------------------

_PARA_STYLE = frozenset(
    {
        "alias", "alignment", "allowOrphans", "allowWidows", "backColor", "borderColor",
        "borderPadding", "borderRadius", "borderWidth", "bulletAnchor", "bulletColor",
        "bulletFontName", "bulletFontSize", "bulletIndent", "endDots", "firstLineIndent",
        "fontName", "fontSize", "frameBreakBefore", "justifyBreaks", "justifyLastLine",
        "keepWithNext", "leading", "leftIndent", "name", "pageBreakBefore", "parent",
        "rightIndent", "spaceAfter", "spaceBefore", "spaceShrinkage", "splitLongWords",
        "strike", "strikeColor", "strikeWidth", "textColor", "textTransform", "underline",
        "underlineColor", "underlineWidth", "wordWrap",
    }
)  # fmt: skip
_PARA = _PARA_STYLE | {"style", "bulletText", "dedent"}
_RANGE = frozenset({"start", "stop"})
_CELL_LINES = frozenset(
    f"line{side}{prop}"
    for side in ("Above", "Below", "Left", "Right")
    for prop in ("Thickness", "Color", "Cap", "Count", "Dash", "Space")
)
_XY = frozenset({"x", "y"})

_ALLOWED_ELEMENTS: Mapping[str, frozenset[str]] = {
    # document structure and set-up
    "document": frozenset({"filename", "title", "subject", "author", "creator", "invariant",
                           "compression"}),
    "docinit": frozenset({"pageMode", "pageLayout", "displayDocTitle"}),
    "registerTTFont": frozenset({"faceName", "fileName"}),
    "registerFontFamily": frozenset({"name", "normal", "bold", "italic", "boldItalic"}),
    "addMapping": frozenset({"faceName", "bold", "italic", "psName"}),
    "color": frozenset({"id", "RGB", "CMYK", "value", "alpha"}),
    "name": frozenset({"id", "value"}),
    "alias": frozenset({"id", "value"}),
    "stylesheet": frozenset(),
    "initialize": frozenset(),
    "paraStyle": _PARA_STYLE,
    "blockTableStyle": frozenset({"id", "keepWithNext"}),
    "blockFont": _RANGE | {"name", "size", "leading"},
    "blockLeading": _RANGE | {"length"},
    "blockTextColor": _RANGE | {"colorName"},
    "blockAlignment": _RANGE | {"value"},
    "blockValign": _RANGE | {"value"},
    "blockLeftPadding": _RANGE | {"length"},
    "blockRightPadding": _RANGE | {"length"},
    "blockTopPadding": _RANGE | {"length"},
    "blockBottomPadding": _RANGE | {"length"},
    "blockBackground": _RANGE | {"colorName", "colorsByRow", "colorsByCol"},
    "blockRowBackground": _RANGE | {"colorNames"},
    "blockColBackground": _RANGE | {"colorNames"},
    "blockSpan": _RANGE,
    "blockNosplit": _RANGE,
    "lineStyle": _RANGE | {"kind", "colorName", "thickness", "cap", "dash", "join", "count",
                           "space"},
    # page templates and what they draw on every page
    "template": frozenset({"pagesize", "rotation", "leftMargin", "rightMargin", "topMargin",
                           "bottomMargin", "showBoundary", "allowSplitting", "title", "author"}),
    "pageTemplate": frozenset({"id", "pagesize", "autoNextTemplate"}),
    "frame": frozenset({"id", "x1", "y1", "width", "height", "leftPadding", "rightPadding",
                        "topPadding", "bottomPadding", "showBoundary"}),
    "pageGraphics": frozenset(),
    "saveState": frozenset(),
    "restoreState": frozenset(),
    "drawString": _XY,
    "drawRightString": _XY,
    "drawCentredString": _XY,
    "drawCenteredString": _XY,
    "setFont": frozenset({"name", "size", "leading"}),
    "setFontSize": frozenset({"size", "leading"}),
    "fill": frozenset({"color"}),
    "stroke": frozenset({"color"}),
    "lineMode": frozenset({"width", "dash", "miterLimit", "join", "cap"}),
    "lines": frozenset({"strokeColor", "strokeWidth", "strokeDashArray", "symbol"}),  # charts
    "rect": _XY | {"width", "height", "round", "fill", "stroke"},
    "circle": _XY | {"radius", "fill", "stroke"},
    "ellipse": _XY | {"width", "height", "fill", "stroke"},
    "translate": frozenset({"dx", "dy"}),
    "scale": frozenset({"sx", "sy"}),
    "rotate": frozenset({"degrees"}),
    "image": _XY | {"file", "width", "height", "preserveAspectRatio", "showBoundary", "anchor",
                    "mask"},
    "place": _XY | {"width", "height"},
    # the story and its flowables
    "story": frozenset({"firstPageTemplate"}),
    "para": _PARA,
    "title": _PARA,
    "h1": _PARA,
    "h2": _PARA,
    "h3": _PARA,
    "h4": _PARA,
    "h5": _PARA,
    "h6": _PARA,
    "spacer": frozenset({"width", "length"}),
    "blockTable": frozenset({"style", "colWidths", "rowHeights", "repeatRows", "alignment",
                             "splitByRow", "splitInRow"}),
    "tr": frozenset(),
    "td": _CELL_LINES | {"fontName", "fontSize", "leading", "fontColor", "leftPadding",
                         "rightPadding", "topPadding", "bottomPadding", "background", "align",
                         "vAlign"},
    "keepTogether": frozenset({"maxHeight"}),
    "keepInFrame": frozenset({"maxWidth", "maxHeight", "mergeSpace", "onOverflow", "id",
                              "frame"}),
    "condPageBreak": frozenset({"height"}),
    "nextFrame": frozenset({"name"}),
    "nextPage": frozenset(),
    "setNextTemplate": frozenset({"name"}),
    "hr": frozenset({"width", "thickness", "color", "lineCap", "spaceBefore", "spaceAfter",
                     "align", "valign", "dash"}),
    "img": frozenset({"src", "width", "height", "preserveAspectRatio", "mask", "align",
                      "vAlign"}),
    "indent": frozenset({"left", "right"}),
    "fixedSize": frozenset({"width", "height"}),
    "namedString": frozenset({"id", "default"}),
    "pageNumber": frozenset({"countingFrom"}),
    "getName": frozenset({"id", "default"}),
    # inline paragraph markup
    "b": frozenset(),
    "i": frozenset(),
    "u": frozenset(),
    "strike": frozenset(),
    "strong": frozenset(),
    "em": frozenset(),
    "br": frozenset(),
    "super": frozenset(),
    "sup": frozenset(),
    "sub": frozenset(),
    "font": frozenset({"face", "name", "size", "color", "fontName", "fontSize", "textColor"}),
    # charts (reports, issue 10): reportlab's own charts in an <illustration> flowable. Left
    # out on purpose: labelTextFormat (z3c.rml imports the Python object it names, so a
    # template could call any function), lineLabelFormat, 3-D and spider charts, slice
    # pointers. Category names and series values are text nodes; no chart element takes a
    # file, and an <image> inside an illustration is checked like any other.
    "illustration": frozenset({"width", "height"}),
    "barChart": frozenset({"x", "y", "dx", "dy", "dwidth", "dheight", "angle", "width", "height",
                          "strokeColor", "strokeWidth", "fillColor",
                          "direction", "useAbsolute", "barWidth", "groupSpacing", "barSpacing",
                          "barLabelFormat"}),
    "linePlot": frozenset({"x", "y", "dx", "dy", "dwidth", "dheight", "angle", "width", "height",
                          "strokeColor", "strokeWidth", "fillColor",
                          "joinedLines", "reversePlotOrder", "lineLabelNudge", "inFill"}),
    "pieChart": frozenset({"x", "y", "dx", "dy", "dwidth", "dheight", "angle", "width", "height",
                          "strokeColor", "strokeWidth", "fillColor",
                          "startAngle", "direction", "checkLabelOverlap", "sameRadii",
                          "orderMode", "xradius", "yradius"}),
    "data": frozenset(),
    "series": frozenset(),
    "bars": frozenset({"strokeColor", "strokeWidth", "fillColor"}),
    "bar": frozenset({"strokeColor", "strokeWidth", "fillColor"}),
    "barLabels": frozenset({"x", "y", "angle", "bottomPadding", "boxAnchor", "boxFillColor",
                        "boxStrokeColor", "boxStrokeWidth", "boxTarget", "dx", "dy", "fillColor",
                        "fontName", "fontSize", "height", "leading", "leftPadding", "maxWidth",
                        "rightPadding", "strokeColor", "strokeWidth", "textAnchor", "topPadding",
                        "visible", "width"}) - _XY,
    "labels": frozenset({"x", "y", "angle", "bottomPadding", "boxAnchor", "boxFillColor",
                        "boxStrokeColor", "boxStrokeWidth", "boxTarget", "dx", "dy", "fillColor",
                        "fontName", "fontSize", "height", "leading", "leftPadding", "maxWidth",
                        "rightPadding", "strokeColor", "strokeWidth", "textAnchor", "topPadding",
                        "visible", "width"}),
    "label": frozenset({"x", "y", "angle", "bottomPadding", "boxAnchor", "boxFillColor",
                        "boxStrokeColor", "boxStrokeWidth", "boxTarget", "dx", "dy", "fillColor",
                        "fontName", "fontSize", "height", "leading", "leftPadding", "maxWidth",
                        "rightPadding", "strokeColor", "strokeWidth", "textAnchor", "topPadding",
                        "visible", "width"}),
    "categoryAxis": frozenset({"gridEnd", "gridStart", "gridStrokeColor", "gridStrokeDashArray",
                             "gridStrokeWidth", "strokeColor", "strokeDashArray", "strokeWidth",
                             "style", "visible", "visibleAxis", "visibleGrid", "visibleLabels",
                             "visibleTicks",
                             "joinAxis", "joinAxisPos", "labelAxisMode", "reverseDirection",
                             "tickShift"}),
    "categoryNames": frozenset(),
    "valueAxis": frozenset({"gridEnd", "gridStart", "gridStrokeColor", "gridStrokeDashArray",
                             "gridStrokeWidth", "strokeColor", "strokeDashArray", "strokeWidth",
                             "style", "visible", "visibleAxis", "visibleGrid", "visibleLabels",
                             "visibleTicks", "forceZero", "labelTextPostFormat",
                             "labelTextScale", "maximumTicks", "minimumTickSpacing", "rangeRound",
                             "valueMax", "valueMin", "valueStep", "valueSteps", "zrangePref"}),
    "xValueAxis": frozenset({"gridEnd", "gridStart", "gridStrokeColor", "gridStrokeDashArray",
                             "gridStrokeWidth", "strokeColor", "strokeDashArray", "strokeWidth",
                             "style", "visible", "visibleAxis", "visibleGrid", "visibleLabels",
                             "visibleTicks", "forceZero", "labelTextPostFormat",
                             "labelTextScale", "maximumTicks", "minimumTickSpacing", "rangeRound",
                             "valueMax", "valueMin", "valueStep", "valueSteps", "zrangePref",
                             "joinAxis", "joinAxisMode", "joinAxisPos", "tickDown", "tickUp"}),
    "yValueAxis": frozenset({"gridEnd", "gridStart", "gridStrokeColor", "gridStrokeDashArray",
                             "gridStrokeWidth", "strokeColor", "strokeDashArray", "strokeWidth",
                             "style", "visible", "visibleAxis", "visibleGrid", "visibleLabels",
                             "visibleTicks", "forceZero", "labelTextPostFormat",
                             "labelTextScale", "maximumTicks", "minimumTickSpacing", "rangeRound",
                             "valueMax", "valueMin", "valueStep", "valueSteps", "zrangePref",
                             "joinAxis", "joinAxisMode", "joinAxisPos", "tickLeft", "tickRight"}),
    "line": frozenset({"name", "strokeColor", "strokeWidth", "strokeDashArray", "symbol"}),
    "slices": frozenset({"strokeColor", "strokeWidth", "fillColor", "strokeDashArray", "fontName",
                         "fontSize", "labelRadius", "popout"}),
    "slice": frozenset({"strokeColor", "strokeWidth", "fillColor", "strokeDashArray", "fontName",
                        "fontSize", "labelRadius", "popout"}),
    "texts": frozenset(),
    "text": frozenset({"x", "y", "angle", "fontName", "fontSize", "fillColor", "textAnchor"}),
}  # fmt: skip
"""Every element a template may produce, with the attributes it may carry. Anything else —
``plugInFlowable``, ``plugInGraphic``, ``evalString``, ``includePdfPages``, ``imageAndFlowables``,
``logConfig``, links, forms, bar codes, 3-D and spider charts — is refused."""

_FILE_ATTRIBUTES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("image", "file"): (".png", ".jpg", ".jpeg", ".gif"),
    ("img", "src"): (".png", ".jpg", ".jpeg", ".gif"),
    ("registerTTFont", "fileName"): (".ttf", ".ttc"),
}
"""Attributes that name a file, with the suffixes allowed; images may also be PNG data URIs."""

_DATA_PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/]+={0,2})\Z")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    attribute_defaults=False,
    collect_ids=False,
)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _refuse(element: Any, problem: str, attribute: str | None = None) -> TemplateError:
    where = f"line {element.sourceline}, <{element.tag}>"
    if attribute is not None:
        where += f" attribute '{attribute}'"
    return TemplateError(
        f"RML {where}: {problem}",
        hint="templates may only use the elements and files listed in templates/README.md",
    )


def _check_file(
    element: Any, attribute: str, value: str, suffixes: tuple[str, ...], allowed: list[Path]
) -> str:
    """Return the checked value (a PNG data URI or an absolute path inside `allowed`)."""
    value = value.strip()
    if value.startswith("data:"):
        match = _DATA_PNG.match(value)
        if match is None or ".png" not in suffixes:
            raise _refuse(element, "only data:image/png;base64,… URIs are allowed", attribute)
        try:
            head = base64.b64decode(match.group(1)[:16], validate=True)
        except binascii.Error:
            raise _refuse(element, "the data URI is not valid base64", attribute) from None
        if not head.startswith(_PNG_MAGIC):
            raise _refuse(element, "the data URI does not hold a PNG image", attribute)
        return value
    if "\x00" in value or not value:
        raise _refuse(element, "empty or malformed file name", attribute)
    if value.startswith("[") or _SCHEME.match(value) or "://" in value:
        # z3c.rml reads "[package]/path" (importing the package) and any URL scheme
        raise _refuse(element, f"URLs and package paths are not allowed: {value!r}", attribute)
    given = Path(value)
    if ".." in given.parts:
        raise _refuse(element, f"'..' is not allowed in file paths: {value!r}", attribute)
    if given.suffix.lower() not in suffixes:
        raise _refuse(element, f"expected a {'/'.join(suffixes)} file, got {value!r}", attribute)
    resolved = (allowed[0] / given if not given.is_absolute() else given).resolve()
    if not any(resolved.is_relative_to(folder) for folder in allowed):
        folders = ", ".join(str(f) for f in allowed)
        raise _refuse(element, f"{value!r} is outside the allowed folders ({folders})", attribute)
    return str(resolved)


def _sanitize_tree(rml: str, allowed_dirs: Sequence[Path]) -> Any:
    """Parse and check `rml`; return the lxml root with file references made absolute."""
    declaration = _DECLARATION.search(rml)
    if declaration is not None:
        line = rml.count("\n", 0, declaration.start()) + 1
        raise TemplateError(
            f"RML line {line}: DOCTYPE and entity declarations are not allowed",
            hint="remove the <!DOCTYPE …> / <!ENTITY …> declaration from the template",
        )
    if not allowed_dirs:
        raise TemplateError("sanitize_rml needs at least one allowed folder")
    allowed = [Path(d).resolve() for d in allowed_dirs]
    try:
        root = etree.fromstring(rml.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise TemplateError(f"RML line {exc.lineno}: not well-formed XML: {exc.msg}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise TemplateError("RML: DOCTYPE and entity declarations are not allowed")
    if root.tag != "document":
        raise _refuse(root, "the root element must be <document>")
    for element in root.iter():
        tag = element.tag
        if not isinstance(tag, str):  # an unexpanded entity reference (&name;)
            raise TemplateError(f"RML line {element.sourceline}: entity references are not allowed")
        permitted = _ALLOWED_ELEMENTS.get(tag)
        if permitted is None:
            raise _refuse(element, "element is not allowed")
        for attribute, value in element.attrib.items():
            if attribute not in permitted:
                raise _refuse(element, "attribute is not allowed", attribute)
            suffixes = _FILE_ATTRIBUTES.get((tag, attribute))
            if suffixes is not None:
                element.set(attribute, _check_file(element, attribute, value, suffixes, allowed))
            elif (
                tag == "getName"
                and attribute == "id"
                and value == _LAST_PAGE
                and (element.getparent() is None or element.getparent().tag not in _DRAW_STRINGS)
            ):
                raise _refuse(
                    element,
                    "lastPage may only be used in drawString, drawRightString or "
                    "drawCentredString (page graphics)",
                    attribute,
                )
            elif tag == "document" and attribute == "filename" and ("/" in value or "\\" in value):
                raise _refuse(element, "the file name may not contain a path", attribute)
    return root


def sanitize_rml(rml: str, *, allowed_dirs: Sequence[Path]) -> str:
    """Check RML text against the allowlist and return it, ready for z3c.rml.

    `rml` is the RML that a template rendered. It is parsed without a DTD, entities or network
    access; a DOCTYPE or entity declaration is refused outright. Every element and attribute
    must be on the allowlist (`_ALLOWED_ELEMENTS`). Every file reference (``image file``,
    ``img src``, ``registerTTFont fileName``) must be a ``data:image/png;base64,`` URI or a
    path that, after resolving symlinks, lies inside one of `allowed_dirs`; relative paths are
    taken from the first of `allowed_dirs` and returned as absolute paths. URLs of any scheme,
    ``[package]/path`` references and ``..`` are refused. Comments and processing
    instructions are dropped.

    Raises `TemplateError` naming the line, the element and the attribute.
    """
    root = _sanitize_tree(rml, allowed_dirs)
    text: str = etree.tostring(root, encoding="unicode")
    return text


# --------------------------------------------------------------------------------------------
# Fonts and z3c.rml hooks
# --------------------------------------------------------------------------------------------


class _Cache:
    """Parsed TrueType fonts and stylesheets, so that a document does not build them again.

    z3c.rml resets reportlab's font registry for every document, and `registerTTFont` would
    parse the file again (about 20 % of a render). A reportlab `TTFont` keeps its per-document
    subset state in a WeakKeyDictionary keyed by the PDF document, so one object can serve
    many documents. Entries are keyed by path, size and modification time.
    """

    def __init__(self) -> None:
        self._fonts: dict[tuple[str, str], tuple[tuple[int, int], Any]] = {}
        self._coverage: dict[tuple[str, ...], frozenset[int]] = {}
        self.stylesheets: dict[bytes, tuple[dict[str, Any], ...]] = {}
        """Processed ``<stylesheet>`` elements, see `_CachedStylesheet`."""
        self.paragraphs: _ParagraphCache | None = _ParagraphCache()
        """Parsed and line-broken paragraphs, see `_CachedParagraph` (None: parse each anew)."""
        self._lock = threading.Lock()

    def get(self, face_name: str, path: str) -> Any:
        try:
            stat = Path(path).stat()
        except OSError as exc:
            raise TemplateError(
                f"font file for '{face_name}' not found: {path}",
                hint="check the registerTTFont fileName in the template",
            ) from exc
        stamp = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._fonts.get((face_name, path))
            if cached is not None and cached[0] == stamp:
                return cached[1]
        try:
            font = TTFont(face_name, path)
        except Exception as exc:  # reportlab raises TTFError, struct.error, OSError, …
            raise TemplateError(f"cannot read the font file {path}: {exc}") from exc
        with self._lock:
            self._fonts[(face_name, path)] = (stamp, font)
        return font

    def coverage(self, fonts: Sequence[tuple[str, str]]) -> frozenset[int]:
        """Code points that every one of `fonts` ((face name, path) pairs) can draw."""
        loaded = [self.get(name, path) for name, path in fonts]
        key = tuple(sorted(f"{name}\0{path}" for name, path in fonts))
        with self._lock:
            cached = self._coverage.get(key)
        if cached is not None:
            return cached
        sets = [frozenset(font.face.charToGlyph) for font in loaded]
        covered = frozenset.intersection(*sets) if sets else frozenset()
        with self._lock:
            self._coverage[key] = covered
        return covered


class _CachedRegisterTTFont(z3c.rml.document.RegisterTTFont):  # type: ignore[misc]  # untyped base
    """``<registerTTFont>`` that takes the parsed font from the renderer's cache."""

    def process(self) -> None:
        face_name, path = self.getAttributeValues(valuesOnly=True)
        manager = z3c.rml.attr.getManager(self)
        pdfmetrics.registerFont(manager.cache.get(face_name, path))


_MAX_STYLESHEETS = 16


class _CachedStylesheet(z3c.rml.stylesheet.Stylesheet):  # type: ignore[misc]  # untyped base
    """``<stylesheet>`` processed once per distinct text, then reused.

    Building ~30 paragraph styles (each a deep copy of its parent) took about a tenth of a
    render, and a template's stylesheet does not change between certificates. The styles,
    names and colours the stylesheet defines are recorded and replayed. Styles are shared
    between documents read-only: z3c.rml copies a style before an element overrides it.
    """

    def process(self) -> None:
        manager = z3c.rml.attr.getManager(self)
        cache: dict[bytes, tuple[dict[str, Any], ...]] = manager.cache.stylesheets
        key = etree.tostring(self.element)
        cached = cache.get(key)
        if cached is None:
            tables = (manager.styles, manager.names, manager.colors)
            before = [dict(table) for table in tables]
            super().process()
            cached = tuple(
                {k: v for k, v in table.items() if k not in old or old[k] is not v}
                for table, old in zip(tables, before, strict=True)
            )
            if len(cache) >= _MAX_STYLESHEETS:  # a template that puts data in its styles
                cache.clear()
            cache[key] = cached
        styles, names, colors = cached
        manager.styles.update(styles)
        manager.names.update(names)
        manager.colors.update(colors)


_MAX_PARAGRAPHS = 2048
_MAX_SEEN = 16384


class _ParagraphCache:
    """Parsed paragraphs and their line breaks, shared by the documents of one renderer.

    A certificate's labels, headings and statements are the same text in the same style in
    every certificate, and the lab header is drawn on every page: parsing their markup and
    breaking them into lines took about a third of a render. A paragraph is looked up by its
    text and style object, its line breaks by that key and the widths; each entry holds its
    style, and a hit must be that very object (an id can be reused once a style is gone).
    What `breakLines` changes on the paragraph is recorded and replayed.
    Paragraphs with per-page content (``pageNumber``, ``getName``, ``evalString``) are never
    cached. Only texts that come back in a later document are kept, and the tables are
    cleared when full: a batch of 10,000 customers' names does not grow the cache.
    """

    def __init__(self) -> None:
        self.parsed: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]] = {}
        self.broken: dict[tuple[Any, ...], tuple[Any, Any, dict[str, Any]]] = {}
        self._seen: dict[tuple[Any, ...], int] = {}
        """Keys met so far, with the document they were first met in."""
        self._document = 0
        self._this_document: dict[tuple[bool, tuple[Any, ...]], Any] = {}
        """Entries of texts met only in the current document (a table lays a cell out twice)."""

    def next_document(self) -> None:
        """A new document starts (`_Document`)."""
        self._document += 1
        self._this_document.clear()

    def lookup(self, table: dict[tuple[Any, ...], Any], key: tuple[Any, ...]) -> Any:
        """The entry of `key` in `table` (`parsed` or `broken`), or None."""
        hit = table.get(key)
        return hit if hit is not None else self._this_document.get((table is self.parsed, key))

    def remember(self, table: dict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
        """Keep `value` under `key` once the key comes back in a later document: a text of one
        certificate only (its number, a customer's name, the QR address) is kept for its own
        document only."""
        first = self._seen.get(key)
        if first is None or first == self._document:
            if first is None:
                if len(self._seen) >= _MAX_SEEN:
                    self._seen.clear()
                self._seen[key] = self._document
            self._this_document[(table is self.parsed, key)] = value
            return
        if len(table) >= _MAX_PARAGRAPHS:
            table.clear()
        table[key] = value


class _CachedParagraph(z3c.rml.paraparser.Z3CParagraph):  # type: ignore[misc]  # untyped base
    """z3c.rml's paragraph, parsed and broken into lines once per distinct text and width."""

    def __init__(
        self,
        text: Any,
        style: Any,
        bulletText: Any = None,
        frags: Any = None,
        caseSensitive: int = 1,
        encoding: str = "utf8",
        manager: Any = None,
    ) -> None:
        cache: _ParagraphCache | None = getattr(getattr(manager, "cache", None), "paragraphs", None)
        self._cache_key: tuple[Any, ...] | None = None
        if cache is None or frags is not None or not isinstance(text, str):
            super().__init__(text, style, bulletText, frags, caseSensitive, encoding, manager)
            return
        key = (text, id(style), bulletText, caseSensitive, encoding)
        hit = cache.lookup(cache.parsed, key)
        if hit is not None and hit[0] is style:
            self.__dict__.update(hit[1])
        else:
            super().__init__(text, style, bulletText, frags, caseSensitive, encoding, manager)
            if any(isinstance(f, z3c.rml.paraparser.ParaFragWrapper) for f in self.frags):
                return  # drawn differently on every page: never cached
            state = {k: v for k, v in self.__dict__.items() if k != "_cache_key"}
            cache.remember(cache.parsed, key, (style, state))
        self._cache_key = key
        self._paragraphs = cache

    def breakLines(self, width: Any) -> Any:
        key = self._cache_key
        if key is None:
            return super().breakLines(width)
        cache: _ParagraphCache = self._paragraphs
        full = (*key, tuple(width) if isinstance(width, list | tuple) else width)
        hit = cache.lookup(cache.broken, full)
        if hit is not None and hit[0] is self.style:  # the id in the key is that style's
            self.__dict__.update(hit[2])
            return hit[1]
        before = dict(self.__dict__)
        result = super().breakLines(width)
        changed = {k: v for k, v in self.__dict__.items() if k not in before or before[k] is not v}
        cache.remember(cache.broken, full, (self.style, result, changed))
        return result


class _DocInit(z3c.rml.document.DocInit):  # type: ignore[misc]  # untyped base
    factories: ClassVar[dict[str, Any]] = {
        **z3c.rml.document.DocInit.factories,
        "registerTTFont": _CachedRegisterTTFont,
    }


_LAST_PAGE = "lastPage"
_LAST_PAGE_MARK = "\ue000"
"""Stands in for the page count until the last page is known (a private-use character)."""
_DRAW_STRINGS = frozenset({"drawString", "drawRightString", "drawCentredString",
                           "drawCenteredString"})  # fmt: skip


@zope.interface.implementer(
    z3c.rml.interfaces.IManager,
    z3c.rml.interfaces.IPostProcessorManager,
    z3c.rml.interfaces.ICanvasManager,
)  # z3c.rml finds the manager by the interfaces declared on the class itself
class _Document(z3c.rml.document.Document):  # type: ignore[misc]  # untyped base
    """z3c.rml's document, with cached fonts and a single layout pass where possible.

    z3c.rml answers ``<getName>`` of a name not yet defined with its default and asks
    reportlab for one more full layout pass: the page count ("Trang 1/2") and the results
    page are forward references, so every certificate would be laid out twice. Here:

    * ``lastPage`` is answered with `_LAST_PAGE_MARK`; `_CertificateCanvas` holds back the
      strings that contain it and draws them when the document is saved and the page count is
      known (the sanitiser allows ``lastPage`` only in the drawString family).
    * With `optimistic`, any other forward reference is answered with its ``default`` and
      remembered; `guessed_right` tells afterwards whether the name got that value. If not,
      the renderer lays the document out again the z3c.rml way.
    """

    factories: ClassVar[dict[str, Any]] = {
        **z3c.rml.document.Document.factories,
        "docinit": _DocInit,
        "stylesheet": _CachedStylesheet,
    }

    def __init__(self, element: Any, canvas_class: Any, cache: _Cache, *, optimistic: bool) -> None:
        super().__init__(element, canvasClass=canvas_class)
        self.cache = cache
        if cache.paragraphs is not None:
            cache.paragraphs.next_document()
        self.optimistic = optimistic
        self.guesses: dict[str, str] = {}

    def get_name(self, name: str, default: str | None = None) -> str:
        if name == _LAST_PAGE:
            return _LAST_PAGE_MARK
        if self.optimistic and name not in self.names:
            value = "" if default is None else default
            self.guesses.setdefault(name, value)
            return value
        found: str = super().get_name(name, default)
        return found

    def guessed_right(self) -> bool:
        """True when every forward reference got the value its default guessed."""
        return all(self.names.get(name, value) == value for name, value in self.guesses.items())


_Matrix = tuple[float, float, float, float, float, float]


def _multiply(m: _Matrix, n: _Matrix) -> _Matrix:
    """m × n, as reportlab's `Canvas.transform` composes them."""
    a0, b0, c0, d0, e0, f0 = m
    a, b, c, d, e, f = n
    return (
        a0 * a + c0 * b,
        b0 * a + d0 * b,
        a0 * c + c0 * d,
        b0 * c + d0 * d,
        a0 * e + c0 * f + e0,
        b0 * e + d0 * f + f0,
    )


def _invert(m: _Matrix) -> _Matrix:
    a, b, c, d, e, f = m
    det = a * d - b * c
    return (d / det, -b / det, -c / det, a / det, (c * f - d * e) / det, (b * e - a * f) / det)


@dataclass(frozen=True, slots=True)
class _HeldString:
    """A drawString call that waits for the page count."""

    method: str
    x: float
    y: float
    text: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    matrix: _Matrix
    font: tuple[str, float, float]
    fill: Any


class _CertificateCanvas(Canvas):  # type: ignore[misc]  # untyped base
    """A canvas that embeds every font and prints the page count in one layout pass.

    *Fonts.* reportlab's canvas starts every page in ``rl_config.canvas_basefontname``
    (Helvetica, restored by z3c.rml's ``rl_config._reset()``) and declares it in the PDF even
    if no text uses it: pdffonts then lists Helvetica with emb "no". z3c.rml gives no way to
    set the initial font, but it hands our class to reportlab's ``multiBuild`` as the
    canvasmaker, so we set ``initialFontName`` here. ``save`` then checks that every font the
    document declares is a TrueType font (embedded as a subset).

    *Page count.* Strings containing `_LAST_PAGE_MARK` are held back with the graphics state
    they were drawn in; pages are kept until ``save``, which draws the held strings with the
    page count and only then writes the pages (reportlab's "NumberedCanvas" recipe).
    """

    def __init__(self, *args: Any, embedded_font: str, **kwargs: Any) -> None:
        kwargs["initialFontName"] = kwargs.get("initialFontName") or embedded_font
        super().__init__(*args, **kwargs)
        self._held: list[_HeldString] = []
        self._pages: list[tuple[dict[str, Any], list[_HeldString]]] = []

    def _draw(self, method: str, x: float, y: float, text: str, args: Any, kwargs: Any) -> None:
        if _LAST_PAGE_MARK in text:
            self._held.append(
                _HeldString(
                    method,
                    x,
                    y,
                    text,
                    args,
                    kwargs,
                    self._currentMatrix,
                    (self._fontname, self._fontsize, self._leading),
                    self._fillColorObj,
                )
            )
        else:
            getattr(Canvas, method)(self, x, y, text, *args, **kwargs)

    def drawString(self, x: float, y: float, text: str, *args: Any, **kwargs: Any) -> None:
        self._draw("drawString", x, y, text, args, kwargs)

    def drawRightString(self, x: float, y: float, text: str, *args: Any, **kwargs: Any) -> None:
        self._draw("drawRightString", x, y, text, args, kwargs)

    def drawCentredString(self, x: float, y: float, text: str, *args: Any, **kwargs: Any) -> None:
        self._draw("drawCentredString", x, y, text, args, kwargs)

    drawCenteredString = drawCentredString

    def showPage(self) -> None:
        self._pages.append((dict(self.__dict__), self._held))
        self._held = []
        self._startPage()

    def save(self) -> None:
        total = str(len(self._pages))
        for state, held in self._pages:
            self.__dict__.update(state)
            for item in held:
                self.saveState()
                relative = _multiply(_invert(self._currentMatrix), item.matrix)
                if relative != (1, 0, 0, 1, 0, 0):
                    self.transform(*relative)
                self.setFont(*item.font)
                self.setFillColor(item.fill)
                text = item.text.replace(_LAST_PAGE_MARK, total)
                getattr(Canvas, item.method)(self, item.x, item.y, text, *item.args, **item.kwargs)
                self.restoreState()
            Canvas.showPage(self)
        self._pages = []
        for name in self._doc.fontMapping:
            if not isinstance(pdfmetrics.getFont(name), TTFont):
                raise TemplateError(
                    f"the template uses font '{name}', which would not be embedded in the PDF",
                    hint="register a TrueType font in <docinit> and name it in every style "
                    "(paraStyle fontName, blockFont name, setFont name)",
                )
        super().save()


# --------------------------------------------------------------------------------------------
# Template helpers (available inside templates)
# --------------------------------------------------------------------------------------------

_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_MODES = {
    VerificationMode.INITIAL: ("Ban đầu", "Initial"),
    VerificationMode.PERIODIC: ("Định kỳ", "Periodic"),
    VerificationMode.AFTER_REPAIR: ("Sau sửa chữa", "After repair"),
}


def _dmy(value: date) -> str:
    """dd/mm/yyyy, as dates print on the certificate."""
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def _place_date_vi(place: str, value: date) -> str:
    """The Vietnamese place-and-date line: "Đồng Tháp, ngày 27 tháng 11 năm 2026".

    Decree 30/2020/NĐ-CP: days below 10 and the months 1 and 2 take a leading zero.
    """
    day = f"{value.day:02d}"
    month = f"{value.month:02d}" if value.month <= 2 else str(value.month)
    return f"{place}, ngày {day} tháng {month} năm {value.year}"


def _ascii_fold(text: str) -> str:
    """Drop the diacritics for the English line: "Đồng Tháp" → "Dong Thap"."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _place_date_en(place: str, value: date) -> str:
    """The English place-and-date line: "Dong Thap, 27 November 2026"."""
    return f"{_ascii_fold(place)}, {value.day} {_MONTHS_EN[value.month - 1]} {value.year}"


def _num(value: Decimal | int | None) -> str:
    """A Decimal as printed: no exponent, trailing zeros kept ("0.10" stays "0.10")."""
    if value is None:
        return ""
    return format_decimal(Decimal(value))


def _result(value: Decimal | None, uncertainty: Decimal) -> str:
    """`value` rounded to the decimal place of the rounded expanded uncertainty."""
    if value is None:
        return ""
    return format_result(value, uncertainty)[0]


def _uncertainty(uncertainty: Decimal) -> str:
    """The expanded uncertainty rounded up to two significant digits."""
    return format_result(uncertainty, uncertainty)[1]


def _split_bilingual(text: str) -> tuple[str, str]:
    """Split "Giám đốc / Director" into ("Giám đốc", "Director"); no " / " gives (text, "")."""
    vi, sep, en = text.partition(" / ")
    return (vi.strip(), en.strip()) if sep else (text.strip(), "")


# --------------------------------------------------------------------------------------------
# Renderer
# --------------------------------------------------------------------------------------------

_RENDER_LOCK = threading.Lock()
"""z3c.rml and reportlab keep global state (font registry, rl_config): one render at a time."""

_TTFONT_CLASS = ttfonts.TTFont
_RESET_FONTS: dict[tuple[Any, ...], Any] = {}


def _reused_ttfont(*args: Any, **kwargs: Any) -> Any:
    """`TTFont(...)` that returns the font parsed the first time for the same arguments."""
    key = (*args, *sorted(kwargs.items()))
    font = _RESET_FONTS.get(key)
    if font is None:
        font = _RESET_FONTS[key] = _TTFONT_CLASS(*args, **kwargs)
    return font


@contextmanager
def _quick_reportlab_reset() -> Iterator[None]:
    """Make z3c.rml's per-document ``rl_config._reset()`` cheap, and write binary streams.

    The reset runs callbacks that re-register the Vera fonts (reportlab's testshapes and
    z3c.rml's rlfix, four TTFs each): parsing them again took about 25 ms of every document.
    While the reset runs, ``ttfonts.TTFont`` hands back the fonts parsed the first time
    (a TTFont keeps its per-document state in a WeakKeyDictionary, so sharing is safe). After
    it, ``useA85`` is switched off: ASCII85 only makes the PDF bigger and cost about 15 ms.
    z3c.rml's paragraphs are made as `_CachedParagraph` while it runs.
    Held under `_RENDER_LOCK`; everything is put back on exit.
    """
    original_reset = rl_config._reset
    original_a85 = rl_config.useA85
    original_paragraph = z3c.rml.flowable.Paragraph.klass
    z3c.rml.flowable.Paragraph.klass = _CachedParagraph

    def reset() -> None:
        ttfonts.TTFont = _reused_ttfont
        try:
            original_reset()
        finally:
            ttfonts.TTFont = _TTFONT_CLASS
        rl_config.useA85 = 0

    rl_config._reset = reset
    try:
        yield
    finally:
        rl_config._reset = original_reset
        rl_config.useA85 = original_a85
        z3c.rml.flowable.Paragraph.klass = original_paragraph


@contextmanager
def _drawing_font(face: str) -> Iterator[None]:
    """Make `face` reportlab's default font for drawings (charts) while a document renders.

    A drawing starts its graphics state in ``shapes.STATE_DEFAULTS['fontName']``
    (Helvetica), which the PDF would then declare without embedding it. Held under
    `_RENDER_LOCK`; put back on exit.
    """
    saved = dict.__getitem__(shapes.STATE_DEFAULTS, "fontName")
    shapes.STATE_DEFAULTS["fontName"] = face
    try:
        yield
    finally:
        shapes.STATE_DEFAULTS["fontName"] = saved


@dataclass(frozen=True, slots=True)
class _Prepared:
    template: str
    root: Any
    fonts: tuple[tuple[str, str], ...]


class Renderer:
    """Renders certificates with the templates of one folder.

    Build one `Renderer` and keep it: it holds the Jinja2 environment (compiled templates),
    the font paths and the parsed fonts. `template_dir` is the lab's template folder; None
    uses `default_template_dir()`. Templates are chosen by the certificate's kind:
    ``verification.rml.j2`` or ``calibration.rml.j2``.
    """

    def __init__(self, template_dir: Path | None = None) -> None:
        self.template_dir = (template_dir or default_template_dir()).resolve()
        try:
            regular = fontpkg.path(_FONT_FAMILY, 400)
            self.fonts: dict[str, str] = {
                "regular": str(regular),
                "bold": str(fontpkg.path(_FONT_FAMILY, 700)),
                "italic": str(fontpkg.path(_FONT_FAMILY, 400, "italic")),
                "bold_italic": str(fontpkg.path(_FONT_FAMILY, 700, "italic")),
            }
        except fontpkg.FontpkgError as exc:
            raise TemplateError(
                f"the font '{_FONT_FAMILY}' is not installed: {exc}",
                hint="pip install fontpkg-be-vietnam-pro",
            ) from exc
        self.font_dir = Path(regular).resolve().parent
        self.allowed_dirs: tuple[Path, ...] = (self.template_dir, self.font_dir)
        self._cache = _Cache()
        self._logos: dict[tuple[str, int, int], str] = {}
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(self.template_dir),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("j2", "xml", "rml"), default_for_string=True, default=True
            ),
            auto_reload=False,  # templates compile once per Renderer
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters.update(
            dmy=_dmy, num=_num, result=_result, uncertainty=_uncertainty,
            bilingual=_split_bilingual,
        )  # fmt: skip
        self._env.globals.update(
            place_date_vi=_place_date_vi,
            place_date_en=_place_date_en,
            verification_modes=_MODES,
        )
        _logger.debug("renderer for %s, fonts in %s", self.template_dir, self.font_dir)

    # -- public API ---------------------------------------------------------------------------

    def render_rml(
        self,
        cert: AnyCertificate,
        *,
        number: str,
        issued: date,
        qr_url: str,
        settings: Settings,
        accredited: bool = True,
    ) -> str:
        """Return the sanitised RML for `cert`.

        `number` is the certificate number printed on every page, `issued` the date of issue
        (the place-and-date line), `qr_url` the address the QR code and the small print
        beneath it carry, `settings` the lab profile (name, address, place, accreditation,
        logo), `accredited` False to leave the accreditation mark off and say the work is
        outside the scope of accreditation (issue 8). Raises `TemplateError` for a missing or
        broken template, a refused RML
        construct, a missing font or a character the font cannot draw.
        """
        prepared = self._prepare(cert, number=number, issued=issued, qr_url=qr_url,
                                 settings=settings, accredited=accredited)  # fmt: skip
        text: str = etree.tostring(prepared.root, encoding="unicode")
        return text

    def render_pdf(
        self,
        cert: AnyCertificate,
        *,
        number: str,
        issued: date,
        qr_url: str,
        settings: Settings,
        accredited: bool = True,
    ) -> bytes:
        """Return the certificate as PDF bytes (A4, fonts embedded, title = `number`).

        The parameters are those of `render_rml`. Raises `TemplateError` as `render_rml`
        does, and when z3c.rml or reportlab cannot lay the document out.
        """
        prepared = self._prepare(cert, number=number, issued=issued, qr_url=qr_url,
                                 settings=settings, accredited=accredited)  # fmt: skip
        return self._layout(prepared.root, self.template_dir / prepared.template, prepared.fonts)

    def layout_rml(self, rml: str, *, source: Path) -> bytes:
        """Lay out RML that a template of this renderer's family produced (a report, say).

        `rml` passes the same allowlist as a certificate's (`sanitize_rml`, file references
        confined to `allowed_dirs`) and is laid out with the same fonts, canvas and checks:
        every font embedded, page x of y in one pass. `source` names the template in errors.
        Raises `TemplateError`.
        """
        root = _sanitize_tree(rml, self.allowed_dirs)
        fonts = tuple(
            (el.get("faceName", ""), el.get("fileName", ""))
            for el in root.iterfind("docinit/registerTTFont")
        )
        return self._layout(root, source, fonts)

    # -- internals ----------------------------------------------------------------------------

    def _layout(self, root: Any, source: Path, fonts: Sequence[tuple[str, str]]) -> bytes:
        """z3c.rml on the sanitised tree `root`, in one layout pass when forward references
        guess right (`_Document`), else two."""
        if not fonts:
            raise TemplateError(
                f"{source}: the template registers no TrueType font in <docinit>",
                hint="add <registerTTFont faceName=… fileName=…/>; fonts must be embedded",
            )
        face = fonts[0][0]
        canvas_class = functools.partial(_CertificateCanvas, embedded_font=face)
        try:
            with _RENDER_LOCK, _quick_reportlab_reset(), _drawing_font(face):
                for optimistic in (True, False):
                    output = io.BytesIO()
                    document = _Document(root, canvas_class, self._cache, optimistic=optimistic)
                    document.filename = source.name
                    document.process(output)
                    if document.guessed_right():
                        break
                    _logger.debug("%s: forward references %s guessed wrong, laying out again",
                                  source, document.guesses)  # fmt: skip
        except CertissuerError:
            raise
        except Exception as exc:  # z3c.rml and reportlab raise anything from ValueError up
            raise TemplateError(
                f"{source}: the RML could not be laid out: {type(exc).__name__}: {exc}"
            ) from exc
        return output.getvalue()

    def _prepare(
        self,
        cert: AnyCertificate,
        *,
        number: str,
        issued: date,
        qr_url: str,
        settings: Settings,
        accredited: bool = True,
    ) -> _Prepared:
        if isinstance(cert, VerificationCertificate) and not cert.passes:
            # Circular 24/2013 Art. 38: a failed instrument gets no verification certificate.
            raise CertissuerError(
                f"{number}: refusing to print a verification certificate for an instrument "
                "that fails: a check point's error exceeds its maximum permissible error"
            )
        name = f"{cert.kind}.rml.j2"
        template = self._template(name)
        qr_src, qr_modules = _qr_image(qr_url)
        context = {
            "cert": cert,
            "number": number,
            "issued": issued,
            "qr": {
                "src": qr_src,
                "url": qr_url,
                # 0.5 mm per module scans from a 150 dpi print; cap the size for long URLs
                "size_mm": min(round(qr_modules * 0.5, 1), 40.0),
            },
            "lab": self._lab(settings),
            "fonts": self.fonts,
            "template_dir": str(self.template_dir),
            "accredited": accredited,
        }
        try:
            rml = template.render(context)
        except jinja2.TemplateError as exc:
            raise self._jinja_error(name, exc) from exc
        root = _sanitize_tree(rml, self.allowed_dirs)
        fonts = tuple(
            (el.get("faceName", ""), el.get("fileName", ""))
            for el in root.iterfind("docinit/registerTTFont")
        )
        if fonts:
            self._check_glyphs(name, root, fonts, cert, settings, number, qr_url)
        return _Prepared(template=name, root=root, fonts=fonts)

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self._env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"{self.template_dir / name}: template not found",
                hint=f"a template folder needs {name}; see templates/README.md",
            ) from exc
        except jinja2.TemplateError as exc:
            raise self._jinja_error(name, exc) from exc

    def _jinja_error(self, name: str, exc: jinja2.TemplateError) -> TemplateError:
        if isinstance(exc, jinja2.TemplateSyntaxError):
            where = f"{exc.filename or self.template_dir / (exc.name or name)}, line {exc.lineno}"
            return TemplateError(f"{where}: {exc.message}")
        if isinstance(exc, jinja2.TemplateNotFound):
            return TemplateError(f"{self.template_dir / str(exc.name)}: template not found")
        # Jinja2 rewrites tracebacks so that template frames carry the template's file and line
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename.endswith(".j2")
        ]
        where = (
            f"{frames[-1].filename}, line {frames[-1].lineno}"
            if frames
            else str(self.template_dir / name)
        )
        return TemplateError(f"{where}: {exc}")

    def _lab(self, settings: Settings) -> dict[str, str]:
        return {
            "name_vi": settings.lab_name_vi,
            "name_en": settings.lab_name_en,
            "address_vi": settings.lab_address_vi,
            "address_en": settings.lab_address_en,
            "place": settings.lab_place,
            "accreditation": settings.lab_accreditation,
            "designation": settings.lab_designation,
            "logo": self._logo(settings.lab_logo) if settings.lab_logo else "",
        }

    def _logo(self, path: Path) -> str:
        """The lab logo as a PNG data URI (read once per file version)."""
        try:
            stat = path.stat()
            key = (str(path), stat.st_size, stat.st_mtime_ns)
            cached = self._logos.get(key)
            if cached is not None:
                return cached
            with Image.open(path) as image:
                image.load()
                if image.format == "PNG":
                    png = path.read_bytes()
                else:
                    buffer = io.BytesIO()
                    image.convert("RGBA").save(buffer, format="PNG")
                    png = buffer.getvalue()
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"lab logo {path}: cannot read it as an image: {exc}",
                hint="set [lab] logo to a PNG or JPEG file, or remove the key",
            ) from exc
        uri = _data_uri(png)
        self._logos[key] = uri
        return uri

    def _check_glyphs(
        self,
        name: str,
        root: Any,
        fonts: Sequence[tuple[str, str]],
        cert: AnyCertificate,
        settings: Settings,
        number: str,
        qr_url: str,
    ) -> None:
        covered = self._cache.coverage(fonts)
        for section in ("template", "story"):
            element = root.find(section)
            if element is None:
                continue
            for text in element.itertext():
                for char in text:
                    if ord(char) in covered or char.isspace():
                        continue
                    field = _find_field(char, cert, settings, number, qr_url)
                    where = f"in field '{field}'" if field else f"in the template {name}"
                    raise TemplateError(
                        f"character '{char}' (U+{ord(char):04X}) {where} is not in the font "
                        f"{', '.join(face for face, _ in fonts)}: it would print as a blank",
                        hint="replace the character, or use a template whose font has it",
                    )


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _find_field(
    char: str, cert: AnyCertificate, settings: Settings, number: str, qr_url: str
) -> str | None:
    """The name of the first input field that contains `char`, for the error message."""
    sources: list[tuple[str, Any]] = [
        ("", cert.model_dump(mode="json")),
        ("number", number),
        ("qr_url", qr_url),
    ]
    sources += [
        (f"settings.{f.name}", getattr(settings, f.name))
        for f in fields(settings)
        if isinstance(getattr(settings, f.name), str)
    ]
    for prefix, value in sources:
        for path, text in _walk(value, prefix):
            if char in text:
                return path
    return None
