"""A lab's keys at the hub keep their history (issue 22): registering a lab again never
replaces its keys, ``--rotate`` adds one beside the old, ``--retire`` ends a key's use at a
time. Attack tests: a re-registration without --rotate is refused and the old key still works;
another lab's key is not slipped in; a token dated after its key's retirement is NOT GENUINE
while older ones keep verifying; a push or a checkpoint signed by a retired key is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from certissuer.cli import app as cli_app
from certissuer.errors import ConfigError
from certissuer.hub import PushRefused, make_push, push_to_hub
from certissuer.hub.push import push_message
from certissuer.token import TokenKey, make_token, read_token

from . import test_hub
from .test_hub import TODAY, World, _client_transport, _verdict

world = test_hub.world
"""Two labs with their own ledgers and keys, registered at one hub (`tests.test_hub`)."""

RETIRED_AT = datetime(2026, 11, 28, 3, tzinfo=UTC)  # 2026-11-28 10:00 in Vietnam
AFTER = datetime(2026, 11, 30, 3, tzinfo=UTC)


def _push_with(w: World, key: TokenKey) -> Any:
    """Lab A pushes with `key` signing the push and its checkpoint."""
    return push_to_hub(
        "https://hub.test.invalid",
        w.a.ledger,
        key,
        lab_code="DT01",
        state_path=w.a.state,
        transport=_client_transport(w.client),
        today=TODAY,
    )


def _rotate_and_retire(w: World) -> TokenKey:
    """Lab A gets a new token key; its first key is retired at RETIRED_AT. Returns the new."""
    new = TokenKey.generate()
    w.hub.register_lab("DT01", token_keys=[new.public], rotate=True, now=RETIRED_AT)
    (retired,) = w.hub.retire_key("DT01", w.a.key.public.kid.hex().upper(), now=RETIRED_AT)
    assert retired.kind == "token" and retired.retired_at is not None
    return new


def test_registering_a_lab_again_is_refused_and_its_key_still_works(world: World) -> None:
    token = world.a.issue("A1")
    world.push(world.a)
    attacker = TokenKey.generate()
    with pytest.raises(ConfigError, match="lab DT01 is already registered; its keys are not"):
        world.hub.register_lab("DT01", "Trung tâm giả", token_keys=[attacker.public])
    # another lab's key is not slipped in under a new code either
    with pytest.raises(ConfigError, match=r"the token key [0-9a-f]{8} is registered for lab DT01"):
        world.hub.register_lab("DT09", "Phòng giả", token_keys=[world.a.key.public])
    assert world.hub.lab("DT09") is None
    lab = world.hub.lab("DT01")
    assert lab is not None and lab.name == "Trung tâm Kỹ thuật Đồng Tháp"
    assert [k.kid for k in world.hub.lab_keys("DT01")] == [world.a.key.public.kid.hex()]
    assert _verdict(world, token)["verdict"] == "valid"
    world.a.issue("A2")
    assert _push_with(world, world.a.key).stored >= 1  # the lab's own key still pushes
    # what the attacker signs is no lab's
    claims = read_token(token, [world.a.key.public])
    forged = make_token(attacker, number=claims.number, issued=claims.issued, digest="00" * 16)
    assert _verdict(world, forged)["verdict"] == "not_genuine"
    with pytest.raises(PushRefused, match="not signed by a key registered for the lab"):
        _push_with(world, attacker)


def test_cli_register_again_rotate_retire_and_list(world: World, any_ledger_url: str,
                                                   tmp_path: Any) -> None:  # fmt: skip
    runner = CliRunner()
    db = ["--db", any_ledger_url]
    new = TokenKey.generate()
    pem = tmp_path / "new-token.pem"
    pem.write_bytes(new.public.pem())
    again = runner.invoke(cli_app, ["hub", "register-lab", "--code", "DT01", "--name", "X",
                                    "--token-key", str(pem), *db])  # fmt: skip
    assert again.exit_code == 3
    assert "lab DT01 is already registered" in again.output and "--rotate" in again.output
    rotated = runner.invoke(cli_app, ["hub", "register-lab", "--code", "DT01", "--rotate",
                                      "--token-key", str(pem), *db])  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    old_kid, new_kid = world.a.key.public.kid.hex(), new.public.kid.hex()
    assert f"keys in use {old_kid}, {new_kid}" in rotated.output
    retired = runner.invoke(cli_app, ["hub", "register-lab", "--code", "DT01", "--retire",
                                      old_kid, "--at", "2026-11-28T10:00", *db])  # fmt: skip
    assert retired.exit_code == 0, retired.output
    assert f"key {old_kid} (token) retired at 2026-11-28 10:00 (UTC+7)" in retired.output
    last = runner.invoke(cli_app, ["hub", "register-lab", "--code", "DT01", "--retire",
                                   new_kid, *db])  # fmt: skip
    assert last.exit_code == 3 and "leaves it no token key in use" in last.output
    listed = runner.invoke(cli_app, ["hub", "labs", *db])
    assert listed.exit_code == 0, listed.output
    lines = [line.split() for line in listed.output.splitlines()]
    assert ["token", old_kid, "added"] == lines[1][:3] and lines[1][-4:] == [
        "retired", "2026-11-28", "10:00", "(UTC+7)"
    ]  # fmt: skip
    assert ["token", new_kid, "added"] == lines[2][:3] and lines[2][-2:] == ["in", "use"]
    # a retired key is not taken back
    old_pem = tmp_path / "old.pem"
    old_pem.write_bytes(world.a.key.public.pem())
    back = runner.invoke(cli_app, ["hub", "register-lab", "--code", "DT01", "--rotate",
                                   "--token-key", str(old_pem), *db])  # fmt: skip
    assert back.exit_code == 3 and "a retired key is not taken back" in back.output


def test_a_token_dated_after_its_keys_retirement_is_not_genuine(world: World) -> None:
    before = world.a.issue("A1")  # 2026-11-25, before the retirement
    new = _rotate_and_retire(world)
    # The lab (or whoever kept the old key) still signs with it after its retirement.
    after_issue = world.a.issuer.issue(
        test_hub.parse_certificate({**test_hub.load_json(test_hub.SAMPLES / "calibration.json"),
                                    "ref": "A-late"}),
        now=AFTER,
    )  # fmt: skip
    late = test_hub.token_from_url(after_issue.url)
    _push_with(world, new)  # the records reach the hub under the key in use
    claims = read_token(late, [world.a.key.public])
    assert claims.issued == AFTER.date()

    assert _verdict(world, before)["verdict"] == "valid"  # dated before: keeps verifying
    answer = _verdict(world, late)
    assert answer["verdict"] == "not_genuine", answer
    assert "after the lab's key" in answer["reasons"][0] and "2026-11-28" in answer["reasons"][0]
    # the same certificate under the key in use is VALID: the retirement is why
    resigned = make_token(
        new, number=claims.number, issued=claims.issued, digest=claims.digest_prefix
    )
    assert _verdict(world, resigned)["verdict"] == "valid"
    # the provincial page says it too
    page = world.client.get(f"/v/{late}")
    assert page.status_code == 200 and "KHÔNG XÁC THỰC" in page.text
    # a token dated on the retirement day itself is still the old key's
    same_day = make_token(world.a.key, number=claims.number, issued=RETIRED_AT.date(),
                          digest=claims.digest_prefix)  # fmt: skip
    assert "after the lab's key" not in " ".join(_verdict(world, same_day)["reasons"])


def test_a_push_or_checkpoint_signed_by_a_retired_key_is_refused(world: World) -> None:
    world.a.issue("A1")
    world.push(world.a)
    new = _rotate_and_retire(world)
    world.a.issue("A2")
    held = world.hub.lab("DT01")
    assert held is not None
    with pytest.raises(PushRefused, match=r"the push is signed by key [0-9a-f]{8}, retired at"):
        _push_with(world, world.a.key)
    # the push signed by the key in use, its checkpoint by the retired one
    envelope = make_push(
        world.a.ledger,
        world.a.key,
        lab_code="DT01",
        held_size=held.tree_size,
        held_cursor=held.cursor,
        today=TODAY,
        now=AFTER,
    )
    resigned = {
        **envelope,
        "kid": new.public.kid.hex(),
        "signature": new.sign(push_message(envelope["payload"].encode())).hex(),
    }
    with pytest.raises(PushRefused, match=r"the checkpoint is signed by key .*, retired at"):
        world.hub.accept(resigned)
    after = world.hub.lab("DT01")
    assert after is not None and after.tree_size == held.tree_size  # nothing stored
    # a retirement scheduled for later has not ended the key's use yet
    earlier = world.hub.token_keys(held, at=datetime(2026, 11, 27, tzinfo=UTC))
    assert world.a.key.public.kid in {k.kid for k in earlier}
    assert world.a.key.public.kid not in {k.kid for k in world.hub.token_keys(held)}
    # the key in use pushes
    assert _push_with(world, new).tree_size == world.a.ledger.log_size()
