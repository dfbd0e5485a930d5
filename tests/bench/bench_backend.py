"""Issuer backend: verifications/s beside the storage ceiling and pyotp, scaling, HTTP latency.

Loopback only, bounded loops. PostgreSQL rows need $PAYTOKEN_TEST_PG_URL (make bench).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import paycode
import pyotp
from paytoken.backend.crypto import Keyring
from paytoken.backend.db import make_engine, migrate
from paytoken.backend.models import Account, Token
from paytoken.backend.service import Backend
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TITLE = "Issuer backend (verification, scaling, HTTP)"
SECRET = bytes(range(1, 21))
T0 = 1_767_225_600
N_VERIFY = 2000


class _Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        return self.t


def _bulk_tokens(backend: Backend, ids, real: bool, balance: int = 10**9) -> None:
    """Insert tokens fast (executemany). ``real`` seals each secret; filler rows get a
    placeholder envelope (they are never verified)."""
    ring = backend.keyring
    rows, accts = [], []
    for i in ids:
        enc = ring.seal(SECRET, f"token:{i}:secret") if real else "v1.filler.x.y"
        sync = ring.seal(SECRET, f"token:{i}:sync") if real else "v1.filler.x.y"
        rows.append({"id": i, "prefix": "81", "status": "active", "secret_enc": enc, "sync_key_enc": sync,
                     "drift": 0, "drift_s": 0, "last_step": -1, "failures": 0, "clock_suspect": 0,
                     "created_at": T0})
        accts.append({"token_id": i, "currency": "CNY", "balance": balance})
    with backend.engine.begin() as conn:
        for k in range(0, len(rows), 50_000):
            conn.execute(Token.__table__.insert(), rows[k:k + 50_000])
            conn.execute(Account.__table__.insert(), accts[k:k + 50_000])


class _Db:
    """A fresh migrated database: a temp SQLite file, or a new PostgreSQL database."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.dir = tempfile.TemporaryDirectory()
            self.url = f"sqlite:///{self.dir.name}/bench.db"
        else:
            base = os.environ["PAYTOKEN_TEST_PG_URL"]
            self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
            self.name = "bench_" + uuid.uuid4().hex[:12]
            with self.admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = make_url(base).set(database=self.name).render_as_string(hide_password=False)
        engine = make_engine(self.url)
        migrate(engine)
        engine.dispose()

    def close(self) -> None:
        if self.kind == "sqlite":
            self.dir.cleanup()
        else:
            with self.admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


def _ceiling(db: _Db, n: int = 3000) -> float:
    """Bare loop: one single-row conditional UPDATE + commit, straight on the driver,
    with the same durability settings as the backend (SQLite WAL synchronous=FULL)."""
    if db.kind == "sqlite":
        path = make_url(db.url).database
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS ceil (id INTEGER PRIMARY KEY, s INTEGER)")
        conn.execute("INSERT OR REPLACE INTO ceil VALUES (1, 0)")
        t = time.perf_counter()
        for i in range(1, n + 1):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE ceil SET s = ? WHERE id = 1 AND s < ?", (i, i))
            conn.execute("COMMIT")
        dt = time.perf_counter() - t
        conn.close()
        return n / dt
    import psycopg

    url = make_url(db.url)
    conn = psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
    conn.execute("CREATE TABLE ceil (id int PRIMARY KEY, s bigint)")
    conn.execute("INSERT INTO ceil VALUES (1, 0)")
    conn.commit()
    t = time.perf_counter()
    for i in range(1, n + 1):
        conn.execute("UPDATE ceil SET s = %s WHERE id = 1 AND s < %s", (i, i))
        conn.commit()
    dt = time.perf_counter() - t
    conn.close()
    return n / dt


