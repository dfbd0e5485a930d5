"""Control a virtual token's hardware folder from the host.

The sim boards keep their chip models' state in a *hardware folder* (the
interpreter finds it through ``PAYTOKEN_HW``). This module creates one and acts
on it from outside: press the button, cut and restore power, change the RTC's
crystal error or battery, move world time, and read the panel and the I2C
counters. The RTC logic is the very code the device runs (``firmware/sim``).

Usage::

    folder = vhw.create(vhw.hw_folder(flash_dir), rtc_chip="ds3231", ppm=20.0)
    vhw.press(folder)
    gddram, w, h, on, inv = vhw.panel(folder)
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from paytoken import upy

BOARDS = {"sim": (128, 64), "sim-128x32": (128, 32), "sim-latch": (128, 64)}
# Boards behind a power latch (boards/sim-latch.py): off between payments; a press on
# a board the latch switched off powers it up (firmware/sim/latch.py).
LATCH_BOARDS = ("sim-latch", "pico-latch")  # pico-latch: the emulated Pico (vdev/rp2.py)
RTC_CHIPS = ("ds3231", "pcf8563", "mcu")


class VirtualHardwareError(Exception):
    """A hardware folder is missing, corrupt, or asked for something impossible."""


def _sim() -> ModuleType:
    # firmware/sim loaded as the package paytoken._vhwsim (relative imports inside).
    name = "paytoken._vhwsim"
    if name in sys.modules:
        return sys.modules[name]
    init = upy.FIRMWARE_DIR / "sim" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    if spec is None or spec.loader is None:
        raise VirtualHardwareError(f"cannot load the chip models from {init.parent}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _store() -> Any:
    return _sim().store


def _rtc() -> Any:
    _sim()
    return importlib.import_module("paytoken._vhwsim.rtc")


def hw_folder(flash_dir: str | os.PathLike[str]) -> Path:
    """The hardware folder that belongs to a token's flash folder: ``<flash_dir>.hw``."""
    p = Path(flash_dir)
    return p.with_name(p.name + ".hw")


def _folder(folder: str | os.PathLike[str]) -> str:
    f = Path(folder)
    if not (f / "hw.json").is_file():
        raise VirtualHardwareError(f"{f} is not a hardware folder (no hw.json): create it first")
    return str(f)


def _load(folder: str, name: str) -> Any:
    try:
        return _store().load(folder, name, None)
    except OSError as e:
        raise VirtualHardwareError(str(e)) from None


def create(
    folder: str | os.PathLike[str],
    board: str = "sim",
    rtc_chip: str = "ds3231",
    ppm: float = 0.0,
    battery: bool = True,
    at: float | None = None,
    *,
    frozen: bool = False,
    rtc_set: bool = True,
    aging: int = 0,
    overwrite: bool = False,
    size: tuple[int, int] | None = None,
) -> Path:
    """Create a hardware folder and return its path.

    ``at`` sets world time (UTC seconds; default the host clock), frozen there when
    ``frozen``. With ``rtc_set`` the RTC starts set to world time with its lost-time
    flag clear, as after a clock sync; otherwise it starts as a new chip (2000-01-01,
    flag set). ``aging`` is the DS3231 aging register (signed, ~0.1 ppm per LSB).
    ``size`` (width, height) names the panel of a board that is not a sim board (an
    emulated Pico's, from its board file).
    """
    if size is None and board not in BOARDS:
        raise VirtualHardwareError(f"unknown sim board {board!r} (one of {', '.join(BOARDS)})")
    if rtc_chip not in RTC_CHIPS:
        raise VirtualHardwareError(f"unknown RTC chip {rtc_chip!r} (one of {', '.join(RTC_CHIPS)})")
    if not -128 <= aging <= 127:
        raise VirtualHardwareError(f"aging {aging} outside -128..127")
    f = Path(folder)
    if (f / "hw.json").exists() and not overwrite:
        raise VirtualHardwareError(f"{f} already holds virtual hardware")
    f.mkdir(parents=True, exist_ok=True)
    s = str(f)
    store = _store()
    width, height = size or BOARDS[board]
    store.save(s, "hw.json", {"board": board, "width": width, "height": height, "rtc": rtc_chip})
    _write_world(s, at, frozen)
    world = store.world_time(s)
    if rtc_chip == "mcu":
        (f / "rtc.json").unlink(missing_ok=True)
    else:
        st = _rtc().new_state(rtc_chip, ppm, battery, world, world if rtc_set else None)
        if rtc_chip == "ds3231":
            st["regs"][0x10] = aging & 0xFF
        store.save(s, "rtc.json", st)
    (f / "button").write_bytes(b"")
    store.save(s, "power.json", {"on": True})
    store.save(s, "i2c.json", {"bytes": 0, "transactions": 0})
    _panel_dark(s, width, height)
    return f


