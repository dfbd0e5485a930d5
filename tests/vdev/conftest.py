"""Fixtures: virtual tokens that are always stopped (SIGTERM, then SIGKILL) at teardown."""

from __future__ import annotations

from pathlib import Path

import pytest
from vdevkit import VTok, start_vdev


@pytest.fixture
def vdevs():
    """A factory ``vdevs(flash, *args) -> VTok``; all are stopped at teardown."""
    started: list[VTok] = []

    def make(flash: Path, *args: str) -> VTok:
        tok = start_vdev(flash, *args)
        started.append(tok)
        return tok

    yield make
    for tok in started:
        tok.stop()
