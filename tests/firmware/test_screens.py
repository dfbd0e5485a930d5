"""The real firmware on the sim board: every screen, pixel-exact against golden PNGs;
the QR read back by zxing-cpp and verified with paycode; RTC models driving the
screens; the same ui.py under CPython (adafruit_ssd1306) giving the same pixels.

Regenerate the goldens after an intended layout change with
``PAYTOKEN_REGEN_GOLDEN=1 .venv/bin/pytest tests/firmware/test_screens.py`` and
review the PNGs in tests/firmware/golden/ before committing them.
"""

from __future__ import annotations

import os

import paycode
import pytest
from fwkit import GOLDEN, SCHEME_KEY, SECRET, SECRET_B32, TOKEN_ID, token_config
from paytoken import cpyui, panel, scan, simrun, vhw
from PIL import Image

T = 1790000017  # 2026-09-21T13:33:37Z, 17 s into its step (not a multiple of 4)
REGEN = bool(os.environ.get("PAYTOKEN_REGEN_GOLDEN"))


def _rows(res: simrun.SimResult) -> list[list[int]]:
    return panel.pixels(res.picture, res.width, res.height)


def _golden(name: str, res: simrun.SimResult, tmp_path) -> None:
    path = GOLDEN / f"{name}.png"
    got = tmp_path / f"{name}.png"
    panel.panel_png(res.picture, res.width, res.height, got, scale=1)
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        got.replace(path)
        return
    assert path.exists(), f"no golden {path}: run with PAYTOKEN_REGEN_GOLDEN=1"
    want = Image.open(path).convert("RGB")
    have = Image.open(got).convert("RGB")
    assert want.size == have.size
    # RGB bytes, three per pixel (Image.getdata is gone in Pillow 14; tobytes is in every one).
    w, h = want.tobytes(), have.tobytes()
    diff = sum(w[i : i + 3] != h[i : i + 3] for i in range(0, len(w), 3))
    assert diff == 0, f"{name}: {diff} pixels differ from the golden"


def _run(tmp_path, cfg, at=T, **kw) -> simrun.SimResult:
    flash, hw = simrun.prepare(tmp_path, config=cfg, at=at, **kw)
    return simrun.run(flash, hw)


def _scan(res: simrun.SimResult, tmp_path) -> str:
    # Decode the panel PNG at 2x (the 4x picture's dot-pitch grid lines sometimes
    # defeat zxing-cpp's binarizer; see the report).
    png = tmp_path / "scan.png"
    panel.panel_png(res.picture, res.width, res.height, png, scale=2)
    return scan.read_qr(png)  # normal polarity only: no inverted retry


def _lit(res: simrun.SimResult) -> int:
    return sum(map(sum, _rows(res)))


def _message(kind: str, res: simrun.SimResult, **kw) -> None:
    # The picture equals ui.py's error screen drawn through the CPython path.
    pic, _ = cpyui.render(kind, width=res.width, height=res.height, **kw)
    assert pic == res.picture, f"panel is not the {kind!r} screen"


