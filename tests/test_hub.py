"""The province's hub (issue 22, first part): two labs with their own ledgers and keys push to
one hub (SQLite and PostgreSQL); a rolled-back or rewritten lab log and a push under a key the
hub does not hold are refused; the hub's page answers for every registered lab's QR token."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from certissuer.cli import app as cli_app
from certissuer.config import Settings
from certissuer.hub import (
    STATE_NAME,
    Hub,
    HubUnreachable,
    PushRefused,
    make_push,
    push_to_hub,
)
from certissuer.hub.app import create_hub_app
from certissuer.hub.push import Transport
from certissuer.hub.tables import HUB_METADATA
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Sealer
from certissuer.token import TokenKey, make_token, token_from_url

from ._insider import roll_back
from .conftest import PASSPHRASE, SAMPLES, lab_settings, load_json

TODAY = date(2026, 12, 1)
ISSUED_AT = datetime(2026, 11, 25, 3, tzinfo=UTC)


@dataclass
class Lab:
    """A lab with its own ledger, keys and issuer."""

    code: str
    settings: Settings
    ledger: Ledger
    issuer: Issuer
    key: TokenKey
    keys: KeyPaths
    state: Path
    numbers: dict[str, str]
    """Certificate number by ref."""

    def issue(self, ref: str) -> str:
        """Issue the calibration sample as `ref`; return its QR token."""
        cal = load_json(SAMPLES / "calibration.json")
        issued = self.issuer.issue(parse_certificate({**cal, "ref": ref}), now=ISSUED_AT)
        self.numbers[ref] = issued.number
        return token_from_url(issued.url)


def _lab(code: str, folder: Path, keys: KeyPaths, renderer: Any) -> Lab:
    folder.mkdir()
    settings = lab_settings(keys, ledger=folder, lab_code=code)
    key = load_token_key(settings)
    ledger = Ledger.open(settings.ledger_url, ledger_key=key)
    issuer = Issuer(
        settings,
        ledger=ledger,
        sealer=Sealer.from_pkcs12(keys.signer_p12, PASSPHRASE),
        token_key=key,
        out_dir=folder / "out",
        renderer=renderer,
    )
    return Lab(code, settings, ledger, issuer, key, keys, folder / STATE_NAME, {})


def _client_transport(client: TestClient) -> Transport:
    def send(method: str, url: str, body: Any) -> tuple[int, Any]:
        response = client.request(method, urlsplit(url).path, json=body)
        return response.status_code, response.json()

    return send


@dataclass
class World:
    hub: Hub
    client: TestClient
    a: Lab
    b: Lab

    def push(self, lab: Lab) -> Any:
        return push_to_hub(
            "https://hub.test.invalid",
            lab.ledger,
            lab.key,
            lab_code=lab.code,
            state_path=lab.state,
            transport=_client_transport(self.client),
            today=TODAY,
        )


@pytest.fixture
def world(
    any_ledger_url: str, tmp_path: Path, pki: KeyPaths, other_pki: KeyPaths, renderer: Any
) -> Iterator[World]:
    """A hub (SQLite, or a schema of its own on PostgreSQL) and two registered labs."""
    hub = Hub.open(any_ledger_url)
    a = _lab("DT01", tmp_path / "a", pki, renderer)
    b = _lab("DT02", tmp_path / "b", other_pki, renderer)
    hub.register_lab("DT01", "Trung tâm Kỹ thuật Đồng Tháp", token_keys=[a.key.public])
    hub.register_lab("DT02", "Phòng hiệu chuẩn Sa Đéc", token_keys=[b.key.public])
    client = TestClient(create_hub_app(hub, today=lambda: TODAY))
    yield World(hub, client, a, b)
    client.close()
    hub.close()
    a.ledger.close()
    b.ledger.close()


def _snapshot(hub: Hub) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every hub table."""
    with hub.engine.connect() as conn:
        return {
            name: sorted(tuple(map(str, row)) for row in conn.execute(sa.select(table)))
            for name, table in HUB_METADATA.tables.items()
        }


