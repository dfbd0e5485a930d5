"""The virtual token as hardware the desk can rely on: one supervisor per flash folder,
private files, and the board's watchdog (the unlock lease) modelled by the supervisor."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from paytoken import upy
from paytoken.station.transport import Device
from paytoken.vdev import control
from vdevkit import paytoken

pytestmark = pytest.mark.timeout(120)


def _wait(cond, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_second_supervisor_on_one_flash_folder_is_refused(vdevs, tmp_path: Path) -> None:
    flash = tmp_path / "tok"
    first = vdevs(flash)
    state = {k: v for k, v in json.loads((first.hw / "vdev.json").read_text()).items() if k != "boots"}
    r = paytoken("vdev", "start", "--flash", str(flash), timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"paytoken: a virtual token already runs on {flash.resolve()} "
                                f"(supervisor pid {first.proc.pid})")
    assert "Traceback" not in r.stderr and r.stdout == ""
    # the first one still runs, its port and state untouched
    assert first.proc.poll() is None
    now = json.loads((first.hw / "vdev.json").read_text())
    assert {k: v for k, v in now.items() if k != "boots"} == state
    assert control.port(flash) == first.port
    with Device(first.port, timeout=10) as dev:
        assert dev.eval("1 + 1") == 2
    # a supervisor that died without cleaning up holds no lock: the kernel dropped it
    os.kill(first.proc.pid, 9)
    first.proc.wait(10)
    second = vdevs(flash)
    with Device(second.port, timeout=10) as dev:
        assert dev.eval("2 + 2") == 4


def test_files_the_firmware_writes_are_private(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    with Device(t.port, timeout=10) as dev:
        dev.exec("f = open('/secret.bin', 'wb')\nf.write(b'x')\nf.close()\n")
        dev.put(b"y" * 100, "/put.bin")
    for name in ("secret.bin", "put.bin"):
        mode = stat.S_IMODE((t.flash / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_the_watchdog_resets_the_board_unless_fed(vdevs, tmp_path: Path) -> None:
    # A model of machine.WDT: fed, the board lives on (across a soft reset too); not fed
    # for its timeout, the supervisor resets it (a full boot); a hard reset stops it.
    flash = tmp_path / "tok"
    flash.mkdir()
    (flash / "board.py").write_text("from sim import *\nNAME = 'sim'\nWIDTH = 128\nHEIGHT = 64\n")
    shutil.copytree(upy.FIRMWARE_DIR / "sim", flash / "sim")
    (flash / "main.py").write_text("open('/boots', 'a').write('x')\n")
    t = vdevs(flash)
    _wait(lambda: (flash / "boots").exists(), 15)  # the first boot
    wdt = t.hw / "wdt.json"
    with Device(t.port, timeout=10) as dev:
        dev.exec("import board\n_w = board.wdt(1500)\n")
        assert json.loads(wdt.read_text())["timeout_ms"] == 1500
        for _ in range(4):  # fed every 0.5 s for 2 s: no reset
            time.sleep(0.5)
            dev.exec("_w.feed()")
        assert (t.flash / "boots").read_text() == "x"
        dev.soft_reset()  # the object is gone, the watchdog is not
    _wait(lambda: (t.flash / "boots").read_text() == "xx", 15)  # it fired: a full boot
    assert not wdt.exists()  # and a reset stops it
    with Device(t.port, timeout=10) as dev:
        dev.exec("import board\n_w = board.wdt(1500)\n")
        dev.hard_reset()  # machine.reset(): the watchdog stops with it
        assert not wdt.exists()
    _wait(lambda: (t.flash / "boots").read_text() == "xxx", 15)
    time.sleep(2.5)
    assert (t.flash / "boots").read_text() == "xxx"  # no reset by a watchdog since
