"""The service layer on SQLite and PostgreSQL: payments, replays, drift, lockout, limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import paycode
import pyotp
import pytest
from paytoken.backend import BackendError, rules
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine
from paytoken.backend.store.models import Payment
from paytoken.backend.verify import Policy
from sqlalchemy import func, select, text

from .conftest import SECRET, T0

# paycode.damm should be the function (docs/ARCHITECTURE.md); today the submodule shadows it.
_damm = paycode.damm


def code_at(w, t, token_id=42, secret=SECRET, prefix="81"):
    return paycode.payment_code(secret, token_id, int(t), w.scheme_key, prefix)


def pay(w, code, amount=100, order=None, currency="CNY"):
    pay.n = getattr(pay, "n", 0) + 1
    return w.backend.pay(w.merchant_id, code, amount, currency, order or f"o{pay.n}")


def n_payments(w) -> int:
    with w.backend.engine.connect() as c:
        return c.execute(select(func.count()).select_from(Payment.__table__)).scalar()


def test_pay_debits_once_and_retry_returns_original(world):
    w = world
    code = code_at(w, T0)
    r1 = pay(w, code, 1250, "order-1")
    assert r1["status"] == "succeeded" and r1["reason"] is None and r1["token_id"] == 42
    assert r1["amount"] == 1250 and r1["currency"] == "CNY" and r1["payment_id"].startswith("pay_")
    w.clock.t += 20  # the till retries after a timeout
    assert pay(w, code, 1250, "order-1") == r1
    assert w.backend.token_info(42)["balance"] == 100_000 - 1250
    with pytest.raises(BackendError) as e:
        pay(w, code, 999, "order-1")  # same order id, different request
    assert e.value.kind == "conflict"
    r3 = pay(w, code, 1250, "order-2")
    assert r3["status"] == "refused" and r3["reason"] == "CODE_REPLAYED"
    assert pay(w, code, 1250, "order-2") == r3  # a stored refusal is also returned unchanged
    got = w.backend.get_payment(w.merchant_id, r1["payment_id"])
    assert got["status"] == "succeeded" and got["merchant_order_id"] == "order-1" and got["refunded"] == 0


def test_code_otp_matches_pyotp(world):
    # Independent oracle: the OTP inside our code is pyotp's TOTP for that time.
    w = world
    for t in (T0, T0 + 31, T0 + 86_400 * 365):
        _, tid, residue, otp = paycode.parse_code(code_at(w, t), w.scheme_key)
        assert (tid, residue) == (42, (t // 30) % 10)
        assert otp == pyotp.TOTP(base64.b32encode(SECRET).decode()).at(t)


def test_older_code_after_newer_is_replay(world):
    w = world
    old, new = code_at(w, T0 - 30), code_at(w, T0)
    assert pay(w, new)["status"] == "succeeded"
    assert pay(w, old)["reason"] == "CODE_REPLAYED"


def test_expired_and_window(world):
    w = world
    stale = code_at(w, T0 - 3 * 30)
    assert pay(w, stale)["reason"] == "CODE_EXPIRED"
    assert pay(w, code_at(w, T0 - 30))["status"] == "succeeded"  # -1 step is inside ±1
    w.backend.add_token(43, SECRET)
    w.backend.credit(43, 1000)
    assert pay(w, code_at(w, T0 + 30, 43))["status"] == "succeeded"  # +1 step too
    assert pay(w, code_at(w, T0 + 90, 43))["reason"] == "CODE_EXPIRED"


def test_window_is_configurable_up_to_4(db_url, ring, clock):
    with pytest.raises(ValueError):
        Policy(window=5)
    b = Backend(make_engine(db_url), ring, policy=Policy(window=4), clock=clock)
    key = b.add_scheme("81")
    b.add_token(5, SECRET)
    b.credit(5, 1000)
    mid, _ = b.add_merchant("m")
    code = paycode.payment_code(SECRET, 5, T0 - 4 * 30, key)
    assert b.pay(mid, code, 1, "CNY", "a")["status"] == "succeeded"


def test_bad_codes_refused_before_crypto_and_not_stored(world):
    w = world
    good = code_at(w, T0)
    typo = good[:5] + str((int(good[5]) + 1) % 10) + good[6:]
    swap = good[:3] + good[4] + good[3] + good[5:]
    for bad in (typo, swap if swap != good else typo, "12" + good[2:], good[:-1], "١" * 18):
        r = pay(w, bad)
        assert r == {"payment_id": None, "status": "refused", "reason": "CODE_INVALID", "token_id": None,
                     "amount": 100, "currency": "CNY"}
    assert n_payments(w) == 0
    assert w.backend.token_info(42)["failures"] == 0  # the Damm digit failed: nothing counted


def test_malformed_requests_write_nothing(world):
    w = world
    for kw in ({"amount": 0}, {"amount": -5}, {"amount": 10**20}, {"amount": 1.5}, {"amount": True},
               {"currency": "cny"}, {"currency": "€€€"}, {"order": "x" * 65}, {"order": "ü"}):
        with pytest.raises(BackendError) as e:
            w.backend.pay(w.merchant_id, code_at(w, T0), kw.get("amount", 100), kw.get("currency", "CNY"),
                          kw.get("order", "ok"))
        assert e.value.kind == "invalid"
    assert n_payments(w) == 0
    assert pay(w, code_at(w, T0))["status"] == "succeeded"  # the code was not consumed


def wrong_otp_code(w, t, k=0, token_id=42):
    # A well-formed code (right Damm, right token) with the wrong OTP (the k-th): a guess.
    step = t // 30
    otp = (int(paycode.hotp(SECRET, step)) + 1 + k) % 1_000_000
    body = "81" + paycode.ff1_encrypt(w.scheme_key, b"81", "%08d%d%06d" % (token_id, step % 10, otp))
    return body + str(_damm(body))


def test_lockout_after_guesses_clears_by_itself_and_unlock(world):
    # Guesses (right window, wrong OTP) from three merchant keys (one key alone is held to
    # 2 per token: rules.MERCHANT_TOKEN_GUESSES) lock the token for one cool-down.
    w = world
    b = rules.TOKEN_GUESSES
    shop = w.backend.add_merchant("the customer's shop")[0]
    n = [0]

    def customer(t):
        n[0] += 1
        return w.backend.pay(shop, code_at(w, t), 100, "CNY", f"c{n[0]}")

    others = [w.backend.add_merchant(f"m{i}")[0] for i in range(2)]
    mids = [w.merchant_id, w.merchant_id, others[0], others[0], others[1]]
    for i, mid in enumerate(mids[:-1]):
        r = w.backend.pay(mid, wrong_otp_code(w, int(w.clock.t), i), 100, "CNY", f"g{i}")
        assert r["reason"] == "CODE_INVALID" and r["payment_id"], r
    assert w.backend.token_info(42)["failures"] == b.burst - 1
    assert customer(w.clock.t)["status"] == "succeeded"  # success resets the count...
    assert w.backend.token_info(42)["failures"] == 0
    w.clock.t += 30  # ...not the budget: one more guess fills it
    r = w.backend.pay(mids[-1], wrong_otp_code(w, int(w.clock.t), 9), 100, "CNY", "g9")
    assert r["reason"] == "CODE_INVALID"
    info = w.backend.token_info(42)
    assert info["status"] == "locked" and info["locked_until"] == T0 + b.interval_s
    w.clock.t += 30
    locked = customer(w.clock.t)
    # Not stored (payment_id null), with the seconds until the lock clears.
    assert locked["reason"] == "TOKEN_LOCKED" and locked["payment_id"] is None
    assert locked["retry_after"] == info["locked_until"] - w.clock.t
    w.clock.t = info["locked_until"]
    assert customer(w.clock.t)["status"] == "succeeded"  # cleared by itself
    assert w.backend.token_info(42)["status"] == "active"
    # An admin unlock clears a lock early.
    with w.backend.engine.begin() as c:
        c.execute(text("UPDATE tokens SET guess_tat = :t WHERE id = 42"), {"t": int(w.clock.t) + 10 * b.interval_s})
    w.clock.t += 30
    assert w.backend.token_info(42)["status"] == "locked"
    assert customer(w.clock.t)["reason"] == "TOKEN_LOCKED"
    w.backend.unlock(42, "admin:test")
    assert customer(w.clock.t)["status"] == "succeeded"


def test_revoke_and_lost(world):
    w = world
    w.backend.set_status(42, "revoked", "admin:test")
    assert pay(w, code_at(w, T0))["reason"] == "TOKEN_REVOKED"
    with pytest.raises(BackendError):
        w.backend.unlock(42, "admin:test")  # revocation is final
    w.backend.add_token(43, SECRET)
    w.backend.set_status(43, "lost", "admin:test")
    assert pay(w, code_at(w, T0, 43))["reason"] == "TOKEN_REVOKED"


def test_limits_and_funds(world):
    w = world
    w.backend.add_token(7, SECRET, limit_per_payment=5000, limit_per_day=8000)
    w.backend.credit(7, 6000)
    t = T0
    assert pay(w, code_at(w, t, 7), 5001)["reason"] == "LIMIT_EXCEEDED"
    t += 30
    w.clock.t = t
    assert pay(w, code_at(w, t, 7), 5000)["status"] == "succeeded"
    t += 30
    w.clock.t = t
    assert pay(w, code_at(w, t, 7), 3001)["reason"] == "LIMIT_EXCEEDED"  # 8000 a day
    t += 30
    w.clock.t = t
    assert pay(w, code_at(w, t, 7), 2000)["reason"] == "INSUFFICIENT_FUNDS"  # 1000 left
    t += 30
    w.clock.t = t
    assert pay(w, code_at(w, t, 7), 100, currency="USD")["reason"] == "INSUFFICIENT_FUNDS"
    w.clock.t = t = T0 + 86_400  # the next UTC day
    w.backend.credit(7, 10_000)
    assert pay(w, code_at(w, t, 7), 5000)["status"] == "succeeded"
    assert w.backend.token_info(7)["balance"] == 6000 - 5000 + 10_000 - 5000


def test_refund(world):
    w = world
    r = pay(w, code_at(w, T0), 1000, "r1")
    out = w.backend.refund(w.merchant_id, r["payment_id"], 300)
    assert out["amount"] == 300 and out["refunded"] == 300
    assert w.backend.refund(w.merchant_id, r["payment_id"])["refunded"] == 1000
    with pytest.raises(BackendError) as e:
        w.backend.refund(w.merchant_id, r["payment_id"], 1)
    assert e.value.kind == "conflict"
    assert w.backend.token_info(42)["balance"] == 100_000
    other, _ = w.backend.add_merchant("other")
    with pytest.raises(BackendError) as e:
        w.backend.get_payment(other, r["payment_id"])
    assert e.value.kind == "not_found"


def test_drift_plus_20ppm_for_a_year(world):
    # The token's crystal runs +20 ppm: 630 s (21 steps) ahead after a year. A payment
    # about every 22 hours, each presented 0-20 s after the token computed it.
    w = world
    w.backend.credit(42, 10**9)
    ppm = 20e-6
    t, n, accepted = T0, 0, 0
    while t < T0 + 365 * 86_400:
        token_time = T0 + (t - T0) * (1 + ppm)
        w.clock.t = t + (n * 7919) % 21
        r = pay(w, code_at(w, token_time), 1)
        assert r["status"] == "succeeded", (n, t - T0, r, w.backend.token_info(42))
        accepted += 1
        n += 1
        t += 86_400 - 3607 * (n % 3)
    info = w.backend.token_info(42)
    assert accepted > 350 and 19 <= info["drift_steps"] <= 22
    assert 600 <= info["drift_seconds"] <= 660


def test_large_jump_needs_two_consecutive_codes(world):
    w = world
    assert pay(w, code_at(w, T0))["status"] == "succeeded"
    # The token's clock is now 3 steps ahead (e.g. battery swap): the first code is refused...
    w.clock.t = T0 + 600
    assert pay(w, code_at(w, T0 + 600 + 90))["reason"] == "CODE_EXPIRED"
    assert w.backend.token_info(42)["drift_steps"] == 0
    # ...the next consecutive code confirms the jump and is accepted (RFC 6238 §6).
    w.clock.t = T0 + 640
    assert pay(w, code_at(w, T0 + 640 + 90))["status"] == "succeeded"
    assert w.backend.token_info(42)["drift_steps"] == 3
    assert w.backend.token_info(42)["clock_suspect"] == 2  # forward jump beyond known drift flagged
    with w.backend.engine.connect() as c:
        actions = c.execute(text("SELECT action FROM audit_log ORDER BY seq")).scalars().all()
    assert "CLOCK_SUSPECT" in actions and "DRIFT_RESYNC" in actions


def test_factory_allocate_then_activate(world):
    w = world
    tid = w.backend.allocate_token()
    info = w.backend.token_info(tid)
    assert info["status"] == "pending" and info["prefix"] is None
    assert pay(w, code_at(w, T0, tid))["reason"] == "CODE_INVALID"  # pending never verifies
    sync = bytes(range(100, 120))
    w.backend.activate_token(tid, SECRET, sync, "81")
    assert w.backend.token_info(tid)["status"] == "active"
    with pytest.raises(BackendError) as e:
        w.backend.activate_token(tid, SECRET, sync, "81")
    assert e.value.kind == "conflict"
    w.backend.credit(tid, 10)
    assert pay(w, code_at(w, T0, tid), 10)["status"] == "succeeded"
    # A failed activation (no scheme 82) leaves the token pending: one transaction.
    tid2 = w.backend.allocate_token()
    with pytest.raises(BackendError):
        w.backend.activate_token(tid2, SECRET, sync, "82")
    assert w.backend.token_info(tid2)["status"] == "pending"
    assert w.backend.token_info(tid2)["balance"] is None


def test_clock_sync_and_unlock_auth_macs(world):
    w = world
    sync = bytes(range(200, 220))
    w.backend.add_token(9, SECRET, sync_key=sync)
    out = w.backend.clock_sync(9, "a1b2c3d4e5", "admin:desk")
    assert out["utc"] == T0
    msg = b"paytoken-sync-v1|SETTIME|a1b2c3d4e5|%d" % T0  # independent oracle: stdlib hmac
    assert out["mac"] == hmac.new(sync, msg, hashlib.sha1).hexdigest()
    ua = w.backend.unlock_auth(9, "noncenonce", "admin:desk")
    assert ua["mac"] == hmac.new(sync, b"paytoken-sync-v1|UNLOCK|noncenonce|9", hashlib.sha1).hexdigest()
    with w.backend.engine.connect() as c:
        row = c.execute(text("SELECT actor FROM audit_log WHERE action='UNLOCK_AUTH'")).one()
    assert row.actor == "admin:desk"
    with pytest.raises(BackendError):
        w.backend.clock_sync(9, "short", "x")


def test_master_key_rotation_without_downtime(world, db_url, ring, clock):
    w = world
    new = Keyring.generate()[0]
    both = ring.promote(bytes.fromhex(new_hex := new._raw[0].hex()))
    # A second server process already runs with both keys during the rotation.
    serving = Backend(make_engine(db_url), both, clock=clock)
    n = w.backend.rotate_master_key(both)
    assert n == 3  # token 42 secret + sync key, scheme 81
    assert pay(w, code_at(w, T0))["status"] == "succeeded"
    only_new = Backend(make_engine(db_url), Keyring([bytes.fromhex(new_hex)]), clock=clock)
    clock.t += 30
    assert only_new.pay(w.merchant_id, code_at(w, clock.t), 1, "CNY", "after")["status"] == "succeeded"
    clock.t += 30
    assert serving.pay(w.merchant_id, code_at(w, clock.t), 1, "CNY", "during")["status"] == "succeeded"
    stale = Backend(make_engine(db_url), ring, clock=clock)  # the old key alone no longer opens
    clock.t += 30
    with pytest.raises(BackendError):
        stale.pay(w.merchant_id, code_at(w, clock.t), 1, "CNY", "old")
    for b in (serving, only_new, stale):
        b.engine.dispose()


def test_audit_chain_detects_edit_and_delete(world):
    w = world
    assert pay(w, code_at(w, T0))["status"] == "succeeded"  # recorded in payments, not chained
    pay(w, wrong_otp_code(w, T0 + 30))  # a failure is a security event: chained
    assert w.backend.verify_audit().ok
    with w.backend.engine.connect() as c:
        actions = c.execute(text("SELECT action FROM audit_log ORDER BY seq")).scalars().all()
    assert actions[-1] == "CODE_FAILED" and "PAYMENT" not in actions
    with w.backend.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET detail = replace(detail, '1', '0') WHERE action='CODE_FAILED'"))
    rep = w.backend.verify_audit()
    assert not rep.ok and any("edited" in p for p in rep.problems)
    with w.backend.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE action='CODE_FAILED'"))
    rep = w.backend.verify_audit()
    assert not rep.ok and any("deleted" in p or "missing" in p for p in rep.problems)


def test_audit_chain_detects_deleted_middle_row(world):
    w = world
    pay(w, code_at(w, T0))
    with w.backend.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    rep = w.backend.verify_audit()
    assert not rep.ok and any("missing" in p for p in rep.problems)


def test_secrets_never_in_logs_or_audit(world, caplog):
    w = world
    caplog.set_level(logging.DEBUG)
    code = code_at(w, T0)
    pay(w, code)
    pay(w, wrong_otp_code(w, T0 + 30))
    with w.backend.engine.connect() as c:
        audit_text = " ".join(c.execute(text("SELECT detail || actor || action FROM audit_log")).scalars())
        tokens_text = " ".join(str(v) for v in c.execute(text("SELECT * FROM tokens")).one())
    forms = [SECRET.hex(), base64.b32encode(SECRET).decode().rstrip("="), w.scheme_key.hex(), code]
    for haystack in (caplog.text, audit_text, tokens_text, repr(w.backend.keyring)):
        for f in forms:
            assert f not in haystack


def test_migrated_schema_matches_models(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from paytoken.backend.store.models import Base

    engine = make_engine(db_url)
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    engine.dispose()
    assert diff == []


def test_backend_open_requires_migrated_schema(tmp_path):
    with pytest.raises(BackendError, match="db init"):
        Backend.open(str(tmp_path / "empty.db"))
