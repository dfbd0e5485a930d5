"""paytoken deploy onto virtual tokens: by hash, atomic per file, refusing a wrong board."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from paytoken import upy, vhw
from paytoken.station import deploy as dp
from paytoken.station.transport import Device, DeviceError
from vdevkit import paytoken
from waits import STEP, bound

pytestmark = pytest.mark.timeout(180)


def _flash_state(flash: Path) -> dict[str, str]:
    """Device path -> SHA-256 of every file in the flash folder (read on the host)."""
    out = {}
    for p in flash.rglob("*"):
        if p.is_file():
            out["/" + p.relative_to(flash).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _assert_consistent(flash: Path, built: dict[str, bytes]) -> None:
    state = _flash_state(flash)
    for path, data in built.items():
        assert state.get(path) == hashlib.sha256(data).hexdigest(), path
    assert not [p for p in state if p.endswith(".tmp")]
    manifest = json.loads((flash / ".deploy.json").read_text())
    assert manifest["files"] == {p: hashlib.sha256(d).hexdigest() for p, d in built.items()}


def test_cold_then_warm_copies_only_what_changed(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    board = dp.load_board("sim")
    built = dp.build(board)
    # the selection: firmware/sim only for sim boards, main.py as source, board file
    assert "/board.py" in built and "/main.py" in built and "/sim/rtc.mpy" in built
    assert built["/board.py"] == (upy.BOARDS_DIR / "sim.py").read_bytes()
    assert all(d[:2] == b"M\x06" for p, d in built.items() if p.endswith(".mpy"))
    assert "/sim/rtc.mpy" not in dp.build(dp.load_board("pico"))

    with Device(t.port, timeout=bound(STEP)) as dev:
        cold = dp.deploy(dev, board)
        assert len(cold.copied) == len(built) and cold.unchanged == []
        _assert_consistent(t.flash, built)
        warm = dp.deploy(dev, board)
        assert warm.copied == [] and len(warm.unchanged) == len(built) and warm.removed == []
        assert warm.manifest_ok

        # the device's files changed behind the manifest's back: those two only
        (t.flash / "qr.mpy").write_bytes(b"garbage")
        (t.flash / "ui.mpy").unlink()
        (t.flash / "app.py").write_text("raise SystemExit")  # would shadow app.mpy
        again = dp.deploy(dev, board)
        assert again.copied == ["/qr.mpy", "/ui.mpy"]
        assert again.removed == ["/app.py"]
        assert not again.manifest_ok
        _assert_consistent(t.flash, built)

        # the deployed firmware runs: board file, sim models over the hardware folder
        assert dev.eval("__import__('board').NAME") == "sim"
        src = (upy.FIRMWARE_DIR / "fwversion.py").read_text()
        version = dev.eval("__import__('fwversion').VERSION")
        assert f'VERSION = "{version}"' in src


def test_source_change_and_removed_module(vdevs, tmp_path: Path) -> None:
    fw = tmp_path / "fw"
    shutil.copytree(upy.FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
    t = vdevs(tmp_path / "tok")
    board = dp.load_board("sim")
    with Device(t.port, timeout=bound(STEP)) as dev:
        dp.deploy(dev, board, firmware_dir=fw)
        (fw / "extra.py").write_text("X = 1\n")
        with open(fw / "fwversion.py", "a") as f:
            f.write("\n\ndef _deploy_test():\n    return 1\n")
        r = dp.deploy(dev, board, firmware_dir=fw)
        assert sorted(r.copied) == ["/extra.mpy", "/fwversion.mpy"]
        assert dev.eval("__import__('extra').X") == 1
        (fw / "extra.py").unlink()
        r = dp.deploy(dev, board, firmware_dir=fw)
        assert r.copied == [] and r.removed == ["/extra.mpy"]
        assert not (t.flash / "extra.mpy").exists()
        _assert_consistent(t.flash, dp.build(board, fw))


def test_wrong_board_refused(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    for name in ("pico", "esp32-devkitc"):
        r = paytoken("deploy", "--port", t.port, "--board", name)
        assert r.returncode == 1
        assert "wrong board" in r.stderr and name in r.stderr
    assert list(t.flash.iterdir()) == []  # nothing written
    r = paytoken("deploy", "--port", t.port, "--board", "nosuch")
    assert r.returncode == 1 and "no board 'nosuch'" in r.stderr
    r = paytoken("deploy", "--port", str(tmp_path / "absent"), "--board", "sim")
    assert r.returncode == 1 and "cannot open" in r.stderr


def test_cli_json(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    r = paytoken("deploy", "--port", t.port, "--board", "sim-128x32", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["board"] == "sim-128x32" and len(doc["copied"]) == len(dp.build(dp.load_board("sim-128x32")))
    assert "WIDTH = 128" in (t.flash / "board.py").read_text()
    assert "HEIGHT = 32" in (t.flash / "board.py").read_text()


def test_cut_copy_leaves_no_half_file_and_redeploy_is_consistent(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    board = dp.load_board("sim")
    built = dp.build(board)
    # 1. the station dies in the middle of a deploy: its end of the pty closes
    proc = subprocess.Popen(
        [sys.executable, "-m", "paytoken", "deploy", "--port", t.port, "--board", "sim"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    for line in proc.stderr:
        if "[8/" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    state = _flash_state(t.flash)
    for path, digest in state.items():
        if not path.endswith(".tmp"):  # whatever is under a real name is whole
            assert digest == hashlib.sha256(built[path]).hexdigest(), path
    assert len([p for p in state if p in built]) < len(built)

    # 2. a big file cut mid-copy: only the temp file is partial, the old file stays
    blob = os.urandom(300_000)
    (t.flash / "big.bin").write_bytes(b"old")
    (tmp_path / "blob").write_bytes(blob)
    code = (
        "from paytoken.station.transport import Device\n"
        f"d = Device({t.port!r}, timeout=30)\n"
        f"d.put(open({str(tmp_path / 'blob')!r}, 'rb').read(), '/big.bin')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    tmp = t.flash / "big.bin.tmp"
    end = time.monotonic() + bound(120)
    while time.monotonic() < end and (not tmp.exists() or tmp.stat().st_size < 50_000):
        time.sleep(0.005)
    proc.kill()
    proc.wait(10)
    assert (t.flash / "big.bin").read_bytes() == b"old"
    assert 0 < tmp.stat().st_size < len(blob)
    with Device(t.port, timeout=bound(STEP)) as dev:
        dev.put(blob, "/big.bin")
        assert (t.flash / "big.bin").read_bytes() == blob and not tmp.exists()

    # 3. the token loses power in the middle of a deploy
    (t.flash / "qr.mpy").unlink(missing_ok=True)
    for p in list(t.flash.rglob("*.mpy"))[:10]:
        p.unlink()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with Device(t.port, timeout=bound(10)) as dev:
                dp.deploy(dev, board, progress=lambda p, i, n: i == 2 and vhw.power_off(t.hw))
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    th = threading.Thread(target=run)
    th.start()
    th.join(bound(120))
    assert not th.is_alive()
    assert errors and isinstance(errors[0], DeviceError)
    vhw.power_on(t.hw)
    with Device(t.port, timeout=bound(STEP)) as dev:
        final = dp.deploy(dev, board)
    assert final.copied  # it finished the job
    _assert_consistent(t.flash, built)
