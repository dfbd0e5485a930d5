"""The real firmware on a virtual token: boot, Ctrl-C to the REPL, panel, button, mount."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import serial
from paytoken import vhw
from paytoken.station import deploy as dp
from paytoken.station.transport import Device
from paytoken.vdev.supervisor import sigint_installed
from PIL import Image
from vdevkit import mpremote, paytoken
from waits import STEP, bound, wait_for

pytestmark = pytest.mark.timeout(120)


def _read_until(s: serial.Serial, marker: bytes, seconds: float) -> bytes:
    end = time.monotonic() + seconds
    out = b""
    while time.monotonic() < end and marker not in out:
        out += s.read(4096)
    return out


def test_unlocked_firmware_runs_until_ctrl_c(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    with Device(t.port, timeout=bound(STEP)) as dev:
        dp.deploy(dev, "sim")
    before = vhw.panel_state(t.hw)
    with serial.Serial(t.port, timeout=0.1) as s:
        s.write(b"\r\x03\r\x02")  # friendly REPL
        assert b">>> " in _read_until(s, b">>> ", bound(STEP))
        s.write(b"\x04")  # soft reboot: boot as a board does, main.py runs
        out = _read_until(s, b"soft reboot\r\n", bound(STEP))
        assert b"MPY: soft reboot\r\n" in out
        # the app runs once it has drawn on the panel and holds its SIGINT handler
        # (Ctrl-C is off from power-up until main.py turns it on)
        wait_for(lambda: vhw.panel_state(t.hw) != before
                 and (c := t.child_pid()) is not None and sigint_installed(c),
                 what="the app drew and took Ctrl-C")
        out += _read_until(s, b">>> ", 1.5)
        assert b">>> " not in out  # the app loop holds the token
        s.write(b"\x03")
        out = _read_until(s, b">>> ", bound(STEP))
        assert b"KeyboardInterrupt" in out and out.endswith(b">>> ")
    # the app drew on the panel model while it ran
    after = vhw.panel_state(t.hw)
    assert after != before
    png = tmp_path / "panel.png"
    r = paytoken("vdev", "snapshot", "--flash", str(t.flash), str(png))
    assert r.returncode == 0, r.stderr
    with Image.open(png) as im:
        assert im.size[0] >= 128 and im.size[1] >= 64
    # mpremote interrupts a running app too (Ctrl-C as SIGINT), then runs its code
    assert mpremote(t.port, "exec", "print(6*7)").stdout.strip() == "42"


def test_press_reaches_the_button_model(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    with Device(t.port, timeout=bound(STEP)) as dev:
        dp.deploy(dev, "sim")
        assert dev.eval("__import__('board').button().pressed()") is False
        r = paytoken("vdev", "press", "--flash", str(t.flash))
        assert r.returncode == 0, r.stderr
        assert dev.eval("__import__('board').button().pressed()") is True
        assert dev.eval("__import__('board').button().pressed()") is False  # one edge


def test_mpremote_mount_binary_protocol(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    local = tmp_path / "mnt"
    local.mkdir()
    (local / "foo.py").write_text("X = 42\nDATA = bytes(range(256))\n")
    r = mpremote(
        t.port, "mount", str(local), "exec",
        "import foo; print(foo.X, sum(foo.DATA));"
        "open('/remote/out.bin','wb').write(bytes(range(256)) * 8)",
    )
    assert r.returncode == 0, r.stderr
    assert "42 32640" in r.stdout
    assert (local / "out.bin").read_bytes() == bytes(range(256)) * 8  # no CR added


def test_set_rtc_cli_changes_the_model(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    r = paytoken("vdev", "set-rtc", "--flash", str(t.flash), "--ppm", "25.5")
    assert r.returncode == 0, r.stderr
    assert vhw.rtc_state(t.hw)["ppm"] == 25.5
    r = paytoken("vdev", "set-rtc", "--flash", str(t.flash))
    assert r.returncode == 1 and "give --ppm" in r.stderr
    r = paytoken("vdev", "press", "--flash", str(tmp_path / "none"))
    assert r.returncode == 1 and "start it first" in r.stderr
