"""Firmware benchmarks: heap, flash (.mpy bytes), I2C traffic, wake-to-first-frame."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "firmware"))

TITLE = "Token firmware (app, ui, config on the sim board)"
T = 1790000017
T_EDGE = 1790000039  # 29 s into its step


def _ok(flash, hw, mpy: Path, heap_k: int, frames: int = 1) -> bool:
    from paytoken import simrun, upy, vhw

    code = simrun.boot_code(flash, frames)
    p = upy.run(code, path=[mpy, hw.parent / "board"], heapsize=f"{heap_k}K", env=vhw.env(hw), check=False)
    return p.returncode == 0 and "Traceback" not in p.stdout + p.stderr


def smallest_heap(flash, hw, mpy: Path, frames: int = 1, lo: int = 8, hi: int = 256) -> int:
    """The smallest -X heapsize in KB (1 KB steps) at which the boot runs its frames."""
    if not _ok(flash, hw, mpy, hi, frames):
        raise RuntimeError(f"the firmware does not run even at {hi}K")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _ok(flash, hw, mpy, mid, frames):
            hi = mid
        else:
            lo = mid
    return hi


# Held heap per stage, after gc.collect: before anything, after the board module and
# its hardware (on sim: the chip models), after import app, after the first frame;
# and the interned-string (qstr) pool, which MicroPython never frees.
_STAGES = (
    "import gc, micropython\ngc.collect()\na = gc.mem_alloc()\nimport board\nboard.i2c()\n"
    "gc.collect()\nb = gc.mem_alloc()\nimport app\ngc.collect()\nc = gc.mem_alloc()\n"
    "app.boot(cfg_path=CFG, frames=1)\ngc.collect()\nmicropython.qstr_info()\n"
    "print(repr((a, b - a, c - b, gc.mem_alloc() - c)))\n"
)


def stages(flash, hw, mpy: Path) -> tuple[int, int, int, int, int]:
    """(base, board + models, app modules, first frame, qstr pool) held bytes."""
    from paytoken import upy, vhw

    code = "CFG = %r\n" % str(Path(flash) / "paytoken.cfg") + _STAGES
    out = upy.run(code, path=[mpy, hw.parent / "board"], env=vhw.env(hw)).stdout
    qline = next(ln for ln in out.splitlines() if ln.startswith("qstr pool"))
    q = int(qline.rsplit("n_total_bytes=", 1)[1])
    import ast

    base, models, mods, frame = ast.literal_eval(out.strip().splitlines()[-1])
    return base, models, mods, frame, q


def run() -> list[dict]:
    import fwkit
    from paytoken import simrun, upy, vhw

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        mpy = d / "mpy"
        app_bytes = fwkit.mpy_tree(mpy)
        mpy3 = d / "mpy3"
        fwkit.mpy_tree(mpy3, "-O3")
        rows.append({"name": "firmware .mpy bytes (all boards; sim models excluded)", "value": app_bytes,
                     "unit": "B", "how": "sum of mpy-cross outputs of firmware/*.py and paycode/"})
        flash, hw = simrun.prepare(d / "t", config=fwkit.token_config(), at=T)
        flash32, hw32 = simrun.prepare(d / "t32", config=fwkit.token_config(), at=T, board="sim-128x32")
        # T_EDGE is the last second of a step: frame 2 is the next step's new code.
        flash2, hw2 = simrun.prepare(d / "t2", config=fwkit.token_config(), at=T_EDGE)
        how = ("bisection (1 KB) over micropython -X heapsize; firmware and models as .mpy "
               "(mpy-cross as the station deploys)")
        total = smallest_heap(flash, hw, mpy)
        rows.append({"name": "smallest -X heapsize, boot + first frame, sim 128x64 (chip models included)",
                     "value": total, "unit": "KB", "target": "<= 32 KB", "met": total <= 32, "how": how})
        total32 = smallest_heap(flash32, hw32, mpy)
        rows.append({"name": "smallest -X heapsize, boot + first frame, sim-128x32 (chip models included)",
                     "value": total32, "unit": "KB", "target": "<= 32 KB", "met": total32 <= 32, "how": how})
        nxt = smallest_heap(flash2, hw2, mpy, frames=2)
        rows.append({"name": "smallest -X heapsize, boot + first frame + next step's code (128x64)",
                     "value": nxt, "unit": "KB", "how": how + "; the boot starts 1 s before a step ends"})
        o3 = smallest_heap(flash, hw, mpy3)
        rows.append({"name": "smallest -X heapsize, boot + first frame, 128x64, mpy-cross -O3",
                     "value": o3, "unit": "KB", "how": how.replace("as the station deploys", "-O3")})
        base, models, mods, frame, qstr = stages(flash, hw, mpy)
        rows.append({"name": "heap held by the sim board and its chip models", "value": models / 1024,
                     "unit": "KB", "how": "gc.mem_alloc delta (after gc.collect) of import board; board.i2c(), "
                     "their interned strings included; absent on real boards"})
        own = total - models / 1024
        rows.append({"name": "firmware's own share of the smallest heap (128x64)", "value": own, "unit": "KB",
                     "target": "<= 32 KB", "met": own <= 32,
                     "how": "smallest -X heapsize above minus the models' held heap"})
        own32 = total32 - stages(flash32, hw32, mpy)[1] / 1024
        rows.append({"name": "firmware's own share of the smallest heap (128x32)", "value": own32, "unit": "KB",
                     "target": "<= 32 KB", "met": own32 <= 32,
                     "how": "smallest -X heapsize above minus the models' held heap"})
        rows.append({"name": "heap held after import app (modules the boot needs)", "value": mods / 1024,
                     "unit": "KB", "how": "gc.mem_alloc delta of import app (0 when frozen into flash)"})
        rows.append({"name": "heap held after the first frame (drivers, buffers, ui, strings)",
                     "value": frame / 1024, "unit": "KB",
                     "how": "gc.mem_alloc delta of boot(frames=1); config, paycode, qr, font are dropped"})
        rows.append({"name": "interned strings (qstr pools) after the first frame, never freed",
                     "value": qstr / 1024, "unit": "KB", "how": "micropython.qstr_info() n_total_bytes"})
        # I2C: first frame, then a 30 s countdown with partial updates
        flash_u, hw_u = simrun.prepare(d / "u", config=fwkit.token_config(), at=T, frozen=False)
        b0 = vhw.i2c_bytes(hw_u)
        t0 = time.perf_counter()
        simrun.run(flash_u, hw_u, frames=1)
        wall = time.perf_counter() - t0
        first = vhw.i2c_bytes(hw_u) - b0
        rows.append({"name": "I2C bytes of the first frame (incl. init + RTC read)", "value": first,
                     "unit": "B", "target": "<= 1200 B", "met": first <= 1200,
                     "how": "bus model byte counter (address + data bytes)"})
        b1 = vhw.i2c_bytes(hw_u)
        simrun.run(flash_u, hw_u, frames=11, timeout=60)  # first frame + 10 one-second ticks
        per_s = (vhw.i2c_bytes(hw_u) - b1 - first) / 10
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
