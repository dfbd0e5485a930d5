"""The one-statement payment and verification (backend/service/fastpay.py), and its fallback.

The statements a Backend sends are counted at the driver: every cursor of the hot path's
own connections (``Backend._pool``) and every statement through the SQLAlchemy engine.
On PostgreSQL a payment or a verification on a warm cache is exactly one statement, in
autocommit (no BEGIN, no COMMIT); a stale cache (another server paid in between) falls
back to the full transaction: no double debit, the replay refused, the drift kept.
The money checks run on SQLite too (there the full transaction always runs).
"""

from __future__ import annotations

import threading

import paycode
import pytest
from paytoken.backend import CONFLICT, THROTTLED, BackendError
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine
from sqlalchemy import event, text

from .conftest import SECRET, T0


class _Cursor:
    def __init__(self, cur, log: list) -> None:
        self._cur, self._log = cur, log

    def execute(self, sql, params=None):
        self._log.append(sql)
        return self._cur.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._cur, name)


class _Conn:
    def __init__(self, conn, log: list) -> None:
        self._conn, self._log = conn, log

    def cursor(self, *a, **kw):
        return _Cursor(self._conn.cursor(*a, **kw), self._log)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _Fairy:
    def __init__(self, fairy, log: list) -> None:
        self.fairy, self.dbapi_connection = fairy, _Conn(fairy.dbapi_connection, log)

    def close(self) -> None:
        self.fairy.close()


def count_statements(backend: Backend) -> list:
    """A list that receives every SQL statement ``backend`` sends from now on."""
    log: list = []
    pool = backend._pool
    get, put = pool.get, pool.put
    pool.get = lambda: _Fairy(get(), log)
    pool.put = lambda f: put(f.fairy)
    event.listen(backend.engine, "before_cursor_execute", lambda *a: log.append(a[2]))
    return log


def pay_at(w, t: int, order: str, amount: int = 100, backend: Backend | None = None, currency: str = "CNY"):
    w.clock.t = t
    code = paycode.payment_code(SECRET, 42, t, w.scheme_key)
    return (backend or w.backend).pay(w.merchant_id, code, amount, currency, order)


def balance(w) -> int:
    return w.backend.token_info(42)["balance"]


def payments(w) -> list:
    with w.backend.engine.connect() as c:
        return c.execute(text("SELECT status, reason, amount FROM payments ORDER BY created_at, id")).all()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_warm_payment_and_verification_are_one_statement(world):
    w = world
    log = count_statements(w.backend)
    assert pay_at(w, T0 - 30, "o0")["status"] == "succeeded"  # a new server: learns the scheme
    log.clear()
    assert pay_at(w, T0, "o1")["status"] == "succeeded"
    assert len(log) == 2, log  # a cold token: its row, then the one statement
    log.clear()
    out = pay_at(w, T0 + 30, "o2")
    assert out["status"] == "succeeded" and out["token_id"] == 42
    assert len(log) == 1, log
    assert log[0].lstrip().startswith("WITH tok AS (UPDATE tokens")
    assert not any(s.strip().upper() in ("BEGIN", "COMMIT") for s in log)
    log.clear()
    w.clock.t = T0 + 60
    v = w.backend.verify(paycode.payment_code(SECRET, 42, T0 + 60, w.scheme_key))
    assert v.ok and v.step == (T0 + 60) // 30
    assert len(log) == 1 and log[0].startswith("WITH tok AS (UPDATE tokens SET"), log
    log.clear()
    # refusals after an accepted code are one statement too, the reason computed in SQL
    assert pay_at(w, T0 + 90, "o3", amount=200_000)["reason"] == "LIMIT_EXCEEDED"  # > 50000 a payment
    assert pay_at(w, T0 + 120, "o4", amount=40_000, currency="EUR")["reason"] == "INSUFFICIENT_FUNDS"
    assert len(log) == 2, log
    assert balance(w) == 100_000 - 300
    # the refused codes were consumed (as on the full path): a replay of one is refused
    assert pay_at(w, T0 + 90, "o5")["reason"] == "CODE_REPLAYED"
    assert w.backend.verify_audit().ok