def _verify_rate(backend: Backend, clock: _Clock, ids: list[int], key: bytes, rounds: int = 1,
                 pay: bool = False, mid: int = 0) -> float:
    """Verifications/s over ``ids`` (each token once per round, a new step per round)."""
    total, elapsed = 0, 0.0
    for _ in range(rounds):
        clock.t += 30
        codes = [paycode.payment_code(SECRET, i, clock.t, key) for i in ids]
        t = time.perf_counter()
        if pay:
            for j, c in enumerate(codes):
                out = backend.pay(mid, c, 1, "CNY", f"b{clock.t}-{j}")
                if out["status"] != "succeeded":
                    raise RuntimeError(f"bench payment refused: {out['reason']}")
        else:
            for c in codes:
                if not backend.verify(c).ok:
                    raise RuntimeError("bench verification failed")
        elapsed += time.perf_counter() - t
        total += len(codes)
    return total / elapsed


def _setup(kind: str, n_real: int = N_VERIFY, filler: int = 0):
    db = _Db(kind)
    clock = _Clock()
    ring, _ = Keyring.generate()
    backend = Backend(make_engine(db.url), ring, clock=clock)
    key = backend.add_scheme("81")
    ids = list(range(1, n_real + 1))
    _bulk_tokens(backend, ids, real=True)
    if filler:
        _bulk_tokens(backend, range(n_real + 1, n_real + 1 + filler), real=False)
    mid, api = backend.add_merchant("bench")
    return db, backend, clock, key, ids, mid, api, ring


def _pyotp_rate(n: int = 20000) -> float:
    totp = pyotp.TOTP(pyotp.random_base32())
    code = totp.at(T0)
    t = time.perf_counter()
    for _ in range(n):
        totp.verify(code, for_time=T0, valid_window=1)
    return n / (time.perf_counter() - t)


def _http(rows: list) -> None:
    """Real ``paytoken serve`` on SQLite (default setup, 1 worker): closed-loop max rate,
    then open loop at 500 payments/s, p50/p99 from the scheduled send time."""
    import httpx

    n_tokens = 6000
    db, backend, clock, key, ids, mid, api, ring = _setup("sqlite", n_real=n_tokens)
    master_hex = ring._raw[0].hex()
    backend.engine.dispose()
    with socket_port() as port:
        pass
    env = dict(os.environ, PAYTOKEN_MASTER_KEY=master_hex)
    log = open(Path(db.dir.name) / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "paytoken", "serve", "--db", db.url, "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        now = int(time.time())
        codes = [paycode.payment_code(SECRET, i, now, key) for i in ids]

        async def closed(n_clients: int, work: list) -> tuple[float, list]:
            lat = []
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {api}"},
                                         limits=httpx.Limits(max_connections=n_clients)) as client:
                async def worker(items):
                    for j, c in items:
                        t = time.perf_counter()
                        r = await client.post("/v1/payments", json={"code": c, "amount": 1, "currency": "CNY",
                                                                    "merchant_order_id": f"c{j}"})
                        lat.append(time.perf_counter() - t)
                        if r.json().get("status") != "succeeded":
                            raise RuntimeError(r.text)
                t = time.perf_counter()
                await asyncio.gather(*(worker(work[k::n_clients]) for k in range(n_clients)))
                return len(work) / (time.perf_counter() - t), lat

        async def open_loop(rate: float, work: list) -> tuple[list, int]:
            lat, errors = [], 0
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {api}"},
                                         limits=httpx.Limits(max_connections=200),
                                         timeout=httpx.Timeout(30.0, pool=None)) as client:
                start = time.perf_counter() + 0.05

                async def one(k, j, c):
                    nonlocal errors
                    due = start + k / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    try:
                        r = await client.post("/v1/payments", json={"code": c, "amount": 1, "currency": "CNY",
                                                                    "merchant_order_id": f"o{j}"})
                        ok = r.status_code == 200 and r.json().get("status") == "succeeded"
                    except httpx.HTTPError:
                        ok = False
                    lat.append(time.perf_counter() - due)
                    errors += not ok

                await asyncio.gather(*(one(k, j, c) for k, (j, c) in enumerate(work)))
            return lat, errors

        work = list(enumerate(codes))
        rate, lat_c = asyncio.run(closed(16, work[:2000]))
        rows.append({"name": "HTTP payments/s, 16 concurrent clients (SQLite, 1 worker)", "value": rate,
                     "unit": "payments/s", "how": "paytoken serve on loopback; closed loop, 2000 payments, "
                     "one Python asyncio client process on the same 2 cores"})
        rows.append({"name": "HTTP latency p50 / p99 at 16 clients, closed loop",
                     "value": f"{statistics.median(lat_c) * 1e3:.1f} / {_pct(lat_c, 99) * 1e3:.1f}",
                     "unit": "ms", "how": "per request, send to answer"})
        lat, errors = asyncio.run(open_loop(500.0, work[2000:2000 + 3500]))
        p99 = _pct(lat, 99)
        rows.append({"name": "HTTP p50 at 500 payments/s offered (SQLite, 1 worker)",
                     "value": statistics.median(lat) * 1e3, "unit": "ms",
                     "how": f"open loop, 3500 payments over 7 s, latency from scheduled send; {errors} errors"})
        rows.append({"name": "HTTP p99 at 500 payments/s offered (SQLite, 1 worker)", "value": p99 * 1e3,
                     "unit": "ms", "target": "< 20 ms", "met": p99 < 0.020 and errors == 0,
                     "how": "same run"})
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        db.close()


