"""The lab profile (TOML) and settings, layered: defaults, then TOML, then ``CERTISSUER_*``.

The profile is found by ``--config``, then the ``CERTISSUER_CONFIG`` variable, then
``./certissuer.toml``. Sections and keys map to flat `Settings` fields: ``[ledger] url`` is
``ledger_url`` and is overridden by ``CERTISSUER_LEDGER_URL``. Relative paths in the profile,
the SQLite file of ``[ledger] url`` included (and the default ledger when a profile does not name
one), are resolved against the folder of the TOML file, so every folder a lab runs from reaches
the same ledger; a path in a ``CERTISSUER_*`` variable is resolved against the current folder.
Each field's annotation says how its value is read; a closed choice (``[signing] level``,
``[verify] revocation``, ...) is a `Choice` enum, and a bad value is refused with the key or
variable named and the valid values listed.

>>> from certissuer.config import load_settings
>>> settings = load_settings(Path("samples/certissuer.toml"), env={})  # doctest: +SKIP
>>> settings.series_for("calibration")  # doctest: +SKIP
'HC'
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

from certissuer._vn import same_name, strip_marks
from certissuer.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_LEDGER_URL",
    "Appearance",
    "Choice",
    "Digest",
    "KeySource",
    "Level",
    "OutsideScope",
    "PdfStore",
    "Person",
    "Pkcs11Uri",
    "Revocation",
    "Role",
    "RsaPadding",
    "Settings",
    "TsaUnavailable",
    "find_config",
    "load_settings",
    "parse_pkcs11_uri",
    "resolve_sqlite_url",
]

DEFAULT_CONFIG_NAME = "certissuer.toml"

DEFAULT_LEDGER_URL = "sqlite:///certissuer-ledger.db"
"""The ledger when none is named: beside the profile, or in the current folder without one."""


class Choice(StrEnum):
    """A closed choice of the lab profile, read leniently and refused with the valid values.

    Each subclass lists its values; `parse` accepts them in any case and with stray spaces.
    As a `str`, a member compares equal to its value, so ``settings.verify_revocation ==
    "require"`` holds for the profile ``[verify] revocation = "require"``.
    """

    _label: ClassVar[str]
    """What the choice is called in errors: ``class Level(Choice, label="PAdES level")``."""

    def __init_subclass__(cls, *, label: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._label = label

    @classmethod
    def _key(cls, text: str) -> str:
        """`text` spelled as the values are (subclasses accept more spellings)."""
        return text.strip().lower()

    @classmethod
    def parse(cls, text: str, *, where: str | None = None) -> Self:
        """The member named `text`; `ConfigError` names `where` and lists the valid values.

        `where` is the setting as the user wrote it: ``lab.toml: [signing] level`` or
        ``CERTISSUER_SIGNING_LEVEL``; None names the choice itself ("the PAdES level").
        """
        if isinstance(text, cls):
            return text
        if isinstance(text, str):
            try:
                return cls(cls._key(text))
            except ValueError:
                pass
        valid = ", ".join(member.value for member in cls)
        raise ConfigError(f"{where or 'the ' + cls._label} must be one of {valid}, got {text!r}")


class Level(Choice, label="PAdES level"):
    """PAdES baseline levels (ETSI EN 319 142-1): ``[signing] level``."""

    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @classmethod
    def _key(cls, text: str) -> str:
        # "b-t", "B_T", "BT" and "T" all name B-T.
        key = text.strip().upper().replace("_", "-")
        return key if key.startswith("B-") else "B-" + key.removeprefix("B")

    @property
    def timestamped(self) -> bool:
        """True from B-T up: the signature carries a trusted time."""
        return self is not Level.B_B

    @property
    def long_term(self) -> bool:
        """True for B-LT and B-LTA: validation data goes into the DSS."""
        return self in (Level.B_LT, Level.B_LTA)


class Digest(Choice, label="digest"):
    """Hash algorithms a signature may use: ``[signing] digest``."""

    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"
    SHA3_256 = "sha3_256"
    SHA3_384 = "sha3_384"
    SHA3_512 = "sha3_512"

    @classmethod
    def _key(cls, text: str) -> str:
        # "SHA-256" and "sha3-256" as the standards spell them.
        return text.strip().lower().replace("sha-", "sha").replace("-", "_")


class RsaPadding(Choice, label="RSA padding"):
    """The RSA signature scheme: ``[signing] rsa_padding``."""

    PKCS1V15 = "pkcs1v15"
    PSS = "pss"
    """RSASSA-PSS."""


class Appearance(Choice, label="signature appearance"):
    """``[signing] appearance``: a signature box over the signer's printed name, or none."""

    VISIBLE = "visible"
    INVISIBLE = "invisible"


class TsaUnavailable(Choice, label="rule for no time-stamping authority"):
    """``[signing] tsa_unavailable``: what to do when no time-stamping authority answers."""

    REFUSE = "refuse"
    """Sign nothing: the run names each authority tried and why it failed."""
    DOWNGRADE = "downgrade"
    """Sign a B-T certificate at B-B and say so (B-LT and B-LTA are still refused)."""


class Revocation(Choice, label="revocation policy"):
    """``[verify] revocation``: what a missing or unreachable revocation answer means."""

    SOFT_FAIL = "soft-fail"
    """A revoked signer is refused; one whose status cannot be learnt is accepted."""
    HARD_FAIL = "hard-fail"
    """A signer whose certificate names a CRL or OCSP responder needs a status answer."""
    REQUIRE = "require"
    """Every signer needs a status answer."""


