"""An insider with write access to the ledger database and no key (issue 14).

Every attack is raw SQL on SQLite and on PostgreSQL, against real issued certificates; each
is judged by `verify` of the PDF, `verify` of the QR token, the QR page and its JSON API, and
`ledger audit` (with and without a checkpoint kept outside the database).

What `verify` cannot see: a *deletion* alone. An event, its leaf and the checkpoints after it
removed and the head set back leaves rows that all check; only a checkpoint kept elsewhere
(`ledger audit --witness`) shows that the log was rolled back.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from certissuer import merkle
from certissuer.config import Settings
from certissuer.errors import LedgerError
from certissuer.issue import Issued, Issuer, load_token_key
from certissuer.ledger import AuditReport, Checkpoint, Ledger, Witness, load_witness
from certissuer.model import parse_certificate
from certissuer.token import TokenKey
from certissuer.verify import Report, Verdict, Verifier

from ._insider import append_event, edit_data, roll_back, sql
from .conftest import SAMPLES, load_json

LATER = datetime.now(UTC) + timedelta(minutes=5)


@dataclass
class World:
    settings: Settings
    ledger: Ledger
    issuer: Issuer
    key: TokenKey
    cal: Issued
    ver: Issued
    saved: Path
    """The newest checkpoint, saved outside the database (``ledger checkpoint --out``)."""

    @property
    def verifier(self) -> Verifier:
        return Verifier.from_settings(self.settings, ledger=self.ledger)

    def pdf(self, issued: Issued) -> Report:
        return self.verifier.verify_pdf(issued.path.read_bytes())

    def qr(self, issued: Issued) -> Report:
        return self.verifier.verify_url(issued.url)

    def audit(self, *witnesses: Path | str) -> AuditReport:
        return self.ledger.audit(
            keys=[self.key.public],
            check_files=False,
            witnesses=[load_witness(str(w)) for w in witnesses],
        )

    def save_checkpoint(self, name: str) -> Path:
        cp = self.issuer.checkpoint()
        path = self.saved.parent / name
        path.write_text(json.dumps(cp.to_json()), encoding="utf-8")
        return path


@pytest.fixture
def world(
    any_ledger_url: str, settings: Settings, sealer: Any, renderer: Any, tmp_path: Path
) -> World:
    settings = settings.replace(ledger_url=any_ledger_url)
    key = load_token_key(settings)
    ledger = Ledger.open(any_ledger_url, ledger_key=key)
    issuer = Issuer(
        settings,
        ledger=ledger,
        sealer=sealer,
        token_key=key,
        out_dir=tmp_path / "out",
        renderer=renderer,
    )
    cal = issuer.issue(parse_certificate(load_json(SAMPLES / "calibration.json")))
    ver = issuer.issue(parse_certificate(load_json(SAMPLES / "verification.json")))
    w = World(settings, ledger, issuer, key, cal, ver, tmp_path / "saved.json")
    w.saved = w.save_checkpoint("saved.json")
    return w


def web(world: World, issued: Issued) -> tuple[str, dict[str, Any]]:
    """The QR page and the JSON verdict of `issued`'s token, from a fresh app."""
    from certissuer.web import create_app

    app = create_app(world.settings.replace(web_rate_limit=0, web_pdf_workers=1))
    token = issued.url.rsplit("/V/", 1)[1]
    with TestClient(app) as client:
        html = client.get(f"/v/{token}").text
        body = client.get(f"/api/v1/verdict/{token}").json()
    return html, body


def _kinds(problems: list[str]) -> list[str]:
    return sorted({p.split(":")[0] for p in problems})


# -- controls ---------------------------------------------------------------------------------


def test_untouched_ledger_is_valid_and_audits_clean(world: World) -> None:
    assert world.pdf(world.cal).verdict is Verdict.VALID
    qr = world.qr(world.ver)
    assert qr.verdict is Verdict.VALID and qr.data_digest is not None
    html, body = web(world, world.cal)
    assert 'data-verdict="valid"' in html and "B912345678" in html
    assert body["certificate"]["serial"] == "B912345678"
    report = world.audit(world.saved)
    assert report.ok and not report.unvouched, report.problems
    assert report.events_signed == 2 and report.witnesses_checked == 1


