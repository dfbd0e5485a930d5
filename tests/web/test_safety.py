"""The pages' safety over plain HTTP against a real server: CSRF on every form, the
content security policy, cookie flags, no key in a page, URL, cookie or log, the API's
throttle on logins, sessions that expire (the sealed cookie, with an injected clock)."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
import pytest
from backend.conftest import Server
from paytoken.backend.store.models import Payment
from paytoken.web.pages import CSP, parse_amount
from paytoken.web.session import CONSOLE, PRE_LOGIN_S, TILL, Sessions
from sqlalchemy import func, select
from waits import bound

from .site import TILL_TOKEN

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _client(site) -> httpx.Client:
    return httpx.Client(base_url=site.url, timeout=bound(30), follow_redirects=False)


def _csrf(r: httpx.Response) -> str:
    return CSRF.search(r.text)[1]


def _login(c: httpx.Client, area: str, key: str) -> httpx.Response:
    token = _csrf(c.get(f"/{area}"))
    return c.post(f"/{area}/login", data={"csrf": token, "key": key})


def _payments(site) -> int:
    with site.backend.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Payment.__table__)).scalar()


@pytest.mark.parametrize("path", ["/till", "/console", "/static/app.css", "/static/till.js"])
def test_csp_and_hardening_headers(site, path):
    r = httpx.get(site.url + path, timeout=bound(30))
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


def test_pages_are_not_in_the_api_schema(site):
    paths = httpx.get(site.url + "/openapi.json", timeout=bound(30)).json()["paths"]
    assert not [p for p in paths if p.startswith(("/till", "/console", "/wallet", "/static"))]


def test_login_keeps_the_key_out_of_page_url_cookie_and_log(site):
    with _client(site) as c:
        r = _login(c, "till", site.merchant_key)
        assert r.status_code == 303 and r.headers["location"] == "/till"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("pt_till=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/till" in cookie and "Secure" not in cookie  # plain http on loopback
        page = c.get("/till")
        assert page.status_code == 200 and "Corner shop" in page.text
        assert site.merchant_key not in page.text and site.merchant_key not in str(page.url)
        assert site.merchant_key not in c.cookies["pt_till"]
        assert page.headers["cache-control"] == "no-store"
        r = _login(c, "console", site.admin_key)
        assert r.status_code == 303 and site.admin_key not in r.headers["set-cookie"]
        page = c.get("/console")
        assert "ops" in page.text and site.admin_key not in page.text
    log = site.server.log()
    assert site.merchant_key not in log and site.admin_key not in log
    assert "POST /till/login" in log  # the log is on, and has no key in it


def test_secure_cookie_over_https(site):
    # uvicorn takes the scheme from a trusted proxy's X-Forwarded-Proto (loopback by default).
    with _client(site) as c:
        r = c.get("/till", headers={"X-Forwarded-Proto": "https"})
        assert "; Secure" in r.headers["set-cookie"]


def test_forms_without_the_csrf_token_are_refused(site):
    with _client(site) as c:
        c.get("/till")
        r = c.post("/till/login", data={"key": site.merchant_key})
        assert r.status_code == 403 and "security token" in r.text
        assert "pt_till" not in r.headers.get("set-cookie", "")
        assert _login(c, "till", site.merchant_key).status_code == 303
        token = _csrf(c.get("/till"))
        code = site.fresh_code(TILL_TOKEN)
        n = _payments(site)
        form = {"amount": "1.00", "currency": "CNY", "code": code, "order": "till-00000000000000aa"}
        assert c.post("/till/pay", data=form).status_code == 403
        assert c.post("/till/pay", data=dict(form, csrf="x" + token[1:])).status_code == 403
        # the right token from another site's page (a browser sends its Origin): refused
        assert c.post("/till/pay", data=dict(form, csrf=token),
                      headers={"Origin": "http://evil.example"}).status_code == 403
        assert c.post("/till/pay", json=dict(form, csrf=token)).status_code == 415
        assert _payments(site) == n
        ok = c.post("/till/pay", data=dict(form, csrf=token), headers={"Origin": site.url})
        assert ok.status_code == 200 and "Approved" in ok.text
        assert _payments(site) == n + 1
        again = c.post("/till/pay", data=dict(form, csrf=token))  # the same form again: same order
        assert "Approved" in again.text and _payments(site) == n + 1
        for path in ("/till/refund", "/till/logout"):
            assert c.post(path, data={"payment_id": "pay_" + "0" * 24}).status_code == 403
        _login(c, "console", site.admin_key)
        token = _csrf(c.get("/console"))
        for path, data in (("/console/tokens/1001/revoke", {"confirm": "yes"}),
                           ("/console/tokens/1001/lock", {"confirm": "yes"}),
                           ("/console/merchants/add", {"name": "x"}),
                           ("/console/merchants/1/rotate", {"confirm": "yes"})):
            assert c.post(path, data=data).status_code == 403
            assert c.post(path, data=dict(data, csrf=token + "0")).status_code == 403
        assert site.backend.token_info(1001)["status"] == "active"
        # with the token, the same action goes through
        assert c.post("/console/tokens/1001/lock", data={"confirm": "yes", "csrf": token}).status_code == 200
        assert site.backend.token_info(1001)["status"] == "locked"
        site.backend.unlock(1001, "cli")


def test_new_merchant_key_is_a_one_time_download(site):
    with _client(site) as c:
        _login(c, "console", site.admin_key)
        token = _csrf(c.get("/console/merchants"))
        r = c.post("/console/merchants/add", data={"csrf": token, "name": "Tea house"})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert r.headers["content-disposition"].startswith("attachment;")
        key = r.text.strip().splitlines()[-1]
        assert site.backend.auth_merchant(key) is not None
        listing = c.get("/console/merchants")
        assert "Tea house" in listing.text and key not in listing.text
    assert key not in site.server.log()


def test_wrong_keys_meet_the_api_throttle(tmp_path, site):
    # Its own server, with a bad-key burst of 3 (PAYTOKEN_BAD_KEY_BURST, as the API uses).
    db = site.backend.engine.url.render_as_string(hide_password=False)
    server = Server(db, site.master_hex, tmp_path / "s.log", env={"PAYTOKEN_BAD_KEY_BURST": "3"})
    try:
        with httpx.Client(base_url=server.url, timeout=bound(30)) as c:
            answers = [_login(c, "console", f"wrong-{i}").status_code for i in range(5)]
            assert answers[:3] == [401, 401, 401] and answers[3:] == [429, 429]
            page = _login(c, "console", "wrong-again")
            assert "Too many wrong keys" in page.text and "wait" in page.text
            assert _login(c, "console", site.admin_key).status_code == 303  # a good key still works
    finally:
        server.stop()


def test_sessions_expire_idle_and_absolute():
    clock = type("C", (), {"t": 1_000_000.0, "__call__": lambda self: self.t})()
    s = Sessions(b"k" * 32, clock)
    live = s.new(key="sk_live_x", subject="shop")
    sealed = s.seal(TILL, live)
    assert s.open(TILL, sealed).key == "sk_live_x"
    assert s.open(CONSOLE, sealed) is None  # sealed to its area
    assert s.open(TILL, sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]) is None
    assert Sessions(b"j" * 32, clock).open(TILL, sealed) is None  # another server key
    clock.t += TILL.idle_s + 1
    assert s.open(TILL, sealed) is None  # idle too long
    clock.t = 1_000_000.0
    while clock.t - live.born <= TILL.max_s:  # a page each half idle time renews it...
        assert s.open(TILL, s.seal(TILL, live)) is not None
        clock.t += TILL.idle_s // 2
        live = replace(live, seen=int(clock.t))
    assert s.open(TILL, s.seal(TILL, live)) is None  # ...until the absolute lifetime ends
    clock.t = 2_000_000.0
    pre = s.new()
    clock.t += PRE_LOGIN_S + 1
    assert s.open(TILL, s.seal(TILL, pre)) is None


@pytest.mark.parametrize("text,minor", [("12.50", 1250), ("12,5", 1250), ("12", 1200), (" 0.01 ", 1),
                                        ("1000000.00", 100_000_000)])
def test_amounts_in_major_units(text, minor):
    assert parse_amount(text) == minor


@pytest.mark.parametrize("text", ["", "0", "0.00", "12.505", "1,234.50", "-1", "1e3", "12.", ".5", "١٢"])
def test_bad_amounts_say_how_to_write_them(text):
    from paytoken.web.pages import FormError

    with pytest.raises(FormError, match="amount"):
        parse_amount(text)


def test_rotating_a_merchant_key_ends_its_till_sessions(site):
    with _client(site) as admin, _client(site) as till:
        mid, key = site.backend.add_merchant("Kiosk")
        assert _login(till, "till", key).status_code == 303
        assert "Kiosk" in till.get("/till").text
        _login(admin, "console", site.admin_key)
        token = _csrf(admin.get("/console/merchants"))
        ask = admin.post(f"/console/merchants/{mid}/rotate", data={"csrf": token})
        assert ask.status_code == 200 and "Please confirm" in ask.text  # nothing happens yet
        assert site.backend.auth_merchant(key) == mid
        r = admin.post(f"/console/merchants/{mid}/rotate", data={"csrf": token, "confirm": "yes"})
        new = r.text.strip().splitlines()[-1]
        assert r.headers["content-disposition"] == f'attachment; filename="paytoken-merchant-{mid}.key"'
        site.backend.forget_merchant_keys()  # this test's Backend caches keys as a server does
        assert site.backend.auth_merchant(key) is None and site.backend.auth_merchant(new) == mid
        page = till.get("/till")  # the old key's session is over
        assert 'type="password"' in page.text and "Kiosk" not in page.text
        r = admin.post(f"/console/merchants/{mid}/revoke", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 200 and f"Merchant #{mid} is revoked" in r.text
        site.backend.forget_merchant_keys()
        assert site.backend.auth_merchant(new) is None