class OutsideScope(Choice, label="outside-scope rule"):
    """``[registry] outside_scope``: work outside the accreditation scope."""

    REFUSE = "refuse"
    UNACCREDITED = "unaccredited"
    """Issue it without the accreditation mark, with a statement saying so."""


class PdfStore(Choice, label="PDF store"):
    """``[ledger] pdf_store``: where the signed PDFs are archived."""

    FILES = "files"
    """Each PDF in the output folder it was issued to (the path the ledger records)."""
    DATABASE = "database"
    """In the ledger's own database, beside the entries: workstations and the page share one
    archive without a shared disk (meant for a PostgreSQL ledger)."""


class Role(Choice, label="role"):
    """What a person signs, as ``[[people]] roles`` names it."""

    VERIFIER = "verifier"
    """Signs a verification certificate over "Kiểm định viên" (with ``[signing] approval``)."""
    HEAD = "head"
    """The head of the organisation: signs (or approves) verification certificates."""
    SIGNATORY = "signatory"
    """An authorised signatory of calibration certificates."""


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """A key on a token as an RFC 7512 ``pkcs11:`` URI names it (`parse_pkcs11_uri`)."""

    token: str = ""
    serial: str = ""
    object: str = ""
    """The key's label (CKA_LABEL)."""
    id: bytes | None = None
    """The key's CKA_ID."""
    module_path: Path | None = None
    pin_source: str = field(default="", repr=False)
    """Where the PIN is: ``env:NAME`` or ``file:/path`` (never shown)."""
    pin_value: str = field(default="", repr=False)
    """The PIN itself (discouraged; never shown)."""


_URI_PATH = frozenset(
    {"token", "serial", "object", "id", "type", "manufacturer", "model",
     "library-manufacturer", "library-description", "library-version",
     "slot-manufacturer", "slot-description", "slot-id"}
)  # fmt: skip
_URI_QUERY = frozenset({"module-path", "module-name", "pin-source", "pin-value"})
_URI_USED = ("token", "serial", "object", "id", "type", "module-path", "pin-source", "pin-value")


def _redact(uri: str) -> str:
    """`uri` with the value of any pin-value attribute hidden, for messages."""
    return re.sub(r"(pin-value=)[^&;#]*", r"\1***", uri, flags=re.IGNORECASE)


