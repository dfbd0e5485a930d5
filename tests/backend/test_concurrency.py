"""One code submitted by 50 processes at once, under 50 order ids: exactly one payment."""

from __future__ import annotations

import multiprocessing as mp

import paycode
import pytest
from paytoken.backend.crypto import Keyring
from paytoken.backend.db import make_engine
from paytoken.backend.service import Backend

from .conftest import SECRET, T0

N = 50


def _submit(url, master, mid, code, i, barrier, out):
    backend = Backend(make_engine(url, pool_size=1), Keyring([master]), clock=lambda: T0 + 5)
    barrier.wait(60)
    try:
        r = backend.pay(mid, code, 700, "CNY", f"order-{i}")
        out.put((i, r["status"], r["reason"]))
    except Exception as exc:  # reported, and the assertion below fails on it
        out.put((i, "error", repr(exc)))
    backend.engine.dispose()


@pytest.mark.timeout(180)
def test_fifty_processes_one_code_exactly_one_wins(world, master_hex):
    w = world
    code = paycode.payment_code(SECRET, 42, T0, w.scheme_key)
    w.backend.engine.dispose()
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(N), ctx.Queue()
    procs = [ctx.Process(target=_submit, args=(w.url, bytes.fromhex(master_hex), w.merchant_id, code, i,
                                               barrier, out)) for i in range(N)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in range(N)]
    for p in procs:
        p.join(30)
    statuses = sorted(r[1] for r in results)
    assert statuses.count("succeeded") == 1, results
    assert all(r[2] == "CODE_REPLAYED" for r in results if r[1] != "succeeded"), results
    assert w.backend.token_info(42)["balance"] == 100_000 - 700
    assert w.backend.verify_audit().ok
