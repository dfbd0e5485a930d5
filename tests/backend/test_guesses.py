"""Wrong codes on SQLite and PostgreSQL: only a guess counts, budgets hold under concurrency.

A stale, replayed or far-future code is refused with its own reason and charges nothing;
a guess (the right window, the wrong OTP) is charged to the token (rules.TOKEN_GUESSES),
to the merchant key and token (MERCHANT_TOKEN_GUESSES) and to the merchant key
(MERCHANT_GUESSES). docs/SECURITY.md states the bound; checked against rules.py here.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import paycode
import pytest
from paytoken.backend import BackendError, rules
from sqlalchemy import text

from .conftest import SECRET, T0
from .test_service import code_at, pay, wrong_otp_code

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "SECURITY.md"


def test_stale_replayed_and_far_future_codes_never_count(world):
    w = world
    used = code_at(w, T0)
    assert pay(w, used)["status"] == "succeeded"
    unused = code_at(w, T0 + 60)  # shown, never sent
    w.clock.t = T0 + 3600  # an hour later: both are far outside the residue's ±5 steps
    for _ in range(12):  # more than the token's burst, from one merchant key
        assert pay(w, used)["reason"] == "CODE_REPLAYED"
        assert pay(w, unused)["reason"] == "CODE_EXPIRED"
    ahead = code_at(w, w.clock.t + 20 * 60)  # 20 minutes ahead: beyond the residue, inside the search
    for _ in range(8):
        assert pay(w, ahead)["reason"] == "CODE_FUTURE"
    info = w.backend.token_info(42)
    assert info["status"] == "active" and info["failures"] == 0 and info["clock_suspect"] == 8
    with w.backend.engine.connect() as c:
        assert c.execute(text("SELECT guess_tat FROM tokens WHERE id = 42")).scalar() is None
        assert c.execute(text("SELECT count(*) FROM throttles")).scalar() == 0
    assert pay(w, code_at(w, w.clock.t))["status"] == "succeeded"  # the owner's fresh code


def test_a_week_old_code_and_near_past_guesses_do_not_count(world):
    w = world
    old = code_at(w, T0)
    w.clock.t = T0 + 6 * 86_400
    for _ in range(10):
        assert pay(w, old)["reason"] == "CODE_EXPIRED"
    # A wrong OTP whose residue puts it behind the window: useless to a guesser, not counted.
    for k in range(10):
        behind = wrong_otp_code(w, int(w.clock.t) - 3 * 30, k)
        assert pay(w, behind)["reason"] == "CODE_INVALID"
    assert w.backend.token_info(42)["failures"] == 0


def test_the_same_wrong_code_counts_once(world):
    w = world
    guess = wrong_otp_code(w, T0)
    assert pay(w, guess)["reason"] == "CODE_INVALID"
    for _ in range(10):
        assert pay(w, guess)["reason"] == "CODE_INVALID"
    assert w.backend.token_info(42)["failures"] == 1


def test_one_merchant_key_cannot_lock_a_token(world):
    w = world
    b = rules.MERCHANT_TOKEN_GUESSES
    for k in range(b.burst):
        assert pay(w, wrong_otp_code(w, T0, k))["reason"] == "CODE_INVALID"
    with pytest.raises(BackendError) as e:  # the next guess is not even checked: 429
        pay(w, wrong_otp_code(w, T0, 99))
    assert e.value.kind == "throttled" and e.value.retry_after == b.interval_s
    with pytest.raises(BackendError) as e:  # a right code from the same key too (it guesses)
        pay(w, code_at(w, T0))
    assert e.value.kind == "throttled"
    assert w.backend.token_info(42)["status"] == "active"
    other, _ = w.backend.add_merchant("the customer's shop")
    assert w.backend.pay(other, code_at(w, T0), 100, "CNY", "o-shop")["status"] == "succeeded"
    # After the budget's interval the key may try again.
    w.clock.t = T0 + b.interval_s
    assert pay(w, wrong_otp_code(w, int(w.clock.t), 5))["reason"] == "CODE_INVALID"


def test_a_merchant_key_guessing_over_many_tokens_is_throttled(world):
    w = world
    b = rules.MERCHANT_GUESSES
    for tid in range(100, 100 + b.burst + 1):
        w.backend.add_token(tid, SECRET)
    for tid in range(100, 100 + b.burst):
        assert pay(w, wrong_otp_code(w, T0, 0, tid))["reason"] == "CODE_INVALID"
    with pytest.raises(BackendError) as e:
        pay(w, wrong_otp_code(w, T0, 0, 100 + b.burst))
    assert e.value.kind == "throttled" and 0 < e.value.retry_after <= b.interval_s
    w.clock.t = T0 + b.interval_s
    assert pay(w, wrong_otp_code(w, int(w.clock.t), 0, 100 + b.burst))["reason"] == "CODE_INVALID"


@pytest.mark.parametrize("via", ["verify", "pay"])
def test_concurrent_guesses_never_exceed_the_budget(world, via):
    # 30 threads at once, each a different wrong code (and one right code among them): at
    # most the token's burst are checked; the rest are TOKEN_LOCKED (or 429 per merchant).
    w = world
    b = rules.TOKEN_GUESSES
    mids = [w.backend.add_merchant(f"c{i}")[0] for i in range(15)]
    jobs = [wrong_otp_code(w, T0, k) for k in range(29)] + [code_at(w, T0)]
    barrier, out = threading.Barrier(len(jobs)), []

    def go(i, code):
        barrier.wait(30)
        try:
            if via == "verify":
                out.append(w.backend.verify(code).reason)
            else:
                out.append(w.backend.pay(mids[i % 15], code, 10, "CNY", f"c{i}")["reason"])
        except BackendError as exc:
            out.append(exc.kind)

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == 30
    checked = out.count("CODE_INVALID")
    assert 1 <= checked <= b.burst, out
    assert set(out) <= {"CODE_INVALID", "TOKEN_LOCKED", None, "throttled"}, out
    with w.backend.engine.connect() as c:
        failures = c.execute(text("SELECT failures FROM tokens WHERE id = 42")).scalar()
        charged = c.execute(text("SELECT count(*) FROM audit_log WHERE token_id = 42 AND action = 'CODE_FAILED'")
                            ).scalar()
    assert charged == checked  # every answered guess was charged once, and no other
    # the right code, when it was accepted, resets the counter: only the guesses after it remain
    assert failures == checked if None not in out else failures <= checked


def test_security_doc_states_the_bound_of_rules_py():
    doc = SECURITY.read_text()
    n, p = rules.guess_bound(1)
    n365, p365 = rules.guess_bound(365)
    assert f"**{n} guesses per token per day**" in doc
    m = re.search(r"at most\s+([0-9.]+) × 10⁻⁴ a day", doc)
    assert m and abs(float(m.group(1)) * 1e-4 - p) / p < 0.01, (m and m.group(0), p)
    m = re.search(r"([0-9.]+) % in a year", doc)
    assert m and abs(float(m.group(1)) / 100 - p365) < 0.001, (m and m.group(0), p365)
    for budget in (rules.TOKEN_GUESSES, rules.MERCHANT_TOKEN_GUESSES, rules.MERCHANT_GUESSES, rules.BAD_KEYS):
        assert f"burst {budget.burst}, one per {budget.interval_s} s" in doc
    assert paycode  # the codes above are paycode's
