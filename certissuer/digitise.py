"""Electronic copies of paper certificates: the copy's PDF, the scans after its first page.

A paper certificate's electronic copy is a first page stating "BẢN SAO ĐIỆN TỬ / ELECTRONIC
COPY" of paper certificate No. …, with the metadata, the SHA-256 of every original scan file and
the QR code, followed by the scanned pages at their original resolution (images are embedded
without re-encoding by img2pdf; PDF pages are copied). The copy gets its own number in its own
series; the paper number stays searchable in the ledger.

The manifest is read by `certissuer.intake.manifest` and a copy's data is
`certissuer.model.PaperCopy`; both are re-exported here. This module is the step `issue` runs
to assemble a copy's PDF.

>>> for item in iter_manifest(Path("manifest.csv"), scans=Path("scans")):  # doctest: +SKIP
...     print(item)
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from certissuer.errors import InputError, TemplateError
from certissuer.intake.manifest import (
    MANIFEST_COLUMNS,
    MAX_SCAN_BYTES,
    ManifestRejected,
    ManifestRow,
    iter_manifest,
    read_scans,
)
from certissuer.model import PaperCopy, ScanRef

__all__ = [
    "MANIFEST_COLUMNS",
    "MAX_SCAN_BYTES",
    "ManifestRejected",
    "ManifestRow",
    "PaperCopy",
    "ScanRef",
    "append_scans",
    "iter_manifest",
    "read_scans",
]


STRIP = 16.0
"""Height in points of the band added above and below each scanned page for its stamp."""


def append_scans(first_page: bytes, copy: PaperCopy, *, number: str | None = None) -> bytes:
    """The copy's PDF: `first_page`, then every page of every scan at its own resolution.

    Each scan file is hashed again and must still have the SHA-256 recorded in `copy` (a scan
    changed between reading the manifest and issuing is refused). Every scanned page carries
    the copy's `number` (default: the first page's title, which the renderer sets to it) and
    "Trang x/y (Page x of y)", printed in a band added above and below the scan, so the stamp
    never covers what was scanned.
    """
    import img2pdf
    import pikepdf

    sources: list[pikepdf.Pdf] = []  # open until the copy is saved: its pages refer to them
    try:
        pdf = pikepdf.open(io.BytesIO(first_page))
        sources.append(pdf)
        for scan in copy.scans:
            path = Path(scan.path)
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != scan.sha256:
                raise InputError(path, "the scan changed after it was read: its SHA-256 differs")
            # img2pdf embeds JPEG as is and PNG/TIFF losslessly, one page per frame, at the
            # image's own size and resolution.
            pages = data if path.suffix.lower() == ".pdf" else img2pdf.convert(data)
            del data
            source = pikepdf.open(io.BytesIO(pages))
            sources.append(source)
            pdf.pages.extend(source.pages)
        if number is None:
            number = str(pdf.docinfo.get("/Title", ""))
        _stamp_scans(pdf, number)
        out = io.BytesIO()
        # A classic cross-reference table and no object streams, as a PDF writer makes them:
        # the copy is signed next by an incremental update.
        pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    finally:
        for source in reversed(sources):
            source.close()
    return out.getvalue()


def _stamp_scans(pdf: Any, number: str) -> None:
    """Widen every page after the first by `STRIP` above and below, and print the copy's
    number and page x of y in those bands (an overlay drawn by reportlab, font embedded)."""
    import pikepdf
    from reportlab.pdfgen import canvas

    from certissuer.render import reportlab_lock

    total = len(pdf.pages)
    boxes = []
    for page in list(pdf.pages)[1:]:
        x0, y0, x1, y1 = (float(v) for v in page.mediabox)
        box = [x0, y0 - STRIP, x1, y1 + STRIP]
        page.obj.MediaBox = pikepdf.Array(box)
        if "/CropBox" in page.obj:
            page.obj.CropBox = pikepdf.Array(box)
        boxes.append(box)
    if not boxes:
        return
    buffer = io.BytesIO()
    with reportlab_lock:
        font = _stamp_font()
        c = canvas.Canvas(buffer, invariant=1, initialFontName=font)
        for n, (x0, y0, x1, y1) in enumerate(boxes, 2):
            c.setPageSize((x1 - x0, y1 - y0))
            c.setFont(font, 7)
            c.setFillColorRGB(0.2, 0.2, 0.2)
            top, right = y1 - y0 - 11, x1 - x0 - 8
            c.drawString(8, top, f"Bản sao điện tử / Electronic copy · Số / No.: {number}")
            c.drawRightString(right, top, f"Trang {n}/{total} (Page {n} of {total})")
            c.drawString(8, 5, f"Số / No.: {number}")
            c.drawRightString(right, 5, f"Trang {n}/{total} (Page {n} of {total})")
            c.showPage()
        c.save()
    overlay = pikepdf.open(io.BytesIO(buffer.getvalue()))
    for page, stamp, box in zip(list(pdf.pages)[1:], overlay.pages, boxes, strict=True):
        x0, y0, x1, y1 = box
        page.add_overlay(stamp, pikepdf.Rectangle(x0, y0, x1, y1))


def _stamp_font() -> str:
    """Register Be Vietnam Pro with reportlab (under `reportlab_lock`) and return its name."""
    import fontpkg
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    name = "BeVietnamPro"
    if name not in pdfmetrics.getRegisteredFontNames():
        try:
            pdfmetrics.registerFont(TTFont(name, str(fontpkg.path("Be Vietnam Pro", 400))))
        except Exception as exc:  # fontpkg and reportlab raise their own types
            raise TemplateError(
                f"the font 'Be Vietnam Pro' for the scanned pages' stamp is missing: {exc}",
                hint="pip install fontpkg-be-vietnam-pro",
            ) from exc
    return name
