"""Several ``paytoken serve`` processes on one PostgreSQL (docs/DEPLOY.md): three real
servers, each its own process and connection pool, straight to the database or through
PgBouncer in transaction mode. One code raced across all three is one payment; refunds
and limits hold across them; a server killed (SIGKILL) mid-load loses and doubles
nothing, and clients retrying with their order id get one answer each."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import paycode
import pytest
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine
from paytoken.backend.store.models import Payment
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from .conftest import SECRET, Server, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

TOKENS = range(1000, 1060)


def _pgbouncer_bin() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None)


class PgBouncer:
    """A real PgBouncer in transaction mode in front of the test server, on a free port."""

    def __init__(self, pg_url: str, pool_size: int = 8) -> None:
        exe = _pgbouncer_bin()
        if exe is None:
            if os.environ.get("CI"):
                pytest.fail("pgbouncer is not installed in CI: `make test` installs it (apt-get install pgbouncer)")
            pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")
        u = make_url(pg_url)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pt-bouncer-"))
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={u.host} port={u.port} user={u.username}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 500\n"
            f"logfile = {self.dir}/pgbouncer.log\npidfile = {self.dir}/pgbouncer.pid\n"
            "ignore_startup_parameters = extra_float_digits,options\n")
        cmd = [exe, str(ini)]
        if os.getuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(self.dir, "postgres")
            shutil.chown(ini, "postgres")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.host_url = u.set(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                eng = create_engine(self.url(u.database), connect_args={"prepare_threshold": None})
                with eng.connect() as c:
                    c.execute(text("SELECT 1"))
                eng.dispose()
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("pgbouncer did not start: " + self.log()) from None
                time.sleep(0.2)

    def url(self, database: str) -> str:
        return self.host_url.set(database=database).render_as_string(hide_password=False)

    def log(self) -> str:
        p = self.dir / "pgbouncer.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def show(self, what: str) -> list:
        """The admin console's SHOW <what> (pools, stats)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer",
                             autocommit=True, prepare_threshold=None) as c:
            return c.execute(f"SHOW {what}").fetchall()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["direct", "pgbouncer"])
def farm(request, pg_url, pg_template, tmp_path_factory):
    """Three ``paytoken serve`` processes on one fresh database, seeded through the
    database; shared by this module's tests (each uses its own tokens)."""
    from paytoken.backend.crypto import Keyring

    name = "pt_" + uuid.uuid4().hex[:16]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    direct = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    master = os.urandom(32)
    backend = Backend(make_engine(direct), Keyring([master]))
    key = backend.add_scheme("81")
    for tid in (42, 43, 44, *TOKENS):
        backend.add_token(tid, SECRET)
        backend.credit(tid, 100_000)
    mid, api_key = backend.add_merchant("shop")
    logs = tmp_path_factory.mktemp("farm")
    bouncer, servers = None, []
    try:
        if request.param == "pgbouncer":
            bouncer = PgBouncer(pg_url)
            served = bouncer.url(name) + "?prepare_threshold=none"
        else:
            served = direct
        start = lambda i: Server(served, master.hex(), logs / f"server{i}-{time.monotonic_ns()}.log")  # noqa: E731
        with ThreadPoolExecutor(3) as pool:  # they boot in parallel
            servers.extend(pool.map(start, range(3)))
        yield {"backend": backend, "servers": servers, "key": key, "api": api_key, "mid": mid,
               "bouncer": bouncer, "mode": request.param, "start": start}
    finally:
        for srv in servers:
            srv.stop()
        if bouncer is not None:
            bouncer.stop()
        backend.close()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _code(farm, token_id: int, at: float | None = None) -> str:
    return paycode.payment_code(SECRET, token_id, int(time.time() if at is None else at), farm["key"])


