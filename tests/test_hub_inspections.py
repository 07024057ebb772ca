"""Inspection rounds on the hub (issue 22, part 3): checks by QR token or number and serial
record the verdict the hub computes (never one sent to it), the phone page's API refuses a
wrong inspector token, and the year's report counts what was recorded, as XLSX and as a PDF
signed with the Department's key (SQLite, and PostgreSQL when CERTISSUER_TEST_PG_URL is set)."""

from __future__ import annotations

import io
import re
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from certissuer.cli import app as cli_app
from certissuer.hub import verify_token
from certissuer.hub.app import create_hub_app
from certissuer.hub.inspection_report import (
    INFO_DIGEST_KEY,
    Department,
    inspection_report,
    render_pdf,
    write_xlsx,
)
from certissuer.hub.inspections import Found, InspectionError, Inspections
from certissuer.keys import KeyPaths, make_keys
from certissuer.model import parse_certificate
from certissuer.sign import Sealer

from .conftest import PASSPHRASE, SAMPLES, load_json
from .test_hub import ISSUED_AT, TODAY, World, world  # noqa: F401  (the two-lab hub fixture)

LATER = date(2045, 1, 1)
"""A day after every sample certificate's validity."""


@pytest.fixture(scope="module")
def dept_pki(tmp_path_factory: pytest.TempPathFactory) -> KeyPaths:
    """The Department of Science and Technology's trial key (its own CA)."""
    return make_keys(
        tmp_path_factory.mktemp("dept"),
        passphrase=PASSPHRASE,
        organisation="Sở Khoa học và Công nghệ Đồng Tháp",
        signer_name="Trần Thị Thanh Tra",
    )


def _pushed(w: World) -> dict[str, str]:
    """Issue A1, A2 at lab A and B1 at lab B, push both; their QR URLs by ref."""
    urls = {}
    for lab, ref in ((w.a, "A1"), (w.b, "B1")):
        urls[ref] = f"https://verify.test.invalid/V/{lab.issue(ref)}"
    # A2 is a verification certificate: it has a validity that ends
    ver = load_json(SAMPLES / "verification.json")
    issued = w.a.issuer.issue(parse_certificate({**ver, "ref": "A2"}), now=ISSUED_AT)
    w.a.numbers["A2"] = issued.number
    urls["A2"] = issued.url
    w.push(w.a)
    w.push(w.b)
    return urls


def _serial(w: World, lab_code: str, number: str) -> str:
    row = w.hub.certificate(lab_code, number)
    assert row is not None
    import json

    return str(json.loads(row.record_json)["instrument_serial"])


