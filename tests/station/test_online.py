"""The online factory on virtual tokens and a real issuer HTTP server (uvicorn): the
station and the desk reach the issuer only over its admin API, with an admin key, and
hold no master key and no database URL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from paytoken import scan, vhw
from paytoken.backend import UNAVAILABLE, BackendError
from paytoken.backend.store.models import ACTIVE, AuditLog
from paytoken.station import ops
from paytoken.station.online import HttpIssuer
from paytoken.station.provision import Station
from sqlalchemy import select
from stationkit import assert_no_secret, fwconfig, paytoken, reports, token_config


@pytest.fixture
def server(issuer, tmp_path: Path):
    """``paytoken serve`` (uvicorn, access log on) on a free port: (base URL, log path)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paytoken", "serve", "--port", str(port), "--log-level", "debug"],
        env=issuer.env(), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log_path.read_text()[-2000:]
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield url, log_path
    proc.terminate()
    proc.wait(10)
    log.close()


def _station_env() -> dict[str, str]:
    # The station holds no master key and no database URL: prove it (a --db default
    # that would be opened points nowhere).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYTOKEN_")
           or k == "PAYTOKEN_VDEV_REGISTRY"}
    env["PAYTOKEN_DB"] = "sqlite:////nonexistent/issuer.db"
    return env


def _key_file(tmp_path: Path, key: str, name: str = "admin.key") -> Path:
    p = tmp_path / name
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return p


def _code_on_panel(tok, png: Path, timeout: float = 60) -> str:
    """Press the button and read the code off the token's panel with zxing-cpp."""
    vhw.press(tok.hw)
    deadline = time.monotonic() + timeout
    err = "no picture yet"
    while time.monotonic() < deadline:
        if vhw.panel(tok.hw)[3]:
            vhw.snapshot(tok.hw, png)
            try:
                return scan.read_qr(png)
            except scan.ScanError as e:
                err = str(e)
        time.sleep(0.3)
    raise AssertionError(f"no code on the panel: {err}")


def _audit(issuer, action: str) -> list[dict]:
    t = AuditLog.__table__
    with issuer.backend.engine.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t).where(t.c.action == action))]


