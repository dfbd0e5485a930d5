"""The awake profile on the real MicroPython interpreter with the sim board: the display
goes off 20 s after the last press (a press extends it), the token naps between
countdown ticks on battery and stays responsive (no naps) while USB is attached, and a
battery boot asks for the lower CPU clock.

Minutes of a token's life run in milliseconds in a *virtual* world (``vhw``: the world
clock stands still except while the board naps or sleeps, and the sim board's ticks
follow it), so every time below is exact. The USB path waits on the real clock.
"""

from __future__ import annotations

import re

import pytest
from fwkit import token_config
from paytoken import simrun, upy, vhw
from paytoken.story import battery

T = 1790000017  # 17 s into its step: the code changes 13 s into the wake
APP = re.compile(r"_AWAKE_S = const\((\d+)\)")

# The token on the sim board, run as boot would, observed from inside: each countdown
# frame (board ms, UTC second), the board ms when the display went off, and the waits
# the app asked of idle(). The host presses the button (the file vhw.press appends to)
# when the board's clock reaches PRESS_AT.
_PROGRAM = """
import app, board, sim
tok = app.make_token(board, {cfg!r})
PRESS_AT = {press_at!r}
frames = []
waits = []
off = []
_tick = tok.tick
def tick(t):
    frames.append((board.ticks_ms(), t))
    _tick(t)
tok.tick = tick
_nap = board.nap
def nap(ms):
    global PRESS_AT
    if PRESS_AT is not None and board.ticks_ms() >= PRESS_AT:
        PRESS_AT = None
        with open(sim._hw.folder + "/button", "ab") as f:
            f.write(b"p")
    return _nap(ms)
board.nap = nap
def idle(ms):
    if ms:
        waits.append(ms)
        app._sleep_ms(ms)
        return False
    off.append(board.ticks_ms())  # asleep with the display off: stop here
    return True
app.run(tok, idle=idle{awake})
print(repr((frames, off, waits)))
"""


def _token(tmp_path, *, usb: bool, virtual: bool, locked: bool = False):
    flash, hw = simrun.prepare(tmp_path, config=token_config(locked=locked), at=T)
    vhw.set_usb(hw, usb)
    if virtual:
        vhw.set_world_time(hw, T, virtual=True)
    return flash, hw


def _run(flash, hw, press_at=None, awake_s=None):
    awake = "" if awake_s is None else f", awake_s={awake_s}"
    code = _PROGRAM.format(cfg=str(flash / "paytoken.cfg"), press_at=press_at, awake=awake)
    return upy.eval_repr(code, path=[hw.parent / "board"], env=vhw.env(hw), timeout=60)


def test_awake_time_is_20_s_and_the_code_stays_valid():
    # 20 s: a scan (2-5 s) or 18 typed digits (10-15 s) fit; the last code shown is
    # at most 20 s old, inside the backend's +-1 step window.
    src = (upy.FIRMWARE_DIR / "app.py").read_text()
    m = APP.search(src)
    assert m and int(m.group(1)) == 20


def test_on_battery_the_display_goes_off_after_20_s_napping_between_ticks(tmp_path):
    flash, hw = _token(tmp_path, usb=False, virtual=True)
    frames, off, waits = _run(flash, hw)
    # one countdown frame per second, each on its second, the new step's code included
    assert frames == [(1000 * k, T + k) for k in range(1, 20)]
    assert off == [20000 + 1000]  # off at 20 s, then one 1 s sleep slice before idle()
    assert waits == []  # the serial protocol was never polled: no host on battery
    cpu = vhw.cpu(hw)
    assert cpu["naps"] == 20 and cpu["nap_ms"] == 20000
    assert cpu["hz"] == 125_000_000  # the sim family CPU_HZ_BATTERY (firmware/sim), asked before the bus opened
    assert vhw.world_time(hw) == T + 21
    # the bus traffic of this wake is the battery estimate's measured input
    assert vhw.i2c_bytes(hw) == battery.WAKE_I2C_BYTES
    st = vhw.panel_state(hw)
    assert st["display_on"] is False and st["lit"] is False


def test_a_press_extends_the_display_by_20_s(tmp_path):
    flash, hw = _token(tmp_path, usb=False, virtual=True)
    frames, off, _ = _run(flash, hw, press_at=15000)
    assert off == [35000 + 1000]  # 15 s + 20 s
    assert [f[0] for f in frames] == [1000 * k for k in range(1, 35)]
    assert frames[-1][1] == T + 34  # the code at 34 s: the step after the wake's next
    cpu = vhw.cpu(hw)
    # 35 full naps, and the one the press cut short (it slept nothing)
    assert cpu["naps"] == 36 and cpu["nap_ms"] == 35000


@pytest.mark.parametrize("usb", [True, False], ids=["usb", "battery"])
def test_naps_only_on_battery(tmp_path, usb):
    # The same 2 s wake on the real clock: with USB the app polls the serial every
    # 250 ms and never naps; on battery it naps twice (to 1 s, to 2 s) and never polls.
    flash, hw = _token(tmp_path, usb=usb, virtual=False)
    frames, off, waits = _run(flash, hw, awake_s=2)
    assert len(off) == 1 and len(frames) == 1
    cpu = vhw.cpu(hw)
    if usb:
        assert cpu == {"hz": None, "naps": 0, "nap_ms": 0}
        # polled again and again, in slices of at most 250 ms (the count a busy machine
        # lowers: the frames take longer, the slices fill less of the 2 s)
        assert len(waits) >= 2 and max(waits) <= 250, waits
    else:
        assert cpu["naps"] == 2 and cpu["nap_ms"] >= 1000 and cpu["hz"] == 125_000_000
        assert waits == []


def test_a_locked_token_on_battery_naps_too(tmp_path):
    # boot() serves the locked protocol only while USB is attached.
    flash, hw = _token(tmp_path, usb=False, virtual=True, locked=True)
    code = simrun.boot_code(flash, 6) + "import board\nprint(repr(board.ticks_ms()))\n"
    ms = upy.eval_repr(code, path=[hw.parent / "board"], env=vhw.env(hw), timeout=60)
    assert ms == 5000
    assert vhw.cpu(hw)["naps"] == 5


def test_usb_knob_and_virtual_world_errors(tmp_path):
    _, hw = simrun.prepare(tmp_path, config=None, at=T)
    with pytest.raises(vhw.VirtualHardwareError, match="not both"):
        vhw.set_world_time(hw, T, frozen=True, virtual=True)
    with pytest.raises(vhw.VirtualHardwareError, match="not a hardware folder"):
        vhw.set_usb(tmp_path / "nowhere", False)
    assert vhw.cpu(hw) == {"hz": None, "naps": 0, "nap_ms": 0}