def test_code_screen_scans_and_verifies(tmp_path):
    res = _run(tmp_path, token_config())
    _golden("code-128x64", res, tmp_path)
    digits = _scan(res, tmp_path)
    assert len(digits) == 18 and digits.isdigit()
    prefix, token_id, residue, otp = paycode.parse_code(digits, SCHEME_KEY)
    assert (prefix, token_id, residue) == ("81", TOKEN_ID, (T // 30) % 10)
    import pyotp

    assert otp == pyotp.TOTP(SECRET_B32).at(T)
    assert digits == paycode.payment_code(SECRET, TOKEN_ID, T, SCHEME_KEY)
    # the digits beside it are the same code: the CPython UI draws identical pixels
    pic, _ = cpyui.render("code", code=digits, remaining=30 - T % 30, wake=0)
    assert pic == res.picture


def test_code_screen_128x32_has_digits_and_bar(tmp_path):
    res = _run(tmp_path, token_config(), board="sim-128x32")
    assert (res.width, res.height) == (128, 32)
    _golden("code-128x32", res, tmp_path)
    code = paycode.payment_code(SECRET, TOKEN_ID, T, SCHEME_KEY)
    pic, _ = cpyui.render("code", width=128, height=32, code=code, remaining=30 - T % 30)
    assert pic == res.picture


def test_provision_me_without_secret(tmp_path):
    res = _run(tmp_path, None)
    _golden("provision", res, tmp_path)
    _message("provision", res)
    res2 = _run(tmp_path / "b", {"token_id": 5})  # a config without a secret
    _message("provision", res2, note="ID 00000005")


def test_sync_clock_when_the_rtc_lost_its_time(tmp_path):
    # A new chip: oscillator-stop flag set.
    res = _run(tmp_path, token_config(), rtc_set=False)
    _golden("sync-clock", res, tmp_path)
    _message("sync", res, note=f"ID {TOKEN_ID:08d}")


@pytest.mark.parametrize("chip", ["ds3231", "pcf8563"])
def test_power_loss_without_battery_asks_for_sync(tmp_path, chip):
    flash, hw = simrun.prepare(tmp_path, config=token_config(), at=T, rtc_chip=chip)
    code = simrun.run(flash, hw)
    assert _lit(code) > 1500  # the QR's lit square: a code is shown
    vhw.set_rtc(hw, battery=False)
    vhw.power_off(hw)
    vhw.power_on(hw)
    res = simrun.run(flash, hw)
    _message("sync", res, note=f"ID {TOKEN_ID:08d}", wake=T // 30)  # shifted: a later wake


def test_battery_keeps_time_across_power_off(tmp_path):
    flash, hw = simrun.prepare(tmp_path, config=token_config(), at=T)
    vhw.power_off(hw)
    vhw.power_on(hw)
    res = simrun.run(flash, hw)
    assert _scan(res, tmp_path) == paycode.payment_code(SECRET, TOKEN_ID, T, SCHEME_KEY)


def test_mcu_rtc_after_cold_boot_is_never_trusted(tmp_path):
    res = _run(tmp_path, token_config(), rtc_chip="mcu")
    _message("sync", res, note=f"ID {TOKEN_ID:08d}")


def test_clock_before_build_year_or_never_synced(tmp_path):
    res = _run(tmp_path, token_config(ref_time=1735689600), at=1735689600 + 3600)  # 2025
    _message("sync", res, note=f"ID {TOKEN_ID:08d}")
    res = _run(tmp_path / "b", token_config(ref_time=0, last_sync=0))
    _message("sync", res, note=f"ID {TOKEN_ID:08d}")


def test_clock_went_back_is_refused(tmp_path):
    res = _run(tmp_path, token_config(last_step=T // 30 + 1))
    _golden("clock-went-back", res, tmp_path)
    _message("back", res, note=f"ID {TOKEN_ID:08d}")


def test_config_corrupt_screen(tmp_path):
    from fwkit import fwconfig

    data = bytearray(fwconfig.encode(token_config()))
    data[-10] ^= 0x20
    res = _run(tmp_path, None, raw_config=bytes(data))
    _golden("config-corrupt", res, tmp_path)
    _message("corrupt", res)


def test_drift_correction_shows_the_true_time_code(tmp_path):
    # The crystal runs 25 ppm fast for 120 days since the sync: the RTC reads ~259 s
    # ahead. With the station's ppm stored, the token shows the code of true time.
    ref = 1780000000
    now = ref + 120 * 86400
    flash, hw = simrun.prepare(tmp_path, config=token_config(ppm=25.0, ref_time=ref),
                               at=ref, ppm=25.0)
    vhw.set_world_time(hw, now, frozen=True)
    rtc_now = vhw.rtc_time(hw)
    assert 250 <= rtc_now - now <= 262
    res = simrun.run(flash, hw)
    got = _scan(res, tmp_path)
    # true time within a second of world time (the model counts whole seconds)
    assert got in {paycode.payment_code(SECRET, TOKEN_ID, t, SCHEME_KEY) for t in (now - 1, now, now + 1)}
    # ...and without the stored ppm it would have shown the RTC's (wrong) step
    flash2, hw2 = simrun.prepare(tmp_path / "b", config=token_config(ref_time=ref), at=ref, ppm=25.0)
    vhw.set_world_time(hw2, now, frozen=True)
    res2 = simrun.run(flash2, hw2)
    assert _scan(res2, tmp_path) == paycode.payment_code(SECRET, TOKEN_ID, rtc_now, SCHEME_KEY) != got


def test_last_step_is_written_once_per_wake_and_layout_shifts(tmp_path):
    from fwkit import fwconfig

    flash, hw = simrun.prepare(tmp_path, config=token_config(), at=T)
    first = simrun.run(flash, hw)
    assert fwconfig.load(str(flash / "paytoken.cfg"))["last_step"] == T // 30
    # next wake in the following step: the layout moved by one pixel (burn-in)
    vhw.set_world_time(hw, T + 30, frozen=True)
    second = simrun.run(flash, hw)
    assert fwconfig.load(str(flash / "paytoken.cfg"))["last_step"] == T // 30 + 1
    code2 = paycode.payment_code(SECRET, TOKEN_ID, T + 30, SCHEME_KEY)
    pic, _ = cpyui.render("code", code=code2, remaining=30 - T % 30, wake=T // 30)
    assert pic == second.picture
    assert (T // 30) & 3 != 0 and first.picture != second.picture


