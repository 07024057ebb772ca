"""Every patch certissuer makes to z3c.rml, reportlab and qrcode, and the lock they need.

z3c.rml and reportlab keep process-wide state (reportlab's font registry, ``rl_config``,
``shapes.STATE_DEFAULTS``; z3c.rml's paragraph class), and certissuer changes some of it for
speed and correctness while a document is laid out. Everything that touches those libraries'
internals lives here, so a new version of one of them is checked in one file (pyproject.toml
pins each to a compatible range; tests/test_render_z3c.py fails when an internal moves):

* `FontCache`, `CachedRegisterTTFont`: parse each TrueType font once per renderer.
* `CachedStylesheet`: build a template's paragraph styles once.
* `ParagraphCache`, `CachedParagraph`: parse and break each repeated paragraph once.
* `Document`: answer ``lastPage`` and forward references in one layout pass.
* `CertificateCanvas`: embed every font and print "page x of y" in that one pass.
* `quick_reportlab_reset`, `drawing_font`: cheap per-document resets, charts in our font.
* `qr_data_cells`, `qr_trial_matrix`, …: what `render.qr` needs from qrcode's matrix code.

`reportlab_lock` is the one lock for reportlab's global state: `lay_out` holds it, and so
must any other code that registers fonts or draws with reportlab in the same process (the
visible-signature painter, for one).

>>> with reportlab_lock:  # doctest: +SKIP
...     pdfmetrics.registerFont(font); canvas.save()
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import qrcode
import z3c.rml.attr
import z3c.rml.document
import z3c.rml.flowable
import z3c.rml.interfaces
import z3c.rml.paraparser
import z3c.rml.stylesheet
import zope.interface  # type: ignore[import-untyped, unused-ignore]  # no type hints
from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # lxml-stubs not installed
from qrcode import util as qrutil
from qrcode.constants import ERROR_CORRECT_M
from reportlab import rl_config
from reportlab.graphics import shapes
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from certissuer.errors import CertissuerError, TemplateError
from certissuer.render.sanitize import LAST_PAGE

__all__ = [
    "LAST_PAGE_MARK",
    "CachedParagraph",
    "CachedRegisterTTFont",
    "CachedStylesheet",
    "CertificateCanvas",
    "Document",
    "FontCache",
    "ParagraphCache",
    "drawing_font",
    "lay_out",
    "qr_data_cells",
    "qr_fitted",
    "qr_mask_function",
    "qr_matrix",
    "qr_trial_matrix",
    "quick_reportlab_reset",
    "reportlab_lock",
]

_logger = logging.getLogger(__name__)

reportlab_lock = threading.Lock()
"""The one lock for reportlab's and z3c.rml's process-wide state (font registry, rl_config,
drawing defaults, z3c.rml's paragraph class). Hold it for any reportlab drawing."""


# --------------------------------------------------------------------------------------------
# qrcode: the matrix without its mask search
# --------------------------------------------------------------------------------------------


class _DataCellProbe(qrcode.QRCode):  # type: ignore[misc]  # qrcode is untyped
    """A QR code whose data placement is skipped: the cells left as None are the data cells."""

    def map_data(self, data: Any, mask_pattern: int) -> None:
        return None


def qr_data_cells(version: int) -> list[list[bool]]:
    """The cells of a version-`version` symbol (error correction M) that carry data, True;
    finder, timing, alignment, format and version cells are False."""
    probe = _DataCellProbe(version=version, error_correction=ERROR_CORRECT_M)
    probe.makeImpl(True, 0)
    return [[cell is None for cell in row] for row in probe.modules]


def qr_mask_function(pattern: int) -> Callable[[int, int], bool]:
    """qrcode's mask `pattern` (0–7): whether it flips the cell at (row, column)."""
    applies: Callable[[int, int], bool] = qrutil.mask_func(pattern)
    return applies


def qr_fitted(url: str) -> Any:
    """A `qrcode.QRCode` holding `url`, error correction M, no border, version fitted."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    qr.add_data(url)
    qr.best_fit()
    return qr


def qr_trial_matrix(qr: Any) -> list[list[bool]]:
    """`qr`'s matrix with mask 0 and its format and version areas light (qrcode's test mode),
    as qrcode scores a mask."""
    qr.makeImpl(True, 0)
    modules: list[list[bool]] = qr.modules
    return modules


def qr_matrix(qr: Any, mask: int) -> list[list[bool]]:
    """`qr`'s final matrix with mask pattern `mask`."""
    qr.makeImpl(False, mask)
    modules: list[list[bool]] = qr.modules
    return modules


