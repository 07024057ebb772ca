"""Characters the certificate font lacks, drawn in a fallback font (Ω in reportlab's Vera).

Be Vietnam Pro covers Vietnamese but no Greek, so a resistance lab's unit "Ω" (U+03A9) would
print as a blank. Templates register reportlab's bundled Bitstream Vera family next to the main
font (``fonts.fallback`` and friends, `FALLBACK_FILES`); `apply_fallback` then wraps each run of
characters that the main fonts lack and Vera has in ``<font face="Vera">``, inside paragraphs,
so the text stays Ω in the PDF (searchable, copyable). A bold or italic paragraph gets VeraBd or
VeraIt through the registered font family. A plain table cell (``<td>Ω</td>``) holding such a
character becomes a paragraph styled as the cell was (font, size, leading, alignment, colour);
text drawn on the canvas (``drawString``) cannot switch fonts and is refused by the renderer's
glyph check as before.

>>> fallback = Fallback("Vera", frozenset({"Vera"}), main=frozenset(map(ord, "k")),
...                     covered=frozenset(map(ord, "Ωk")))
>>> root = etree.fromstring("<document><story><para>5 kΩ</para></story></document>")
>>> apply_fallback(root, fallback)
>>> etree.tostring(root.find("story/para"), encoding="unicode")
'<para>5 k<font face="Vera">Ω</font></para>'
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import reportlab
from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # lxml-stubs not installed

__all__ = [
    "FALLBACK_DIR",
    "FALLBACK_FILES",
    "PARAGRAPHS",
    "VARIANTS",
    "Fallback",
    "apply_fallback",
    "is_fallback_file",
    "owned_texts",
]

FALLBACK_DIR: Final = Path(reportlab.__file__).resolve().parent / "fonts"
"""reportlab's bundled fonts (Bitstream Vera), a dependency wherever certissuer runs."""
VARIANTS: Final[Mapping[str, tuple[bool, bool]]] = {
    "Vera.ttf": (False, False),
    "VeraBd.ttf": (True, False),
    "VeraIt.ttf": (False, True),
    "VeraBI.ttf": (True, True),
}
"""(bold, italic) of each fallback file."""
FALLBACK_FILES: Final[Mapping[str, Path]] = {
    "fallback": FALLBACK_DIR / "Vera.ttf",
    "fallback_bold": FALLBACK_DIR / "VeraBd.ttf",
    "fallback_italic": FALLBACK_DIR / "VeraIt.ttf",
    "fallback_bold_italic": FALLBACK_DIR / "VeraBI.ttf",
}
"""The template's ``fonts.*`` names of the fallback family's files."""
_FALLBACK_DIR_TEXT: Final = str(FALLBACK_DIR)
PARAGRAPHS: Final = frozenset({"para", "title", "h1", "h2", "h3", "h4", "h5", "h6"})
"""Elements whose text is paragraph markup, where ``<font>`` switches the font."""

