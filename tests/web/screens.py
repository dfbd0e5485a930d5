"""Take the pages' screenshots for the docs (docs/screens/web-*.png) in real Chromium,
against a real site (tests/web/site.py). By hand, after changing a page::

    .venv/bin/python tests/web/screens.py docs/screens
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from web.site import DRIFT_TOKEN, Site, browser  # noqa: E402


def scan(page, code: str) -> None:
    page.locator("input[name=code]").click()
    page.keyboard.type(code, delay=8)
    page.keyboard.press("Enter")
    page.wait_for_load_state()


def till(page, site: Site, out: Path) -> None:
    page.goto(site.url + "/till")
    page.fill("input[type=password]", site.merchant_key)
    page.keyboard.press("Enter")
    page.wait_for_selector("input[name=amount]")
    for amount in ("4.20", "18.00"):
        page.fill("input[name=amount]", amount)
        scan(page, site.fresh_code())
    page.fill("input[name=amount]", "12.50")
    code = site.fresh_code()
    scan(page, code)
    page.wait_for_selector("#result")
    page.screenshot(path=str(out / "web-till.png"), full_page=True)
    page.fill("input[name=amount]", "12.50")
    scan(page, code)
    page.screenshot(path=str(out / "web-till-declined.png"), full_page=True)
    page.fill("input[name=amount]", "3.00")
    page.locator("input[name=code]").click()
    wrong = code[:5] + str((int(code[5]) + 1) % 10) + code[6:]
    page.keyboard.type(wrong, delay=8)
    page.screenshot(path=str(out / "web-till-mistyped.png"), full_page=True)


def console(page, site: Site, out: Path) -> None:
    page.goto(site.url + "/console")
    page.fill("input[type=password]", site.admin_key)
    page.keyboard.press("Enter")
    page.wait_for_selector("table.list")
    page.screenshot(path=str(out / "web-console-tokens.png"), full_page=True)
    page.goto(f"{site.url}/console/tokens/{DRIFT_TOKEN}")
    page.screenshot(path=str(out / "web-console-token.png"), full_page=True)
    page.goto(site.url + "/console/payments")
    page.screenshot(path=str(out / "web-console-payments.png"))
    page.goto(site.url + "/console/merchants")
    page.screenshot(path=str(out / "web-console-merchants.png"), full_page=True)
    page.goto(site.url + "/console/audit")
    page.screenshot(path=str(out / "web-console-audit.png"), full_page=True)


def wallet(page, site: Site, out: Path) -> None:
    mid = site.backend.auth_merchant(site.merchant_key)
    for i, amount in enumerate((860, 2_340)):  # two online codes paid at the till
        (c,) = site.backend.online_codes(site.wallet_key)
        assert site.backend.pay(mid, c["code"], amount, "CNY", f"wallet-shot-{i}")["status"] == "succeeded"
    page.set_viewport_size({"width": 360, "height": 780})  # a phone
    page.goto(site.url + "/wallet")
    page.fill("input[type=password]", site.wallet_key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#qr svg")
    page.screenshot(path=str(out / "web-wallet.png"), full_page=True)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="paytoken-screens-"))
    site = Site.build(tmp, os.urandom(32).hex())
    try:
        with browser(tmp / "profile", width=1200, height=800) as ctx:
            page = ctx.new_page()
            till(page, site, out)
            console(page, site, out)
            wallet(ctx.new_page(), site, out)
    finally:
        site.stop()
    for p in sorted(out.glob("web-*.png")):
        print(p)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screens"))
