"""The DCC format: namespaces, the certissuer refTypes, the official schemas, `DccError`.

The schema files are the official PTB ones (``dcc-3.1.2.xsd`` with ``SI_Format-2.1.0.xsd``,
and per version ``dcc-3.3.0.xsd`` or ``3.3.0/dcc.xsd`` with its D-SI schema), found by
`find_schema_dir` and compiled once by `Schema.load`; every import is served from the same
folder (or from a copy installed with certissuer's dependencies), so validation never goes
online.

>>> schema = Schema.load(find_schema_dir(settings))  # doctest: +SKIP
>>> schema.errors(tree)  # doctest: +SKIP
[]
>>> Schema.load(find_schema_dir(settings, version="3.3.0"), "3.3.0")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lxml import etree

from certissuer.config import Settings
from certissuer.errors import CertissuerError, ConfigError
from certissuer.model import Kind

__all__ = [
    "DCC_NAMESPACE",
    "DCC_PREFIX",
    "KIND_REFTYPE",
    "MAX_XML_BYTES",
    "MIME_TYPE",
    "NEWEST_VERSION",
    "NSMAP",
    "ROOT_TAG",
    "SCHEMA_DIR_ENV",
    "SCHEMA_FILE",
    "SCHEMA_HINT",
    "SCHEMA_VERSION",
    "SI_NAMESPACE",
    "SI_PREFIX",
    "SI_SCHEMA_FILE",
    "STAGE_REFTYPE",
    "VALIDATED_VERSIONS",
    "WRITE_VERSIONS",
    "DccError",
    "Loc",
    "Schema",
    "check_write_version",
    "find_schema_dir",
    "load_schema",
    "schema_files",
    "short_names",
]

Loc = tuple[str | int, ...]
"""A pydantic-style location in a certificate's data, such as ``("results", 2, "unit")``."""

DCC_NAMESPACE: Final = "https://ptb.de/dcc"
SI_NAMESPACE: Final = "https://ptb.de/si"
SCHEMA_VERSION: Final = "3.1.2"
"""The version written by default and embedded in every certificate PDF."""
NEWEST_VERSION: Final = "3.3.0"
"""The newest DCC version PTB publishes that certissuer writes (``--schema-version 3.3.0``)."""
WRITE_VERSIONS: Final = (SCHEMA_VERSION, NEWEST_VERSION)
"""The versions certissuer writes and reads back exactly."""
SCHEMA_FILE: Final = "dcc-3.1.2.xsd"
SI_SCHEMA_FILE: Final = "SI_Format-2.1.0.xsd"
_SI_SCHEMA_URL: Final = "https://ptb.de/si/v2.1.0/SI_Format.xsd"
"""Where dcc-3.1.2.xsd imports the D-SI schema from; mapped to the local file, never fetched."""
SCHEMA_DIR_ENV: Final = "CERTISSUER_DCC_SCHEMA_DIR"
MAX_XML_BYTES: Final = 25 * 1024 * 1024
"""Largest DCC document read or extracted (the intake's limit for any input file)."""
MIME_TYPE: Final = "application/xml"
SCHEMA_HINT: Final = f"set [dcc] schema_dir or ${SCHEMA_DIR_ENV} to the folder with {SCHEMA_FILE}"

DCC_PREFIX: Final = "{" + DCC_NAMESPACE + "}"
SI_PREFIX: Final = "{" + SI_NAMESPACE + "}"
NSMAP: Final = {"dcc": DCC_NAMESPACE, "si": SI_NAMESPACE}
ROOT_TAG: Final = DCC_PREFIX + "digitalCalibrationCertificate"


class DccError(CertissuerError):
    """A DCC document cannot be made, embedded or extracted.

    An export that fails the schema is a bug in certissuer (the intake refuses what the schema
    cannot hold), so the message says so.
    """

    exit_code = 1


KIND_REFTYPE: Final[Mapping[str, str]] = {
    Kind.CALIBRATION.value: "certissuer_calibration",
    Kind.VERIFICATION.value: "certissuer_verification",
    Kind.TESTING.value: "certissuer_testing",
}
STAGE_REFTYPE: Final = {
    "before": "certissuer_beforeAdjustment",
    "after": "certissuer_afterAdjustment",
}