def parse_pkcs11_uri(text: str, *, where: str, base: Path | None = None) -> Pkcs11Uri:
    """Read an RFC 7512 URI such as
    ``pkcs11:token=Lab%20token;object=tuan;type=private?module-path=/usr/lib/x.so``.

    Path attributes: ``token``, ``serial``, ``object`` (the key's label), ``id`` (CKA_ID,
    percent-encoded bytes), ``type`` (``private`` when given); the other standard ones are
    accepted and not used. Query attributes: ``module-path``, ``pin-source`` (``env:NAME``
    or ``file:/path``) and ``pin-value``. `where` names the setting in errors; a relative
    module path is resolved against `base`. Raises a one-line `ConfigError` (which never
    shows a pin-value) for a URI that is malformed or does not name a token and a key.
    """
    shown = _redact(text)
    hint = "write it as pkcs11:token=LABEL;object=KEY-LABEL?module-path=/path/to/module.so"

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{where}: {shown!r} is not a usable pkcs11: URI: {problem}", hint=hint)

    if not isinstance(text, str):
        raise ConfigError(f"{where} must be text, got {type(text).__name__}")
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme.lower() != "pkcs11":
        raise bad("it must start with 'pkcs11:'")
    if parts.fragment or "#" in text or parts.netloc:
        raise bad("it has a part RFC 7512 does not allow ('//' or '#')")
    values: dict[str, bytes] = {}
    for chunk, allowed, sep in ((parts.path, _URI_PATH, ";"), (parts.query, _URI_QUERY, "&")):
        for item in filter(None, chunk.split(sep)):
            name, eq, value = item.partition("=")
            name = name.strip().lower()
            if not eq or not name:
                raise bad(f"'{_redact(item)}' is not name=value")
            if name not in allowed and not name.startswith("x-"):
                valid = ", ".join(sorted(allowed))
                raise bad(f"unknown attribute '{name}' (valid here: {valid})")
            if name in values:
                raise bad(f"attribute '{name}' is given twice")
            values[name] = urllib.parse.unquote_to_bytes(value)

    def text_of(name: str) -> str:
        try:
            return values.get(name, b"").decode("utf-8")
        except UnicodeDecodeError:
            raise bad(f"attribute '{name}' is not UTF-8") from None

    kind = text_of("type")
    if kind and kind != "private":
        raise bad(f"type={kind} names no private key (use type=private or leave it out)")
    if "module-name" in values and "module-path" not in values:
        raise bad("give the module by module-path (module-name is not searched for)")
    pin_source = text_of("pin-source")
    if pin_source and not pin_source.startswith(("env:", "file:")):
        raise bad("pin-source must be env:NAME or file:/path")
    uri = Pkcs11Uri(
        token=text_of("token"),
        serial=text_of("serial"),
        object=text_of("object"),
        id=values.get("id"),
        module_path=(base or Path.cwd()) / text_of("module-path")
        if values.get("module-path")
        else None,
        pin_source=pin_source,
        pin_value=text_of("pin-value"),
    )
    if not (uri.token or uri.serial):
        raise bad("it names no token (token= or serial=)")
    if not (uri.object or uri.id):
        raise bad("it names no key (object= or id=)")
    return uri


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where one signing key is: a PKCS#12 file, a PEM key and certificate, or a key on a
    PKCS#11 token. Nothing secret is held; `pin_value` (from a URI) is never shown."""

    where: str
    """The setting it came from, for messages: ``[signing]`` or ``lab.toml: [[people]] 2``."""
    pkcs12: Path | None = None
    key: Path | None = None
    cert: Path | None = None
    chain: tuple[Path, ...] = ()
    passphrase_env: str = ""
    """The variable holding the PKCS#12 or key passphrase ("": ``[signing] passphrase_env``)."""
    pkcs11_module: Path | None = None
    pkcs11_token: str = ""
    pkcs11_token_serial: str = ""
    pkcs11_key_label: str = ""
    pkcs11_key_id: bytes | None = None
    pkcs11_cert_label: str = ""
    pin_env: str = ""
    """The variable holding the token PIN ("": ``[signing] pin_env``)."""
    pin_source: str = field(default="", repr=False)
    """From a ``pkcs11:`` URI: ``env:NAME`` or ``file:/path``."""
    pin_value: str = field(default="", repr=False)
    """From a ``pkcs11:`` URI's pin-value: never shown or logged."""

    @property
    def on_token(self) -> bool:
        """True for a key on a PKCS#11 token."""
        return self.pkcs11_module is not None

    def identity(self) -> tuple[object, ...]:
        """What tells this key from another without opening it (same file or token key)."""
        if self.on_token:
            return ("pkcs11", self.pkcs11_module, self.pkcs11_token, self.pkcs11_token_serial,
                    self.pkcs11_key_label, self.pkcs11_key_id)  # fmt: skip
        return ("file", self.pkcs12 or self.key)

    def uri_pin(self) -> bytes | None:
        """The PIN the ``pkcs11:`` URI gives (pin-value, or pin-source ``env:NAME`` /
        ``file:/path``), or None when it gives none. `ConfigError` when the variable is not
        set or the file cannot be read; the PIN itself is never in a message."""
        if self.pin_value:
            return self.pin_value.encode()
        if self.pin_source.startswith("env:"):
            name = self.pin_source.removeprefix("env:")
            value = os.environ.get(name)
            if value is None:
                raise ConfigError(
                    f"{self.where}: the pkcs11_uri's pin-source names ${name}, which is not set"
                )
            return value.encode()
        if self.pin_source.startswith("file:"):
            path = Path(self.pin_source.removeprefix("file:").removeprefix("//"))
            try:
                return path.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(
                    f"{self.where}: cannot read the PIN file {path} ({exc.strerror})"
                ) from None
        return None

    def token_identity(self) -> tuple[object, ...]:
        """The token this key is on (one PIN per token), or the key file."""
        if self.on_token:
            return ("pkcs11", self.pkcs11_module, self.pkcs11_token, self.pkcs11_token_serial)
        return self.identity()


@dataclass(frozen=True, slots=True)
class Person:
    """A person who signs certificates (``[[people]]``) and their key."""

    name: str
    """The name as certificates print it; the key's certificate must name them (CN)."""
    roles: tuple[Role, ...]
    key: KeySource


_PERSON_KEYS = (
    "name", "roles", "pkcs12", "key", "cert", "chain", "passphrase_env", "pkcs11_uri",
    "pkcs11_module", "pkcs11_token", "pkcs11_token_serial", "pkcs11_key_label",
    "pkcs11_key_id", "pkcs11_cert_label", "pin_env",
)  # fmt: skip


