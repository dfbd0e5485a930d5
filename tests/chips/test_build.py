"""Every firmware file and every board file compiles with mpy-cross for each board's
architecture; the compiled tree runs on the unix port; every board file, with its family
module, imports on the unix port and has the board API; each board's hardware calls (its
family module's code, with that board's constants) type-check against the MicroPython port
stubs (rp2, esp32)."""

from __future__ import annotations

import ast
import os
import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from paytoken import upy

REPO = upy.REPO
STUBS = REPO / ".venv" / "stubs"
PORT_OF_ARCH = {"armv6m": "rp2", "xtensawin": "esp32"}
# .mpy header byte 2 holds the native architecture (<< 2) when native code is present.
ARCH_CODE = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6,
             "armv7emsp": 7, "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11}
REQUIRED = ("NAME", "FAMILY", "ARCH", "WIDTH", "HEIGHT", "DISPLAY_ADDR", "DISPLAY_RESET", "RTC",
            "I2C_ID", "SDA", "SCL", "FREQ", "BUTTON_PIN", "BUTTON_WAKE", "SLEEP", "CPU_HZ_BATTERY",
            "LEASE_MS")
FUNCTIONS = ("i2c", "button", "sleep", "nap", "usb", "cold_boot", "mcu_rtc", "wdt")


