"""Shared test fixtures: the real MicroPython interpreter, mpy-cross, PostgreSQL."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from paytoken import upy

# Speed is for benchmarks (make bench), not tests: no per-example deadline (200 ms by
# default) and no "too slow" health check, which a busy CI machine trips at random.
# A test's own @settings still sets what it names; the rest comes from here.
settings.register_profile(
    "paytoken", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("paytoken")


@pytest.fixture(scope="session")
def micropython() -> str:
    return upy.micropython()


@pytest.fixture(scope="session")
def mpy_cross() -> str:
    return upy.mpy_cross()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the PostgreSQL server that .ci/pg started. In CI its absence is a failure."""
    url = os.environ.get("PAYTOKEN_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("PAYTOKEN_TEST_PG_URL unset in CI: .ci/pg did not run")
        pytest.skip("no PostgreSQL: run via `make test`, which starts one")
    return url


def soak() -> bool:
    """True under `make soak`: run the full campaigns instead of CI's sample."""
    return bool(os.environ.get("PAYTOKEN_SOAK"))
