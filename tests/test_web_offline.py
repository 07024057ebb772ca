"""The page offline: keys.json, and a real headless Chromium that checks QR tokens with the network
cut after the first visit (the server stopped, and the browser's network emulated offline).

Without Debian's ``chromium`` and ``chromium-driver`` the browser test is skipped, except in CI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from certissuer.config import Settings, load_settings
from certissuer.errors import TokenError
from certissuer.issue import Issued, Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.token import KEYS_PATH, TokenKey, make_token, read_keys_document

from ._serve import start_serve, stop
from .conftest import SAMPLES, load_json
from .test_web_browser import CHROMEDRIVER, CHROMIUM, _require_browser, _toml, csp_violations


@dataclass
class OfflineLab:
    settings: Settings
    ledger: Ledger
    key: TokenKey
    """The lab's current token key (ECDSA P-256)."""
    old_key: TokenKey
    """A token key of before (Ed25519), still published."""
    p256: Issued
    ed25519: Issued
    server: Any = None
    base: str = ""
    closed: list[bool] = field(default_factory=list)

    def url(self, token: str) -> str:
        return f"{self.base}/V/{token}"

    def token(self, issued: Issued) -> str:
        return issued.url.rsplit("/V/", 1)[1]

    def digest(self, issued: Issued) -> str:
        entry = self.ledger.get(issued.number)
        assert entry is not None
        return hashlib.sha256(entry.data_json.encode()).hexdigest()


def _issue(issuer: Issuer, sample: str, ref: str) -> Issued:
    data = load_json(SAMPLES / f"{sample}.json")
    data["ref"] = ref
    return issuer.issue(parse_certificate(data))


@pytest.fixture(scope="module")
def olab(
    tmp_path_factory: pytest.TempPathFactory, pki: KeyPaths, sealer: Any, renderer: Any
) -> Iterator[OfflineLab]:
    """A lab whose page publishes its P-256 key and an older Ed25519 one, served for real."""
    root = tmp_path_factory.mktemp("offline-lab")
    old_key = TokenKey.generate("ed25519")
    (root / "old-token.pem").write_bytes(old_key.pem())
    key = TokenKey.load(pki.token_key)
    public = root / "token-public.pem"
    public.write_bytes(key.public.pem() + old_key.public.pem())
    profile = root / "lab.toml"
    profile.write_text(
        f"""\
[lab]
code = "T01"
name_vi = "Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Thử nghiệm"
name_en = "Test Technical Centre for Standards, Metrology and Quality"
[signing]
pkcs12 = {_toml(str(pki.signer_p12))}
trust_roots = [{_toml(str(pki.ca_cert))}]
[token]
key = {_toml(str(pki.token_key))}
url_base = "https://kiemdinh.test.invalid"
[ledger]
url = {_toml(f"sqlite:///{root / 'ledger.db'}")}
[web]
token_public = {_toml(str(public))}
rate_limit = 0
pdf_workers = 1
""",
        encoding="utf-8",
    )
    settings = load_settings(profile, env={})
    ledger = Ledger.open(settings.ledger_url, ledger_key=load_token_key(settings))
    common = {"ledger": ledger, "sealer": sealer, "out_dir": root / "out", "renderer": renderer}
    ed_issuer = Issuer(settings, token_key=old_key, **common)
    ed25519 = _issue(ed_issuer, "calibration", "OFF-ED25519")
    p256 = _issue(Issuer(settings, token_key=key, **common), "verification", "OFF-P256")
    lab = OfflineLab(settings, ledger, key, old_key, p256, ed25519)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTISSUER_")}
    server, port = start_serve(profile, root / "serve.log", env=env)
    lab.server, lab.base = server, f"http://127.0.0.1:{port}"
    try:
        yield lab
    finally:
        stop(server, interrupt=True)
        ledger.close()


