"""Host-side control of a virtual token: where its parts live, and the supervisor's state.

Usage: ``control.port(flash_dir)`` is the device path of a running virtual token;
``control.hard_reset(flash_dir)`` kills and reboots a wedged interpreter.

A token is named by its flash folder ``DIR``. Its hardware folder is ``DIR.hw``
(``paytoken.vhw``); the supervisor keeps ``vdev.json`` (its pid and port) and the
``tty`` symlink (the device path) there.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from paytoken import vhw

STATE = "vdev.json"
LINK = "tty"


class ControlError(Exception):
    """The virtual token is not running, or a control action failed."""


def hw_folder(flash: Path | str) -> Path:
    """The hardware folder of the token whose flash folder is ``flash``."""
    return vhw.hw_folder(Path(flash).resolve())


def ensure_hw(flash: Path | str, board: str = "sim") -> Path:
    """Create the hardware folder with ``vhw.create`` unless it exists; return it."""
    hw = hw_folder(flash)
    if not (hw / "hw.json").exists():
        try:
            vhw.create(hw, board=board)
        except vhw.VirtualHardwareError as e:
            raise ControlError(str(e)) from None
    return hw


def powered(hw: Path) -> bool:
    """True unless the token's power is cut (``vhw.is_powered``)."""
    return vhw.is_powered(hw)


def port_link(flash: Path | str) -> Path:
    """The stable device path of the token: a symlink to its pty slave."""
    return hw_folder(flash) / LINK


def registry_dir() -> Path:
    """Where running virtual tokens list themselves (``$PAYTOKEN_VDEV_REGISTRY``, else a
    per-user folder in the temp dir), so that ``paytoken provision --all`` finds them."""
    d = os.environ.get("PAYTOKEN_VDEV_REGISTRY")
    return Path(d) if d else Path(tempfile.gettempdir()) / f"paytoken-vdev-{os.getuid()}"


def replace_link(link: Path, target: str) -> None:
    """Point the symlink ``link`` at ``target`` in one step: a new link under a name no other
    process or thread uses, then renamed over ``link`` (a reader sees the old or the new)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}.new")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_state(flash: Path | str, state: dict[str, Any]) -> None:
    """Record the running supervisor (atomically), and list it in the registry."""
    p = hw_folder(flash) / STATE
    tmp = p.with_name(p.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, p)
    try:
        reg = registry_dir()
        reg.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = reg / f"{os.getpid()}.json"
        tmp = entry.with_name(f".{entry.name}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"flash": str(Path(flash).resolve()), "port": state.get("port"),
                                   "pid": os.getpid()}))
        os.replace(tmp, entry)
    except OSError:
        pass  # the registry is a convenience; the state file is what counts


def running() -> list[dict[str, Any]]:
    """The registered virtual tokens whose supervisor is alive: ``{flash, port, pid}``."""
    out = []
    try:
        entries = sorted(registry_dir().glob("*.json"))
    except OSError:
        return []
    for e in entries:
        try:
            d = json.loads(e.read_text())
            os.kill(int(d["pid"]), 0)
            if read_state(d["flash"]).get("pid") == d["pid"]:
                out.append(d)
        except (OSError, ValueError, KeyError, TypeError, ControlError):
            continue
    return out


def read_state(flash: Path | str) -> dict[str, Any]:
    """The running supervisor's state; ``ControlError`` when none runs for ``flash``."""
    p = hw_folder(flash) / STATE
    try:
        state = json.loads(p.read_text())
    except (OSError, ValueError):
        raise ControlError(f"no virtual token running on {flash}") from None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        raise ControlError(f"no virtual token running on {flash} (stale state)") from None
    return state


def clear_state(flash: Path | str, pid: int) -> None:
    """Remove the state file if it is still ours."""
    p = hw_folder(flash) / STATE
    try:
        if json.loads(p.read_text()).get("pid") == pid:
            p.unlink()
    except (OSError, ValueError):
        pass
    try:
        (registry_dir() / f"{pid}.json").unlink()
    except OSError:
        pass


def port(flash: Path | str) -> str:
    """Device path of the running virtual token on ``flash``."""
    return str(read_state(flash)["port"])


def hard_reset(flash: Path | str, wait: float = 30.0) -> None:
    """Kill the interpreter and boot it again (the board's reset button). Returns once
    the supervisor has started the new one; ``wait`` only bounds a dead supervisor (a
    busy machine may take seconds to schedule it)."""
    state = read_state(flash)
    before = _boots(flash)
    os.kill(int(state["pid"]), signal.SIGUSR1)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _boots(flash) != before:
            return
        time.sleep(0.02)
    raise ControlError(f"virtual token on {flash} did not reset within {wait:g} s")


def _boots(flash: Path | str) -> int:
    try:
        return int(json.loads((hw_folder(flash) / STATE).read_text()).get("boots", 0))
    except (OSError, ValueError):
        return 0
