"""Helpers for the vdev tests: ``paytoken vdev start`` as a real subprocess, the CLIs."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from paytoken import vhw
from waits import bound, cli_args

BIN = Path(sys.executable).parent
MPREMOTE = str(BIN / "mpremote")


@dataclass
class VTok:
    """A running virtual token."""

    flash: Path
    port: str
    proc: subprocess.Popen[bytes]

    @property
    def hw(self) -> Path:
        return vhw.hw_folder(self.flash)

    def child_pid(self) -> int | None:
        """The interpreter's pid (the supervisor's one child), or None."""
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def start_vdev(flash: Path, *args: str, timeout: float = 60) -> VTok:
    """Start a supervisor; return once it printed its device path (its first line)."""
    flash.mkdir(parents=True, exist_ok=True)
    err = open(str(flash) + ".stderr", "wb")
    # a registry of its own: no other test's `provision --all` may pick this token up
    env = dict(os.environ, PAYTOKEN_VDEV_REGISTRY=str(flash.parent / "vdev-registry"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "paytoken", "vdev", "start", "--flash", str(flash), *args],
        stdout=subprocess.PIPE,
        stderr=err,
        start_new_session=True,
        env=env,
    )
    err.close()
    timeout = bound(timeout)  # a busy machine starts Python slowly
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        r, _, _ = select.select([proc.stdout], [], [], max(0.0, left))
        if not r:
            proc.kill()
            raise AssertionError(f"vdev start printed no device path within {timeout} s")
        b = os.read(proc.stdout.fileno(), 1)
        if not b:
            proc.wait(5)
            msg = Path(str(flash) + ".stderr").read_text()[-2000:]
            raise AssertionError(f"vdev start exited {proc.returncode}: {msg}")
        line += b
    return VTok(flash, line.decode().strip(), proc)


def mpremote(port: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The stock mpremote CLI against ``port``."""
    return subprocess.run(
        [MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=bound(timeout)
    )


def paytoken(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The paytoken CLI as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "paytoken", *cli_args(args)], capture_output=True, text=True, timeout=bound(timeout)
    )
