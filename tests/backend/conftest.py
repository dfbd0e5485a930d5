"""Backend fixtures: a fresh migrated database per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from paytoken.backend import rules
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine, migrate
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from waits import bound

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
SECRET = bytes(range(1, 21))  # 160-bit test secret


class Clock:
    """An injected UTC clock."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    engine = make_engine(str(path))
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_template(pg_url) -> str:
    name = "pt_tmpl_" + uuid.uuid4().hex[:12]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(pg_url).set(database=name).render_as_string(hide_password=False))
    migrate(engine)
    engine.dispose()
    yield name
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh migrated database: a copied SQLite file, or a PostgreSQL database from a template."""
    if request.param == "sqlite":
        path = tmp_path / "paytoken.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    pg_url = request.getfixturevalue("pg_url")
    tmpl = request.getfixturevalue("pg_template")
    name = "pt_" + uuid.uuid4().hex[:16]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tmpl}"'))
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def master_hex() -> str:
    return os.urandom(32).hex()


@pytest.fixture
def ring(master_hex) -> Keyring:
    return Keyring([bytes.fromhex(master_hex)])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class World:
    backend: Backend
    clock: Clock
    scheme_key: bytes
    merchant_id: int
    api_key: str
    url: str


@pytest.fixture
def world(db_url, ring, clock) -> World:
    """A backend with scheme 81, token 42 (balance 100000 CNY) and one merchant."""
    backend = Backend(make_engine(db_url), ring, clock=clock)
    key = backend.add_scheme("81")
    backend.add_token(42, SECRET)
    backend.credit(42, 100_000)
    mid, api_key = backend.add_merchant("shop")
    yield World(backend, clock, key, mid, api_key, db_url)
    backend.engine.dispose()


def assert_bad_keys_throttled(statuses: list[int], elapsed: float) -> None:
    """``statuses`` of requests with wrong or no keys from one address, sent over ``elapsed``
    seconds, as rules.BAD_KEYS allows: a burst of 401s at once, then 429s, except one more
    401 per whole interval elapsed (none on a quick machine, a few on a slow one)."""
    b = rules.BAD_KEYS
    rest = statuses[b.burst:]
    assert statuses[:b.burst] == [401] * b.burst and set(rest) <= {401, 429}, statuses
    assert rest.count(401) <= int(elapsed // b.interval_s), (statuses, f"{elapsed:.1f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real ``paytoken serve`` (uvicorn) on 127.0.0.1, its output captured to a file."""

    def __init__(self, db_url: str, master_hex: str, log_path: Path, workers: int = 1,
                 env: dict | None = None) -> None:
        self.log_path = log_path
        env = dict(os.environ, PAYTOKEN_MASTER_KEY=master_hex, **(env or {}))
        for _ in range(3):
            # a free port may be taken by someone else before the server binds it: retry
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._log = open(log_path, "wb")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "paytoken", "serve", "--db", db_url, "--port", str(self.port),
                 "--workers", str(workers), "--log-level", "info"],
                env=env, stdout=self._log, stderr=subprocess.STDOUT)
            if self._wait_up():
                return
            self._log.close()
            if "already in use" not in log_path.read_text(errors="replace"):
                break
        raise RuntimeError("server did not start: " + log_path.read_text(errors="replace"))

    def _wait_up(self) -> bool:
        # a busy machine imports uvicorn and FastAPI slowly: a minute before it is "not up"
        deadline = time.monotonic() + bound(120)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(self.url + "/v1/health", timeout=bound(10)).status_code == 200:
                    return True
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
