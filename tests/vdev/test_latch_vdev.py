"""A power-latch virtual token (``paytoken vdev start --board sim-latch``): deployed and
provisioned over USB as any board; on battery it switches itself off at the end of the
display time and the supervisor leaves it off; a press powers it up and it shows the
code of the new time (its RTC kept time while it was off), then goes off again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from paytoken import simrun, vhw
from paytoken.station import deploy as dp
from paytoken.station import ops
from paytoken.station.transport import Device
from paytoken.vdev import control
from waits import STEP, bound

pytestmark = pytest.mark.timeout(180)
T = 1790000017


def _wait(what, cond, timeout=60.0, tok=None):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            state = ""
            if tok is not None:
                import serial

                with serial.Serial(tok.port, timeout=3) as s:
                    s.write(b"\x03")  # where it waits (an unlocked token takes Ctrl-C)
                    out = s.read(4000)
                state = (f" (child {tok.child_pid()}, power {vhw.is_powered(tok.hw)}, "
                         f"cpu {vhw.cpu(tok.hw)}, output {out[-600:]!r})")
            raise AssertionError(f"timed out waiting for {what}{state}")
        time.sleep(0.05)


def _last_step(flash: Path) -> int:
    # Only while the token is off: config.load recovers a cut write, so a host reading
    # the file while the token writes it would drop the token's temp file.
    return simrun._fwconfig().load(str(flash / "paytoken.cfg"))["last_step"]


def test_latch_token_powers_off_on_battery_and_a_press_boots_it(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok", "--board", "sim-latch")
    hw = t.hw
    with Device(t.port, timeout=bound(STEP)) as dev:
        r = dp.deploy(dev, "sim-latch")
        assert "/sim/latch.mpy" in r.copied and r.image == "files"
        ops.write_config(dev, simrun.token_config(b"12345678901234567890", 12345678,
                                                  bytes(range(16)), at=T - 86400))
    # off the USB, in a virtual world (the 20 s display passes at once), then a reboot
    vhw.set_world_time(hw, T, virtual=True)
    vhw.set_usb(hw, False)
    control.hard_reset(t.flash)
    _wait("the latch to switch the token off", lambda: vhw.latched_off(hw), tok=t)
    assert _last_step(t.flash) == T // 30  # it showed the code before going off
    assert vhw.panel_state(hw)["powered"] is False and vhw.rtc_state(hw)["powered"] is False
    time.sleep(0.5)  # several supervisor polls: it stays off
    assert t.child_pid() is None and vhw.latched_off(hw)
    # an hour later a press powers it up; it shows the code of that time, and goes off
    vhw.set_world_time(hw, T + 3600, virtual=True)
    vhw.press(hw)
    _wait("the pressed token to run its 20 s display",
          lambda: vhw.cpu(hw)["naps"] >= 40 and vhw.latched_off(hw), tok=t)
    assert _last_step(t.flash) == (T + 3600) // 30  # it showed the code of the new time
    assert vhw.world_time(hw) == T + 3600 + 20
    assert t.proc.poll() is None  # the supervisor itself runs on
