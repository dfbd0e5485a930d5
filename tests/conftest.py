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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `--dist loadgroup` sends the tests of one xdist_group (an emulated Pico shared by a
    # module) to one worker by a "@group" suffix on their node ids. pytest-xdist 3.8 adds
    # it by assigning item._nodeid, which pytest 9 no longer reads (the id is item._id):
    # without this, a group's tests ran on both workers and each booted its own token.
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names or item.nodeid.endswith("@" + "_".join(names)) or not hasattr(item, "_id"):
            continue
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


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
