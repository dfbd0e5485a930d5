"""Idempotent refunds and limits from the start, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import paycode
import pytest
from paytoken.backend import BackendError, rules
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine
from sqlalchemy import func, select, text

from .conftest import SECRET, T0
from .test_service import code_at, pay


def n_refunds(w) -> int:
    with w.backend.engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM refunds")).scalar()


def test_refund_idempotency_key(world):
    w = world
    pid = pay(w, code_at(w, T0), 500, "r1")["payment_id"]
    first = w.backend.refund(w.merchant_id, pid, 100, idempotency_key="k-1")
    assert first["amount"] == 100 and first["refunded"] == 100
    assert w.backend.refund(w.merchant_id, pid, 100, idempotency_key="k-1") == first  # applied once
    with pytest.raises(BackendError) as e:
        w.backend.refund(w.merchant_id, pid, 200, idempotency_key="k-1")  # same key, another body
    assert e.value.kind == "conflict"
    second = w.backend.refund(w.merchant_id, pid, 100, idempotency_key="k-2")  # a new key: a new refund
    assert second["refund_id"] != first["refund_id"] and second["refunded"] == 200
    assert w.backend.token_info(42)["balance"] == 100_000 - 500 + 200
    # A replay after later refunds still gives the original answer.
    assert w.backend.refund(w.merchant_id, pid, 100, idempotency_key="k-1") == first
    for bad in ("", "x" * 256, "caf\u00e9", "a b"):
        with pytest.raises(BackendError) as e:
            w.backend.refund(w.merchant_id, pid, 1, idempotency_key=bad)
        assert e.value.kind == "invalid"
    # Another merchant's key space is its own, and it cannot see the payment.
    other, _ = w.backend.add_merchant("other")
    with pytest.raises(BackendError) as e:
        w.backend.refund(other, pid, 100, idempotency_key="k-1")
    assert e.value.kind == "not_found"
    assert n_refunds(w) == 2


def test_refund_without_key_is_keyed_by_its_body(world):
    w = world
    pid = pay(w, code_at(w, T0), 500, "r1")["payment_id"]
    a = w.backend.refund(w.merchant_id, pid, 100)
    assert w.backend.refund(w.merchant_id, pid, 100) == a  # the identical request again: the same refund
    rest = w.backend.refund(w.merchant_id, pid)  # "all that remains"
    assert rest["amount"] == 400 and rest["refunded"] == 500
    assert w.backend.refund(w.merchant_id, pid) == rest
    with pytest.raises(BackendError) as e:
        w.backend.refund(w.merchant_id, pid, 1)
    assert e.value.kind == "conflict"
    assert w.backend.token_info(42)["balance"] == 100_000
    assert n_refunds(w) == 2


def _parallel(n, fn):
    barrier, out = threading.Barrier(n), []

    def go(i):
        barrier.wait(30)
        try:
            out.append(fn(i))
        except BackendError as exc:
            out.append(exc.kind)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_thirty_parallel_identical_refunds_apply_once(world, db_url, ring, clock):
    w = world
    pid = pay(w, code_at(w, T0), 500, "r1")["payment_id"]
    # Each thread its own Backend (engine, pool): as separate server processes would be.
    backends = [Backend(make_engine(db_url, pool_size=1), ring, clock=clock) for _ in range(30)]
    out = _parallel(30, lambda i: backends[i].refund(w.merchant_id, pid, 100, idempotency_key="same"))
    assert all(isinstance(o, dict) for o in out), out
    assert len({o["refund_id"] for o in out}) == 1 and out[0]["refunded"] == 100
    # Without a key: 30 identical bodies are one refund too.
    out = _parallel(30, lambda i: backends[i].refund(w.merchant_id, pid, 50))
    assert len({o["refund_id"] for o in out if isinstance(o, dict)}) == 1 and len(out) == 30, out
    # 30 different keys of 100 on the 350 left: exactly 3 go through, never more than the payment.
    out = _parallel(30, lambda i: backends[i].refund(w.merchant_id, pid, 100, idempotency_key=f"k{i}"))
    assert sum(isinstance(o, dict) for o in out) == 3 and out.count("conflict") == 27, out
    assert w.backend.get_payment(w.merchant_id, pid)["refunded"] == 450
    assert w.backend.token_info(42)["balance"] == 100_000 - 500 + 450
    assert n_refunds(w) == 5
    for b in backends:
        b.engine.dispose()


def test_scheme_defaults_apply_at_activation(world):
    w = world
    assert w.backend.token_info(42)["limit_per_payment"] == rules.DEFAULT_LIMIT_PER_PAYMENT  # issuer default
    assert w.backend.token_info(42)["limit_per_day"] == rules.DEFAULT_LIMIT_PER_DAY
    w.backend.add_scheme("82", limit_per_payment=3000, limit_per_day=5000, currency="EUR")
    assert w.backend.scheme_defaults("82") == {"limit_per_payment": 3000, "limit_per_day": 5000, "currency": "EUR"}
    tid = w.backend.allocate_token()
    w.backend.activate_token(tid, SECRET, bytes(range(100, 120)), "82")  # as the station calls it
    info = w.backend.token_info(tid)
    assert (info["limit_per_payment"], info["limit_per_day"], info["currency"]) == (3000, 5000, "EUR")
    w.backend.add_token(8, SECRET, "82", limit_per_day=9000)  # an explicit value wins
    assert w.backend.token_info(8)["limit_per_day"] == 9000 and w.backend.token_info(8)["limit_per_payment"] == 3000
    for kw in ({"limit_per_payment": 0}, {"limit_per_day": -1}, {"currency": "eur"}):
        with pytest.raises(BackendError) as e:
            w.backend.add_scheme("83", **kw)
        assert e.value.kind == "invalid"


def test_set_token_limits_and_currency(world):
    w = world
    out = w.backend.set_token(42, "admin:t", limit_per_payment=700, limit_per_day=None)
    assert out["limit_per_payment"] == 700 and out["limit_per_day"] is None
    assert pay(w, code_at(w, T0), 701)["reason"] == "LIMIT_EXCEEDED"
    with pytest.raises(BackendError) as e:
        w.backend.set_token(42, "admin:t", currency="EUR")  # balance 100000 CNY
    assert e.value.kind == "conflict" and "balance 0" in str(e.value)
    w.backend.add_token(9, SECRET)
    assert w.backend.set_token(9, "admin:t", currency="EUR")["currency"] == "EUR"
    for kw in ({}, {"limit_per_day": 0}, {"currency": "E"}, {"secret": b"x"}):
        with pytest.raises(BackendError) as e:
            w.backend.set_token(9, "admin:t", **kw)
        assert e.value.kind == "invalid"
    with pytest.raises(BackendError) as e:
        w.backend.set_token(77, "admin:t", limit_per_day=5)
    assert e.value.kind == "not_found"
    with w.backend.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM audit_log WHERE action = 'TOKEN_SET'")).scalar() == 2


def test_daily_limit_holds_under_concurrent_payments(world):
    # Codes of several steps of one token at once: the day's spending is kept on the account
    # by the debit itself, which checks the per-day limit in the same statement.
    w = world
    w.backend.set_token(42, "admin:t", limit_per_day=1000, limit_per_payment=None)
    mids = [w.backend.add_merchant(f"d{i}")[0] for i in range(10)]
    codes = [code_at(w, T0 + 30 * i) for i in range(10)]
    w.clock.t = T0 + 4 * 30  # three of the ten steps are inside the window
    out = _parallel(10, lambda i: w.backend.pay(mids[i], codes[i], 400, "CNY", f"d{i}")["status"])
    assert out.count("succeeded") <= 2
    with w.backend.engine.connect() as c:
        spent = c.execute(text("SELECT spent FROM accounts WHERE token_id = 42")).scalar()
        total = c.execute(select(func.coalesce(func.sum(text("amount")), 0)).select_from(text("payments"))
                          .where(text("status = 'succeeded'"))).scalar()
    assert spent == total == 400 * out.count("succeeded") <= 1000
    assert paycode


def test_migration_0005_down_and_up(db_url, ring):
    # Real time: the migration stamps a cool-down from the wall clock.
    import time

    from alembic import command
    from paytoken.backend.store.db import _alembic_config, migrate

    engine = make_engine(db_url)
    backend = Backend(engine, ring)
    key = backend.add_scheme("81", limit_per_day=9000)
    backend.add_token(7, SECRET)
    backend.add_token(8, SECRET)
    backend.credit(7, 5000)
    mid, _ = backend.add_merchant("m")
    now = int(time.time())
    assert backend.pay(mid, paycode.payment_code(SECRET, 7, now, key), 1200, "CNY", "before")["status"] == "succeeded"
    second = backend.pay(mid, paycode.payment_code(SECRET, 7, now + 30, key), 1, "CNY", "x")
    assert second["status"] == "succeeded", second
    assert backend.refund(mid, second["payment_id"], idempotency_key="k")["refunded"] == 1
    with engine.begin() as c:  # token 8 cooling down: back to 'locked' under the old rules
        c.execute(text("UPDATE tokens SET guess_tat = :t WHERE id = 8"), {"t": now + 5 * 3600})
        command.downgrade(_alembic_config(c), "0004")
    with engine.begin() as c:
        assert c.execute(text("SELECT status FROM tokens WHERE id = 8")).scalar() == "locked"
        assert "guess_tat" not in c.execute(text("SELECT * FROM tokens")).keys()
        assert "spent" not in c.execute(text("SELECT * FROM accounts")).keys()
        assert "idem" not in c.execute(text("SELECT * FROM refunds")).keys()
        assert "limit_per_day" not in c.execute(text("SELECT * FROM schemes")).keys()
    engine.dispose()
    assert migrate(engine) == "0009"
    with engine.begin() as c:
        row = c.execute(text("SELECT status, guess_tat FROM tokens WHERE id = 8")).one()
        spent = c.execute(text("SELECT spent_day, spent FROM accounts WHERE token_id = 7")).one()
    assert row.status == "active" and row.guess_tat >= now + 5 * 3600 - 60  # a fresh cool-down
    backend = Backend(engine, ring)
    assert backend.token_info(8)["status"] == "locked" and backend.token_info(8)["locked_until"] > now
    assert spent.spent_day == int(time.time()) // 86400 and spent.spent >= 1200  # today's payments
    engine.dispose()