# --------------------------------------------------------------------------------------------
# Fonts, stylesheets, paragraphs
# --------------------------------------------------------------------------------------------


class FontCache:
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
        """Processed ``<stylesheet>`` elements, see `CachedStylesheet`."""
        self.paragraphs: ParagraphCache | None = ParagraphCache()
        """Parsed and line-broken paragraphs, see `CachedParagraph` (None: parse each anew)."""
        self._lock = threading.Lock()
        """Guards these tables only (a renderer's threads share them); reportlab's own state
        is under `reportlab_lock`."""

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


class CachedRegisterTTFont(z3c.rml.document.RegisterTTFont):  # type: ignore[misc]  # untyped base
    """``<registerTTFont>`` that takes the parsed font from the renderer's cache."""

    def process(self) -> None:
        face_name, path = self.getAttributeValues(valuesOnly=True)
        manager = z3c.rml.attr.getManager(self)
        pdfmetrics.registerFont(manager.cache.get(face_name, path))


_MAX_STYLESHEETS = 16


class CachedStylesheet(z3c.rml.stylesheet.Stylesheet):  # type: ignore[misc]  # untyped base
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


class ParagraphCache:
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
        """A new document starts (`Document`)."""
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


class CachedParagraph(z3c.rml.paraparser.Z3CParagraph):  # type: ignore[misc]  # untyped base
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
        cache: ParagraphCache | None = getattr(getattr(manager, "cache", None), "paragraphs", None)
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
        cache: ParagraphCache = self._paragraphs
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


class DocInit(z3c.rml.document.DocInit):  # type: ignore[misc]  # untyped base
    """``<docinit>`` whose ``<registerTTFont>`` is `CachedRegisterTTFont`."""

    factories: ClassVar[dict[str, Any]] = {
        **z3c.rml.document.DocInit.factories,
        "registerTTFont": CachedRegisterTTFont,
    }


LAST_PAGE_MARK = "\ue000"
"""Stands in for the page count until the last page is known (a private-use character)."""


@zope.interface.implementer(
    z3c.rml.interfaces.IManager,
    z3c.rml.interfaces.IPostProcessorManager,
    z3c.rml.interfaces.ICanvasManager,
)  # z3c.rml finds the manager by the interfaces declared on the class itself
class Document(z3c.rml.document.Document):  # type: ignore[misc]  # untyped base
    """z3c.rml's document, with cached fonts and a single layout pass where possible.

    z3c.rml answers ``<getName>`` of a name not yet defined with its default and asks
    reportlab for one more full layout pass: the page count ("Trang 1/2") and the results
    page are forward references, so every certificate would be laid out twice. Here:

    * ``lastPage`` is answered with `LAST_PAGE_MARK`; `CertificateCanvas` holds back the
      strings that contain it and draws them when the document is saved and the page count is
      known (the sanitiser allows ``lastPage`` only in the drawString family).
    * With `optimistic`, any other forward reference is answered with its ``default`` and
      remembered; `guessed_right` tells afterwards whether the name got that value. If not,
      the renderer lays the document out again the z3c.rml way.
    """

    factories: ClassVar[dict[str, Any]] = {
        **z3c.rml.document.Document.factories,
        "docinit": DocInit,
        "stylesheet": CachedStylesheet,
    }

    def __init__(
        self, element: Any, canvas_class: Any, cache: FontCache, *, optimistic: bool
    ) -> None:
        super().__init__(element, canvasClass=canvas_class)
        self.cache = cache
        if cache.paragraphs is not None:
            cache.paragraphs.next_document()
        self.optimistic = optimistic
        self.guesses: dict[str, str] = {}

    def get_name(self, name: str, default: str | None = None) -> str:
        if name == LAST_PAGE:
            return LAST_PAGE_MARK
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


