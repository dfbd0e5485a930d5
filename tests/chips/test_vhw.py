"""paytoken.vhw against a running MicroPython sim board: the button wakes sleep(), world
time, errors at the host boundary."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import time

import pytest
from paytoken import upy, vhw
from waits import LATE, STEP, bound


def _start(folder, code, board="sim"):
    flash = folder.with_suffix(".flash")
    flash.mkdir(exist_ok=True)
    shutil.copy(upy.BOARDS_DIR / f"{board}.py", flash / "board.py")
    env = dict(os.environ, MICROPYPATH=upy.micropypath([flash]), PAYTOKEN_HW=str(folder))
    return subprocess.Popen([upy.micropython(), "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


SLEEPER = """
import board, time
b = board.button()
t0 = time.ticks_ms()  # before "ready": the host's press comes after both
print("ready")
woke = board.sleep(%d)
print(repr((woke, time.ticks_diff(time.ticks_ms(), t0), b.pressed(), b.pressed())))
"""


def test_press_wakes_sleep(hw):
    f = hw()
    p = _start(f, SLEEPER % 20000)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    vhw.press(f)
    out, err = p.communicate(timeout=bound(STEP))
    woke, ms, first, second = ast.literal_eval(out.strip().splitlines()[-1])
    assert woke is True and first is True and second is False  # one edge per press
    # slept at least until the press (0.2 s after "ready"), woke for it, long before 20 s
    assert 150 <= ms < 200 + bound(LATE) * 1000


def test_sleep_times_out(hw):
    f = hw(board="sim-128x32")
    p = _start(f, SLEEPER % 150, board="sim-128x32")
    out, err = p.communicate(timeout=bound(STEP))
    woke, ms, first, _ = ast.literal_eval(out.strip().splitlines()[-1])
    # it slept its 150 ms, then gave up (a busy machine may wake it late, never early)
    assert (woke, first) == (False, False) and 150 <= ms < 150 + bound(LATE) * 1000, err


def test_presses_while_off_do_not_count(hw):
    f = hw()
    vhw.press(f, times=3)
    p = _start(f, SLEEPER % 100)
    out, _ = p.communicate(timeout=bound(STEP))
    assert ast.literal_eval(out.strip().splitlines()[-1])[0] is False


def test_world_time_offset_and_frozen(hw):
    f = hw(at=4_000_000_000)
    assert vhw.world_time(f) == pytest.approx(4_000_000_000, abs=5)
    vhw.set_world_time(f, 4_100_000_000, frozen=True)
    assert vhw.world_time(f) == 4_100_000_000
    time.sleep(0.05)
    assert vhw.world_time(f) == 4_100_000_000
    # The RTC ran with world time (set at creation, ppm 0).
    assert vhw.rtc_time(f) == 4_100_000_000


def test_folder_convention_and_power(hw, tmp_path):
    assert vhw.hw_folder(tmp_path / "tok1") == tmp_path / "tok1.hw"
    f = hw()
    assert vhw.is_powered(f)
    vhw.power_off(f)
    assert not vhw.is_powered(f)
    vhw.power_on(f)
    assert vhw.is_powered(f)
    assert vhw.hw_config(f) == {"board": "sim", "width": 128, "height": 64, "rtc": "ds3231"}
    assert vhw.env(f)["PAYTOKEN_HW"] == str(f.resolve())


def test_errors(hw, tmp_path):
    f = hw()
    with pytest.raises(vhw.VirtualHardwareError, match="already holds"):
        vhw.create(f)
    with pytest.raises(vhw.VirtualHardwareError, match="unknown sim board"):
        vhw.create(tmp_path / "x.hw", board="pico")
    with pytest.raises(vhw.VirtualHardwareError, match="unknown RTC chip"):
        vhw.create(tmp_path / "y.hw", rtc_chip="ds1307")
    with pytest.raises(vhw.VirtualHardwareError, match="not a hardware folder"):
        vhw.press(tmp_path / "nowhere")
    with pytest.raises(vhw.VirtualHardwareError, match="aging"):
        vhw.set_rtc(f, aging=300)
    with pytest.raises(vhw.VirtualHardwareError, match="2000-2199"):
        vhw.set_rtc(f, time=0)
    p = hw(rtc_chip="pcf8563")
    with pytest.raises(vhw.VirtualHardwareError, match="only the DS3231"):
        vhw.set_rtc(p, aging=1)
    m = hw(rtc_chip="mcu")
    with pytest.raises(vhw.VirtualHardwareError, match="no RTC chip"):
        vhw.rtc_time(m)
    (f / "rtc.json").write_text("{broken")
    with pytest.raises(vhw.VirtualHardwareError, match="corrupt rtc.json"):
        vhw.rtc_time(f)


def test_set_rtc_time_clears_lost(hw):
    f = hw(rtc_set=False, at=4_000_000_000, frozen=True)
    assert vhw.rtc_state(f)["lost"] and vhw.rtc_time(f) == 946684800
    vhw.set_rtc(f, time=4_000_000_123)
    assert not vhw.rtc_state(f)["lost"] and vhw.rtc_time(f) == 4_000_000_123


def test_a_cut_while_the_board_starts_stays_a_cut(hw):
    """The interpreter never powers its board: started (or still starting) after a cut, it
    neither runs, nor writes power.json "on", nor turns the RTC's supply back on."""
    f = hw(battery=True)
    vhw.power_off(f)
    rtc_before = vhw.rtc_state(f)
    assert rtc_before["powered"] is False
    code = "import board\nboard.i2c()\nprint('BOARD-RAN')\n"
    # alone: a one-line error, and the folder as the cut left it
    p = _start(f, code)
    out, err = p.communicate(timeout=bound(STEP))
    assert p.returncode != 0 and "BOARD-RAN" not in out and "power is off" in out + err, (out, err)
    assert not vhw.is_powered(f) and vhw.rtc_state(f) == rtc_before
    # under a supervisor (PAYTOKEN_BOOT): it waits, silent, to be killed, as a latch board does
    flash = f.with_suffix(".flash")
    env = dict(os.environ, MICROPYPATH=upy.micropypath([flash]), PAYTOKEN_HW=str(f), PAYTOKEN_BOOT="1")
    p = subprocess.Popen([upy.micropython(), "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            p.communicate(timeout=1.5)
        assert not vhw.is_powered(f) and vhw.rtc_state(f) == rtc_before
    finally:
        p.kill()
        out, _ = p.communicate()
    assert "BOARD-RAN" not in out
    # powered by the host, the same board runs
    vhw.power_on(f)
    p = _start(f, code)
    out, err = p.communicate(timeout=bound(STEP))
    assert p.returncode == 0 and "BOARD-RAN" in out, err