def test_online_factory_end_to_end(tokens, issuer, server, tmp_path: Path) -> None:
    url, log_path = server
    a, b = tokens(2)
    keyf = _key_file(tmp_path, issuer.admin_key)
    env = _station_env()
    rep_dir = tmp_path / "reports"
    r = paytoken("provision", "--port", a.port, "--port", b.port, "--board", "sim",
                 "--url", url, "--admin-key-file", str(keyf), "--report-dir", str(rep_dir),
                 "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert [x["status"] for x in out] == ["provisioned", "provisioned"]
    ids = [x["token_id"] for x in out]
    rows = {row["id"]: row for row in issuer.rows()}
    assert all(rows[i]["status"] == ACTIVE for i in ids) and len(rows) == 2  # nothing left pending
    secrets_, sync_keys = [], []
    for tok, tid in zip((a, b), ids, strict=True):
        cfg = token_config(tok.flash)
        assert cfg["token_id"] == tid and cfg["locked"]
        assert cfg["secret"] == issuer.secret_of(tid)  # what the issuer stored is what the token holds
        assert cfg["scheme_key"] == issuer.backend.scheme_keys()["81"]
        assert issuer.keyring.open(rows[tid]["sync_key_enc"], f"token:{tid}:sync") == cfg["sync_key"]
        secrets_.append(cfg["secret"])
        sync_keys.append(cfg["sync_key"])
    # the issuer audited the calls as the admin key's holder
    assert {e["token_id"] for e in _audit(issuer, "TOKEN_ACTIVATE")} == set(ids)
    assert {e["actor"] for e in _audit(issuer, "TOKEN_ACTIVATE")} == {"admin:desk"}
    assert len(_audit(issuer, "SCHEME_KEY_READ")) == 1

    # a code off a's panel pays over the merchant API
    issuer.backend.credit(ids[0], 10_000)
    _mid, mkey = issuer.backend.add_merchant("online test shop")
    code = _code_on_panel(a, tmp_path / "panel.png")
    pay = httpx.post(url + "/v1/payments", headers={"Authorization": f"Bearer {mkey}"}, timeout=30,
                     json={"code": code, "amount": 1250, "currency": "CNY", "merchant_order_id": "o-1"})
    assert pay.status_code == 200, pay.text
    assert pay.json()["status"] == "succeeded" and pay.json()["token_id"] == ids[0]

    # a second run over HTTP finds them provisioned and skips them
    r2 = paytoken("provision", "--port", a.port, "--port", b.port, "--board", "sim", "--url", url,
                  "--admin-key-file", str(keyf), "--json", env=env)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert [x["status"] for x in json.loads(r2.stdout)] == ["skipped", "skipped"]

    # cross-verify over HTTP: agrees; a token with a different secret does not
    r3 = paytoken("cross-verify", "--port", b.port, "--steps", "25", "--url", url,
                  "--admin-key-file", str(keyf), "--json", env=env)
    assert r3.returncode == 0, r3.stdout + r3.stderr
    assert json.loads(r3.stdout)["mismatches"] == [] and json.loads(r3.stdout)["steps"] == 25
    cfg = token_config(b.flash)
    cfg["secret"] = bytes(x ^ 0x01 for x in cfg["secret"])
    fwconfig.save(cfg, str(b.flash / "paytoken.cfg"))
    r4 = paytoken("cross-verify", "--port", b.port, "--steps", "25", "--url", url,
                  "--admin-key-file", str(keyf), "--json", env=env)
    assert r4.returncode == 3, r4.stdout + r4.stderr
    assert len(json.loads(r4.stdout)["mismatches"]) >= 20
    assert len(_audit(issuer, "CODES_EXPECTED")) == 2

    # no secret, sync key or admin key in the station's output, its reports or the
    # server's log (whose access lines show every URL called)
    log = log_path.read_text()
    assert "/v1/factory/tokens" in log and "/activate" in log  # the access log is on
    texts = [r.stdout, r.stderr, r2.stdout, r2.stderr, r3.stdout, r3.stderr, r4.stdout, r4.stderr, log]
    assert_no_secret(secrets_ + sync_keys + [cfg["secret"]], *texts, paths=[rep_dir])
    for t in texts + [p.read_text() for p in rep_dir.iterdir()]:
        assert issuer.admin_key not in t
    assert len(reports(rep_dir)) == 2


def test_cut_after_the_lock_is_redone_over_http(tokens, issuer, server, monkeypatch) -> None:
    url, log_path = server
    (tok,) = tokens(1)
    api = HttpIssuer(url, issuer.admin_key)

    def cut(*_a, **_kw) -> None:  # the issuer is gone right after the lock
        raise BackendError("cannot reach the issuer (ConnectError)", UNAVAILABLE)

    monkeypatch.setattr(api, "activate", cut)
    rep = Station(api, board="sim").provision(tok.port)
    assert rep.status == "failed" and rep.step == "activate"
    first = rep.token_id
    assert token_config(tok.flash)["locked"]
    assert {r["id"]: r["status"] for r in issuer.rows()} == {first: "pending"}  # kept: its sync key
    monkeypatch.undo()

    with HttpIssuer(url, issuer.admin_key) as api2:
        rep = Station(api2, board="sim").provision(tok.port)
    assert rep.status == "provisioned", rep.error
    assert "was locked but pending: unlocked, redone" in rep.recovered
    assert f"pending record {first:08d} of a cut run removed" in rep.recovered
    assert rep.token_id != first
    assert {r["id"]: r["status"] for r in issuer.rows()} == {rep.token_id: ACTIVE}
    assert [e["token_id"] for e in _audit(issuer, "UNLOCK_AUTH")] == [first]  # the pending mac
    assert [e["token_id"] for e in _audit(issuer, "TOKEN_DISCARD")] == [first]
    cfg = token_config(tok.flash)
    assert cfg["token_id"] == rep.token_id and cfg["secret"] == issuer.secret_of(rep.token_id)
    assert_no_secret([cfg["secret"], cfg["sync_key"]], log_path.read_text(), json.dumps(rep.__dict__))


def test_wrong_admin_key_and_bad_setups_are_refused_cleanly(tokens, issuer, server, tmp_path: Path) -> None:
    url, _log = server
    (tok,) = tokens(1)
    env = _station_env()
    wrong = _key_file(tmp_path, "pt_admin_wrong_key_0123456789", "wrong.key")
    r = paytoken("provision", "--port", tok.port, "--board", "sim", "--url", url,
                 "--admin-key-file", str(wrong), env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paytoken: provision: ")
    assert "(401)" in lines[0] and "admin key is required" in lines[0]
    assert "wrong_key" not in r.stderr + r.stdout
    assert issuer.rows() == [] and token_config(tok.flash) is None  # nothing written anywhere

    good = _key_file(tmp_path, issuer.admin_key)
    os.chmod(good, 0o640)
    r = paytoken("provision", "--port", tok.port, "--board", "sim", "--url", url,
                 "--admin-key-file", str(good), env=env)
    assert r.returncode == 1 and "readable by others" in r.stderr and issuer.admin_key not in r.stderr
    os.chmod(good, 0o600)
    for extra, msg in ((["--db", issuer.url], "not both"),
                       (["--offline-batch", str(tmp_path / "b.json")], "not both")):
        r = paytoken("provision", "--port", tok.port, "--board", "sim", "--url", url,
                     "--admin-key-file", str(good), *extra, env=env)
        assert r.returncode == 1 and msg in r.stderr, r.stderr
    r = paytoken("provision", "--port", tok.port, "--board", "sim", "--url", "http://issuer.example",
                 "--admin-key-file", str(good), env=env)
    assert r.returncode == 1 and "use https://" in r.stderr
    r = paytoken("provision", "--port", tok.port, "--board", "sim", "--url", url, env=env)
    assert r.returncode == 1 and "an admin key is needed" in r.stderr
    assert issuer.rows() == []


def test_factory_endpoints_are_retry_safe_and_never_echo_a_secret(issuer, server) -> None:
    url, log_path = server
    h = {"Authorization": f"Bearer {issuer.admin_key}"}
    secret, sync_key = os.urandom(20), os.urandom(20)
    r = httpx.post(url + "/v1/factory/tokens", json={"sync_key": sync_key.hex()}, headers=h)
    assert r.status_code == 201, r.text
    tid = r.json()["token_id"]
    assert r.json() == {"token_id": tid, "status": "pending"}
    body = {"secret": secret.hex(), "sync_key": sync_key.hex(), "prefix": "81", "drift_ppm": 0.0}
    path = f"/v1/factory/tokens/{tid}/activate"
    first = httpx.post(url + path, json=body, headers=h)
    again = httpx.post(url + path, json=body, headers=h)  # a retry after a lost answer
    assert first.status_code == again.status_code == 200, first.text + again.text
    assert first.json()["already"] is False and again.json()["already"] is True
    assert again.json()["status"] == ACTIVE
    assert len(_audit(issuer, "TOKEN_ACTIVATE")) == 1  # recorded once
    other = dict(body, secret=os.urandom(20).hex())
    r = httpx.post(url + path, json=other, headers=h)
    assert r.status_code == 409 and issuer.secret_of(tid) == secret  # not a retry: refused
    # discard: idempotent for a gone id, refused for an active one
    assert httpx.post(url + f"/v1/factory/tokens/{tid}/discard", headers=h).status_code == 409
    r = httpx.post(url + "/v1/factory/tokens/12345678/discard", headers=h)
    assert r.status_code == 200 and r.json() == {"token_id": 12345678, "discarded": False}
    # malformed secrets are refused without echoing them
    bad = dict(body, secret="zz" + secret.hex()[2:])
    r = httpx.post(url + path, json=bad, headers=h)
    assert r.status_code == 422 and secret.hex()[2:] not in r.text
    r = httpx.post(url + path, json=dict(body, secret=secret.hex()[:31]), headers=h)
    assert r.status_code == 422
    # the pending-unlock mac only for a pending token
    r = httpx.post(url + f"/v1/factory/tokens/{tid}/pending-unlock", json={"nonce": "abcdef12"}, headers=h)
    assert r.status_code == 409
    # the scheme key: not cached; an unknown prefix is 404
    r = httpx.get(url + "/v1/factory/schemes/81", headers=h)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert bytes.fromhex(r.json()["scheme_key"]) == issuer.backend.scheme_keys()["81"]
    assert httpx.get(url + "/v1/factory/schemes/82", headers=h).status_code == 404
    # every endpoint wants the admin key
    for method, p in (("GET", "/v1/factory/schemes/81"), ("POST", "/v1/factory/tokens"),
                      ("POST", path), ("POST", f"/v1/factory/tokens/{tid}/discard"),
                      ("POST", f"/v1/factory/tokens/{tid}/pending-unlock"),
                      ("POST", f"/v1/tokens/{tid}/cross-check")):
        r = httpx.request(method, url + p, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401, (p, r.text)
    # cross-check answers only which times differ
    times = [1_767_225_600, 1_767_225_630]
    good = ops.host_codes(secret, tid, times, issuer.backend.scheme_keys()["81"], "81")
    r = httpx.post(url + f"/v1/tokens/{tid}/cross-check", headers=h,
                   json={"times": times, "codes": [good[0], "0" * 18]})
    assert r.status_code == 200 and r.json() == {"token_id": tid, "compared": 2, "mismatches": [times[1]]}
    assert good[1] not in r.text
    # the schema declares each endpoint's answers
    spec = httpx.get(url + "/openapi.json").json()["paths"]
    for p, codes in (("/v1/factory/tokens", {"201", "401", "422", "503"}),
                     ("/v1/factory/tokens/{token_id}/activate", {"200", "401", "409", "422"}),
                     ("/v1/factory/tokens/{token_id}/discard", {"200", "401", "409", "422"}),
                     ("/v1/factory/tokens/{token_id}/pending-unlock", {"200", "401", "409", "422"}),
                     ("/v1/factory/schemes/{prefix}", {"200", "401", "404", "422"}),
                     ("/v1/tokens/{token_id}/cross-check", {"200", "401", "404", "422"})):
        (op,) = spec[p].values()
        assert codes <= set(op["responses"]), p  # plus the statuses every admin route declares
    texts = [first.text, again.text, log_path.read_text()]
    assert_no_secret([secret, sync_key], *texts)


def test_cross_check_over_http_in_parts_and_with_unequal_lists(issuer, server) -> None:
    """A desk's 5000 times go in requests of 250 (each under the 16 KiB body limit); a time
    with no code is a mismatch, never a pass."""
    from paytoken.backend.api.factory import MAX_TIMES
    from paytoken.station import online

    url, _ = server
    secret = os.urandom(20)
    issuer.backend.add_token(777, secret)
    key = issuer.backend.scheme_keys()["81"]
    times = [1_767_225_600 + 30 * i for i in range(5000)]
    good = ops.host_codes(secret, 777, times, key, "81")
    assert online.CROSS_CHECK_PER_CALL == MAX_TIMES
    api = HttpIssuer(url, issuer.admin_key)
    assert api.cross_check(777, times, good) == []
    bad = list(good)
    bad[0], bad[4321] = "0" * 18, "1" * 18
    assert api.cross_check(777, times, bad) == [times[0], times[4321]]
    assert len(_audit(issuer, "CODES_EXPECTED")) == 2 * 20
    h = {"Authorization": f"Bearer {issuer.admin_key}"}
    r = httpx.post(url + "/v1/tokens/777/cross-check", headers=h, json={"times": times[:3], "codes": good[:1]})
    assert r.status_code == 200 and r.json() == {"token_id": 777, "compared": 3, "mismatches": times[1:3]}
    r = httpx.post(url + "/v1/tokens/777/cross-check", headers=h, json={"times": times[:1], "codes": good[:2]})
    assert r.json() == {"token_id": 777, "compared": 1, "mismatches": []}
    r = httpx.post(url + "/v1/tokens/777/cross-check", headers=h,
                   json={"times": times[:MAX_TIMES + 1], "codes": good[:MAX_TIMES + 1]})
    assert r.status_code == 422
