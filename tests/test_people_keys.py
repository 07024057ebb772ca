"""People have keys (issue 17): each signature is made with the key of the person printed
under it, and the key's certificate names that person.

Real keys (PKCS#12 files made with `make_keys`, a SoftHSM2 token addressed by an RFC 7512
URI), real signatures checked with pyHanko's validator and certissuer's verifier, a real
ledger.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from typer.testing import CliRunner

from certissuer import batch
from certissuer.approve import approve_pdf
from certissuer.cli import app
from certissuer.config import Role, Settings, load_settings, parse_pkcs11_uri
from certissuer.errors import ConfigError, SignerRefused, SigningError
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths, make_keys
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Keyring, Sealer
from certissuer.verify import Verdict, Verifier

from .conftest import HEAD, PASSPHRASE, SAMPLES, VERIFIER, load_json
from .test_pkcs11_tokens import MODULE, PIN, SoftHsm, _chain, _new_key, _pem, softhsm  # noqa: F401

runner = CliRunner()


@pytest.fixture(scope="module")
def people_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPaths]:
    """One key per person, each from its own CA: the head, the verifier, and a stranger."""
    home = tmp_path_factory.mktemp("people")
    return {
        who: make_keys(home / who, passphrase=PASSPHRASE, organisation="Test lab", signer_name=cn)
        for who, cn in (("head", HEAD), ("verifier", VERIFIER), ("demo", "Demo signer"))
    }


def _profile(
    folder: Path,
    keys: dict[str, KeyPaths],
    *,
    signing: str | None = "demo",
    people: str = "",
    extra: str = "",
) -> Path:
    """A lab profile: `signing` names the [signing] key (None: none), `people` is appended."""
    roots = ", ".join(f'"{k.ca_cert}"' for k in keys.values())
    signing_key = f'pkcs12 = "{keys[signing].signer_p12}"' if signing else ""
    path = folder / "lab.toml"
    path.write_text(
        f"""
[lab]
code = "PPL"
place = "Đồng Tháp"
[signing]
{signing_key}
trust_roots = [{roots}]
{extra}
[token]
key = "{keys["head"].token_key}"
url_base = "https://verify.test.invalid"
[ledger]
url = "sqlite:///{folder / "ledger.db"}"
{people}
""",
        encoding="utf-8",
    )
    return path


def _person(name: str, roles: list[str], p12: Path, **more: str) -> str:
    lines = [f'name = "{name}"', f"roles = {json.dumps(roles)}", f'pkcs12 = "{p12}"']
    lines += [f'{k} = "{v}"' for k, v in more.items()]
    return "\n[[people]]\n" + "\n".join(lines) + "\n"


def _issuer(settings: Settings, tmp_path: Path, renderer: Any) -> Issuer:
    issuer = Issuer.from_settings(settings, passphrase=PASSPHRASE, out_dir=tmp_path / "out")
    issuer.renderer = renderer
    return issuer


def _signers(pdf: bytes, roots: list[Path]) -> list[str]:
    """Each signature's signer (CN), after pyHanko found it intact, valid and trusted."""
    ctx = ValidationContext(
        trust_roots=[
            asn1_x509.Certificate.load(
                x509.load_pem_x509_certificate(r.read_bytes()).public_bytes(
                    serialization.Encoding.DER
                )
            )
            for r in roots
        ]
    )
    names = []
    for sig in PdfFileReader(BytesIO(pdf)).embedded_signatures:
        status = validate_pdf_signature(sig, ctx)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        names.append(sig.signer_cert.subject.native["common_name"])
    return names


def _verification(ref: str, **changes: Any) -> Any:
    data = load_json(SAMPLES / "verification.json")
    data["ref"] = ref
    data["stamp_number"] = f"ĐT-26 {zlib.crc32(ref.encode()) % 10**7:07d}"
    for key, value in changes.items():
        data[key]["name"] = value
    return parse_certificate(data)


