"""The whole factory and desk path on an emulated Pico running the stock MicroPython:
deploy (armv6m .mpy), provision with a burn-in, lock, info, sync-clock, cross-verify,
update, and a payment whose code is read off the panel by zxing-cpp. Everything goes
through the CLI, stock mpremote/pyserial and a real issuer server; one token for the
module (deployed and provisioned once)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from paytoken import vhw
from paytoken.station import ops
from paytoken.station.transport import Device
from rp2kit import cli, panel_code, provisioned_pico, read_file, ready, save_config, token_config
from stationkit import assert_no_secret

REPO = Path(__file__).resolve().parents[2]

# one emulated token per module: its tests stay on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("rp2factory")


run = cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A provisioned, locked emulated Pico and a served issuer database."""
    with provisioned_pico(tmp_path_factory.mktemp("rp2factory"), burn_in=3) as w:
        yield w


def test_deployed_as_armv6m_and_provisioned_locked(world) -> None:
    tok, rep = world["tok"], world["report"]
    assert world["deploy"]["board"] == "pico"
    manifest = json.loads(read_file(tok.flash, "/.deploy.json"))
    assert manifest["arch"] == "armv6m" and manifest["board"] == "pico"
    assert "/fam_rp2040.mpy" in manifest["files"] and not any("/sim/" in p for p in manifest["files"])
    assert read_file(tok.flash, "/app.mpy")[:1] == b"M"  # .mpy (bytecode: no arch in its header)
    assert rep["status"] == "provisioned", rep
    assert rep["burn_in_s"] == 3 and rep["ppm_measured"] is not None
    cfg = world["cfg"]  # read from the emulated flash's littlefs (chip off)
    assert cfg["locked"] is True and cfg["token_id"] == rep["token_id"]
    assert world["iss"].secret_of(rep["token_id"]) == cfg["secret"]
    assert_no_secret([cfg["secret"], cfg["sync_key"]], world["out"],
                     paths=[world["dir"] / "reports"])
    with Device(tok.port, timeout=90) as dev:
        assert not ops.repl_open(dev)  # locked: Ctrl-C and raw REPL get no REPL


def test_info(world) -> None:
    tok, rep = world["tok"], world["report"]
    r = run("info", "--port", tok.port, "--json", "--timeout", "90")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["token_id"] == rep["token_id"] and d["board"] == "pico" and d["locked"] is True
    assert abs(d["time"] - time.time()) < 5


def test_sync_clock(world) -> None:
    tok, iss = world["tok"], world["iss"]
    ready(tok)
    vhw.set_rtc(tok.hw, time=time.time() + 60)  # the DS3231 model runs 60 s ahead
    t0 = time.time()
    r = run("sync-clock", "--port", tok.port, "--url", world["url"], "--admin-key", iss.admin_key,
            "--json", "--timeout", "90")
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert abs(d["offset_s"] - 60) <= 3
    assert t0 - 1 <= d["utc_set"] <= d["time_after"] <= time.time() + 1  # set to UTC, not 60 s ahead
    # the token sets the signed time on receipt: it lags UTC by at most the command's run
    assert -(time.time() - t0) - 1 <= vhw.rtc_time(tok.hw) - time.time() <= 1


def test_cross_verify(world) -> None:
    ready(world["tok"])
    r = run("cross-verify", "--port", world["tok"].port, "--steps", "8", "--json", "--timeout", "90",
            env=world["iss"].env())
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["mismatches"] == [] and d["steps"] >= 8


def test_payment_with_the_panels_qr(world, tmp_path: Path) -> None:
    tok, iss, rep = world["tok"], world["iss"], world["report"]
    tid = rep["token_id"]
    iss.backend.credit(tid, 10_000)
    _, api = iss.backend.add_merchant("rp2-shop")
    vhw.press(tok.hw)  # wake the panel (it sleeps 20 s after the last press)
    code = panel_code(tok, tmp_path, world["cfg"])
    assert len(code) == 18 and code.isdigit()
    r = run("pay", code, "--amount", "1250", "--url", world["url"], "--api-key", api, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "succeeded" and out["token_id"] == tid and out["amount"] == 1250


def test_update_keeps_the_config(world, tmp_path: Path) -> None:
    tok, iss = world["tok"], world["iss"]
    ready(tok)
    before = token_config(tok.flash)
    fw = tmp_path / "fw-new"
    shutil.copytree(REPO / "firmware", fw, ignore=shutil.ignore_patterns("__pycache__"))
    text = (fw / "fwversion.py").read_text().replace('VERSION = "1.0.0"', 'VERSION = "1.0.1"')
    (fw / "fwversion.py").write_text(text)
    r = run("update", "--port", tok.port, "--board", "pico", "--firmware", str(fw), "--url", world["url"],
            "--admin-key", iss.admin_key, "--json", "--timeout", "90")
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert (d["fw_before"], d["fw_after"]) == ("1.0.0", "1.0.1") and "/fwversion.mpy" in d["copied"]
    after = token_config(tok.flash)
    assert {k: v for k, v in after.items() if k not in ("last_step", "ref_time", "last_sync")} == {
        k: v for k, v in before.items() if k not in ("last_step", "ref_time", "last_sync")}
    with Device(tok.port, timeout=90) as dev:
        st = ops.info(dev)
        assert (st.fw, st.locked) == ("1.0.1", True)


def test_a_changed_secret_is_caught_by_cross_verify(world) -> None:
    # last: it changes the token (power off, the image rewritten, power on)
    tok = world["tok"]
    cfg = token_config(tok.flash)
    cfg["secret"] = bytes(b ^ 0x01 for b in cfg["secret"])
    save_config(tok, cfg)
    ready(tok)
    r = run("cross-verify", "--port", tok.port, "--steps", "6", "--json", "--timeout", "90",
            env=world["iss"].env())
    assert r.returncode == 3, r.stdout + r.stderr
    assert len(json.loads(r.stdout)["mismatches"]) >= 5
