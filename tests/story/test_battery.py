"""The battery calculator: hand-checked arithmetic, the measured inputs, the doc in sync."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from paytoken.story import battery as b

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "BATTERY.md"
FIRMWARE_APP = REPO / "firmware" / "app.py"


def test_esp32_fob_on_lipo_by_hand() -> None:
    # One wake: compute 22.7 ms x 22.5 (x15 at 240 MHz, x1.5 at 160) + I2C 1304 bytes x 9 / 400 kHz
    # at 35 mA; light sleep 0.8 mA for the rest of 20 s; the panel 10 mA for 20 s; the
    # DS3231 on VBAT draws 0.2 - 0.00084 mA more while the bus runs. Asleep: ESP32 deep
    # sleep 0.01 + panel off 0.01 mA outside the wakes; RTC 0.00084 + LDO 0.0016 mA all day.
    busy = (22.7 * 22.5 + 1304 * 9 / 400) / 1000
    i2c = 1304 * 9 / 400_000
    wake = 35 * busy + 0.8 * (20 - busy) + 10 * 20 + (0.2 - 0.00084) * i2c
    awake_mah = 10 * wake / 3600
    sleep_mah = (0.02 * (86400 - 10 * 20) + (0.00084 + 0.0016) * 86400) / 3600
    e = b.estimate(b.FOBS["esp32-devkitc"], 10, b.BATTERIES["lipo150"])
    assert e.mah_awake_per_day == pytest.approx(awake_mah, rel=1e-9)
    assert e.mah_sleep_per_day == pytest.approx(sleep_mah, rel=1e-9)
    assert e.days == pytest.approx(150 * 0.85 / (awake_mah + sleep_mah), rel=1e-9)
    assert e.nap_s == pytest.approx(20 - busy)


def test_devkitc_as_built_counts_its_regulator_led_and_bridge() -> None:
    e = b.estimate(b.BOARDS["esp32-devkitc"], 0, b.BATTERIES["lipo150"])
    # 24 h of 0.01 + 0.01 + 0.11 (DS3231 on VCC) + 5 + 1 + 0.08 mA
    assert e.mah_per_day == pytest.approx(24 * 6.21, rel=1e-9)


def test_more_payments_shorter_life_and_the_longest_board() -> None:
    for boards in b.SCENARIOS.values():
        for board in boards.values():
            days = [b.estimate(board, n, b.BATTERIES["cr2032"]).days for n in (0, 1, 10, 50)]
            assert days == sorted(days, reverse=True)
    for bat in b.BATTERIES.values():
        assert b.longest(battery=bat) == "pico"
        assert b.longest(battery=bat, scenario="fob") == "esp32-devkitc"


def test_inputs_are_the_firmwares() -> None:
    m = re.search(r"_AWAKE_S = const\((\d+)\)", FIRMWARE_APP.read_text())
    assert m and float(m.group(1)) == b.AWAKE_S
    for name, board in b.BOARDS.items():
        src = (REPO / "boards" / f"{name}.py").read_text()
        m = re.search(r"^CPU_HZ_BATTERY = (\d+)", src, re.M)
        assert m and int(m.group(1)) == board.cpu_mhz * 1_000_000, name
        assert b.FOBS[name].cpu_mhz == board.cpu_mhz
    # the per-wake figures agree with the countdown model
    assert b.wake_i2c_bytes(b.AWAKE_S) == pytest.approx(b.WAKE_I2C_BYTES)
    assert b.wake_compute_ms_unix(1) == pytest.approx(b.FIRST_FRAME_MS_UNIX_X86)


def test_clock_tradeoff_is_computed_not_claimed() -> None:
    for key in ("pico", "esp32-devkitc"):
        full, low = b.BOARDS[key], b.at_low_clock(b.BOARDS[key])
        assert (full.cpu_mhz, low.cpu_mhz) == ((125, 48) if key == "pico" else (160, 80))
        assert b.estimate(full, 1, b.BATTERIES["lipo150"]).compute_ms < b.estimate(
            low, 1, b.BATTERIES["lipo150"]).compute_ms
        # with naps, the lower clock does not save charge under these currents (the doc says so)
        assert b.wake_charge_mas(low) > b.wake_charge_mas(full)
    with pytest.raises(ValueError, match="no lower clock"):
        b.at_low_clock(dataclasses.replace(b.BOARDS["pico"], low=None))


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        b.estimate(b.BOARDS["pico"], -1, b.BATTERIES["cr2032"])
    with pytest.raises(ValueError, match="never sleep"):
        b.estimate(b.BOARDS["pico"], 5000, b.BATTERIES["cr2032"])


def test_doc_is_the_calculators_output() -> None:
    text = DOC.read_text()
    assert b.markdown() in text
    assert b.sources() in text
    assert b.clock_tradeoff() in text