def test_a_round_records_the_verdict_the_hub_computes(world: World) -> None:  # noqa: F811
    urls = _pushed(world)
    rounds = Inspections(world.hub)
    opened = rounds.open_round("Chợ Cao Lãnh", TODAY, ["Nguyễn An", " Lê Bình ", ""])
    rid = opened.round.id
    assert rid is not None and opened.round.team == "Nguyễn An, Lê Bình"
    # the token is stored only hashed
    assert opened.inspector_token not in opened.round.token_sha256

    valid = rounds.add_check(rid, token=urls["A1"], found=Found.NONE, today=TODAY)
    a1 = world.a.numbers["A1"]
    assert (valid.verdict, valid.lab_code, valid.number, valid.by) == ("valid", "DT01", a1, "token")
    assert valid.instrument_type  # the certificate's instrument names it

    # the same genuine token on a day after its validity: EXPIRED, as the hub's page says then
    row = world.hub.certificate("DT01", world.a.numbers["A2"])
    assert row is not None and row.valid_until is not None and row.valid_until < LATER
    token_a2 = urls["A2"].rsplit("/", 1)[1]
    expired = rounds.add_check(
        rid, token=token_a2, found="expired", action="lập biên bản / report drawn up", today=LATER
    )
    assert expired.verdict == "expired" == verify_token(world.hub, token_a2, today=LATER).verdict

    # forged: one character of the signature changed; the inspector's finding cannot change it
    forged = token_a2[:-3] + ("A" if token_a2[-3] != "A" else "B") + token_a2[-2:]
    bad = rounds.add_check(rid, token=forged, found="altered", action="tạm giữ / seized")
    assert (bad.verdict, bad.found) == ("not_genuine", "altered")

    # by number and serial, across labs
    b1 = world.b.numbers["B1"]
    serial_b1 = _serial(world, "DT02", b1)
    typed = rounds.add_check(
        rid, number=b1, serial=serial_b1, lab_code="DT02", found="none", today=TODAY
    )
    assert (typed.verdict, typed.lab_code, typed.by) == ("valid", "DT02", "number")
    # each lab numbers its own: A1 and B1 have the same number and the sample's serial
    assert b1 == a1 and _serial(world, "DT01", a1) == serial_b1
    world.b.ledger.revoke(b1, reason="hư hỏng / damaged", at=ISSUED_AT)
    world.push(world.b)
    both = rounds.add_check(rid, number=b1, serial=serial_b1, found="none", today=TODAY)
    assert (both.verdict, both.lab_code) == ("valid", "DT01")
    assert "lab DT02: REVOKED" in both.reasons_json
    only_b = rounds.add_check(
        rid, number=b1, serial=serial_b1, lab_code="DT02", found="other", today=TODAY
    )
    assert only_b.verdict == "revoked"
    # a number the hub holds with a serial that is not its instrument's: a slip as likely as a
    # false paper, so its own verdict, not NOT GENUINE; the reason names what was typed only
    wrong_serial = rounds.add_check(rid, number=b1, serial="NOT-THIS-ONE", found="other")
    assert wrong_serial.verdict == "serial_mismatch"
    assert b1 in wrong_serial.reasons_json and "NOT-THIS-ONE" in wrong_serial.reasons_json
    assert serial_b1 not in wrong_serial.reasons_json  # no oracle for the real serial
    assert wrong_serial.serial == "NOT-THIS-ONE" and wrong_serial.lab_code is None
    unknown = rounds.add_check(
        rid,
        number="KĐ-2026-999999",
        serial="X1",
        found="no_certificate",
        instrument_type="Cân đồng hồ lò xo",
    )
    assert (unknown.verdict, unknown.instrument_type) == ("not_in_hub", "Cân đồng hồ lò xo")

    # bad requests name what was expected
    with pytest.raises(InspectionError, match="expected one of none, no_certificate"):
        rounds.add_check(rid, token=urls["A1"], found="broken")
    with pytest.raises(InspectionError, match=r"QR token .* or by certificate number"):
        rounds.add_check(rid, token=urls["A1"], number=a1, serial="S", found="none")
    with pytest.raises(InspectionError, match="not a certissuer verification URL"):
        rounds.add_check(rid, token="https://example.com/other/page", found="none")
    assert len(rounds.checks([rid])) == 8
    # the year's report counts each verdict apart: the slip is not counted as NOT GENUINE
    verdicts = {
        t.label.split(" / ")[1]: (t.checks, t.violations)
        for t in inspection_report(rounds, TODAY.year).by_verdict
    }
    assert verdicts["SERIAL DOES NOT MATCH"] == (1, 1)
    assert verdicts["NOT GENUINE"] == (1, 1)  # the forged token only
    assert verdicts["VALID"] == (3, 0)
    assert sum(c for c, _ in verdicts.values()) == 8

    rounds.close_round(rid)
    with pytest.raises(InspectionError, match=f"round {rid} is closed"):
        rounds.add_check(rid, token=urls["A1"], found="none")
    with pytest.raises(InspectionError, match="no inspection round 999"):
        rounds.add_check(999, token=urls["A1"], found="none")