def find_schema_dir(
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    version: str = SCHEMA_VERSION,
) -> Path | None:
    """The folder holding the official schemas of DCC `version`, or None.

    Looked for in this order: ``[dcc] schema_dir`` of `settings`; ``$CERTISSUER_DCC_SCHEMA_DIR``
    in `env` (default ``os.environ``); ``shared/schemas/dcc`` beside the project folder (where
    a checkout keeps the official schemas, unmodified).

    For 3.1.2 the folder holds ``dcc-3.1.2.xsd`` and ``SI_Format-2.1.0.xsd``, and a folder that
    is named but lacks them raises `ConfigError`. For another version (`schema_files`) the
    first of these folders that holds its files is returned: a folder of the 3.1.2 files alone
    is not an error, the version is then simply not available.
    """
    env = os.environ if env is None else env
    named = settings.dcc_schema_dir if settings is not None else None
    if named is None and env.get(SCHEMA_DIR_ENV):
        named = Path(env[SCHEMA_DIR_ENV])
    beside = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "dcc"
    if version != SCHEMA_VERSION:
        for folder in (named, beside):
            if folder is not None and schema_files(folder, version) is not None:
                return folder
        return None
    if named is not None:
        if not (named / SCHEMA_FILE).is_file() or not (named / SI_SCHEMA_FILE).is_file():
            raise ConfigError(
                f"{named}: no DCC schemas there (expected {SCHEMA_FILE} and {SI_SCHEMA_FILE})",
                hint="set [dcc] schema_dir to the folder with the official PTB schemas",
            )
        return named
    if (beside / SCHEMA_FILE).is_file() and (beside / SI_SCHEMA_FILE).is_file():
        return beside
    return None


# -- the official schema files of each version ----------------------------------------------

_SI_2_1_URL: Final = _SI_SCHEMA_URL
_SI_2_2_1_URL: Final = "https://ptb.de/si/v2.2.1/SI_Format.xsd"
_QUDT_URL: Final = "https://www.ptb.de/si/v2.2.0/qudt/quantitykind.xsd"
_DSIG_URL: Final = "https://www.ptb.de/dcc/d-sig/xmldsig-core-schema.xsd"
_DSIG_FILE: Final = "xmldsig-core-schema.xsd"

_IMPORTS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    # version → the URL each import names → the local files served for it, in order.
    "3.1.1": {_SI_2_1_URL: (SI_SCHEMA_FILE,)},
    "3.1.2": {_SI_2_1_URL: (SI_SCHEMA_FILE,)},
    "3.2.1": {_SI_2_1_URL: (SI_SCHEMA_FILE,), _DSIG_URL: (_DSIG_FILE,)},
    # NOTE: DCC 3.3.0 imports D-SI 2.2.1. Where only the official D-SI 2.2.0 is at hand it is
    # served instead (2.2.1 is a patch release of it); the folder's README says which is kept.
    "3.3.0": {
        _SI_2_2_1_URL: ("SI_Format-2.2.1.xsd", "SI_Format-2.2.0.xsd"),
        _QUDT_URL: ("quantitykind.xsd",),
        _DSIG_URL: (_DSIG_FILE,),
    },
}
"""The DCC versions whose official schema can be compiled from local files."""

VALIDATED_VERSIONS: Final = tuple(_IMPORTS)
"""The DCC versions validated when their official schema files are found; a document of
another version (3.0.0, 3.2.0) is read without validation, and says so."""

_QUDT_STAND_IN: Final = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- certissuer's stand-in for PTB's qudt/quantitykind.xsd (imported by D-SI 2.2): any
     string is accepted as a QUDT quantity kind. Served only when that file is not kept. -->
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="http://qudt.org/vocab/">
  <xs:simpleType name="quantitykind"><xs:restriction base="xs:string"/></xs:simpleType>
</xs:schema>
"""
"""D-SI 2.2's ``si:quantityTypeQUDT`` names a QUDT quantity kind; certissuer never writes one,
and a document that does is checked against this permissive type instead of PTB's list."""


def _bundled_dsig() -> Path | None:
    """W3C's XML-signature schema as the xmlschema package installs it (its DTD commented out,
    so it parses without entities), or None."""
    try:
        import xmlschema
    except ImportError:  # pragma: no cover - a dependency of certissuer (pyproject.toml)
        return None
    path = Path(xmlschema.__file__).parent / "schemas" / "DSIG" / _DSIG_FILE
    return path if path.is_file() else None


def _local(folder: Path, version: str, name: str) -> Path | None:
    for path in (folder / version / name, folder / name):
        if path.is_file():
            return path
    return None