def key_source(
    values: Mapping[str, Any], *, where: str, base: Path, required: bool
) -> KeySource | None:
    """The `KeySource` of a ``[signing]`` table or a ``[[people]]`` entry (`values` read from
    TOML, paths resolved against `base`). None when it names no key and not `required`.
    Raises `ConfigError` naming `where` for a key named twice or in two ways."""

    def path(name: str) -> Path | None:
        value = values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, Path):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be a path, got {value!r}")
        return (base / value).resolve()

    def text(name: str) -> str:
        value = values.get(name) or ""
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be text, got {value!r}")
        return value.strip()

    chain_value = values.get("chain") or ()
    if isinstance(chain_value, str | Path):
        chain_value = [chain_value]
    if not all(isinstance(c, str | Path) for c in chain_value):
        raise ConfigError(f"{where}: chain must be a path or a list of paths")
    chain = tuple(c if isinstance(c, Path) else (base / c).resolve() for c in chain_value)
    key_id_text = text("pkcs11_key_id")
    try:
        key_id = bytes.fromhex(key_id_text) if key_id_text else None
    except ValueError:
        raise ConfigError(f"{where}: pkcs11_key_id must be hex, got '{key_id_text}'") from None
    module = path("pkcs11_module")
    token, serial = text("pkcs11_token"), text("pkcs11_token_serial")
    key_label, pin_source, pin_value = text("pkcs11_key_label"), "", ""
    uri_text = text("pkcs11_uri")
    if uri_text:
        named = [n for n in ("pkcs11_token", "pkcs11_token_serial", "pkcs11_key_label",
                             "pkcs11_key_id") if values.get(n)]  # fmt: skip
        if named:
            raise ConfigError(
                f"{where}: pkcs11_uri and {named[0]} both name the token key",
                hint="give either pkcs11_uri or pkcs11_token / pkcs11_key_label, not both",
            )
        uri = parse_pkcs11_uri(uri_text, where=f"{where}: pkcs11_uri", base=base)
        module = uri.module_path or module
        if module is None:
            raise ConfigError(
                f"{where}: pkcs11_uri names no module-path and no pkcs11_module is set",
                hint="add ?module-path=/path/to/the/vendor/module.so to the URI",
            )
        token, serial, key_label, key_id = uri.token, uri.serial, uri.object, uri.id
        pin_source, pin_value = uri.pin_source, uri.pin_value
    pkcs12, pem = path("pkcs12"), path("key")
    ways = [w for w, on in (("pkcs12", pkcs12), ("key", pem), ("a token key", module)) if on]
    if len(ways) > 1:
        raise ConfigError(
            f"{where}: {ways[0]} and {ways[1]} both name a key; give one",
            hint="a PKCS#12 file, a PEM key + cert, or a token key (pkcs11_uri)",
        )
    if not ways:
        if not required:
            return None
        raise ConfigError(
            f"{where}: no key: give pkcs12, key + cert, or a token key (pkcs11_uri, or "
            "pkcs11_module + pkcs11_token + pkcs11_key_label)"
        )
    if module is not None and not (token or serial):
        raise ConfigError(
            f"{where}: a PKCS#11 module is set but no token label",
            hint="set pkcs11_token to the token's label (or pkcs11_token_serial to its serial)",
        )
    if pem is not None and path("cert") is None:
        raise ConfigError(f"{where}: a key is set but no certificate", hint="set cert (PEM)")
    return KeySource(
        where=where,
        pkcs12=pkcs12,
        key=pem,
        cert=path("cert"),
        chain=chain,
        passphrase_env=text("passphrase_env"),
        pkcs11_module=module,
        pkcs11_token=token,
        pkcs11_token_serial=serial,
        pkcs11_key_label=key_label,
        pkcs11_key_id=key_id,
        pkcs11_cert_label=text("pkcs11_cert_label"),
        pin_env=text("pin_env"),
        pin_source=pin_source,
        pin_value=pin_value,
    )


def _people(raw: Any, path: Path, base: Path) -> tuple[Person, ...]:
    """The ``[[people]]`` entries of the profile at `path`, each checked."""
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ConfigError(
            f"{path}: 'people' must be a list of [[people]] tables",
            hint='write [[people]] then name = "…", roles = ["verifier"], pkcs12 = "…"',
        )
    people: list[Person] = []
    for i, entry in enumerate(raw, 1):
        name = entry.get("name")
        label = f"{path}: [[people]] {i}" + (f" ('{name}')" if isinstance(name, str) else "")
        for key in entry:
            if key not in _PERSON_KEYS:
                raise ConfigError(
                    f"{label}: unknown key '{key}'", hint=f"valid keys: {', '.join(_PERSON_KEYS)}"
                )
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{label}: name is missing", hint='add name = "Full Name"')
        roles_raw = entry.get("roles")
        if isinstance(roles_raw, str):
            roles_raw = [roles_raw]
        if not isinstance(roles_raw, list) or not roles_raw:
            valid = ", ".join(r.value for r in Role)
            raise ConfigError(f"{label}: roles is missing", hint=f'e.g. roles = ["{valid}"]')
        roles = tuple(Role.parse(r, where=f"{label}: roles") for r in roles_raw)
        source = key_source(entry, where=label, base=base, required=True)
        assert source is not None
        for other in people:
            if same_name(other.name, name):
                raise ConfigError(
                    f"{label}: '{name}' is already a person in the profile ('{other.name}')",
                    hint="one [[people]] entry per person, with all their roles",
                )
        people.append(Person(" ".join(name.split()), roles, source))
    return tuple(people)


