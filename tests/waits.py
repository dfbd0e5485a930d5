"""Waiting in tests on a busy machine: for a condition or an event, never for a fixed time.

CI shares its two cores with other work, so a bound that only says "this does not hang"
is generous, and a sleep that hopes a state has come is a wait for that state instead.
``PAYTOKEN_TEST_SLOW`` (a factor, default 1) stretches every bound here for a machine
slower still; it never shortens one.

Usage (tests/ is on sys.path through tests/conftest.py)::

    from waits import bound, wait_for
    wait_for(lambda: tok.child_pid() is not None, what="the interpreter started")
    with Device(port, timeout=bound(30)) as dev: ...
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable


def _factor() -> float:
    try:
        f = float(os.environ.get("PAYTOKEN_TEST_SLOW", "1") or "1")
    except ValueError:
        raise ValueError("PAYTOKEN_TEST_SLOW must be a number (a factor >= 1)") from None
    return max(1.0, f) if f == f else 1.0  # nan: no stretch


SLOW = _factor()

# How long a step that should succeed may take before the test calls it hung: booting
# the unix port, a soft reset, a raw-REPL call. On an idle machine each takes well under 1 s.
STEP = 30.0

# Room a deadline gets for the scheduler on top of its own length when a test checks that
# a call gave up at its deadline (and did not hang until the test's own timeout).
LATE = 10.0


def bound(seconds: float) -> float:
    """``seconds`` stretched by ``PAYTOKEN_TEST_SLOW``."""
    return seconds * SLOW


def wait_for(cond: Callable[[], object], seconds: float = STEP, what: str = "condition",
             every: float = 0.02) -> None:
    """Poll ``cond`` until it is true; AssertionError naming ``what`` after ``seconds``
    (stretched by ``PAYTOKEN_TEST_SLOW``)."""
    limit = bound(seconds)
    end = time.monotonic() + limit
    while True:
        if cond():
            return
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not met within {limit:g} s")
        time.sleep(every)


@functools.lru_cache(maxsize=1)
def device_commands() -> frozenset[str]:
    """The CLI's commands that talk to a token (``--port``) and take ``--timeout``, the limit
    of each device call (10 s by default, for a real board), read off the CLI's parser. A
    virtual token on a loaded machine can take longer over a soft reset, so a test that
    gives none gets STEP."""
    from paytoken import cli

    found = set()
    for path, parser in cli.iter_parsers(cli.build_parser()):
        opts = {o for a in parser._actions for o in a.option_strings}
        if len(path) == 1 and {"--port", "--timeout"} <= opts:
            found.add(path[0])
    return frozenset(found)


def cli_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """``args`` for ``paytoken``, with ``--timeout`` stretched for a device command
    that names none."""
    named = any(a == "--timeout" or a.startswith("--timeout=") for a in args)
    if args and not named and "--help" not in args and args[0] in device_commands():
        return (*args, "--timeout", f"{bound(STEP):g}")
    return args
