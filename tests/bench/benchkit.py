"""Helpers the station benchmarks share: a virtual token as its own process.

Usage (tests/bench/run.py puts this folder on sys.path)::

    proc, port = benchkit.start_vdev(flash)   # `paytoken vdev start`, its device path
    ...
    benchkit.stop_vdev(proc)
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_vdev(flash: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``paytoken vdev start --flash flash [args]`` (own session and registry); return
    it and the device path it printed. RuntimeError if it prints none within 30 s."""
    flash.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "paytoken", "vdev", "start", "--flash", str(flash), *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, PAYTOKEN_VDEV_REGISTRY=str(flash.parent / "registry")),
    )
    out = proc.stdout
    if out is None:  # stdout=PIPE always gives one; this tells the type checker
        raise RuntimeError("vdev start has no stdout")
    line = b""
    deadline = time.monotonic() + 30
    while not line.endswith(b"\n"):
        r, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            proc.kill()
            raise RuntimeError("vdev start printed no device path")
        b = os.read(out.fileno(), 1)
        if not b:
            raise RuntimeError("vdev start exited")
        line += b
    return proc, line.decode().strip()


def stop_vdev(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the virtual token; SIGKILL its session if it has not gone in 10 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
