"""The shared measurement register: labs and their scope (calibration and testing), owners,
instruments, instrument types and their verification cycles, reference standards, personnel
and verification stamps.

`tables` holds the SQLModel tables (in the ledger database); `checks` the checks at issue time
and the cycle rules; `io` the import and export of register files; `recall` the recall lists
and their letters; `register` the `Register` of one lab that joins them.

>>> register = Register(ledger.engine, lab_code="DT01")  # doctest: +SKIP
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
from certissuer.registry.io import KINDS, ImportReport, read_table
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
from certissuer.registry.register import Register
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
    StandardUse,
    TestingScope,
    change_tracking_sql,
    current_change,
    load_instrument_types,
)

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
    "StandardUse",
    "TestingScope",
    "add_months",
    "change_tracking_sql",
    "current_change",
    "load_instrument_types",
    "match_type",
    "parse_stamp",
    "parse_window",
    "read_table",
    "recall_pdf",
    "recall_rows",
    "valid_until_for",
    "write_recall",
]
