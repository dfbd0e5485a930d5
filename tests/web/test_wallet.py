"""The wallet in real headless Chromium: the online code's QR, read by zxing-cpp from a
screenshot, pays at the till; the page refreshes the code before it expires; it fits a
360 px wide screen."""

from __future__ import annotations

import io
import re
import time

import pytest
import zxingcpp
from paytoken.backend.store.models import Payment
from PIL import Image
from sqlalchemy import select
from stdnum import damm

from .site import WALLET_TOKEN
from .test_browser import _login, _scan

# The tests of this file share one server and browser page and run in order (the refund
# refunds the payment the scan made): one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("web-wallet")


@pytest.fixture(scope="module")
def phone(site, chromium):
    # a 360 px wide phone screen (CSS pixels), in the same browser
    page = chromium.new_page()
    page.set_viewport_size({"width": 360, "height": 780})
    _login(page, site, "wallet", site.wallet_key)
    yield page
    page.close()


def _read_qr(page) -> str:
    png = page.locator("#qr svg").screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return found[0].text


def test_wallet_qr_read_from_a_screenshot_pays_at_the_till(site, phone, chromium):
    code = _read_qr(phone)
    assert re.fullmatch(r"[0-9]{18}", code) and damm.is_valid(code)
    assert code.startswith("71")  # the online scheme's prefix
    assert phone.inner_text("#digits").replace(" ", "") == code
    balance = site.backend.token_info(WALLET_TOKEN)["balance"]
    assert f"{balance // 100}.{balance % 100:02d}" in phone.inner_text(".balance")

    till = chromium.new_page()
    _login(till, site, "till", site.merchant_key)
    till.fill("input[name=amount]", "7.25")
    _scan(till, code)
    assert till.inner_text("#result").startswith("Approved")
    assert site.backend.token_info(WALLET_TOKEN)["balance"] == balance - 725
    with site.backend.engine.connect() as c:
        row = c.execute(select(Payment.token_id, Payment.amount).where(Payment.status == "succeeded")
                        .order_by(Payment.created_at.desc()).limit(1)).first()
    assert tuple(row) == (WALLET_TOKEN, 725)
    till.fill("input[name=amount]", "7.25")
    _scan(till, code)  # an online code pays once
    # the page still shows the first result until the second POST's page replaces it
    till.wait_for_selector("#result.declined")
    assert till.inner_text("#result").startswith("Declined")
    till.close()

    phone.reload()
    assert "Corner shop" in phone.inner_text("table.wallet-list")
    assert _read_qr(phone) != code  # a fresh code on each visit
    assert site.wallet_key not in phone.content() and site.wallet_key not in phone.url


def test_wallet_refreshes_the_code_before_it_expires(site, phone):
    t0 = time.monotonic()
    phone.reload()
    first = phone.inner_text("#digits")
    left = int(phone.get_attribute("#expiry", "data-left"))
    assert 0 < left <= 30  # the test server's PAYTOKEN_WALLET_CODE_TTL
    phone.wait_for_function("d => document.getElementById('digits').textContent !== d", arg=first,
                            timeout=(left + 60) * 1000)
    elapsed = time.monotonic() - t0  # at least the time since the server made the first code
    second = phone.inner_text("#digits").replace(" ", "")
    assert damm.is_valid(second) and second != first.replace(" ", "")
    assert elapsed < left  # replaced before it expired: the code on screen is always good
    assert _read_qr(phone) == second


def test_wallet_fits_a_360_px_screen(phone):
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360
    box = phone.locator("#qr svg").bounding_box()
    assert 200 <= box["width"] <= 340 and box["x"] >= 0 and box["x"] + box["width"] <= 360
