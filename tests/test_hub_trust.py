"""The hub trusts no record on the push signature alone (issue 22): each pushed certificate
record is proven, leaf by leaf, in the lab's checkpointed log and must be what its leaves hold;
a token's data digest is compared with the one the lab pushed; a push with nothing new writes
no checkpoint in the lab's ledger. SQLite and PostgreSQL, real ledgers, keys and signatures."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from certissuer.hub import HubUnreachable, PushRefused, make_push, push_to_hub
from certissuer.hub.push import push_message
from certissuer.hub.tables import HubCertificate
from certissuer.ledger import Ledger
from certissuer.token import TokenKey, make_token, read_token
from certissuer.verify import Verifier
from certissuer.verify.verdict import VERDICT_LABELS, Verdict

from ._insider import sql
from .test_hub import TODAY, Lab, World, _client_transport, _snapshot, _verdict, world

__all__ = ["world"]  # the fixture, shared with test_hub.py


def _envelope(lab: Lab, held_size: int = 0, held_cursor: str | None = None) -> dict[str, Any]:
    return make_push(
        lab.ledger,
        lab.key,
        lab_code=lab.code,
        held_size=held_size,
        held_cursor=held_cursor,
        today=TODAY,
        now=datetime.now(UTC),
    )


def _resigned(
    lab: Lab, envelope: dict[str, Any], edit: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """`envelope` with its payload edited by `edit` and signed again with the lab's own key:
    what an insider holding the key (and not able to change the log) can send."""
    payload = json.loads(envelope["payload"])
    edit(payload)
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return {
        "payload": text,
        "kid": lab.key.public.kid.hex(),
        "signature": lab.key.sign(push_message(text.encode())).hex(),
    }


def _record(payload: dict[str, Any], number: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        r for r in payload["export"]["certificates"] if r["number"] == number
    )
    return found


def _refused(world: World, envelope: dict[str, Any], match: str) -> None:
    before = _snapshot(world.hub)
    with pytest.raises(PushRefused, match=match):
        world.hub.accept(envelope)
    assert _snapshot(world.hub) == before  # nothing of the push is stored


def test_a_record_altered_and_resigned_by_an_insider_is_refused(world: World) -> None:
    world.a.issue("A1")
    world.a.issue("A2")
    number = world.a.numbers["A1"]
    envelope = _envelope(world.a)

    # the insider's pen: another serial on the instrument, the push signed with the lab's key
    def other_serial(payload: dict[str, Any]) -> None:
        _record(payload, number)["instrument_serial"] = "SN-KHAC-0001"

    _refused(
        world,
        _resigned(world.a, envelope, other_serial),
        rf"^lab DT01: certificate {number}: its instrument_serial is 'SN-KHAC-0001' in the "
        r"push, '.+' in the lab's log: the record was changed after it was logged$",
    )
    assert world.hub.certificates("DT01") == []  # A2's good record was not stored either

    # the leaf changed to match as well: it is no longer the one in the checkpointed tree
    def serial_and_leaf(payload: dict[str, Any]) -> None:
        other_serial(payload)
        for leaf in payload["inclusion"][number]:
            data = json.loads(leaf["leaf"])
            if "entry.instrument_serial" in data:
                data["entry.instrument_serial"] = "SN-KHAC-0001"
                leaf["leaf"] = json.dumps(
                    data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                )

    _refused(
        world,
        _resigned(world.a, envelope, serial_and_leaf),
        rf"^lab DT01: certificate {number}: its leaf at log index \d+ is not in the lab's "
        r"checkpointed log of size \d+: the inclusion proof does not check \(the record was "
        r"changed after it was logged; at the lab, certissuer ledger audit names the row\)$",
    )

    # another data digest (what a token would be compared with), or a revocation dropped
    def other_digest(payload: dict[str, Any]) -> None:
        _record(payload, number)["data_digest"] = "0" * 64

    _refused(world, _resigned(world.a, envelope, other_digest), "its data_digest is '0000")

    # the same envelope re-signed unchanged is accepted: the signing is not what is refused
    assert world.hub.accept(_resigned(world.a, envelope, lambda p: None)).stored >= 2
    stored = json.loads(world.hub.certificate("DT01", number).record_json)  # type: ignore[union-attr]
    assert stored["data_digest"] == world.a.ledger.get(number).data_digest  # type: ignore[union-attr]


def test_a_revocation_hidden_from_the_hub_is_refused(world: World) -> None:
    world.a.issue("A1")
    number = world.a.numbers["A1"]
    world.a.ledger.revoke(number, reason="hư hỏng / damaged", at=datetime.now(UTC))

    def unrevoked(payload: dict[str, Any]) -> None:
        record = _record(payload, number)
        record["revoked_at"] = record["revocation_reason"] = None
        record["status"] = "valid"

    _refused(
        world,
        _resigned(world.a, _envelope(world.a), unrevoked),
        rf"^lab DT01: certificate {number}: its revoked_at is None in the push",
    )


def test_a_record_edited_in_the_labs_database_after_logging_is_refused(world: World) -> None:
    world.a.issue("A1")
    number = world.a.numbers["A1"]
    # an insider with SQL (no key) edits the customer; the lab then pushes as usual
    sql(world.a.ledger, "UPDATE certificate SET customer_name = 'X' WHERE number = :n", n=number)
    before = _snapshot(world.hub)
    with pytest.raises(
        PushRefused,
        match=rf"certificate {number}: its leaf at log index 0 is not.* changed after it was",
    ):
        world.push(world.a)
    assert _snapshot(world.hub) == before


def test_a_record_whose_leaf_is_not_in_the_checkpointed_tree_is_refused(world: World) -> None:
    world.a.issue("A1")
    world.a.issue("A2")
    a1, a2 = world.a.numbers["A1"], world.a.numbers["A2"]
    envelope = _envelope(world.a)
    size = json.loads(envelope["payload"])["checkpoint"]["tree_size"]

    # a certificate the log never held, with a leaf of its own and A1's audit path
    def invented(payload: dict[str, Any]) -> None:
        fake = {**_record(payload, a1), "number": "HC-2026-999999"}
        payload["export"]["certificates"].append(fake)
        leaves = json.loads(json.dumps(payload["inclusion"][a1]))
        for leaf in leaves:
            data = json.loads(leaf["leaf"])
            data["number"] = data["entry.number"] = "HC-2026-999999"
            leaf["leaf"] = json.dumps(data, sort_keys=True, separators=(",", ":"))
        payload["inclusion"]["HC-2026-999999"] = leaves

    _refused(
        world,
        _resigned(world.a, envelope, invented),
        r"certificate HC-2026-999999: its leaf at log index 0 is not in the lab's checkpointed",
    )

    # a record with no proof at all
    def unproven(payload: dict[str, Any]) -> None:
        del payload["inclusion"][a2]

    _refused(
        world,
        _resigned(world.a, envelope, unproven),
        rf"^lab DT01: certificate {a2}: the push carries no proof of its inclusion in the lab's "
        r"log$",
    )

    # a leaf beyond the checkpoint (logged after it was signed)
    def beyond(payload: dict[str, Any]) -> None:
        payload["inclusion"][a2][0]["index"] = size

    _refused(world, _resigned(world.a, envelope, beyond), rf"index {size} is not in the lab's")


def test_a_proof_for_another_index_is_refused(world: World) -> None:
    world.a.issue("A1")
    world.a.issue("A2")
    world.a.issue("A3")
    a1, a2 = world.a.numbers["A1"], world.a.numbers["A2"]
    envelope = _envelope(world.a)
    payload = json.loads(envelope["payload"])
    assert [leaf["index"] for leaf in payload["inclusion"][a1]] == [0]

    # A1's own leaf and path, claimed at A2's index
    def moved(p: dict[str, Any]) -> None:
        p["inclusion"][a1][0]["index"] = p["inclusion"][a2][0]["index"]

    _refused(world, _resigned(world.a, envelope, moved), rf"certificate {a1}: its leaf at log")

    # A1's leaf with A2's path (and index)
    def other_path(p: dict[str, Any]) -> None:
        p["inclusion"][a1][0]["path"] = p["inclusion"][a2][0]["path"]

    _refused(world, _resigned(world.a, envelope, other_path), rf"certificate {a1}: its leaf at")

    # A2's genuine, proven leaf presented as A1's
    def borrowed(p: dict[str, Any]) -> None:
        p["inclusion"][a1] = p["inclusion"][a2]

    _refused(
        world,
        _resigned(world.a, envelope, borrowed),
        rf"certificate {a1}: the leaf at log index 1 is another certificate's$",
    )

    # a path that is not hex, and one leaf given twice
    def junk(p: dict[str, Any]) -> None:
        p["inclusion"][a1][0]["path"] = ["zz"]

    _refused(world, _resigned(world.a, envelope, junk), "proof of log index 0 is malformed$")

    def twice(p: dict[str, Any]) -> None:
        p["inclusion"][a1] = p["inclusion"][a1] * 2

    _refused(world, _resigned(world.a, envelope, twice), "its inclusion proof repeats a leaf$")
    # and the push as made is accepted
    assert world.hub.accept(envelope).tree_size == 3
    assert {c.number for c in world.hub.certificates("DT01")} == set(world.a.numbers.values())


def _lab_verdict(lab: Lab, token: str) -> Any:
    return Verifier(trust_roots=[], token_keys=[lab.key.public], ledger=lab.ledger).verify_url(
        token, today=TODAY
    )


def test_a_genuine_signed_token_with_another_data_digest_is_not_genuine(world: World) -> None:
    token = world.a.issue("A1")
    number = world.a.numbers["A1"]
    world.push(world.a)
    claims = read_token(token, [world.a.key.public])
    assert _verdict(world, token)["verdict"] == "valid"
    # the lab's own key (a copy left on a laptop) signs a token for the same number and issue
    # date over other data: the signature checks, the digest is not the pushed record's
    forged = make_token(world.a.key, number=number, issued=claims.issued, digest="5a" * 32)
    lab = _lab_verdict(world.a, forged)
    result = _verdict(world, forged)
    assert (result["verdict"], result["lab_code"], result["number"]) == ("altered", "DT01", number)
    assert (result["label_vi"], result["label_en"]) == VERDICT_LABELS[lab.verdict]
    assert result["label_en"] == "NOT GENUINE (altered or forged)" and not result["ok"]
    assert "data digest does not match" in " ".join(result["reasons"])
    page = world.client.get(f"/v/{forged}").text
    assert "KHÔNG XÁC THỰC (bị sửa đổi hoặc giả mạo)" in page and "NOT GENUINE" in page

    # a record pushed before exports carried the digest: not compared, and said so
    with world.hub.session() as s:
        row = s.get(HubCertificate, ("DT01", number))
        assert row is not None
        record = json.loads(row.record_json)
        del record["data_digest"]
        row.record_json = json.dumps(record, sort_keys=True, ensure_ascii=False)
        s.add(row)
        s.commit()
    old = _verdict(world, forged)
    assert old["verdict"] == "valid"
    assert "digest was not compared" in " ".join(old["reasons"])


def _checkpoints(ledger: Ledger) -> list[tuple[int, str]]:
    return [(cp.tree_size, cp.root_hash) for cp in ledger.checkpoints()]


def test_a_push_with_nothing_new_writes_no_checkpoint(world: World) -> None:
    world.a.issue("A1")
    world.push(world.a)
    assert len(_checkpoints(world.a.ledger)) == 1
    again = world.push(world.a)
    assert again.stored == 0 and len(_checkpoints(world.a.ledger)) == 1
    world.push(world.a)
    assert len(_checkpoints(world.a.ledger)) == 1
    # the log grew: one new checkpoint, and the hub takes it as an extension
    world.a.issue("A2")
    grown = world.push(world.a)
    assert (grown.from_size, grown.tree_size) == (1, world.a.ledger.log_size())
    assert [size for size, _ in _checkpoints(world.a.ledger)] == [1, 2]
    world.push(world.a)
    assert len(_checkpoints(world.a.ledger)) == 2
    # a newest checkpoint signed by another key is not the push's: a new one is made
    world.a.ledger.checkpoint(TokenKey.generate(), lab_code="DT01", at=datetime.now(UTC))
    assert world.push(world.a).stored == 0
    assert [size for size, _ in _checkpoints(world.a.ledger)] == [1, 2, 2, 2]
    assert world.hub.head("DT01").tree_size == 2  # type: ignore[union-attr]


def test_a_large_push_goes_in_parts_each_kept_and_resumed(world: World) -> None:
    for ref in ("A1", "A2", "A3", "A4", "A5"):
        world.a.issue(ref)
    size = world.a.ledger.log_size()
    posts: list[int] = []
    send = _client_transport(world.client)

    def down_after_first(method: str, url: str, body: Any) -> tuple[int, Any]:
        if method == "POST":
            posts.append(len(json.loads(body["payload"])["export"]["certificates"]))
            if len(posts) > 1:
                raise HubUnreachable(f"cannot reach the hub at {url}: connection reset")
        return send(method, url, body)

    def push(transport: Any) -> Any:
        return push_to_hub(
            "https://hub.test.invalid",
            world.a.ledger,
            world.a.key,
            lab_code="DT01",
            state_path=world.a.state,
            transport=transport,
            today=TODAY,
            max_leaves=2,
        )

    with pytest.raises(HubUnreachable):
        push(down_after_first)
    # the first part was accepted and kept, at the hub and in the lab's state file
    first = world.hub.head("DT01")
    assert first is not None and first.cursor is not None and first.tree_size == size
    assert first.cursor.startswith("v1:2:")
    assert len(world.hub.certificates("DT01")) == posts[0] == 2
    assert json.loads(world.a.state.read_text(encoding="utf-8"))["cursor"] == first.cursor

    outcome = push(send)
    assert (outcome.from_size, outcome.tree_size) == (size, size)
    assert outcome.cursor.startswith(f"v1:{size}:")
    assert {c.number for c in world.hub.certificates("DT01")} == set(world.a.numbers.values())
    assert len(world.a.ledger.checkpoints()) == 1  # every part under the one checkpoint


def _awaiting(lab: Lab, ref: str) -> tuple[str, str]:
    """A certificate of `lab` issued with the head's approval field empty (the ledger's own
    events, signed with the lab's key); its number and QR token."""
    from datetime import date

    from certissuer.ledger import CertificateEntry

    def build(number: str, seq: int) -> CertificateEntry:
        return CertificateEntry(
            number=number, lab_code=lab.code, series="KĐ", year=2026, seq=seq,
            kind="verification", ref=ref, instrument_name="Cột đo xăng dầu",
            instrument_model="X", instrument_serial=f"S-{ref}", customer_name="Khách",
            work_date=date(2026, 11, 20), issue_date=TODAY, valid_until=date(2027, 11, 20),
            issued_at=datetime.now(UTC), data_digest="ab" * 32, data_json="{}", token="tok",
        )  # fmt: skip

    entry = lab.ledger.reserve_with(lab.code, "KĐ", 2026, build)
    lab.ledger.complete(
        entry.number, pdf_sha256="cd" * 32, pdf_path="x.pdf", signer="CN=x",
        at=datetime.now(UTC), ledger_key=lab.key, awaiting_approval=True,
    )  # fmt: skip
    return entry.number, make_token(lab.key, number=entry.number, issued=TODAY, digest="ab" * 32)


