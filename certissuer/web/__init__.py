"""The inspector's verification page behind the QR code, and its JSON API.

>>> from certissuer.web import create_app, server_config
>>> app = create_app(load_settings(Path("certissuer.toml")))  # doctest: +SKIP
>>> uvicorn.Server(server_config(app, settings)).run()  # doctest: +SKIP

A face: it parses requests, asks `certissuer.verify` and the ledger, and presents the answer.
It runs no SQL of its own: it opens the ledger with `Ledger.open_readonly` and asks it.

* `app`: `create_app`, the HTML routes and the wiring.
* `site`: what the routes share: the verifier, the ledger, the worker pool, the answer caches.
* `views`: the HTML page: what it shows of a certificate, wording, templates, cache policy.
* `api`: the JSON API's models and routes.
* `offline`: the installable app: keys.json, manifest, service worker, offline token check.
* `middleware`: body size and deadline, rate and upload limits, security headers.
* `worker`: PDF checks in worker processes with time and memory limits.
* `server`: uvicorn's settings and its protocol with a header deadline; several workers.
* `monitor`: ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certissuer._lazy import lazy_attributes

if TYPE_CHECKING:
    from certissuer.web.api import VerdictOut
    from certissuer.web.app import create_app
    from certissuer.web.middleware import (
        CONTENT_SECURITY_POLICY,
        BodyDeadline,
        BodyLimit,
        RateLimit,
        SecurityHeaders,
        UploadLimit,
        client_key,
    )
    from certissuer.web.server import server_config
    from certissuer.web.site import PDF_MAGIC
    from certissuer.web.views import CertificateDetails, headline, web_template_dir

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PDF_MAGIC",
    "BodyDeadline",
    "BodyLimit",
    "CertificateDetails",
    "RateLimit",
    "SecurityHeaders",
    "UploadLimit",
    "VerdictOut",
    "client_key",
    "create_app",
    "headline",
    "server_config",
    "web_template_dir",
]

_LAZY = {
    "CONTENT_SECURITY_POLICY": "certissuer.web.middleware",
    "PDF_MAGIC": "certissuer.web.site",
    "BodyDeadline": "certissuer.web.middleware",
    "BodyLimit": "certissuer.web.middleware",
    "CertificateDetails": "certissuer.web.views",
    "RateLimit": "certissuer.web.middleware",
    "SecurityHeaders": "certissuer.web.middleware",
    "UploadLimit": "certissuer.web.middleware",
    "VerdictOut": "certissuer.web.api",
    "client_key": "certissuer.web.middleware",
    "create_app": "certissuer.web.app",
    "headline": "certissuer.web.views",
    "server_config": "certissuer.web.server",
    "web_template_dir": "certissuer.web.views",
}

# The PDF workers import `certissuer.web.worker` in a fork server with a memory limit:
# importing the package must not pull in FastAPI, Jinja2 and uvicorn with it.
__getattr__ = lazy_attributes(__name__, _LAZY)