def _verdict(world: World, token: str) -> dict[str, Any]:
    answer = world.client.get(f"/api/v1/verify/{token}")
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def test_two_labs_push_their_records_and_a_push_again_changes_nothing(world: World) -> None:
    a_tokens = [world.a.issue("A1"), world.a.issue("A2")]
    world.b.issue("B1")

    first_a = world.push(world.a)
    first_b = world.push(world.b)
    assert (first_a.from_size, first_a.tree_size) == (0, world.a.ledger.log_size())
    assert (first_b.from_size, first_b.tree_size) == (0, world.b.ledger.log_size())
    numbers_a = {e.number for e in world.a.ledger.entries()}
    assert {c.number for c in world.hub.certificates("DT01")} == numbers_a
    assert {c.number for c in world.hub.certificates("DT02")} == {
        e.number for e in world.b.ledger.entries()
    }
    # the hub holds the lab's signed log head, the lab's state file its cursor
    head = world.hub.head("DT01")
    assert head is not None and head.tree_size == world.a.ledger.log_size()
    assert head.root_hash == world.a.ledger.latest_checkpoint().root_hash  # type: ignore[union-attr]
    state = json.loads(world.a.state.read_text(encoding="utf-8"))
    assert state["cursor"] == head.cursor and state["failed"] is None
    assert _verdict(world, a_tokens[0])["verdict"] == "valid"

    # nothing changed at the lab: a push again stores nothing and leaves every row as it was
    before = _snapshot(world.hub)
    again = world.push(world.a)
    assert (again.stored, again.from_size, again.tree_size) == (0, head.tree_size, head.tree_size)
    assert _snapshot(world.hub) == before

    # the very same push delivered twice (a retry) is accepted once and then changes nothing
    world.a.issue("A3")
    envelope = make_push(
        world.a.ledger,
        world.a.key,
        lab_code="DT01",
        held_size=head.tree_size,
        held_cursor=head.cursor,
        today=TODAY,
        now=datetime.now(UTC),
    )
    assert world.hub.accept(envelope).stored >= 1
    after_once = _snapshot(world.hub)
    replay = world.hub.accept(envelope)
    assert replay.stored == 0 and replay.unchanged >= 1
    assert _snapshot(world.hub) == after_once
    assert len(world.hub.certificates("DT01")) == 3


def test_a_test_report_is_pushed_and_worded_as_a_report_on_the_hub_page(world: World) -> None:
    report = load_json(Path(__file__).parent / "data" / "testing-rows.json")
    issued = world.a.issuer.issue(parse_certificate(report), now=ISSUED_AT)
    token = token_from_url(issued.url)
    cal_token = world.a.issue("A1")
    world.push(world.a)
    answer = _verdict(world, token)
    assert (answer["verdict"], answer["record"]["kind"]) == ("valid", "testing")
    page = world.client.get(f"/V/{token}").text
    assert f"<th>Số phiếu kết quả thử nghiệm / Test report No.</th><td>{issued.number}" in page
    assert "<th>Mẫu thử nghiệm / Item tested</th><td>Mẫu nước sinh hoạt" in page
    assert "<th>Số / Serial No.</th><td>M-2026-0101</td>" in page
    assert "Phương tiện đo" not in page and "Certificate number" not in page
    # dates as the lab's own page prints them (dd/mm/yyyy)
    assert "<th>Ngày cấp / Issued</th><td>25/11/2026</td>" in page
    # a calibration certificate keeps the certificate's wording
    cal = world.client.get(f"/V/{cal_token}").text
    assert "<th>Phương tiện đo / Instrument</th>" in cal and "Test report" not in cal
    # the catalogue names each record as its page does
    found = world.client.get("/catalogue", params={"lab": "DT01"}).text
    rows = {r.split("</td><td>")[2]: r for r in found.split("<tr><td>")[1:]}
    assert "<td>Phiếu kết quả thử nghiệm / Test report</td>" in rows[issued.number]
    others = [r for n, r in rows.items() if n != issued.number]
    assert others and all("<td>Giấy chứng nhận / Certificate</td>" in r for r in others)
    assert "Giấy chứng nhận / Certificate" not in rows[issued.number]
    assert not re.search(r"<td>\d{4}-\d{2}-\d{2}</td>", found)  # no ISO date on the page


