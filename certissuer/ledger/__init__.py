"""The ledger: one row per certificate, gapless numbers, signed events, the Merkle log.

`Ledger` (in `certissuer.ledger.ledger`) opens the database and does the work, the SQL
included: code above the ledger (the CLI, the verification page) asks it and runs none of its
own. `tables` holds the SQLModel tables and the canonical bytes that are hashed and signed;
`signatures` signs and checks events and checkpoints; `claims` says who is completing a pending
entry or issuing a batch record; `audit` recomputes the log; `migrations` upgrades the schema
(Alembic).

>>> ledger = Ledger.open("sqlite:///ledger.db")  # doctest: +SKIP
>>> [e.number for e in ledger.entries()]  # doctest: +SKIP
['HC-2026-000001']
>>> reader = Ledger.open_readonly("sqlite:///ledger.db")  # doctest: +SKIP
>>> reader.event_count("HC-2026-000001")  # doctest: +SKIP
1
"""

from certissuer.ledger.audit import AuditReport, Witness, load_witness, run_audit
from certissuer.ledger.claims import process_alive, this_claimant
from certissuer.ledger.ledger import Failure, Ledger
from certissuer.ledger.signatures import (
    CheckpointFault,
    Standing,
    approval_awaited,
    checkpoint_fault,
    checkpoint_problem,
    event_problem,
    report_record_problem,
    sign_event,
    sign_report_record,
    status_from,
)
from certissuer.ledger.tables import (
    CHECKPOINT_FORMAT,
    FAILED_REVERIFICATION_EN,
    FAILED_REVERIFICATION_VI,
    BatchClaim,
    CertificateEntry,
    Checkpoint,
    EventKind,
    FailedVerification,
    LedgerEvent,
    LedgerLab,
    LogHead,
    LogLeaf,
    NumberCounter,
    ReportKind,
    ReportRecord,
    ScanFile,
    StampClaim,
    Status,
    checkpoint_json,
    checkpoint_message,
    event_message,
    format_number,
    leaf_data,
    report_message,
    utc,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "FAILED_REVERIFICATION_EN",
    "FAILED_REVERIFICATION_VI",
    "AuditReport",
    "BatchClaim",
    "CertificateEntry",
    "Checkpoint",
    "CheckpointFault",
    "EventKind",
    "FailedVerification",
    "Failure",
    "Ledger",
    "LedgerEvent",
    "LedgerLab",
    "LogHead",
    "LogLeaf",
    "NumberCounter",
    "ReportKind",
    "ReportRecord",
    "ScanFile",
    "StampClaim",
    "Standing",
    "Status",
    "Witness",
    "approval_awaited",
    "checkpoint_fault",
    "checkpoint_json",
    "checkpoint_message",
    "checkpoint_problem",
    "event_message",
    "event_problem",
    "format_number",
    "leaf_data",
    "load_witness",
    "process_alive",
    "report_message",
    "report_record_problem",
    "run_audit",
    "sign_event",
    "sign_report_record",
    "status_from",
    "this_claimant",
    "utc",
]
