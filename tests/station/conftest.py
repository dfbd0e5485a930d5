"""Fixtures: a real issuer database (SQLite file, or PostgreSQL via ``pg_url``) and
virtual tokens with the firmware deployed, registered in a per-test registry; and in
every test, a watch on what host code runs on a token (hostapi calls only)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vdev"))

from paytoken.station.provision import Station  # noqa: E402
from paytoken.station.transport import Device  # noqa: E402
from stationkit import HOST, HOSTCALL, SEAM, WRAPPER, Issuer, deploy_to, firmware_use, new_issuer  # noqa: E402
from vdevkit import VTok, start_vdev  # noqa: E402


@pytest.fixture(autouse=True)
def host_runs_only_hostapi(monkeypatch: pytest.MonkeyPatch):
    """Every snippet the host's code (not a test's) runs on a token in this process is a
    call of the wrapper (station/hostcalls.py) or uses MicroPython's own modules only."""
    bad: list[str] = []
    real = Device.exec

    def watched(self: Device, code: str, *, timeout: float | None = None) -> str:
        f = sys._getframe(1)
        while f is not None and Path(f.f_code.co_filename) == SEAM:
            f = f.f_back  # Device.eval, put, get: the transport's own
        where = Path(f.f_code.co_filename) if f is not None else None
        if where is not None and HOST in where.parents:
            if HOSTCALL.search(code) and where != WRAPPER:
                bad.append(f"{where.name}: a host call built outside the wrapper")
            elif not HOSTCALL.search(code) and firmware_use(code):
                bad.append(f"{where.name}: ran {sorted(firmware_use(code))}")
        return real(self, code, timeout=timeout)

    monkeypatch.setattr(Device, "exec", watched)
    yield bad
    assert bad == [], "host code ran firmware internals on a token"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private vdev registry, so --all sees only this test's tokens."""
    reg = tmp_path / "vdev-registry"  # where vdevkit.start_vdev registers tokens in tmp_path
    monkeypatch.setenv("PAYTOKEN_VDEV_REGISTRY", str(reg))
    return reg


@pytest.fixture
def tokens(tmp_path: Path, registry: Path):
    """``tokens(n, board="sim") -> [VTok]``: started, firmware deployed; stopped at teardown."""
    started: list[VTok] = []

    def make(n: int, board: str = "sim", firmware_dir: Path | None = None) -> list[VTok]:
        base = len(started)
        toks = [start_vdev(tmp_path / f"tok{base + i}") for i in range(n)]
        started.extend(toks)
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(lambda t: deploy_to(t.port, board, firmware_dir), toks))
        return toks

    yield make
    for t in started:
        t.stop()


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    """A migrated SQLite issuer database with scheme 81 and an admin key."""
    return new_issuer(f"sqlite:///{tmp_path / 'issuer.db'}", tmp_path)


@pytest.fixture
def pg_issuer(pg_url: str, tmp_path: Path):
    """The same on a fresh PostgreSQL database."""
    name = "pt_station_" + uuid.uuid4().hex[:12]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    iss = new_issuer(url, tmp_path)
    yield iss
    iss.backend.engine.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def server(issuer, tmp_path: Path):
    """``paytoken serve`` (uvicorn) on a free port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paytoken", "serve", "--port", str(port), "--log-level", "warning"],
        env=issuer.env(), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture
def provisioned(tokens, issuer):
    (tok,) = tokens(1)
    rep = Station(issuer.backend, board="sim").provision(tok.port)
    assert rep.status == "provisioned", rep.error
    return tok
