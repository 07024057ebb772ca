"""A lab's push to the hub: what it carries, how it is signed, and the lab's side of sending it.

A push is a JSON envelope ``{"payload": <text>, "kid": <hex>, "signature": <hex>}``. The
payload (format `PUSH_FORMAT`) carries the lab's code, its newest signed checkpoint, the
consistency proof from the log size the hub holds to that checkpoint, and the sector export
(``docs/SECTOR-EXPORT.md``) after the cursor of the lab's last accepted push. The lab signs
``certissuer-hub-push/v1\\n`` followed by the SHA-256 of the payload with its token key, so the
records are the lab's as much as the checkpoint is.

The lab asks the hub first what it holds (``GET /api/v1/labs/<code>/head``): the proof starts
there and the export after the hub's cursor, so a push that was lost, or one the lab never
heard the answer to, is simply made again. The lab keeps its side in a state file beside its
profile (`STATE_NAME`): the hub's URL, the last cursor pushed, and the last failure.

>>> outcome = push_to_hub("https://hub.example", ledger, key, lab_code="DT01",
...                       state_path=Path(".certissuer-hub.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from certissuer import merkle
from certissuer._files import write_atomic
from certissuer.errors import CertissuerError, LedgerError
from certissuer.hub.inclusion import certificate_leaves
from certissuer.ledger import Checkpoint, Ledger
from certissuer.report.sector import FORMAT, RECORD_TYPES, VERSION, Cursor, sector_export
from certissuer.token import TokenKey, TokenPublicKey

__all__ = [
    "PUSH_FORMAT",
    "PUSH_LEAVES",
    "STATE_NAME",
    "HubUnreachable",
    "PushOutcome",
    "PushRefused",
    "Transport",
    "make_push",
    "open_push",
    "push_message",
    "push_to_hub",
    "requests_transport",
]

_logger = logging.getLogger(__name__)

PUSH_FORMAT = "certissuer-hub-push/v1"
STATE_NAME = ".certissuer-hub.json"
"""The lab's push state, beside its profile."""
PUSH_LEAVES = 5000
"""The most log leaves whose certificates one push carries (each record goes with its leaves
and inclusion proofs, some 3 kB: a part stays well under the hub's body limit)."""

Transport = Callable[[str, str, Mapping[str, Any] | None], tuple[int, Any]]
"""``(method, url, json body or None) -> (HTTP status, decoded JSON answer)``; raises
`HubUnreachable` when no answer comes."""


class PushRefused(LedgerError):
    """The hub refuses a push: unknown lab or key, bad signature, or a log that is not a
    consistent extension of what the hub holds."""


class HubUnreachable(CertissuerError):
    """The hub did not answer; nothing is lost, the lab pushes again later."""

    exit_code = 7


def push_message(payload: bytes) -> bytes:
    """The bytes a lab signs for a push whose payload is `payload`."""
    return PUSH_FORMAT.encode() + b"\n" + hashlib.sha256(payload).hexdigest().encode()


def make_push(
    ledger: Ledger,
    key: TokenKey,
    *,
    lab_code: str,
    held_size: int,
    held_cursor: str | None,
    today: date,
    now: datetime,
    max_leaves: int | None = None,
) -> dict[str, Any]:
    """The signed push of the lab's ledger `ledger` to a hub holding `held_size` leaves of its
    log and cursor `held_cursor` (None: nothing yet).

    The export is read first and then a checkpoint of the whole log taken: the lab's newest
    one when it already covers the log and is `key`'s (the lab's token key), else a new one
    signed with `key`, so every exported certificate's events lie inside the checkpoint and a
    push with nothing new writes no checkpoint. Each certificate record goes with the leaves
    of its events and their inclusion proofs in that checkpoint (``inclusion``, by number;
    `certissuer.hub.inclusion`). When the lab's log is shorter than what the hub holds no
    proof can be made: the push carries none and the hub refuses it (naming the sizes).
    `max_leaves` bounds the part of the log whose certificates this push carries (the rest
    goes in the next push, from this one's cursor). Raises `LedgerError` when the ledger
    cannot be read.
    """
    return _make_push(
        ledger,
        key,
        lab_code=lab_code,
        held_size=held_size,
        held_cursor=held_cursor,
        today=today,
        now=now,
        max_leaves=max_leaves,
    )[0]


