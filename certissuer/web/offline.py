"""The page as an installable web app that checks QR tokens offline (issue 18).

The page's one script (``static/offline.js``) registers a service worker (``/sw.js``, scope
``/``) that keeps the offline page, the script, the stylesheet, the manifest and the lab's
token keys. When a QR code's address cannot be fetched (no network), the service worker shows
the offline page, whose script checks the token's ECDSA P-256 signature with WebCrypto
against the kept keys: QR GENUINE, LEDGER NOT CONSULTED, or NOT GENUINE; an Ed25519 token
cannot be checked offline and says so.

The keys are published at ``/.well-known/certissuer/keys.json`` (`certissuer.token.keys_document`):
each token key's id, algorithm, JWK and validity window, signed (compact JWS) by the lab's
current token key when the page holds it. A key's window is read from the ledger: from the
first issue date of the tokens it signed; a key other than the current one ends at its last
issue date; the current key, and any key when the page holds no private key, is open-ended;
a key that signed nothing yet has no start. A key in the lab's key register
(`certissuer.key_register`, after ``keys rotate``) has the register's window instead, ending
the day before the key was compromised when it was.

>>> offline = Offline(settings, ledger, keys, pages)  # doctest: +SKIP
>>> offline.keys_json()[:1]  # doctest: +SKIP
b'{'
"""

from __future__ import annotations

import json
import logging
import threading
import time
from importlib.resources import files
from pathlib import Path

from certissuer.config import Settings
from certissuer.errors import LedgerError, TokenError
from certissuer.key_register import KeyRegister, key_set
from certissuer.ledger import Ledger
from certissuer.token import TokenKey, TokenPublicKey, keys_document
from certissuer.web.views import Lab

__all__ = ["KEYS_CACHE_CONTROL", "STATIC_CACHE_CONTROL", "Offline", "static_file"]

_logger = logging.getLogger(__name__)

KEYS_CACHE_CONTROL = "public, max-age=300"
"""keys.json may be cached five minutes: a new key reaches phones soon after it is published."""
STATIC_CACHE_CONTROL = "no-cache"
"""The service worker, the script and the offline page are revalidated on every visit, so a
new version reaches phones with the next visit online."""
_KEYS_TTL = 300.0


def static_file(name: str) -> bytes:
    """The bytes of ``certissuer/web/static/<name>`` (shipped in the package)."""
    return files("certissuer.web").joinpath("static", name).read_bytes()


def _signer(settings: Settings, keys: list[TokenPublicKey]) -> TokenKey | None:
    """The lab's current token key, if the page holds it and publishes its public half."""
    path: Path | None = settings.token_key
    if path is None:
        return None
    try:
        if b"PRIVATE KEY" not in path.read_bytes():
            return None
        key = TokenKey.load(path)
    except (OSError, TokenError) as exc:
        _logger.warning("keys.json: the token key cannot sign it (%s)", exc)
        return None
    if key.public.kid not in {k.kid for k in keys}:
        _logger.warning(
            "keys.json: the token key %s is not among the page's keys: keys.json is unsigned",
            key.public.kid.hex(),
        )
        return None
    return key


class Offline:
    """What the offline check needs from the server: keys.json, manifest, worker and script."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        keys: list[TokenPublicKey],
        lab: Lab,
        shell: str,
        register: KeyRegister | None = None,
    ) -> None:
        self.settings = settings
        self.register = register or KeyRegister.empty()
        """The key register: its keys' windows replace those read from the ledger."""
        self.ledger = ledger
        self.keys = keys
        self.lab = lab
        self.signer = _signer(settings, keys)
        self.shell = shell.encode()
        """The offline page (rendered once: it holds no certificate)."""
        self.worker = static_file("sw.js")
        self.script = static_file("offline.js")
        self.icon = static_file("icon.svg")
        self.manifest = self._manifest()
        self._lock = threading.Lock()
        self._keys: tuple[float, bytes] | None = None

    def keys_json(self) -> bytes:
        """keys.json, made again from the ledger every five minutes.

        Raises `LedgerError` when the ledger cannot be read and no earlier copy is at hand.
        """
        with self._lock:
            if self._keys is not None and time.monotonic() - self._keys[0] < _KEYS_TTL:
                return self._keys[1]
            try:
                data = self._make()
            except LedgerError:
                if self._keys is None:
                    raise
                _logger.warning("keys.json: the ledger cannot be read; serving the last copy")
                return self._keys[1]
            self._keys = (time.monotonic(), data)
            return data

    def _make(self) -> bytes:
        dates = self.ledger.token_key_dates()
        current = None if self.signer is None else self.signer.public.kid
        published = key_set(self.keys, self.register, dates, current)
        lab = {
            "code": self.settings.lab_code,
            "name_vi": self.settings.lab_name_vi,
            "name_en": self.settings.lab_name_en,
            "url_base": self.settings.token_url_base,
        }
        return keys_document(published, signer=self.signer, lab=lab)

    def _manifest(self) -> bytes:
        name = "Kiểm tra giấy chứng nhận · Certificate check"
        lab = self.lab.name_vi or self.lab.domain
        manifest = {
            "name": f"{name} — {lab}" if lab else name,
            "short_name": "Kiểm tra GCN",
            "description": (
                "Kiểm tra giấy chứng nhận kiểm định, hiệu chuẩn, phiếu kết quả thử nghiệm bằng "
                "mã QR, cả khi không có mạng. Check verification and calibration certificates "
                "and test reports by their QR code, offline too."
            ),
            "lang": "vi",
            "start_url": "./",
            "scope": "./",
            "display": "standalone",
            "background_color": "#ffffff",
            "theme_color": "#0b6b2f",
            "icons": [
                {"src": "static/icon.svg", "sizes": "any", "type": "image/svg+xml"},
            ],
        }
        return json.dumps(manifest, ensure_ascii=False, indent=2).encode()