def schema_files(folder: Path, version: str) -> tuple[Path, dict[str, Path | bytes]] | None:
    """The DCC schema of `version` in `folder` and what each of its imports is served from,
    or None when `folder` lacks a file it needs (or certissuer knows no such version).

    The DCC schema is ``dcc-VERSION.xsd`` or ``VERSION/dcc.xsd``; each import is looked for in
    ``VERSION/`` and then in `folder` itself. The XML-signature schema may come from the
    xmlschema package instead, and QUDT's quantity kinds from `_QUDT_STAND_IN`.
    """
    imports = _IMPORTS.get(version)
    if imports is None:
        return None
    main = folder / f"dcc-{version}.xsd"
    if not main.is_file():
        main = folder / version / "dcc.xsd"
        if not main.is_file():
            return None
    served: dict[str, Path | bytes] = {}
    for url, names in imports.items():
        found = next((p for p in (_local(folder, version, n) for n in names) if p), None)
        if found is None and url == _DSIG_URL:
            found = _bundled_dsig()
        if found is None and url == _QUDT_URL:
            served[url] = _QUDT_STAND_IN
            continue
        if found is None:
            return None
        served[url] = found
    return main, served


def check_write_version(version: str) -> str:
    """`version` when certissuer writes it (``newest`` names `NEWEST_VERSION`); `DccError`
    in one line otherwise."""
    if version == "newest":
        return NEWEST_VERSION
    if version not in WRITE_VERSIONS:
        raise DccError(
            f"DCC schema version {version!r}: certissuer writes DCC {' and '.join(WRITE_VERSIONS)}"
        )
    return version


def load_schema(
    version: str, settings: Settings | None = None, env: Mapping[str, str] | None = None
) -> Schema:
    """The compiled official schema of DCC `version`, to write it; `ConfigError` when its files
    are not found (`find_schema_dir`)."""
    folder = find_schema_dir(settings, env, version)
    if folder is None:
        expected = (
            f"{SCHEMA_FILE} and {SI_SCHEMA_FILE}"
            if version == SCHEMA_VERSION
            else f"dcc-{version}.xsd or {version}/dcc.xsd with "
            + " and ".join(
                names[-1]
                for url, names in _IMPORTS[version].items()
                if url != _DSIG_URL and url != _QUDT_URL
            )
        )
        raise ConfigError(
            f"the official DCC {version} schema was not found (expected {expected})",
            hint=f"set [dcc] schema_dir or ${SCHEMA_DIR_ENV} to the folder with the official "
            "PTB schemas",
        )
    return Schema.load(folder, version)


class _LocalSchemas(etree.Resolver):  # type: ignore[misc]  # lxml is untyped
    """Serve the schema's imports from local files: validation never goes online."""

    def __init__(self, served: Mapping[str, Path | bytes]) -> None:
        super().__init__()
        self.served = served

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        local = self.served.get(url)
        if isinstance(local, bytes):
            return self.resolve_string(local, context)
        if local is not None:
            return self.resolve_filename(str(local), context)
        return None


class Schema:
    """The official schema of one DCC version (3.1.2 unless named), compiled once (about 5 ms
    for 3.1.2) and reused for every document."""

    def __init__(self, folder: Path, version: str = SCHEMA_VERSION) -> None:
        files = schema_files(folder, version)
        if files is None:
            raise ConfigError(f"{folder}: the DCC {version} schema files are not all there")
        main, served = files
        parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
        parser.resolvers.add(_LocalSchemas(served))
        try:
            self._xsd = etree.XMLSchema(etree.parse(str(main), parser))
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise ConfigError(f"{folder}: cannot load the DCC {version} schema: {exc}") from exc
        self.folder = folder
        self.version = version
        self.file_name = main.name if main.parent == folder else f"{version}/{main.name}"
        # NOTE: one compiled schema is shared by every thread (web workers); lxml keeps the
        # error log on the schema object, so validation is serialised.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        if self.version == SCHEMA_VERSION:
            return f"Schema({str(self.folder)!r})"
        return f"Schema({str(self.folder)!r}, {self.version!r})"

    @staticmethod
    def load(folder: Path, version: str = SCHEMA_VERSION) -> Schema:
        """The compiled schema of `version` in `folder` (compiled on first use, then cached by
        the folder's real path, so a link to it or a relative spelling does not compile it
        again)."""
        return _compiled_schema(folder.resolve(), version)

    def errors(self, tree: Any) -> list[tuple[int, str]]:
        """``(line, message)`` for each way `tree` (an lxml element or tree) breaks the schema."""
        with self._lock:
            if self._xsd.validate(tree):
                return []
            return [(e.line, short_names(e.message)) for e in self._xsd.error_log]


@functools.cache
def _compiled_schema(folder: Path, version: str) -> Schema:
    return Schema(folder, version)


def short_names(message: str) -> str:
    """`message` with the namespaces written as the prefixes ``dcc:`` and ``si:``."""
    return message.replace(DCC_PREFIX, "dcc:").replace(SI_PREFIX, "si:")
