"""Firmware benchmarks: heap, flash (.mpy bytes), I2C traffic, wake-to-first-frame."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "firmware"))

TITLE = "Token firmware (app, ui, config on the sim board)"
T = 1790000017


def _mpy_tree(out: Path) -> int:
    from paytoken import upy

    total = 0
    for src in (REPO / "firmware").rglob("*.py"):
        rel = src.relative_to(REPO / "firmware")
        if rel.parts[0] == "sim":
            continue  # the chip models are not deployed to real boards
        dst = out / rel.with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([upy.mpy_cross(), "-o", str(dst), str(src)], check=True)
        total += dst.stat().st_size
    for src in (REPO / "firmware" / "sim").rglob("*.py"):
        dst = out / "sim" / src.with_suffix(".mpy").name
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([upy.mpy_cross(), "-o", str(dst), str(src)], check=True)
    return total


def _ok(flash, hw, mpy: Path, heap: str) -> bool:
    from paytoken import simrun, upy, vhw

    code = simrun.boot_code(flash, 1)
    p = upy.run(code, path=[mpy, hw.parent / "board"], heapsize=heap, env=vhw.env(hw), check=False)
    return p.returncode == 0 and "Traceback" not in p.stdout + p.stderr


def run() -> list[dict]:
    import fwkit
    from paytoken import simrun, upy, vhw

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        mpy = d / "mpy"
        app_bytes = _mpy_tree(mpy)
        rows.append({"name": "firmware .mpy bytes (all boards; sim models excluded)", "value": app_bytes,
                     "unit": "B", "how": "sum of mpy-cross outputs of firmware/*.py and paycode/"})
        flash, hw = simrun.prepare(d / "t", config=fwkit.token_config(), at=T)
        # smallest heap, bisected in 4 KB steps, firmware from .mpy
        lo, hi = 16, 256
        while hi - lo > 4:
            mid = (lo + hi) // 2 // 4 * 4
            if _ok(flash, hw, mpy, f"{mid}K"):
                hi = mid
            else:
                lo = mid
        rows.append({"name": "smallest -X heapsize, boot + first frame (sim board incl. chip models)",
                     "value": hi, "unit": "KB", "target": "<= 32 KB", "met": hi <= 32,
                     "how": "bisection over micropython -X heapsize with the firmware as .mpy"})
        code = (
            "import gc\ngc.collect()\na = gc.mem_alloc()\nimport board\nboard.i2c()\ngc.collect()\n"
            "b = gc.mem_alloc()\nimport app\ngc.collect()\nc = gc.mem_alloc()\n"
            + simrun.boot_code(flash, 1).replace("import micropython\nmicropython.kbd_intr(-1)\nimport app\n", "")
            + "gc.collect()\nprint(repr((b - a, c - b, gc.mem_alloc() - c)))\n"
        )
        models, mods, frame = upy.eval_repr(code, path=[mpy, hw.parent / "board"], env=vhw.env(hw))
        rows.append({"name": "heap held by the sim chip models", "value": models / 1024, "unit": "KB",
                     "how": "gc.mem_alloc delta of board.i2c() (absent on real boards)"})
        rows.append({"name": "heap held by the firmware's loaded .mpy modules", "value": mods / 1024,
                     "unit": "KB", "how": "gc.mem_alloc delta of import app (0 when frozen into flash)"})
        rows.append({"name": "heap held after the first frame (framebuffer, shadow, config)",
                     "value": frame / 1024, "unit": "KB", "how": "gc.mem_alloc delta of boot(frames=1)"})
        # I2C: first frame, then a 30 s countdown with partial updates
        flash2, hw2 = simrun.prepare(d / "u", config=fwkit.token_config(), at=T, frozen=False)
        b0 = vhw.i2c_bytes(hw2)
        t0 = time.perf_counter()
        simrun.run(flash2, hw2, frames=1)
        wall = time.perf_counter() - t0
        first = vhw.i2c_bytes(hw2) - b0
        rows.append({"name": "I2C bytes of the first frame (incl. init + RTC read)", "value": first,
                     "unit": "B", "target": "<= 1200 B", "met": first <= 1200,
                     "how": "bus model byte counter (address + data bytes)"})
        b1 = vhw.i2c_bytes(hw2)
        simrun.run(flash2, hw2, frames=11, timeout=60)  # first frame + 10 one-second ticks
        per_s = (vhw.i2c_bytes(hw2) - b1 - first) / 10
        rows.append({"name": "I2C bytes per second during the countdown", "value": per_s, "unit": "B/s",
                     "target": "<= 100 B/s (full redraw ~1 KB/s)", "met": per_s <= 100,
                     "how": "10 s of ticks on the real clock, minus the first frame"})
        i2c_ms = first * 9 / 400000 * 1000
        rows.append({"name": "wake to first frame: I2C at 400 kHz", "value": i2c_ms, "unit": "ms",
                     "how": "first-frame bytes x 9 bits / 400 kHz"})
        code = (
            "import time\nt = time.ticks_us()\n" + simrun.boot_code(flash, 1)
            + "print(repr(time.ticks_diff(time.ticks_us(), t)))\n"
        )
        us = min(upy.eval_repr(code, path=[mpy, hw.parent / "board"], env=vhw.env(hw)) for _ in range(5))
        rows.append({"name": "wake to first frame: compute on the unix port (x86-64)", "value": us / 1000,
                     "unit": "ms", "how": "ticks_us around boot(frames=1), best of 5, incl. sim models' file I/O"})
        rows.append({"name": "one-shot simulator run (process start to exit)", "value": wall * 1000,
                     "unit": "ms", "how": "wall time of simrun.run(frames=1)"})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
