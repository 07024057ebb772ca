"""Render a certificate to PDF: template → sanitised RML → z3c.rml → PDF bytes.

* `renderer`: `Renderer`, the Jinja2 environment and the checks on what it prints.
* `filters`: the date, number and bilingual filters templates use.
* `qr`: the QR code of the verification URL, as a PNG.
* `sanitize`: the RML allowlist and the confinement of file references.
* `_z3c`: every patch of z3c.rml, reportlab and qrcode internals, and `reportlab_lock`.

>>> from certissuer.render import Renderer
>>> pdf = Renderer().render_pdf(cert, number="HC-2026-000123", issued=date(2026, 11, 27),
...                             qr_url=url, settings=settings)  # doctest: +SKIP
"""

from __future__ import annotations

from certissuer.render._z3c import reportlab_lock
from certissuer.render.filters import dmy, place_date_en, place_date_vi
from certissuer.render.qr import qr_png
from certissuer.render.renderer import Renderer, default_template_dir
from certissuer.render.sanitize import sanitize_rml

__all__ = [
    "Renderer",
    "default_template_dir",
    "dmy",
    "place_date_en",
    "place_date_vi",
    "qr_png",
    "reportlab_lock",
    "sanitize_rml",
]