def test_the_hub_page_answers_for_each_labs_token(world: World, other_pki: KeyPaths) -> None:
    a_token = world.a.issue("A1")
    b_token = world.b.issue("B1")
    world.push(world.a)
    world.push(world.b)

    for token, lab in ((a_token, "DT01"), (b_token, "DT02")):
        result = _verdict(world, token)
        assert (result["verdict"], result["label_en"], result["lab_code"]) == (
            "valid",
            "VALID",
            lab,
        )
        page = world.client.get(f"/V/{token}")
        assert page.status_code == 200
        assert "HỢP LỆ" in page.text and "VALID" in page.text
        assert page.text.index("HỢP LỆ") < page.text.index("VALID")  # Vietnamese first

    # a genuine push from before the revocation, kept by someone to replay later
    old = make_push(
        world.a.ledger,
        world.a.key,
        lab_code="DT01",
        held_size=world.a.ledger.log_size(),
        held_cursor=None,
        today=TODAY,
        now=datetime.now(UTC),
    )
    # A revokes and pushes: the hub's page says so
    number = world.a.numbers["A1"]
    world.a.ledger.revoke(number, reason="hư hỏng / damaged", at=datetime.now(UTC))
    assert _verdict(world, a_token)["verdict"] == "valid"  # the hub knows only what is pushed
    world.push(world.a)
    result = _verdict(world, a_token)
    assert (result["verdict"], result["label_vi"]) == ("revoked", "ĐÃ THU HỒI")
    assert _verdict(world, b_token)["verdict"] == "valid"
    # the old push replayed: its checkpoint is one the hub witnessed, so it is accepted, but
    # an older state never overwrites a newer one: the certificate stays revoked
    assert world.hub.accept(old).stored == 0
    assert _verdict(world, a_token)["verdict"] == "revoked"

    # forged: one character of the signature changed; a token of a key no lab registered
    forged = a_token[:-3] + ("A" if a_token[-3] != "A" else "B") + a_token[-2:]
    assert _verdict(world, forged)["verdict"] == "not_genuine"
    stranger = make_token(
        TokenKey.generate(), number=number, issued=ISSUED_AT.date(), digest="ab" * 32
    )
    result = _verdict(world, stranger)
    assert (result["verdict"], result["label_en"]) == ("not_genuine", "NOT GENUINE")
    assert "NOT GENUINE" in world.client.get(f"/v/{stranger}").text
    # the lab's own key, a number it never pushed
    unknown = make_token(world.b.key, number="XX-2026-000999", issued=TODAY, digest="cd" * 32)
    result = _verdict(world, unknown)
    assert (result["verdict"], result["label_en"]) == (
        "not_in_hub",
        "NOT IN THE REGISTER OF THE HUB",
    )


def test_the_hub_refuses_an_oversized_push_before_reading_it(world: World) -> None:
    small = TestClient(create_hub_app(world.hub, max_push_bytes=1024))
    answer = small.post("/api/v1/push", content=b"{" + b" " * 4096 + b"}")
    assert answer.status_code == 413
    page = small.get("/v/AAAA")
    assert page.status_code == 200 and "NOT GENUINE" in page.text
    assert "content-security-policy" in page.headers
    small.close()


def _refused(world: World, lab: Lab, match: str) -> None:
    before = _snapshot(world.hub)
    with pytest.raises(PushRefused, match=match):
        world.push(lab)
    assert _snapshot(world.hub) == before
    state = json.loads(lab.state.read_text(encoding="utf-8"))
    assert state["failed"] and "not an extension" in state["failed"]


