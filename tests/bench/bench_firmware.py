"""Firmware benchmarks: heap, flash (.mpy bytes), I2C traffic, wake-to-first-frame."""

from __future__ import annotations

import json
import shutil
import subprocess
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
    """The smallest -X heapsize in KB (1 KB steps) at which the boot runs its frames.

    Every trial starts from the prepared state (a boot in a new step writes the
    config, the worst case), so trials do not depend on the ones before them.
    """
    work = Path(hw).parent
    pristine = work.with_name(work.name + ".pristine")
    shutil.rmtree(pristine, ignore_errors=True)
    shutil.copytree(work, pristine)

    def ok(k: int) -> bool:
        shutil.rmtree(work)
        shutil.copytree(pristine, work)
        return _ok(flash, hw, mpy, k, frames)

    try:
        if not ok(hi):
            raise RuntimeError(f"the firmware does not run even at {hi}K")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
    finally:
        shutil.rmtree(work)
        shutil.copytree(pristine, work)
        shutil.rmtree(pristine)
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


# --- the 32-bit port: MicroPython's WebAssembly port (wasm32: 4-byte words, 16-byte
# GC blocks, like RP2040 and ESP32), run by Node.js from a local npm install.
# Its PyScript build (the one on npm) grows its heap on demand (MICROPY_GC_SPLIT_HEAP_AUTO,
# up to 128 MiB) and collects garbage only when control returns to JavaScript
# (gc.collect() inside Python just sets a flag): a smallest -X heapsize cannot be
# bisected there. What it measures exactly is the heap held between top-level calls,
# so boot runs stage by stage, as separate calls, as in stages() above.
WASM_PKG = "@micropython/micropython-webassembly-pyscript@1.27.0"
NODE_DIR = REPO / ".bench-node"
WASM_DIR = Path(__file__).resolve().parent / "wasm32"
_MIB128 = 128 * 1024 * 1024  # the port's gc_get_max_new_split(), counted in mem_free()


def wasm_port() -> Path | str:
    """micropython.mjs of the WebAssembly port (npm-installed into .bench-node), or why not."""
    mjs = NODE_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
    if mjs.exists():
        return mjs
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not installed"
    p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), WASM_PKG],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0 or not mjs.exists():
        return "npm install %s failed: %s" % (WASM_PKG, (p.stderr or p.stdout).strip()[-200:])
    return mjs


