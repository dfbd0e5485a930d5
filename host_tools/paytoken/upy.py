"""Run code on the real MicroPython interpreter (the unix port) from CPython.

Usage: ``upy.run("import paycode; print(paycode.damm('572'))").stdout``.
The firmware tree is put on MicroPython's path exactly as it is deployed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from paytoken import literal

_PACKAGE = Path(__file__).resolve().parent
# The checkout this module runs from (an editable install); None for an installed wheel.
REPO: Path | None = _PACKAGE.parents[1]
if not ((REPO / "pyproject.toml").is_file() and (REPO / "firmware" / "main.py").is_file()):
    REPO = None


def _tree(name: str) -> Path:
    # The checkout's folder; in a wheel, the copy shipped as package data (paytoken/<name>).
    return REPO / name if REPO is not None else _PACKAGE / name


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "paytoken"


FIRMWARE_DIR = Path(os.environ.get("PAYTOKEN_FIRMWARE") or _tree("firmware"))
BOARDS_DIR = Path(os.environ.get("PAYTOKEN_BOARDS") or _tree("boards"))
# Compiled .mpy files: the checkout's build/, else a per-user cache (never site-packages);
# $PAYTOKEN_BUILD, read when a deploy runs, overrides it.
BUILD_DIR = REPO / "build" if REPO is not None else _user_cache() / "build"


class MicroPythonError(Exception):
    """The interpreter failed: the message carries its stderr/stdout tail."""


def _tool(name: str) -> str:
    # Prefer the one installed beside this interpreter (the project's venv).
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise MicroPythonError(f"{name} not found: install the package that provides it")
    return found


def micropython() -> str:
    """Path of the ``micropython`` unix-port binary."""
    return _tool("micropython")


def mpy_cross() -> str:
    """Path of the ``mpy-cross`` compiler."""
    return _tool("mpy-cross")


def micropypath(extra: list[str | Path] | None = None) -> str:
    """MICROPYPATH value: frozen modules, then ``extra``, then the firmware tree."""
    parts = [".frozen", *(str(p) for p in (extra or [])), str(FIRMWARE_DIR)]
    return os.pathsep.join(parts)


def run(
    code: str,
    *,
    path: list[str | Path] | None = None,
    heapsize: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh MicroPython process and return the finished process."""
    argv = [micropython()]
    if heapsize:
        argv += ["-X", f"heapsize={heapsize}"]
    argv += ["-c", code]
    full_env = dict(os.environ)
    full_env["MICROPYPATH"] = micropypath(path)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd
    )
    if check and (proc.returncode != 0 or "Traceback (most recent call last)" in proc.stdout):
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise MicroPythonError(f"micropython exited {proc.returncode}: {tail}")
    return proc


def eval_repr(code: str, **kwargs: Any) -> Any:
    """Run ``code`` whose last output line is a ``repr()``; return it parsed."""
    out = run(code, **kwargs).stdout.strip().splitlines()
    if not out:
        raise MicroPythonError("micropython printed nothing")
    return literal.literal_eval(out[-1])