def _calibration(ref: str, signatory: str = HEAD) -> Any:
    data = load_json(SAMPLES / "calibration.json")
    data["ref"] = ref
    data["signatory"]["name"] = signatory
    return parse_certificate(data)


# -- the profile --------------------------------------------------------------------------


def test_people_are_read_from_the_profile(people_pki: dict[str, KeyPaths], tmp_path: Path) -> None:
    uri = (
        "pkcs11:token=Lab%20token;object=tuan;type=private"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:LAB_PIN"
    )
    people = _person(HEAD, ["head", "signatory"], Path("head/signer.p12"), passphrase_env="P_H")
    people += (
        f'\n[[people]]\nname = "  Phạm  Minh Tuấn "\nroles = ["verifier"]\npkcs11_uri = "{uri}"\n'
    )
    settings = load_settings(_profile(tmp_path, people_pki, people=people), env={})
    head, verifier = settings.people
    assert (head.name, head.roles) == (HEAD, (Role.HEAD, Role.SIGNATORY))
    assert head.key.pkcs12 == tmp_path / "head" / "signer.p12"  # relative to the profile
    assert head.key.passphrase_env == "P_H"
    assert verifier.name == "Phạm Minh Tuấn" and verifier.roles == (Role.VERIFIER,)
    key = verifier.key
    assert (key.pkcs11_module, key.pkcs11_token, key.pkcs11_key_label) == (
        Path("/usr/lib/softhsm/libsofthsm2.so"),
        "Lab token",
        "tuan",
    )
    assert key.pin_source == "env:LAB_PIN" and key.on_token
    # the [signing] variables are the defaults of a person's key
    assert settings.resolved(key).pin_env == "CERTISSUER_PKCS11_PIN"
    assert settings.resolved(head.key).passphrase_env == "P_H"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('roles = ["head"]\npkcs12 = "x.p12"', r"\[\[people\]\] 1: name is missing"),
        ('name = "A"\npkcs12 = "x.p12"', r"\[\[people\]\] 1 \('A'\): roles is missing"),
        (
            'name = "A"\nroles = ["boss"]\npkcs12 = "x.p12"',
            r"\[\[people\]\] 1 \('A'\): roles must be one of verifier, head, signatory, "
            r"got 'boss'",
        ),
        ('name = "A"\nroles = ["head"]', r"\[\[people\]\] 1 \('A'\): no key: give pkcs12"),
        (
            'name = "A"\nroles = ["head"]\npkcs12 = "x.p12"\npkcs11_module = "/m.so"\n'
            'pkcs11_token = "t"\npkcs11_key_label = "k"',
            r"\[\[people\]\] 1 \('A'\): pkcs12 and a token key both name a key",
        ),
        (
            'name = "A"\nroles = ["head"]\npkcs12 = "x.p12"\npasword = "x"',
            r"\[\[people\]\] 1 \('A'\): unknown key 'pasword'",
        ),
        (
            'name = "A"\nroles = ["head"]\npkcs11_module = "/m.so"\npkcs11_token = "t"\n'
            'pkcs11_key_id = "zz"',
            r"\[\[people\]\] 1 \('A'\): pkcs11_key_id must be hex, got 'zz'",
        ),
        (
            'name = "A"\nroles = ["head"]\npkcs11_uri = "pkcs11:token=t;object=k"\n'
            'pkcs11_token = "t"',
            r"\[\[people\]\] 1 \('A'\): pkcs11_uri and pkcs11_token both name the token key",
        ),
        (
            'name = "A"\nroles = ["head"]\npkcs11_uri = "pkcs11:token=t;object=k"',
            r"\[\[people\]\] 1 \('A'\): pkcs11_uri names no module-path and no pkcs11_module",
        ),
    ],
)
def test_a_bad_person_is_refused_with_its_entry_and_key(
    entry: str, expected: str, people_pki: dict[str, KeyPaths], tmp_path: Path
) -> None:
    path = _profile(tmp_path, people_pki, people=f"\n[[people]]\n{entry}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: {expected}") as caught:
        load_settings(path, env={})
    assert "\n" not in str(caught.value)


