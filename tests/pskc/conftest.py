"""Fixtures: a migrated SQLite issuer (scheme 81) from the station tests' kit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "station"))

from stationkit import Issuer, new_issuer  # noqa: E402


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return new_issuer(f"sqlite:///{tmp_path / 'issuer.db'}", tmp_path)
