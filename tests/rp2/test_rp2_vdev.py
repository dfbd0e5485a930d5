"""The emulated Pico as a virtual token, on the stock MicroPython: everything a sim vdev
offers (device path, vdev.json, press, snapshot, power, set-rtc, reset, stock mpremote),
with the board's own pins and the sim boards' chip models on its I2C bus. One token for
the module (a boot costs seconds of emulation on a loaded machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from paytoken import vhw
from paytoken.vdev import control
from rp2kit import MPREMOTE, listdir, read_file, start_pico, wait_for

# one emulated token per module: its tests stay on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("rp2vdev")


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    tok = start_pico(tmp_path_factory.mktemp("rp2vdev") / "tok")
    yield tok
    tok.stop()


def mp(tok, *args: str, timeout: float = 90) -> str:
    r = subprocess.run([MPREMOTE, "connect", tok.port, *args], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paytoken", *args], capture_output=True, text=True,
                          timeout=60)


def boots(tok) -> int:
    return json.loads((tok.hw / "vdev.json").read_text())["boots"]


def test_the_real_rp2_port_behind_the_device_path(pico) -> None:
    assert pico.port == str(pico.hw / "tty") and Path(pico.port).is_symlink()
    st = json.loads((pico.hw / "vdev.json").read_text())
    assert st["board"] == "pico" and st["port"] == pico.port and st["boots"] >= 1
    assert control.port(pico.flash) == pico.port
    out = mp(pico, "exec", "import sys, gc; print(sys.implementation._machine, sys.implementation._mpy >> 10, "
                           "gc.mem_free() > 200000)")
    assert out.split() [-3:] == ["RP2040", "4", "True"], out  # armv6m .mpy (arch 4)


def test_i2c_chips_are_the_sim_models(pico) -> None:
    world = 1798000000.0
    vhw.set_world_time(pico.hw, world, frozen=True)
    vhw.set_rtc(pico.hw, time=world)
    code = ("import machine\n"
            "i = machine.I2C(0, sda=machine.Pin(4), scl=machine.Pin(5), freq=400000)\n"
            "print(i.scan())\n"
            "print(list(i.readfrom_mem(0x68, 0, 7)))\n"
            "i.writeto(0x3c, bytes([0x00, 0x8d, 0x14, 0xaf]))\n"
            "try:\n i.writeto(0x50, b'1')\nexcept OSError as e:\n print('nack', e.errno)\n")
    out = mp(pico, "exec", code).split("\n")
    assert out[0].strip() == "[60, 104]"  # SSD1306 0x3C, DS3231 0x68: the bit-banged scan
    regs = json.loads(out[1])
    regs[5] &= 0x1F  # the century bit
    bcd = [(b >> 4) * 10 + (b & 15) for b in regs]
    g = time.gmtime(world)
    assert (2000 + bcd[6], bcd[5], bcd[4], bcd[2], bcd[1], bcd[0]) == tuple(g[:6])
    assert out[2].strip() == "nack 5"  # EIO, as on silicon (not the emulator's ETIMEDOUT)
    assert vhw.panel_state(pico.hw)["lit"]  # the display model took the commands
    vhw.set_world_time(pico.hw, time.time())


def test_button_and_vbus_are_the_board_pins(pico) -> None:
    # The press is a low pulse on GP15; its falling edge fires the pin's IRQ. VBUS on GP24.
    code = ("import machine, time\n"
            "b = machine.Pin(15, machine.Pin.IN, machine.Pin.PULL_UP)\n"
            "n = [0]\n"
            "def cb(p):\n n[0] += 1\n"
            "b.irq(cb, machine.Pin.IRQ_FALLING)\n"
            "print('ready', b.value(), machine.Pin(24, machine.Pin.IN).value())\n"
            "t = time.ticks_ms()\n"
            "while n[0] == 0 and time.ticks_diff(time.ticks_ms(), t) < 60000:\n"
            " time.sleep_ms(5)\n"
            "time.sleep_ms(300)\n"
            "print('edges', n[0], b.value(), machine.Pin(24, machine.Pin.IN).value())\n")
    p = subprocess.Popen([MPREMOTE, "connect", pico.port, "exec", code], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().split() == ["ready", "1", "1"]
    # unplugged from a host's power: VBUS low. No wait needed: the supervisor sends the
    # pin change in the poll that sees the press at the latest, and the chip reads VBUS
    # 300 emulated ms after the edge.
    vhw.set_usb(pico.hw, False)
    r = cli("vdev", "press", "--flash", str(pico.flash))
    assert r.returncode == 0, r.stderr
    out, _ = p.communicate(timeout=90)
    vhw.set_usb(pico.hw, True)
    assert out.split() == ["edges", "1", "1", "0"], out  # one edge, released, VBUS low


def test_flash_survives_power_and_resets(pico, tmp_path: Path) -> None:
    src = tmp_path / "keep.txt"
    src.write_text("kept across power cycles\n")
    mp(pico, "fs", "cp", str(src), ":keep.txt")
    assert read_file(pico.flash, "/keep.txt") == b"kept across power cycles\n"  # littlefs in flash.img
    n = boots(pico)
    assert cli("vdev", "power-off", "--flash", str(pico.flash)).returncode == 0
    wait_for(lambda: pico.child_pid() is None, 10, "the emulator stops on a power cut")
    assert not vhw.panel_state(pico.hw)["lit"]
    assert cli("vdev", "power-on", "--flash", str(pico.flash)).returncode == 0
    wait_for(lambda: boots(pico) > n, 20, "a boot after power-on")
    out = mp(pico, "exec", "import machine, os; print(open('keep.txt').read().strip(), "
                           "machine.reset_cause() == machine.PWRON_RESET)")
    assert out.strip() == "kept across power cycles True"
    n = boots(pico)
    assert cli("vdev", "reset", "--flash", str(pico.flash)).returncode == 0
    assert boots(pico) > n
    n = boots(pico)
    mp(pico, "reset")  # machine.reset(): the watchdog; the emulator reboots the chip
    wait_for(lambda: boots(pico) > n, 20, "a boot after the watchdog reset")
    out = mp(pico, "exec", "import machine; print(machine.reset_cause() == machine.WDT_RESET)")
    assert out.strip() == "True"
    assert "keep.txt" in listdir(pico.flash)


def test_set_rtc_and_snapshot(pico, tmp_path: Path) -> None:
    r = cli("vdev", "set-rtc", "--flash", str(pico.flash), "--ppm", "12.5")
    assert r.returncode == 0, r.stderr
    assert vhw.rtc_state(pico.hw)["ppm"] == 12.5
    png = tmp_path / "panel.png"
    assert cli("vdev", "snapshot", "--flash", str(pico.flash), str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_materials_are_named(tmp_path: Path, monkeypatch) -> None:
    env = dict(__import__("os").environ, PAYTOKEN_RP2_DIR=str(tmp_path / "nowhere"))
    r = subprocess.run([sys.executable, "-m", "paytoken", "vdev", "start", "--flash", str(tmp_path / "t"),
                        "--board", "pico"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1
    assert "rp2040-bootrom-b1.bin" in r.stderr and "PAYTOKEN_RP2_DIR" in r.stderr
    r = cli("vdev", "start", "--flash", str(tmp_path / "t"), "--board", "esp32-devkitc")
    assert r.returncode == 1 and "not an RP2040 board" in r.stderr


def test_a_board_with_a_pcf8563_on_i2c1(tmp_path: Path) -> None:
    # The XIAO RP2040: I2C1 on GPIO6/7, a PCF8563 (0x51) from the same RTC model.
    tok = start_pico(tmp_path / "xiao", board="xiao-rp2040")
    try:
        world = 1800000000.0
        vhw.set_world_time(tok.hw, world, frozen=True)
        vhw.set_rtc(tok.hw, time=world)
        code = ("import machine\n"
                "i = machine.I2C(1, sda=machine.Pin(6), scl=machine.Pin(7))\n"
                "print(i.scan(), list(i.readfrom_mem(0x51, 2, 7)))\n")
        out = mp(tok, "exec", code).strip()
        found, regs = out.split("] [")
        assert found == "[60, 81"
        r = [int(x) for x in regs.rstrip("]").split(",")]
        bcd = lambda b: (b >> 4) * 10 + (b & 15)  # noqa: E731
        g = time.gmtime(world)
        assert (2000 + bcd(r[6]), bcd(r[5] & 0x1F), bcd(r[3] & 0x3F), bcd(r[2] & 0x3F), bcd(r[1]),
                bcd(r[0] & 0x7F)) == tuple(g[:6])
        assert vhw.hw_config(tok.hw)["rtc"] == "pcf8563"
    finally:
        tok.stop()


def test_format_2_code_on_the_rp2_port(pico) -> None:
    # Code format 2 (TOTP HMAC-SHA256) computed by the paycode files on the real rp2 port:
    # one code at one time, the same as CPython's, its TOTP as pyotp computes it.
    import base64
    import hashlib

    import paycode
    import pyotp
    from paytoken import upy

    src = upy.FIRMWARE_DIR / "paycode"
    files = [str(src / f) for f in ("__init__.py", "code.py", "otp.py", "ff1.py", "check.py", "aes.py",
                                    "aespure.py")]
    secret, key, t = bytes(range(1, 21)), bytes(range(100, 116)), 1_800_000_017
    try:
        mp(pico, "fs", "mkdir", ":paycode")
        mp(pico, "fs", "cp", *files, ":paycode/", timeout=180)
        out = mp(pico, "exec", f"from paycode import payment_code\n"
                               f"print('CODE', payment_code({secret!r}, 4242, {t}, {key!r}, '82', 2))")
    finally:
        mp(pico, "exec", "import os\nfor f in os.listdir('paycode'):\n os.remove('paycode/' + f)\n"
                         "os.rmdir('paycode')")
    code = out.split("CODE")[-1].strip()
    assert code == paycode.payment_code(secret, 4242, t, key, "82", 2)
    otp = pyotp.TOTP(base64.b32encode(secret).decode(), digest=hashlib.sha256).at(t)
    assert paycode.parse_code(code, key) == ("82", 4242, (t // 30) % 10, otp)