def test_genuine_revoke_and_supersede_still_count(world: World) -> None:
    world.ledger.revoke(world.ver.number, reason="tem bị mất", at=datetime.now(UTC))
    new = world.issuer.amend(
        world.cal.number,
        parse_certificate(load_json(SAMPLES / "calibration.json")),
        reason="sai tên khách hàng",
    )
    assert world.pdf(world.ver).verdict is Verdict.REVOKED
    assert world.qr(world.ver).revocation_reason == "tem bị mất"
    cal = world.qr(world.cal)
    assert cal.verdict is Verdict.SUPERSEDED and cal.superseded_by == new.number
    html, body = web(world, world.ver)
    assert 'data-verdict="revoked"' in html and body["revocation_reason"] == "tem bị mất"
    report = world.audit(world.saved)  # the log extends the checkpoint saved before
    assert report.ok, report.problems
    assert len(report.unvouched) == 3  # revoked, issued (new), superseded: not checkpointed
    world.issuer.checkpoint()
    assert not world.audit(world.saved).unvouched


# -- "recompute, don't trust": the stored data -----------------------------------------------


def test_data_only_edited_is_altered(world: World) -> None:
    edit_data(world.ledger, world.cal.number, "B912345678", "FORGED-777", digest=False)
    for report in (world.pdf(world.cal), world.qr(world.cal)):
        assert report.verdict is Verdict.ALTERED, report.reasons
        assert any("do not hash to the digest" in r for r in report.reasons), report.reasons
        assert report.serial is None and report.data_digest is None
    html, body = web(world, world.cal)
    assert 'data-verdict="altered"' in html and "FORGED-777" not in html
    assert body["verdict"] == "altered" and body["certificate"] is None
    problems = world.audit(world.saved).problems
    assert f"edited: certificate {world.cal.number}: its data no longer match its digest" in (
        problems
    )


def test_digest_only_edited_is_altered(world: World) -> None:
    sql(
        world.ledger,
        "UPDATE certificate SET data_digest = :g WHERE number = :n",
        g=hashlib.sha256(b"anything").hexdigest(),
        n=world.ver.number,
    )
    for report in (world.pdf(world.ver), world.qr(world.ver)):
        assert report.verdict is Verdict.ALTERED, report.reasons
    assert 'data-verdict="altered"' in web(world, world.ver)[0]
    problems = world.audit().problems
    assert _kinds(problems) == ["edited", "forged"], problems


def test_data_and_digest_edited_consistently_is_altered(world: World) -> None:
    edit_data(world.ledger, world.cal.number, "B912345678", "FORGED-777", digest=True)
    pdf, qr = world.pdf(world.cal), world.qr(world.cal)
    for report in (pdf, qr):
        assert report.verdict is Verdict.ALTERED, report.reasons
        assert any("QR token's data digest does not match" in r for r in report.reasons)
    html, body = web(world, world.cal)
    assert "FORGED-777" not in html and body["certificate"] is None
    problems = world.audit().problems
    assert any(p.startswith("forged: event row") and world.cal.number in p for p in problems)


def test_signed_columns_edited_and_relogged_are_altered(world: World) -> None:
    """Extend valid_until, re-hash its leaf, drop the checkpoints: the issued event's
    signature still covers the old value."""
    sql(
        world.ledger,
        "UPDATE certificate SET valid_until = :d WHERE number = :n",
        d=date(2099, 1, 1),
        n=world.ver.number,
    )
    entry = world.ledger.get(world.ver.number)
    assert entry is not None
    (issued,) = world.ledger.events(world.ver.number)
    from certissuer.ledger import leaf_data

    sql(
        world.ledger,
        "UPDATE log_leaf SET leaf_hash = :h WHERE event_id = :e",
        h=merkle.leaf_hash(leaf_data(issued, entry)).hex(),
        e=issued.id,
    )
    sql(world.ledger, "DELETE FROM checkpoint")
    for report in (world.pdf(world.ver), world.qr(world.ver)):
        assert report.verdict is Verdict.ALTERED, report.reasons
        assert any("does not vouch for" in r and "does not verify" in r for r in report.reasons)
    assert 'data-verdict="altered"' in web(world, world.ver)[0]
    report = world.audit(world.saved)
    assert _kinds(report.problems) == ["forged", "rollback"], report.problems