@dataclass(frozen=True, slots=True)
class ScopeLine:
    """One line of the accredited calibration scope as the profile states it.

    Written "[item words:] lower..upper unit[, CMC value [unit]]": the range in a legal unit,
    optionally preceded by words that the item's name must contain (diacritics and case
    folded, whole words), and optionally followed by the lab's calibration and measurement
    capability for the range (ILAC-P14: the smallest expanded uncertainty it may claim), in
    the range's unit unless another is given.

    >>> line = ScopeLine.parse("Cân / Balance: 0..220 g, CMC 0.1 mg")
    >>> line.covers("Cân phân tích / Analytical balance", "g", Decimal("200"))
    True
    >>> line.covers("Cân phân tích / Analytical balance", "kg", Decimal("0.2"))
    False
    >>> line.cmc, line.cmc_unit
    (Decimal('0.1'), 'mg')
    """

    item: str
    lower: Decimal
    upper: Decimal
    unit: str
    cmc: Decimal | None = None
    """The CMC: no result inside the line may state a smaller expanded uncertainty."""
    cmc_unit: str = ""
    """The unit of `cmc` (the range's unit when the line names none)."""

    _HINT: ClassVar[str] = (
        'write "[item words:] lower..upper unit[, CMC value unit]", e.g. '
        '"Cân / Balance: 0..220 g, CMC 0.1 mg"'
    )

    @classmethod
    def parse(cls, text: str, *, where: str = "[lab] accredited_scope") -> ScopeLine:
        """Read one line; `ConfigError` (naming `where`) when it is not "lower..upper unit"
        with an optional ", CMC value [unit]" (a positive number)."""
        found = re.search(r",\s*CMC\b", text, flags=re.IGNORECASE)
        head, cmc_text = (text[: found.start()], text[found.end() :]) if found else (text, "")
        item, _, span = head.rpartition(":")
        low, dots, rest = span.strip().partition("..")
        high, _, unit = rest.strip().partition(" ")
        try:
            line = cls(item.strip(), Decimal(low.strip()), Decimal(high.strip()), unit.strip())
        except InvalidOperation:
            line = None
        if line is None or not dots or not line.unit or line.lower > line.upper:
            raise ConfigError(f"{where}: {text!r} is not a scope line", hint=cls._HINT)
        if re.search(r"\bCMC\b", head, flags=re.IGNORECASE):
            raise ConfigError(
                f"{where}: {text!r}: the CMC must follow the range after a comma",
                hint=cls._HINT,
            )
        if found is None:
            return line
        value, _, cmc_unit = cmc_text.strip().partition(" ")
        try:
            cmc = Decimal(value)
        except InvalidOperation:
            cmc = None
        if cmc is None or not cmc.is_finite() or cmc <= 0:
            raise ConfigError(
                f"{where}: {text!r}: the CMC must be a positive number, got {value!r}",
                hint=cls._HINT,
            )
        return dataclasses.replace(line, cmc=cmc, cmc_unit=cmc_unit.strip() or line.unit)

    def covers(self, item_name: str, unit: str, value: Decimal) -> bool:
        """True when `value` in `unit` lies in the range and `item_name` has the item words."""
        words = set(_words(item_name))
        return (
            unit == self.unit
            and self.lower <= value <= self.upper
            and all(w in words for w in _words(self.item))
        )