_ALIGN: Final = {"left": "left", "right": "right", "center": "center", "centre": "center",
                 "decimal": "right"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fallback:
    """The fallback font of one document, and what it and the main fonts draw."""

    face: str
    """The face name to wrap characters in (the regular fallback file's)."""
    faces: frozenset[str]
    """Every face registered from the fallback family (a ``<font>`` of any is fallback text)."""
    main: frozenset[int]
    """Code points every main font draws."""
    covered: frozenset[int]
    """Code points every fallback face draws."""
    variants: Mapping[tuple[bool, bool], str] = field(default_factory=dict)
    """The face for (bold, italic) text; `face` where none is registered. reportlab's
    ``<font face>`` resets bold and italic, so a bold paragraph needs the bold face named."""

    def face_for(self, bold: bool, italic: bool) -> str:
        """The fallback face for text that is `bold` and/or `italic`."""
        return self.variants.get((bold, italic), self.face)

    def needs(self, char: str) -> bool:
        """True when `char` must be drawn in the fallback font, and can be."""
        code = ord(char)
        return code not in self.main and code in self.covered and not char.isspace()


def is_fallback_file(path: str) -> bool:
    """True when the font file `path` (absolute and resolved, as the sanitiser leaves every
    file reference) is one of the fallback family's (in `FALLBACK_DIR`)."""
    return os.path.dirname(path) == _FALLBACK_DIR_TEXT


def owned_texts(section: Any) -> Iterator[tuple[Any, str]]:
    """Each text of `section` with the element it belongs to: an element's text is its own,
    a tail belongs to the parent (the tail of `section` itself is outside it)."""
    for el in section.iter():
        if isinstance(el.tag, str) and el.text:
            yield el, el.text
        if el is not section and el.tail:
            yield el.getparent(), el.tail


def apply_fallback(root: Any, fallback: Fallback) -> None:
    """Wrap, in the sanitised RML `root`, each run of characters that only the fallback font
    draws in ``<font face=…>`` (inside paragraphs; a plain table cell holding one becomes a
    paragraph first). Nothing changes when no text needs the fallback."""
    sections = [s for s in (root.find("template"), root.find("story")) if s is not None]
    chars = set("".join(text for s in sections for text in s.itertext()))  # a few hundred
    if not any(map(fallback.needs, chars)):
        return
    for section in sections:
        for td in list(section.iter("td")):
            if len(td) == 0 and td.text and any(map(fallback.needs, td.text)):
                _cell_to_para(root, td)
        for para in list(section.iter(*PARAGRAPHS)):
            _wrap(para, fallback, _Styles(root))


def _font_face(el: Any) -> str | None:
    return el.get("face") or el.get("name") or el.get("fontName")  # type: ignore[no-any-return]


_FAMILY: Final[Mapping[str, tuple[bool, bool]]] = {
    "normal": (False, False),
    "bold": (True, False),
    "italic": (False, True),
    "boldItalic": (True, True),
}


class _Styles:
    """Whether a font is bold or italic, and a paragraph's font, as the document says."""

    def __init__(self, root: Any) -> None:
        self.flags: dict[str, tuple[bool, bool]] = {}
        for family in root.iterfind("docinit/registerFontFamily"):
            for attribute, flags in _FAMILY.items():
                if family.get(attribute):
                    self.flags[family.get(attribute)] = flags
        self.styles = {s.get("name"): s for s in root.iterfind("stylesheet/paraStyle")}

    def of_font(self, name: str) -> tuple[bool, bool]:
        if name in self.flags:
            return self.flags[name]
        lower = name.lower()
        return "bold" in lower, "italic" in lower or "oblique" in lower

    def of_para(self, para: Any) -> tuple[bool, bool]:
        name = para.get("fontName")
        style = self.styles.get(para.get("style", "Normal"))
        for _ in range(20):  # a parent chain, cut short should it loop
            if name or style is None:
                break
            name = style.get("fontName")
            style = self.styles.get(style.get("parent", ""))
        return self.of_font(name or "Helvetica")

    def at(self, para: Any, el: Any) -> tuple[bool, bool]:
        """(bold, italic) of text owned by `el`, inside `para`."""
        chain = []
        while el is not None and el is not para:
            chain.append(el)
            el = el.getparent()
        bold, italic = self.of_para(para)
        for item in reversed(chain):
            if item.tag in ("b", "strong"):
                bold = True
            elif item.tag in ("i", "em"):
                italic = True
            elif item.tag == "font" and _font_face(item):
                bold, italic = self.of_font(_font_face(item) or "")
        return bold, italic


def _wrap(para: Any, fallback: Fallback, styles: _Styles) -> None:
    for el in list(para.iter()):
        if not isinstance(el.tag, str) or (el.tag == "font" and _font_face(el) in fallback.faces):
            continue  # a comment; or text already in the fallback font, tails inside included
        children = list(el)
        needs_text = bool(el.text) and any(map(fallback.needs, el.text))
        if not needs_text and not any(
            c.tail and any(map(fallback.needs, c.tail)) for c in children
        ):
            continue
        face = fallback.face_for(*styles.at(para, el))
        if needs_text:
            head, runs = _split(el.text, fallback)
            el.text = head
            for index, (run, plain) in enumerate(runs):
                el.insert(index, _font(face, run, plain))
        for child in children:
            _wrap_tail(child, fallback, face)


def _wrap_tail(child: Any, fallback: Fallback, face: str) -> None:
    if not child.tail or not any(map(fallback.needs, child.tail)):
        return
    head, runs = _split(child.tail, fallback)
    child.tail = head
    anchor = child
    for run, plain in runs:
        font = _font(face, run, plain)
        anchor.addnext(font)
        anchor = font


def _font(face: str, text: str, tail: str) -> Any:
    font = etree.Element("font", face=face)
    font.text = text
    font.tail = tail or None
    return font


def _split(text: str, fallback: Fallback) -> tuple[str, list[tuple[str, str]]]:
    """`text` as its leading plain part and (fallback run, plain text after it) pairs."""
    parts: list[list[str]] = [[""]]  # parts[0] = [head]; then [run, plain] pairs
    for char in text:
        if fallback.needs(char):
            if len(parts) > 1 and parts[-1][1] == "":
                parts[-1][0] += char
            else:
                parts.append([char, ""])
        elif len(parts) == 1:
            parts[0][0] += char
        else:
            parts[-1][1] += char
    return parts[0][0], [(run, plain) for run, plain in parts[1:]]


def _cell_to_para(root: Any, td: Any) -> None:
    """Make the plain text of `td` a paragraph drawn as reportlab draws a cell's string."""
    style = _cell_style(root, td)
    para = etree.SubElement(td, "para", style)
    para.text, td.text = td.text.strip(), None


def _cell_style(root: Any, td: Any) -> dict[str, str]:
    """The font, size, leading, alignment and colour reportlab gives the cell `td`: its
    defaults, then the table style's commands that cover the cell, in order, then the
    cell's own attributes."""
    tr = td.getparent()
    table = tr.getparent() if tr is not None else None
    style = {"fontName": "Helvetica", "fontSize": "10", "leading": "12",
             "alignment": "left", "textColor": "black"}  # fmt: skip
    if table is None:
        return style
    rows = [row for row in table if row.tag == "tr"]
    cells = [cell for cell in tr if cell.tag == "td"]
    at = (cells.index(td), rows.index(tr))
    size = (len(cells), len(rows))
    commands: list[Any] = []
    name = table.get("style")
    if name:
        for sheet in root.iterfind("stylesheet/blockTableStyle"):
            if sheet.get("id") == name:
                commands += list(sheet)
    for inline in table.iterfind("blockTableStyle"):
        commands += list(inline)
    for command in commands:
        if not isinstance(command.tag, str) or not _covers(command, at, size):
            continue
        if command.tag == "blockFont":
            style["fontName"] = command.get("name", style["fontName"])
            if command.get("size"):
                style["fontSize"] = command.get("size")
                # reportlab's FONT command: the leading is 1.2 × the size unless given
                style["leading"] = command.get("leading") or _times(command.get("size"), 1.2)
        elif command.tag == "blockLeading" and command.get("length"):
            style["leading"] = command.get("length")
        elif command.tag == "blockTextColor" and command.get("colorName"):
            style["textColor"] = command.get("colorName")
        elif command.tag == "blockAlignment" and command.get("value"):
            style["alignment"] = _ALIGN.get(command.get("value").lower(), "left")
    own = {"fontName": "fontName", "fontSize": "fontSize", "leading": "leading",
           "fontColor": "textColor", "align": "alignment"}  # fmt: skip
    for attribute, key in own.items():
        value = td.get(attribute)
        if value:
            style[key] = _ALIGN.get(value.lower(), "left") if key == "alignment" else value
    return style


def _times(size: str, factor: float) -> str:
    try:
        return f"{float(size) * factor:g}"
    except ValueError:
        return size


def _covers(command: Any, at: tuple[int, int], size: Sequence[int]) -> bool:
    """Whether the ``start``/``stop`` range of a table style `command` holds the cell `at`
    ((column, row); negative indices count from the end, as in reportlab)."""
    start = _cell(command.get("start", "0,0"), size)
    stop = _cell(command.get("stop", "-1,-1"), size)
    if start is None or stop is None:
        return False
    return start[0] <= at[0] <= stop[0] and start[1] <= at[1] <= stop[1]


def _cell(text: str, size: Sequence[int]) -> tuple[int, int] | None:
    try:
        col, row = (int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        return None
    return (col + size[0] if col < 0 else col, row + size[1] if row < 0 else row)
