"""Reports and exports for the authorities, from the ledger and the register (read only).

The annual measurement report and the activity report (form 5.BCHĐ) come as signed bilingual
PDFs and XLSX workbooks; the sector export and the ledger export as JSON, XLSX or CSV. Every
certificate figure counts only events inside the ledger's newest signed checkpoint, which the
report prints, so each number can be traced to the Merkle log.

The package is laid out by report: `annual`, `activity`, `sector` (the sector export),
`export` (the ledger export); `queries` holds what the reports read alike (period, checkpoint,
SQL month buckets) and `layout` how they look (labels, chart axes, templates, the signature).
Tables are written through `certissuer._tables`.

Each report is computed, rendered, then signed like a certificate:

>>> data = activity_report(ledger.engine, year=2026, lab_code="DT01")  # doctest: +SKIP
>>> pdf = render_activity_pdf(data, settings=settings, signer_name="Lê Phúc")  # doctest: +SKIP
>>> signed = sign_report(pdf, sealer, data.checkpoint, title="Báo cáo hoạt động",
...                      location="Đồng Tháp", name_on_page="Lê Phúc")  # doctest: +SKIP

`publish_report` signs, writes and records a report in the ledger together (`publish`): a
signed report is a document of the lab, which ``certissuer verify`` recognises.
"""

from certissuer.report.activity import (
    HAND,
    ActivityLine,
    ActivityReport,
    activity_report,
    render_activity_pdf,
    write_activity_xlsx,
)
from certissuer.report.annual import (
    DIGITISATION_TARGET_YEAR,
    AnnualReport,
    Digitisation,
    EventCounts,
    LabFigures,
    OverdueGroup,
    QuantityCount,
    StandardDue,
    TypeResult,
    annual_report,
    render_annual_pdf,
    write_annual_xlsx,
)
from certissuer.report.layout import sign_report
from certissuer.report.publish import publish_report
from certissuer.report.queries import ReportCheckpoint

__all__ = [
    "DIGITISATION_TARGET_YEAR",
    "HAND",
    "ActivityLine",
    "ActivityReport",
    "AnnualReport",
    "Digitisation",
    "EventCounts",
    "LabFigures",
    "OverdueGroup",
    "QuantityCount",
    "ReportCheckpoint",
    "StandardDue",
    "TypeResult",
    "activity_report",
    "annual_report",
    "publish_report",
    "render_activity_pdf",
    "render_annual_pdf",
    "sign_report",
    "write_activity_xlsx",
    "write_annual_xlsx",
]