def test_one_person_one_entry(people_pki: dict[str, KeyPaths], tmp_path: Path) -> None:
    people = _person(HEAD, ["head"], Path("a.p12")) + _person(
        "LE HOANG PHUC", ["signatory"], Path("b.p12")
    )
    path = _profile(tmp_path, people_pki, people=people)
    with pytest.raises(ConfigError, match=r"\[\[people\]\] 2 \('LE HOANG PHUC'\): .* already"):
        load_settings(path, env={})


def test_people_must_be_an_array_of_tables(people_pki: dict[str, KeyPaths], tmp_path: Path) -> None:
    path = _profile(tmp_path, people_pki, people='\n[people]\nname = "A"\n')
    with pytest.raises(ConfigError, match=r"'people' must be a list of \[\[people\]\] tables"):
        load_settings(path, env={})


# -- RFC 7512 URIs ------------------------------------------------------------------------


def test_a_pkcs11_uri_is_read_as_rfc_7512_writes_it() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=Ph%C3%B2ng%20th%C3%AD%20nghi%E1%BB%87m;serial=0042;object=tu%E1%BA%A5n;"
        "id=%01%A2;type=private;manufacturer=SoftHSM%20project;x-vendor=1"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=secret-pin-9931",
        where="[signing] pkcs11_uri",
    )
    assert (uri.token, uri.serial, uri.object, uri.id) == (
        "Phòng thí nghiệm",
        "0042",
        "tuấn",
        b"\x01\xa2",
    )
    assert uri.module_path == Path("/usr/lib/softhsm/libsofthsm2.so")
    assert uri.pin_value == "secret-pin-9931" and "secret-pin-9931" not in repr(uri)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("pkcs12:token=t;object=k", "it must start with 'pkcs11:'"),
        ("pkcs11:token=t;object", "'object' is not name=value"),
        ("pkcs11:token=t;object=k;colour=red", "unknown attribute 'colour'"),
        ("pkcs11:token=t;token=u;object=k", "attribute 'token' is given twice"),
        ("pkcs11:token=t;object=k;type=cert", "type=cert names no private key"),
        ("pkcs11:object=k", "it names no token"),
        ("pkcs11:token=t", "it names no key"),
        ("pkcs11:token=t;object=k?pin-source=https://x", "pin-source must be env:NAME"),
        ("pkcs11:token=t;object=k#frag", "'//' or '#'"),
        ("pkcs11:token=t;object=k?module-name=softhsm2", "module-path"),
    ],
)
def test_a_malformed_uri_is_one_line_and_never_shows_the_pin(text: str, problem: str) -> None:
    sep = "&" if "?" in text else "?"
    with pytest.raises(ConfigError) as caught:
        parse_pkcs11_uri(f"{text}{sep}pin-value=pin-canary-4471", where="lab.toml: x")
    message = str(caught.value)
    assert message.startswith("lab.toml: x: ") and problem in message, message
    assert "\n" not in message and "pin-canary-4471" not in message + str(caught.value.hint)


def test_a_malformed_signing_uri_is_refused_when_the_profile_is_read(
    people_pki: dict[str, KeyPaths], tmp_path: Path
) -> None:
    path = _profile(tmp_path, people_pki, extra='pkcs11_uri = "pkcs11:object=k?pin-value=p-77"')
    with pytest.raises(ConfigError, match=rf"^{path}: \[signing\] pkcs11_uri: .* names no token"):
        load_settings(path, env={})
    settings = Settings(signing_pkcs11_uri="pkcs11:token=t;object=k?pin-value=p-77")
    assert "p-77" not in repr(settings)


# -- issuing ------------------------------------------------------------------------------


