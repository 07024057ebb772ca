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

import io
import logging
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any, Final

import fontpkg
import jinja2
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # lxml-stubs not installed
from PIL import Image

from certissuer._files import default_template_dir
from certissuer.config import Settings
from certissuer.errors import CertissuerError, ConfigError, TemplateError
from certissuer.model import AnyCertificate, VerificationCertificate
from certissuer.render import filters
from certissuer.render._z3c import FontCache, lay_out
from certissuer.render.fallback import (
    FALLBACK_DIR,
    FALLBACK_FILES,
    PARAGRAPHS,
    VARIANTS,
    Fallback,
    apply_fallback,
    is_fallback_file,
    owned_texts,
)
from certissuer.render.qr import data_uri, qr_image
from certissuer.render.sanitize import sanitize_tree

__all__ = ["QR_MAX_MM", "QR_MODULE_MM", "Renderer", "default_template_dir"]

_logger = logging.getLogger(__name__)

_FONT_FAMILY = "Be Vietnam Pro"

QR_MODULE_MM: Final = 0.65
"""Printed size of one QR module. At 0.5 mm a version 9 code (26.5 mm) did not decode from a
photocopy (2.5° rotation, blur, 150 dpi, noise, JPEG); the alphanumeric URL (`certissuer.token`)
fits version 8, and at 0.65 mm (31.9 mm) its copy decodes down to 120 dpi, at 0.6 mm only to
150 dpi (``bench/bench_qr.py``, ``tests/test_qr_paper.py``)."""
QR_MAX_MM: Final = 40.0
"""Largest printed QR code, quiet zone included (it must fit its 42 mm column)."""

