"""What a set of tests costs CI, measured so that it holds on a loaded machine.

Usage: python tests/bench/tier_cost.py [--out FILE.json] [PYTEST ARGS...]
       (default: tests/rp2 tests/image -n 2 --dist loadgroup, as `make test` runs them)

Runs pytest once and reports its wall time, its CPU seconds (the pytest process and
every descendant it waited for: xdist workers, the vdev supervisors, the emulator's
Node processes, mpremote and the CLIs: ``getrusage(RUSAGE_CHILDREN)``), and the
machine's load average sampled every 5 s during the run. On a machine whose cores are
busy anyway (CI), the tests add about their CPU seconds / cores of wall time; their
own wall time mostly measures the load beside them.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFAULT = ["tests/rp2", "tests/image", "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:randomly"]


def measure(args: list[str]) -> dict:
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5):
            loads.append(os.getloadavg()[0])

    th = threading.Thread(target=sample, daemon=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()
    th.start()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", *args], capture_output=True, text=True)
    wall = time.monotonic() - t0
    done.set()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    return {
        "args": args, "exit": proc.returncode, "summary": tail[0] if tail else "",
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "user_s": round(after.ru_utime - before.ru_utime, 1),
        "sys_s": round(after.ru_stime - before.ru_stime, 1),
        "added_wall_busy_2_cores_s": round(cpu / 2, 1),
        "load_1min_at_start": round(load0[0], 2),
        "load_1min_mean": round(sum(loads) / len(loads), 2) if loads else round(load0[0], 2),
        "load_1min_max": round(max(loads), 2) if loads else round(load0[0], 2),
        "cores": os.cpu_count(), "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stdout_tail": proc.stdout[-3000:] if proc.returncode else "",
    }


def main(argv: list[str]) -> int:
    out = None
    if argv[:1] == ["--out"]:
        out, argv = Path(argv[1]), argv[2:]
    r = measure(argv or DEFAULT)
    text = json.dumps(r, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return r["exit"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