# -- events that cannot be forged ------------------------------------------------------------


@pytest.mark.parametrize("signed", ["unsigned", "random signature"])
def test_appended_forged_revocation_is_ignored_and_named(world: World, signed: str) -> None:
    idx = append_event(
        world.ledger,
        world.cal.number,
        "revoked",
        at=LATER,
        reason="giả mạo / forged",
        kid=world.key.public.kid.hex() if signed != "unsigned" else "",
        random_signature=signed != "unsigned",
    )
    for report in (world.pdf(world.cal), world.qr(world.cal)):
        assert report.verdict is Verdict.VALID, report.reasons
        assert any(r.startswith("ignored: the revoked event") for r in report.reasons)
    html, body = web(world, world.cal)
    assert 'data-verdict="valid"' in html and "B912345678" in html
    assert body["verdict"] == "valid" and "ignored: the revoked event" in " ".join(body["reasons"])
    report = world.audit(world.saved)
    kind = "unsigned" if signed == "unsigned" else "forged"
    assert [p.split(":")[0] for p in report.problems] == [kind], report.problems
    assert report.unvouched == [
        f"unvouched: leaf {idx} ({world.cal.number}, revoked) is after the newest checkpoint "
        f"(size {idx}); no checkpoint vouches for it yet"
    ]


def test_relogged_issued_event_does_not_vouch(world: World) -> None:
    """Delete the genuine issued event and log a new one over edited columns: unsigned."""
    sql(world.ledger, "UPDATE certificate SET customer_name = 'X' WHERE number = :n",
        n=world.cal.number)  # fmt: skip
    entry = world.ledger.get(world.cal.number)
    assert entry is not None
    append_event(world.ledger, world.cal.number, "issued", at=LATER, pdf_sha256=entry.pdf_sha256)
    sql(world.ledger, "DELETE FROM certificate_event WHERE number = :n AND signature <> ''",
        n=world.cal.number)  # fmt: skip
    report = world.qr(world.cal)
    assert report.verdict is Verdict.NOT_IN_LEDGER, report.reasons
    assert any("not signed by the lab" in r for r in report.reasons)
    assert world.pdf(world.cal).verdict is Verdict.NOT_IN_LEDGER


# -- a log that cannot be rolled back --------------------------------------------------------


def test_deleted_revocation_is_caught_by_a_saved_checkpoint(world: World) -> None:
    size = world.ledger.log_size()
    world.ledger.revoke(world.ver.number, reason="tem bị mất", at=datetime.now(UTC))
    after = world.save_checkpoint("after-revoke.json")
    assert world.qr(world.ver).verdict is Verdict.REVOKED

    roll_back(world.ledger, size)
    # What verify can see of a deletion alone: nothing. Every remaining row checks.
    assert world.qr(world.ver).verdict is Verdict.VALID
    assert world.audit().ok  # the database agrees with itself
    report = world.audit(after, world.saved)
    cp = Checkpoint.from_json(json.loads(after.read_text()), origin="x")
    assert report.problems == [
        f"rollback: the saved checkpoint of {cp.at:%Y-%m-%d} ({after}) vouches for "
        f"{size + 1} leaves with root {cp.root_hash}; the log now has {size}"
    ]

    # Filling the hole with another event to the same size changes the root instead.
    append_event(world.ledger, world.cal.number, "superseded", at=LATER, related_number="x")
    unsigned, problem = world.audit(after).problems
    assert unsigned.startswith("unsigned: event row")
    assert problem.startswith("rollback: the saved checkpoint") and "now have root" in problem