_LATER_FORMS: Final = frozenset({"copy", "failure"})
"""Forms added after labs began copying the template folder (the electronic copy, issue 7; the
notice of failure, issue 16): a lab folder without one borrows the shipped form. The two
certificate forms are the lab's own, and a folder without them is refused."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    template: str
    root: Any
    fonts: tuple[tuple[str, str], ...]


class Renderer:
    """Renders certificates with the templates of one folder.

    Build one `Renderer` and keep it: it holds the Jinja2 environment (compiled templates),
    the font paths and the parsed fonts. `template_dir` is the lab's template folder; None
    uses `default_template_dir()`. Templates are chosen by the document's kind:
    ``verification.rml.j2``, ``calibration.rml.j2``, ``copy.rml.j2`` or ``failure.rml.j2``.
    A lab folder copied before a later form existed (``copy.rml.j2``, ``failure.rml.j2``)
    lacks it: that form is then rendered from the shipped folder, its own partials included,
    and the log says so once per form (`_for`).
    """

    def __init__(
        self, template_dir: Path | None = None, *, qr_module_mm: float = QR_MODULE_MM
    ) -> None:
        self.template_dir = (template_dir or default_template_dir()).resolve()
        self.qr_module_mm = qr_module_mm
        """Printed size of one QR module (`QR_MODULE_MM`; a benchmark prints others)."""
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
        # Characters Be Vietnam Pro lacks (Ω) are drawn in reportlab's Vera (`fallback`)
        self.fonts.update({key: str(path) for key, path in FALLBACK_FILES.items()})
        self.font_dir = Path(regular).resolve().parent
        self.allowed_dirs: tuple[Path, ...] = (self.template_dir, self.font_dir, FALLBACK_DIR)
        self._cache = FontCache()
        self._logos: dict[tuple[str, int, int], str] = {}
        self._shipped: Renderer | None = None
        """The shipped templates' renderer, for a form the lab's folder lacks (`_for`)."""
        self._borrowed: set[str] = set()
        """Forms taken from the shipped folder so far (each said once on the log)."""
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
        filters.install(self._env)
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
        renderer = self._for(cert.kind)
        prepared = renderer._prepare(cert, number=number, issued=issued, qr_url=qr_url,
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
        renderer = self._for(cert.kind)
        prepared = renderer._prepare(cert, number=number, issued=issued, qr_url=qr_url,
                                     settings=settings, accredited=accredited)  # fmt: skip
        return renderer._layout(
            prepared.root, renderer.template_dir / prepared.template, prepared.fonts
        )

    def layout_rml(self, rml: str, *, source: Path) -> bytes:
        """Lay out RML that a template of this renderer's family produced (a report, say).

        `rml` passes the same allowlist as a certificate's (`sanitize_rml`, file references
        confined to `allowed_dirs`) and is laid out with the same fonts, canvas and checks:
        every font embedded, page x of y in one pass. `source` names the template in errors.
        Raises `TemplateError`.
        """
        root = sanitize_tree(rml, self.allowed_dirs)
        fonts = _fonts(root)
        if fonts:
            self._fallback(root, fonts)
        return self._layout(root, source, fonts)

    # -- internals ----------------------------------------------------------------------------

    def _for(self, kind: str) -> Renderer:
        """The renderer for a document of `kind`: this one, or the shipped templates' one
        when the lab's folder has no ``<kind>.rml.j2`` and the shipped folder has.

        A lab that copied the templates before a form existed would otherwise be unable to
        issue it (a notice of failure, say). The whole form comes from the shipped folder, so
        its partials (``_base``, ``_macros``) match it; the warning names the file to add.
        """
        name = f"{kind}.rml.j2"
        shipped = default_template_dir().resolve()
        if (
            kind not in _LATER_FORMS
            or self.template_dir == shipped
            or (self.template_dir / name).is_file()
            or not (shipped / name).is_file()
        ):
            return self  # a missing certificate form is an error (`_template`): a wrong folder
        if self._shipped is None:
            self._shipped = Renderer(shipped, qr_module_mm=self.qr_module_mm)
        if name not in self._borrowed:
            self._borrowed.add(name)
            _logger.warning(
                "%s: the template folder has no %s; using the one shipped with certissuer "
                "(copy %s there to change it)",
                self.template_dir,
                name,
                shipped / name,
            )
        return self._shipped

    def _layout(self, root: Any, source: Path, fonts: Sequence[tuple[str, str]]) -> bytes:
        """z3c.rml on the sanitised tree `root` (see `_z3c.lay_out`)."""
        return lay_out(root, source, fonts, self._cache)

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
        qr_src, qr_modules = qr_image(qr_url)
        context = {
            "cert": cert,
            "number": number,
            "issued": issued,
            "qr": {
                "src": qr_src,
                "url": qr_url,
                "size_mm": min(round(qr_modules * self.qr_module_mm, 1), QR_MAX_MM),
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
        root = sanitize_tree(rml, self.allowed_dirs)
        fonts = _fonts(root)
        if fonts:
            fallback = self._fallback(root, fonts)
            self._check_glyphs(name, root, fonts, fallback, cert, settings, number, qr_url)
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
        uri = data_uri(png)
        self._logos[key] = uri
        return uri

    def _fallback(self, root: Any, fonts: Sequence[tuple[str, str]]) -> Fallback | None:
        """Wrap the characters only the fallback font draws (`apply_fallback`); None when
        the template registers no fallback font (nothing is wrapped then)."""
        main = [(face, path) for face, path in fonts if not is_fallback_file(path)]
        extra = [(face, path) for face, path in fonts if is_fallback_file(path)]
        if not main or not extra:
            return None
        regular = str(FALLBACK_FILES["fallback"])
        face = next((f for f, path in extra if path == regular), extra[0][0])
        fallback = Fallback(
            face=face,
            faces=frozenset(f for f, _ in extra),
            main=self._cache.coverage(main),
            covered=self._cache.coverage(extra),
            variants={
                VARIANTS[Path(path).name]: f for f, path in extra if Path(path).name in VARIANTS
            },
        )
        apply_fallback(root, fallback)
        return fallback

    def _check_glyphs(
        self,
        name: str,
        root: Any,
        fonts: Sequence[tuple[str, str]],
        fallback: Fallback | None,
        cert: AnyCertificate,
        settings: Settings,
        number: str,
        qr_url: str,
    ) -> None:
        """Refuse a character no font draws where it stands: outside the main fonts, only
        text inside a fallback ``<font>`` (`apply_fallback`) may hold one the fallback has."""
        covered = fallback.main if fallback is not None else self._cache.coverage(fonts)
        for section in ("template", "story"):
            element = root.find(section)
            if element is None:
                continue
            for owner, text in owned_texts(element):
                for char in text:
                    if ord(char) in covered or char.isspace():
                        continue
                    if fallback is not None and _in_fallback(owner, char, fallback):
                        continue
                    field = _find_field(char, cert, settings, number, qr_url)
                    where = f"in field '{field}'" if field else f"in the template {name}"
                    main = [face for face, path in fonts if not is_fallback_file(path)]
                    raise TemplateError(
                        f"character '{char}' (U+{ord(char):04X}) {where} is not in the font "
                        f"{', '.join(main or [face for face, _ in fonts])}: it would print as "
                        "a blank",
                        hint="replace the character, or use a template whose font has it",
                    )


def _in_fallback(owner: Any, char: str, fallback: Fallback) -> bool:
    """Whether `char`, a text of `owner`, is drawn in the fallback font and the font has it."""
    if ord(char) not in fallback.covered:
        return False
    el = owner
    while el is not None and el.tag not in PARAGRAPHS:
        if el.tag == "font":  # the innermost <font> decides
            return (el.get("face") or el.get("name") or el.get("fontName")) in fallback.faces
        el = el.getparent()
    return False


def _fonts(root: Any) -> tuple[tuple[str, str], ...]:
    """The ``(faceName, fileName)`` of each TrueType font the sanitised RML `root` registers."""
    return tuple(
        (el.get("faceName", ""), el.get("fileName", ""))
        for el in root.iterfind("docinit/registerTTFont")
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
