"""The shared measurement register: labs and their scope, owners, instruments, instrument types
and their verification cycles, reference standards, personnel and verification stamps.

`tables` holds the SQLModel tables (in the ledger database); `checks` the checks at issue time
and the cycle rules; `io` the import and export of register files; `recall` the recall lists
and their letters; `register` the `Register` of one lab that joins them.

>>> register = open_register(settings)  # doctest: +SKIP
>>> register.recall(within_days=30, today=date(2026, 12, 1)).count  # doctest: +SKIP
12
"""

from certissuer.registry.checks import (
    Cert,
    Clearance,
    add_months,
    match_type,
    parse_stamp,
    valid_until_for,
)
from certissuer.registry.io import KINDS, ImportReport, read_table, write_table
from certissuer.registry.recall import (
    COLUMNS,
    Recall,
    RecallFormat,
    RecallGroup,
    RecallItem,
    parse_window,
    recall_pdf,
    recall_rows,
    write_recall,
)
from certissuer.registry.register import Register, open_register
from certissuer.registry.tables import (
    CHANGE_TRACKED,
    ChangeCounter,
    Instrument,
    InstrumentType,
    Lab,
    Owner,
    Person,
    RegisteredStandard,
    Scope,
    StampStock,
    StampUse,
    change_tracking_sql,
    current_change,
    load_instrument_types,
)

# NOTE: the name report.py imported before `match_type` was public; drop it once it imports
# `match_type`.
_match_type = match_type

__all__ = [
    "CHANGE_TRACKED",
    "COLUMNS",
    "KINDS",
    "Cert",
    "ChangeCounter",
    "Clearance",
    "ImportReport",
    "Instrument",
    "InstrumentType",
    "Lab",
    "Owner",
    "Person",
    "Recall",
    "RecallFormat",
    "RecallGroup",
    "RecallItem",
    "Register",
    "RegisteredStandard",
    "Scope",
    "StampStock",
    "StampUse",
    "add_months",
    "change_tracking_sql",
    "current_change",
    "load_instrument_types",
    "match_type",
    "open_register",
    "parse_stamp",
    "parse_window",
    "read_table",
    "recall_pdf",
    "recall_rows",
    "valid_until_for",
    "write_recall",
    "write_table",
]
