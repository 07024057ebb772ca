"""The DCC 3.1.2 format: namespaces, the certissuer refTypes, the official schema, `DccError`.

The schema files are the official PTB ones (``dcc-3.1.2.xsd`` with ``SI_Format-2.1.0.xsd``),
found by `find_schema_dir` and compiled once by `Schema.load`; the D-SI import is served from
the same folder, so validation never goes online.

>>> schema = Schema.load(find_schema_dir(settings))  # doctest: +SKIP
>>> schema.errors(tree)  # doctest: +SKIP
[]
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
    "DccError",
    "Loc",
    "Schema",
    "find_schema_dir",
    "short_names",
]

Loc = tuple[str | int, ...]
"""A pydantic-style location in a certificate's data, such as ``("results", 2, "unit")``."""

DCC_NAMESPACE: Final = "https://ptb.de/dcc"
SI_NAMESPACE: Final = "https://ptb.de/si"
SCHEMA_VERSION: Final = "3.1.2"
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
    settings: Settings | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The folder holding ``dcc-3.1.2.xsd`` and ``SI_Format-2.1.0.xsd``, or None.

    Looked for in this order: ``[dcc] schema_dir`` of `settings`; ``$CERTISSUER_DCC_SCHEMA_DIR``
    in `env` (default ``os.environ``); ``shared/schemas/dcc`` beside the project folder (where
    a checkout keeps the official schemas, unmodified). A folder that is named but lacks the
    files raises `ConfigError`.
    """
    env = os.environ if env is None else env
    named = settings.dcc_schema_dir if settings is not None else None
    if named is None and env.get(SCHEMA_DIR_ENV):
        named = Path(env[SCHEMA_DIR_ENV])
    if named is not None:
        if not (named / SCHEMA_FILE).is_file() or not (named / SI_SCHEMA_FILE).is_file():
            raise ConfigError(
                f"{named}: no DCC schemas there (expected {SCHEMA_FILE} and {SI_SCHEMA_FILE})",
                hint="set [dcc] schema_dir to the folder with the official PTB schemas",
            )
        return named
    beside = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "dcc"
    if (beside / SCHEMA_FILE).is_file() and (beside / SI_SCHEMA_FILE).is_file():
        return beside
    return None


class _LocalSchemas(etree.Resolver):  # type: ignore[misc]  # lxml is untyped
    """Serve the D-SI schema import from the local folder: validation never goes online."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        if url == _SI_SCHEMA_URL:
            return self.resolve_filename(str(self.folder / SI_SCHEMA_FILE), context)
        return None


class Schema:
    """The DCC 3.1.2 schema, compiled once (about 5 ms) and reused for every document."""

    def __init__(self, folder: Path) -> None:
        parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
        parser.resolvers.add(_LocalSchemas(folder))
        try:
            self._xsd = etree.XMLSchema(etree.parse(str(folder / SCHEMA_FILE), parser))
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise ConfigError(f"{folder}: cannot load the DCC schema: {exc}") from exc
        self.folder = folder
        # NOTE: one compiled schema is shared by every thread (web workers); lxml keeps the
        # error log on the schema object, so validation is serialised.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Schema({str(self.folder)!r})"

    @staticmethod
    def load(folder: Path) -> Schema:
        """The compiled schema of `folder` (compiled on first use, then cached by the folder's
        real path, so a link to it or a relative spelling does not compile it again)."""
        return _compiled_schema(folder.resolve())

    def errors(self, tree: Any) -> list[tuple[int, str]]:
        """``(line, message)`` for each way `tree` (an lxml element or tree) breaks the schema."""
        with self._lock:
            if self._xsd.validate(tree):
                return []
            return [(e.line, short_names(e.message)) for e in self._xsd.error_log]


@functools.cache
def _compiled_schema(folder: Path) -> Schema:
    return Schema(folder)


def short_names(message: str) -> str:
    """`message` with the namespaces written as the prefixes ``dcc:`` and ``si:``."""
    return message.replace(DCC_PREFIX, "dcc:").replace(SI_PREFIX, "si:")