def test_the_phone_api_refuses_a_wrong_inspector_token(world: World) -> None:  # noqa: F811
    urls = _pushed(world)
    rounds = Inspections(world.hub)
    mine = rounds.open_round("Siêu thị Sa Đéc", TODAY, ["An"])
    other = rounds.open_round("Chợ Hồng Ngự", TODAY, ["Bình"])
    rid = mine.round.id
    path = f"/api/v1/inspections/{rid}/checks"
    forged = urls["A1"][:-3] + ("A" if urls["A1"][-3] != "A" else "B") + urls["A1"][-2:]
    body = {"token": forged, "found": "none", "verdict": "valid"}

    page = world.client.get(f"/inspect/{rid}")
    assert page.status_code == 200
    assert "Siêu thị Sa Đéc" in page.text and 'type="password"' in page.text
    assert page.text.index("Kiểm tra nhà nước") < page.text.index("State inspection")
    assert 'name="viewport"' in page.text and '<script src="/inspect.js"' in page.text
    assert world.client.get("/inspect.js").status_code == 200
    assert world.client.get("/inspect/999").status_code == 404

    for headers in (
        {},
        {"X-Inspector-Token": ""},
        # one character changed (never to itself: a token may end in "x")
        {
            "X-Inspector-Token": mine.inspector_token[:-1]
            + ("y" if mine.inspector_token[-1] == "x" else "x")
        },
        {"X-Inspector-Token": other.inspector_token},  # another round's token
        {"X-Inspector-Token": mine.round.token_sha256},  # the stored hash is not the token
    ):
        refused = world.client.post(path, json=body, headers=headers)
        assert refused.status_code == 403, headers
        assert "inspector token" in refused.json()["detail"]
    assert rounds.checks([rid]) == []

    ok = world.client.post(path, json=body, headers={"X-Inspector-Token": mine.inspector_token})
    assert ok.status_code == 200, ok.text
    # the page sent "valid": the hub computed and recorded its own verdict
    assert (ok.json()["verdict"], ok.json()["label_en"]) == ("not_genuine", "NOT GENUINE")
    assert [c.verdict for c in rounds.checks([rid])] == ["not_genuine"]
    world.client.cookies.set("inspector", mine.inspector_token)
    by_cookie = world.client.post(
        path, json={"token": urls["A1"], "found": "stamp_missing", "action": "nhắc nhở"}
    )
    world.client.cookies.clear()
    assert by_cookie.status_code == 200 and by_cookie.json()["verdict"] == "valid"
    bad = world.client.post(
        path, json={"found": "none"}, headers={"X-Inspector-Token": mine.inspector_token}
    )
    assert bad.status_code == 400 and "QR token" in bad.json()["detail"]
    a1 = world.a.numbers["A1"]
    slip = TestClient(create_hub_app(world.hub, today=lambda: TODAY)).post(
        path,
        json={"number": a1, "serial": "SAI-SO", "found": "none", "lab_code": "DT01"},
        headers={"X-Inspector-Token": mine.inspector_token},
    )
    assert slip.status_code == 200, slip.text
    assert (slip.json()["verdict"], slip.json()["label_en"]) == (
        "serial_mismatch",
        "SERIAL DOES NOT MATCH",
    )
    assert slip.json()["serial"] == "SAI-SO"  # the typed one, never the hub's

    rounds.close_round(rid)  # a closed round's token stops working
    closed = world.client.post(path, json=body, headers={"X-Inspector-Token": mine.inspector_token})
    assert closed.status_code == 403
    assert len(rounds.checks([rid])) == 3

    # the hub's rate limit covers the phone API
    slow = TestClient(create_hub_app(world.hub, today=lambda: TODAY, rate_per_minute=1))
    path2 = f"/api/v1/inspections/{other.round.id}/checks"
    codes = [
        slow.post(path2, json=body, headers={"X-Inspector-Token": "guess"}).status_code
        for _ in range(3)
    ]
    assert codes[0] == 403 and codes[-1] == 429


