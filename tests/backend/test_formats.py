"""The issuer's side of two code formats: the prefix picks the scheme, the scheme its key
and format; a token's move between schemes accepts both until it is finished; a closed
scheme's codes are an unknown prefix. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib

import paycode
import pyotp
import pytest
from paytoken.backend import BackendError
from paytoken.backend.service import operators

from .conftest import SECRET

KEY2 = bytes(range(200, 216))


def _pay(w, code: str, order: str) -> dict:
    return w.backend.pay(w.merchant_id, code, 100, "CNY", order)


def test_format_2_codes_verify_with_the_sha256_totp(world) -> None:
    w = world
    w.backend.add_scheme("82", KEY2, fmt=2)
    assert w.backend.scheme_format("82") == 2 and w.backend.scheme_format("81") == 1
    w.backend.add_token(43, SECRET, "82")
    w.backend.credit(43, 1000)
    t = w.backend.now()
    code = paycode.payment_code(SECRET, 43, t, KEY2, "82", 2)
    otp = pyotp.TOTP(base64.b32encode(SECRET).decode(), digest=hashlib.sha256).at(t)
    assert paycode.parse_code(code, KEY2)[3] == otp
    # the same token's code in format 1's TOTP under prefix 82 is a wrong code
    wrong = paycode.payment_code(SECRET, 43, t, KEY2, "82", 1)
    assert _pay(w, wrong, "w")["reason"] == "CODE_INVALID"
    assert _pay(w, code, "a")["status"] == "succeeded"
    assert _pay(w, code, "b")["reason"] == "CODE_REPLAYED"
    assert w.backend.expected_codes(43, [t])[0] == code  # the desk's oracle follows the format
    assert [s["format"] for s in operators.list_schemes(w.backend)] == [1, 2]
    with pytest.raises(BackendError, match="unknown code format"):
        w.backend.add_scheme("83", fmt=3)


def test_a_move_accepts_both_schemes_until_finished_then_close(world) -> None:
    w = world
    w.backend.add_scheme("82", KEY2, fmt=2)
    t = w.backend.now()
    d = w.backend.move_token(42, "82", "desk")
    assert (d["prefix"], d["format"], d["prev_prefix"], d["scheme_key"]) == ("82", 2, "81", KEY2)
    assert w.backend.move_token(42, "82", "desk")["prev_prefix"] == "81"  # a repeat is a no-op
    assert w.backend.token_info(42)["moving_from"] == "81"
    w.backend.add_scheme("84", fmt=2)
    with pytest.raises(BackendError, match="still moving from 81"):
        w.backend.move_token(42, "84", "desk")
    # during the move: the old config's code and the new one's both pay (one per step)
    assert _pay(w, paycode.payment_code(SECRET, 42, t, w.scheme_key, "81"), "old")["status"] == "succeeded"
    w.clock.t += 30
    assert _pay(w, paycode.payment_code(SECRET, 42, t + 30, KEY2, "82", 2), "new")["status"] == "succeeded"
    with pytest.raises(BackendError, match="still use scheme 81"):
        operators.retire_scheme(w.backend, "81", "ops", close=True)  # the move is not finished
    assert w.backend.finish_move(42, "82", "desk")["finished"] is True
    assert w.backend.finish_move(42, "82", "desk")["finished"] is False
    w.clock.t += 30
    old = paycode.payment_code(SECRET, 42, t + 60, w.scheme_key, "81")
    assert _pay(w, old, "old2")["reason"] == "CODE_INVALID"  # no longer this token's scheme
    s = operators.retire_scheme(w.backend, "81", "ops", close=True)
    assert s["status"] == "closed" and s["retired_at"] and s["closed_at"]
    v = w.backend.verify(old)
    assert (v.reason, v.detail) == ("CODE_INVALID", "unknown prefix 81")
    with pytest.raises(BackendError, match="already closed"):
        operators.retire_scheme(w.backend, "81", "ops", close=True)
    with pytest.raises(BackendError, match="closed"):
        w.backend.move_token(42, "81", "desk")
    assert _pay(w, paycode.payment_code(SECRET, 42, t + 60, KEY2, "82", 2), "new2")["status"] == "succeeded"
