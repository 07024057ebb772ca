"""Kept so that ``from certissuer.recall import …`` still works: recall lists are
`certissuer.registry.recall` now."""

from certissuer.registry.recall import (
    COLUMNS,
    RecallFormat,
    recall_pdf,
    recall_rows,
    write_recall,
)

__all__ = ["COLUMNS", "RecallFormat", "recall_pdf", "recall_rows", "write_recall"]
