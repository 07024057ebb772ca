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

from certissuer.errors import InputError
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


def append_scans(first_page: bytes, copy: PaperCopy) -> bytes:
    """The copy's PDF: `first_page`, then every page of every scan at its own resolution.

    Each scan file is hashed again and must still have the SHA-256 recorded in `copy` (a scan
    changed between reading the manifest and issuing is refused).
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
        out = io.BytesIO()
        # A classic cross-reference table and no object streams, as a PDF writer makes them:
        # the copy is signed next by an incremental update.
        pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    finally:
        for source in reversed(sources):
            source.close()
    return out.getvalue()