class CertificateCanvas(Canvas):  # type: ignore[misc]  # untyped base
    """A canvas that embeds every font and prints the page count in one layout pass.

    *Fonts.* reportlab's canvas starts every page in ``rl_config.canvas_basefontname``
    (Helvetica, restored by z3c.rml's ``rl_config._reset()``) and declares it in the PDF even
    if no text uses it: pdffonts then lists Helvetica with emb "no". z3c.rml gives no way to
    set the initial font, but it hands our class to reportlab's ``multiBuild`` as the
    canvasmaker, so we set ``initialFontName`` here. ``save`` then checks that every font the
    document declares is a TrueType font (embedded as a subset).

    *Page count.* Strings containing `LAST_PAGE_MARK` are held back with the graphics state
    they were drawn in; pages are kept until ``save``, which draws the held strings with the
    page count and only then writes the pages (reportlab's "NumberedCanvas" recipe).
    """

    def __init__(self, *args: Any, embedded_font: str, **kwargs: Any) -> None:
        kwargs["initialFontName"] = kwargs.get("initialFontName") or embedded_font
        super().__init__(*args, **kwargs)
        self._held: list[_HeldString] = []
        self._pages: list[tuple[dict[str, Any], list[_HeldString]]] = []

    def _draw(self, method: str, x: float, y: float, text: str, args: Any, kwargs: Any) -> None:
        if LAST_PAGE_MARK in text:
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
                text = item.text.replace(LAST_PAGE_MARK, total)
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
# reportlab's per-document reset and drawing defaults
# --------------------------------------------------------------------------------------------

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
def quick_reportlab_reset() -> Iterator[None]:
    """Make z3c.rml's per-document ``rl_config._reset()`` cheap, and write binary streams.

    The reset runs callbacks that re-register the Vera fonts (reportlab's testshapes and
    z3c.rml's rlfix, four TTFs each): parsing them again took about 25 ms of every document.
    While the reset runs, ``ttfonts.TTFont`` hands back the fonts parsed the first time
    (a TTFont keeps its per-document state in a WeakKeyDictionary, so sharing is safe). After
    it, ``useA85`` is switched off: ASCII85 only makes the PDF bigger and cost about 15 ms.
    z3c.rml's paragraphs are made as `CachedParagraph` while it runs.
    Held under `reportlab_lock`; everything is put back on exit.
    """
    original_reset = rl_config._reset
    original_a85 = rl_config.useA85
    original_paragraph = z3c.rml.flowable.Paragraph.klass
    z3c.rml.flowable.Paragraph.klass = CachedParagraph

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
def drawing_font(face: str) -> Iterator[None]:
    """Make `face` reportlab's default font for drawings (charts) while a document renders.

    A drawing starts its graphics state in ``shapes.STATE_DEFAULTS['fontName']``
    (Helvetica), which the PDF would then declare without embedding it. Held under
    `reportlab_lock`; put back on exit.
    """
    saved = dict.__getitem__(shapes.STATE_DEFAULTS, "fontName")
    shapes.STATE_DEFAULTS["fontName"] = face
    try:
        yield
    finally:
        shapes.STATE_DEFAULTS["fontName"] = saved


# --------------------------------------------------------------------------------------------
# Laying a document out
# --------------------------------------------------------------------------------------------


def lay_out(root: Any, source: Path, fonts: Sequence[tuple[str, str]], cache: FontCache) -> bytes:
    """z3c.rml on the sanitised RML tree `root`, in one layout pass when forward references
    guess right (`Document`), else two; returns the PDF bytes.

    `source` names the template in errors, `fonts` are the (face name, file) pairs the
    document registers (the first is the canvas's initial font), `cache` the renderer's
    `FontCache`. Holds `reportlab_lock`. Raises `TemplateError`.
    """
    if not fonts:
        raise TemplateError(
            f"{source}: the template registers no TrueType font in <docinit>",
            hint="add <registerTTFont faceName=… fileName=…/>; fonts must be embedded",
        )
    face = fonts[0][0]
    canvas_class = functools.partial(CertificateCanvas, embedded_font=face)
    try:
        with reportlab_lock, quick_reportlab_reset(), drawing_font(face):
            for optimistic in (True, False):
                output = io.BytesIO()
                document = Document(root, canvas_class, cache, optimistic=optimistic)
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