def test_a_fresh_ledger_reissuing_under_the_same_lab_is_refused(
    world: World, tmp_path: Path, pki: KeyPaths, renderer: Any
) -> None:
    world.a.issue("A1")
    world.a.issue("A2")
    world.push(world.a)
    held = world.hub.head("DT01")
    assert held is not None and held.tree_size >= 2
    # the same lab code and key, a new ledger that issues other data: a shorter log
    fresh = _lab("DT01", tmp_path / "fresh", pki, renderer)
    fresh.issue("X1")
    try:
        _refused(
            world,
            fresh,
            f"push: lab DT01: checkpoint of size {fresh.ledger.log_size()} is not an extension of "
            f"the size-{held.tree_size} log the hub holds$",
        )
        # and once it has issued past the hub's size, the proof it sends does not check
        fresh.issue("X2")
        fresh.issue("X3")
        assert fresh.ledger.log_size() > held.tree_size
        _refused(world, fresh, f"push: lab DT01: checkpoint of size {fresh.ledger.log_size()} ")
    finally:
        fresh.ledger.close()


def test_an_insider_deleting_an_event_with_sql_is_refused(world: World) -> None:
    token = world.a.issue("A1")
    world.a.issue("A2")
    number = world.a.numbers["A1"]
    world.a.ledger.revoke(number, reason="sai / wrong", at=datetime.now(UTC))
    world.push(world.a)
    held = world.hub.head("DT01")
    assert held is not None
    assert _verdict(world, token)["verdict"] == "revoked"
    # an insider removes the revocation (the last event) with SQL, then the lab issues on:
    # the log grows past what the hub holds, but it is no longer an extension of it
    roll_back(world.a.ledger, held.tree_size - 1)
    world.a.issue("A3")
    world.a.issue("A4")
    assert world.a.ledger.log_size() > held.tree_size
    _refused(
        world,
        world.a,
        f"push: lab DT01: checkpoint of size {world.a.ledger.log_size()} is not an extension of "
        f"the size-{held.tree_size} log the hub holds$",
    )
    # the hub keeps what it witnessed: the certificate is still revoked there
    assert _verdict(world, token)["verdict"] == "revoked"
    # and the rolled-back log of the same size as the hub's is refused too
    roll_back(world.a.ledger, held.tree_size - 1)
    world.a.issue("A5")
    assert world.a.ledger.log_size() == held.tree_size
    _refused(
        world,
        world.a,
        f"push: lab DT01: checkpoint of size {held.tree_size} is not an extension of the "
        f"size-{held.tree_size} log the hub holds$",
    )


def test_a_push_under_a_key_the_hub_does_not_hold_is_refused(world: World) -> None:
    world.a.issue("A1")
    before = _snapshot(world.hub)
    forger = TokenKey.generate()

    def push(key: TokenKey, lab_code: str = "DT01") -> Any:
        return make_push(
            world.a.ledger,
            key,
            lab_code=lab_code,
            held_size=0,
            held_cursor=None,
            today=TODAY,
            now=datetime.now(UTC),
        )

    with pytest.raises(PushRefused, match="not signed by a key registered for the lab"):
        world.hub.accept(push(forger))
    # lab B's key is registered, but for DT02, not DT01
    with pytest.raises(PushRefused, match=r"^lab DT01: the push is not signed by a key"):
        world.hub.accept(push(world.b.key))
    # a lab the hub never registered
    with pytest.raises(PushRefused, match="lab DT09 is not registered at the hub"):
        world.hub.accept(push(forger, "DT09"))
    # the push signed by the lab's key, its checkpoint by another: refused as well
    envelope = push(world.a.key)
    payload = json.loads(envelope["payload"])
    cp = payload["checkpoint"]
    cp["kid"] = forger.public.kid.hex()
    from certissuer.ledger import Checkpoint

    parsed = Checkpoint.from_json(cp, origin="test")
    cp["signature"] = forger.sign(parsed.message()).hex()
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    from certissuer.hub.push import push_message

    resigned = {
        "payload": text,
        "kid": world.a.key.public.kid.hex(),
        "signature": world.a.key.sign(push_message(text.encode())).hex(),
    }
    with pytest.raises(PushRefused, match="checkpoint of size 1 is not signed by a key"):
        world.hub.accept(resigned)
    # through the web API: 409 with the reason
    answer = world.client.post("/api/v1/push", json=push(forger))
    assert answer.status_code == 409 and "not signed by a key" in answer.json()["detail"]
    assert _snapshot(world.hub) == before


