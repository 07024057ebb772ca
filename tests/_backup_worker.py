"""A workstation issuing certificates in its own process (tests/test_backup.py).

``python -m tests._backup_worker PROFILE OUT PREFIX COUNT``: issues COUNT records (refs
PREFIX-0, PREFIX-1, ...) with real signatures and a one-line PDF, printing each number as it is
issued, so the test can act while issuing goes on.
"""

from __future__ import annotations

import sys
from pathlib import Path

from certissuer.config import load_settings
from certissuer.issue import Issuer, load_token_key
from certissuer.ledger import Ledger
from certissuer.sign import Sealer

from ._workers import TinyRenderer, record
from .conftest import PASSPHRASE


def main(profile: str, out: str, prefix: str, count: int) -> None:
    settings = load_settings(Path(profile), env={})
    assert settings.signing_pkcs12 is not None
    issuer = Issuer(
        settings,
        ledger=Ledger.open(settings.ledger_url, lab_code=settings.lab_code),
        sealer=Sealer.from_pkcs12(settings.signing_pkcs12, PASSPHRASE),
        token_key=load_token_key(settings),
        out_dir=Path(out),
        renderer=TinyRenderer(),  # type: ignore[arg-type]
    )
    for i in range(count):
        print(issuer.issue(record(f"{prefix}-{i}")).number, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