def test_a_certificate_awaiting_approval_or_no_longer_valid_is_never_valid_at_the_hub(
    world: World,
) -> None:
    waiting, token = _awaiting(world.a, "W1")
    failed = world.a.issue("F1")
    world.push(world.a)
    answer = _verdict(world, token)
    assert (answer["verdict"], answer["ok"]) == ("awaiting_approval", False), answer
    assert (answer["label_vi"], answer["label_en"]) == VERDICT_LABELS[Verdict.AWAITING_APPROVAL]
    assert _verdict(world, failed)["verdict"] == "valid"
    found = world.client.get("/api/v1/catalogue/search", params={"status": "valid"}).json()
    listed = {hit["key"] for hit in found["results"]}
    assert world.a.numbers["F1"] in listed and waiting not in listed

    # the head approves, the instrument of the other fails a later verification: pushed, so said
    world.a.ledger.approve(waiting, approver="Lê Hoàng Phúc", at=datetime.now(UTC),
                           ledger_key=world.a.key)  # fmt: skip
    number = world.a.numbers["F1"]
    world.a.ledger.fail_reverification(number, notice="TB-2026-000001", reason="không đạt",
                                       at=datetime.now(UTC), ledger_key=world.a.key)  # fmt: skip
    world.push(world.a)
    assert _verdict(world, token)["verdict"] == "valid"
    answer = _verdict(world, failed)
    assert (answer["verdict"], answer["ok"]) == ("no_longer_valid", False), answer


def test_an_insider_who_pushes_an_unapproved_certificate_as_valid_is_refused(
    world: World,
) -> None:
    waiting, _token = _awaiting(world.a, "W2")
    envelope = _envelope(world.a)
    assert _record(json.loads(envelope["payload"]), waiting)["status"] == "awaiting_approval"

    def as_valid(payload: dict[str, Any]) -> None:
        _record(payload, waiting)["status"] = "valid"

    _refused(
        world,
        _resigned(world.a, envelope, as_valid),
        rf"^lab DT01: certificate {waiting}: its status 'valid' is not the one its logged "
        r"events give$",
    )