def test_a_name_mismatch_is_refused_before_a_number_is_taken(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any
) -> None:
    settings = load_settings(_profile(tmp_path, people_pki), env={})  # [signing]: Demo signer
    issuer = _issuer(settings, tmp_path, renderer)
    with pytest.raises(SignerRefused) as caught:
        issuer.issue(_calibration("mismatch-1"))
    assert str(caught.value) == (
        "ref 'mismatch-1': signatory.name: 'Lê Hoàng Phúc' is printed over the signature, but "
        "the signing key's certificate names 'Demo signer'"
    )
    assert caught.value.field == "signatory.name" and "[[people]]" in str(caught.value.hint)
    ledger = Ledger.open(settings.ledger_url)
    assert ledger.entries() == [] and ledger.by_ref("PPL", "mismatch-1") is None
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(SignerRefused):
        issuer.check(_verification("mismatch-2"))  # head.name, the same way
    # With the head's key added, the same record takes the first number of the series.
    people = _person(HEAD, ["head", "signatory"], people_pki["head"].signer_p12)
    fixed = load_settings(_profile(tmp_path, people_pki, people=people), env={})
    issued = _issuer(fixed, tmp_path, renderer).issue(_calibration("mismatch-1"))
    assert issued.number.endswith("-000001")
    assert _signers(issued.path.read_bytes(), [k.ca_cert for k in people_pki.values()]) == [HEAD]


def test_a_batch_issues_the_good_rows_and_names_the_bad_rows_field(
    people_pki: dict[str, KeyPaths], tmp_path: Path
) -> None:
    people = _person(HEAD, ["signatory"], people_pki["head"].signer_p12)
    settings = load_settings(_profile(tmp_path, people_pki, signing=None, people=people), env={})
    records = []
    for i, name in enumerate([HEAD, "Nguyễn Văn An", "LÊ HOÀNG PHÚC"]):
        data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
        data["ref"], data["signatory"]["name"] = f"b-{i}", name
        records.append(data)
    source = tmp_path / "batch.json"
    source.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    report = batch.run_batch(
        batch.issue_items([source]),
        settings=settings,
        passphrase=PASSPHRASE,
        out_dir=tmp_path / "o",
    )
    assert (report.issued, report.rejected_rows) == (2, 1)
    (bad,) = report.rejected
    assert (bad.row, bad.field, bad.exit_code) == (2, "signatory.name", 9)
    assert "'Nguyễn Văn An' is printed over the signature, but no key" in bad.reason
    numbers = sorted(c.number for c in report.certificates)
    assert [n[-6:] for n in numbers] == ["000001", "000002"]  # no number lost to the bad row


def test_calibration_is_signed_by_the_signatorys_key_and_others_stay_closed(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any
) -> None:
    """[signing] is somebody else's key; the signatory's [[people]] key signs. The verifier's
    entry names a file that does not exist: it is never opened, as nobody needs it."""
    people = _person(HEAD, ["signatory"], people_pki["head"].signer_p12)
    people += _person(VERIFIER, ["verifier"], tmp_path / "missing.p12")
    settings = load_settings(_profile(tmp_path, people_pki, people=people), env={})
    issuer = _issuer(settings, tmp_path, renderer)
    issued = issuer.issue(_calibration("cal-1"))
    pdf = issued.path.read_bytes()
    assert _signers(pdf, [k.ca_cert for k in people_pki.values()]) == [HEAD]
    report = Verifier.from_settings(settings, ledger=issuer.ledger).verify_pdf(pdf)
    assert report.verdict is Verdict.VALID and report.signer and HEAD in report.signer
    # one key, opened once, for every certificate of the run
    again = issuer.keys.for_name("le hoang phuc", Role.SIGNATORY, field="signatory.name")
    assert again is issuer.keys.for_name(HEAD, Role.SIGNATORY, field="signatory.name")


def test_a_person_without_the_role_is_refused(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any
) -> None:
    people = _person(HEAD, ["head"], people_pki["head"].signer_p12)
    settings = load_settings(_profile(tmp_path, people_pki, people=people), env={})
    with pytest.raises(
        SignerRefused, match=r"printed as signatory, but .* gives them the roles head"
    ):
        _issuer(settings, tmp_path, renderer).issue(_calibration("role-1"))


