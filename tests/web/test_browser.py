"""The till and the console in real headless Chromium (Debian's, driven by Playwright)
against a real ``paytoken serve`` on a real database, with codes from the token's secret."""

from __future__ import annotations

import random

import paycode
import pytest
from paytoken.backend.store.models import AuditLog, Payment, Refund
from sqlalchemy import func, select
from stdnum import damm as stdnum_damm

from .site import DRIFT_TOKEN, SPARE_TOKEN, TILL_TOKEN

# The tests of this file share one server and browser page and run in order (the refund
# refunds the payment the scan made): one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("web-till")


def _count(site, table, *where) -> int:
    with site.backend.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*where)).scalar()


def _login(page, site, area: str, key: str) -> None:
    page.goto(f"{site.url}/{area}")
    if page.locator("header .subject").count():  # this browser's session is still open
        return
    box = page.locator("input[type=password]")
    assert box.get_attribute("name") == "key"
    box.fill(key)
    page.keyboard.press("Enter")
    page.wait_for_selector("header .subject", state="attached")  # hidden on a phone
    assert key not in page.content() and key not in page.url


def _scan(page, code: str) -> None:
    # A keyboard-wedge scanner: the digits as fast keystrokes into the focused field, then Enter.
    page.locator("input[name=code]").click()
    page.keyboard.type(code, delay=5)
    page.keyboard.press("Enter")


@pytest.fixture(scope="module")
def till(site, chromium):
    page = chromium.new_page()
    _login(page, site, "till", site.merchant_key)
    yield page
    page.close()


def test_scanned_code_pays_and_the_same_code_is_then_declined(site, till):
    page = till
    code = site.fresh_code(TILL_TOKEN)
    before = site.backend.token_info(TILL_TOKEN)["balance"]
    page.fill("input[name=amount]", "12.50")
    _scan(page, code)
    result = page.wait_for_selector("#result")
    assert result.inner_text().startswith("Approved"), result.inner_text()
    assert site.backend.token_info(TILL_TOKEN)["balance"] == before - 1250
    assert _count(site, Payment.__table__, Payment.token_id == TILL_TOKEN, Payment.amount == 1250,
                  Payment.status == "succeeded") == 1
    row = page.locator("section.today tbody tr").first
    assert "12.50" in row.inner_text() and "approved" in row.inner_text()

    page.fill("input[name=amount]", "12.50")
    _scan(page, code)
    page.wait_for_selector("#result.declined")
    text = page.inner_text("#result")
    assert text.startswith("Declined") and "already used" in text and "CODE_REPLAYED" in text
    assert site.backend.token_info(TILL_TOKEN)["balance"] == before - 1250


def test_mistyped_digit_is_flagged_before_anything_is_sent(site, till):
    page = till
    page.goto(site.url + "/till")
    code = paycode.payment_code(b"\x07" * 20, TILL_TOKEN, 1_800_000_000, site.scheme_key)
    wrong = code[:7] + str((int(code[7]) + 3) % 10) + code[8:]  # Damm catches every single-digit error
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    n = _count(site, Payment.__table__)
    page.fill("input[name=amount]", "3.00")
    _scan(page, wrong)
    page.wait_for_selector("#codecheck.bad")
    assert "Check digit wrong" in page.inner_text("#codecheck")
    assert page.get_attribute("input[name=code]", "aria-invalid") == "true"
    page.wait_for_timeout(500)  # a submission would have started by now
    assert sent == [] and _count(site, Payment.__table__) == n
    assert page.locator("#result").count() == 0

    # Typed by a person in groups of four: grouped as typed, and the right check passes.
    page.fill("input[name=code]", "")
    page.locator("input[name=code]").click()
    page.keyboard.type(paycode.group4(code), delay=5)
    assert page.input_value("input[name=code]") == paycode.group4(code)
    assert "check digit right" in page.inner_text("#codecheck")
    page.fill("input[name=code]", "")
    page.keyboard.type(code[:11])
    assert page.inner_text("#codecheck") == "11 of 18 digits"
    assert sent == []


def test_page_check_digit_agrees_with_python_stdnum(till):
    # The till's JavaScript Damm against an independent implementation (python-stdnum).
    rng = random.Random(13)
    cases = ["".join(rng.choice("0123456789") for _ in range(rng.randint(1, 18))) for _ in range(300)]
    got = till.evaluate("cs => cs.map(c => PaytokenDamm.check(c))", cases)
    assert got == [stdnum_damm.checksum(c) for c in cases]


