"""The power-latch fob (boards/pico-latch.py) on the emulated Pico: on battery, the
firmware's release of its hold pin (GP22) at the end of the display time powers the
emulated chip off (the runner is gone, the panel dark, the board off "by the latch"),
and a press boots it again to the code on the panel, read by zxing-cpp."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from paytoken import vhw
from paytoken.station import deploy as deploy_mod
from paytoken.station import ops
from paytoken.station.transport import Device
from rp2kit import panel_code, start_pico, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
from fwkit import token_config  # noqa: E402

pytestmark = [pytest.mark.xdist_group("rp2latch"), pytest.mark.timeout(1800)]


def boots(tok) -> int:
    return json.loads((tok.hw / "vdev.json").read_text())["boots"]


def test_the_latch_powers_the_chip_off_and_a_press_boots_it(tmp_path: Path) -> None:
    # --fast-idle: the 20 s display time passes without the wall clock (no mount here)
    tok = start_pico(tmp_path / "tok", "--fast-idle", board="pico-latch")
    try:
        now = int(time.time())
        cfg = token_config(ref_time=now - 3600, last_sync=now - 3600)
        with Device(tok.port, timeout=180) as dev:  # on USB: the factory's deploy
            deploy_mod.deploy(dev, "pico-latch")
            ops.write_config(dev, cfg)
        vhw.set_usb(tok.hw, False)  # on the cell: VBUS low
        n = boots(tok)
        vhw.power_off(tok.hw)  # unplugged and switched on again: a boot on battery
        wait_for(lambda: tok.child_pid() is None, 20, "the emulator stops on power-off")
        vhw.power_on(tok.hw)
        wait_for(lambda: boots(tok) > n, 60, "a boot on battery")
        # the code, then the end of the display time: the hold pin goes low, the supply too
        panel_code(tok, tmp_path, cfg)
        wait_for(lambda: vhw.latched_off(tok.hw), 600, "the latch releases the supply")
        wait_for(lambda: tok.child_pid() is None, 20, "the chip is off")
        assert not vhw.is_powered(tok.hw) and not vhw.panel_state(tok.hw)["lit"]
        time.sleep(1)
        assert tok.child_pid() is None  # nothing boots by itself
        n = boots(tok)
        vhw.press(tok.hw)  # the press switches the supply on: a power-up to the code
        wait_for(lambda: boots(tok) > n, 60, "a press boots the chip")
        assert not vhw.latched_off(tok.hw)
        assert panel_code(tok, tmp_path, cfg).isdigit()
        wait_for(lambda: vhw.latched_off(tok.hw), 600, "off again after the display time")
    finally:
        tok.stop()
