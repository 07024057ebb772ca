from __future__ import annotations

from pathlib import Path

import pytest

from certissuer.config import (
    Appearance,
    Digest,
    Level,
    OutsideScope,
    Revocation,
    RsaPadding,
    Settings,
    load_settings,
)
from certissuer.errors import ConfigError
from certissuer.profile import starter_config


def test_toml_then_environment_override(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text(
        '[lab]\ncode = "DT9"\n[ledger]\nurl = "sqlite:///a.db"\n[signing]\npkcs12 = "k/s.p12"\n'
        'trust_roots = ["k/ca.pem"]\n',
        encoding="utf-8",
    )
    s = load_settings(tmp_path / "lab.toml", env={"CERTISSUER_LEDGER_URL": "sqlite:///b.db"})
    assert s.lab_code == "DT9"
    # A variable is not in the profile: its relative file is the current folder's.
    assert s.ledger_url == f"sqlite:///{Path.cwd() / 'b.db'}"
    assert s.signing_pkcs12 == (tmp_path / "k" / "s.p12").resolve()
    assert s.signing_trust_roots == ((tmp_path / "k" / "ca.pem").resolve(),)
    assert s.series_for("verification") == "KĐ" and s.series_for("calibration") == "HC"


def test_unknown_key_lists_the_valid_ones(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text('[ledger]\nurll = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown setting \[ledger\] urll") as info:
        load_settings(tmp_path / "lab.toml", env={})
    assert info.value.hint is not None and "[ledger] url" in info.value.hint


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text("[lab\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lab\.toml: cannot read"):
        load_settings(tmp_path / "lab.toml", env={})


def test_missing_profile_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        load_settings(tmp_path / "none.toml", env={})
    assert info.value.hint is not None and "certissuer init" in info.value.hint


def test_found_by_environment_variable(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('[lab]\ncode = "ENV"\n', encoding="utf-8")
    assert (
        load_settings(None, env={"CERTISSUER_CONFIG": str(tmp_path / "x.toml")}).lab_code == "ENV"
    )


def test_starter_config_loads(tmp_path: Path) -> None:
    (tmp_path / "certissuer.toml").write_text(starter_config("ABC"), encoding="utf-8")
    s = load_settings(tmp_path / "certissuer.toml", env={})
    assert s.lab_code == "ABC" and s.token_key == (tmp_path / "keys" / "token-key.pem").resolve()
    assert isinstance(s, Settings)


def test_a_closed_choice_is_read_as_its_member(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text(
        '[signing]\nlevel = "b-lt"\ndigest = "SHA-384"\nappearance = "Invisible"\n'
        '[verify]\nrevocation = "require"\n',
        encoding="utf-8",
    )
    s = load_settings(tmp_path / "lab.toml", env={"CERTISSUER_SIGNING_RSA_PADDING": "PSS"})
    assert s.signing_level is Level.B_LT and s.signing_digest is Digest.SHA384
    assert s.signing_appearance is Appearance.INVISIBLE and s.signing_rsa_padding is RsaPadding.PSS
    assert s.verify_revocation is Revocation.REQUIRE and s.verify_revocation == "require"
    assert s.registry_outside_scope is OutsideScope.REFUSE  # the default, a member too


def test_a_bad_choice_names_the_key_and_lists_the_valid_values(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text('[signing]\nlevel = "B-X"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "lab.toml", env={})
    assert str(info.value) == (
        f"{tmp_path / 'lab.toml'}: [signing] level must be one of B-B, B-T, B-LT, B-LTA, got 'B-X'"
    )
    with pytest.raises(ConfigError, match=r"^CERTISSUER_VERIFY_REVOCATION must be one of "
                       r"soft-fail, hard-fail, require, got 'maybe'$"):  # fmt: skip
        load_settings(None, env={"CERTISSUER_VERIFY_REVOCATION": "maybe"})


def test_settings_built_in_code_hold_members_and_refuse_bad_choices() -> None:
    s = Settings(signing_level="t", registry_outside_scope="unaccredited")
    assert s.signing_level is Level.B_T and s.registry_outside_scope is OutsideScope.UNACCREDITED
    assert s.replace(signing_appearance="invisible").signing_appearance is Appearance.INVISIBLE
    with pytest.raises(ConfigError, match=r"^\[signing\] rsa_padding must be one of pkcs1v15, pss"):
        Settings(signing_rsa_padding="oaep")


def test_a_bad_number_names_the_key_in_the_file(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text("[web]\nport = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lab\.toml: \[web\] port must not be negative"):
        load_settings(tmp_path / "lab.toml", env={})


def test_series_for_an_unknown_kind_is_an_error() -> None:
    assert Settings().series_for("copy") == "BS"
    with pytest.raises(ValueError, match="no number series for kind 'recall'"):
        Settings().series_for("recall")
