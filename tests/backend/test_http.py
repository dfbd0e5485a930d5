"""The HTTP API on a real uvicorn server (``paytoken serve``) on 127.0.0.1, and the CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paycode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine
from paytoken.backend.store.models import AuditLog, Payment
from sqlalchemy import func, select
from waits import bound

from .conftest import SECRET, Server

DOC = Path(__file__).resolve().parents[2] / "docs" / "MERCHANT.md"


@pytest.fixture
def live(db_url, ring, master_hex, tmp_path):
    """A migrated database with scheme 81, token 42 (funded), a merchant and an admin,
    served by a real ``paytoken serve``. Real time: the server reads the clock."""
    backend = Backend(make_engine(db_url), ring)
    key = backend.add_scheme("81")
    backend.add_token(42, SECRET, sync_key=bytes(range(50, 70)))
    backend.credit(42, 100_000)
    _, api_key = backend.add_merchant("shop")
    admin_key = backend.add_admin("ops")
    server = Server(db_url, master_hex, tmp_path / "server.log")
    try:
        yield {"backend": backend, "url": server.url, "api": api_key, "admin": admin_key,
               "key": key, "server": server}
    finally:
        server.stop()
        backend.engine.dispose()


def fresh_code(live, token_id=42):
    # One code per 30 s step: wait for a step the token has not used yet.
    last = live["backend"].token_info(token_id)["last_step"] or -1
    while int(time.time()) // 30 <= last:
        time.sleep(0.2)
    return paycode.payment_code(SECRET, token_id, int(time.time()), live["key"])


def post(live, path, body, key=None):
    return httpx.post(live["url"] + path, json=body, timeout=bound(30),
                      headers={"Authorization": f"Bearer {key or live['api']}"})


def counts(backend):
    with backend.engine.connect() as c:
        return (c.execute(select(func.count()).select_from(Payment.__table__)).scalar(),
                c.execute(select(func.count()).select_from(AuditLog.__table__)).scalar())


def test_main_flows_over_http(live):
    code = fresh_code(live)
    body = {"code": paycode.group4(code), "amount": 1250, "currency": "CNY", "merchant_order_id": "A-1"}
    r = post(live, "/v1/payments", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "succeeded" and out["token_id"] == 42 and out["amount"] == 1250
    assert post(live, "/v1/payments", body).json() == out  # retry: same answer
    again = post(live, "/v1/payments", dict(body, merchant_order_id="A-2")).json()
    assert again["reason"] == "CODE_REPLAYED"
    assert post(live, "/v1/payments", dict(body, amount=1)).status_code == 409
    pid = out["payment_id"]
    got = httpx.get(f"{live['url']}/v1/payments/{pid}", headers={"Authorization": f"Bearer {live['api']}"})
    assert got.json()["refunded"] == 0 and got.json()["merchant_order_id"] == "A-1"
    ref = post(live, f"/v1/payments/{pid}/refund", {"amount": 250})
    assert ref.status_code == 200 and ref.json()["refunded"] == 250
    # admin calls need the admin key, not the merchant key
    assert httpx.get(f"{live['url']}/v1/tokens/42", headers={"Authorization": f"Bearer {live['api']}"}).status_code == 401
    assert httpx.get(f"{live['url']}/v1/tokens/42").status_code == 401
    info = httpx.get(f"{live['url']}/v1/tokens/42", headers={"Authorization": f"Bearer {live['admin']}"}).json()
    assert info["status"] == "active" and info["balance"] == 100_000 - 1000 and info["last_used_at"]
    cs = post(live, "/v1/tokens/42/clock-sync", {"nonce": "abcdef0123"}, live["admin"]).json()
    assert cs["mac"] == paycode.sync_mac(bytes(range(50, 70)), "SETTIME", "abcdef0123", cs["utc"])
    assert abs(cs["utc"] - time.time()) < 5
    ua = post(live, "/v1/tokens/42/unlock-auth", {"nonce": "abcdef0123"}, live["admin"]).json()
    assert ua["mac"] == paycode.sync_mac(bytes(range(50, 70)), "UNLOCK", "abcdef0123", 42)
    rv = post(live, "/v1/tokens/42/revoke", None, live["admin"])
    assert rv.json()["status"] == "revoked"
    late = post(live, "/v1/payments", dict(body, merchant_order_id="A-3")).json()
    assert late["reason"] == "TOKEN_REVOKED"
    assert httpx.get(live["url"] + "/openapi.json").json()["paths"]["/v1/payments"]
    # no secret in any response or in the server's log
    log = live["server"].log()
    for form in (SECRET.hex(), base64.b32encode(SECRET).decode(), live["key"].hex(),
                 bytes(range(50, 70)).hex(), code):
        assert form not in log
        assert form not in json.dumps([out, info, cs, ua])


MALFORMED = [
    {}, {"code": "1"}, {"code": 123, "amount": 1, "currency": "CNY", "merchant_order_id": "x"},
    {"code": "8" * 18, "amount": "12.50", "currency": "CNY", "merchant_order_id": "x"},
    {"code": "8" * 18, "amount": 1.5, "currency": "CNY", "merchant_order_id": "x"},
    {"code": "8" * 18, "amount": -1, "currency": "CNY", "merchant_order_id": "x"},
    {"code": "8" * 18, "amount": 10**40, "currency": "CNY", "merchant_order_id": "x"},
    {"code": "8" * 18, "amount": 1, "currency": "yuan", "merchant_order_id": "x"},
    {"code": "8" * 18, "amount": 1, "currency": "CNY", "merchant_order_id": ""},
    {"code": "١٢٣" * 6, "amount": 1, "currency": "CNY", "merchant_order_id": "x", "extra": 1},
    {"code": "8" * 10_000, "amount": 1, "currency": "CNY", "merchant_order_id": "x"},
    [1, 2], "code", None,
]


def test_malformed_requests_are_4xx_and_write_nothing(live):
    before = counts(live["backend"])
    for body in MALFORMED:
        r = post(live, "/v1/payments", body)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        assert r.json()["error"] and r.json()["detail"]
    for raw in (b"{", b"\xff\xfe", b'{"code": "1"' + b" " * 20_000 + b"}"):
        r = httpx.post(live["url"] + "/v1/payments", content=raw, timeout=bound(30),
                       headers={"Authorization": f"Bearer {live['api']}", "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (raw[:20], r.status_code)
        assert set(r.json()) == {"error", "detail"} and r.json()["error"], r.text  # the documented shape
    for path in ("/v1/tokens/-1", "/v1/tokens/100000000", "/v1/tokens/99999999999999999999999", "/v1/tokens/١٢"):
        r = httpx.get(live["url"] + path, headers={"Authorization": f"Bearer {live['admin']}"})
        assert r.status_code in (404, 422), (path, r.status_code)
    assert counts(live["backend"]) == before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats()
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.text("0123456789١٢٣٤ ", max_size=24),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
bodies = st.fixed_dictionaries({}, optional={
    "code": json_values, "amount": json_values, "currency": json_values,
    "merchant_order_id": json_values}) | json_values


def test_fuzz_json_api_never_500(live):
    client = httpx.Client(base_url=live["url"], timeout=bound(30),
                          headers={"Authorization": f"Bearer {live['api']}"})
    payments_before = counts(live["backend"])[0]

    @settings(max_examples=int(os.environ.get("PAYTOKEN_FUZZ", "300")), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def check(body):
        r = client.post("/v1/payments", content=json.dumps(body, allow_nan=True))
        assert r.status_code < 500, (body, r.text)
        if r.status_code == 200:  # well-formed: a refusal for a code naming no token
            assert r.json()["status"] == "refused" and r.json()["payment_id"] is None

    check()
    client.close()
    assert counts(live["backend"])[0] == payments_before


def test_cli_pay_against_server(live):
    code = fresh_code(live)
    env = dict(os.environ, PAYTOKEN_API_KEY=live["api"])
    cmd = [sys.executable, "-m", "paytoken", "pay", code, "--amount", "300", "--url", live["url"], "--json",
           "--order-id", "cli-1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "succeeded"
    r = subprocess.run(cmd[:-1] + ["cli-2"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "CODE_REPLAYED" in r.stdout
    r = subprocess.run(cmd[:4] + ["-5"] + cmd[5:], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


def _doc_curls() -> list[str]:
    text = DOC.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [line for b in blocks for line in b.splitlines() if line.startswith("curl ")]


def test_merchant_doc_curl_examples_run(live):
    curls = _doc_curls()
    assert len(curls) >= 10
    env = dict(os.environ, URL=live["url"], API_KEY=live["api"], ADMIN_KEY=live["admin"],
               CODE=paycode.group4(fresh_code(live)), TOKEN_ID="42", PAYMENT_ID="pay_" + "0" * 24)
    outputs = []
    for line in curls:
        r = subprocess.run(["bash", "-c", line + ' -w "\\n%{http_code}"'], env=env, capture_output=True,
                           text=True, timeout=30)
        body, status = r.stdout.rsplit("\n", 1)
        data = json.loads(body)
        outputs.append((line, int(status), data))
        if "payment_id" in data and data.get("status") == "succeeded":
            env["PAYMENT_ID"] = data["payment_id"]
    by_kind = {}
    for line, status, data in outputs:
        path = re.search(r'"\$URL/v1/([^"]*)"', line).group(1)
        by_kind.setdefault(path, []).append((status, data))
    pays = by_kind["payments"]
    assert pays[0] == (200, pays[1][1]) and pays[0][1]["status"] == "succeeded"  # pay, then the same retry
    assert pays[2][0] == 422  # the malformed example
    assert by_kind["payments/$PAYMENT_ID"][0][1]["payment_id"] == pays[0][1]["payment_id"]
    assert by_kind["payments/$PAYMENT_ID/refund"][0][1]["refunded"] == 250
    assert by_kind["tokens/$TOKEN_ID"][0][1]["token_id"] == 42
    assert by_kind["tokens/$TOKEN_ID"][1][1]["limit_per_day"] == 50_000  # PATCH: the limits
    assert by_kind["tokens/$TOKEN_ID/unlock"][0][1]["status"] == "active"
    assert len(by_kind["tokens/$TOKEN_ID/clock-sync"][0][1]["mac"]) == 40
    assert len(by_kind["tokens/$TOKEN_ID/unlock-auth"][0][1]["mac"]) == 40
    assert by_kind["tokens/$TOKEN_ID/revoke"][0][1]["status"] == "revoked"
    # every refusal reason the API can give is documented
    from paytoken.backend.verify import REASONS
    for reason in REASONS:
        assert f"`{reason}`" in DOC.read_text()
