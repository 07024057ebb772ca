"""Trial services for a trial PKI: RFC 3161 time stamps, OCSP and a CRL on localhost.

NOT FOR PRODUCTION. ``certissuer keys init DIR --person NAME --role ROLE`` makes a trial CA
whose certificates name ``{url}/crl`` and ``{url}/ocsp``, and a time-stamping authority's key;
``certissuer trial-services DIR`` answers them, so a lab can try PAdES B-T, B-LT and B-LTA
(and two signers) without a licensed CA, a TSA or a network:

* ``POST /tsa``: RFC 3161 (``application/timestamp-query``), answered by pyHanko's
  `DummyTimeStamper` with the trial TSA's key;
* ``POST /ocsp`` and ``GET /ocsp/<base64>`` (RFC 6960, RFC 5019): *good* for a serial in
  ``index.json``, *revoked* for one revoked there (``keys revoke-trial``), *unknown* otherwise,
  signed by the CA's own key;
* ``GET /crl``: the CA's DER CRL of the revoked serials, next update in an hour.

Every answer carries the header ``X-Certissuer-Trial: NOT FOR PRODUCTION``.

>>> with TrialServer.start(TrialAuthority.load(Path("keys.example"), b"demo"), port=0) as srv:
...     srv.url  # doctest: +SKIP
'http://127.0.0.1:41234'
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPRequest
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from certissuer.errors import ConfigError
from certissuer.keys import NOT_FOR_PRODUCTION, read_index

__all__ = ["BANNER", "TRIAL_HEADER", "TrialAuthority", "TrialServer"]

_logger = logging.getLogger(__name__)

BANNER = (
    f"certissuer trial services - {NOT_FOR_PRODUCTION}: a self-made CA, OCSP responder and "
    "time-stamping authority for trying signatures out; nothing they sign proves anything."
)
TRIAL_HEADER = ("X-Certissuer-Trial", NOT_FOR_PRODUCTION)
FRESHNESS = timedelta(hours=1)
"""How long a CRL or OCSP answer is current (next update): short, as a trial's should be."""
MAX_BODY = 64 * 1024
"""Largest request accepted: a time-stamp or OCSP request is a few hundred bytes."""

_Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _load_key(path: Path, passphrase: bytes) -> _Key:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key ({exc.strerror})") from None
    except (ValueError, TypeError):
        # NOTE: never chain the original exception: keep secrets out of tracebacks.
        raise ConfigError(
            f"{path}: cannot open the key: wrong passphrase or damaged file"
        ) from None
    if not isinstance(key, _Key):
        raise ConfigError(f"{path}: the key type {type(key).__name__} is not allowed")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot load the certificate: {exc}") from None


