"""The firmware's modules under CPython (paytoken.fwload): private names, no sys.path.

The host paths that run firmware code under CPython (the CPython UI, the simulator's
config, the simulated year) are run in a fresh interpreter, which must end with no
top-level firmware module in ``sys.modules`` and ``sys.path`` as it began.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from paytoken import fwload, upy

PROBE = r"""
import json, sys
path0 = list(sys.path)
from paytoken import cpyui, fwload, simrun, upy
from paytoken.story import year
import tempfile

pic, _ = cpyui.render("code", code="812345678901234567", remaining=17)
cpyui.render("sync")
cfg = simrun.token_config(b"12345678901234567890", 12345678, bytes(range(16)), at=1790000000)
with tempfile.TemporaryDirectory() as d:
    flash, hw = simrun.prepare(d, config=cfg, at=1790000000)
    saved = simrun._fwconfig().load(str(flash / "paytoken.cfg"))
    res = simrun.run(flash, hw)
rep = year.simulate(tokens=2, days=3, seed=3)
fw = fwload.names() - fwload.SHARED
print(json.dumps({
    "top": sorted(n for n in sys.modules if n.split(".")[0] in fw),
    "private": sorted(n for n in sys.modules if n.startswith(fwload.PACKAGE + ".")),
    "path_same": sys.path == path0,
    "fw_on_path": any(str(upy.FIRMWARE_DIR) == p for p in sys.path),
    "shown": len(res.picture),
    "saved": saved["token_id"],
    "accepted": rep["acceptance_rate"],
    "pic": len(pic),
}))
"""


def test_the_host_paths_leave_no_firmware_name_in_sys_modules() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["top"] == []  # no app, config, ui, qr, sim, ds3231, ... as top-level names
    assert out["path_same"] and not out["fw_on_path"]
    # ... and the firmware's code did run, under its private names
    for name in ("app", "config", "ui", "qr", "font", "screens", "ds3231", "pcf8563",
                 "sim.bus", "sim.oled", "sim.rtc"):
        assert f"{fwload.PACKAGE}.{name}" in out["private"], name
    assert out["saved"] == 12345678 and out["accepted"] == 1.0 and out["pic"] == out["shown"] == 128 * 64 // 8


def test_a_module_is_the_firmwares_file_and_its_imports_stay_private() -> None:
    config = fwload.module("config")
    assert config.__file__ == str(upy.FIRMWARE_DIR / "config.py")
    assert config.__name__ == "paytoken._fw.config"
    assert fwload.module("config") is config  # loaded once
    # pcf8563.py's `from ds3231 import ...` is the private ds3231
    assert fwload.module("pcf8563").check is fwload.module("ds3231").check
    # the sim package's relative imports, and the package's attributes
    sim = fwload.module("sim")
    assert fwload.module("sim.bus") is sim.bus and sim.bus.store is fwload.module("sim.store")
    # a function's import at call time goes the same way: ui draws with the private qr
    ui = fwload.module("ui")
    assert ui.__builtins__["__import__"] is fwload._import
    # paycode stays the installed package itself
    import paycode

    assert fwload.module("app").__dict__["__builtins__"]["__import__"]("paycode") is paycode
    with pytest.raises(ModuleNotFoundError, match="no firmware module"):
        fwload.module("nosuch")
    with pytest.raises(ModuleNotFoundError):
        fwload.module("paycode")  # not a private copy
    assert "config" not in sys.modules or sys.modules["config"] is not config