def _write_world(folder: str, at: float | None, frozen: bool, virtual: bool = False) -> None:
    store = _store()
    if virtual:
        store.save(folder, "world.json", {"virtual": float(store.host_utc() if at is None else at)})
        return
    if at is None:
        if frozen:
            store.save(folder, "world.json", {"frozen": store.host_utc()})
        else:
            store.save(folder, "world.json", {"offset": 0.0})
    elif frozen:
        store.save(folder, "world.json", {"frozen": float(at)})
    else:
        store.save(folder, "world.json", {"offset": float(at) - store.host_utc()})


def _panel_dark(folder: str, width: int, height: int) -> None:
    store = _store()
    store.save_bytes(folder, "panel.bin", bytes(width * height // 8))
    store.save(folder, "panel.json", {"width": width, "height": height, "display_on": False,
                                      "lit": False, "inverted": False, "contrast": 0,
                                      "entire_on": False, "powered": False})


def press(folder: str | os.PathLike[str], times: int = 1) -> None:
    """Press the button ``times`` times (the device sees one edge per batch).

    On a power-latch board that its latch switched off, the press switches the supply
    on instead (the board boots and shows the code: no press is left for the firmware).
    """
    f = _folder(folder)
    if times < 1:
        raise VirtualHardwareError("times must be at least 1")
    if latched_off(f):
        power_on(f)
        return
    with open(Path(f) / "button", "ab") as fh:
        fh.write(b"p" * times)


def _rtc_update(folder: str, fn: Any) -> dict[str, Any]:
    st = _load(folder, "rtc.json")
    if st is None:
        raise VirtualHardwareError(f"{folder} has no RTC chip (rtc is 'mcu')")
    fn(st, _store().world_time(folder))
    _store().save(folder, "rtc.json", st)
    return st


def power_off(folder: str | os.PathLike[str]) -> None:
    """Cut the board's power (the caller stops the interpreter). The RTC keeps
    running on its battery; without one it stops and will restart lost."""
    f = _folder(folder)
    if (Path(f) / "rtc.json").exists():
        _rtc_update(f, lambda st, w: _rtc().power(st, False, w))
    cfg = _load(f, "hw.json")
    _panel_dark(f, cfg["width"], cfg["height"])
    _store().save(f, "power.json", {"on": False})


def power_on(folder: str | os.PathLike[str]) -> None:
    """Restore power. Only the host does this: a board that starts unpowered stays off."""
    f = _folder(folder)
    if (Path(f) / "rtc.json").exists():
        _rtc_update(f, lambda st, w: _rtc().power(st, True, w))
    _store().save(f, "power.json", {"on": True})


def latched_off(folder: str | os.PathLike[str]) -> bool:
    """True when a power-latch board switched itself off (power.json by its latch)."""
    f = _folder(folder)
    p = _load(f, "power.json")
    hw = _load(f, "hw.json") or {}
    return bool(p and not p.get("on", True) and p.get("latch") and hw.get("board") in LATCH_BOARDS)


def is_powered(folder: str | os.PathLike[str]) -> bool:
    """True unless the board's power is cut (power.json)."""
    p = _load(_folder(folder), "power.json")
    return True if p is None else bool(p.get("on", True))


def set_rtc(
    folder: str | os.PathLike[str],
    ppm: float | None = None,
    battery: bool | None = None,
    *,
    time: float | None = None,
    aging: int | None = None,
) -> dict[str, Any]:
    """Change the RTC: crystal error (rebased, so elapsed time keeps the old rate),
    battery, the register time (UTC seconds; clears the lost flag) or the DS3231
    aging register. Returns the new chip state."""
    f = _folder(folder)
    rtc = _rtc()
    if aging is not None and not -128 <= aging <= 127:
        raise VirtualHardwareError(f"aging {aging} outside -128..127")
    if time is not None and not 946684800 <= time < 7258118400:
        raise VirtualHardwareError("RTC time must lie in 2000-2199")
    if ppm is not None and not -1e5 < ppm < 1e5:  # also refuses NaN, which JSON cannot hold
        raise VirtualHardwareError(f"crystal error {ppm} ppm is not a finite number within ±100000")

    def change(st: dict[str, Any], w: float) -> None:
        if ppm is not None:
            rtc.set_ppm(st, ppm, w)
        if battery is not None:
            rtc.set_battery(st, battery, w)
        if aging is not None:
            if st["chip"] != "ds3231":
                raise VirtualHardwareError("only the DS3231 has an aging register")
            rtc.rebase(st, w)
            st["regs"][0x10] = aging & 0xFF
        if time is not None:
            if not st["running"]:
                raise VirtualHardwareError("the RTC has no power: cannot set its time")
            rtc.set_time(st, time, w)

    return _rtc_update(f, change)


def rtc_state(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The RTC chip state as stored (rtc.json)."""
    f = _folder(folder)
    st = _load(f, "rtc.json")
    if st is None:
        raise VirtualHardwareError(f"{f} has no RTC chip (rtc is 'mcu')")
    return dict(st)


def rtc_time(folder: str | os.PathLike[str]) -> int | None:
    """UTC seconds the RTC registers would read now; None while its oscillator is stopped."""
    f = _folder(folder)
    st = rtc_state(f)
    t = _rtc().reg_time(st, _store().world_time(f))
    return None if t is None else int(t // 1)


def set_world_time(
    folder: str | os.PathLike[str], unix: float, frozen: bool = False, *, virtual: bool = False
) -> None:
    """Set world time to ``unix`` (UTC seconds); it runs on with the host clock unless
    frozen. A ``virtual`` world stands still except while the board naps or sleeps,
    which moves it on by the time slept at once (the sim board's ticks follow it):
    a test runs minutes of a token's life in milliseconds."""
    if frozen and virtual:
        raise VirtualHardwareError("world time is frozen or virtual, not both")
    f = _folder(folder)
    _write_world(f, unix, frozen, virtual)


def set_usb(folder: str | os.PathLike[str], attached: bool) -> None:
    """Attach or detach the USB host (the sim board's ``usb()``; attached by default).
    Detached, the token is on battery: it naps between countdown ticks."""
    _store().save(_folder(folder), "usb.json", {"attached": bool(attached)})


def cpu(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """cpu.json: ``hz`` (the CPU clock a battery boot chose, None if none), ``naps``
    (display-on naps taken) and ``nap_ms`` (milliseconds slept in them)."""
    c = _load(_folder(folder), "cpu.json") or {"hz": None, "naps": 0, "nap_ms": 0}
    return {"hz": c["hz"], "naps": int(c["naps"]), "nap_ms": int(c["nap_ms"])}


def world_time(folder: str | os.PathLike[str]) -> float:
    """World time of this hardware folder, UTC seconds."""
    return float(_store().world_time(_folder(folder)))


def panel(folder: str | os.PathLike[str]) -> tuple[bytes, int, int, bool, bool]:
    """``(gddram, width, height, display_on, inverted)`` of the panel.

    ``gddram`` is the panel's picture packed like an SSD1306 page framebuffer
    (MONO_VLSB, width*height/8 bytes): the controller's segment remap, COM scan
    direction, start line, multiplex and COM pin wiring are already applied, so
    pixel (x, y) is where a person sees it. Inversion and on/off are not applied:
    pass them on, ``panel.panel_png(gddram, w, h, path, inverted=inverted,
    display_on=display_on)``. ``display_on`` is True only when the panel is lit
    (display on, charge pump on, board powered).
    """
    f = _folder(folder)
    meta = _load(f, "panel.json")
    if meta is None:
        raise VirtualHardwareError(f"{f} has no panel.json")
    data = (Path(f) / "panel.bin").read_bytes()
    w, h = int(meta["width"]), int(meta["height"])
    if len(data) != w * h // 8:
        raise VirtualHardwareError(f"panel.bin holds {len(data)} bytes, expected {w * h // 8}")
    return data, w, h, bool(meta["lit"]), bool(meta["inverted"])


def panel_state(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """panel.json: display_on, lit, inverted, contrast, entire_on, powered."""
    return dict(_load(_folder(folder), "panel.json") or {})


def snapshot(folder: str | os.PathLike[str], path: str | os.PathLike[str], scale: int = 4) -> None:
    """Write the panel as a PNG (through ``paytoken.panel.panel_png``)."""
    from paytoken import panel as panel_mod  # written by the display/sim side

    if not 1 <= scale <= 32:  # beyond that the PNG alone would take gigabytes
        raise VirtualHardwareError(f"scale {scale} outside 1..32")
    data, w, h, on, inv = panel(folder)
    panel_mod.panel_png(data, w, h, path, scale=scale, inverted=inv, display_on=on)


def i2c_counters(folder: str | os.PathLike[str]) -> dict[str, int]:
    """Cumulative I2C counters ``{"bytes", "transactions"}`` (flushed on display
    changes, on sleep and at interpreter exit)."""
    c = _load(_folder(folder), "i2c.json") or {"bytes": 0, "transactions": 0}
    return {"bytes": int(c["bytes"]), "transactions": int(c["transactions"])}


def i2c_bytes(folder: str | os.PathLike[str]) -> int:
    """Cumulative bytes on the I2C wire (address bytes included)."""
    return i2c_counters(folder)["bytes"]


def env(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Environment entries that point an interpreter at this hardware folder."""
    return {"PAYTOKEN_HW": str(Path(_folder(folder)).resolve())}


def hw_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """hw.json: board, width, height, rtc."""
    return dict(json.loads((Path(_folder(folder)) / "hw.json").read_text()))
