"""The RML allowlist: what a rendered template may contain before z3c.rml reads it.

RML can run Python (``plugInFlowable``, ``evalString``), read any file and fetch URLs, and
templates are data that a lab edits. `sanitize_rml` parses the RML without a DTD, entities or
network access, checks every element and attribute against `ALLOWED_ELEMENTS`, and confines
every file reference to the template folder and the font package.

>>> sanitize_rml('<document><template/><story><para>Hi</para></story></document>',
...              allowed_dirs=[Path("templates")])  # doctest: +SKIP
'<document><template/><story><para>Hi</para></story></document>'
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # lxml-stubs not installed

from certissuer.errors import TemplateError

__all__ = ["ALLOWED_ELEMENTS", "DRAW_STRINGS", "LAST_PAGE", "sanitize_rml", "sanitize_tree"]

LAST_PAGE = "lastPage"
"""The name z3c.rml gives the page count (``<getName id="lastPage"/>``)."""
DRAW_STRINGS = frozenset({"drawString", "drawRightString", "drawCentredString",
                          "drawCenteredString"})  # fmt: skip
"""The page-graphics elements that may print `LAST_PAGE` (the canvas holds them back)."""


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
# Charts: what their elements share.
_OUTLINE = frozenset({"strokeColor", "strokeWidth", "fillColor"})
_CHART = _XY | _OUTLINE | {"dx", "dy", "dwidth", "dheight", "angle", "width", "height"}
"""A chart's box and outline."""
_LABEL = _XY | {
    "angle", "bottomPadding", "boxAnchor", "boxFillColor", "boxStrokeColor", "boxStrokeWidth",
    "boxTarget", "dx", "dy", "fillColor", "fontName", "fontSize", "height", "leading",
    "leftPadding", "maxWidth", "rightPadding", "strokeColor", "strokeWidth", "textAnchor",
    "topPadding", "visible", "width",
}  # fmt: skip
_AXIS = frozenset({
    "gridEnd", "gridStart", "gridStrokeColor", "gridStrokeDashArray", "gridStrokeWidth",
    "strokeColor", "strokeDashArray", "strokeWidth", "style", "visible", "visibleAxis",
    "visibleGrid", "visibleLabels", "visibleTicks",
})  # fmt: skip
_VALUE_AXIS = _AXIS | {
    "forceZero", "labelTextPostFormat", "labelTextScale", "maximumTicks", "minimumTickSpacing",
    "rangeRound", "valueMax", "valueMin", "valueStep", "valueSteps", "zrangePref",
}  # fmt: skip
_SLICE = _OUTLINE | {"strokeDashArray", "fontName", "fontSize", "labelRadius", "popout"}

ALLOWED_ELEMENTS: Mapping[str, frozenset[str]] = {
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
    "barChart": _CHART | {"direction", "useAbsolute", "barWidth", "groupSpacing", "barSpacing",
                          "barLabelFormat"},
    "linePlot": _CHART | {"joinedLines", "reversePlotOrder", "lineLabelNudge", "inFill"},
    "pieChart": _CHART | {"startAngle", "direction", "checkLabelOverlap", "sameRadii",
                          "orderMode", "xradius", "yradius"},
    "data": frozenset(),
    "series": frozenset(),
    "bars": _OUTLINE,
    "bar": _OUTLINE,
    "barLabels": _LABEL - _XY,
    "labels": _LABEL,
    "label": _LABEL,
    "categoryAxis": _AXIS | {"joinAxis", "joinAxisPos", "labelAxisMode", "reverseDirection",
                             "tickShift"},
    "categoryNames": frozenset(),
    "valueAxis": _VALUE_AXIS,
    "xValueAxis": _VALUE_AXIS | {"joinAxis", "joinAxisMode", "joinAxisPos", "tickDown", "tickUp"},
    "yValueAxis": _VALUE_AXIS | {"joinAxis", "joinAxisMode", "joinAxisPos", "tickLeft",
                                 "tickRight"},
    "line": frozenset({"name", "strokeColor", "strokeWidth", "strokeDashArray", "symbol"}),
    "slices": _SLICE,
    "slice": _SLICE,
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


def sanitize_tree(rml: str, allowed_dirs: Sequence[Path]) -> Any:
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
        permitted = ALLOWED_ELEMENTS.get(tag)
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
                and value == LAST_PAGE
                and (element.getparent() is None or element.getparent().tag not in DRAW_STRINGS)
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
    must be on the allowlist (`ALLOWED_ELEMENTS`). Every file reference (``image file``,
    ``img src``, ``registerTTFont fileName``) must be a ``data:image/png;base64,`` URI or a
    path that, after resolving symlinks, lies inside one of `allowed_dirs`; relative paths are
    taken from the first of `allowed_dirs` and returned as absolute paths. URLs of any scheme,
    ``[package]/path`` references and ``..`` are refused. Comments and processing
    instructions are dropped.

    Raises `TemplateError` naming the line, the element and the attribute.
    """
    root = sanitize_tree(rml, allowed_dirs)
    text: str = etree.tostring(root, encoding="unicode")
    return text
