"""One lab, one ledger; a stamp number once per lab (issue 16).

A relative ledger file in the profile is the profile's, wherever certissuer runs from; a new,
empty ledger is announced on standard error; a ledger belongs to the lab that made (or adopted)
it and refuses another lab's profile; a verification stamp is claimed with the certificate's
number, so two processes issuing the same stamp get one certificate and one refusal.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url
from sqlmodel import Session, select

from certissuer.config import Settings, load_settings
from certissuer.errors import IssueRefused, LedgerError
from certissuer.keys import KeyPaths
from certissuer.ledger import CertificateEntry, Ledger, NumberCounter, StampClaim
from certissuer.ledger.migrations import upgrade
from certissuer.model import parse_certificate

from .conftest import PASSPHRASE, ROOT, SAMPLES, lab_settings

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


# -- the profile's folder, not the current one -------------------------------------------------


def _lab_folder(tmp_path: Path, keys: KeyPaths, code: str = "T01") -> Path:
    """A lab folder as a lab keeps it: the profile, its keys beside it, all paths relative."""
    lab = tmp_path / "lab"
    (lab / "keys").mkdir(parents=True, exist_ok=True)
    for src in (keys.signer_p12, keys.ca_cert, keys.token_key):
        shutil.copy(src, lab / "keys" / Path(src).name)
    profile = lab / f"{code.lower()}.toml"
    profile.write_text(
        f'[lab]\ncode = "{code}"\nname_vi = "Phòng thí nghiệm"\nname_en = "Test laboratory"\n'
        'place = "Đồng Tháp"\n'
        f'[signing]\npkcs12 = "keys/{Path(keys.signer_p12).name}"\n'
        f'trust_roots = ["keys/{Path(keys.ca_cert).name}"]\n'
        f'[token]\nkey = "keys/{Path(keys.token_key).name}"\n'
        'url_base = "https://verify.test.invalid"\n'
        '[ledger]\nurl = "sqlite:///ledger.db"\n',
        encoding="utf-8",
    )
    return profile


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m certissuer ARGS`` in folder `cwd`, as a lab would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTISSUER_")}
    env |= {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode(), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "certissuer", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _calibration(folder: Path, ref: str) -> Path:
    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    data["ref"] = ref
    path = folder / f"{ref}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_relative_sqlite_file_is_the_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "lab" / "certissuer.toml"
    profile.parent.mkdir()
    profile.write_text('[ledger]\nurl = "sqlite:///data/ledger.db"\n', encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    settings = load_settings(Path("..") / "lab" / "certissuer.toml", env={})
    assert settings.ledger_url == f"sqlite:///{profile.parent.resolve() / 'data' / 'ledger.db'}"


def test_a_profile_without_ledger_url_keeps_its_ledger_beside_it(tmp_path: Path) -> None:
    profile = tmp_path / "certissuer.toml"
    profile.write_text('[lab]\ncode = "T01"\n', encoding="utf-8")
    settings = load_settings(profile, env={})
    assert settings.ledger_url == f"sqlite:///{tmp_path.resolve() / 'certissuer-ledger.db'}"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/lab/ledger.db",
        "sqlite:///:memory:",
        "postgresql+psycopg://lab@db.example.vn/ledger",
    ],
)
def test_absolute_and_other_urls_are_kept(tmp_path: Path, url: str) -> None:
    profile = tmp_path / "certissuer.toml"
    profile.write_text(f'[ledger]\nurl = "{url}"\n', encoding="utf-8")
    assert load_settings(profile, env={}).ledger_url == url


def test_issuing_from_two_folders_uses_one_ledger(tmp_path: Path, pki: KeyPaths) -> None:
    profile = _lab_folder(tmp_path, pki)
    first, second = tmp_path / "desk-a", tmp_path / "desk-b" / "deeper"
    second.mkdir(parents=True)
    first.mkdir()
    ran = []
    for cwd, ref in ((first, "from-a"), (second, "from-b")):
        rel_profile = os.path.relpath(profile, cwd)
        done = _cli(
            cwd, "--config", rel_profile, "issue", str(_calibration(cwd, ref)), "--out", "out"
        )
        assert done.returncode == 0, done.stderr
        ran.append(done)
    ledger_file = profile.parent / "ledger.db"
    assert f"created a new, empty ledger at {ledger_file.resolve()}" in ran[0].stderr
    assert "created a new" not in ran[1].stderr
    assert not (first / "ledger.db").exists() and not (second / "ledger.db").exists()
    entries = sorted(Ledger.open(f"sqlite:///{ledger_file}").entries(), key=lambda e: e.seq)
    assert [(e.ref, e.seq) for e in entries] == [("from-a", 1), ("from-b", 2)]
    # Another lab's profile naming the same file is refused, exit 7, naming both labs.
    other = _lab_folder(tmp_path, pki, code="T02")
    refused = _cli(first, "--config", str(other), "issue", str(_calibration(first, "x")))
    assert refused.returncode == 7, refused.stderr
    assert "belongs to lab T01" in refused.stderr and "not to lab T02" in refused.stderr
    assert "hint:" in refused.stderr


# -- the ledger's lab ---------------------------------------------------------------------------


def test_a_new_ledger_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'ledger.db'}"
    with caplog.at_level(logging.WARNING, logger="certissuer.ledger.ledger"):
        Ledger.open(url, lab_code="T01", profile=tmp_path / "lab.toml")
        Ledger.open(url, lab_code="T01", profile=tmp_path / "lab.toml")
    created = [r for r in caplog.records if "created a new, empty ledger" in r.getMessage()]
    assert len(created) == 1
    assert str((tmp_path / "new" / "ledger.db").resolve()) in created[0].getMessage()


def test_another_labs_profile_is_refused(any_ledger_url: str, tmp_path: Path) -> None:
    ledger = Ledger.open(any_ledger_url, lab_code="T01", profile=tmp_path / "t01.toml")
    row = ledger.lab()
    assert row is not None and row.lab_code == "T01" and not row.adopted
    assert row.profile == str((tmp_path / "t01.toml").resolve())
    with pytest.raises(LedgerError, match=r"belongs to lab T01 .* not to lab T02") as info:
        Ledger.open(any_ledger_url, lab_code="T02", profile=tmp_path / "t02.toml")
    assert info.value.exit_code == 7
    assert info.value.hint is not None and "own ledger" in info.value.hint


def test_the_same_lab_from_a_moved_profile_is_allowed_and_noted(
    any_ledger_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Ledger.open(any_ledger_url, lab_code="T01", profile=tmp_path / "old" / "lab.toml")
    with caplog.at_level(logging.WARNING, logger="certissuer.ledger.ledger"):
        ledger = Ledger.open(any_ledger_url, lab_code="T01", profile=tmp_path / "new" / "lab.toml")
    assert any("was made for the profile" in r.getMessage() for r in caplog.records)
    row = ledger.lab()
    assert row is not None and row.profile.endswith(str(Path("old") / "lab.toml"))


def test_the_issuer_opens_the_ledger_for_its_lab(
    tmp_path: Path, pki: KeyPaths, settings: Settings
) -> None:
    from certissuer.issue import Issuer

    Ledger.open(settings.ledger_url, lab_code="OTHER")
    with pytest.raises(LedgerError, match="belongs to lab OTHER"):
        Issuer.from_settings(settings, passphrase=PASSPHRASE, out_dir=tmp_path / "out")


def _entry(number: str, seq: int, ref: str, data: dict[str, Any]) -> CertificateEntry:
    return CertificateEntry(
        number=number, lab_code="T01", series="KĐ", year=2026, seq=seq, kind="verification",
        ref=ref, instrument_name="Cột đo", instrument_model="X", instrument_serial=ref,
        customer_name="Khách", work_date=date(2026, 11, 20), issue_date=date(2026, 11, 27),
        issued_at=NOW, data_digest="ab" * 32, data_json=json.dumps(data), token="tok",
    )  # fmt: skip


def test_an_existing_ledger_adopts_the_first_lab_and_keeps_its_stamps(
    any_ledger_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A ledger made before revision 0007: it knows no lab and no stamp.
    if any_ledger_url.startswith("sqlite"):
        Path(make_url(any_ledger_url).database or "").touch()  # opened without its schema
    old = Ledger.open(any_ledger_url, create=False)
    assert upgrade(old.engine, "0006") == "0006"
    for ref, data in (
        ("a", {"stamp_number": "ĐT-26 0000007"}),
        ("b", {"stamp_number": "ĐT-26 7"}),  # reused before the rule: stays with "a"
        ("c", {"stamp_number": "ĐT-26 0000007", "replaces": {"number": "KĐ-2026-000001"}}),
        ("d", {"stamp_number": ""}),
    ):
        old.reserve_with("T01", "KĐ", 2026, lambda n, s, r=ref, d=data: _entry(n, s, r, d))
    old.close()
    with caplog.at_level(logging.WARNING, logger="certissuer.ledger.ledger"):
        ledger = Ledger.open(any_ledger_url, lab_code="T01", profile=tmp_path / "lab.toml")
    assert any("did not record its lab" in r.getMessage() for r in caplog.records)
    assert not any("created a new" in r.getMessage() for r in caplog.records)
    row = ledger.lab()
    assert row is not None and row.lab_code == "T01" and row.adopted
    # The amendment "c" took the stamp over from "a", which it replaces.
    assert ledger.stamp_holder("T01", ("ĐT-26", 7)) == "KĐ-2026-000003"
    with pytest.raises(LedgerError, match="belongs to lab T01"):
        Ledger.open(any_ledger_url, lab_code="T02")


# -- a stamp once per lab ------------------------------------------------------------------------


def _builder(ref: str) -> Any:
    return lambda number, seq: _entry(number, seq, ref, {})


def test_a_stamp_is_refused_the_second_time_and_takes_no_number(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    first = ledger.reserve_with("T01", "KĐ", 2026, _builder("a"), stamp=("ĐT-26", 12345))
    with pytest.raises(IssueRefused, match=rf"stamp ĐT-26 12345 is already on .*{first.number}"):
        ledger.reserve_with("T01", "KĐ", 2026, _builder("b"), stamp=("ĐT-26", 12345))
    # No number was taken: the next certificate is the second.
    assert ledger.reserve_with("T01", "KĐ", 2026, _builder("c")).seq == 2
    # Another lab's stamp of the same series and number is its own.
    other = ledger.reserve_with("T02", "KĐ-T02", 2026, _builder("a"), stamp=("ĐT-26", 12345))
    assert ledger.stamp_holder("T02", ("ĐT-26", 12345)) == other.number


def test_an_amendment_keeps_the_stamp_and_a_release_gives_it_back(any_ledger_url: str) -> None:
    ledger = Ledger.open(any_ledger_url)
    stamp = ("ĐT-26", 5)
    first = ledger.reserve_with("T01", "KĐ", 2026, _builder("a"), stamp=stamp)
    amended = ledger.reserve_with(
        "T01", "KĐ", 2026, _builder("a/amends"), stamp=stamp, replaces=first.number
    )
    assert ledger.stamp_holder("T01", stamp) == amended.number
    assert ledger.release(amended.number)  # the amendment failed: the stamp goes back
    assert ledger.stamp_holder("T01", stamp) == first.number
    assert ledger.release(first.number)
    assert ledger.stamp_holder("T01", stamp) is None
    with Session(ledger.engine) as s:
        assert s.exec(select(StampClaim)).all() == []


def test_the_issuer_refuses_a_used_stamp_without_a_register(
    issuer: Any, ver_data: dict[str, Any]
) -> None:
    assert not issuer.register.enabled()
    first = issuer.issue(parse_certificate(ver_data))
    again = parse_certificate({**ver_data, "ref": "another"})
    with pytest.raises(IssueRefused, match=f"already on certificate {first.number}") as info:
        issuer.check(again)
    assert info.value.exit_code == 9 and info.value.hint
    with pytest.raises(IssueRefused, match=f"already on certificate {first.number}"):
        issuer.issue(again)
    # The same record again is not a second use: it returns the certificate it has.
    assert issuer.issue(parse_certificate(ver_data)).reused
    # An amendment keeps the instrument's stamp.
    amended = issuer.amend(first.number, parse_certificate(ver_data), reason="sai địa chỉ")
    assert issuer.ledger.stamp_holder("T01", ("ĐT-26", 12345)) == amended.number


def _race_worker(settings: Settings, out: str, ref: str, barrier: Any) -> str:
    """Issue the sample verification with `ref` and its stamp, after `barrier`."""
    from certissuer.issue import Issuer, load_token_key
    from certissuer.sign import Sealer

    from ._workers import TinyRenderer

    data = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
    cert = parse_certificate({**data, "ref": ref})
    issuer = Issuer(
        settings,
        ledger=Ledger.open(settings.ledger_url),
        sealer=Sealer.from_pkcs12(settings.signing_pkcs12, PASSPHRASE),  # type: ignore[arg-type]
        token_key=load_token_key(settings),
        out_dir=Path(out),
        renderer=TinyRenderer(),  # type: ignore[arg-type]
    )
    barrier.wait()
    try:
        return issuer.issue(cert).number
    except IssueRefused as exc:
        return f"refused: {exc}"


@pytest.mark.parametrize("same_series", [True, False], ids=["one-series", "two-series"])
def test_two_processes_issuing_one_stamp_get_one_certificate(
    any_ledger_url: str, pki: KeyPaths, tmp_path: Path, same_series: bool
) -> None:
    # Two series make the processes not wait on one number counter: the stamp's key decides.
    Ledger.open(any_ledger_url)
    settings = [
        lab_settings(pki, ledger=any_ledger_url, numbering_verification=series)
        for series in (("KĐ", "KĐ") if same_series else ("KĐ", "KĐB"))
    ]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        results = pool.starmap(
            _race_worker,
            [(settings[i], str(tmp_path / "out"), f"race-{i}", barrier) for i in range(2)],
        )
    issued = [r for r in results if not r.startswith("refused")]
    refused = [r for r in results if r.startswith("refused")]
    assert len(issued) == 1 and len(refused) == 1, results
    assert "stamp ĐT-26 12345 is already on certificate" in refused[0]
    ledger = Ledger.open(any_ledger_url)
    assert [e.number for e in ledger.entries()] == issued
    with Session(ledger.engine) as s:
        counters = {c.series: c.last for c in s.exec(select(NumberCounter))}
    assert sum(counters.values()) == 1, f"the refused process took no number: {counters}"


def test_one_run_may_not_put_one_stamp_on_two_certificates(tmp_path: Path, pki: KeyPaths) -> None:
    # Two records of one `issue` run with the same stamp, written two ways: the ledger's key
    # sees only claimed stamps, so the run itself refuses the second, and issues nothing.
    profile = _lab_folder(tmp_path, pki)
    records = []
    for ref, stamp in (("v-1", "ĐT-26 0000009"), ("v-2", "ĐT-26 9")):
        data = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
        records.append(data | {"ref": ref, "stamp_number": stamp})
    both = tmp_path / "both.json"
    both.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    done = _cli(tmp_path, "--config", str(profile), "issue", str(both), "--out", "out")
    assert done.returncode == 9, done.stderr
    assert "stamp ĐT-26 9 is also on row 1 of this run" in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.pdf"))
    assert Ledger.open(f"sqlite:///{profile.parent / 'ledger.db'}").entries() == []


def test_revoking_with_another_labs_profile_is_refused(tmp_path: Path, pki: KeyPaths) -> None:
    profile = _lab_folder(tmp_path, pki)
    issued = _cli(tmp_path, "--config", str(profile), "issue", str(_calibration(tmp_path, "r")))
    assert issued.returncode == 0, issued.stderr
    other = _lab_folder(tmp_path, pki, code="T02")  # the same ledger file, another lab
    refused = _cli(tmp_path, "--config", str(other), "revoke", "HC-2026-000001", "--reason", "x")
    assert refused.returncode == 7, refused.stderr
    assert "belongs to lab T01" in refused.stderr
    ledger = Ledger.open(f"sqlite:///{profile.parent / 'ledger.db'}")
    assert [e.kind for e in ledger.events("HC-2026-000001")] == ["issued"]


def test_the_register_fills_itself_without_the_labs_row(tmp_path: Path, pki: KeyPaths) -> None:
    # A new lab, no `registry add lab`: issuing a verification records the owner and the
    # instrument, so recall lists it from the first certificate on (as after `make demo`).
    profile = _lab_folder(tmp_path, pki)
    data = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
    record = tmp_path / "v.json"
    record.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert _cli(tmp_path, "--config", str(profile), "issue", str(record)).returncode == 0
    out = tmp_path / "recall.csv"
    done = _cli(
        tmp_path, "--config", str(profile), "recall", "--within", "365d",
        "--format", "csv", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8-sig")
    assert data["instrument"]["serial"] in text and "KĐ-2026-000001" in text


def test_reading_a_ledger_that_is_not_there_leaves_no_file(tmp_path: Path, pki: KeyPaths) -> None:
    # `verify` and `ledger list` read the ledger: a profile whose ledger does not exist yet
    # says where it looked, exit 7, and leaves no empty database behind.
    # `verify` checks the file without it (issue 18: the ledger out of reach is "not
    # consulted", with a warning naming it), and creates nothing either.
    profile = _lab_folder(tmp_path, pki)
    for args in (("ledger", "list"), ("verify", str(SAMPLES / "calibration.json"))):
        done = _cli(tmp_path, "--config", str(profile), *args)
        assert done.returncode == (7 if args[0] == "ledger" else 8), (args, done.stderr)
        assert f"there is no ledger at {profile.parent / 'ledger.db'}" in done.stderr
        assert not (profile.parent / "ledger.db").exists()


# -- every command opens the ledger for its lab ------------------------------------------------


@pytest.fixture(scope="module")
def two_labs(
    tmp_path_factory: pytest.TempPathFactory, pki: KeyPaths, verifier_pki: KeyPaths
) -> dict[str, Any]:
    """Lab T01's ledger with a calibration and a verification certificate, and lab T02's
    profile naming the same ledger file (both profiles with absolute paths)."""
    from typer.testing import CliRunner

    from certissuer.cli import app

    root = tmp_path_factory.mktemp("two-labs")
    ledger_file = root / "ledger.db"
    profiles = {}
    for code in ("T01", "T02"):
        profile = root / code.lower() / "lab.toml"
        profile.parent.mkdir()
        profile.write_text(
            f'[lab]\ncode = "{code}"\n[signing]\napproval = true\npkcs12 = "{pki.signer_p12}"\n'
            f'trust_roots = ["{pki.ca_cert}", "{verifier_pki.ca_cert}"]\n'
            f'[token]\nkey = "{pki.token_key}"\n'
            f'url_base = "https://verify.test.invalid"\n'
            f'[ledger]\nurl = "sqlite:///{ledger_file}"\n'
            # the verifier signs first, with their own key (the head approves later)
            f'[[people]]\nname = "Phạm Minh Tuấn"\nroles = ["verifier"]\n'
            f'pkcs12 = "{verifier_pki.signer_p12}"\n',
            encoding="utf-8",
        )
        profiles[code] = profile
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    done = CliRunner().invoke(
        app,
        ["--config", str(profiles["T01"]), "issue", "--out", str(root / "out"),
         str(SAMPLES / "calibration.json"), str(SAMPLES / "verification.json")],
        env=env,
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    return {"root": root, "profiles": profiles, "env": env, "ledger": ledger_file}


_EVERY_COMMAND = [
    ("ledger", "list"),
    ("ledger", "show", "{HC}"),
    ("ledger", "search", "--json"),
    ("ledger", "failures"),
    ("ledger", "audit", "--no-files"),
    ("ledger", "proof", "{HC}"),
    ("ledger", "checkpoint"),
    ("ledger", "export", "--out", "{dir}/export.csv"),
    ("report", "activity", "--year", "2026", "--xlsx", "{dir}/activity.xlsx"),
    ("export", "sector", "--out", "{dir}/sector.json"),
    ("registry", "list", "owner"),
    ("recall", "--within", "365d"),
    ("dcc", "export", "{HC}", "--out", "{dir}/dcc.xml"),
    ("verify", "{HC.pdf}"),
    ("sign-approve", "{KĐ.pdf}", "--out", "{dir}/approved.pdf"),
    ("approve", "--pending"),
]


@pytest.mark.parametrize("args", _EVERY_COMMAND, ids=lambda a: " ".join(a[:2]))
def test_every_command_refuses_another_labs_ledger(
    two_labs: dict[str, Any], tmp_path: Path, args: tuple[str, ...]
) -> None:
    from typer.testing import CliRunner

    from certissuer.cli import app

    out = two_labs["root"] / "out"
    fill = {
        "{HC}": "HC-2026-000001",
        "{HC.pdf}": str(next(out.glob("HC-*.pdf"))),
        "{KĐ.pdf}": str(next(out.glob("K*.pdf"))),
    }
    argv = [fill.get(a, a).replace("{dir}", str(tmp_path)) for a in args]
    runner = CliRunner()

    def run(code: str) -> Any:
        profile = two_labs["profiles"][code]
        return runner.invoke(app, ["--config", str(profile), *argv], env=two_labs["env"])

    refused = run("T02")
    assert refused.exit_code == 7, refused.output
    assert "belongs to lab T01" in refused.stderr and "not to lab T02" in refused.stderr
    assert "hint: each lab keeps its own ledger" in refused.stderr
    assert not list(tmp_path.iterdir()), "a refused command wrote nothing"
    row = Ledger.open(f"sqlite:///{two_labs['ledger']}", create=False).lab()
    assert row is not None and row.lab_code == "T01"
    done = run("T01")
    assert "belongs to lab" not in done.stderr
    assert done.exit_code == 0, done.output
    if args[0] == "sign-approve":
        # Past the ledger's lab check, the printed head's key (the profile's [signing] key,
        # whose certificate names them) approves into the --out file.
        assert "by Lê Hoàng Phúc" in done.stdout and (tmp_path / "approved.pdf").exists()


def test_the_verification_page_refuses_another_labs_ledger(two_labs: dict[str, Any]) -> None:
    from certissuer.web import create_app

    url = f"sqlite:///{two_labs['ledger']}"
    other = load_settings(two_labs["profiles"]["T02"], env={})
    with pytest.raises(LedgerError, match=r"belongs to lab T01 .* not to lab T02"):
        create_app(other)
    with pytest.raises(LedgerError, match="belongs to lab T01"):
        Ledger.open_readonly(url, lab_code="T02")
    own = Ledger.open_readonly(url, lab_code="T01", profile=two_labs["profiles"]["T01"])
    assert own.get("HC-2026-000001") is not None
    own.close()


def test_reading_checks_the_lab_and_never_records_one(any_ledger_url: str, tmp_path: Path) -> None:
    # A ledger that has recorded no lab yet (an upgraded older one) is read as it is: neither
    # an open to read nor a read-only open writes a lab into it; the next bind does.
    Ledger.open(any_ledger_url).close()
    assert Ledger.open(any_ledger_url, create=False, lab_code="T01").lab() is None
    if any_ledger_url.startswith("sqlite"):
        assert Ledger.open_readonly(any_ledger_url, lab_code="T01").lab() is None
    bound = Ledger.open(any_ledger_url, lab_code="T01", profile=tmp_path / "lab.toml")
    assert bound.lab() is not None
    with pytest.raises(LedgerError, match="belongs to lab T01") as info:
        Ledger.open(any_ledger_url, create=False, lab_code="T02")
    assert info.value.exit_code == 7
    if any_ledger_url.startswith("sqlite"):
        with pytest.raises(LedgerError, match="belongs to lab T01"):
            Ledger.open_readonly(any_ledger_url, lab_code="T02")