def _post(client: httpx.Client, url: str, path: str, body: dict | None, key: str,
          idem: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return client.post(url + path, json=body, headers=headers)


def _payments(backend) -> int:
    with backend.engine.connect() as c:
        return c.execute(select(func.count()).select_from(Payment.__table__)).scalar()


def test_one_code_raced_across_three_servers_is_one_payment(farm):
    before = farm["backend"].token_info(42)["balance"]
    code, n = _code(farm, 42), 30
    barrier, results = threading.Barrier(n), [None] * n

    def go(i):
        with httpx.Client(timeout=60) as c:
            barrier.wait(30)
            url = farm["servers"][i % 3].url
            body = {"code": code, "amount": 700, "currency": "CNY", "merchant_order_id": f"race-{i}"}
            results[i] = _post(c, url, "/v1/payments", body, farm["api"]).json()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    statuses = [r["status"] for r in results]
    assert statuses.count("succeeded") == 1, results
    assert {r["reason"] for r in results if r["status"] != "succeeded"} == {"CODE_REPLAYED"}, results
    assert farm["backend"].token_info(42)["balance"] == before - 700
    assert farm["backend"].verify_audit().ok
    if farm["bouncer"] is not None:  # the servers really went through the pooler
        stats = farm["bouncer"].show("STATS")
        assert any(row[0] not in ("pgbouncer",) and row[1] > 0 for row in stats), stats


def test_refunds_and_limits_hold_across_servers(farm):
    b, servers, api = farm["backend"], farm["servers"], farm["api"]
    before = b.token_info(44)["balance"]
    with httpx.Client(timeout=60) as c:
        pay = _post(c, servers[0].url, "/v1/payments", {"code": _code(farm, 44), "amount": 1000,
                                                        "currency": "CNY", "merchant_order_id": "refund-me"},
                    api).json()
        assert pay["status"] == "succeeded", pay
    # 12 distinct refunds (own Idempotency-Keys) of 300 at once, 4 per server: only what the
    # payment holds (3) go through
    n, barrier, codes = 12, threading.Barrier(12), [None] * 12

    def refund(i):
        with httpx.Client(timeout=60) as c:
            barrier.wait(30)
            r = _post(c, servers[i % 3].url, f"/v1/payments/{pay['payment_id']}/refund", {"amount": 300}, api,
                      idem=f"refund-{i}")
            codes[i] = r.status_code

    threads = [threading.Thread(target=refund, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(codes) == [200] * 3 + [409] * 9, codes
    assert b.token_info(44)["balance"] == before - 1000 + 900

    # a daily limit: three valid codes of one token (steps s-1, s, s+1) on three servers at once
    tid = 43
    with b.engine.begin() as conn:
        conn.execute(text("UPDATE tokens SET limit_per_day = 1000 WHERE id = :id"), {"id": tid})
    while not 3 <= time.time() % 30 <= 18:  # mid-step: all three codes stay in the window
        time.sleep(0.2)
    now = time.time()
    jobs = [(_code(farm, tid, now + d), f"lim-{i}") for i, d in enumerate((-30, 0, 30))]
    barrier, answers = threading.Barrier(3), {}

    def pay_limited(i):
        code, order = jobs[i]
        with httpx.Client(timeout=60) as c:
            barrier.wait(30)
            answers[order] = _post(c, servers[i].url, "/v1/payments", {
                "code": code, "amount": 600, "currency": "CNY", "merchant_order_id": order}, api).json()

    threads = [threading.Thread(target=pay_limited, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    ok = [a for a in answers.values() if a["status"] == "succeeded"]
    assert len(ok) == 1, answers  # 2 x 600 would pass the 1000 limit
    assert b.token_info(tid)["balance"] == 100_000 - 600
    # the others: over the limit, or (once a later step paid and moved the token's clock
    # model) replayed or out of the window
    assert {a["reason"] for a in answers.values() if a["status"] != "succeeded"} <= {
        "LIMIT_EXCEEDED", "CODE_REPLAYED", "CODE_EXPIRED"}, answers


def test_a_server_killed_mid_load_loses_and_doubles_nothing(farm):
    b, servers, api = farm["backend"], farm["servers"], farm["api"]
    before = _payments(b)
    jobs: queue.Queue = queue.Queue()
    for tid in TOKENS:
        jobs.put(tid)
    answers: dict[str, list[dict]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    done = [0]
    alive = [True, True, True]
    victim = 1

    def worker(w):
        with httpx.Client(timeout=30) as c:
            k = w
            while True:
                try:
                    tid = jobs.get_nowait()
                except queue.Empty:
                    return
                order = f"kill-{tid}"
                body = {"code": _code(farm, tid), "amount": 100, "currency": "CNY", "merchant_order_id": order}
                for _attempt in range(8):  # clients do not know which server died
                    k += 1
                    s = k % 3
                    try:
                        r = _post(c, servers[s].url, "/v1/payments", body, api)
                    except httpx.HTTPError as exc:  # the killed server: retry elsewhere, same order id
                        with lock:
                            errors.append(f"{order}@{s}: {exc.__class__.__name__}")
                        continue
                    assert r.status_code == 200, r.text
                    with lock:
                        answers[order].append(dict(r.json(), _server=s, _attempt=_attempt))
                        done[0] += 1
                    # a client that got an answer asks again (say its response was lost): same answer
                    if tid % 4 == 0:
                        other = servers[(s + 1) % 3] if alive[(s + 1) % 3] else servers[s]
                        try:
                            again = _post(c, other.url, "/v1/payments", body, api)
                        except httpx.HTTPError:
                            break  # it died meanwhile: the first answer stands
                        with lock:
                            answers[order].append(again.json())
                    break

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    while done[0] < len(TOKENS) // 3:
        time.sleep(0.01)
    servers[victim].proc.send_signal(signal.SIGKILL)
    servers[victim].proc.wait(10)
    alive[victim] = False
    for t in threads:
        t.join(120)
    assert servers[victim].proc.returncode == -signal.SIGKILL
    servers[victim].stop()
    servers[victim] = farm["start"](victim)  # the module's other tests keep three servers
    assert set(answers) == {f"kill-{tid}" for tid in TOKENS}, (len(answers), errors)
    for order, got in answers.items():
        bare = [{k: v for k, v in a.items() if not k.startswith("_")} for a in got]
        assert all(a == bare[0] for a in bare), (order, got)  # one answer per order id
        assert got[0]["status"] == "succeeded", repr((order, got, b.token_info(int(order[5:])), errors))
    assert errors, "the kill hit no request: not mid-load"
    # the database agrees: one payment per order, one debit per payment
    assert _payments(b) - before == len(TOKENS)
    with b.engine.connect() as c:
        per_order = c.execute(text("SELECT merchant_order_id, count(*) FROM payments "
                                   "WHERE merchant_order_id LIKE 'kill-%' GROUP BY 1")).all()
    assert len(per_order) == len(TOKENS) and all(n == 1 for _, n in per_order)
    for tid in TOKENS:
        assert b.token_info(tid)["balance"] == 100_000 - 100
    assert b.verify_audit().ok


def test_pgbouncer_transaction_mode_needs_no_prepared_statements(pg_url):
    # Why the URL says ?prepare_threshold=none behind PgBouncer in transaction mode:
    # psycopg prepares a statement on its 5th run, on whichever server connection the
    # pooler lent; the next run may land on another one, which never saw it.
    import psycopg

    bouncer = PgBouncer(pg_url, pool_size=2)
    db = make_url(pg_url).database
    try:
        def run(threshold) -> list[str]:
            errors: list[str] = []

            def go():
                try:
                    with psycopg.connect(host="127.0.0.1", port=bouncer.port, user="postgres", dbname=db,
                                         autocommit=True, prepare_threshold=threshold) as c:
                        for i in range(50):
                            assert c.execute("SELECT %s::int + 1", (i,)).fetchone() == (i + 1,)
                except psycopg.Error as exc:
                    errors.append(str(exc))

            threads = [threading.Thread(target=go) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            return errors

        assert any("prepared statement" in e for e in run(5)), "psycopg's default did not trip PgBouncer"
        assert run(None) == []
        engine = make_engine(bouncer.url(db) + "?prepare_threshold=none")  # the URL form docs/DEPLOY.md gives
        with engine.connect() as c:
            for _ in range(20):
                assert c.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()
    finally:
        bouncer.stop()
