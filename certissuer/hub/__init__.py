"""The province's hub: the register of labs, the outside witness of every lab's log, and one
verification page for every registered lab's QR codes (issue 22, first part).

>>> hub = Hub.open("postgresql+psycopg://hub@db/hub")  # doctest: +SKIP
>>> hub.register_lab("DT01", "Trung tâm Kỹ thuật Đồng Tháp", token_keys=keys)  # doctest: +SKIP
>>> push_to_hub("https://hub.example", ledger, key, lab_code="DT01",
...             state_path=Path(".certissuer-hub.json"))  # doctest: +SKIP

* `tables`: the hub's own tables, on their own metadata (never a lab's ledger).
* `push`: the signed push a lab sends (sector export, checkpoint, consistency proof).
* `store`: `Hub`: register labs, accept pushes (refusing a log that is not an extension).
* `verify`: the verdict on any registered lab's token.
* `app`: the web face (push API, ``/v/<token>``, ``/api/v1/verify/<token>``).
"""

from __future__ import annotations

from certissuer.hub.push import (
    STATE_NAME,
    HubUnreachable,
    PushOutcome,
    PushRefused,
    make_push,
    push_to_hub,
)
from certissuer.hub.store import Hub, HubHead, PushResult
from certissuer.hub.verify import HubAnswer, HubVerdict, verify_token

__all__ = [
    "STATE_NAME",
    "Hub",
    "HubAnswer",
    "HubHead",
    "HubUnreachable",
    "HubVerdict",
    "PushOutcome",
    "PushRefused",
    "PushResult",
    "make_push",
    "push_to_hub",
    "verify_token",
]