def test_refund_from_the_till_is_idempotent(site, till, chromium):
    # Two tabs at the confirmation of one refund, both confirmed: it is refunded once.
    pages = [till, chromium.new_page()]
    for page in pages:
        page.goto(site.url + "/till")
        row = page.locator("section.today tbody tr", has_text="approved").first
        row.locator("button", has_text="Refund").click()
        page.wait_for_selector("#confirm")
        assert "Refund 12.50 CNY" in page.inner_text(".question")
    pid = pages[0].input_value("input[name=payment_id]")
    assert pages[1].input_value("input[name=payment_id]") == pid
    before = site.backend.token_info(TILL_TOKEN)["balance"]
    for page in pages:
        page.click("#confirm")
        page.wait_for_selector(".flash.good")
        assert "Refunded 12.50 CNY" in page.inner_text(".flash.good")
    assert _count(site, Refund.__table__, Refund.payment_id == pid) == 1
    assert site.backend.token_info(TILL_TOKEN)["balance"] == before + 1250
    assert "refunded 12.50" in pages[0].inner_text("section.today")
    pages[1].close()


def test_console_shows_the_drift_chart_and_revokes_after_confirmation(site, chromium):
    page = chromium.new_page()
    _login(page, site, "console", site.admin_key)
    page.fill("input[name=id]", str(DRIFT_TOKEN))
    page.keyboard.press("Enter")
    page.wait_for_selector("svg.chart")
    assert page.url.endswith(f"/console/tokens/{DRIFT_TOKEN}")
    chart = page.locator("#drift svg.chart")
    assert chart.locator("circle.obs").count() == 60  # one dot per accepted payment
    assert chart.locator("polyline.model").count() == 2  # the learned offset and rate
    assert "offset, s ahead" in chart.inner_html() and "rate, ppm" in chart.inner_html()
    box = chart.bounding_box()
    assert box["width"] > 600 and box["height"] > 300  # drawn, not an empty element
    info = site.backend.token_info(DRIFT_TOKEN)
    assert f"{info['drift_ppm']:+.1f} ppm" in page.inner_text("dl.facts")
    assert "Corner shop" in page.inner_text("section.card:has(h2:text('Last payment'))")

    page.goto(f"{site.url}/console/tokens/{SPARE_TOKEN}")
    page.click("#act-lock")
    page.wait_for_selector("#confirm")
    page.click("text=Cancel")  # no confirmation, no change
    page.wait_for_selector("#status")
    assert site.backend.token_info(SPARE_TOKEN)["status"] == "active"
    page.click("#act-revoke")
    page.wait_for_selector("#confirm")
    assert "This is final" in page.inner_text(".question")
    page.click("#confirm")
    page.wait_for_selector(".flash.good")
    assert page.inner_text("#status") == "revoked"
    assert site.backend.token_info(SPARE_TOKEN)["status"] == "revoked"
    assert _count(site, AuditLog.__table__, AuditLog.action == "TOKEN_REVOKED",
                  AuditLog.token_id == SPARE_TOKEN, AuditLog.actor == "admin:ops") == 1
    page.close()


def test_console_limits_payments_csv_and_audit(site, chromium):
    page = chromium.new_page()
    _login(page, site, "console", site.admin_key)
    page.goto(f"{site.url}/console/tokens/1002")
    page.fill("input[name=limit_per_payment]", "25.50")
    page.fill("input[name=limit_per_day]", "")
    page.click("#act-limits")
    page.wait_for_selector("#confirm")
    page.click("#confirm")
    page.wait_for_selector(".flash.good")
    info = site.backend.token_info(1002)
    assert (info["limit_per_payment"], info["limit_per_day"]) == (2550, None)

    page.goto(f"{site.url}/console/payments?token_id={DRIFT_TOKEN}")
    assert page.locator("table.list tbody tr").count() == 50  # a page; 60 in all
    with page.expect_download() as dl:
        page.click("#csv")
    lines = open(dl.value.path(), encoding="utf-8").read().splitlines()
    assert lines[0].startswith("payment_id,created_at,") and len(lines) == 61
    assert all(f",{DRIFT_TOKEN}," in line for line in lines[1:])

    page.goto(site.url + "/console/audit")
    assert page.inner_text("#audit").startswith("Verified")
    page.close()
