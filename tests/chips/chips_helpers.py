"""Helpers for the chip tests: MicroPython runs on the sim board."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from paytoken import upy


def run_sim(code: str, folder: Path, board: str = "sim", **kw: Any) -> Any:
    """Run ``code`` in MicroPython on a sim board over ``folder``; return its last repr line."""
    flash = folder.with_suffix(".flash")
    flash.mkdir(exist_ok=True)
    shutil.copy(upy.BOARDS_DIR / f"{board}.py", flash / "board.py")
    return upy.eval_repr(code, path=[flash], env={"PAYTOKEN_HW": str(folder)}, **kw)
