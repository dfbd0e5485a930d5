"""Helpers for the firmware tests: the firmware tree on CPython's path, a config factory."""

from __future__ import annotations

import sys
from pathlib import Path

from paytoken import upy

FIRMWARE = upy.FIRMWARE_DIR
BOARDS = upy.BOARDS_DIR
GOLDEN = Path(__file__).resolve().parent / "golden"

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))

import config as fwconfig  # noqa: E402, F401  (firmware/config.py, the very file the token runs)

# A fixed test token. The secret is the RFC 6238 SHA-1 seed, so pyotp checks our OTPs.
SECRET = b"12345678901234567890"
SECRET_B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
SCHEME_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
SYNC_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f10111213")
TOKEN_ID = 12345678


def token_config(**over) -> dict:
    """A provisioned, synced config for the test token; keyword args override fields."""
    cfg = {
        "token_id": TOKEN_ID,
        "secret": SECRET,
        "scheme_key": SCHEME_KEY,
        "prefix": "81",
        "format": 1,
        "sync_key": SYNC_KEY,
        "ppm": 0.0,
        "ref_time": 1767225600,  # 2026-01-01T00:00:00Z
        "locked": False,
        "last_step": 0,
        "last_sync": 1767225600,
    }
    cfg.update(over)
    return cfg


def mpy_tree(out: Path, *opts: str) -> int:
    """Compile firmware/ (paycode and the sim models included) into ``out`` as .mpy.

    Names are embedded as the station's deploy does (``-s app.py``), not as absolute
    paths; ``opts`` go to mpy-cross (e.g. ``-O3``). Returns the .mpy bytes of the
    deployed part (the sim models excluded: real boards do not carry them).
    """
    import subprocess

    total = 0
    for src in sorted(FIRMWARE.rglob("*.py")):
        rel = src.relative_to(FIRMWARE)
        dst = out / rel.with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([upy.mpy_cross(), *opts, "-s", rel.as_posix(), "-o", str(dst), str(src)], check=True)
        if rel.parts[0] != "sim":
            total += dst.stat().st_size
    return total

