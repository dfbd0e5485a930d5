"""Run the real firmware on the ``sim`` board in the MicroPython unix port.

Usage::

    flash, hw = simrun.prepare(work_dir, config={...}, at=1790000000)
    result = simrun.run(flash, hw, frames=1)   # result.picture: the panel, MONO_VLSB

``prepare`` makes a flash folder holding ``paytoken.cfg`` (written by the very
``firmware/config.py`` the token uses) and a hardware folder (``paytoken.vhw``).
``run`` starts ``micropython`` with the firmware tree and the board file deployed
as ``board.py``, boots the app as ``main.py`` does, stops after ``frames`` frames,
and reads the panel back from the SSD1306 model.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paytoken import fwload, upy, vhw

BOARDS = ("sim", "sim-128x32", "sim-latch")


class SimError(Exception):
    """The simulated token could not be prepared or did not run."""


@dataclass
class SimResult:
    """One run: the panel picture as a person sees it, and what it cost."""

    picture: bytes
    width: int
    height: int
    display_on: bool
    inverted: bool
    i2c_bytes: int
    stdout: str


def _fwconfig() -> Any:
    return fwload.module("config")  # the token's very config.py, under a private name


def token_config(
    secret: bytes, token_id: int, scheme_key: bytes, prefix: str = "81", at: int = 0, **over: Any
) -> dict[str, Any]:
    """A provisioned config whose clock was set at ``at`` (UTC seconds)."""
    cfg: dict[str, Any] = {
        "token_id": token_id, "secret": secret, "scheme_key": scheme_key, "prefix": prefix,
        "ppm": 0.0, "ref_time": at, "last_sync": at, "last_step": 0, "locked": False,
    }
    cfg.update(over)
    return cfg


def prepare(
    work: str | Path,
    *,
    config: dict[str, Any] | None,
    at: float,
    board: str = "sim",
    rtc_chip: str = "ds3231",
    ppm: float = 0.0,
    battery: bool = True,
    rtc_set: bool = True,
    frozen: bool = True,
    raw_config: bytes | None = None,
) -> tuple[Path, Path]:
    """Make ``work/flash`` (with the config, if any) and ``work/hw``; return both.

    ``raw_config`` writes those bytes as the config file instead (damage tests).
    """
    if board not in BOARDS:
        raise SimError(f"unknown board {board!r}: one of {', '.join(BOARDS)}")
    work = Path(work)
    flash = work / "flash"
    flash.mkdir(parents=True, exist_ok=True)
    cfg_file = flash / "paytoken.cfg"
    if raw_config is not None:
        cfg_file.write_bytes(raw_config)
    elif config is not None:
        try:
            _fwconfig().save(config, str(cfg_file))
        except ValueError as e:
            raise SimError(str(e)) from None
    hw = work / "hw"
    try:
        vhw.create(hw, board=board, rtc_chip=rtc_chip, ppm=ppm, battery=battery, at=at,
                   frozen=frozen, rtc_set=rtc_set, overwrite=True)
    except vhw.VirtualHardwareError as e:
        raise SimError(str(e)) from None
    board_dir = work / "board"
    board_dir.mkdir(exist_ok=True)
    src = upy.BOARDS_DIR / f"{board}.py"
    if not src.exists():
        raise SimError(f"board file {src} missing")
    shutil.copyfile(src, board_dir / "board.py")
    return flash, hw


def boot_code(flash: str | Path, frames: int) -> str:
    """The MicroPython program of one run: main.py's boot with a frame limit."""
    cfg = str(Path(flash) / "paytoken.cfg")
    return (
        "import micropython\nmicropython.kbd_intr(-1)\n"
        f"import app\napp.boot(cfg_path={cfg!r}, frames={int(frames)})\n"
    )


def command(flash: str | Path, hw: str | Path, frames: int, heapsize: str | None = None) -> tuple[list[str], dict[str, str]]:
    """argv and environment for a run (for callers that manage the process)."""
    import os

    argv = [upy.micropython()]
    if heapsize:
        argv += ["-X", f"heapsize={heapsize}"]
    argv += ["-c", boot_code(flash, frames)]
    env = dict(os.environ)
    env["MICROPYPATH"] = upy.micropypath([Path(hw).parent / "board"])
    env.update(vhw.env(hw))
    return argv, env


def run(
    flash: str | Path, hw: str | Path, *, frames: int = 1, heapsize: str | None = None,
    extra: str = "", timeout: float = 60,
) -> SimResult:
    """Boot the firmware on the prepared folders until ``frames`` frames were shown."""
    hw = Path(hw)
    code = boot_code(flash, frames) + extra
    try:
        proc = upy.run(code, path=[hw.parent / "board"], heapsize=heapsize,
                       env=vhw.env(hw), timeout=timeout)
    except upy.MicroPythonError as e:
        raise SimError(f"the firmware failed: {e}") from None
    data, w, h, on, inv = vhw.panel(hw)
    return SimResult(data, w, h, on, inv, vhw.i2c_bytes(hw), proc.stdout)


def render_once(
    config: dict[str, Any] | None, *, at: float, board: str = "sim", heapsize: str | None = None,
    **hw_opts: Any,
) -> SimResult:
    """prepare + run in a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="paytoken-sim-") as d:
        flash, hw = prepare(d, config=config, at=at, board=board, **hw_opts)
        return run(flash, hw, heapsize=heapsize)
