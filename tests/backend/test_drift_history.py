"""The drift history the console charts (payments keep the learned model, 0008), and
locking a token by hand."""

from __future__ import annotations

import paycode
import pytest
from paytoken.backend import BackendError
from paytoken.backend.service import operators

from .conftest import SECRET, T0


def _code(w, t):
    return paycode.payment_code(SECRET, 42, int(t), w.scheme_key)


def test_history_follows_a_fast_crystal(world):
    # +50 ppm, a payment a day for 30 days: the history's offsets grow about 4.3 s a day and
    # the learned rate comes near 50 ppm; the last point is the token's current model.
    w = world
    for day in range(30):
        t = T0 + day * 86_400
        w.clock.t = t
        r = w.backend.pay(w.merchant_id, _code(w, t + (t - T0) * 50e-6), 1, "CNY", f"d{day}")
        assert r["status"] == "succeeded"
    w.clock.t = T0 + 30 * 86_400
    w.backend.pay(w.merchant_id, "811234567890123456", 1, "CNY", "bad")  # refused: no point
    hist = operators.drift_history(w.backend, 42)
    assert len(hist) == 30
    assert [h["at"] for h in hist] == sorted(h["at"] for h in hist)
    # the observed offset is the middle of the code's step minus the time (verify.observed_drift)
    assert all(abs(h["observed_s"] - (t - T0) * 50e-6) <= 16 for h, t in
               zip(hist, (T0 + d * 86_400 for d in range(30)), strict=True))
    info = w.backend.token_info(42)
    assert hist[-1]["ppm"] == pytest.approx(info["drift_ppm"])
    assert round(hist[-1]["offset_s"]) == info["drift_seconds"]
    assert 35 <= hist[-1]["ppm"] <= 65
    assert len(operators.drift_history(w.backend, 42, limit=5)) == 5
    with pytest.raises(BackendError):
        operators.drift_history(w.backend, 42, limit=0)


def test_lock_by_hand_until_unlocked(world):
    w = world
    w.clock.t = T0
    assert w.backend.lock(42, "admin:ops")["status"] == "locked"
    assert w.backend.lock(42, "admin:ops")["status"] == "locked"  # again: a no-op
    r = w.backend.pay(w.merchant_id, _code(w, T0), 100, "CNY", "o1")
    assert (r["status"], r["reason"]) == ("refused", "TOKEN_LOCKED")
    assert w.backend.unlock(42, "admin:ops")["status"] == "active"
    w.clock.t = T0 + 30
    assert w.backend.pay(w.merchant_id, _code(w, T0 + 30), 100, "CNY", "o2")["status"] == "succeeded"
    w.backend.set_status(42, "revoked", "admin:ops")
    with pytest.raises(BackendError) as e:
        w.backend.lock(42, "admin:ops")
    assert e.value.kind == "conflict"
    with pytest.raises(BackendError) as e:
        w.backend.lock(77, "admin:ops")
    assert e.value.kind == "not_found"
