"""Fixtures for the driver and chip-model tests: firmware on CPython's path, hardware
folders, and MicroPython runs on the sim board."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from paytoken import upy, vhw


@pytest.fixture(scope="session")
def fw() -> Iterator[Path]:
    """The firmware tree on CPython's sys.path (drivers and models import as on the device)."""
    p = str(upy.FIRMWARE_DIR)
    sys.path.insert(0, p)
    yield upy.FIRMWARE_DIR
    sys.path.remove(p)


class Clock:
    """An injected world clock (UTC seconds) for in-memory models."""

    def __init__(self, t: float) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock(4102444800.0)  # 2100-01-01


@pytest.fixture
def hw(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a fresh hardware folder (``vhw.create`` keywords)."""

    def make(**kw: Any) -> Path:
        return vhw.create(tmp_path / f"tok{len(list(tmp_path.iterdir()))}.hw", **kw)

    return make