def test_stale_cache_falls_back(world, ring):
    # Two servers (Backends) on one database: B pays with the token between A's payments.
    w = world
    b = Backend(make_engine(w.url), ring, clock=w.clock)
    try:
        assert pay_at(w, T0 - 30, "a0")["status"] == "succeeded"
        assert pay_at(w, T0, "a1")["status"] == "succeeded"  # A's cache now holds the row
        assert pay_at(w, T0 + 30, "b1", backend=b)["status"] == "succeeded"
        after_b = w.backend.token_info(42)
        # A, with its stale copy, gets B's code: a replay, not a second debit
        log = count_statements(w.backend) if w.backend._fast is not None else []
        r = pay_at(w, T0 + 30, "a2")
        assert (r["status"], r["reason"]) == ("refused", "CODE_REPLAYED")
        if w.backend._fast is not None:
            assert log[0].lstrip().startswith("WITH tok AS") and len(log) > 1  # tried, then the full path
        kept = w.backend.token_info(42)
        for k in ("last_step", "drift_seconds", "drift_ppm", "balance"):
            assert kept[k] == after_b[k], k  # B's drift model and debit stand; A wrote nothing
        # and A goes on paying with the next code (now from a fresh copy)
        assert pay_at(w, T0 + 60, "a3")["status"] == "succeeded"
        assert pay_at(w, T0 + 90, "a4")["status"] == "succeeded"
        # B's copy is stale now: its next code still pays once
        assert pay_at(w, T0 + 120, "b2", backend=b)["status"] == "succeeded"
        assert pay_at(w, T0 + 120, "a5")["reason"] == "CODE_REPLAYED"
        assert balance(w) == 100_000 - 6 * 100
        assert [p[0] for p in payments(w)].count("succeeded") == 6
        assert w.backend.verify_audit().ok
    finally:
        b.close()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_stale_copy_is_refreshed_by_the_failed_statement(world, ring):
    # A's copy is stale (B paid); A's statement fails on the version, answers with the row
    # as it is, and A's second statement pays on B's drift model: 2 statements, 1 debit.
    from paytoken.backend import verify

    w = world
    b = Backend(make_engine(w.url), ring, clock=w.clock)
    try:
        for t, who in ((T0 - 60, None), (T0 - 30, None), (T0, b), (T0 + 30, b)):
            assert pay_at(w, t, f"x{t}", backend=who)["status"] == "succeeded"
        with w.backend.engine.connect() as c:
            row = c.execute(text("SELECT * FROM tokens WHERE id = 42")).one()
        log = count_statements(w.backend)
        assert pay_at(w, T0 + 60, "x-a")["status"] == "succeeded"
        assert len(log) == 2 and all(s.startswith("WITH tok AS") for s in log), log
        step = (T0 + 60) // 30
        want = verify.drift_of(row).update(T0 + 60, verify.observed_drift(step, T0 + 60))
        info = w.backend.token_info(42)
        assert info["last_step"] == step
        assert info["drift_ppm"] == pytest.approx(want.ppm, rel=1e-12)
        assert balance(w) == 100_000 - 5 * 100
        # a verification on a stale copy: the same
        assert b.verify(paycode.payment_code(SECRET, 42, T0 + 90, w.scheme_key)).ok
        log.clear()
        w.clock.t = T0 + 120
        assert w.backend.verify(paycode.payment_code(SECRET, 42, T0 + 120, w.scheme_key)).ok
        assert len(log) == 2, log
    finally:
        b.close()


def test_stored_order_id_on_a_warm_cache(world):
    w = world
    first = pay_at(w, T0, "o1")
    assert first["status"] == "succeeded"
    # a retry with the same code is the stored answer
    assert pay_at(w, T0, "o1") == first
    # the order id with another code is a conflict, and that code is not consumed
    with pytest.raises(BackendError) as exc:
        pay_at(w, T0 + 30, "o1")
    assert exc.value.kind == CONFLICT
    assert pay_at(w, T0 + 30, "o2")["status"] == "succeeded"
    assert balance(w) == 100_000 - 200


def test_daily_limit_and_rollover_on_the_fast_path(world):
    w = world
    w.backend.set_token(42, "cli", limit_per_day=250, limit_per_payment=200)
    assert pay_at(w, T0, "d1", amount=200)["status"] == "succeeded"
    assert pay_at(w, T0 + 30, "d2", amount=100)["reason"] == "LIMIT_EXCEEDED"  # 300 > 250 today
    assert pay_at(w, T0 + 60, "d3", amount=201)["reason"] == "LIMIT_EXCEEDED"  # > 200 a payment
    assert pay_at(w, T0 + 90, "d4", amount=50)["status"] == "succeeded"  # 250: the limit exactly
    # the next UTC day starts at 0
    day2 = T0 + 86_400
    assert pay_at(w, day2, "d5", amount=200)["status"] == "succeeded"
    assert balance(w) == 100_000 - 450
    assert [p[:2] for p in payments(w)] == [("succeeded", None), ("refused", "LIMIT_EXCEEDED"),
                                            ("refused", "LIMIT_EXCEEDED"), ("succeeded", None),
                                            ("succeeded", None)]


def test_throttled_merchant_on_a_warm_cache(world):
    w = world
    assert pay_at(w, T0, "t1")["status"] == "succeeded"
    with w.backend.engine.begin() as c:  # the merchant key's guess budget is full
        c.execute(text("INSERT INTO throttles (key, tat) VALUES (:k, :t)"),
                  {"k": f"m:{w.merchant_id}", "t": T0 + 10**6})
    with pytest.raises(BackendError) as exc:
        pay_at(w, T0 + 30, "t2")
    assert exc.value.kind == THROTTLED
    assert balance(w) == 100_000 - 100
    assert len(payments(w)) == 1


def test_threads_race_one_code_on_a_warm_cache(world):
    w = world
    assert pay_at(w, T0, "w0")["status"] == "succeeded"
    w.clock.t = T0 + 30
    code = paycode.payment_code(SECRET, 42, T0 + 30, w.scheme_key)
    results, barrier = [], threading.Barrier(8)

    def one(i):
        barrier.wait(30)
        results.append(w.backend.pay(w.merchant_id, code, 100, "CNY", f"w{i + 1}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r["status"] for r in results).count("succeeded") == 1, results
    assert all(r["reason"] == "CODE_REPLAYED" for r in results if r["status"] != "succeeded")
    assert balance(w) == 100_000 - 200


def test_every_token_write_bumps_its_version(world):
    w = world

    def version() -> int:
        with w.backend.engine.connect() as c:
            return c.execute(text("SELECT version FROM tokens WHERE id = 42")).scalar()

    v0 = version()
    w.backend.set_token(42, "cli", limit_per_payment=1000)
    v1 = version()
    assert v1 > v0
    with w.backend.engine.begin() as c:  # even a write by hand
        c.execute(text("UPDATE tokens SET failures = failures WHERE id = 42"))
    assert version() == v1 + 1
    w.backend.lock(42, "cli")
    assert version() == v1 + 2
