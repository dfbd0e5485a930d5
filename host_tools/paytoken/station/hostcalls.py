"""The host's side of the token's named calls (``firmware/hostapi.py``).

Usage::

    fw, board, state, image = hostcalls.call(dev, "probe")
    hostcalls.call(dev, "save_fields", locked=True)

The station and the service desk run nothing of the firmware but these calls: each is
one line, ``import hostapi; hostapi.NAME(ARGS)`` with every argument ``repr()``'d, and
its answer is the one line the token prints, the ``repr()`` of the result, read with
``literal.literal_eval``. A rename on the token then breaks an import here, found by the
tests, instead of a factory line at run time. ``CALLS`` lists the contract
(docs/ARCHITECTURE.md, "The host's calls"). Every failure is a ``DeviceError`` that
names the port and the call, never its arguments (they may hold secrets).

One thing runs without the firmware: ``config_state_without_firmware`` reads a token
whose firmware is gone (a cut update) with MicroPython's own modules only.
"""

from __future__ import annotations

import math
from typing import Any

from paytoken import literal
from paytoken.station.transport import Device, DeviceError

MODULE = "hostapi"
# The calls of firmware/hostapi.py (tests/station/test_hostcalls.py checks both lists agree).
CALLS = (
    "probe", "hold_lease", "read_clock", "set_clock", "edge", "codes", "save_config",
    "save_fields", "wipe_config",
)


def _literal(v: Any) -> str:
    # repr() of what MicroPython reads back as the same value; anything else is refused
    if v is None or isinstance(v, (bool, int, str, bytes)):
        return repr(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("a host call takes finite floats only")
        return repr(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_literal(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise ValueError("a host call's dict has str keys only")
        return "{" + ", ".join(f"{k!r}: {_literal(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"a host call takes literals, not {type(v).__name__}")


def line(name: str, *args: Any, **kwargs: Any) -> str:
    """The source line of one call: ``import hostapi; hostapi.name(args)``."""
    if name not in CALLS:
        raise ValueError(f"no host call {name!r}")
    for k in kwargs:
        if not k.isidentifier():
            raise ValueError(f"bad keyword {k!r} for a host call")
    parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
    return f"import {MODULE}; {MODULE}.{name}({', '.join(parts)})\n"


def parse(port: str, name: str, out: str) -> Any:
    """The value of a call's answer (its last printed line)."""
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    try:
        return literal.literal_eval(lines[-1].strip())
    except (IndexError, ValueError, SyntaxError):
        raise DeviceError(f"{port}: {name}: the token's answer is not a Python literal") from None


def call(dev: Device, name: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """Run one named call on ``dev`` (raw REPL) and return its parsed result."""
    return parse(dev.port, name, dev.exec(line(name, *args, **kwargs), timeout=timeout))


def roundtrip(dev: Device) -> None:
    """A call that does nothing: the link's round trip, for timing the clock set."""
    dev.exec("pass\n")


# A token whose firmware is gone: its id and whether a secret is there, from the
# config file itself (one header line, then JSON). Nothing of the file leaves it.
_CONFIG_STATE = (
    "import json\n"
    "try:\n"
    " _f = open('/paytoken.cfg')\n _f.readline()\n _c = json.loads(_f.read())\n _f.close()\n"
    " print(repr((int(_c.get('token_id', 0)), bool(_c.get('locked')), len(_c.get('secret', '')) > 0)))\n"
    "except (OSError, ValueError):\n print('None')\n"
    "_c = None\n"
)


def config_state_without_firmware(dev: Device) -> tuple[int, bool, bool] | None:
    """``(token_id, locked, has_secret)`` from the config file of a token without
    firmware; None when there is no readable config."""
    out = dev.exec(_CONFIG_STATE)
    try:
        v = parse(dev.port, "config state", out)
    except DeviceError:
        return None
    if not (isinstance(v, tuple) and len(v) == 3):
        return None
    return int(v[0]), bool(v[1]), bool(v[2])