def test_the_years_report_counts_and_is_signed(
    world: World,  # noqa: F811
    dept_pki: KeyPaths,
    tmp_path: Path,
) -> None:
    from openpyxl import load_workbook
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    urls = _pushed(world)
    rounds = Inspections(world.hub)
    b1 = world.b.numbers["B1"]
    plan = [
        ("Chợ Cao Lãnh", date(2026, 3, 2), [("A1", "none"), ("A2", "stamp_missing")]),
        ("Chợ Cao Lãnh", date(2026, 9, 9), [("B1", "none"), (None, "no_certificate")]),
        ("Siêu thị Sa Đéc", date(2026, 11, 20), [("A1", "altered"), ("A2", "expired")]),
        ("Chợ Hồng Ngự", date(2025, 6, 1), [("A1", "other")]),  # another year
    ]
    for place, on, checks in plan:
        rid = rounds.open_round(place, on, ["An", "Bình"]).round.id
        assert rid is not None
        for ref, found in checks:
            if ref == "B1":
                rounds.add_check(
                    rid, number=b1, serial=_serial(world, "DT02", b1), found=found, today=TODAY
                )
            elif ref is None:
                rounds.add_check(
                    rid,
                    number="KĐ-2026-424242",
                    serial="Z9",
                    found=found,
                    instrument_type="Cột đo xăng dầu",
                    today=TODAY,
                )
            else:
                rounds.add_check(rid, token=urls[ref], found=found, today=TODAY)

    # counted independently from the plan
    year = [(p, f) for p, on, cs in plan if on.year == 2026 for _, f in cs]
    by_place = Counter(p for p, _ in year)
    bad_by_place = Counter(p for p, f in year if f != "none")
    by_found = Counter(f for _, f in year)

    report = inspection_report(rounds, 2026)
    assert (report.rounds, report.checks, report.violations) == (3, 6, 4)
    assert {t.label: (t.checks, t.violations) for t in report.by_place} == {
        p: (by_place[p], bad_by_place[p]) for p in by_place
    }
    found = {t.label.split(" / ")[1]: t.checks for t in report.by_found}
    assert found["No violation"] == by_found["none"] == 2
    assert found["Stamp missing"] == found["Certificate altered"] == found["No certificate"] == 1
    assert found["Certificate expired"] == 1 and found["Other"] == 0
    verdicts = {t.label.split(" / ")[1]: (t.checks, t.violations) for t in report.by_verdict}
    # A1 valid (none, altered), A2 valid on TODAY (stamp_missing, expired), B1 valid (none),
    # the typed unknown number not in the hub (no_certificate)
    assert verdicts["VALID"] == (5, 3)
    assert verdicts["NOT IN THE REGISTER OF THE HUB"] == (1, 1)
    types = {t.label: (t.checks, t.violations) for t in report.by_type}
    assert types["Cột đo xăng dầu"] == (1, 1)
    assert sum(c for c, _ in types.values()) == 6

    xlsx = tmp_path / "kiem-tra-2026.xlsx"
    write_xlsx(report, xlsx)
    book = load_workbook(xlsx)
    rows = {r[0]: r[1:] for r in book["Dia diem"].iter_rows(min_row=2, values_only=True)}
    assert rows == {p: (by_place[p], bad_by_place[p]) for p in by_place}
    summary = {r[0]: r[1] for r in book["Tong hop"].iter_rows(values_only=True)}
    assert summary["Số vi phạm / Violations"] == 4
    kinds = {r[0]: r[1] for r in book["Vi pham"].iter_rows(min_row=2, values_only=True)}
    assert kinds["Không có tem kiểm định / Stamp missing"] == 1

    sealer = Sealer.from_pkcs12(dept_pki.signer_p12, PASSPHRASE)
    pdf = render_pdf(
        report,
        department=Department("Sở Khoa học và Công nghệ Đồng Tháp", "Department of S&T"),
        sealer=sealer,
        issued_on=date(2026, 12, 4),
    )
    out = tmp_path / "kiem-tra-2026.pdf"
    out.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert text.index("BÁO CÁO KẾT QUẢ KIỂM TRA") < text.index("REPORT ON THE STATE")
    assert re.search(r"Chợ Cao Lãnh\s+4\s+2", text), text
    assert re.search(r"Siêu thị Sa Đéc\s+2\s+2", text)
    assert "Chợ Hồng Ngự" not in text  # 2025 is not counted
    assert re.search(r"Cột đo xăng dầu\s+1\s+1", text)
    assert "Trần Thị Thanh Tra" in text
    fonts = subprocess.run(
        ["pdffonts", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "BeVietnamPro" in fonts and all(
        " yes " in line for line in fonts.splitlines()[2:] if line.strip()
    )

    reader = PdfFileReader(io.BytesIO(pdf))
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(dept_pki.ca_cert))])
    status = validate_pdf_signature(reader.embedded_signatures[0], ctx)
    assert status.bottom_line, status.pretty_print_details()
    assert str(reader.trailer["/Info"]["/" + INFO_DIGEST_KEY]) == f"6 {report.digest}"
    # a lab's key is not the Department's: the same PDF signed by it does not validate here
    lab_signed = render_pdf(
        report,
        department=Department(),
        sealer=Sealer.from_pkcs12(world.a.keys.signer_p12, PASSPHRASE),
    )
    lab_status = validate_pdf_signature(
        PdfFileReader(io.BytesIO(lab_signed)).embedded_signatures[0], ctx
    )
    assert not lab_status.bottom_line


