"""Nothing leaves a token open: the firmware tree is checked before an unlock, an unlock
lives in RAM only (until a reset or the lease runs out), and the desk and the station
lock again on an error, Ctrl-C or SIGTERM."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paycode
import pytest
from paytoken import vhw
from paytoken.backend import UNAVAILABLE, BackendError
from paytoken.backend.store.models import PENDING, AuditLog
from paytoken.station import desk, ops
from paytoken.station.provision import Station
from paytoken.station.transport import Device
from paytoken.vdev import control
from sqlalchemy import select
from stationkit import assert_no_secret, fwconfig, paytoken, token_config
from vdevkit import mpremote
from waits import STEP, bound, cli_args, wait_for

pytestmark = pytest.mark.timeout(300)
LEASE_S = 15.0  # firmware/sim: LEASE_MS


def _flash_hashes(flash: Path) -> dict[str, str]:
    return {str(p.relative_to(flash)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(flash.rglob("*")) if p.is_file()}


def _locked(tok, *, wait: float = STEP) -> ops.TokenState:
    # INFO answers locked (the token may still be booting), and the raw REPL is refused
    deadline = time.monotonic() + bound(wait)
    with Device(tok.port, timeout=bound(STEP)) as dev:
        while True:
            try:
                st = ops.info(dev, timeout=2.0)
                break
            except ops.OpsError:
                assert time.monotonic() < deadline, "no INFO answer: the token is not locked"
        assert st.locked and st.mode == "locked"
        assert not ops.repl_open(dev)
    return st


def _unlock(tok) -> None:
    # an authenticated UNLOCK, as the desk sends it (the test reads the sync key from the
    # flash; a desk gets the mac from the issuer)
    cfg = token_config(tok.flash)
    with Device(tok.port, timeout=bound(STEP)) as dev:
        nonce = ops.challenge(dev, "t")
        ops.unlock(dev, paycode.sync_mac(cfg["sync_key"], "UNLOCK", nonce, cfg["token_id"]))
        assert dev.eval("1 + 1") == 2  # the REPL is open now


def _audit(issuer, action: str) -> list[dict]:
    with issuer.backend.engine.begin() as conn:
        t = AuditLog.__table__
        return [dict(r._mapping) for r in conn.execute(select(t).where(t.c.action == action))]


def test_update_checks_the_firmware_tree_before_it_unlocks(provisioned, issuer, server,
                                                           tmp_path: Path) -> None:
    tok = provisioned
    cfg = token_config(tok.flash)
    before = _flash_hashes(tok.flash)
    broken = tmp_path / "fw-broken"
    broken.mkdir()
    (broken / "main.py").write_text("print('hello')\n")
    cases = [
        ("/nonexistent", "paytoken: update: argument --firmware: /nonexistent does not exist "
                         "(see: paytoken update --help)"),
        (str(broken), f"paytoken: update: firmware tree {broken}: missing app.py, config.py, "
                      "proto.py, lease.py, fwversion.py, hostapi.py, paycode/__init__.py"),
    ]
    for fw, want in cases:
        r = paytoken("update", "--port", tok.port, "--board", "sim", "--firmware", fw,
                     "--url", server, "--admin-key", issuer.admin_key)
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr.strip() == want
    assert _audit(issuer, "UNLOCK_AUTH") == []  # the issuer was never asked
    assert _flash_hashes(tok.flash) == before  # firmware and config as they were
    _locked(tok)
    r = mpremote(tok.port, "fs", "cat", ":paytoken.cfg", timeout=20)
    assert r.returncode != 0
    assert_no_secret([cfg["secret"], cfg["sync_key"], cfg["scheme_key"]], r.stdout, r.stderr)


def test_an_unlock_lasts_until_a_reset_or_the_lease(provisioned) -> None:
    tok = provisioned
    on_flash = token_config(tok.flash)
    # a hard reset (the reset button) ends it at once
    _unlock(tok)
    assert token_config(tok.flash)["locked"] is True  # never cleared on flash
    control.hard_reset(tok.flash)
    _locked(tok)
    # so does a power cycle
    _unlock(tok)
    vhw.power_off(tok.hw)
    time.sleep(0.3)
    vhw.power_on(tok.hw)
    _locked(tok)
    # a soft reset does not: the lease's watchdog keeps counting
    _unlock(tok)
    t0 = time.monotonic()
    with Device(tok.port, timeout=bound(STEP)) as dev:
        dev.soft_reset()
        assert dev.eval("2 + 2") == 4
    # left alone (a desk that died), the lease runs out and the token resets, locked
    deadline = time.monotonic() + LEASE_S + 15
    while (tok.hw / "wdt.json").exists():
        assert time.monotonic() < deadline, "the lease did not run out"
        time.sleep(0.1)
    lasted = time.monotonic() - t0
    print(f"the unlock lasted {lasted:.1f} s after the last feed (lease {LEASE_S:g} s)")
    assert LEASE_S - 1 <= lasted <= LEASE_S + 10
    _locked(tok)
    now = token_config(tok.flash)  # nothing was written but the wakes' last_step
    assert {k: v for k, v in now.items() if k != "last_step"} == {
        k: v for k, v in on_flash.items() if k != "last_step"}
    r = mpremote(tok.port, "fs", "cat", ":paytoken.cfg", timeout=20)
    assert r.returncode != 0 and "secret" not in r.stdout


def _default_sigint() -> None:
    # A suite started in the background of a non-interactive shell (`make test &`, CI
    # runners) inherits SIGINT ignored, and so would the CLI: Python keeps an ignored
    # SIGINT, and the Ctrl-C these tests send would never arrive. A terminal's Ctrl-C is
    # what is under test, so the CLI gets the default disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "paytoken", *cli_args(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint)


def _wait_for(cond, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _fed(wdt: Path) -> int | None:
    try:  # rewritten by temp + rename: a read sees one whole feed, or no file
        return json.loads(wdt.read_text())["fed"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


@pytest.mark.parametrize("sig, rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_cross_verify_locks_the_token_again(provisioned, issuer, sig, rc) -> None:
    tok = provisioned
    cfg = token_config(tok.flash)
    p = _cli("cross-verify", "--port", tok.port, "--steps", "5000", env=issuer.env())
    wdt = tok.hw / "wdt.json"
    _wait_for(lambda: wdt.exists(), 60, "the token was never unlocked")
    first = _fed(wdt)
    # inside the code requests: the lease is fed before each of its 100 calls (a new
    # random "fed" each time). A fixed sleep here could outlast all of them when this
    # process is starved on a busy machine, and the signal would come after the end.
    _wait_for(lambda: _fed(wdt) not in (None, first), 60, "the code requests never began")
    p.send_signal(sig)
    # the relock is a hard reset and a confirmed INFO: seconds idle, longer when starved
    out, err = p.communicate(timeout=bound(120))
    assert p.returncode == rc, err
    assert err.strip() == "paytoken: interrupted" + (" (SIGTERM)" if sig == signal.SIGTERM else "")
    # locked by the desk itself (a hard reset), not by the lease running out
    assert not wdt.exists()
    _locked(tok)
    now = token_config(tok.flash)  # as it was, but the wakes' last_step
    assert {k: v for k, v in now.items() if k != "last_step"} == {
        k: v for k, v in cfg.items() if k != "last_step"}
    assert_no_secret([cfg["secret"], cfg["sync_key"]], out, err)
    r = paytoken("cross-verify", "--port", tok.port, "--steps", "5", env=issuer.env())
    assert r.returncode == 0, r.stderr


def test_ctrl_c_stops_provisioning_at_once_and_cleanly(tokens, issuer, tmp_path: Path) -> None:
    (tok,) = tokens(1)
    # a burn-in far longer than any cleanup takes, even on a starved machine: stopping
    # well before its end is stopping at once, and "ignored until the end" cannot pass
    p = _cli("provision", "--port", tok.port, "--board", "sim", "--burn-in", "900",
             "--report-dir", str(tmp_path / "reports"), env=issuer.env())
    seen = []

    def in_burn_in() -> bool:
        line = p.stderr.readline()
        seen.append(line)
        return "drift burn-in" in line

    _wait_for(in_burn_in, 60, "no burn-in")
    assert token_config(tok.flash)["secret"]  # the token holds its secrets now
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=bound(300))
    took = time.monotonic() - t0
    assert p.returncode == 130, err
    assert took < 300, f"Ctrl-C took {took:.1f} s of a 900 s burn-in"
    print(f"Ctrl-C to exit: {took:.1f} s")
    assert "FAILED at drift: interrupted during the burn-in; re-run to provision" in out
    assert "provision interrupted: 1 of 1 ports stopped (none left unlocked)" in err
    assert "Traceback" not in err
    # wiped and reset: no secret on the token, no pending record kept for it
    assert token_config(tok.flash) is None
    assert [r for r in issuer.rows() if r["status"] == PENDING] == []
    st = _state_after_reset(tok)
    assert st.token_id is None
    r = paytoken("provision", "--port", tok.port, "--board", "sim", env=issuer.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "crystal error not measured (no --burn-in): 0 ppm stored" in r.stdout
    _locked(tok)


def _state_after_reset(tok) -> ops.TokenState:
    with Device(tok.port, timeout=bound(STEP)) as dev:
        return ops.wait_booted(dev)


def test_update_mends_a_token_left_open_without_firmware(provisioned, issuer, server) -> None:
    # What the old desk left after `update --firmware /nonexistent`: the firmware gone and
    # the lock flag cleared on flash, so the token boots to an open REPL.
    tok = provisioned
    cfg = token_config(tok.flash)
    for p in sorted(tok.flash.rglob("*"), reverse=True):
        if p.name not in ("paytoken.cfg", "board.py"):
            p.rmdir() if p.is_dir() else p.unlink()
    fwconfig.save(dict(cfg, locked=False), str(tok.flash / "paytoken.cfg"))
    control.hard_reset(tok.flash)
    r = paytoken("update", "--port", tok.port, "--board", "sim", "--url", server,
                 "--admin-key", issuer.admin_key, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["token_id"] == cfg["token_id"] and d["fw_after"] == "1.0.0"
    assert d["was_locked"] is False
    st = _locked(tok)
    assert st.token_id == cfg["token_id"]
    after = token_config(tok.flash)
    assert after["locked"] is True and after["secret"] == cfg["secret"]
    assert os.path.exists(tok.flash / "main.py")


def _reset_after_the_first_unlock(monkeypatch, tok) -> list[str]:
    # Fault injection on the real token: right after the first UNLOCK it resets, so it
    # boots locked again (what a watchdog that an earlier, killed session had started
    # does when it runs out just then). The unlocks made are counted.
    real = ops.unlock
    made: list[str] = []

    def unlock(dev: Device, mac: str) -> None:
        real(dev, mac)
        made.append(mac)
        if len(made) == 1:
            pid = tok.child_pid()
            control.hard_reset(tok.flash)
            wait_for(lambda: tok.child_pid() not in (None, pid), what="the token reset")

    monkeypatch.setattr(ops, "unlock", unlock)
    return made


def test_the_desk_unlocks_again_a_token_that_reset_after_its_unlock(provisioned, issuer,
                                                                    monkeypatch) -> None:
    tok = provisioned
    tid = token_config(tok.flash)["token_id"]
    made = _reset_after_the_first_unlock(monkeypatch, tok)
    with Device(tok.port, timeout=bound(STEP)) as dev:
        res = desk.update(dev, issuer.backend, "sim")
    assert (res.token_id, res.was_locked) == (tid, True)
    assert len(made) == 2 and made[0] != made[1]  # a fresh challenge each time
    assert _locked(tok).token_id == tid


def test_the_station_unlocks_again_a_pending_token_that_reset_after_its_unlock(
        tokens, issuer, monkeypatch) -> None:
    (tok,) = tokens(1)
    station = Station(issuer.backend, board="sim", timeout=bound(STEP))

    def cut(*_a, **_kw) -> None:  # the issuer is gone right after the lock
        raise BackendError("cannot reach the issuer", UNAVAILABLE)

    monkeypatch.setattr(station.issuer, "activate", cut)
    first = station.provision(tok.port)
    assert (first.status, first.step) == ("failed", "activate")
    monkeypatch.undo()
    made = _reset_after_the_first_unlock(monkeypatch, tok)
    rep = station.provision(tok.port)
    assert rep.status == "provisioned", rep.error
    assert "was locked but pending: unlocked, redone" in rep.recovered
    assert len(made) == 2
    cfg = token_config(tok.flash)
    assert cfg["locked"] and cfg["token_id"] == rep.token_id != first.token_id
    assert _locked(tok).token_id == rep.token_id