def _module_file(mod: str) -> Path:
    # A firmware module's source: fam_rp2040 -> firmware/fam_rp2040.py, sim -> firmware/sim/__init__.py
    base = upy.FIRMWARE_DIR.joinpath(*mod.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _names(path: Path) -> dict[str, object]:
    """Top-level constants (and "_functions", "_uses": the modules star-imported) of a file,
    read without importing; a star import brings in that firmware module's public names
    (its ``__all__`` where it has one)."""
    consts: dict[str, object] = {"_functions": [], "_uses": []}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.names[0].name == "*":
            inner = _names(_module_file(node.module))
            public = inner.get("__all__") or [k for k in inner if not k.startswith("_")]
            consts["_uses"].append(node.module)  # type: ignore[attr-defined]
            consts["_functions"].extend(f for f in inner["_functions"] if f in public)  # type: ignore[attr-defined]
            consts.update({k: v for k, v in inner.items() if k in public})
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                consts[node.targets[0].id] = ...  # computed (sim: RTC from hw.json)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            consts["_functions"].append(node.name)  # type: ignore[attr-defined]
    return consts


def boards() -> dict[str, dict[str, object]]:
    """Board name -> its constants and functions, its family module's included."""
    return {f.stem: _names(f) for f in sorted(upy.BOARDS_DIR.glob("*.py"))}


BOARDS = boards()
FIRMWARE = sorted(p for p in upy.FIRMWARE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_boards_shipped_and_complete():
    assert {"pico", "pico-128x32", "esp32-devkitc", "xiao-rp2040", "sim", "sim-128x32"} <= set(BOARDS)
    for name, c in BOARDS.items():
        missing = [k for k in REQUIRED if k not in c]
        assert not missing, f"{name}.py lacks {missing}"
        assert c["NAME"] == name
        assert c["FAMILY"] in ("rp2040", "esp32", "sim"), f"{name}: unknown FAMILY {c['FAMILY']}"
        # the family's code comes from its one module (fam_<family>.py, or the package
        # <family>/ for sim), which exists
        assert len(c["_uses"]) == 1 and c["_uses"][0] in (f"fam_{c['FAMILY']}", c["FAMILY"]), name  # type: ignore[arg-type]
        assert _module_file(c["_uses"][0]).is_file(), name  # type: ignore[index]
        assert c["ARCH"] in ARCH_CODE, f"{name}: unknown ARCH {c['ARCH']}"
        assert c["SLEEP"] in ("deep", "light", "latch")
        if c["SLEEP"] == "latch" and c["FAMILY"] == "rp2040":
            assert isinstance(c.get("HOLD_PIN"), int), f"{name}: a latch board needs HOLD_PIN"
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
    # Only .mpy files on the path: the drivers, models (the sim family) and board run from them.
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


def test_deploy_gives_a_board_only_its_own_family_code(tmp_path):
    from paytoken.station import deploy as dp

    fams = {"rp2040": "/fam_rp2040.mpy", "esp32": "/fam_esp32.mpy", "sim": "/sim/__init__.mpy"}
    for name, c in BOARDS.items():
        srcs = dp.sources(dp.load_board(name))
        own = fams[str(c["FAMILY"])]
        assert own in srcs and srcs["/board.py"] == upy.BOARDS_DIR / f"{name}.py", name
        others = [p for p in srcs if p in set(fams.values()) - {own}
                  or (c["FAMILY"] != "sim" and p.startswith("/sim/"))]
        assert not others, f"{name} would carry {others}"
        if c["FAMILY"] != "sim":
            assert "/gpiobutton.mpy" in srcs, name  # the real families' shared button
    # Data-driven: a new family is one board file plus its fam_<family>.py.
    bdir, fw = tmp_path / "boards", tmp_path / "fw"
    bdir.mkdir()
    (fw / "nrf").mkdir(parents=True)
    for f in ("app.py", "fam_nrf.py", "fam_rp2040.py", "nrf/radio.py", "main.py"):
        (fw / f).write_text("x = 1\n")
    (bdir / "nrf52.py").write_text('from fam_nrf import *\nNAME = "nrf52"\nFAMILY = "nrf"\nARCH = "armv7emsp"\n')
    (bdir / "pico.py").write_text('FAMILY = "rp2040"\nARCH = "armv6m"\n')
    nrf = dp.load_board("nrf52", bdir)
    assert nrf.family == "nrf" and not nrf.sim
    assert sorted(dp.sources(nrf, fw)) == ["/app.mpy", "/board.py", "/fam_nrf.mpy", "/main.py", "/nrf/radio.mpy"]
    assert sorted(dp.sources(dp.load_board("pico", bdir), fw)) == ["/app.mpy", "/board.py", "/fam_rp2040.mpy", "/main.py"]
    (bdir / "bad.py").write_text('ARCH = "armv6m"\n')
    with pytest.raises(dp.DeployError, match="FAMILY must name"):
        dp.load_board("bad", bdir)


def test_every_board_imports_on_the_unix_port(tmp_path, hw):
    # The board file as /board.py with the firmware tree on the path, on the real
    # interpreter: its family module loads without touching machine, and the board
    # has the whole API with the constants its file and family declare.
    f = hw(rtc_chip="pcf8563", at=4_000_000_000, frozen=True)
    names = REQUIRED + ("VBUS_PIN",)
    code = ("import board\n"
            f"print(repr(({{k: getattr(board, k) for k in {names!r} if hasattr(board, k)}},"
            f" [k for k in {FUNCTIONS!r} if callable(getattr(board, k, None))])))\n")
    for name, c in BOARDS.items():
        d = tmp_path / name
        d.mkdir()
        shutil.copy(upy.BOARDS_DIR / f"{name}.py", d / "board.py")
        env = dict(os.environ, MICROPYPATH=f"{d}:{upy.FIRMWARE_DIR}", PAYTOKEN_HW=str(f))
        proc = subprocess.run([upy.micropython(), "-c", code], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        consts, funcs = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
        assert funcs == list(FUNCTIONS), name
        assert set(REQUIRED) <= set(consts), name
        for k, v in consts.items():
            assert c[k] is ... or c[k] == v, f"{name}.{k}: {v!r}, the file says {c[k]!r}"
        if c["FAMILY"] == "sim":
            assert consts["RTC"] == "pcf8563"  # from the hardware folder
        if c["FAMILY"] == "rp2040":
            assert "VBUS_PIN" in consts, f"{name}.py lacks VBUS_PIN (a GPIO, or None)"


CANARY = """
from machine import I2C, Pin
I2C(0, sda=Pin(4), scl=Pin(5), freq="fast")
Pin(1, Pin.IN, Pin.PULL_SIDEWAYS)
"""


def _mypy(stubs: Path, d: Path, files: list[Path]) -> list[str]:
    # The errors mypy finds in these files (the stubs' own are not ours).
    mypy = Path(upy._tool("mypy"))
    proc = subprocess.run(
        [str(mypy), "--custom-typeshed-dir", str(stubs), "--follow-imports=silent",
         "--check-untyped-defs", "--no-incremental", "--no-error-summary",
         "--show-error-codes", *(p.name for p in files)],
        capture_output=True, text=True, env=dict(os.environ, MYPYPATH=str(stubs)), cwd=d,
    )
    ours = tuple(p.name + ":" for p in files)
    return [ln for ln in proc.stdout.splitlines() if ln.startswith(ours) and ": error:" in ln]


def _board_tree(d: Path, src: Path, fam: str) -> list[Path]:
    # What a board of this family carries of board code: /board.py, its family
    # module and the modules that imports (all that calls machine).
    d.mkdir()
    shutil.copy(src, d / "board.py")
    files = [d / "board.py"]
    for mod in (f"fam_{fam}", "gpiobutton"):
        shutil.copy(_module_file(mod), d / f"{mod}.py")
        files.append(d / f"{mod}.py")
    return files


@pytest.mark.parametrize("port", ["rp2", "esp32"])
def test_boards_type_check_against_port_stubs(tmp_path, port):
    # One mypy run per board: its file as board.py beside its family module, so the
    # family's hardware calls are checked with this board's constants. A copy of the
    # first board with a bad bus frequency proves the constants reach the family code.
    stubs = STUBS / port
    if not (stubs / "machine.pyi").exists():
        pytest.fail(f"{stubs} missing: `make .venv/.installed` installs the {port} stubs there")
    runs: dict[str, list[Path]] = {}
    for name, c in BOARDS.items():
        if PORT_OF_ARCH.get(str(c["ARCH"])) == port:
            runs[name] = _board_tree(tmp_path / name, upy.BOARDS_DIR / f"{name}.py", str(c["FAMILY"]))
    assert runs, f"no board for {port}"
    first = next(iter(runs))
    bad = tmp_path / "bad-freq.py"
    bad.write_text((upy.BOARDS_DIR / f"{first}.py").read_text().replace("FREQ = 400000", 'FREQ = "fast"'))
    assert 'FREQ = "fast"' in bad.read_text()
    runs["bad-freq"] = _board_tree(tmp_path / "bad-freq", bad, str(BOARDS[first]["FAMILY"]))
    (tmp_path / "canary").mkdir()
    canary = tmp_path / "canary" / "canary.py"
    canary.write_text(CANARY)
    runs["canary"] = [canary]
    with ThreadPoolExecutor(max_workers=2) as pool:
        out = dict(zip(runs, pool.map(lambda fs: _mypy(stubs, fs[0].parent, fs), runs.values()),
                       strict=True))
    for name in runs:
        if name in ("bad-freq", "canary"):
            continue
        assert not out[name], f"{name}:\n" + "\n".join(out[name])
    # The stubs are in effect: the canary's two bad hardware calls are caught...
    assert len(out["canary"]) >= 2, out["canary"]
    # ...and the family code sees the board's own constants (I2C(freq=str) is refused).
    assert any(ln.startswith(f"fam_{BOARDS[first]['FAMILY']}.py:") for ln in out["bad-freq"]), out["bad-freq"]


def test_battery_clock_is_one_the_port_accepts():
    # machine.freq on battery is the port's default clock (docs/BATTERY.md: a lower one
    # saves no charge once the board naps, and shows the first code later): 160 MHz on
    # the ESP32 (ESP-IDF's default; the port takes 80/160/240), 125 MHz on the RP2040,
    # which needs clk_sys >= 48 MHz for USB and at least 10 cycles per I2C bit period
    # (its fast-mode counters) at the board's FREQ.
    for name, c in BOARDS.items():
        if name.startswith("sim"):
            continue
        hz = c.get("CPU_HZ_BATTERY")
        assert isinstance(hz, int), f"{name}.py lacks CPU_HZ_BATTERY"
        if c["ARCH"] == "xtensawin":
            assert hz == 160_000_000, name
        else:
            assert 48_000_000 <= hz <= 133_000_000 and hz // int(c["FREQ"]) >= 10, name  # type: ignore[call-overload]
            assert hz == 125_000_000, name
