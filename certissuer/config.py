"""The lab profile (TOML) and settings, layered: defaults, then TOML, then ``CERTISSUER_*``.

The profile is found by ``--config``, then the ``CERTISSUER_CONFIG`` variable, then
``./certissuer.toml``. Sections and keys map to flat `Settings` fields: ``[ledger] url`` is
``ledger_url`` and is overridden by ``CERTISSUER_LEDGER_URL``. Relative paths are resolved
against the folder of the TOML file.

>>> from certissuer.config import load_settings
>>> settings = load_settings(Path("samples/certissuer.toml"), env={})  # doctest: +SKIP
>>> settings.series_for("calibration")  # doctest: +SKIP
'HC'
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certissuer.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_NAME", "Settings", "find_config", "load_settings", "starter_config"]

DEFAULT_CONFIG_NAME = "certissuer.toml"
_PATH_FIELDS = {
    "lab_logo",
    "signing_pkcs12",
    "signing_trust_roots",
    "token_key",
    "render_template_dir",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything certissuer needs to know about one lab. Fields are ``<section>_<key>``."""

    lab_code: str = "LAB"
    """Short code of the lab; numbers are gapless per lab code, series and year."""
    lab_name_vi: str = "Phòng thí nghiệm"
    lab_name_en: str = "Laboratory"
    lab_address_vi: str = ""
    lab_address_en: str = ""
    lab_place: str = "Đồng Tháp"
    """Place printed on the place-and-date line ("Đồng Tháp, ngày … tháng … năm …")."""
    lab_accreditation: str = ""
    """Accreditation number, for example "VILAS 123"."""
    lab_designation: str = ""
    """Designation decision for legal verification."""
    lab_logo: Path | None = None
    numbering_verification: str = "KĐ"
    numbering_calibration: str = "HC"
    signing_pkcs12: Path | None = None
    signing_passphrase_env: str = "CERTISSUER_P12_PASSPHRASE"
    """Name of the environment variable that holds the PKCS#12 passphrase (never the value)."""
    signing_trust_roots: tuple[Path, ...] = ()
    """CA certificates (PEM or DER) that a valid certificate's signer must chain to."""
    token_key: Path | None = None
    """Ed25519 or ECDSA P-256 private key (PEM) that signs QR tokens."""
    token_url_base: str = "https://verify.example.invalid"
    ledger_url: str = "sqlite:///certissuer-ledger.db"
    render_template_dir: Path | None = None
    """A lab's own template folder; None uses the templates shipped with certissuer."""
    source: Path | None = field(default=None, compare=False)
    """The TOML file these settings came from, if any."""

    def series_for(self, kind: str) -> str:
        """The number series prefix for a certificate kind ("verification" or "calibration")."""
        return self.numbering_verification if kind == "verification" else self.numbering_calibration

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied (used by the CLI for its options)."""
        return dataclasses.replace(self, **changes)


def _valid_keys() -> dict[str, str]:
    return {f.name: f.name for f in dataclasses.fields(Settings) if f.name != "source"}


def _coerce(name: str, value: Any, base: Path, origin: str) -> Any:
    if name in _PATH_FIELDS:
        if name == "signing_trust_roots":
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in items):
                raise ConfigError(f"{origin}: '{name}' must be a path or a list of paths")
            return tuple((base / v).resolve() for v in items if v)
        if not isinstance(value, str):
            raise ConfigError(f"{origin}: '{name}' must be a path, got {value!r}")
        return (base / value).resolve() if value else None
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: '{name}' must be text, got {value!r}")
    return value


def find_config(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """Return the lab profile to use: `explicit`, ``$CERTISSUER_CONFIG``, or ./certissuer.toml."""
    if explicit is not None:
        return explicit
    if env.get("CERTISSUER_CONFIG"):
        return Path(env["CERTISSUER_CONFIG"])
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.exists() else None


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Build `Settings` from defaults, the TOML file `path` and ``CERTISSUER_*`` variables.

    `path` may be None to look for a profile (see `find_config`). `env` defaults to
    ``os.environ``. Raises `ConfigError` for an unreadable file, an unknown section or key
    (listing the valid ones) or a value of the wrong type.
    """
    env = os.environ if env is None else env
    valid = _valid_keys()
    values: dict[str, Any] = {}
    path = find_config(path, env)
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: lab profile not found", hint="run 'certissuer init' to write one"
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the lab profile: {exc}") from exc
        base = path.resolve().parent
        for section, table in raw.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: '{section}' must be a [section], got a value")
            for key, value in table.items():
                name = f"{section}_{key.replace('-', '_')}"
                if name not in valid:
                    keys = ", ".join(f"[{k.split('_', 1)[0]}] {k.split('_', 1)[1]}" for k in valid)
                    raise ConfigError(
                        f"{path}: unknown setting [{section}] {key}", hint=f"valid keys: {keys}"
                    )
                values[name] = _coerce(name, value, base, str(path))
    for name in valid:
        var = f"CERTISSUER_{name.upper()}"
        if var in env:
            values[name] = _coerce(name, env[var], Path.cwd(), var)
    return Settings(**values, source=path)


def starter_config(lab_code: str = "LAB") -> str:
    """Text of a starter lab profile for ``certissuer init``."""
    return f"""\
# certissuer lab profile. Paths are relative to this file.
# Every key can be overridden by an environment variable: [ledger] url -> CERTISSUER_LEDGER_URL.

[lab]
code = "{lab_code}"
name_vi = "Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng"
name_en = "Technical Centre for Standards, Metrology and Quality"
address_vi = "Số 1, đường Ví Dụ, phường 1, Đồng Tháp"
address_en = "No. 1, Example Street, Ward 1, Dong Thap"
place = "Đồng Tháp"
accreditation = "VILAS 000"
designation = ""
# logo = "logo.png"

[numbering]
verification = "KĐ"
calibration = "HC"

[signing]
pkcs12 = "keys/signer.p12"
# The passphrase is read from this environment variable, or asked for at a prompt.
passphrase_env = "CERTISSUER_P12_PASSPHRASE"
trust_roots = ["keys/ca.pem"]

[token]
key = "keys/token-key.pem"
url_base = "https://verify.example.invalid"

[ledger]
url = "sqlite:///certissuer-ledger.db"
"""