def _make_push(
    ledger: Ledger,
    key: TokenKey,
    *,
    lab_code: str,
    held_size: int,
    held_cursor: str | None,
    today: date,
    now: datetime,
    max_leaves: int | None,
) -> tuple[dict[str, Any], bool]:
    """`make_push`, and whether `max_leaves` left part of the log for another push."""
    after = Cursor.parse(held_cursor) if held_cursor else None
    limit = None if max_leaves is None else (after.log if after else 0) + max(1, max_leaves)
    export = sector_export(
        ledger.engine, since=None, after=after, today=today, now=now, log_limit=limit
    )
    cp, hashes = _covering_checkpoint(ledger, key, lab_code=lab_code, now=now)
    proof: list[str] | None = None
    if 0 < held_size <= cp.tree_size:
        proof = [h.hex() for h in merkle.consistency_proof(held_size, hashes)]
    elif held_size == 0:
        proof = []
    inclusion = certificate_leaves(
        ledger,
        (r["number"] for r in export.records["certificates"]),
        hashes,
        below=export.cursor.log,
    )
    payload = {
        "format": PUSH_FORMAT,
        "lab_code": lab_code,
        "checkpoint": cp.to_json(),
        "from_size": held_size,
        "consistency": proof,
        "inclusion": inclusion,
        "export": {**export.header(), **{t: export.records[t] for t in RECORD_TYPES}},
    }
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    envelope = {
        "payload": text,
        "kid": key.public.kid.hex(),
        "signature": key.sign(push_message(text.encode())).hex(),
    }
    return envelope, limit is not None and limit <= export.cursor.log < cp.tree_size


def _covering_checkpoint(
    ledger: Ledger, key: TokenKey, *, lab_code: str, now: datetime
) -> tuple[Checkpoint, list[bytes]]:
    """The lab's newest checkpoint when it covers the whole log and is `key`'s over the leaves
    the ledger holds, else a new one signed with `key`; with the leaf hashes it covers."""
    size = ledger.log_size()
    latest = ledger.latest_checkpoint()
    if (
        latest is not None
        and latest.tree_size == size
        and latest.lab_code == lab_code
        and latest.kid == key.public.kid.hex()
        and key.public.verify(bytes.fromhex(latest.signature), latest.message())
    ):
        hashes = ledger.leaf_hashes(size)
        if len(hashes) == size and merkle.tree_hash(hashes).hex() == latest.root_hash:
            return latest, hashes
    cp = ledger.checkpoint(key, lab_code=lab_code, at=now)
    return cp, ledger.leaf_hashes(cp.tree_size)


