"""Station benchmarks: virtual token start-up to a working raw REPL, deploy cold and warm.

Usage: python tests/bench/run.py --only station
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import benchkit
from paytoken.station import deploy as dp
from paytoken.station.transport import Device

TITLE = "Station: virtual tokens and deploy"
ROUNDS = 5


def run() -> list[dict]:
    rows: list[dict] = []
    board = dp.load_board("sim")
    starts, colds, colds_compile, warms, ones = [], [], [], [], []
    n_files = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(ROUNDS):
            flash = Path(tmp) / f"tok{i}"
            t0 = time.perf_counter()
            proc, port = benchkit.start_vdev(flash)
            try:
                with Device(port, timeout=20) as dev:
                    dev.enter_raw()
                    assert dev.eval("1+1") == 2
                    starts.append(time.perf_counter() - t0)
                    # cold: empty flash; the first round also compiles (empty cache)
                    os.environ["PAYTOKEN_BUILD"] = str(Path(tmp) / ("cache0" if i == 0 else "cache"))
                    t1 = time.perf_counter()
                    r = dp.deploy(dev, board)
                    (colds_compile if i == 0 else colds).append(time.perf_counter() - t1)
                    n_files = len(r.copied)
                    t1 = time.perf_counter()
                    r = dp.deploy(dev, board)
                    warms.append(time.perf_counter() - t1)
                    assert r.copied == []
                    (flash / "qr.mpy").write_bytes(b"x")
                    t1 = time.perf_counter()
                    r = dp.deploy(dev, board)
                    ones.append(time.perf_counter() - t1)
                    assert r.copied == ["/qr.mpy"]
            finally:
                benchkit.stop_vdev(proc)
                os.environ.pop("PAYTOKEN_BUILD", None)
    if not colds:
        colds = colds_compile
    how = f"median of {ROUNDS} rounds, wall clock, paytoken vdev start + station transport"
    rows.append({
        "name": "virtual token start to working raw REPL", "value": statistics.median(starts),
        "unit": "s", "how": "spawn `paytoken vdev start`, read the device path, open, enter raw "
        "REPL (soft reset), eval 1+1; " + how, "target": "< 2 s",
        "met": statistics.median(starts) < 2,
    })
    rows.append({
        "name": f"deploy cold, {n_files} files, compile cache empty", "value": colds_compile[0],
        "unit": "s", "how": "mpy-cross of the firmware + copy of every file to an empty flash",
    })
    rows.append({
        "name": f"deploy cold, {n_files} files (compiled)", "value": statistics.median(colds),
        "unit": "s", "how": "copy of every file to an empty flash, .mpy from the cache; " + how,
        "target": "< 5 s", "met": statistics.median(colds) < 5,
    })
    rows.append({
        "name": "deploy warm, nothing changed", "value": statistics.median(warms), "unit": "s",
        "how": "hash every file on the device, copy none; " + how, "target": "< 1 s",
        "met": statistics.median(warms) < 1,
    })
    rows.append({
        "name": "deploy warm, one file changed", "value": statistics.median(ones), "unit": "s",
        "how": "hash every file, copy one; " + how,
    })
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
