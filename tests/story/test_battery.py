"""The battery calculator: hand-checked arithmetic, the measured inputs, the doc in sync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from paytoken.story import battery as b

DOC = Path(__file__).resolve().parents[2] / "docs" / "BATTERY.md"
FIRMWARE_APP = Path(__file__).resolve().parents[2] / "firmware" / "app.py"


def test_esp32_on_lipo_by_hand() -> None:
    # 10 wakes of 60 s + 15 x 11.1 ms at 50 + 10 + 0.11 mA; asleep 0.01 + 0.01 + 0.11 mA;
    # the DS3231's extra 0.09 mA during the I2C wire time; 150 mAh x 0.85.
    awake_s = 60 + 15 * 11.1 / 1000
    i2c_s = (1080 + 11.6 * 60) * 9 / 400_000
    awake_mah = 10 * (60.11 * awake_s + 0.09 * i2c_s) / 3600
    sleep_mah = 0.13 * (86400 - 10 * awake_s) / 3600
    e = b.estimate(b.BOARDS["esp32-devkitc"], 10, b.BATTERIES["lipo150"])
    assert e.mah_awake_per_day == pytest.approx(awake_mah, rel=1e-9)
    assert e.mah_sleep_per_day == pytest.approx(sleep_mah, rel=1e-9)
    assert e.days == pytest.approx(150 * 0.85 / (awake_mah + sleep_mah), rel=1e-9)
    assert e.i2c_ms == pytest.approx(i2c_s * 1000)


def test_more_payments_shorter_life_and_the_longest_board() -> None:
    for board in b.BOARDS.values():
        days = [b.estimate(board, n, b.BATTERIES["cr2032"]).days for n in (0, 1, 10, 50)]
        assert days == sorted(days, reverse=True)
    assert b.longest() == "esp32-devkitc"
    assert b.longest(battery=b.BATTERIES["cr2032"]) == "esp32-devkitc"


def test_awake_time_is_the_firmwares() -> None:
    m = re.search(r"_AWAKE_S = const\((\d+)\)", FIRMWARE_APP.read_text())
    assert m and float(m.group(1)) == b.AWAKE_S


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        b.estimate(b.BOARDS["pico"], -1, b.BATTERIES["cr2032"])
    with pytest.raises(ValueError, match="never sleep"):
        b.estimate(b.BOARDS["pico"], 2000, b.BATTERIES["cr2032"])


def test_doc_is_the_calculators_output() -> None:
    text = DOC.read_text()
    assert b.markdown() in text
    assert b.sources() in text