def open_push(
    envelope: Any, keys_of: Callable[[str], list[TokenPublicKey] | None]
) -> dict[str, Any]:
    """The payload of `envelope` once its signature checks with the keys `keys_of` gives for
    the lab the payload names (None: the lab is not registered).

    Raises `PushRefused` for a malformed push, an unregistered lab, or a signature that does
    not check with one of the lab's registered keys.
    """
    if not isinstance(envelope, dict) or not all(
        isinstance(envelope.get(k), str) for k in ("payload", "kid", "signature")
    ):
        raise PushRefused("not a certissuer push: expected payload, kid and signature")
    text: str = envelope["payload"]
    try:
        payload = json.loads(text)
        signature = bytes.fromhex(envelope["signature"])
    except ValueError as exc:
        raise PushRefused(f"not a certissuer push: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != PUSH_FORMAT:
        raise PushRefused(f"not a certissuer push: expected format {PUSH_FORMAT}")
    lab = payload.get("lab_code")
    if not isinstance(lab, str):
        raise PushRefused("not a certissuer push: no lab code")
    keys = keys_of(lab)
    if keys is None:
        raise PushRefused(
            f"lab {lab} is not registered at the hub",
            hint="the Department registers it with 'certissuer hub register-lab'",
        )
    message = push_message(text.encode())
    kid = envelope["kid"].lower()
    if not any(k.kid.hex() == kid and k.verify(signature, message) for k in keys):
        raise PushRefused(
            f"lab {lab}: the push is not signed by a key registered for the lab (key id {kid})"
        )
    export = payload.get("export")
    if not isinstance(export, dict) or export.get("format") != FORMAT:
        raise PushRefused(f"lab {lab}: the push carries no sector export ({FORMAT})")
    if str(export.get("version", "")).split(".")[0] != VERSION.split(".")[0]:
        raise PushRefused(
            f"lab {lab}: sector export version {export.get('version')} is not {VERSION}"
        )
    return payload


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What the hub answered to a push."""

    lab_code: str
    from_size: int
    tree_size: int
    cursor: str
    stored: int
    """Records new or changed at the hub."""
    unchanged: int


def requests_transport(timeout: float = 60.0) -> Transport:
    """A `Transport` over HTTP(S) with `requests`, `timeout` seconds per request."""
    import requests

    def send(method: str, url: str, body: Mapping[str, Any] | None) -> tuple[int, Any]:
        try:
            response = requests.request(method, url, json=body, timeout=timeout)
        except requests.RequestException as exc:
            raise HubUnreachable(f"cannot reach the hub at {url}: {exc}") from None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"detail": response.text[:300]}

    return send


def _detail(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("detail"), str):
        return str(answer["detail"])
    return str(answer)[:300]


def read_state(path: Path) -> dict[str, Any]:
    """The lab's push state at `path` (empty when there is none yet)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LedgerError(f"{path}: cannot read the hub push state ({exc})") from None
    return data if isinstance(data, dict) else {}


def _save_state(path: Path, state: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(dict(state), indent=1, ensure_ascii=False).encode())


def push_to_hub(
    url: str,
    ledger: Ledger,
    key: TokenKey,
    *,
    lab_code: str,
    state_path: Path,
    transport: Transport | None = None,
    today: date | None = None,
    now: datetime | None = None,
    max_leaves: int | None = PUSH_LEAVES,
) -> PushOutcome:
    """Push the lab's records and log since its last accepted push to the hub at `url`.

    `ledger` and `key` are the lab's ledger and token key; `state_path` is the push state file
    (`STATE_NAME` beside the profile). The records go in parts of at most `max_leaves` log
    leaves each (None: one push), each accepted part kept; the outcome sums them. Raises
    `HubUnreachable` when the hub does not answer (the state file records it; the next run
    pushes everything from the hub's cursor) and `PushRefused` with the hub's reason when it
    refuses.
    """
    send = transport or requests_transport()
    base = url.rstrip("/")
    state = read_state(state_path)
    now = now or datetime.now(UTC)
    parts: list[PushOutcome] = []
    more = True
    while more:
        try:
            status, head = send("GET", f"{base}/api/v1/labs/{lab_code}/head", None)
            if status != 200:
                raise PushRefused(f"the hub at {base} answered {status}: {_detail(head)}")
            envelope, more = _make_push(
                ledger,
                key,
                lab_code=lab_code,
                held_size=int(head["tree_size"]),
                held_cursor=head.get("cursor"),
                today=today or now.date(),
                now=now,
                max_leaves=max_leaves,
            )
            status, answer = send("POST", f"{base}/api/v1/push", envelope)
        except HubUnreachable as exc:
            _save_state(
                state_path, {**state, "url": base, "lab_code": lab_code, "failed": str(exc)}
            )
            held = state.get("cursor") or "the beginning"
            raise HubUnreachable(
                str(exc),
                hint="nothing is lost: run 'certissuer hub push' again later; it sends "
                f"everything after the cursor the hub holds ({held})",
            ) from None
        if status != 200:
            _save_state(
                state_path, {**state, "url": base, "lab_code": lab_code, "failed": _detail(answer)}
            )
            raise PushRefused(f"the hub refused the push: {_detail(answer)}")
        parts.append(
            PushOutcome(
                lab_code=lab_code,
                from_size=int(answer["from_size"]),
                tree_size=int(answer["tree_size"]),
                cursor=str(answer["cursor"]),
                stored=int(answer["stored"]),
                unchanged=int(answer["unchanged"]),
            )
        )
        state = {
            "url": base,
            "lab_code": lab_code,
            "cursor": parts[-1].cursor,
            "tree_size": parts[-1].tree_size,
            "pushed_at": now.isoformat(timespec="seconds"),
            "failed": None,
        }
        _save_state(state_path, state)  # each part accepted is kept: a later one resumes
    outcome = PushOutcome(
        lab_code=lab_code,
        from_size=parts[0].from_size,
        tree_size=parts[-1].tree_size,
        cursor=parts[-1].cursor,
        stored=sum(p.stored for p in parts),
        unchanged=sum(p.unchanged for p in parts),
    )
    _logger.debug("pushed %s to %s: %s", lab_code, base, outcome)
    return outcome