@dataclass(frozen=True, slots=True)
class TestingScopeLine:
    """One line of the accredited testing scope (issue 22): a test parameter by a method,
    optionally over a range.

    Written "parameter words | method words[ | lower..upper unit]": a row is inside the line
    when its parameter has the parameter words and its method (the report's, unless the row
    names its own) the method words (diacritics and case folded, whole words; no method words:
    any method), and a numeric result in the line's unit lies in the range, when one is given.

    >>> line = TestingScopeLine.parse("Chì / Lead | SMEWW 3113B | 0.001..1 mg/L")
    >>> line.covers("Chì / Lead", "SMEWW 3113B:2017", "mg/L", Decimal("0.003"))
    True
    >>> line.covers("Chì / Lead", "TCVN 6193:1996", "mg/L", Decimal("0.003"))
    False
    """

    __test__: ClassVar[bool] = False

    parameter: str
    method: str = ""
    lower: Decimal | None = None
    upper: Decimal | None = None
    unit: str = ""

    _HINT: ClassVar[str] = (
        'write "parameter words | method words[ | lower..upper unit]", e.g. '
        '"Chì / Lead | SMEWW 3113B | 0.001..1 mg/L"'
    )

    @classmethod
    def parse(cls, text: str, *, where: str = "[lab] testing_scope") -> TestingScopeLine:
        """Read one line; `ConfigError` (naming `where`) when it is not one."""
        parts = [p.strip() for p in text.split("|")]
        if len(parts) > 3 or not parts[0] or not _words(parts[0]):
            raise ConfigError(f"{where}: {text!r} is not a testing scope line", hint=cls._HINT)
        method = parts[1] if len(parts) > 1 else ""
        if len(parts) < 3:
            return cls(parts[0], method)
        low, dots, rest = parts[2].partition("..")
        high, _, unit = rest.strip().partition(" ")
        try:
            bounds: tuple[Decimal, Decimal] | None = (Decimal(low.strip()), Decimal(high.strip()))
        except InvalidOperation:
            bounds = None
        if bounds is None or not dots or not unit.strip() or bounds[0] > bounds[1]:
            raise ConfigError(
                f"{where}: {text!r}: expected the range as 'lower..upper unit'", hint=cls._HINT
            )
        return cls(parts[0], method, bounds[0], bounds[1], unit.strip())

    def covers(self, parameter: str, method: str, unit: str, value: Decimal | None) -> bool:
        """True when the row (`parameter` by `method`, result `value` in `unit`; None for a
        text result) lies inside this line."""
        if not all(w in _words(parameter) for w in _words(self.parameter)):
            return False
        if not all(w in _words(method) for w in _words(self.method)):
            return False
        if self.lower is None or self.upper is None or value is None:
            return True
        return unit == self.unit and self.lower <= value <= self.upper


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", strip_marks(text).casefold())


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
    """Designation decision for legal verification ("Quyết định chỉ định số …"), printed on
    verification certificates."""
    lab_accredited_scope: tuple[str, ...] = ()
    """The accredited scope for calibration when no register holds the lab's scope: lines
    "[item words:] lower..upper unit[, CMC value unit]" ("Cân / Balance: 0..220 g, CMC 0.1
    mg"); see `ScopeLine`. A calibration certificate carries the accreditation mark only
    within one of them, and no result inside a line may state an uncertainty below its CMC."""
    lab_testing_scope: tuple[str, ...] = ()
    """The accredited testing scope (issue 22): lines "parameter words | method words[ |
    lower..upper unit]" (see `TestingScopeLine`). A test report's row outside every line is
    marked "chỉ tiêu chưa được công nhận / parameter not accredited"; with no lines, rows are
    not judged."""
    lab_logo: Path | None = None
    numbering_verification: str = "KĐ"
    numbering_calibration: str = "HC"
    numbering_testing: str = "TN"
    """Series of testing reports (phiếu kết quả thử nghiệm, issue 22)."""
    numbering_copy: str = "BS"
    """Series of electronic copies of paper certificates (bản sao)."""
    numbering_failure: str = "TB"
    """Series of notices of failed verification (thông báo kết quả kiểm định không đạt)."""
    signing_pkcs12: Path | None = None
    signing_passphrase_env: str = "CERTISSUER_P12_PASSPHRASE"
    """Name of the environment variable that holds the PKCS#12 passphrase (never the value)."""
    signing_trust_roots: tuple[Path, ...] = ()
    """CA certificates (PEM or DER) that a valid certificate's signer must chain to."""
    signing_key: Path | None = None
    """A PEM (or DER) private key, instead of [signing] pkcs12; with `signing_cert`."""
    signing_cert: Path | None = None
    signing_chain: tuple[Path, ...] = ()
    """CA certificates to send with the signature (PEM key or PKCS#11 token)."""
    signing_pkcs11_module: Path | None = None
    """The token vendor's PKCS#11 library; set it to sign with a USB token or HSM."""
    signing_pkcs11_token: str = ""
    """Label of the token (slot numbers change; labels do not)."""
    signing_pkcs11_token_serial: str = ""
    """Serial number of the token, when several tokens share a label (or instead of it)."""
    signing_pkcs11_key_label: str = ""
    signing_pkcs11_key_id: str = ""
    """The key's CKA_ID in hex, when it has no label."""
    signing_pkcs11_cert_label: str = ""
    """The certificate's label on the token; default: the key's label or id."""
    signing_pkcs11_uri: str = field(default="", repr=False)
    """The token key as an RFC 7512 URI (``pkcs11:token=…;object=…?module-path=…``), instead
    of pkcs11_module + pkcs11_token + pkcs11_key_label; a pin-value in it is never shown."""
    signing_pin_env: str = "CERTISSUER_PKCS11_PIN"
    """Name of the environment variable that holds the token PIN (never the value)."""
    signing_level: Level = Level.B_B
    """PAdES baseline level: B-B, B-T, B-LT or B-LTA (`certissuer issue --level` overrides)."""
    signing_tsa_url: tuple[str, ...] = ()
    """RFC 3161 time-stamping authorities, needed from B-T up: one URL or a list, asked in
    order (the one that answered last first)."""
    signing_tsa_budget_s: float = 30.0
    """Seconds a run may lose to time-stamping authorities that do not answer; then it stops
    asking them (and `signing_tsa_unavailable` decides)."""
    signing_tsa_unavailable: TsaUnavailable = TsaUnavailable.REFUSE
    """No authority answered: refuse, or downgrade (sign B-T certificates at B-B and say so)."""
    signing_tsa_roots: tuple[Path, ...] = ()
    """Roots that time-stamping authorities must chain to (in addition to the trust roots)."""
    signing_digest: Digest = Digest.SHA256
    signing_rsa_padding: RsaPadding = RsaPadding.PKCS1V15
    """RSA signature scheme: pkcs1v15 or pss (RSASSA-PSS)."""
    signing_appearance: Appearance = Appearance.VISIBLE
    """visible: a signature box over the signer's printed name; invisible: none."""
    signing_seal_image: Path | None = None
    """The lab's seal (PNG with transparency), shown over the signature image's left third."""
    signing_signature_image: Path | None = None
    """The signer's signature image (PNG with transparency), under the seal's right part."""
    signing_seal_size_mm: float = 30.0
    """Width of the seal in a visible signature, in mm: the seal's actual size."""
    signing_approval: bool = False
    """Two signers for verification certificates: the verifier certifies, leaving a field that
    the head of the lab signs with `certissuer sign-approve`."""
    signing_revocation_check: bool = True
    """Before signing, ask the CA (CRL/OCSP) whether the signing certificate is revoked."""
    verify_revocation: Revocation = Revocation.SOFT_FAIL
    """Revocation policy when verifying: soft-fail, hard-fail or require."""
    verify_fetch: bool = False
    """Let `certissuer verify` fetch CRLs and OCSP responses (default: offline)."""
    verify_crls: tuple[Path, ...] = ()
    """CRL files (DER or PEM) to check signers against offline."""
    token_key: Path | None = None
    """Ed25519 or ECDSA P-256 private key (PEM) that signs QR tokens."""
    token_url_base: str = "https://verify.example.invalid"
    ledger_url: str = DEFAULT_LEDGER_URL
    """The ledger database. A relative SQLite file in the profile is relative to the profile
    (`resolve_sqlite_url`); in ``CERTISSUER_LEDGER_URL``, to the current folder."""
    ledger_pdf_store: PdfStore = PdfStore.FILES
    """Where signed PDFs are archived: files (the output folder) or database (the ledger's
    own database); 'certissuer ledger migrate-files' moves an archive."""
    render_template_dir: Path | None = None
    """A lab's own template folder; None uses the templates shipped with certissuer."""
    web_host: str = "127.0.0.1"
    """Address `certissuer serve` listens on (put a TLS reverse proxy in front of it)."""
    web_port: int = 8080
    web_token_public: Path | None = None
    """Token public key(s) the page checks QR tokens with (PEM); None uses [token] key."""
    web_allow_download: bool = False
    """Offer the signed PDF for download on the verification page."""
    web_show_customer: bool = True
    """Show a calibration customer's name and address on the verification page and in its
    JSON API. The owner of a verified instrument ("Cơ sở sử dụng") is always shown: the
    inspector compares it with the instrument."""
    web_max_upload: int = 10 * 1024 * 1024
    """Largest request body accepted, in bytes; a larger upload gets 413."""
    web_rate_limit: int = 60
    """Requests per minute per client address (0: no limit); beyond it, 429 + Retry-After."""
    web_rate_burst: int = 30
    """Requests a client may make at once before the per-minute rate applies."""
    web_pdf_workers: int = 2
    """Worker processes that parse and validate uploaded PDFs."""
    web_pdf_timeout: float = 10.0
    """Seconds one uploaded PDF may take in a worker before the worker is killed."""
    web_pdf_memory_mb: int = 1024
    """Address-space limit of each PDF worker process, in MiB."""
    web_trusted_proxies: str = ""
    """Comma-separated proxy addresses whose X-Forwarded-For is believed; empty: none."""
    web_upload_concurrency: int = 2
    """Uploads one client address (an IPv6 /64) may have in progress at once (0: no limit);
    one more gets 429 + Retry-After. Counted besides the per-minute rate."""
    web_header_timeout: float = 10.0
    """Seconds a connection may take to send a request's headers (`certissuer serve`); a client
    that stalls or trickles them is disconnected (0: no limit)."""
    web_body_timeout: float = 60.0
    """Seconds a request may take to send its whole body; then 408 and the connection is
    closed (0: no limit). A 10 MiB upload at 2 Mbit/s takes about 40 s."""
    dcc_schema_dir: Path | None = None
    """Folder with the official DCC schemas (dcc-3.1.2.xsd, SI_Format-2.1.0.xsd); None looks
    for $CERTISSUER_DCC_SCHEMA_DIR, then shared/schemas/dcc beside the project."""
    dcc_embed: bool | None = None
    """Embed the DCC XML in each PDF: true (the schemas must be found), false, or unset (embed
    when the schemas are found)."""
    registry_instrument_types: Path | None = None
    """The lab's own cycle table (TOML, as certissuer/data/instrument_types.toml); None: the
    shipped national list."""
    registry_outside_scope: OutsideScope = OutsideScope.REFUSE
    """Work outside the accreditation scope: refuse, or unaccredited (issue it without the
    accreditation mark, with a statement saying so)."""
    people: tuple[Person, ...] = ()
    """``[[people]]``: who signs (verifiers, the head, authorised signatories) with which key."""
    source: Path | None = field(default=None, compare=False)
    """The TOML file these settings came from, if any."""

    def __post_init__(self) -> None:
        # Settings built in code may name a choice by its text ("B-T", "invisible"): store the
        # member, so that the field holds what its annotation says.
        for name, choice in _choices().items():
            value = getattr(self, name)
            if not isinstance(value, choice):
                object.__setattr__(self, name, choice.parse(value, where=_setting(name)))
        tsa: object = self.signing_tsa_url
        if isinstance(tsa, str):  # one URL, as code may give it
            object.__setattr__(self, "signing_tsa_url", (tsa,) if tsa.strip() else ())
        self.accredited_scope()  # a bad scope line is refused when the profile is read
        self.testing_scope()
        if self.signing_pkcs11_uri:  # a malformed URI is refused when the profile is read
            parse_pkcs11_uri(self.signing_pkcs11_uri, where="[signing] pkcs11_uri")

    def signing_source(self) -> KeySource | None:
        """The ``[signing]`` key (PKCS#12, PEM key + cert, or token), or None when none is set.

        Raises `ConfigError` when it is named twice or incompletely.
        """
        values = {
            "pkcs12": self.signing_pkcs12,
            "key": self.signing_key,
            "cert": self.signing_cert,
            "chain": self.signing_chain,
            "pkcs11_module": self.signing_pkcs11_module,
            "pkcs11_token": self.signing_pkcs11_token,
            "pkcs11_token_serial": self.signing_pkcs11_token_serial,
            "pkcs11_key_label": self.signing_pkcs11_key_label,
            "pkcs11_key_id": self.signing_pkcs11_key_id,
            "pkcs11_cert_label": self.signing_pkcs11_cert_label,
            "pkcs11_uri": self.signing_pkcs11_uri,
        }
        if values["pkcs11_module"] is not None or values["pkcs11_uri"]:
            values["pkcs12"] = values["key"] = None  # a token key is used before a file
        elif values["key"] is not None:
            values["pkcs12"] = None
        return key_source(
            values, where="[signing]", base=self.source.parent if self.source else Path.cwd(),
            required=False,
        )  # fmt: skip

    def resolved(self, source: KeySource) -> KeySource:
        """`source` with the ``[signing]`` passphrase and PIN variables filled in."""
        return dataclasses.replace(
            source,
            passphrase_env=source.passphrase_env or self.signing_passphrase_env,
            pin_env=source.pin_env or self.signing_pin_env,
            chain=source.chain or (self.signing_chain if source.where != "[signing]" else ()),
        )

    def accredited_scope(self) -> tuple[ScopeLine, ...]:
        """`lab_accredited_scope` parsed (`ConfigError` names the bad line)."""
        return tuple(
            ScopeLine.parse(line, where=f"[lab] accredited_scope[{i}]")
            for i, line in enumerate(self.lab_accredited_scope)
        )

    def testing_scope(self) -> tuple[TestingScopeLine, ...]:
        """`lab_testing_scope` parsed (`ConfigError` names the bad line)."""
        return tuple(
            TestingScopeLine.parse(line, where=f"[lab] testing_scope[{i}]")
            for i, line in enumerate(self.lab_testing_scope)
        )

    def series_for(self, kind: str) -> str:
        """The number series prefix for a kind: "verification", "calibration", "testing", "copy" (an
        electronic copy of a paper certificate) or "failure" (a notice of failed
        verification). Raises `ValueError` for another kind."""
        match kind:
            case "verification":
                return self.numbering_verification
            case "calibration":
                return self.numbering_calibration
            case "testing":
                return self.numbering_testing
            case "copy":
                return self.numbering_copy
            case "failure":
                return self.numbering_failure
        raise ValueError(f"no number series for kind {kind!r}")

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied (used by the CLI for its options)."""
        return dataclasses.replace(self, **changes)


def _setting(name: str) -> str:
    """The field `name` as the profile spells it: ``signing_level`` is ``[signing] level``."""
    section, key = name.split("_", 1)
    return f"[{section}] {key}"


@functools.cache
def _fields() -> dict[str, Any]:
    """Each setting's name and its type, which says how a TOML or variable value is read."""
    hints = typing.get_type_hints(Settings)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(Settings)
        if f.name not in ("source", "people")
    }


