"""The verification page in a real browser: headless Debian Chromium driven by Selenium, against
``certissuer serve`` (uvicorn) on a free loopback port, with certificates issued for real.

Without Debian's ``chromium`` and ``chromium-driver`` the tests are skipped, except in CI
(``CI`` set), where they fail: ``.ci/run`` installs both.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certissuer.config import Settings, load_settings
from certissuer.issue import Issued, Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import EventKind, Ledger, LedgerEvent
from certissuer.model import parse_certificate
from certissuer.sign import Keyring

from ._serve import start_serve, stop
from .conftest import PASSPHRASE, ROOT, SAMPLES, load_json

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = (390, 844)
ARTIFACTS = ROOT / "test-artifacts"


def _require_browser() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("CI must have Debian's chromium and chromium-driver (.ci/run installs them)")
    pytest.skip(
        "needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
    )


@dataclass
class BrowserLab:
    settings: Settings
    ledger: Ledger
    issuer: Issuer
    profile: Path
    base: str = ""
    """The running server, ``http://127.0.0.1:<port>``."""

    def issue(self, sample: str, issuer: Issuer | None = None) -> Issued:
        data = load_json(SAMPLES / f"{sample}.json")
        data["ref"] = f"{data['ref']}-{uuid.uuid4().hex[:8]}"
        if "stamp_number" in data and self.ledger.stamp_holder(
            self.settings.lab_code, ("ĐT-26", 12345)
        ):
            # A stamp is used once per lab (issue 16): later copies get stamps of their own.
            data["stamp_number"] = f"ĐT-26 {uuid.uuid4().int % 10**7:07d}"
        return (issuer or self.issuer).issue(parse_certificate(data))

    def qr_url(self, issued: Issued) -> str:
        """The issued QR URL, with the lab's public base replaced by the local server."""
        base = self.settings.token_url_base.upper()  # printed in upper case (issue 18)
        assert issued.url.startswith(base + "/V/")
        return self.base + issued.url.removeprefix(base)


def _toml(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


@pytest.fixture(scope="module")
def blab(
    tmp_path_factory: pytest.TempPathFactory,
    pki: KeyPaths,
    verifier_pki: KeyPaths,
    sealer: Any,
    renderer: Any,
) -> Iterator[BrowserLab]:
    """A lab profile on disk, its ledger with certificates, and ``certissuer serve`` on it."""
    _require_browser()
    root = tmp_path_factory.mktemp("browser-lab")
    profile = root / "lab.toml"
    profile.write_text(
        f"""\
[lab]
code = "T01"
name_vi = "Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Thử nghiệm"
name_en = "Test Technical Centre for Standards, Metrology and Quality"
[signing]
pkcs12 = {_toml(str(pki.signer_p12))}
trust_roots = [{_toml(str(pki.ca_cert))}, {_toml(str(verifier_pki.ca_cert))}]
[token]
key = {_toml(str(pki.token_key))}
url_base = "https://kiemdinh.test.invalid"
[ledger]
url = {_toml(f"sqlite:///{root / 'ledger.db'}")}
[web]
allow_download = true
rate_limit = 0
pdf_workers = 1
[[people]]
name = "Phạm Minh Tuấn"
roles = ["verifier"]
pkcs12 = {_toml(str(verifier_pki.signer_p12))}
""",
        encoding="utf-8",
    )
    settings = load_settings(profile, env={})
    ledger = Ledger.open(settings.ledger_url, ledger_key=load_token_key(settings))
    issuer = Issuer(
        settings,
        ledger=ledger,
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=root / "out",
        renderer=renderer,
    )
    lab = BrowserLab(settings, ledger, issuer, profile)
    lab.issue("calibration")  # the ledger file exists before the server opens it read-only

    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTISSUER_")}
    server, port = start_serve(profile, root / "serve.log", env=env)
    try:
        lab.base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(lab.base + "/", timeout=10) as r:
            assert r.status == 200
        yield lab
    finally:
        stop(server, interrupt=True)  # uvicorn's graceful shutdown: the PDF workers stop too


@pytest.fixture(scope="module")
def driver(blab: BrowserLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with a phone's viewport (390×844 CSS pixels)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",  # we run as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    width, height = PHONE
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


def text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    value: str = driver.find_element(By.ID, element_id).text
    return value


def has(driver: Any, element_id: str) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.ID, element_id))


