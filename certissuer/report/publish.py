"""A signed report written and recorded together (issue 19): a report is a document of the lab.

`publish_report` signs a rendered report (`certissuer.report.layout.sign_report`), writes the
PDF whole (temporary file and rename), then records it in the ledger
(`certissuer.ledger.Ledger.record_report`): its kind, period, title, signer, issue time, the
PDF's SHA-256 and the checkpoint it counts, signed with the lab's ledger key. If recording
fails, the written file is removed, as issuing does for a certificate: never a report file
without its record, nor a record without its file.

This is the one place a report writes to the ledger; the reports themselves only read it.

>>> record = publish_report(pdf, sealer=sealer, ledger=ledger, ledger_key=key,
...                         checkpoint=data.checkpoint, kind=ReportKind.ANNUAL,
...                         period=(data.start, data.until), title="Báo cáo đo lường năm 2026",
...                         location="Đồng Tháp", out=Path("bao-cao-2026.pdf"),
...                         now=datetime.now(UTC))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from certissuer._files import write_atomic
from certissuer.ledger import Ledger, ReportKind, ReportRecord
from certissuer.report.layout import sign_report
from certissuer.report.queries import ReportCheckpoint
from certissuer.token import TokenKey

__all__ = ["period_text", "publish_report"]

_logger = logging.getLogger(__name__)


def period_text(start: date, until: date) -> str:
    """The days a report covers as an ISO 8601 interval: ``2026-01-01/2026-12-31``."""
    return f"{start.isoformat()}/{until.isoformat()}"


def publish_report(
    pdf: bytes,
    *,
    sealer: Any,
    ledger: Ledger,
    ledger_key: TokenKey,
    checkpoint: ReportCheckpoint,
    kind: ReportKind,
    period: tuple[date, date],
    title: str,
    location: str,
    out: Path,
    now: datetime,
) -> ReportRecord:
    """Sign report `pdf`, write it to `out` and record it in `ledger`; return the record.

    `sealer` (a `certissuer.sign.Sealer`) signs with its holder's name under the signature;
    `checkpoint` is the checkpoint the report counts (written in the PDF and the record);
    `kind`, `period` (first and last day) and `title` say what the report is; `location` is
    the signature's place; `ledger_key` (the lab's ledger key) signs the record; `now` is the
    issue time (aware). Raises `SigningError`, `LedgerError` (the file is then removed) or
    `OSError` when the file cannot be written.
    """
    name = sealer.signer_name
    signed = sign_report(pdf, sealer, checkpoint, title=title, location=location, name_on_page=name)
    record = ReportRecord(
        lab_code=checkpoint.lab_code,
        kind=kind.value,
        period=period_text(*period),
        title=title,
        issued_at=now,
        signer=sealer.subject,
        pdf_sha256=hashlib.sha256(signed).hexdigest(),
        pdf_path=str(out.resolve()),
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
    )
    write_atomic(out, signed)
    try:
        recorded = ledger.record_report(record, ledger_key=ledger_key)
    except BaseException:
        out.unlink(missing_ok=True)  # no report file without its record
        _logger.debug("recording the %s report failed; %s removed", kind.value, out)
        raise
    _logger.info("report %s %s -> %s", kind.value, record.period, out)
    return recorded
