"""Each person's key: who signs which signature, with a key whose certificate names them.

The lab profile lists the people who sign (``[[people]]``: verifiers, the head of the
organisation, authorised calibration signatories) and each one's key: a PKCS#12 file, a PEM
key and certificate, or a key on a PKCS#11 token. A `Keyring` opens a person's key the first
time that person must sign in a run, and only then (one passphrase or PIN asked per file or
token), and hands out the `Sealer` of the person printed under a signature. The key's
certificate must name that person (its CN, diacritics, case and spacing aside); without a
``[[people]]`` entry, the ``[signing]`` key is the key of the person its certificate names.

>>> keys = Keyring(settings, secret=env_secret(settings, None, os.environ))  # doctest: +SKIP
>>> sealer = keys.for_name("Lê Hoàng Phúc", Role.HEAD, field="head.name")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime

from cryptography.hazmat.primitives import serialization

from certissuer._vn import same_name
from certissuer.config import KeySource, Person, Role, Settings
from certissuer.errors import CertissuerError, ConfigError, SignerRefused, SigningError
from certissuer.sign.policy import SigningPolicy, policy_from_settings
from certissuer.sign.sealer import Sealer

__all__ = ["Keyring", "SecretSource", "env_secret", "public_key_of", "signer_public_keys"]

_logger = logging.getLogger(__name__)

SecretSource = Callable[[KeySource], bytes | None]
"""Gives the passphrase (or PIN) of a key: None for none (or a token's PIN pad)."""

_HINT = (
    "add a [[people]] entry for '{name}' to the lab profile, with roles = [\"{role}\"] and "
    "their key (pkcs12 = … or pkcs11_uri = …)"
)


def public_key_of(sealer: Sealer) -> bytes:
    """The DER SubjectPublicKeyInfo of `sealer`'s key: two sealers sign with one key when
    these are equal."""
    return sealer.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signer_public_keys(pdf: bytes) -> list[bytes]:
    """The DER SubjectPublicKeyInfo of each signature's signer in `pdf`, in file order
    (document timestamps left out); `SigningError` when the file cannot be read."""
    from io import BytesIO

    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        signatures = PdfFileReader(BytesIO(pdf), strict=False).embedded_signatures
        return [
            bytes(s.signer_cert.public_key.dump())
            for s in signatures
            if s.sig_object.get("/Type") != "/DocTimeStamp"
        ]
    except (PdfError, ValueError, KeyError) as exc:
        raise SigningError(f"cannot read the document's signatures: {exc}") from None


def env_secret(
    settings: Settings, passphrase: bytes | None, env: Mapping[str, str]
) -> SecretSource:
    """Secrets from the variables each key names (``passphrase_env``, ``pin_env``, a URI's
    pin-source), `passphrase` standing in for the ``[signing]`` variable when it is unset.

    A PKCS#12 file whose variable is unset is refused with `ConfigError` naming it.
    """
    signing = settings.signing_source()
    signing_on_token = signing is not None and signing.on_token

    def secret(source: KeySource) -> bytes | None:
        pin = source.uri_pin()
        if pin is not None:
            return pin
        full = settings.resolved(source)
        var = full.pin_env if full.on_token else full.passphrase_env
        if var in env:
            return env[var].encode()
        # the [signing] passphrase for a key of the same kind read from the same variable
        signing_var = settings.signing_pin_env if full.on_token else settings.signing_passphrase_env
        same_kind = signing is None or signing_on_token == full.on_token
        if passphrase is not None and var == signing_var and same_kind:
            return passphrase
        if full.pkcs12 is not None:
            raise ConfigError(
                f"{source.where}: no passphrase for {full.pkcs12.name}: set ${var}",
                hint="or run the command in a terminal to be asked for it",
            )
        return None

    return secret


class Keyring:
    """The keys of the people who sign, opened lazily, each once per run. Close it (or use it
    as a context manager) to close every key it opened (token sessions)."""

    def __init__(
        self,
        settings: Settings,
        *,
        secret: SecretSource | None = None,
        policy: SigningPolicy | None = None,
        sealer: Sealer | None = None,
        now: datetime | None = None,
    ) -> None:
        """`settings` lists the people and the ``[signing]`` key; `secret` gives each key's
        passphrase or PIN (default: `env_secret` without a passphrase); `policy` is how every
        key signs (default: the profile's ``[signing]``). `sealer`, when given, is the
        ``[signing]`` key, already open (and closed by its owner, not here)."""
        self.settings = settings
        self._secret = secret or env_secret(settings, None, os.environ)
        self._policy = policy
        self._now = now
        self._given = sealer
        self._opened: dict[tuple[object, ...], Sealer | CertissuerError] = {}
        self._origin: dict[int, tuple[object, ...]] = {}

    def __enter__(self) -> Keyring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every key this keyring opened."""
        for opened in self._opened.values():
            if isinstance(opened, Sealer):
                opened.close()
        self._opened.clear()

    @property
    def policy(self) -> SigningPolicy:
        """How each key signs."""
        if self._policy is None:
            self._policy = policy_from_settings(self.settings)
        return self._policy

    def open(self, source: KeySource) -> Sealer:
        """The Sealer of the key `source` names, opened on first use (a failure, once)."""
        source = self.settings.resolved(source)
        ident = source.identity()
        if ident not in self._opened:
            try:
                sealer = Sealer.from_source(
                    source, self._secret(source), policy=self.policy, now=self._now
                )
            except CertissuerError as exc:
                self._opened[ident] = exc
                raise
            _logger.debug("%s: opened the key of %s", source.where, sealer.signer_name)
            self._opened[ident] = sealer
            self._origin[id(sealer)] = ident
        opened = self._opened[ident]
        if isinstance(opened, CertissuerError):
            raise opened
        return opened

    def default(self) -> Sealer:
        """The ``[signing]`` key (it signs digitised copies and reports). `ConfigError` when
        the profile has none."""
        if self._given is not None:
            return self._given
        source = self.settings.signing_source()
        if source is None:
            raise ConfigError(
                "no [signing] key configured",
                hint="set [signing] pkcs12, key + cert, or a token key (pkcs11_uri)",
            )
        return self.open(source)

    def has_default(self) -> bool:
        """True when there is a ``[signing]`` key."""
        return self._given is not None or self.settings.signing_source() is not None

    def person(self, name: str) -> Person | None:
        """The ``[[people]]`` entry of the person called `name`, or None."""
        return next((p for p in self.settings.people if same_name(p.name, name)), None)

    def for_name(self, name: str, role: Role, *, field: str, ref: str | None = None) -> Sealer:
        """The Sealer of `name`, printed as `role` in the record's `field`: their
        ``[[people]]`` key, else the ``[signing]`` key when its certificate names them.

        Raises `SignerRefused` (naming `field`, prefixed with ``ref '…'`` when `ref` is given)
        when no key is theirs, when their entry does not give them `role`, or when their key's
        certificate names somebody else; `SigningError` or `ConfigError` when the key cannot
        be opened.
        """
        where = f"ref '{ref}': {field}" if ref else field
        hint = _HINT.format(name=name, role=role.value)
        entry = self.person(name)
        if entry is not None:
            if role not in entry.roles:
                roles = ", ".join(r.value for r in entry.roles)
                raise SignerRefused(
                    f"{where}: '{name}' is printed as {role.value}, but {entry.key.where} gives "
                    f"them the roles {roles}",
                    field=field,
                    hint=f'add "{role.value}" to their roles',
                )
            sealer = self.open(entry.key)
            if not same_name(sealer.signer_name, name):
                raise SignerRefused(
                    f"{where}: '{name}' is printed over the signature, but the key of "
                    f"{entry.key.where} has a certificate naming '{sealer.signer_name}'",
                    field=field,
                    hint="give that person their own key, whose certificate names them",
                )
            return sealer
        if not self.has_default():
            raise SignerRefused(
                f"{where}: '{name}' is printed over the signature, but no key in the lab "
                "profile is theirs",
                field=field,
                hint=hint,
            )
        sealer = self.default()
        if not same_name(sealer.signer_name, name):
            raise SignerRefused(
                f"{where}: '{name}' is printed over the signature, but the signing key's "
                f"certificate names '{sealer.signer_name}'",
                field=field,
                hint=hint,
            )
        return sealer

    def check_distinct(
        self, first: Sealer, name: str, *, field: str, ref: str | None = None
    ) -> None:
        """Refuse (`SignerRefused`) when `name`'s key, as far as it is known without opening
        it, is the key of `first`: the two signatures of one certificate need two keys.

        Known means: `name`'s ``[[people]]`` entry names the same file or token key as the
        one `first` was opened from, or that key is open in this run (public keys compared).
        """
        entry = self.person(name)
        if entry is None:
            return
        source = self.settings.resolved(entry.key)
        ident = source.identity()
        opened = self._opened.get(ident)
        same = ident == self._origin.get(id(first)) or (
            isinstance(opened, Sealer) and public_key_of(opened) == public_key_of(first)
        )
        if same:
            where = f"ref '{ref}': {field}" if ref else field
            raise SignerRefused(
                f"{where}: '{name}' would approve with the key that makes the first signature "
                f"('{first.signer_name}'); the two signatures need two different keys",
                field=field,
                hint=f"give '{name}' their own key in [[people]]",
            )