class socket_port:
    def __enter__(self) -> int:
        import socket

        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.s.close()


def _pct(values: list, p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def run() -> list[dict]:
    rows: list[dict] = []
    kinds = ["sqlite"] + (["postgres"] if os.environ.get("PAYTOKEN_TEST_PG_URL") else [])
    rows.append({"name": "pyotp.TOTP.verify (stateless, no replay safety)", "value": _pyotp_rate(),
                 "unit": "verifications/s", "how": "valid_window=1, in-process loop"})
    for kind in kinds:
        db, backend, clock, key, ids, mid, _api, _ring = _setup(kind)
        try:
            ceiling = _ceiling(db)
            v = _verify_rate(backend, clock, ids, key, rounds=2)
            p = _verify_rate(backend, clock, ids[:1000], key, rounds=1, pay=True, mid=mid)
        finally:
            backend.engine.dispose()
            db.close()
        rows.append({"name": f"{kind}: ceiling (bare conditional UPDATE + commit)", "value": ceiling,
                     "unit": "commits/s", "how": "raw driver loop, one row; SQLite WAL synchronous=FULL"})
        rows.append({"name": f"{kind}: Backend.verify in-process", "value": v, "unit": "verifications/s",
                     "target": ">= 50% of ceiling", "met": v >= 0.5 * ceiling,
                     "how": f"{2 * N_VERIFY} codes, FF1 + lookup + unseal + 1 HMAC + conditional UPDATE + "
                     f"commit; {100 * v / ceiling:.0f}% of ceiling"})
        rows.append({"name": f"{kind}: Backend.pay in-process", "value": p, "unit": "payments/s",
                     "how": f"1000 payments: verify + limits + debit + payment row + audit chain; "
                     f"{100 * p / ceiling:.0f}% of ceiling"})
    for kind in kinds:
        per = {}
        for n in (10**3, 10**5, 10**6):
            db, backend, clock, key, ids, mid, _a, _r = _setup(kind, n_real=1000, filler=n - 1000)
            try:
                per[n] = 1e6 / _verify_rate(backend, clock, ids, key, rounds=1)
            finally:
                backend.engine.dispose()
                db.close()
            rows.append({"name": f"{kind}: time per verification, {n:,} tokens", "value": per[n], "unit": "µs",
                         "how": "1000 verifications of random registered tokens among n (bulk-inserted)"})
        flat = max(per.values()) / min(per.values())
        rows.append({"name": f"{kind}: slowest / fastest across 10^3..10^6 tokens", "value": flat,
                     "unit": "ratio", "target": "flat (<= 1.5)", "met": flat <= 1.5,
                     "how": "from the three rows above"})
    _http(rows)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
