"""Online codes end to end over HTTP (a real ``paytoken serve``, SQLite and PostgreSQL):
single use, expiry, revocation (token and wallet key), races, count bounds, wallet keys,
limits, and the database holding no code in clear. The wallet key comes from the real CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import paycode
import pytest
from paytoken.backend import rules
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine
from sqlalchemy import MetaData, select
from waits import bound

from .conftest import SECRET, Server, assert_bad_keys_throttled

ONLINE = "71"


@pytest.fixture
def wallet(db_url, ring, master_hex, tmp_path):
    """Offline scheme 81, online scheme 71, token 42 (funded), a merchant, an admin, the
    token's wallet key from ``paytoken account wallet-key --json``; a real server (two
    workers on PostgreSQL, so racing requests run in parallel processes)."""
    backend = Backend(make_engine(db_url), ring)
    backend.add_scheme("81")
    okey = backend.add_scheme(ONLINE, online=True)
    backend.add_token(42, SECRET)
    backend.credit(42, 100_000)
    _, api_key = backend.add_merchant("shop")
    admin_key = backend.add_admin("ops")
    wkey = wallet_key_cli(db_url, 42)
    server = Server(db_url, master_hex, tmp_path / "server.log", workers=1 if db_url.startswith("sqlite") else 2)
    try:
        yield {"backend": backend, "url": server.url, "api": api_key, "admin": admin_key, "wallet": wkey,
               "okey": okey, "server": server, "db": db_url}
    finally:
        server.stop()
        backend.engine.dispose()


def wallet_key_cli(db_url: str, token_id: int, *extra: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "paytoken", "account", "wallet-key", "--token-id", str(token_id),
                        "--db", db_url, "--json", *extra], capture_output=True, text=True, timeout=bound(120))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    return out["wallet_key"] if "wallet_key" in out else out


def codes(w, body=None, key=None, expect=200):
    kw = {} if body is None else {"json": body}
    r = httpx.post(w["url"] + "/v1/online-codes", timeout=bound(30),
                   headers={"Authorization": f"Bearer {key or w['wallet']}"}, **kw)
    assert r.status_code == expect, r.text
    return r.json()["codes"] if expect == 200 else r


def pay(w, code, order, amount=1000, client=None):
    c = client or httpx
    r = c.post(w["url"] + "/v1/payments", timeout=bound(30), headers={"Authorization": f"Bearer {w['api']}"},
               json={"code": code, "amount": amount, "currency": "CNY", "merchant_order_id": order})
    assert r.status_code == 200, r.text
    return r.json()


def admin(w, method, path, body=None):
    return httpx.request(method, w["url"] + path, json=body, timeout=bound(30),
                         headers={"Authorization": f"Bearer {w['admin']}"})


def test_an_online_code_pays_once_through_the_merchants_api(wallet):
    w = wallet
    before = time.time()
    (c,) = codes(w)  # no body: one code, 60 s
    code, exp = c["code"], c["expires_at"]
    assert len(code) == 18 and code.isdigit() and code[:2] == ONLINE and paycode.damm(code) == 0
    assert before + 60 - 2 <= exp <= time.time() + 60 + 1
    # the same layout as an offline code: the issuer decrypts the token id, a till sees 18 digits
    prefix, tid, _residue, _otp = paycode.parse_code(code, {ONLINE: w["okey"]})
    assert (prefix, tid) == (ONLINE, 42)
    first = pay(w, paycode.group4(code), "O-1", 1250)
    assert first["status"] == "succeeded" and first["token_id"] == 42 and first["amount"] == 1250
    assert pay(w, code, "O-1", 1250) == first  # a retry of the order: the stored answer
    again = pay(w, code, "O-2", 1250)
    assert again["status"] == "refused" and again["reason"] == "CODE_REPLAYED"
    info = admin(w, "GET", "/v1/tokens/42").json()
    assert info["balance"] == 100_000 - 1250 and info["failures"] == 0
    # the wallet's own view: balance and the payment, newest first
    r = httpx.get(w["url"] + "/v1/wallet", headers={"Authorization": f"Bearer {w['wallet']}"}, timeout=bound(30))
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["balance"] == 100_000 - 1250 and view["spent_today"] == 1250 and view["status"] == "active"
    assert [p["payment_id"] for p in view["payments"]] == [first["payment_id"]]
    assert view["payments"][0]["merchant"] == "shop"
    # an offline code of the same token still pays beside them
    off = paycode.payment_code(SECRET, 42, int(time.time()), w["backend"].scheme_keys()["81"])
    assert pay(w, off, "O-3", 100)["status"] == "succeeded"


def test_count_bounds_and_malformed_bodies(wallet):
    w = wallet
    batch = codes(w, {"count": 15})
    assert len(batch) == 15 and len({c["code"] for c in batch}) == 15
    assert len({c["expires_at"] for c in batch}) == 1
    assert len(codes(w, {"count": 1})) == 1
    assert len(codes(w, {"count": 2.0})) == 2  # a JSON number with no fraction is an integer
    assert len(codes(w, {})) == 1
    for bad in ({"count": 0}, {"count": 16}, {"count": -1}, {"count": "2"}, {"count": 1.5}, {"count": True},
                {"count": None}, {"count": 1, "extra": 1}, {"ttl": 0}, {"ttl": 86_401}, [1], "x"):
        r = codes(w, bad, expect=422)
        assert r.json()["error"] == "invalid_request", (bad, r.text)
    r = httpx.post(w["url"] + "/v1/online-codes", content=b"{not json", timeout=bound(30),
                   headers={"Authorization": f"Bearer {w['wallet']}", "Content-Type": "application/json"})
    assert r.status_code == 422
    # every code of the batch pays, once each
    outs = [pay(w, c["code"], f"B-{i}", 10) for i, c in enumerate(batch)]
    assert all(o["status"] == "succeeded" for o in outs)
    assert admin(w, "GET", "/v1/tokens/42").json()["balance"] == 100_000 - 150


def test_expiry_default_and_longer_cached_batches(wallet):
    w = wallet
    (short,) = codes(w, {"ttl": 2})
    cached = codes(w, {"count": 15, "ttl": 86_400})
    assert cached[0]["expires_at"] - short["expires_at"] >= 86_400 - 5
    while time.time() < short["expires_at"] + 1:  # the server's clock is this machine's
        time.sleep(0.2)
    late = pay(w, short["code"], "E-1")
    assert late["status"] == "refused" and late["reason"] == "CODE_EXPIRED"
    assert admin(w, "GET", "/v1/tokens/42").json()["failures"] == 0  # an expired code is no guess
    assert pay(w, cached[3]["code"], "E-2")["status"] == "succeeded"  # a cached one is still good


def test_revoking_the_wallet_key_or_the_token_kills_the_codes(wallet):
    w = wallet
    old = codes(w, {"count": 3})
    assert pay(w, old[0]["code"], "R-0")["status"] == "succeeded"
    new_key = wallet_key_cli(w["db"], 42)  # a new key replaces the old one
    assert new_key != w["wallet"] and new_key.startswith("ptk_wallet_")
    assert codes(w, key=w["wallet"], expect=401).json()["error"] == "unauthorized"
    dead = pay(w, old[1]["code"], "R-1")
    assert dead["status"] == "refused" and dead["reason"] == "CODE_EXPIRED"
    assert pay(w, old[0]["code"], "R-2")["reason"] == "CODE_REPLAYED"  # used before: still named so
    fresh = codes(w, {"count": 2}, key=new_key)
    out = wallet_key_cli(w["db"], 42, "--revoke")
    assert out == {"token_id": 42, "codes_revoked": 2}
    assert codes(w, key=new_key, expect=401).status_code == 401
    assert pay(w, fresh[0]["code"], "R-3")["reason"] == "CODE_EXPIRED"
    # the token itself: a third key's codes die with the token's revocation
    third = wallet_key_cli(w["db"], 42)
    live_codes = codes(w, {"count": 2}, key=third)
    assert admin(w, "POST", "/v1/tokens/42/revoke").json()["status"] == "revoked"
    assert pay(w, live_codes[0]["code"], "R-4")["reason"] == "TOKEN_REVOKED"
    r = codes(w, key=third, expect=409)
    assert r.json()["error"] == "refused" and "revoked" in r.json()["detail"]
    assert admin(w, "GET", "/v1/tokens/42").json()["balance"] == 100_000 - 1000


def test_one_code_raced_in_parallel_pays_exactly_once(wallet):
    w = wallet
    (c,) = codes(w)
    n = 24
    with httpx.Client(timeout=bound(60)) as client, ThreadPoolExecutor(n) as ex:
        outs = list(ex.map(lambda i: pay(w, c["code"], f"X-{i}", 700, client), range(n)))
    won = [o for o in outs if o["status"] == "succeeded"]
    assert len(won) == 1, outs
    assert {o["reason"] for o in outs if o is not won[0]} == {"CODE_REPLAYED"}
    assert admin(w, "GET", "/v1/tokens/42").json()["balance"] == 100_000 - 700
    # and a batch spent in parallel: each code once
    batch = codes(w, {"count": 10})
    with httpx.Client(timeout=bound(60)) as client, ThreadPoolExecutor(20) as ex:
        outs = list(ex.map(lambda i: pay(w, batch[i % 10]["code"], f"Y-{i}", 10, client), range(20)))
    assert sum(o["status"] == "succeeded" for o in outs) == 10
    assert admin(w, "GET", "/v1/tokens/42").json()["balance"] == 100_000 - 700 - 100


def test_limits_and_funds_apply_as_to_offline_codes(wallet):
    w = wallet
    assert admin(w, "PATCH", "/v1/tokens/42", {"limit_per_payment": 5000, "limit_per_day": 8000}).status_code == 200
    batch = codes(w, {"count": 5})
    assert pay(w, batch[0]["code"], "L-0", 5001)["reason"] == "LIMIT_EXCEEDED"
    assert pay(w, batch[1]["code"], "L-1", 5000)["status"] == "succeeded"
    assert pay(w, batch[2]["code"], "L-2", 3001)["reason"] == "LIMIT_EXCEEDED"  # the day's 8000
    assert pay(w, batch[3]["code"], "L-3", 3000)["status"] == "succeeded"
    assert admin(w, "PATCH", "/v1/tokens/42", {"limit_per_payment": None, "limit_per_day": None}).status_code == 200
    assert pay(w, batch[4]["code"], "L-4", 200_000)["reason"] == "INSUFFICIENT_FUNDS"
    assert admin(w, "GET", "/v1/tokens/42").json()["balance"] == 100_000 - 8000


def test_forged_online_codes_are_guesses_and_lock_like_offline_ones(wallet):
    w = wallet
    issued = {c["code"] for c in codes(w, {"count": 2})}
    # codes for token 42 under the online key (which never leaves the issuer) that were never
    # issued (the issued serials are random: one of them could be among these)
    forged = [f for f in (paycode_online(w["okey"], 42, s) for s in range(1000, 1020))
              if f not in issued][:rules.TOKEN_GUESSES.burst + 1]
    outs = []
    for i, f in enumerate(forged):
        r = httpx.post(w["url"] + "/v1/payments", timeout=bound(30),
                       headers={"Authorization": f"Bearer {w['api']}"},
                       json={"code": f, "amount": 1, "currency": "CNY", "merchant_order_id": f"G-{i}"})
        outs.append((r.status_code, r.json().get("reason")))
    # one merchant key alone gets its per-token budget (2), then 429: never the token's lock
    mt = rules.MERCHANT_TOKEN_GUESSES.burst
    assert outs[:mt] == [(200, "CODE_INVALID")] * mt, outs
    assert all(s == 429 for s, _ in outs[mt:]), outs
    info = admin(w, "GET", "/v1/tokens/42").json()
    assert info["failures"] == mt and info["status"] == "active"


def paycode_online(key: bytes, token_id: int, serial: int) -> str:
    from paytoken.backend.service.online import make_code

    return make_code(key, ONLINE, token_id, serial)


def test_bad_or_missing_wallet_keys_get_401_then_429(wallet):
    w = wallet
    t0 = time.monotonic()
    r = httpx.post(w["url"] + "/v1/online-codes", timeout=bound(30))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthorized" and "wallet key" in r.json()["detail"]
    statuses = [r.status_code]
    for other in (w["api"], w["admin"]):  # a merchant's or an admin's key is no wallet key
        statuses.append(codes(w, key=other, expect=401).status_code)
    statuses.append(httpx.get(w["url"] + "/v1/wallet", headers={"Authorization": f"Bearer {w['api']}"},
                              timeout=bound(30)).status_code)
    throttled = None
    with httpx.Client(timeout=bound(30)) as c:
        for i in range(rules.BAD_KEYS.burst + 10):
            resp = c.post(w["url"] + "/v1/online-codes", headers={"Authorization": f"Bearer ptk_wallet_wrong{i}"})
            statuses.append(resp.status_code)
            throttled = resp if resp.status_code == 429 else throttled
        elapsed = time.monotonic() - t0
        assert throttled is not None, statuses
        assert int(throttled.headers["Retry-After"]) >= 1 and throttled.json()["error"] == "throttled"
        # the good key is not throttled by its address
        assert c.post(w["url"] + "/v1/online-codes", headers={"Authorization": f"Bearer {w['wallet']}"}
                      ).status_code == 200
    assert_bad_keys_throttled(statuses, elapsed)


def test_no_code_or_wallet_key_is_stored_in_clear(wallet):
    w = wallet
    batch = codes(w, {"count": 15, "ttl": 600})
    paid = pay(w, batch[0]["code"], "S-1")
    assert paid["status"] == "succeeded"
    pay(w, batch[0]["code"], "S-2")
    engine = make_engine(w["db"])
    md = MetaData()
    md.reflect(engine)
    dump = []
    with engine.connect() as conn:
        for table in md.sorted_tables:
            for row in conn.execute(select(table)):
                dump.extend(str(v) for v in row)
        n = conn.execute(select(md.tables["online_codes"])).all()
    engine.dispose()
    assert len(n) == 15 and all(len(r.hash) == 64 for r in n)
    text = "\n".join(dump)
    for c in batch:
        code = c["code"]
        assert code not in text and code[2:17] not in text and paycode.group4(code) not in text
    assert w["wallet"] not in text
    log = w["server"].log()
    assert w["wallet"] not in log and all(c["code"] not in log for c in batch)


def test_the_openapi_schema_declares_the_wallet_routes(wallet):
    spec = httpx.get(wallet["url"] + "/openapi.json", timeout=bound(30)).json()
    post_ = spec["paths"]["/v1/online-codes"]["post"]
    assert {"200", "401", "409", "422", "429", "503"} <= set(post_["responses"])
    assert "/v1/wallet" in spec["paths"]


def test_wallet_doc_curl_examples_run(wallet):
    w = wallet
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "WALLET.md").read_text()
    curls = [ln for b in re.findall(r"```sh\n(.*?)```", doc, re.S) for ln in b.splitlines()
             if ln.startswith("curl ")]
    assert len(curls) == 4
    env = dict(os.environ, URL=w["url"], WALLET_KEY=w["wallet"], API_KEY=w["api"])
    outs = []
    for line in curls:
        r = subprocess.run(["bash", "-c", line + ' -w "\\n%{http_code}"'], env=env, capture_output=True,
                           text=True, timeout=bound(30))
        body, status = r.stdout.rsplit("\n", 1)
        outs.append((int(status), json.loads(body)))
        if "codes" in outs[-1][1]:
            env["CODE"] = outs[-1][1]["codes"][0]["code"]
    (s1, one), (s2, batch), (s3, paid), (s4, view) = outs
    assert (s1, s2, s3, s4) == (200, 200, 200, 200)
    assert len(one["codes"]) == 1 and len(batch["codes"]) == 15
    assert batch["codes"][0]["expires_at"] - one["codes"][0]["expires_at"] >= 3600 - 60 - 5
    assert paid["status"] == "succeeded" and paid["amount"] == 1250
    assert view["balance"] == 100_000 - 1250 and view["payments"][0]["payment_id"] == paid["payment_id"]
    from paytoken.backend.verify import REASONS

    for reason in REASONS:  # every refusal reason is placed for online codes
        assert f"`{reason}`" in doc
