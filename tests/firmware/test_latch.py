"""The power-latch board on the real MicroPython interpreter (boards/sim-latch.py, the
fast tier's model of boards/pico-latch.py): at the end of the display time the token
releases its supply and is off (the RTC on its battery, the panel dark, the interpreter
gone); a press powers it up and the code is on the panel at once, from the RTC that kept
time; with USB attached the release does nothing and the token sleeps as any board.

The world is virtual (``vhw``): it moves only while the board naps or sleeps, so the
20 s display takes no wall time and every time below is exact.
"""

from __future__ import annotations

import paycode
import pytest
from fwkit import SCHEME_KEY, SECRET, TOKEN_ID, token_config
from paytoken import panel, scan, simrun, upy, vhw

T = 1790000017  # 17 s into its step

# boot as main.py does, on the sim-latch board; the last line is only reached when the
# token did not switch itself off (USB: idle() stops it asleep with the display off)
# (with USB the app polls idle() on the real clock: a 2 s display then)
_PROGRAM = """
import app, board
tok = app.make_token(board, {cfg!r})
def idle(ms):
    app._sleep_ms(ms)
    return ms == 0
app.run(tok, idle=idle{awake})
print(repr(('still on', board.ticks_ms())))
"""


def _token(tmp_path, *, usb: bool, locked: bool = False):
    flash, hw = simrun.prepare(tmp_path, config=token_config(locked=locked), at=T,
                               board="sim-latch", frozen=False)
    vhw.set_usb(hw, usb)
    if not usb:
        vhw.set_world_time(hw, T, virtual=True)
    return flash, hw


def _run(flash, hw, code):
    return upy.run(code, path=[hw.parent / "board"], env=vhw.env(hw), timeout=60)


def _code_on_panel(hw, tmp_path) -> str:
    got, w, h, on, inv = vhw.panel(hw)
    assert on, "the panel is dark"
    png = tmp_path / "panel.png"
    panel.panel_png(got, w, h, png, scale=4, inverted=inv)
    return scan.read_qr(png)


def test_on_battery_the_latch_powers_the_token_off_and_a_press_boots_it(tmp_path):
    flash, hw = _token(tmp_path, usb=False)
    p = _run(flash, hw, _PROGRAM.format(cfg=str(flash / "paytoken.cfg"), awake=""))
    assert p.returncode == 0, p.stderr[-800:]
    assert "still on" not in p.stdout  # power_off never returned: the interpreter stopped
    # off after the 20 s display, napping between ticks (no sleep slice: the supply went)
    assert vhw.world_time(hw) == T + 20
    assert not vhw.is_powered(hw) and vhw.latched_off(hw)
    assert vhw.panel_state(hw)["powered"] is False
    rtc = vhw.rtc_state(hw)
    assert rtc["powered"] is False and rtc["battery"] is True  # on VBAT: it keeps time
    assert vhw.cpu(hw)["naps"] == 20
    # an hour later (the world moves on while it is off) a press powers it up...
    vhw.set_world_time(hw, T + 3600, virtual=True)
    vhw.press(hw)
    assert vhw.is_powered(hw) and not vhw.latched_off(hw)
    assert not (hw / "button").exists() or (hw / "button").read_bytes() == b""  # no press left over
    # ...and the first frame of that boot is the code of the new time: the RTC kept it
    q = _run(flash, hw, simrun.boot_code(flash, 1))
    assert q.returncode == 0, q.stderr[-800:]
    want = paycode.payment_code(SECRET, TOKEN_ID, T + 3600, SCHEME_KEY, "81")
    assert _code_on_panel(hw, tmp_path) == want


def test_a_locked_token_powers_off_too(tmp_path):
    flash, hw = _token(tmp_path, usb=False, locked=True)
    p = _run(flash, hw, simrun.boot_code(flash, 0))
    assert p.returncode == 0, p.stderr[-800:]
    assert vhw.latched_off(hw) and vhw.world_time(hw) == T + 20


def test_with_usb_the_release_does_nothing(tmp_path):
    flash, hw = _token(tmp_path, usb=True)
    p = _run(flash, hw, _PROGRAM.format(cfg=str(flash / "paytoken.cfg"), awake=", awake_s=2"))
    assert p.returncode == 0, p.stderr[-800:]
    assert "still on" in p.stdout  # asleep with the display off, still running
    assert vhw.is_powered(hw) and not vhw.latched_off(hw)
    assert vhw.rtc_state(hw)["powered"] is True


def test_a_press_on_a_running_latch_board_is_a_press(tmp_path):
    _, hw = _token(tmp_path, usb=False)
    vhw.press(hw)
    assert (hw / "button").read_bytes() == b"p"
    # a board cut by the host (not its latch) stays off: a press cannot power it
    vhw.power_off(hw)
    vhw.press(hw)
    assert not vhw.is_powered(hw)


@pytest.mark.parametrize("board", ["sim", "sim-128x32"])
def test_boards_without_a_latch_have_no_power_off(tmp_path, board):
    _, hw = simrun.prepare(tmp_path, config=None, at=T, board=board)
    code = "import board\nprint(repr(hasattr(board, 'power_off')))\n"
    assert upy.eval_repr(code, path=[hw.parent / "board"], env=vhw.env(hw), timeout=30) is False