@functools.cache
def _choices() -> dict[str, type[Choice]]:
    return {
        name: kind
        for name, kind in _fields().items()
        if isinstance(kind, type) and issubclass(kind, Choice)
    }


_SQLITE_URL = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?:///)(?P<path>[^?]*)(?P<query>\?.*)?$")


def resolve_sqlite_url(url: str, base: Path) -> str:
    """`url` with a relative SQLite file made absolute against the folder `base`.

    ``sqlite:///ledger.db`` read from ``/lab/certissuer.toml`` becomes
    ``sqlite:////lab/ledger.db``: a ledger URL names one file wherever certissuer is run from.
    Absolute and in-memory SQLite URLs and other databases are returned unchanged.
    """
    match = _SQLITE_URL.match(url)
    if match is None:
        return url
    path = match["path"]
    if not path or path == ":memory:" or path.startswith("file:") or Path(path).is_absolute():
        return url
    return f"{match['scheme']}{(base / path).resolve()}{match['query'] or ''}"


def _coerce(name: str, value: Any, base: Path, where: str) -> Any:
    """`value` read as setting `name` wants it; relative paths are resolved against `base`.

    TOML gives typed values, ``CERTISSUER_*`` variables give text. `where` names the value
    in errors (``lab.toml: [web] port`` or ``CERTISSUER_WEB_PORT``).
    """
    kind = _fields()[name]
    if kind == tuple[Path, ...]:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{where} must be a path or a list of paths, got {value!r}")
        return tuple((base / v).resolve() for v in items if v)
    if kind == tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{where} must be text or a list of texts, got {value!r}")
        return tuple(v.strip() for v in items if v.strip())
    if kind == Path | None:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path, got {value!r}")
        return (base / value).resolve() if value else None
    if kind in (bool, bool | None):
        return _coerce_bool(value, where)
    if kind in (int, float):
        return _coerce_number(kind, value, where)
    if name in _choices():
        return _choices()[name].parse(value, where=where)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be text, got {value!r}")
    if name == "ledger_url":
        return resolve_sqlite_url(value, base)
    if name == "signing_pkcs11_uri" and value:
        parse_pkcs11_uri(value, where=where, base=base)
    return value


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{where} must be true or false, got {value!r}")


