"""Power cuts on the emulated Pico at random points of deploy and provision.

A cut is the emulator killed (SIGKILL: RAM, registers and USB gone at once, the flash
image keeps what was written, as NOR flash does) or the board's power switched off and
on. After each cut the station runs again; the token must end deployed (every file
exactly as built) or provisioned exactly once and locked, never half of either. CI runs
a small sample; ``make soak`` (PAYTOKEN_SOAK=1) runs more.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from paytoken import vhw
from paytoken.backend.store.models import ACTIVE, PENDING
from paytoken.station import deploy as deploy_mod
from paytoken.station.provision import Station
from paytoken.station.transport import Device, DeviceError
from paytoken.vdev import rp2
from rp2kit import _lfs, read_file, start_pico, token_config, wait_for
from stationkit import new_issuer

SOAK = bool(os.environ.get("PAYTOKEN_SOAK"))
DEPLOY_CUTS = 8 if SOAK else 1
PROVISION_CUTS = 12 if SOAK else 1
TIMEOUT = 90  # seconds per device call: an emulated Pico on a loaded machine is slow

# one emulated token per module: its tests stay on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("rp2powercut")


def _cut(tok, rng: random.Random) -> str:
    if rng.random() < 0.5:
        pid = tok.child_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)  # the supervisor boots a new chip on the same flash
        return "sigkill"
    vhw.power_off(tok.hw)
    wait_for(lambda: tok.child_pid() is None, 20, "the emulator stops on power-off")
    vhw.power_on(tok.hw)
    return "power"


def _off(tok) -> None:
    vhw.power_off(tok.hw)
    wait_for(lambda: tok.child_pid() is None, 20, "the emulator stops on power-off")


def _wipe_fs(tok) -> None:
    # a Pico fresh from the box: the flash image goes, the stock image is flashed again
    # and MicroPython makes a new filesystem at boot
    _off(tok)
    (tok.flash / rp2.FLASH_IMAGE).unlink()
    vhw.power_on(tok.hw)


def _remove_config(tok) -> None:
    _off(tok)
    fs, off, img = _lfs(tok.flash)
    for name in ("/paytoken.cfg", "/paytoken.cfg.tmp"):
        try:
            fs.remove(name)
        except Exception:  # littlefs-python: ENOENT
            pass
    out = bytearray(img)
    out[off:] = fs.context.buffer
    (tok.flash / rp2.FLASH_IMAGE).write_bytes(out)
    vhw.power_on(tok.hw)


def _deploy(port: str) -> None:
    with Device(port, timeout=TIMEOUT) as dev:
        deploy_mod.deploy(dev, "pico")


def _check_files(tok, built: dict[str, bytes]) -> tuple[int, int]:
    # every file under its final name is exactly the built one (a cut copy leaves at most
    # its .tmp); returns (files complete, temp files left). One snapshot of the flash for
    # the listing and the reads: the token, powered again, may be writing the image.
    for _ in range(20):
        try:
            fs, _, _ = _lfs(tok.flash)
            break
        except Exception:  # a torn snapshot: littlefs-python cannot mount it
            time.sleep(0.2)
    else:
        raise AssertionError("the flash image never mounted")
    names = set()

    def walk(d: str) -> None:
        for n in sorted(fs.listdir(d)):
            p = d.rstrip("/") + "/" + n
            if n.endswith((".py", ".mpy", ".json", ".tmp")):
                names.add(p)
            elif "." not in n:
                walk(p)

    walk("/")
    done = 0
    for p in names:
        if p in built:
            with fs.open(p, "rb") as f:
                assert f.read() == built[p], f"{p}: a half-written file under its name"
            done += 1
    return done, sum(p.endswith(".tmp") for p in names)


def _cut_after(tok, rng: random.Random, th: threading.Thread, reached, delay: float) -> str:
    # Wait until the run reached its drawn point (or ended), wait the drawn delay, cut.
    wait_for(lambda: reached() or not th.is_alive(), 600, "the run reaches its cut point")
    time.sleep(delay)
    return _cut(tok, rng)


# the provisioning steps (Station.provision's progress names), one drawn per cut
STEPS = ("connect", "check", "secret", "allocate", "config", "clock", "drift", "verify", "lock")


@pytest.mark.slow
@pytest.mark.timeout(7200 if SOAK else 1800)  # emulated boots: minutes each on a loaded machine
def test_power_cuts_in_deploy_and_provision(tmp_path: Path) -> None:
    # Each cut point is drawn from the run's own progress: a file of the deploy (cut
    # while it or the next is copied, or in the final renames), a step of the
    # provisioning (cut inside it or soon after), so no clean run is needed to time one.
    tok = start_pico(tmp_path / "tok")
    iss = new_issuer(f"sqlite:///{tmp_path / 'issuer.db'}", tmp_path)
    seed = int(os.environ.get("PAYTOKEN_SEED", time.time()))
    rng = random.Random(seed)
    log: list[dict] = []
    t_start = time.monotonic()
    try:
        built = deploy_mod.build(deploy_mod.load_board("pico"))
        for n in range(DEPLOY_CUTS):
            if n:
                _wipe_fs(tok)  # a Pico fresh from the box again (the first one is)
            err: list[Exception] = []
            started: list[float] = []

            def go(e: list[Exception] = err, st: list[float] = started) -> None:
                try:
                    with Device(tok.port, timeout=TIMEOUT) as dev:
                        deploy_mod.deploy(dev, "pico", built=built,
                                          progress=lambda _p, _i, _n: st.append(time.monotonic()))
                except (DeviceError, deploy_mod.DeployError) as x:
                    e.append(x)

            k = rng.randrange(len(built))  # cut while file k (or a later one) is copied
            th = threading.Thread(target=go)
            t0 = time.monotonic()
            th.start()
            wait_for(lambda st=started, k=k, th=th: len(st) > k or not th.is_alive(), 600,
                     "the deploy reaches file k")
            per_file = (time.monotonic() - t0) / (k + 1)
            how = _cut_after(tok, rng, th, lambda: True, rng.uniform(0, 1.5) * per_file)
            th.join(600)
            assert not th.is_alive(), "deploy hung after the cut"
            wait_for(lambda: tok.child_pid() is not None, 20, "the chip is powered again")
            done, tmps = _check_files(tok, built)
            _deploy(tok.port)  # the station runs again and completes
            again, _ = _check_files(tok, built)
            manifest = json.loads(read_file(tok.flash, "/.deploy.json"))
            assert again == len(built) and set(manifest["files"]) == set(built)
            assert all(hashlib.sha256(built[p]).hexdigest() == h for p, h in manifest["files"].items())
            log.append({"cut": how, "in": "deploy", "file": k, "files_before": done, "temp_left": tmps,
                        "deploy_failed": bool(err), "at_s": round(time.monotonic() - t_start, 1)})

        station = Station(iss.backend, board="pico", timeout=TIMEOUT)
        ids = []
        for n in range(PROVISION_CUTS):
            if n:
                _remove_config(tok)  # a new board (powered off above): no config
            box: list = []
            steps: list[str] = []

            def prov(b: list = box, s: list[str] = steps) -> None:
                b.append(station.provision(tok.port, lambda _p, step, _d: s.append(step)))

            target = rng.choice(STEPS)
            th = threading.Thread(target=prov)
            th.start()
            how = _cut_after(tok, rng, th, lambda t=target, s=steps: t in s, rng.uniform(0, 2.0))
            at = steps[-1] if steps else "connect"
            th.join(600)
            assert box, "the station hung after the cut"
            wait_for(lambda: tok.child_pid() is not None, 20, "the chip is powered again")
            rep = station.provision(tok.port)
            assert rep.status in ("provisioned", "skipped"), (rep.step, rep.error)
            # the flash read with the chip off: a locked token records each new 30 s
            # step on its flash, and a snapshot taken during that write may be torn
            _off(tok)
            cfg = token_config(tok.flash)
            assert cfg is not None and cfg["locked"] is True and cfg["token_id"] == rep.token_id
            assert iss.secret_of(rep.token_id) == cfg["secret"]
            if box[0].status == "provisioned":
                assert rep.status == "skipped" and rep.token_id == box[0].token_id
            ids.append(rep.token_id)
            log.append({"cut": how, "in": "provision", "drawn": target, "at": at,
                        "first": box[0].status, "then": rep.status,
                        "at_s": round(time.monotonic() - t_start, 1)})
        rows = iss.rows()
        assert [r["id"] for r in rows if r["status"] == PENDING] == []  # nothing half-made
        assert {r["id"] for r in rows if r["status"] == ACTIVE} == set(ids)
        assert len(set(ids)) == len(ids)  # each new board its own token, once
    finally:
        tok.stop()
    print(json.dumps({"seed": seed, "cuts": log}))
    if SOAK:
        out = Path(__file__).resolve().parents[2] / "reports"
        out.mkdir(exist_ok=True)
        (out / "soak-rp2-powercuts.json").write_text(json.dumps({"seed": seed, "cuts": log}, indent=2))
