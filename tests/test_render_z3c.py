"""certissuer.render._z3c: the internals of z3c.rml, reportlab and qrcode that it patches.

Each test names one internal a patch relies on and fails when a new version of the library
moves it, before a render silently loses a speed-up or, worse, a check (every font
embedded, the page count). pyproject.toml pins the libraries to the ranges these pass on.
"""

from __future__ import annotations

import inspect
import io
import threading
from pathlib import Path

import qrcode
import z3c.rml.attr
import z3c.rml.document
import z3c.rml.flowable
import z3c.rml.paraparser
import z3c.rml.stylesheet
import zope.schema  # type: ignore[import-untyped, unused-ignore]  # no type hints
from qrcode import util as qrutil
from reportlab import rl_config
from reportlab.graphics import shapes
from reportlab.pdfbase import ttfonts
from reportlab.pdfgen.canvas import Canvas

from certissuer.render import Renderer, _z3c, reportlab_lock


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


# -- z3c.rml -----------------------------------------------------------------------------------


def test_z3c_document_hooks_are_where_the_patches_put_them() -> None:
    """`Document` swaps two factories, answers `get_name`, and is built with a canvas class."""
    stock = z3c.rml.document.Document
    assert {"docinit", "stylesheet"} <= set(stock.factories)
    assert "registerTTFont" in z3c.rml.document.DocInit.factories
    assert _z3c.Document.factories["docinit"] is _z3c.DocInit
    assert _z3c.Document.factories["stylesheet"] is _z3c.CachedStylesheet
    assert _z3c.DocInit.factories["registerTTFont"] is _z3c.CachedRegisterTTFont
    assert _parameters(stock.__init__) == ["self", "element", "canvasClass"]
    assert _parameters(stock.get_name) == ["self", "name", "default"]
    assert _parameters(stock.process)[:2] == ["self", "outputFile"]
    assert callable(z3c.rml.attr.getManager)


def test_register_ttfont_reads_face_then_file() -> None:
    """`CachedRegisterTTFont` unpacks ``getAttributeValues(valuesOnly=True)`` in this order."""
    signature = z3c.rml.document.RegisterTTFont.signature
    assert zope.schema.getFieldNamesInOrder(signature)[:2] == ["faceName", "fileName"]


def test_paragraph_class_and_signature_are_the_ones_the_cache_subclasses() -> None:
    """`CachedParagraph` replaces ``Paragraph.klass`` and passes z3c.rml's arguments on."""
    assert z3c.rml.flowable.Paragraph.klass is z3c.rml.paraparser.Z3CParagraph
    assert _parameters(z3c.rml.paraparser.Z3CParagraph.__init__) == [
        "self", "text", "style", "bulletText", "frags", "caseSensitive", "encoding", "manager",
    ]  # fmt: skip
    assert hasattr(z3c.rml.paraparser, "ParaFragWrapper")  # per-page content: never cached
    assert callable(z3c.rml.stylesheet.Stylesheet.process)


# -- reportlab ---------------------------------------------------------------------------------


def test_reportlab_state_the_reset_and_the_drawing_font_change() -> None:
    """`quick_reportlab_reset` and `drawing_font` swap these, and put each one back."""
    assert callable(rl_config._reset)
    assert hasattr(rl_config, "useA85")
    assert ttfonts.TTFont is _z3c._TTFONT_CLASS
    assert "fontName" in shapes.STATE_DEFAULTS
    before = (rl_config._reset, rl_config.useA85, z3c.rml.flowable.Paragraph.klass)
    with _z3c.quick_reportlab_reset(), _z3c.drawing_font("Body"):
        assert z3c.rml.flowable.Paragraph.klass is _z3c.CachedParagraph
        assert shapes.STATE_DEFAULTS["fontName"] == "Body"
        rl_config._reset()
        assert rl_config.useA85 == 0
        assert ttfonts.TTFont is _z3c._TTFONT_CLASS
    assert (rl_config._reset, rl_config.useA85, z3c.rml.flowable.Paragraph.klass) == before
    assert shapes.STATE_DEFAULTS["fontName"] != "Body"


def test_canvas_internals_the_certificate_canvas_reads() -> None:
    """`CertificateCanvas` keeps the graphics state of a held string and replays pages."""
    canvas = Canvas(io.BytesIO(), initialFontName="Helvetica")
    for name in ("_currentMatrix", "_fontname", "_fontsize", "_leading", "_fillColorObj"):
        assert hasattr(canvas, name), name
    assert callable(canvas._startPage)
    assert isinstance(canvas._doc.fontMapping, dict)


def test_the_render_takes_the_one_lock() -> None:
    """A render waits for `reportlab_lock`, the lock the signature painter takes too."""
    assert reportlab_lock is _z3c.reportlab_lock
    renderer = Renderer()
    fonts = renderer.fonts
    rml = (
        "<document><docinit>"
        f"<registerTTFont faceName='Body' fileName='{fonts['regular']}'/></docinit>"
        "<template><pageTemplate id='p'><frame id='f' x1='1cm' y1='1cm' width='10cm' "
        "height='10cm'/></pageTemplate></template><stylesheet>"
        "<paraStyle name='Normal' fontName='Body'/></stylesheet>"
        "<story><para>x</para></story></document>"
    )
    done = threading.Event()

    def render() -> None:
        renderer.layout_rml(rml, source=Path("t.rml"))
        done.set()

    with reportlab_lock:
        worker = threading.Thread(target=render)
        worker.start()
        assert not done.wait(0.5), "the render did not wait for reportlab_lock"
    worker.join(30)
    assert done.is_set()


# -- qrcode ------------------------------------------------------------------------------------


def test_qrcode_matrix_hooks() -> None:
    """The data cells come from a symbol whose `map_data` is skipped; masks from `mask_func`."""
    assert _parameters(qrcode.QRCode.map_data) == ["self", "data", "mask_pattern"]
    assert _parameters(qrcode.QRCode.makeImpl) == ["self", "test", "mask_pattern"]
    assert callable(qrutil.mask_func(0))
    cells = _z3c.qr_data_cells(1)
    assert len(cells) == 21
    assert sum(map(sum, cells)) == 26 * 8  # version 1: 26 codewords of 8 modules