def _coerce_number(kind: type[int] | type[float], value: Any, where: str) -> int | float:
    word = "a whole number" if kind is int else "a number"
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        raise ConfigError(f"{where} must be {word}, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be {word}, got {value!r}") from None
    if number < 0:
        raise ConfigError(f"{where} must not be negative, got {value!r}")
    return number


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
    valid = _fields()
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
            if section == "people":
                values["people"] = _people(table, path, base)
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: '{section}' must be a [section], got a value")
            for key, value in table.items():
                name = f"{section}_{key.replace('-', '_')}"
                if name not in valid:
                    keys = ", ".join(_setting(k) for k in valid)
                    raise ConfigError(
                        f"{path}: unknown setting [{section}] {key}", hint=f"valid keys: {keys}"
                    )
                values[name] = _coerce(name, value, base, f"{path}: [{section}] {key}")
        # A profile without [ledger] url still has one ledger: the default file beside it.
        values.setdefault("ledger_url", resolve_sqlite_url(DEFAULT_LEDGER_URL, base))
    for name in valid:
        var = f"CERTISSUER_{name.upper()}"
        if var in env:
            # A variable is not in a profile: its relative paths are the current folder's.
            values[name] = _coerce(name, env[var], Path.cwd(), var)
    return Settings(**values, source=path)