def _get(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read(), {k.lower(): v for k, v in r.headers.items()}


def test_keys_json_is_signed_by_the_lab_key_and_gives_each_key_its_window(
    olab: OfflineLab,
) -> None:
    data, headers = _get(f"{olab.base}/{KEYS_PATH}")
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "public, max-age=300"
    keys, signer = read_keys_document(data, pinned=[olab.key.public.fingerprint])
    assert signer.kid == olab.key.public.kid and signer.alg == "ES256"  # keys init: P-256
    by_kid = {k.key.kid: k for k in keys}
    assert set(by_kid) == {olab.key.public.kid, olab.old_key.public.kid}
    current, old = by_kid[olab.key.public.kid], by_kid[olab.old_key.public.kid]
    entry = olab.ledger.get(olab.p256.number)
    old_entry = olab.ledger.get(olab.ed25519.number)
    assert entry is not None and old_entry is not None
    # From the first token each key signed; the current key open-ended, the older one closed.
    assert (current.not_before, current.not_after) == (entry.issue_date, None)
    assert (old.not_before, old.not_after) == (old_entry.issue_date, old_entry.issue_date)
    document = json.loads(data)
    jwk = next(k["jwk"] for k in document["keys"] if k["alg"] == "ES256")
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and {"x", "y"} <= set(jwk)

    # Pinned to another key: refused.
    with pytest.raises(TokenError, match="not pinned"):
        read_keys_document(data, pinned=[TokenKey.generate().public.fingerprint])
    # A widened window in the readable copy, or in the signed payload: refused.
    widened = {**document, "keys": [{**k, "not_after": None} for k in document["keys"]]}
    with pytest.raises(TokenError, match="readable copy differs"):
        read_keys_document(json.dumps(widened).encode())
    head, _, sig = document["signed"].split(".")
    body = {k: v for k, v in widened.items() if k != "signed"}
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    forged = {**widened, "signed": f"{head}.{payload}.{sig}"}
    with pytest.raises(TokenError, match="does not verify"):
        read_keys_document(json.dumps(forged).encode())


def test_manifest_and_service_worker_are_served(olab: OfflineLab) -> None:
    data, headers = _get(f"{olab.base}/manifest.webmanifest")
    manifest = json.loads(data)
    assert headers["content-type"] == "application/manifest+json"
    assert manifest["name"].startswith("Kiểm tra giấy chứng nhận · Certificate check")
    assert manifest["start_url"] == "./" and manifest["icons"]
    data, headers = _get(f"{olab.base}/sw.js")
    assert headers["content-type"].startswith("text/javascript") and b"caches.open" in data
    page, _ = _get(olab.url(olab.token(olab.p256)))
    assert b'<script src="../static/offline.js" defer></script>' in page
    assert b'<link rel="manifest" href="../manifest.webmanifest">' in page


def test_an_old_ed25519_token_still_verifies_on_the_server(olab: OfflineLab) -> None:
    assert olab.token(olab.ed25519)[:8] != olab.token(olab.p256)[:8]  # two keys
    page, _ = _get(olab.url(olab.token(olab.ed25519)))
    assert b'data-verdict="valid"' in page and olab.ed25519.number.encode() in page


@pytest.fixture(scope="module")
def browser(olab: OfflineLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",  # we run as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-offline')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


_CACHED = """
const done = arguments[arguments.length - 1];
navigator.serviceWorker.ready
  .then(() => caches.keys())
  .then((names) => Promise.all(names.map((n) => caches.open(n).then((c) => c.keys()))))
  .then((lists) => done(lists.flat().map((r) => r.url)))
  .catch((e) => done(['error: ' + e]));
"""


def _offline_verdict(driver: Any, url: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 15).until(
        lambda d: d.find_element(By.ID, "offline-check").get_attribute("data-done")
    )
    heading = driver.find_element(By.ID, "verdict-vi")
    shown = {
        "verdict": heading.get_attribute("data-verdict"),
        "vi": heading.text,
        "en": driver.find_element(By.ID, "verdict-en").text,
        "class": driver.find_element(By.ID, "offline-verdict").get_attribute("class"),
    }
    for name in ("number", "issued", "digest", "kid"):
        found = driver.find_elements(By.ID, f"f-token-{name}")
        if found:
            shown[name] = found[0].text
    return shown


def test_offline_the_browser_checks_tokens_itself(olab: OfflineLab, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    genuine = olab.token(olab.p256)
    # First visit, online: the server's verdict, and the service worker keeps what it needs.
    browser.get(olab.url(genuine))
    assert browser.find_element(By.ID, "verdict-en").text == "VALID"
    cached: list[str] = []
    for _ in range(50):
        cached = browser.execute_async_script(_CACHED)
        if f"{olab.base}/{KEYS_PATH}" in cached:
            break
    assert f"{olab.base}/{KEYS_PATH}" in cached, cached
    assert f"{olab.base}/static/offline.html" in cached
    assert not any("/V/" in u for u in cached)  # verdicts are never kept

    # The network is cut: the server is gone and the browser is offline.
    stop(olab.server, interrupt=True)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )

    shown = _offline_verdict(browser, olab.url(genuine))
    assert shown["verdict"] == "ledger_not_consulted", shown
    assert shown["vi"] == "MÃ QR DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP"
    assert shown["en"] == "QR GENUINE, LEDGER NOT CONSULTED"
    entry = olab.ledger.get(olab.p256.number)
    assert entry is not None
    assert shown["number"] == olab.p256.number
    assert shown["issued"] == f"{entry.issue_date:%d/%m/%Y}"
    assert shown["digest"] == olab.digest(olab.p256)[:32]
    assert shown["kid"] == olab.key.public.kid.hex()
    # The same token as QR codes printed before base32 spelled it: /v/ and base64url.
    raw = base64.b32decode(genuine + "=" * (-len(genuine) % 8))
    older = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    shown = _offline_verdict(browser, f"{olab.base}/v/{older}")
    assert shown["verdict"] == "ledger_not_consulted" and shown["number"] == olab.p256.number

    # Attack: one signature byte flipped (the token re-spelled canonically) is NOT GENUINE.
    raw = bytearray(base64.b32decode(genuine + "=" * (-len(genuine) % 8)))
    raw[-10] ^= 0x01
    flipped = base64.b32encode(bytes(raw)).rstrip(b"=").decode()
    shown = _offline_verdict(browser, olab.url(flipped))
    assert shown["verdict"] == "altered" and shown["en"] == "NOT GENUINE (altered or forged)"
    assert shown["vi"] == "KHÔNG XÁC THỰC (bị sửa đổi hoặc giả mạo)"
    assert "number" not in shown and "bad" in shown["class"]

    # Attack: the same claims signed with another P-256 key are NOT GENUINE.
    claims = {"number": olab.p256.number, "issued": entry.issue_date, "digest": entry.data_digest}
    forged = make_token(TokenKey.generate(), **claims)
    shown = _offline_verdict(browser, olab.url(forged))
    assert shown["verdict"] == "altered" and "number" not in shown

    # Attack: the lab's own key, but an issue date before the key's first token: outside its
    # published window, NOT GENUINE.
    early = make_token(olab.key, **{**claims, "issued": entry.issue_date - timedelta(days=400)})
    shown = _offline_verdict(browser, olab.url(early))
    assert shown["verdict"] == "altered" and "number" not in shown
    reason = browser.find_element(By.ID, "offline-reason").get_attribute("textContent")
    assert "outside the validity" in reason

    # An Ed25519 token cannot be checked offline: said so in grey, never valid.
    shown = _offline_verdict(browser, olab.url(olab.token(olab.ed25519)))
    assert shown["verdict"] == "not_checked_offline" and shown["en"] == "CANNOT CHECK OFFLINE"
    assert "unchecked" in shown["class"] and "number" not in shown

    assert csp_violations(browser) == []