def csp_violations(driver: Any) -> list[str]:
    return [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    """A phone-sized screenshot, kept under the test's tmp dir and in test-artifacts/."""
    from PIL import Image

    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    with Image.open(path) as image:
        assert image.size == PHONE
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path


def upload_file(driver: Any, base: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + "/")
    driver.find_element(By.ID, "file").send_keys(str(path))
    driver.find_element(By.ID, "check").click()
    WebDriverWait(driver, 30).until(
        expected_conditions.presence_of_element_located((By.ID, "verdict-vi"))
    )


def test_qr_url_shows_the_verdict_and_fields_on_a_phone(
    blab: BrowserLab, driver: Any, tmp_path: Path
) -> None:
    issued = blab.issue("verification")
    driver.get(blab.qr_url(issued))
    assert text(driver, "verdict-vi") == "HỢP LỆ" and text(driver, "verdict-en") == "VALID"
    assert text(driver, "f-number") == issued.number
    assert text(driver, "f-instrument") == "Cột đo xăng dầu / Fuel dispenser"
    assert text(driver, "f-model") == "Tatsuno SUNNY"
    assert text(driver, "f-serial") == "TS-2019-88231"
    assert text(driver, "f-stamp") == "ĐT-26 0012345"
    assert text(driver, "f-owner").startswith("Cửa hàng xăng dầu số 12")
    assert text(driver, "f-place").endswith("xã Mỹ Thọ, tỉnh Đồng Tháp")
    assert text(driver, "f-valid-until") == "24/11/2027"
    assert text(driver, "f-sha256") == issued.pdf_sha256
    assert text(driver, "domain") == "kiemdinh.test.invalid"
    # Built for a phone: no sideways scrolling, the verdict on the first screen.
    assert driver.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
    verdict_bottom = driver.execute_script(
        "return document.getElementById('verdict-en').getBoundingClientRect().bottom"
    )
    assert verdict_bottom < PHONE[1] / 2
    assert csp_violations(driver) == []  # the page lives within its own CSP
    screenshot(driver, tmp_path, "verify-page-valid-390x844.png")

    download = driver.find_element("id", "download").get_attribute("href")
    with urllib.request.urlopen(download, timeout=10) as r:
        assert r.read() == issued.path.read_bytes()


def test_revoked_after_a_reload(blab: BrowserLab, driver: Any, tmp_path: Path) -> None:
    issued = blab.issue("verification")
    driver.get(blab.qr_url(issued))
    assert text(driver, "verdict-en") == "VALID"
    blab.ledger.add_event(
        LedgerEvent(
            number=issued.number,
            kind=EventKind.REVOKED,
            at=datetime.now(UTC),
            reason="phương tiện đo bị hư hỏng",
        )
    )
    driver.refresh()
    assert text(driver, "verdict-vi") == "ĐÃ THU HỒI (lý do phương tiện đo bị hư hỏng)"
    assert text(driver, "verdict-en") == "REVOKED (reason phương tiện đo bị hư hỏng)"
    assert text(driver, "f-serial") == "TS-2019-88231"
    screenshot(driver, tmp_path, "verify-page-revoked-390x844.png")


def test_tampered_token_is_not_genuine(blab: BrowserLab, driver: Any, tmp_path: Path) -> None:
    issued = blab.issue("calibration")
    url = blab.qr_url(issued)
    at = len(url) - 30
    tampered = url[:at] + ("A" if url[at] != "A" else "B") + url[at + 1 :]
    driver.get(tampered)
    assert text(driver, "verdict-vi") == "KHÔNG XÁC THỰC (bị sửa đổi hoặc giả mạo)"
    assert text(driver, "verdict-en") == "NOT GENUINE (altered or forged)"
    assert not has(driver, "f-number") and issued.number not in driver.page_source
    screenshot(driver, tmp_path, "verify-page-not-genuine-390x844.png")


def test_upload_a_genuine_and_a_tampered_pdf(blab: BrowserLab, driver: Any, tmp_path: Path) -> None:
    issued = blab.issue("calibration")
    upload_file(driver, blab.base, issued.path)
    assert text(driver, "verdict-vi") == "HỢP LỆ"
    assert text(driver, "f-number") == issued.number
    assert text(driver, "f-sha256") == issued.pdf_sha256

    data = issued.path.read_bytes()
    at = data.index(b"stream\n") + 12
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :])
    upload_file(driver, blab.base, tampered)
    assert text(driver, "verdict-en") == "NOT GENUINE (altered or forged)"
    assert not has(driver, "f-number")
    assert csp_violations(driver) == []


def test_awaiting_approval_until_the_head_approves(
    blab: BrowserLab, driver: Any, tmp_path: Path
) -> None:
    settings = blab.settings.replace(signing_approval=True)
    two_signers = Issuer(
        settings,
        ledger=blab.ledger,
        # the verifier signs first with their [[people]] key; the head approves later
        keys=Keyring(settings, sealer=blab.issuer.sealer, secret=lambda _: PASSPHRASE),
        token_key=load_token_key(blab.settings),
        out_dir=tmp_path / "out",
        renderer=blab.issuer.renderer,
    )
    issued = blab.issue("verification", two_signers)
    driver.get(blab.qr_url(issued))
    assert text(driver, "verdict-vi") == "CHỜ PHÊ DUYỆT"
    assert text(driver, "verdict-en") == "AWAITING APPROVAL"
    assert text(driver, "f-number") == issued.number  # genuine: the fields are shown
    assert "chưa có hiệu lực" in driver.page_source
    screenshot(driver, tmp_path, "verify-page-awaiting-approval-390x844.png")
    upload_file(driver, blab.base, issued.path)
    assert text(driver, "verdict-en") == "AWAITING APPROVAL"

    blab.ledger.approve(issued.number, approver="Lê Hoàng Phúc", at=datetime.now(UTC))
    driver.get(blab.qr_url(issued))
    assert text(driver, "verdict-vi") == "HỢP LỆ" and text(driver, "verdict-en") == "VALID"
    assert csp_violations(driver) == []