def test_saved_checkpoint_must_be_the_labs(world: World, tmp_path: Path) -> None:
    data = json.loads(world.saved.read_text())
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**data, "tree_size": data["tree_size"] - 1}))
    (problem,) = world.audit(forged).problems
    assert problem.startswith("witness: the saved checkpoint") and "signature is invalid" in problem
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(LedgerError, match="not a certissuer checkpoint"):
        load_witness(str(tmp_path / "junk.json"))


def test_backfill_signs_only_what_a_checkpoint_vouches_for(world: World) -> None:
    # Events from before signing: strip the signatures, as revision 0006 finds them.
    sql(world.ledger, "UPDATE certificate_event SET kid = '', signature = ''")
    idx = append_event(world.ledger, world.cal.number, "revoked", at=LATER, reason="insider")
    assert world.qr(world.cal).verdict is Verdict.NOT_IN_LEDGER  # nothing vouched for yet
    signed, left = world.ledger.sign_unsigned(world.key, at=datetime.now(UTC))
    assert len(signed) == 2 and [(ev.kind, why) for ev, why in left] == [
        ("revoked", f"leaf {idx} is not both under a checkpoint signed with this key and before "
         "the first event signed when it was written")
    ]  # fmt: skip
    report = world.qr(world.cal)
    assert report.verdict is Verdict.VALID
    assert any("signed at the ledger upgrade" in r for r in report.reasons)


def test_backfill_never_signs_an_event_after_the_first_signed_one(world: World) -> None:
    """An unsigned event appended after signing began, even under a later checkpoint."""
    append_event(world.ledger, world.cal.number, "revoked", at=LATER, reason="insider")
    world.issuer.checkpoint()  # the lab's next run vouches for the log as it finds it
    signed, left = world.ledger.sign_unsigned(world.key, at=datetime.now(UTC))
    assert signed == [] and [ev.kind for ev, _ in left] == ["revoked"]
    assert world.qr(world.cal).verdict is Verdict.VALID


# -- checkpoints published -------------------------------------------------------------------


@pytest.fixture
def served(world: World) -> Iterator[str]:
    """The verification app on the world's ledger, over HTTP on a free localhost port."""
    from certissuer.web import create_app

    app = create_app(world.settings.replace(web_rate_limit=0, web_pdf_workers=1))
    # Port 0: the kernel picks a free port as the server binds (no other process can take it).
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("any_ledger_url", ["sqlite"], indirect=True)
def test_url_witness_catches_a_rollback(world: World, served: str, tmp_path: Path) -> None:
    import requests

    size = world.ledger.log_size()
    world.ledger.revoke(world.ver.number, reason="tem bị mất", at=datetime.now(UTC))
    world.issuer.checkpoint()
    published = requests.get(f"{served}/api/v1/checkpoint", timeout=10).json()
    assert published["tree_size"] == size + 1
    proof = requests.get(f"{served}/api/v1/consistency", params={"from": size}, timeout=10)
    body = proof.json()
    saved = json.loads(world.saved.read_text())
    assert merkle.verify_consistency(
        size,
        published["tree_size"],
        [bytes.fromhex(h) for h in body["proof"]],
        bytes.fromhex(saved["root_hash"]),
        bytes.fromhex(published["root_hash"]),
    )
    assert requests.get(f"{served}/api/v1/consistency?from=99", timeout=10).status_code == 400

    # Another server keeps a copy (a hub): it goes on publishing the checkpoint it holds.
    hub = Witness(f"{served}/api/v1/checkpoint", load_witness(served).checkpoint)
    roll_back(world.ledger, size)
    report = world.ledger.audit(keys=[world.key.public], check_files=False, witnesses=[hub])
    assert [p.split(":")[0] for p in report.problems] == ["rollback"], report.problems
    assert f"vouches for {size + 1} leaves" in report.problems[0]
    assert f"the log now has {size}" in report.problems[0]