def test_cli_open_add_close_and_report(
    world: World,  # noqa: F811
    any_ledger_url: str,
    dept_pki: KeyPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = _pushed(world)
    runner = CliRunner()
    db = ["--db", any_ledger_url]
    opened = runner.invoke(
        cli_app,
        ["hub", "inspect", "open", "--place", "Chợ Cao Lãnh", "--date", "2026-12-04",
         "--team", "An, Bình", "--url", "https://hub.test.invalid", *db],
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    rid = re.search(r"round (\d+) opened", opened.output).group(1)  # type: ignore[union-attr]
    token = re.search(r"inspector token .*: (\S+)", opened.output).group(1)  # type: ignore[union-attr]
    assert f"/inspect/{rid}#t={token}" in opened.output

    added = runner.invoke(
        cli_app,
        ["hub", "inspect", "add", rid, "--token", urls["A1"], "--found", "stamp_missing",
         "--action", "nhắc nhở / warned", *db],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "HỢP LỆ / VALID" in added.output
    bad = runner.invoke(
        cli_app, ["hub", "inspect", "add", rid, "--number", "X", "--found", "lost", *db]
    )
    assert bad.exit_code == 2 and "expected one of none" in bad.output
    assert runner.invoke(cli_app, ["hub", "inspect", "close", rid, *db]).exit_code == 0
    baddate = runner.invoke(
        cli_app,
        ["hub", "inspect", "open", "--place", "X", "--date", "4/12/2026", "--team", "A", *db],
    )
    assert baddate.exit_code == 2 and "--date: expected a date as YYYY-MM-DD" in baddate.output

    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    pdf, xlsx = tmp_path / "r.pdf", tmp_path / "r.xlsx"
    made = runner.invoke(
        cli_app,
        ["hub", "report", "inspections", "--year", "2026", "--out", str(pdf), "--xlsx",
         str(xlsx), "--pkcs12", str(dept_pki.signer_p12), *db],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "1 rounds, 1 instruments checked, 1 violations" in made.output
    assert pdf.read_bytes().startswith(b"%PDF") and xlsx.stat().st_size > 0


def test_a_round_recorded_through_the_phone_page_in_chromium(
    world: World,  # noqa: F811
    any_ledger_url: str,
    tmp_path: Path,
) -> None:
    import threading

    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from .test_web_browser import CHROMEDRIVER, CHROMIUM, PHONE, _require_browser

    if not any_ledger_url.startswith("sqlite"):
        pytest.skip("the browser run is the same on either database: SQLite only")
    _require_browser()
    urls = _pushed(world)
    rounds = Inspections(world.hub)
    opened = rounds.open_round("Chợ Cao Lãnh", TODAY, ["An", "Bình"])
    rid = opened.round.id
    server = uvicorn.Server(
        uvicorn.Config(
            create_hub_app(world.hub, today=lambda: TODAY),
            host="127.0.0.1",
            port=0,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    WebDriverWait(None, 30, poll_frequency=0.1).until(lambda _: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",  # we run as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "mobileEmulation",
        {"deviceMetrics": {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 1}},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        browser.set_page_load_timeout(30)
        browser.get(f"{base}/inspect/{rid}#t={opened.inspector_token}")
        wait = WebDriverWait(browser, 20)
        # the token moved from the address bar to the form (the fragment never reaches the hub)
        wait.until(lambda b: "#t=" not in b.current_url)
        field = browser.find_element(By.ID, "inspector")
        assert field.get_attribute("value") == opened.inspector_token

        def record(expect: str, **values: str) -> str:
            for name, value in values.items():
                if name == "found":
                    Select(browser.find_element(By.ID, "found")).select_by_value(value)
                else:
                    box = browser.find_element(By.ID, name)
                    box.clear()
                    box.send_keys(value)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait.until(lambda b: expect in b.find_element(By.ID, "result").text)
            return str(browser.find_element(By.ID, "result").text)

        shown = record("HỢP LỆ / VALID", token=urls["A1"], found="stamp_missing", action="nhắc")
        assert world.a.numbers["A1"] in shown
        b1 = world.b.numbers["B1"]
        record(
            "HỢP LỆ / VALID",
            number=b1,
            serial=_serial(world, "DT02", b1),
            lab_code="DT02",
            found="none",
        )
        field.clear()
        field.send_keys("not-the-token")
        record("inspector token", token=urls["A1"], found="none")
        errors = [
            e["message"]
            for e in browser.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
        ]
        assert errors == []
    finally:
        browser.quit()
        server.should_exit = True
        thread.join(20)
    checks = rounds.checks([rid] if rid is not None else [])
    assert [(c.verdict, c.found, c.by) for c in checks] == [
        ("valid", "stamp_missing", "token"),
        ("valid", "none", "number"),
    ]
    assert checks[1].lab_code == "DT02"


def test_report_refuses_a_department_key_whose_revocation_cannot_be_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub has no lab profile: the refusal names the hub's own switch, and a refused run
    leaves no file behind (not even the XLSX)."""
    from certissuer.keys import Person, Role

    port = _closed_port()
    pki = make_keys(
        tmp_path / "dept",
        passphrase=PASSPHRASE,
        organisation="Sở KH&CN Đồng Tháp",
        signer_name=None,
        people=[Person("Trần Thị Thanh Tra", (Role.SIGNATORY,))],
        services_url=f"http://127.0.0.1:{port}",  # nothing answers: no CRL, no OCSP
    )
    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    p12 = pki.people[0].pkcs12
    db = ["--db", f"sqlite:///{tmp_path / 'hub.db'}"]
    runner = CliRunner()
    for command in ("inspections", "annual"):
        pdf, xlsx = tmp_path / f"{command}.pdf", tmp_path / f"{command}.xlsx"
        args = ["hub", "report", command, "--year", "2026", "--out", str(pdf), "--xlsx",
                str(xlsx), "--pkcs12", str(p12), *db]  # fmt: skip
        refused = runner.invoke(cli_app, args)
        assert refused.exit_code == 5, refused.output
        assert "is not revoked" in refused.output
        assert "--no-revocation-check" in refused.output
        assert "[signing] revocation_check" not in refused.output
        assert not pdf.exists() and not xlsx.exists()
        made = runner.invoke(cli_app, [*args, "--no-revocation-check"])
        assert made.exit_code == 0, made.output
        assert b"/ByteRange" in pdf.read_bytes() and xlsx.stat().st_size > 0


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
