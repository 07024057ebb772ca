"""How the reports look: bilingual labels, chart axes, the report templates, the signature.

The report templates (``templates/report/``, or the lab's own ``report/`` folder) are rendered
through the certificate pipeline's sanitiser, fonts and canvas; `sign_report` seals the PDF as
certificates are sealed, with the checkpoint in its information dictionary.

>>> nice_max([3, 17, 42])
(50, 10)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from certissuer.config import Settings
from certissuer.errors import TemplateError
from certissuer.model import Kind
from certissuer.report.queries import ReportCheckpoint
from certissuer.token import INFO_CHECKPOINT_KEY

__all__ = [
    "INFO_CHECKPOINT_KEY",
    "KIND_LABELS",
    "environment",
    "month_names",
    "nice_max",
    "render_report",
    "report_dir",
    "report_renderer",
    "short_label",
    "sign_report",
]


KIND_LABELS: dict[str, tuple[str, str]] = {
    Kind.VERIFICATION: ("Kiểm định", "Verification"),
    Kind.CALIBRATION: ("Hiệu chuẩn", "Calibration"),
    Kind.TESTING: ("Thử nghiệm", "Testing"),
    "copy": ("Bản sao điện tử", "Electronic copy"),
}


def nice_max(values: Iterable[float]) -> tuple[int, int]:
    """An axis maximum a little above the largest value, and a round step for it."""
    top = max([0.0, *values])
    if top <= 5:
        return 5, 1
    raw = top * 1.1 / 5
    magnitude = 10 ** (len(str(int(raw))) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return int(step * -(-top * 1.05 // step)), int(step)


def short_label(text: str, width: int = 28) -> str:
    """The Vietnamese half of a bilingual label, cut to `width` characters for a chart.

    A bracket the cut opened is closed: "(khác / other)" gives "(khác)", not "(khác".

    >>> short_label("(khác / other)")
    '(khác)'
    """
    vi = text.split(" / ")[0].strip()
    if len(vi) > width:
        vi = vi[: width - 1] + "…"
    return vi + ")" * max(0, vi.count("(") - vi.count(")"))


@functools.cache
def report_renderer(template_dir: Path | None) -> Any:
    """The certificate `Renderer` of `template_dir` (None: the shipped templates), made once."""
    from certissuer.render import Renderer

    return Renderer(template_dir)


def report_dir(settings: Settings) -> tuple[Any, Path]:
    """The renderer (fonts, allowed folders) and the folder of the report templates: the lab's
    ``report/`` folder when its template folder has one, else the shipped one."""
    own = settings.render_template_dir
    if own is not None and (own / "report").is_dir():
        renderer = report_renderer(own.resolve())
    else:
        renderer = report_renderer(None)
    return renderer, renderer.template_dir / "report"


@functools.cache
def environment(folder: Path) -> SandboxedEnvironment:
    """The sandboxed Jinja2 environment of the report templates in `folder`, made once."""
    from certissuer.render.filters import dmy, place_date_en, place_date_vi

    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(dmy=dmy, short=short_label)
    env.globals.update(place_date_vi=place_date_vi, place_date_en=place_date_en)
    return env


def render_report(name: str, context: Mapping[str, Any], settings: Settings) -> bytes:
    """Render template `name` of the report folder to PDF through the certificate pipeline's
    sanitiser, fonts and canvas (render.py): allowlisted RML, embedded fonts, page x of y."""
    renderer, folder = report_dir(settings)
    lab = {
        "name_vi": settings.lab_name_vi,
        "name_en": settings.lab_name_en,
        "address_vi": settings.lab_address_vi,
        "address_en": settings.lab_address_en,
        "place": settings.lab_place,
    }
    try:
        template = environment(folder).get_template(name)
        rml = template.render({**context, "fonts": renderer.fonts, "lab": lab})
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"{folder / name}: template not found") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{folder / name}: {exc}") from exc
    rendered: bytes = renderer.layout_rml(rml, source=folder / name)
    return rendered


def month_names(months: Sequence[int]) -> list[str]:
    """Short month names for a chart axis: T1 … T12."""
    return [f"T{m}" for m in months]


def sign_report(
    pdf: bytes,
    sealer: Any,
    checkpoint: ReportCheckpoint,
    *,
    title: str,
    location: str,
    name_on_page: str | None,
) -> bytes:
    """PAdES-sign report `pdf` with `sealer` (a `sign.Sealer`), as certificates are signed.

    The visible signature sits over `name_on_page` on the last page; the PDF's information
    dictionary gets `INFO_CHECKPOINT_KEY` = ``"<tree size> <root hex>"`` in the signed
    revision. Raises `SigningError`.
    """
    from certissuer.sign import SignatureSlot

    return bytes(
        sealer.sign(
            pdf,
            info={INFO_CHECKPOINT_KEY: f"{checkpoint.tree_size} {checkpoint.root_hash}"},
            reason=title,
            location=location,
            slot=SignatureSlot("Signature1", "Người lập báo cáo / Prepared by", name_on_page),
        )
    )