@dataclass
class TrialAuthority:
    """The trial CA and TSA of one folder, answering time-stamp, OCSP and CRL requests.

    The index (``index.json``) is read again when it changes, so a revocation made while the
    services run counts from the next request on.
    """

    directory: Path
    ca_cert: x509.Certificate
    ca_key: _Key
    tsa_cert: x509.Certificate
    timestamper: DummyTimeStamper

    @classmethod
    def load(cls, directory: Path, passphrase: bytes) -> TrialAuthority:
        """The trial PKI `keys init` made in `directory`; `passphrase` opens the CA's and the
        TSA's keys. Raises `ConfigError` naming the file that cannot be used."""
        index = read_index(directory)
        _logger.debug("trial CA in %s, services at %s", directory, index.services_url)
        ca_cert = _load_cert(directory / "ca.pem")
        ca_key = _load_key(directory / "ca-key.pem", passphrase)
        tsa_cert = _load_cert(directory / "tsa.pem")
        tsa_key = _load_key(directory / "tsa-key.pem", passphrase)
        der = serialization.Encoding.DER
        if ca_key.public_key().public_bytes(
            der, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != ca_cert.public_key().public_bytes(
            der, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ConfigError(f"{directory / 'ca-key.pem'}: not the key of ca.pem")
        timestamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(tsa_cert.public_bytes(der)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(
                tsa_key.private_bytes(
                    der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            ),
            certs_to_embed=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [asn1_x509.Certificate.load(ca_cert.public_bytes(der))]
            ),
        )
        return cls(directory, ca_cert, ca_key, tsa_cert, timestamper)

    def _status(self) -> tuple[dict[int, str], dict[int, datetime]]:
        index = read_index(self.directory)
        return index.issued, index.revoked

    # -- the three services ----------------------------------------------------------------

    def timestamp(self, body: bytes) -> bytes:
        """The DER TimeStampResp to the DER TimeStampReq `body`; `ValueError` if malformed."""
        try:
            request = tsp.TimeStampReq.load(body)
            request["message_imprint"]["hash_algorithm"]["algorithm"].native  # noqa: B018
        except Exception as exc:  # asn1crypto raises a few kinds on bad DER
            raise ValueError(f"not an RFC 3161 time-stamp request ({exc})") from None
        response = self.timestamper.request_tsa_response(request)
        return bytes(response.dump())

    def ocsp(self, body: bytes, *, now: datetime | None = None) -> bytes:
        """The DER OCSP response to the DER OCSP request `body` (malformed: a signed-less
        ``malformedRequest`` answer, as RFC 6960 4.2.1 says)."""
        try:
            request = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        issued, revoked = self._status()
        serial = request.serial_number
        ours = self._is_our_issuer(request)
        revoked_at = revoked.get(serial) if ours else None
        if revoked_at is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        elif ours and serial in issued:
            status = ocsp.OCSPCertStatus.GOOD
        else:
            status = ocsp.OCSPCertStatus.UNKNOWN
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=serial,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=now,
            next_update=now + FRESHNESS,
            revocation_time=revoked_at,
            revocation_reason=x509.ReasonFlags.unspecified if revoked_at else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca_cert)
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
        _logger.debug("OCSP %x: %s", serial, status.name)
        response = builder.sign(self.ca_key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    def _is_our_issuer(self, request: OCSPRequest) -> bool:
        algorithm = request.hash_algorithm
        name_hash = hashes.Hash(algorithm)
        name_hash.update(self.ca_cert.subject.public_bytes())
        spki = asn1_keys.PublicKeyInfo.load(
            self.ca_cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        key_hash = hashes.Hash(algorithm)
        key_hash.update(bytes(spki["public_key"].contents[1:]))  # the BIT STRING's bytes
        return bool(
            name_hash.finalize() == request.issuer_name_hash
            and key_hash.finalize() == request.issuer_key_hash
        )

    def crl(self, *, now: datetime | None = None) -> bytes:
        """The CA's current DER CRL: every revoked serial, next update `FRESHNESS` away."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        _, revoked = self._status()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca_cert.subject)
            .last_update(now)
            .next_update(now + FRESHNESS)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        )
        for serial, at in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at).build()
            )
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class _Handler(BaseHTTPRequestHandler):
    server_version = f"certissuer-trial ({NOT_FOR_PRODUCTION})"
    sys_version = ""
    authority: TrialAuthority  # set on the subclass `TrialServer.start` makes

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header(*TRIAL_HEADER)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, code: int, text: str) -> None:
        self._send(code, "text/plain; charset=utf-8", f"{text}\n{BANNER}\n".encode())

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._text(411, "a request body with a Content-Length is needed")
            return None
        if not 0 < length <= MAX_BODY:
            self._text(413, f"the request body must be 1 to {MAX_BODY} bytes")
            return None
        return self.rfile.read(length)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/crl":
            self._send(200, "application/pkix-crl", self.authority.crl())
        elif path.startswith("/ocsp/"):
            encoded = unquote(path[len("/ocsp/") :])
            try:
                der = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                der = b""
            self._send(200, "application/ocsp-response", self.authority.ocsp(der))
        elif path == "/":
            self._text(200, "POST /tsa (RFC 3161), POST /ocsp, GET /ocsp/<base64>, GET /crl")
        else:
            self._text(404, f"no such service: {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/tsa", "/ocsp"):
            self._text(404, f"no such service: {path}")
            return
        body = self._body()
        if body is None:
            return
        if path == "/ocsp":
            self._send(200, "application/ocsp-response", self.authority.ocsp(body))
            return
        try:
            reply = self.authority.timestamp(body)
        except ValueError as exc:
            self._text(400, str(exc))
            return
        self._send(200, "application/timestamp-reply", reply)

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("%s %s", self.address_string(), format % args)


class TrialServer:
    """The trial services on one address, in a background thread (or the caller's)."""

    def __init__(self, authority: TrialAuthority, host: str = "127.0.0.1", port: int = 8790):
        """Bind `host`:`port` (0: any free port) for `authority`. Raises `ConfigError` when the
        address is taken or cannot be bound."""
        handler = type("Handler", (_Handler,), {"authority": authority})
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                hint="is another trial-services already running? choose another --port",
            ) from None
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` the services answer at."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @classmethod
    @contextmanager
    def start(
        cls, authority: TrialAuthority, host: str = "127.0.0.1", port: int = 8790
    ) -> Iterator[TrialServer]:
        """Serve in a background thread for the block (benchmarks and tests)."""
        server = cls(authority, host, port)
        server._thread = threading.Thread(target=server._httpd.serve_forever, daemon=True)
        server._thread.start()
        try:
            yield server
        finally:
            server.close()

    def serve_forever(self) -> None:
        """Serve in this thread until `close` (from another thread) or Ctrl-C."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def close(self) -> None:
        """Stop serving and release the address."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
