"""The service desk against provisioned virtual tokens and a real issuer HTTP server."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import paycode
from paytoken import vhw
from paytoken.backend.store.models import AuditLog
from paytoken.station import ops
from paytoken.station.transport import Device
from sqlalchemy import select
from stationkit import assert_no_secret, fwconfig, paytoken, token_config
from waits import STEP, bound


def _audit(issuer, action: str) -> list[dict]:
    with issuer.backend.engine.begin() as conn:
        rows = conn.execute(select(AuditLog.__table__).where(AuditLog.__table__.c.action == action))
        return [dict(r._mapping) for r in rows]


def test_sync_clock_end_to_end(provisioned, issuer, server, tmp_path: Path) -> None:
    tok = provisioned
    vhw.set_world_time(tok.hw, time.time() + 100)  # the token's clock runs 100 s ahead
    with Device(tok.port, timeout=bound(STEP)) as dev:
        t0 = time.time()
        t_tok = ops.info(dev).time
        t1 = time.time()
    assert t0 + 100 - 2 < t_tok < t1 + 100 + 2  # read between t0 and t1 (whole seconds)
    t0 = time.time()
    r = paytoken("sync-clock", "--port", tok.port, "--url", server, "--admin-key", issuer.admin_key,
                 "--json")
    t1 = time.time()
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    # The measurement's error: under 1 s of whole-second rounding (token and issuer),
    # plus the delays it suffers (the INFO answer, the issuer's answer), which lie inside
    # the command's run. A sign or time-zone error would be 100 s or hours off.
    slack = 1 + (t1 - t0)
    assert abs(d["offset_s"] - 100) <= slack, (d, t1 - t0)
    assert t0 - 1 <= d["utc_set"] <= t1 + 1  # the issuer's UTC during the run
    assert t0 - 2 < d["time_after"] < t1 + 2  # the token keeps it
    rec = _audit(issuer, "CLOCK_OFFSET")
    assert len(rec) == 1 and abs(json.loads(rec[0]["detail"])["offset_s"] - 100) <= slack
    assert issuer.backend.token_info(d["token_id"])["drift_seconds"] == 0
    cfg = token_config(tok.flash)
    assert cfg["last_sync"] == d["utc_set"] and cfg["locked"]
    assert_no_secret([cfg["secret"], cfg["sync_key"]], r.stdout, r.stderr,
                     paths=[tmp_path / "server.log"])
    # without the admin key the issuer refuses, and the token's clock is untouched
    r = paytoken("sync-clock", "--port", tok.port, "--url", server, "--admin-key", "wrong")
    assert r.returncode == 1 and "401" in r.stderr


def test_locked_token_refuses_unsigned_and_replayed_clock_changes(provisioned) -> None:
    tok = provisioned
    key = token_config(tok.flash)["sync_key"]  # the test reads the flash; a station never can
    future = int(time.time()) + 5000
    with Device(tok.port, timeout=bound(STEP)) as dev:
        ops.info(dev)  # past any stale replies (the station's REPL-refused check)
        assert dev.line(f"SETTIME {future} {'0' * 40}") == "ERR no challenge: send CHALLENGE first"
        n = ops.challenge(dev, "t")
        assert dev.line(f"SETTIME {future} {'0' * 40}") == "ERR bad mac"
        n = ops.challenge(dev, "t")
        forged = paycode.sync_mac(b"\x01" * 20, "SETTIME", n, future)
        assert dev.line(f"SETTIME {future} {forged}") == "ERR bad mac"
        n = ops.challenge(dev, "t")
        now = int(time.time())
        good = f"SETTIME {now} {paycode.sync_mac(key, 'SETTIME', n, now)}"
        assert dev.line(good) == f"OK time set {now}"
        assert dev.line(good).startswith("ERR no challenge")  # replayed: the nonce is spent
        ops.challenge(dev, "t")
        assert dev.line(good) == "ERR bad mac"  # replayed over a fresh nonce
        t = ops.info(dev).time
    assert abs(t - time.time()) < 3  # never moved to the future


def test_update_end_to_end(provisioned, issuer, server, tmp_path: Path) -> None:
    tok = provisioned
    before = token_config(tok.flash)
    fw = tmp_path / "fw-new"
    shutil.copytree(Path(__file__).resolve().parents[2] / "firmware", fw,
                    ignore=shutil.ignore_patterns("__pycache__"))
    text = (fw / "fwversion.py").read_text().replace('VERSION = "1.0.0"', 'VERSION = "1.0.1"')
    (fw / "fwversion.py").write_text(text)
    r = paytoken("update", "--port", tok.port, "--board", "sim", "--firmware", str(fw),
                 "--url", server, "--admin-key", issuer.admin_key, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert (d["fw_before"], d["fw_after"]) == ("1.0.0", "1.0.1")
    assert "/fwversion.mpy" in d["copied"]
    with Device(tok.port, timeout=bound(STEP)) as dev:
        st = ops.info(dev)
        assert (st.fw, st.locked, st.token_id) == ("1.0.1", True, before["token_id"])
        assert not ops.repl_open(dev)
    after = token_config(tok.flash)
    assert {k: v for k, v in after.items() if k != "last_step"} == {
        k: v for k, v in before.items() if k != "last_step"}  # the config was kept
    assert len(_audit(issuer, "UNLOCK_AUTH")) == 1
    assert_no_secret([before["secret"], before["sync_key"]], r.stdout, r.stderr)


def test_cross_verify_finds_a_different_secret(provisioned, issuer) -> None:
    tok = provisioned
    env = issuer.env()
    r = paytoken("cross-verify", "--port", tok.port, "--steps", "25", "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["mismatches"] == []
    cfg = token_config(tok.flash)
    cfg["secret"] = bytes(b ^ 0x01 for b in cfg["secret"])  # one bit per byte off
    fwconfig.save(cfg, str(tok.flash / "paytoken.cfg"))
    r = paytoken("cross-verify", "--port", tok.port, "--steps", "25", "--json", env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert len(d["mismatches"]) >= 20  # a different secret: (almost) every code differs
    with Device(tok.port, timeout=bound(STEP)) as dev:
        assert ops.info(dev).locked  # locked again after the check
    r = paytoken("cross-verify", "--port", tok.port, "--steps", "5", env=env)
    assert r.returncode == 3 and "MISMATCH" in r.stdout
    assert_no_secret([cfg["secret"]], r.stdout, r.stderr)
