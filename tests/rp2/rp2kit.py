"""Helpers for the emulated-Pico tests: the materials check, the token, its littlefs.

The token's flash is an image file (``DIR/flash.img``, 2 MiB); its littlefs (MicroPython's
rp2 filesystem, from the first block holding the littlefs magic to the end) is read
and written here with littlefs-python, an independent implementation, while the
emulator is powered off or between its writes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest
from paytoken import upy, vhw
from paytoken.vdev import rp2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vdev"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "station"))

from vdevkit import MPREMOTE, VTok, start_vdev  # noqa: E402

__all__ = ("MPREMOTE", "VTok", "require", "start_pico", "read_file", "write_file", "token_config",
           "fwconfig", "wait_for")

_spec = importlib.util.spec_from_file_location("fwconfig_rp2", upy.FIRMWARE_DIR / "config.py")
fwconfig = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fwconfig)

BLOCK = 4096


def require() -> None:
    """Skip without the materials, naming what is missing; in CI (CI=true) fail instead."""
    gone = rp2.missing()
    if gone:
        msg = "emulated Pico: missing " + "; ".join(gone)
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def start_pico(flash: Path, *args: str, board: str = "pico") -> VTok:
    require()
    return start_vdev(flash, "--board", board, *args)


def _lfs(flash: Path):
    from littlefs import LittleFS

    img = (flash / rp2.FLASH_IMAGE).read_bytes()
    off = next((o for o in range(0, len(img), BLOCK) if img[o + 8 : o + 16] == b"littlefs"), None)
    if off is None:
        raise AssertionError("no littlefs in the flash image")
    # as the rp2 port's _boot.py mounts it: VfsLfs2(bdev, progsize=256), readsize and
    # lookahead 32 (extmod/vfs_lfs.c defaults)
    fs = LittleFS(block_size=BLOCK, block_count=(len(img) - off) // BLOCK, read_size=32,
                  prog_size=256, cache_size=256, lookahead_size=32, mount=False)
    fs.context.buffer = bytearray(img[off:])
    fs.mount()
    return fs, off, img


def read_file(flash: Path, path: str) -> bytes | None:
    """A file on the token's littlefs, or None. A running token may be writing the image
    (a wake records its step): a snapshot caught mid-write is read again."""
    for _ in range(20):
        try:
            fs, _, _ = _lfs(flash)
        except Exception:  # a torn snapshot: littlefs-python cannot mount it
            time.sleep(0.2)
            continue
        try:
            with fs.open(path, "rb") as f:
                return f.read()
        except Exception:  # littlefs-python raises LittlefsError (ENOENT) for a missing file
            return None
    raise AssertionError("the flash image's littlefs does not mount")


def listdir(flash: Path, path: str = "/") -> list[str]:
    fs, _, _ = _lfs(flash)
    return sorted(fs.listdir(path))


def write_file(flash: Path, path: str, data: bytes) -> None:
    """Write a file into the image (only while the token is powered off)."""
    fs, off, img = _lfs(flash)
    with fs.open(path, "wb") as f:
        f.write(data)
    out = bytearray(img)
    out[off:] = fs.context.buffer
    (flash / rp2.FLASH_IMAGE).write_bytes(out)


def token_config(flash: Path) -> dict | None:
    """The config on the token, read by the firmware's own config module."""
    data = read_file(flash, "/paytoken.cfg")
    if data is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "paytoken.cfg"
        p.write_bytes(data)
        return fwconfig.load(str(p))


def save_config(tok: VTok, cfg: dict) -> None:
    """Replace the token's config (power off, write the image, power on)."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "paytoken.cfg"
        fwconfig.save(cfg, str(p))
        data = p.read_bytes()
    vhw.power_off(tok.hw)
    wait_for(lambda: tok.child_pid() is None, 10, "the emulator stops on power-off")
    write_file(tok.flash, "/paytoken.cfg", data)
    vhw.power_on(tok.hw)


def wait_for(cond, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out ({timeout:g} s): {what}")
        time.sleep(every)