def test_a_person_whose_key_names_somebody_else_is_refused(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any
) -> None:
    people = _person(HEAD, ["signatory"], people_pki["verifier"].signer_p12)
    settings = load_settings(_profile(tmp_path, people_pki, people=people), env={})
    with pytest.raises(
        SignerRefused,
        match=r"signatory.name: 'Lê Hoàng Phúc' .* certificate naming 'Phạm Minh Tuấn'",
    ):
        _issuer(settings, tmp_path, renderer).issue(_calibration("other-1"))


def _approval_lab(people_pki: dict[str, KeyPaths], folder: Path, head_p12: Path) -> Settings:
    people = _person(VERIFIER, ["verifier"], people_pki["verifier"].signer_p12)
    people += _person(HEAD, ["head", "signatory"], head_p12)
    return load_settings(
        _profile(folder, people_pki, signing=None, people=people, extra="approval = true"),
        env={},
    )


def test_verifier_signs_at_issue_and_the_printed_head_approves_with_their_key(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any
) -> None:
    settings = _approval_lab(people_pki, tmp_path, people_pki["head"].signer_p12)
    issued = _issuer(settings, tmp_path, renderer).issue(_verification("appr-1"))
    roots = [k.ca_cert for k in people_pki.values()]
    assert _signers(issued.path.read_bytes(), roots) == [VERIFIER]
    profile = settings.source
    assert profile is not None
    # `certissuer approve FILE` without --pkcs12: the head's [[people]] key
    done = runner.invoke(
        app,
        ["--config", str(profile), "sign-approve", str(issued.path)],
        env={"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()},
    )
    assert done.exit_code == 0, done.output
    assert f"by {HEAD}" in done.output
    pdf = issued.path.read_bytes()
    assert _signers(pdf, roots) == [VERIFIER, HEAD]
    ledger = Ledger.open(settings.ledger_url)
    assert Verifier.from_settings(settings, ledger=ledger).verify_pdf(pdf).verdict is Verdict.VALID


def test_approval_by_a_key_that_is_not_the_heads_is_refused(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any
) -> None:
    settings = _approval_lab(people_pki, tmp_path, people_pki["head"].signer_p12)
    issued = _issuer(settings, tmp_path, renderer).issue(_verification("appr-2"))
    before = issued.path.read_bytes()
    verifier = Verifier.from_settings(settings, ledger=Ledger.open(settings.ledger_url))
    for who in ("verifier", "demo"):
        with (
            Sealer.from_pkcs12(people_pki[who].signer_p12, PASSPHRASE) as sealer,
            pytest.raises(SigningError, match=r"but the head printed on .* 'Lê Hoàng Phúc'"),
        ):
            approve_pdf(
                issued.path,
                sealer=sealer,
                verifier=verifier,
                ledger_key=load_token_key(settings),
            )
    # a profile whose head has no key: nothing to approve with
    nobody = settings.replace(people=settings.people[:1])
    with Keyring(nobody) as keys, pytest.raises(SigningError, match=r"no key in the lab profile"):
        approve_pdf(issued.path, keys=keys, verifier=verifier, ledger_key=load_token_key(settings))
    assert issued.path.read_bytes() == before


def test_the_two_signatures_need_two_keys_at_issue(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any
) -> None:
    """The head's entry names the verifier's key file: refused before a number is taken."""
    settings = _approval_lab(people_pki, tmp_path, people_pki["verifier"].signer_p12)
    with pytest.raises(SignerRefused, match=r"head.name: .* two different keys") as caught:
        _issuer(settings, tmp_path, renderer).issue(_verification("same-1"))
    assert caught.value.field == "head.name"
    assert Ledger.open(settings.ledger_url).entries() == []


def test_approve_refuses_the_key_that_made_the_first_signature(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate whose verifier and head are one person, signed at issue with that
    person's key (as before issue 17 was checked, simulated by turning the issue-time check
    off), cannot be approved with the same key; without approve's own check it could."""
    settings = load_settings(
        _profile(
            tmp_path,
            people_pki,
            signing="head",
            people=_person(HEAD, ["verifier", "head"], people_pki["head"].signer_p12),
            extra="approval = true",
        ),
        env={},
    )
    monkeypatch.setattr(Keyring, "check_distinct", lambda *a, **k: None)
    issued = _issuer(settings, tmp_path, renderer).issue(_verification("same-2", verifier=HEAD))
    monkeypatch.undo()
    verifier = Verifier.from_settings(settings, ledger=Ledger.open(settings.ledger_url))
    token_key = load_token_key(settings)
    with (
        Keyring(settings, secret=lambda _: PASSPHRASE) as keys,
        pytest.raises(SigningError, match="two different keys"),
    ):
        approve_pdf(issued.path, keys=keys, verifier=verifier, ledger_key=token_key)
    # the defence is what refused it
    monkeypatch.setattr("certissuer.approve.signer_public_keys", lambda pdf: [])
    with Keyring(settings, secret=lambda _: PASSPHRASE) as keys:
        done = approve_pdf(
            issued.path, keys=keys, verifier=verifier, out=tmp_path / "x.pdf", ledger_key=token_key
        )
    assert done.signer == HEAD


# -- a token person -----------------------------------------------------------------------


@pytest.mark.skipif(
    not MODULE.exists()
    or shutil.which("softhsm2-util") is None
    or shutil.which("pkcs11-tool") is None,
    reason="SoftHSM2 and OpenSC are not installed (apt-get install softhsm2 opensc)",
)
def test_a_token_person_addressed_by_a_pkcs11_uri_signs(
    softhsm: SoftHsm,  # noqa: F811
    people_pki: dict[str, KeyPaths],
    tmp_path: Path,
    renderer: Any,
) -> None:
    import pkcs11

    label = "people-token"
    chain = _chain("p256", 1)
    key = _new_key("p256")
    softhsm.new_token(label)
    der = serialization.Encoding.DER
    softhsm.write(
        label,
        key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "privkey",
        "0a",
        "tuan",
    )
    softhsm.write(
        label, chain.certify(VERIFIER, key.public_key()).public_bytes(der), "cert", "0a", "tuan"
    )
    pkcs11.lib(str(MODULE)).reinitialize()
    root = _pem(tmp_path / "token-root.pem", [chain.root])
    uri = (
        f"pkcs11:token={label};object=tuan;type=private"
        f"?module-path={MODULE}&pin-source=env:PEOPLE_PIN_T"
    )
    people = f'\n[[people]]\nname = "{VERIFIER}"\nroles = ["verifier"]\npkcs11_uri = "{uri}"\n'
    people += _person(HEAD, ["head"], people_pki["head"].signer_p12)
    path = _profile(tmp_path, people_pki, signing=None, people=people, extra="approval = true")
    text = path.read_text(encoding="utf-8").replace("trust_roots = [", f'trust_roots = ["{root}", ')
    path.write_text(text, encoding="utf-8")
    settings = load_settings(path, env={})
    os.environ["PEOPLE_PIN_T"] = PIN
    try:
        issuer = _issuer(settings, tmp_path, renderer)
        issued = issuer.issue(_verification("token-1"))
        issuer.keys.close()
        # the same URI as [signing] pkcs11_uri: its pin-source gives the PIN there too
        with Sealer.from_settings(Settings(signing_pkcs11_uri=uri), None) as sealer:
            assert sealer.signer_name == VERIFIER
    finally:
        del os.environ["PEOPLE_PIN_T"]
    pdf = issued.path.read_bytes()
    assert _signers(pdf, [root]) == [VERIFIER]
    verifier = Verifier.from_settings(settings, ledger=issuer.ledger)
    assert verifier.verify_pdf(pdf).verdict is Verdict.AWAITING_APPROVAL
    with Keyring(settings, secret=lambda source: PASSPHRASE) as keys:
        approve_pdf(issued.path, keys=keys, verifier=verifier, ledger_key=load_token_key(settings))
    approved = issued.path.read_bytes()
    assert _signers(approved, [root, people_pki["head"].ca_cert]) == [VERIFIER, HEAD]
    assert verifier.verify_pdf(approved).verdict is Verdict.VALID


def test_one_prompt_per_token_and_per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """At a terminal, two people's keys on one token ask for its PIN once; two files ask
    once each; a variable that is set asks nothing."""
    import io

    from certissuer.cli import _state
    from certissuer.config import KeySource

    asked: list[str] = []

    def prompt(text: str, hide_input: bool) -> str:
        assert hide_input
        asked.append(text)
        return f"secret-{len(asked)}"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(_state.typer, "prompt", prompt)
    monkeypatch.setattr(_state.sys, "stdin", Terminal())
    monkeypatch.delenv("CERTISSUER_PKCS11_PIN", raising=False)
    monkeypatch.delenv("CERTISSUER_P12_PASSPHRASE", raising=False)
    monkeypatch.setenv("THIRD_P12", "from-env")
    module = Path("/nowhere/libvendor.so")
    token = {"pkcs11_module": module, "pkcs11_token": "Lab token"}
    secret = _state.secrets(Settings(), None)
    tuan = secret(KeySource("[[people]] 1", pkcs11_key_label="tuan", **token))  # type: ignore[arg-type]
    phuc = secret(KeySource("[[people]] 2", pkcs11_key_label="phuc", **token))  # type: ignore[arg-type]
    first = secret(KeySource("[[people]] 3", pkcs12=Path("a.p12")))
    second = secret(KeySource("[[people]] 4", pkcs12=Path("b.p12")))
    third = secret(KeySource("[[people]] 5", pkcs12=Path("c.p12"), passphrase_env="THIRD_P12"))
    assert (tuan, phuc, first, second, third) == (
        b"secret-1",
        b"secret-1",
        b"secret-2",
        b"secret-3",
        b"from-env",
    )
    assert asked == [
        "Token PIN ([[people]] 1)",
        "PKCS#12 passphrase ([[people]] 3)",
        "PKCS#12 passphrase ([[people]] 4)",
    ]


@pytest.mark.parametrize("store", ["database", "files"])
def test_the_archive_keeps_the_approved_file(
    people_pki: dict[str, KeyPaths], tmp_path: Path, renderer: Any, store: str
) -> None:
    """Approving a copy (from `ledger get`) puts the approved file in the archive: the
    database store, or the archived file when the copy was elsewhere; the audit stays clean."""
    settings = _approval_lab(people_pki, tmp_path, people_pki["head"].signer_p12)
    profile = settings.source
    assert profile is not None
    text = profile.read_text(encoding="utf-8")
    profile.write_text(text.replace("[ledger]\n", f'[ledger]\npdf_store = "{store}"\n'), "utf-8")
    settings = load_settings(profile, env={})
    issued = _issuer(settings, tmp_path, renderer).issue(_verification("appr-store"))
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}

    def cli(*args: str) -> Any:
        return runner.invoke(app, ["--config", str(profile), *args], env=env)

    done = cli("ledger", "get", issued.number, "--out", str(tmp_path / "copy"))
    assert done.exit_code == 0, done.output
    copy = next((tmp_path / "copy").glob("*.pdf"))
    done = cli("sign-approve", str(copy))
    assert done.exit_code == 0, done.output
    done = cli("ledger", "get", issued.number, "--out", str(tmp_path / "again"))
    assert done.exit_code == 0, done.output
    again = next((tmp_path / "again").glob("*.pdf")).read_bytes()
    assert again == copy.read_bytes()  # the archive holds the approved file
    roots = [k.ca_cert for k in people_pki.values()]
    assert _signers(again, roots) == [VERIFIER, HEAD]
    done = cli("ledger", "audit")
    assert done.exit_code == 0 and "no problems found" in done.output, done.output
