"""By hand (not CI): boot the frozen image in rp2040js and try to reach a locked token's REPL.

Usage: .venv/bin/python image/prove_emu.py RUNNER.mjs EMU_DIR [UF2]
       .venv/bin/python image/prove_emu.py --latch RUNNER.mjs EMU_DIR build/firmware/paytoken-pico-latch.uf2

RUNNER: a copy of ../shared/micropython-rp2/reference/rp2run.mjs patched with
image/rp2run-h6.patch (cp it to build/emu/, `patch < image/rp2run-h6.patch`), four changes: a
DS3231 that holds a valid time at 0x68 (the reference has a dummy there); GP24 (VBUS)
high, or low with RP2RUN_NO_VBUS; host input let through from USB configuration when
RP2RUN_GATE_AT_USB is set (the reference holds it until the first ">>> ", which a locked
token never prints); with RP2RUN_LATCH, GP22 (pico-latch's HOLD_PIN) logged, and its fall
without VBUS stops the chip (the supply going). EMU_DIR holds node_modules/rp2040js
(1.4.1). Not CI: the product's emulated Pico (`paytoken vdev start --board pico --image`)
runs these checks there.

1. A fresh flash: the image boots, `fwimage` is frozen and first on sys.path, `deploy`
   copies nothing, INFO (raw REPL probe) says image=<id>; a locked config is written and
   `ops.lock` reboots it: INFO answers locked, the raw REPL is refused.
2. Power-on from that flash with Ctrl-C, Ctrl-A, Ctrl-D, Ctrl-B and Ctrl-E bytes queued
   before the chip starts and sent every few ms for 20 s: no ">>> ", no "raw REPL" ever
   comes out, and INFO still answers locked=1 afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "firmware"))
from fwkit import token_config  # noqa: E402
from paytoken.station import deploy, ops  # noqa: E402
from paytoken.station.transport import Device  # noqa: E402

REF = REPO.parent / "shared" / "micropython-rp2"


def start(runner: str, emu: str, uf2: str, work: Path, flash_in: Path | None, gate: bool,
          extra: list[str] | None = None):
    port = work / "port"
    env = dict(os.environ)
    if gate:
        env["RP2RUN_GATE_AT_USB"] = "1"
    args = [sys.executable, str(REF / "reference" / "rp2pty.py"), "--port-file", str(port), "--",
            "node", runner, "--emu-dir", emu, "--bootrom", str(REF / "rp2040-bootrom-b1.bin"),
            "--uf2", uf2, "--flash-out", str(work / "flash.bin")]
    if flash_in:
        args += ["--flash-in", str(flash_in)]
    args += extra or []
    err = open(work / f"relay-{int(time.time() * 1000)}.err", "w")
    # the relay prints "PTY /dev/pts/N" at once (its --port-file waits for the device to
    # speak, which a token showing its screen never does)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    line = proc.stdout.readline().split()
    assert line and line[0] == "PTY", line
    return proc, line[1], Path(err.name)


def stop(proc):
    proc.terminate()
    proc.wait(20)


def main() -> int:
    runner, emu = sys.argv[1], sys.argv[2]
    uf2 = sys.argv[3] if len(sys.argv) > 3 else str(REPO / "build" / "firmware" / "paytoken-pico.uf2")
    work = Path(tempfile.mkdtemp(prefix="h6-prove-"))
    print("work folder", work)
    # 1. fresh flash: factory state, then lock
    proc, port, _ = start(runner, emu, uf2, work, None, gate=False)
    try:
        with Device(port, timeout=20) as dev:
            dev.enter_raw()
            print("sys.path, image:", dev.eval("(__import__('sys').path, __import__('fwimage').ID)"))
            r = deploy.deploy(dev, "pico")
            print(f"deploy: image={r.image} copied={r.copied} removed={r.removed}")
            st = ops.probe(dev)
            print("probe:", st)
            ops.write_config(dev, token_config())
            # ops.lock's steps, with the emulator's time: it runs at 1-10 % of a Pico's
            # speed on a loaded machine, so the station's 8 s boot deadline is too short
            ops.update_config(dev, "lock", locked=True)
            dev.reboot()
            st = None
            for _ in range(12):
                try:
                    st = ops.info(dev, timeout=10.0)
                    break
                except ops.OpsError:
                    continue
            print("after lock:", st)
            assert st.locked and st.image and st.image.startswith("pico-"), st
            assert not ops.repl_open(dev, timeout=10.0), "a locked token gave a raw REPL"
    finally:
        stop(proc)
    flash = work / "flash.bin"
    locked_flash = work / "locked.bin"
    locked_flash.write_bytes(flash.read_bytes())
    # 2. power-on with control bytes queued before the chip runs, and every 5 ms after
    proc, port, errlog = start(runner, emu, uf2, work, locked_flash, gate=True)
    import serial

    got = bytearray()
    try:
        s = serial.Serial(port, timeout=0)
        burst = b"\x03\x03\x01\x03\x04\x02\x05\x03"
        s.write(burst * 8)
        t_end = time.monotonic() + 20
        sent = len(burst) * 8
        t0 = time.monotonic()
        while time.monotonic() < t_end:
            s.write(burst)
            sent += len(burst)
            got += s.read(4096)
            # every 5 ms for the first 3 s (the boot), then every 100 ms: the token reads
            # its input a byte at a time at emulated speed
            time.sleep(0.005 if time.monotonic() - t0 < 3 else 0.1)
        s.write(b"\r\nINFO\r\n")
        t_end = time.monotonic() + 180
        while b"OK id=" not in got and time.monotonic() < t_end:
            got += s.read(4096)
            time.sleep(0.1)
        time.sleep(1)
        got += s.read(65536)
        s.close()
    finally:
        stop(proc)
    text = got.decode("latin1")
    log = errlog.read_text()
    print(f"sent {sent} control bytes over 20 s from power-on; the token wrote {len(got)} bytes: {bytes(got)!r}")
    print("last lines:", [ln for ln in text.replace("\r", "").split("\n") if ln][-3:])
    print("relay log:", [ln for ln in log.splitlines() if "invalid SIO" not in ln])
    assert ">>>" not in text and "raw REPL" not in text, "a REPL prompt came out"
    assert "REPL prompt" not in log
    info = [ln for ln in text.replace("\r", "").split("\n") if ln.startswith("OK id=")]
    assert info and "locked=1" in info[-1] and "image=pico-" in info[-1], info
    print("PROVED: no REPL; INFO:", info[-1])
    return 0




def prove_latch(runner: str, emu: str, uf2: str) -> int:
    """pico-latch: on battery the firmware holds GP22 from its first board call and lets
    go when the display time ends (the runner's RP2RUN_LATCH model then cuts the chip)."""
    work = Path(tempfile.mkdtemp(prefix="h6-latch-"))
    print("work folder", work)
    proc, port, _ = start(runner, emu, uf2, work, None, gate=False)
    try:
        with Device(port, timeout=60) as dev:
            dev.enter_raw()
            print("board:", dev.eval("(__import__('board').NAME, __import__('fwimage').ID)"))
            ops.write_config(dev, token_config())
    finally:
        stop(proc)
    os.environ.update(RP2RUN_LATCH="1", RP2RUN_NO_VBUS="1")
    t0 = time.monotonic()
    proc, port, errlog = start(runner, emu, uf2, work, work / "flash.bin", gate=True, extra=["--fast-idle"])
    try:
        proc.wait(900)
    finally:
        if proc.poll() is None:
            stop(proc)
    log = [ln for ln in errlog.read_text().splitlines() if "invalid SIO" not in ln]
    print("\n".join(log))
    print(f"wall {time.monotonic() - t0:.0f} s")
    held = [ln for ln in log if "GP22 high" in ln]
    off = [ln for ln in log if "GP22 low" in ln and "supply is off" in ln]
    assert held and off, "no hold/release seen"
    print("PROVED: the latch was held and released")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--latch":
        raise SystemExit(prove_latch(*sys.argv[2:5]))
    raise SystemExit(main())
