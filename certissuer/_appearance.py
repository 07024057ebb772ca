"""Former home of the visible-signature helpers, now `certissuer.sign`.

Kept so that ``from certissuer._appearance import SignatureSlot`` still works while the
modules that import it move to ``from certissuer.sign import …``.
"""

from __future__ import annotations

from certissuer.sign import (
    SIGNED_BY,
    Box,
    SignatureSlot,
    StampPainter,
    TextRun,
    find_text,
    signature_slots,
)

__all__ = [
    "SIGNED_BY",
    "Box",
    "SignatureSlot",
    "StampPainter",
    "TextRun",
    "find_text",
    "signature_slots",
]
