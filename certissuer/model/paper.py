"""Electronic copies of paper certificates: the data of a copy and of each original scan.

A paper certificate issued before certissuer (or on paper) gets an electronic copy with its own
number; `PaperCopy` is what the ledger stores and the copy's first page prints, `ScanRef` one
original scan file with its SHA-256 as received.

>>> ScanRef(file_name="p1.jpg", path="/scans/p1.jpg", sha256="0" * 64, pages=1).pages
1
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from certissuer.model.kinds import KindName
from certissuer.model.parts import Date, Text

__all__ = ["PaperCopy", "ScanRef"]


class ScanRef(BaseModel):
    """One original scan file: where it is, its SHA-256 as received, and its page count."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    file_name: Text
    path: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    pages: int = Field(ge=1)


class PaperCopy(BaseModel):
    """The data of an electronic copy (what the ledger stores and the first page prints)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    kind: Literal["copy"] = "copy"
    ref: Annotated[str, Field(min_length=1, max_length=100)]
    """Idempotency key: ``paper:<paper number>`` unless the manifest gives one."""
    paper_number: Text
    paper_kind: KindName
    lab: str = ""
    instrument: Text
    model: str = ""
    serial: Text
    owner: Text
    paper_issue_date: Date
    valid_until: Date | None = None
    result: str = ""
    scans: list[ScanRef] = Field(min_length=1)
    replaces: None = None
    """Copies are never amended in place (kept for the pipeline's common interface)."""
