"""Drift as an offset and a rate: simulated years of weekly use on SQLite and PostgreSQL.

A token's crystal runs ``ppm`` fast (negative: slow) from its activation at T0, when the
station set its clock. Each payment's code was shown 0-20 s before the till sends it.
"""

from __future__ import annotations

import random

import paycode
import pytest
from alembic import command
from paytoken.backend.service import Backend
from paytoken.backend.store.db import _alembic_config, make_engine, migrate
from paytoken.backend.verify import Drift, learn_drift, locate_step, observed_drift
from sqlalchemy import text

from .conftest import SECRET, T0

YEAR = 365 * 86_400
WEEK = 7 * 86_400


def token_time(ppm: float, t: float) -> float:
    return T0 + (t - T0) * (1 + ppm * 1e-6)


def _year(backend: Backend, clock, key: bytes, mid: int, tokens: dict[int, float], interval: int,
          seed: int) -> dict[int, list]:
    """Every token pays about every ``interval`` s (± 3 h) for a year, all on one timeline.
    A refused code is followed 30 s later by the token's next code (the customer retries).
    Returns each token's refusals as (week, reason, retry accepted)."""
    rng = random.Random(seed)
    events = []
    for tid in tokens:
        t = T0 + rng.randint(0, 3600)
        while t < T0 + YEAR:
            events.append((t, tid))
            t += interval + rng.randint(-3 * 3600, 3 * 3600)
    events.sort()
    refusals: dict[int, list] = {tid: [] for tid in tokens}
    for n, (t, tid) in enumerate(events):
        delay = rng.uniform(0, 20)
        clock.t = t
        code = paycode.payment_code(SECRET, tid, int(token_time(tokens[tid], t - delay)), key)
        r = backend.pay(mid, code, 1, "CNY", f"y{n}")
        if r["status"] != "succeeded":
            clock.t = t + 30
            retry = paycode.payment_code(SECRET, tid, int(token_time(tokens[tid], t + 30 - delay)), key)
            ok = backend.pay(mid, retry, 1, "CNY", f"y{n}r")["status"] == "succeeded"
            refusals[tid].append(((t - T0) // WEEK, r["reason"], ok))
    return refusals


def _world(db_url, ring, clock, tokens: dict[int, float], prior_error: dict[int, float] | None):
    backend = Backend(make_engine(db_url), ring, clock=clock)
    key = backend.add_scheme("81")
    for tid, ppm in tokens.items():
        prior = None if prior_error is None else ppm + prior_error[tid]
        backend.add_token(tid, SECRET, drift_ppm=prior)
        backend.credit(tid, 10**6)
    mid, _ = backend.add_merchant("till")
    return backend, key, mid


def test_weekly_year_minus50_to_plus50_ppm_with_measured_rate(db_url, ring, clock):
    # The station measured each crystal (to within ±1 ppm) and the token does not correct
    # itself: the model starts from that rate. Every weekly code of the year is accepted.
    tokens = {100 + i: float(ppm) for i, ppm in enumerate(range(-50, 51, 10))}
    rng = random.Random(7)
    backend, key, mid = _world(db_url, ring, clock, tokens, {tid: rng.uniform(-1, 1) for tid in tokens})
    refusals = _year(backend, clock, key, mid, tokens, WEEK, seed=11)
    assert all(not r for r in refusals.values()), refusals
    for tid, ppm in tokens.items():
        info = backend.token_info(tid)
        assert abs(info["drift_ppm"] - ppm) <= 2.0, (ppm, info)
        assert abs(info["drift_seconds"] - ppm * 1e-6 * YEAR) <= 30, (ppm, info)
    assert backend.verify_audit().ok
    backend.engine.dispose()


def test_weekly_year_without_a_measured_rate(db_url, ring, clock):
    # No rate known: it is learned from the codes. Only in the first weeks can one code fall
    # outside ±1 step; the customer's next code then confirms it (RFC 6238 §6) and the rate
    # is learned from the pair. The rest of the year is accepted.
    tokens = {200: -50.0, 201: -35.0, 202: -20.0, 203: 0.0, 204: 20.0, 205: 35.0, 206: 50.0}
    backend, key, mid = _world(db_url, ring, clock, tokens, None)
    refusals = _year(backend, clock, key, mid, tokens, WEEK, seed=3)
    for tid, got in refusals.items():
        assert len(got) <= 1 and all(week < 4 and reason == "CODE_EXPIRED" and ok for week, reason, ok in got), \
            (tokens[tid], got)
        assert abs(backend.token_info(tid)["drift_ppm"] - tokens[tid]) <= 3.0, backend.token_info(tid)
    backend.engine.dispose()


def test_plus20ppm_daily_year_learns_the_rate(db_url, ring, clock):
    tokens = {300: 20.0}
    backend, key, mid = _world(db_url, ring, clock, tokens, None)
    refusals = _year(backend, clock, key, mid, tokens, 86_400, seed=5)
    assert refusals == {300: []}
    info = backend.token_info(300)
    assert 18.0 <= info["drift_ppm"] <= 22.0 and 590 <= info["drift_seconds"] <= 650, info
    backend.engine.dispose()


def _walk(ppm: float, use_rate: bool, seed: int = 1) -> int:
    """Refusals in a year of weekly codes under the pure rules (no database)."""
    rng = random.Random(seed)
    drift, offset, refused, t = Drift.fresh(T0), 0, 0, T0
    while t < T0 + YEAR:
        shown = int(token_time(ppm, t - rng.uniform(0, 20)))
        step = shown // 30
        expected = round(drift.predict(t)) if use_rate else offset
        _s, off = locate_step(t, expected, step % 10)
        obs = observed_drift(step, t)
        if abs(off) > 1:
            refused += 1
            drift, offset = drift.resync(t, obs), obs
        else:
            drift, offset = drift.update(t, obs), learn_drift(offset, step, t)
        t += WEEK
    return refused


@pytest.mark.parametrize("ppm", [-50.0, -40.0, 40.0, 50.0])
def test_offset_alone_walks_out_where_the_rate_holds(ppm):
    # The old rule (offset moved half-way per code) lags a steady drift by about twice a
    # week's drift: at 40-50 ppm used weekly it refuses a code every few weeks all year
    # (-30/+30 ppm: about every 5 weeks); offset + rate refuses at most one, early.
    assert _walk(ppm, use_rate=False) >= 10
    assert _walk(ppm, use_rate=True) <= 1


def test_migration_0002_starts_the_model_from_the_old_offset(db_url, ring, clock):
    engine = make_engine(db_url)
    backend = Backend(engine, ring, clock=clock)
    key = backend.add_scheme("81")
    backend.add_token(7, SECRET)
    backend.credit(7, 1000)
    mid, _ = backend.add_merchant("m")
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0001")
    with engine.begin() as conn:  # as a 0001 database left it: 60 s learned, no model columns
        conn.execute(text("UPDATE tokens SET drift = 2, drift_s = 60 WHERE id = 7"))
        assert "drift_ppm" not in conn.execute(text("SELECT * FROM tokens")).keys()
    engine.dispose()
    assert migrate(engine) == "0009"
    backend = Backend(engine, ring, clock=clock)
    assert backend.token_info(7)["drift_ppm"] is None
    clock.t = T0 + 3600
    code = paycode.payment_code(SECRET, 7, int(clock.t + 60), key)  # the token runs 60 s ahead
    assert backend.pay(mid, code, 1, "CNY", "after-upgrade")["status"] == "succeeded"
    info = backend.token_info(7)
    assert info["drift_ppm"] is not None and 40 <= info["drift_seconds"] <= 75, info
    engine.dispose()