def wasm_run(mjs: Path, chunks: list[str], dirs: list[Path], back: list[Path], heap_k: int = 64) -> str:
    """Run Python chunks (one top-level call each) on the wasm port; its stdout."""
    shim = WASM_DIR  # atexit.py and sha1shim.py, on the port's path
    prelude = (
        "import sys, os, random\n"
        "sys.path[:] = %r\n" % [str(shim)] + "".join("sys.path.append(%r)\n" % str(d) for d in dirs[:2])
        # The port has no environment: PAYTOKEN_HW is passed as os.getenv would read it.
        + "_env = {'PAYTOKEN_HW': %r}\n" % str(back[0])
        + "os.getenv = lambda k, d=None: _env.get(k, d)\n"
        # No os.urandom: the sim store only draws unique temp-file names from it.
        "os.urandom = lambda n: bytes(random.getrandbits(8) for _ in range(n))\n"
        # hashlib without sha1: the port's sha256 plus SHA-1 in Python.
        "import sha1shim\nsys.modules['hashlib'] = sha1shim\n"
    )
    job = {"module": mjs.as_uri(), "heapsize": heap_k * 1024, "dirs": [str(shim)] + [str(d) for d in dirs],
           "back": [str(b) for b in back],
           "chunks": [prelude, *chunks, "import atexit\nfor f in atexit._fns:\n    f()\n"]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        p = subprocess.run(["node", str(WASM_DIR / "runner.mjs"), f.name], capture_output=True, text=True,
                           timeout=300)
    finally:
        Path(f.name).unlink()
    if p.returncode != 0:
        raise RuntimeError("wasm32 run failed: " + (p.stdout + p.stderr)[-1500:])
    return p.stdout


def wasm_stages(mjs: Path, flash: Path, hw: Path, mpy: Path) -> tuple[int, int, int, int, int]:
    """(base, board + models, app modules, first frame, qstr pool) held bytes on wasm32."""
    cfg = str(flash / "paytoken.cfg")
    # gc.collect() only asks; the collection runs as each call returns to JavaScript.
    col = "import gc\ngc.collect()\n"
    chunks = [col, "a = gc.mem_alloc()\n", "import board\nboard.i2c()\n" + col, "b = gc.mem_alloc()\n",
              "import app\n" + col, "c = gc.mem_alloc()\n",
              "import micropython\nmicropython.kbd_intr(-1)\napp.boot(cfg_path=%r, frames=1)\n" % cfg + col,
              "d = gc.mem_alloc()\nmicropython.qstr_info()\nprint('STAGES', repr((a, b - a, c - b, d - c)))\n"]
    out = wasm_run(mjs, chunks, [hw.parent / "board", mpy, hw.parent], [hw])
    q = int(next(ln for ln in out.splitlines() if ln.startswith("qstr pool")).rsplit("n_total_bytes=", 1)[1])
    import ast

    base, models, mods, frame = ast.literal_eval(next(ln for ln in out.splitlines()
                                                      if ln.startswith("STAGES"))[7:])
    return base, models, mods, frame, q


def _wasm_rows(d: Path, mpy: Path, total: int, own: float, x64: tuple[int, int, int]) -> list[dict]:
    # The 32-bit rows: held heap per stage measured on wasm32, the first frame checked
    # against the x64 run, and the smallest heap scaled from x64 by the held-heap ratio.
    import fwkit
    from paytoken import simrun, vhw

    mjs = wasm_port()
    name = "32-bit port (wasm32): smallest heap, boot + first frame, with models"
    if isinstance(mjs, str):
        return [{"name": name, "value": "skipped", "unit": "", "how": mjs}]
    flash, hw = simrun.prepare(d / "w", config=fwkit.token_config(), at=T)
    _base, models, mods, frame, qstr = wasm_stages(mjs, flash, hw, mpy)
    ref = simrun.prepare(d / "wx", config=fwkit.token_config(), at=T)
    simrun.run(*ref, frames=1)
    same = vhw.panel(hw) == vhw.panel(ref[1]) and vhw.i2c_bytes(hw) == vhw.i2c_bytes(ref[1])
    how = ("%s under Node.js (.bench-node), the same .mpy files; gc.mem_alloc deltas, collected "
           "between top-level calls (shims: os.getenv, os.urandom, atexit, hashlib.sha1 in Python; "
           "no cryptolib: AES is paycode's aespure)" % WASM_PKG)
    rows = [
        {"name": "32-bit port (wasm32): first frame equals the x64 run (pixels, I2C bytes)",
         "value": "yes" if same else "NO", "unit": "", "how": "panel.bin and i2c.json after both runs"},
        {"name": "32-bit port (wasm32): heap held by the sim board and its chip models", "value": models / 1024,
         "unit": "KB", "how": how},
        {"name": "32-bit port (wasm32): heap held after import app", "value": mods / 1024, "unit": "KB",
         "how": how},
        {"name": "32-bit port (wasm32): heap held after the first frame", "value": frame / 1024, "unit": "KB",
         "how": how},
        {"name": "32-bit port (wasm32): interned strings after the first frame", "value": qstr / 1024,
         "unit": "KB", "how": "micropython.qstr_info() n_total_bytes (the port's own strings included)"},
    ]
    # This port's heap grows on demand and it never collects inside a call, so no
    # heapsize can be bisected: the x64 figure is scaled by the held-heap ratio.
    r_all = (models + mods + frame) / sum(x64)
    r_fw = (mods + frame) / (x64[1] + x64[2])
    est = "ESTIMATE: the x64 smallest heap x the wasm32/x64 ratio of held heap (%.2f%s); " \
          "the port grows its heap and collects only between calls, so it cannot be bisected"
    rows.append({"name": name + " (estimate)", "value": total * r_all, "unit": "KB", "target": "<= 32 KB",
                 "met": total * r_all <= 32, "how": est % (r_all, ", models + app + frame")})
    rows.append({"name": "32-bit port (wasm32): firmware share (estimate)", "value": own * r_fw, "unit": "KB",
                 "target": "<= 32 KB", "met": own * r_fw <= 32, "how": est % (r_fw, ", app + frame")})
    return rows


# One wake on battery in a virtual world (tests/firmware/test_power.py's set-up): the
# time inside Token.wake and Token.tick on the unix port, the naps, the bus bytes.
_WAKE = """
import time, app, board
tok = app.make_token(board, CFG)
acc = [0, 0]
_w = tok.wake
def wake(n=0):
    t = time.ticks_us(); r = _w(n); acc[0] += time.ticks_diff(time.ticks_us(), t); return r
_t = tok.tick
def tick(s):
    t = time.ticks_us(); _t(s); acc[1] += time.ticks_diff(time.ticks_us(), t)
tok.wake = wake
tok.tick = tick
app.run(tok, idle=lambda ms: True)
print(repr(acc))
"""


def wake_profile(d: Path, rounds: int = 5) -> list[dict]:
    """Rows for one display-on period on battery (the battery estimate's inputs)."""
    import fwkit
    from paytoken import simrun, upy, vhw

    best = None
    for i in range(rounds):
        flash, hw = simrun.prepare(d / f"wake{i}", config=fwkit.token_config(), at=T)
        vhw.set_usb(hw, False)
        vhw.set_world_time(hw, T, virtual=True)
        code = "CFG = %r\n" % str(flash / "paytoken.cfg") + _WAKE
        first, ticks = upy.eval_repr(code, path=[hw.parent / "board"], env=vhw.env(hw))
        if best is None or first + ticks < sum(best):
            best = (first, ticks)
        cpu, nbytes = vhw.cpu(hw), vhw.i2c_bytes(hw)
    assert best is not None
    how = ("a 20 s wake on battery in a virtual world (sim board, USB detached): time inside "
           "Token.wake and Token.tick, best of %d, the sim models' I2C decoding included" % rounds)
    return [
        {"name": "one wake on battery: I2C bytes (init, first frame, 19 ticks)", "value": nbytes, "unit": "B",
         "how": "bus model byte counter over the whole wake"},
        {"name": "one wake on battery: naps between ticks", "value": cpu["naps"], "unit": "",
         "how": "vhw.cpu: board.nap calls (%d ms slept)" % cpu["nap_ms"]},
        {"name": "one wake on battery: compute, first frame", "value": best[0] / 1000, "unit": "ms", "how": how},
        {"name": "one wake on battery: compute, first frame + ticks", "value": sum(best) / 1000, "unit": "ms",
         "how": how},
    ]


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
        how = ("bisection (1 KB) over micropython -X heapsize, each trial from the prepared state; "
               "firmware and models as .mpy (mpy-cross as the station deploys)")
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
        rows += _wasm_rows(d, mpy, total, own, (models, mods, frame))
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
        rows += wake_profile(d)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
