"""Two code formats in the field, end to end: real virtual tokens, the real CLI and desk,
the issuer's HTTP server. A fleet on format 1 (scheme 81) keeps paying while the desk
moves its tokens one by one to format 2 (scheme 82, TOTP HMAC-SHA256) with
``paytoken update --prefix 82``; then scheme 81 is retired and closed, and its codes get
"unknown prefix"."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path

import httpx
import paycode
import pyotp
from paytoken import vhw
from paytoken.scan import ScanError, read_qr
from paytoken.station import ops
from paytoken.station.transport import Device
from stationkit import assert_no_secret, paytoken, token_config
from waits import STEP, bound

KEY2 = bytes(range(100, 116))


def _shown(tok, tmp: Path, prefix: str, key: bytes, after_step: int = -1) -> tuple[str, int]:
    # (code, step): the code the token's panel shows (its QR, read by zxing-cpp), once it
    # has ``prefix`` and a step after ``after_step`` (each step pays once).
    png = tmp / "panel.png"
    end = time.monotonic() + bound(3 * STEP)
    vhw.press(tok.hw)
    while time.monotonic() < end:
        vhw.snapshot(tok.hw, png)
        try:
            code = read_qr(png)
        except ScanError:
            code = ""
        if code.startswith(prefix):
            step = paycode.resolve_step(paycode.parse_code(code, key)[2], int(time.time()))
            if step > after_step:
                return code, step
        time.sleep(0.5)
        if int(time.time()) % 10 == 0:
            vhw.press(tok.hw)  # keep the display on
    raise AssertionError(f"no code with prefix {prefix} on the panel")


def _pay(server: str, api: str, code: str) -> dict:
    r = httpx.post(server + "/v1/payments", headers={"Authorization": f"Bearer {api}"}, timeout=bound(10),
                   json={"code": code, "amount": 100, "currency": "CNY", "merchant_order_id": uuid.uuid4().hex})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_fleet_moves_to_format_2_and_format_1_is_retired(tokens, issuer, server, tmp_path: Path) -> None:
    env = issuer.env()
    r = paytoken("scheme", "add", "--prefix", "82", "--key", KEY2.hex(), "--format", "2", env=env)
    assert r.returncode == 0 and "code format 2" in r.stdout, r.stdout + r.stderr
    a, b = tokens(2)
    r = paytoken("provision", "--port", a.port, "--board", "sim", "--json", env=env)  # format 1: 81
    assert r.returncode == 0, r.stdout + r.stderr
    r = paytoken("provision", "--port", b.port, "--board", "sim", "--prefix", "82", "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg_a, cfg_b = token_config(a.flash), token_config(b.flash)
    assert (cfg_a["prefix"], cfg_a["format"], cfg_b["prefix"], cfg_b["format"]) == ("81", 1, "82", 2)
    with Device(a.port, timeout=bound(STEP)) as dev:
        assert ops.info(dev).code_format == 1  # INFO reports the token's own format
    with Device(b.port, timeout=bound(STEP)) as dev:
        assert ops.info(dev).code_format == 2
    for cfg in (cfg_a, cfg_b):
        issuer.backend.credit(cfg["token_id"], 10_000)
    _, api = issuer.backend.add_merchant("shop")

    # both formats pay side by side; B's TOTP is the SHA-256 one, as pyotp computes it
    key1 = issuer.backend.scheme_keys()["81"]
    code_b, step_b = _shown(b, tmp_path, "82", KEY2)
    t = int(time.time())
    otp = paycode.parse_code(code_b, KEY2)[3]
    b32 = base64.b32encode(cfg_b["secret"]).decode()
    assert otp in {pyotp.TOTP(b32, digest=hashlib.sha256).at(t + d) for d in (-30, 0, 30)}
    assert _pay(server, api, code_b)["status"] == "succeeded"
    code_a, step_a = _shown(a, tmp_path, "81", key1)
    paid = _pay(server, api, code_a)
    assert paid["status"] == "succeeded", paid

    # 81 cannot be closed while a token still uses it
    r = paytoken("scheme", "retire", "81", "--close", env=env)
    assert r.returncode == 1 and "1 tokens still use scheme 81" in r.stderr, r.stderr

    # the desk moves A: same secret, new prefix, scheme key and format
    r = paytoken("update", "--port", a.port, "--board", "sim", "--prefix", "82", "--url", server,
                 "--admin-key", issuer.admin_key, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert (d["prefix"], d["code_format"], d["token_id"]) == ("82", 2, cfg_a["token_id"])
    after = token_config(a.flash)
    assert (after["prefix"], after["format"], after["scheme_key"]) == ("82", 2, KEY2)
    assert after["secret"] == cfg_a["secret"] and after["sync_key"] == cfg_a["sync_key"]
    info = issuer.backend.token_info(cfg_a["token_id"])
    assert (info["prefix"], info["moving_from"]) == ("82", None)  # the move is finished
    assert_no_secret([cfg_a["secret"], cfg_a["sync_key"], KEY2], r.stdout, r.stderr,
                     paths=[tmp_path / "server.log"])
    with Device(a.port, timeout=bound(STEP)) as dev:
        st = ops.info(dev)
        assert (st.locked, st.code_format) == (True, 2)
        assert not ops.repl_open(dev)

    # A now pays with format 2 codes; a format 1 code of A is refused
    code, _ = _shown(a, tmp_path, "82", KEY2, step_a)
    out = _pay(server, api, code)
    assert out["status"] == "succeeded", (out, issuer.backend.verify(code))
    old = paycode.payment_code(cfg_a["secret"], cfg_a["token_id"], int(time.time()) + 30, key1, "81")
    assert _pay(server, api, old)["reason"] == "CODE_INVALID"

    # retire, then close 81: its codes are an unknown prefix (a server sees it within SCHEME_CACHE_S)
    r = paytoken("scheme", "retire", "81", env=env)
    assert r.returncode == 0, r.stderr
    r = paytoken("scheme", "retire", "81", "--close", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "closed", r.stdout + r.stderr
    v = issuer.backend.verify(old)  # the issuer's reason, which a merchant sees as CODE_INVALID
    assert (v.reason, v.detail) == ("CODE_INVALID", "unknown prefix 81")
    assert _pay(server, api, old)["reason"] == "CODE_INVALID"
    # B, on format 2 from the factory, keeps paying
    assert _pay(server, api, _shown(b, tmp_path, "82", KEY2, step_b)[0])["status"] == "succeeded"