def test_a_lab_that_cannot_reach_the_hub_pushes_later_from_its_cursor(world: World) -> None:
    world.a.issue("A1")

    def down(method: str, url: str, body: Any) -> tuple[int, Any]:
        raise HubUnreachable(f"cannot reach the hub at {url}: connection refused")

    with pytest.raises(HubUnreachable) as info:
        push_to_hub(
            "https://hub.test.invalid",
            world.a.ledger,
            world.a.key,
            lab_code="DT01",
            state_path=world.a.state,
            transport=down,
        )
    assert info.value.hint and "nothing is lost" in info.value.hint
    assert "connection refused" in json.loads(world.a.state.read_text())["failed"]
    assert world.hub.certificates("DT01") == []
    world.a.issue("A2")  # issuing goes on meanwhile
    outcome = world.push(world.a)
    assert outcome.from_size == 0 and len(world.hub.certificates("DT01")) == 2
    assert json.loads(world.a.state.read_text())["failed"] is None


def _serve_hub(db: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``certissuer hub serve --port 0`` in a child process, and the port it bound."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "certissuer", "hub", "serve", "--db", db, "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not (started := re.search(rb"running on http://127\.0\.0\.1:(\d+) ", log.read_bytes())):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"hub serve did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return process, int(started.group(1))


def test_cli_register_serve_push_and_verify_over_http(
    tmp_path: Path, pki: KeyPaths, renderer: Any
) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        ["hub", "register-lab", "--db", db, "--code", "DT01", "--name", "Trung tâm",
         "--token-key", str(pki.token_key), "--signing-cert", str(pki.signer_cert)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "lab DT01 registered" in result.output
    hub = Hub.open(db)
    keys = hub.lab_keys("DT01")
    assert [k.kind for k in keys] == ["token", "signing"]
    assert all("PRIVATE" not in k.pem for k in keys)  # the public half
    hub.close()
    missing = runner.invoke(cli_app, ["hub", "labs"], env={"CERTISSUER_HUB_DB": ""})
    assert missing.exit_code == 3 and "no hub database given" in missing.output

    lab = _lab("DT01", tmp_path / "lab", pki, renderer)
    token = lab.issue("A1")
    profile = tmp_path / "lab" / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "DT01"\n[token]\nkey = "{pki.token_key}"\n'
        f'url_base = "https://verify.test.invalid"\n[ledger]\nurl = "{lab.settings.ledger_url}"\n',
        encoding="utf-8",
    )
    process, port = _serve_hub(db, tmp_path / "hub.log")
    url = f"http://127.0.0.1:{port}"
    try:
        pushed = runner.invoke(cli_app, ["--config", str(profile), "hub", "push", url])
        assert pushed.exit_code == 0, pushed.output
        assert f"pushed to {url}: log 0 -> 1, " in pushed.output
        state = json.loads((tmp_path / "lab" / STATE_NAME).read_text(encoding="utf-8"))
        assert state["tree_size"] == 1 and state["url"] == url
        page = requests.get(f"{url}/V/{token}", timeout=30)
        assert page.status_code == 200 and "HỢP LỆ" in page.text
        listed = runner.invoke(cli_app, ["hub", "labs", "--db", db])
        assert "DT01" in listed.output and "log size 1" in listed.output
        # the last push on Vietnam's clock, like the keys' times (not an ISO UTC time)
        assert re.search(r"last push \d{4}-\d\d-\d\d \d\d:\d\d \(UTC\+7\)", listed.output)
    finally:
        process.terminate()
        process.wait(20)
    # the hub is gone: the push fails with exit 7, says nothing is lost, and keeps the cursor
    lab.issue("A2")
    down = runner.invoke(cli_app, ["--config", str(profile), "hub", "push", url])
    assert down.exit_code == 7, down.output
    assert "cannot reach the hub" in down.output and "nothing is lost" in down.output
    state = json.loads((tmp_path / "lab" / STATE_NAME).read_text(encoding="utf-8"))
    assert state["failed"] and state["tree_size"] == 1
    lab.ledger.close()
