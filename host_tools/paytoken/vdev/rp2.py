"""A virtual token on an emulated RP2040: the real rp2 MicroPython in rp2040js, behind a pty.

Usage: ``Rp2Supervisor(Path("tok1"), board="pico").run()`` (what ``paytoken vdev start
--flash tok1 --board pico [--image FILE.uf2]`` does). Like the sim supervisor it prints
the device path ``tok1.hw/tty`` first and keeps ``tok1.hw/vdev.json``; stock ``mpremote``
and pyserial open it.

Parts: the Node runner ``rp2emu.mjs`` (the chip: core, flash, USB CDC, I2C peripheral,
GPIO) and this process, which owns everything outside the chip: the chip models of the
board's I2C devices (the sim boards' own, ``firmware/sim``, run here in CPython on the
hardware folder), the button (a press in ``button`` is a low pulse on the board's
``BUTTON_PIN``), USB presence (``usb.json`` drives ``VBUS_PIN``), the power (``power.json``:
off kills the chip at once, as a cut does), and the flash, an image file
``tok1/flash.img`` that survives restarts. The materials (boot ROM, stock image) come
from ``PAYTOKEN_RP2_DIR`` (default ``../shared/micropython-rp2`` from the repo root);
rp2040js from ``emu/node_modules`` (``make`` runs ``npm ci`` in ``emu/``).
"""

from __future__ import annotations

import errno
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from paytoken import upy, vhw
from paytoken.vdev import control

REPO = upy.REPO
RUNNER = Path(__file__).with_name("rp2emu.mjs")
FLASH_IMAGE = "flash.img"
STOCK_UF2 = "RPI_PICO-v1.28.0.uf2"
BOOTROM = "rp2040-bootrom-b1.bin"
STATS = "emu.json"  # the emulator's counters, written on SIGUSR2 (stats())
PRESS_MS = 120  # a press holds the button pin low this long (emulated milliseconds)
_POLL = 0.1  # power, button and USB files, ten times a second (idle: 0.55 % of a core, 0.8 % at 0.05 s)
_MAX_BUF = 1 << 16


class Rp2Error(Exception):
    """The emulated Pico cannot start: materials, Node or rp2040js missing, bad image."""


@dataclass
class Materials:
    """Where the emulator's parts are."""

    folder: Path
    bootrom: Path
    stock_uf2: Path
    node: str
    modules: Path


def materials_dir() -> Path:
    """``PAYTOKEN_RP2_DIR``, else ``../shared/micropython-rp2`` from the repo root."""
    d = os.environ.get("PAYTOKEN_RP2_DIR")
    return Path(d) if d else (REPO.parent / "shared" / "micropython-rp2").resolve()


def modules_dir() -> Path:
    """The folder whose ``node_modules`` holds rp2040js (``PAYTOKEN_RP2EMU_MODULES``, else ``emu/``)."""
    d = os.environ.get("PAYTOKEN_RP2EMU_MODULES")
    return Path(d) if d else REPO / "emu"


def missing() -> list[str]:
    """What the emulated Pico lacks here, each with how to get it (empty: all there)."""
    out = []
    d = materials_dir()
    for name in (BOOTROM, STOCK_UF2):
        if not (d / name).is_file():
            out.append(f"{d / name} (set PAYTOKEN_RP2_DIR to a folder holding the RP2040 B1 boot "
                       f"ROM and the stock MicroPython {STOCK_UF2}; see docs/RP2.md)")
    if not shutil.which("node"):
        out.append("node (Node.js 18 or later: apt-get install nodejs)")
    pkg = modules_dir() / "node_modules" / "rp2040js" / "package.json"
    if not pkg.is_file():
        out.append(f"{pkg} (run `make emu` or `npm ci --prefix emu`)")
    return out


def find_materials() -> Materials:
    """The materials, or ``Rp2Error`` naming each missing part and how to get it."""
    gone = missing()
    if gone:
        raise Rp2Error("emulated Pico unavailable, missing: " + "; ".join(gone))
    d = materials_dir()
    return Materials(d, d / BOOTROM, d / STOCK_UF2, shutil.which("node") or "node", modules_dir())


@dataclass
class BoardSpec:
    """What the emulator needs from a board file (read without running it)."""

    name: str
    width: int
    height: int
    rtc: str
    i2c: tuple[int, int, int]
    display_addr: int
    button: int
    vbus: int | None
    button_high: bool = False  # the pin reads high while pressed (BUTTON_ACTIVE_HIGH)
    hold: int | None = None  # a power latch's hold pin (HOLD_PIN): low on battery = off


def board_spec(name: str) -> BoardSpec:
    """The constants of ``boards/<name>.py``; ``Rp2Error`` unless it is an RP2040 board."""
    from paytoken.station import deploy as deploy_mod

    try:
        b = deploy_mod.load_board(name)
    except deploy_mod.DeployError as e:
        raise Rp2Error(str(e)) from None
    if b.family != "rp2040":
        raise Rp2Error(f"board {name!r} is not an RP2040 board (family {b.family or 'unknown'})")
    c = deploy_mod._board_consts(b.path, ("WIDTH", "HEIGHT", "RTC", "I2C_ID", "SDA", "SCL",
                                          "DISPLAY_ADDR", "BUTTON_PIN", "VBUS_PIN",
                                          "BUTTON_ACTIVE_HIGH", "HOLD_PIN"))
    try:
        return BoardSpec(name, int(c["WIDTH"]), int(c["HEIGHT"]), str(c["RTC"]),
                         (int(c["I2C_ID"]), int(c["SDA"]), int(c["SCL"])),
                         int(c.get("DISPLAY_ADDR", 0x3C)), int(c["BUTTON_PIN"]),
                         None if c.get("VBUS_PIN") is None else int(c["VBUS_PIN"]),
                         bool(c.get("BUTTON_ACTIVE_HIGH", False)),
                         None if c.get("HOLD_PIN") is None else int(c["HOLD_PIN"]))
    except (KeyError, TypeError, ValueError) as e:
        raise Rp2Error(f"board {name!r}: constant missing or not a literal: {e}") from None


class ChipModels:
    """The board's I2C devices: the sim boards' models, on the hardware folder."""

    def __init__(self, hw: Path, spec: BoardSpec) -> None:
        sim = vhw._sim()
        from importlib import import_module

        rtc = import_module(sim.__name__ + ".rtc")
        oled = import_module(sim.__name__ + ".oled")
        bus = import_module(sim.__name__ + ".bus")
        self.store = sim.store
        self.folder = str(hw)
        self.bus = bus.I2CBus(self.folder)
        self.display = oled.SSD1306Model(spec.width, spec.height, self.folder)
        self.devices: dict[int, Any] = {spec.display_addr: self.display}
        self._latched: float | None = None
        self.rtc = None
        if spec.rtc in ("ds3231", "pcf8563"):
            self.rtc = rtc.RTCModel(folder=self.folder, clock=self._world)
            self.devices[self.rtc.addr] = self.rtc
        self._one = bytearray(1)

    def _world(self) -> float:
        # A chip latches its time registers at the start of a read.
        return self._latched if self._latched is not None else float(self.store.world_time(self.folder))

    def write(self, addr: int, data: bytes) -> None:
        self._latched = None
        self.bus.transactions += 1
        self.bus.bytes += 1 + len(data)
        d = self.devices.get(addr)
        if d is not None and data:
            if d.xfer_write((data,)):
                self.bus.flush()

    def read(self, addr: int, first: bool) -> int:
        if first:
            self._latched = float(self.store.world_time(self.folder))
            self.bus.transactions += 1
            self.bus.bytes += 1
        self.bus.bytes += 1
        d = self.devices.get(addr)
        if d is None:
            return 0xFF
        d.xfer_read(self._one)
        return self._one[0]


class Rp2Supervisor:
    """One emulated Pico: the runner, the chip models, the client pty, the relay."""

    def __init__(self, flash: Path, *, board: str = "pico", image: Path | None = None,
                 fast_idle: bool = False, trace: Path | None = None, out: TextIO | None = None) -> None:
        self.flash = Path(flash).resolve()
        self.hw = control.hw_folder(self.flash)
        self.spec = board_spec(board)
        self.mat = find_materials()
        self.image = Path(image).resolve() if image else self.mat.stock_uf2
        if not self.image.is_file():
            raise Rp2Error(f"image {self.image} not found")
        if self.image.read_bytes()[:4] != b"UF2\n":
            raise Rp2Error(f"image {self.image} is not a UF2 file")
        self.fast_idle = fast_idle
        self.trace = open(trace, "a") if trace else None  # noqa: SIM115 (closed in run)
        self.out = out or sys.stdout
        self.link = control.port_link(self.flash)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctl = self.ev = self.reply = -1
        self.ev_buf = b""
        self.cm = -1
        self.client = False
        self.to_dev = bytearray()
        self.to_host = bytearray()
        self.boots = 0
        self.stopping = False
        self.reset_wanted = False
        self._power = True
        self._usb: bool | None = None
        self._presses = 0
        self._cut_now = False
        self.models: ChipModels | None = None
        self.stats: dict[str, Any] = {}

    # ---- the chip ----------------------------------------------------------------

    def _start(self) -> None:
        vhw.power_on(self.hw)  # the RTC model's supply, as the sim board's start does
        self.models = ChipModels(self.hw, self.spec)
        self._presses = _size(self.hw / "button")  # presses while off do not count
        pins: dict[int, int] = {}
        usb = self._usb_attached()
        self._usb = usb
        if self.spec.vbus is not None:
            pins[self.spec.vbus] = int(usb)
        cfg = {"modules": str(self.mat.modules), "bootrom": str(self.mat.bootrom),
               "uf2": str(self.image), "flash": str(self.flash / FLASH_IMAGE),
               "i2c": list(self.spec.i2c), "addrs": sorted(self.models.devices), "pins": pins,
               "fastIdle": self.fast_idle, "hold": self.spec.hold}
        ctl_r, ctl_w = os.pipe()
        ev_r, ev_w = os.pipe()
        rep_r, rep_w = os.pipe()
        # the child's fds 3, 4, 5: control in, events out, I2C replies in
        fds = {3: ctl_r, 4: ev_w, 5: rep_r}

        def child_fds() -> None:
            for target, fd in fds.items():
                os.dup2(fd, target)
                os.set_inheritable(target, True)

        err = open(str(self.hw / "emu.log"), "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [self.mat.node, str(RUNNER), "--config", json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                pass_fds=(), preexec_fn=child_fds, close_fds=False, start_new_session=True)
        finally:
            err.close()
            for fd in (ctl_r, ev_w, rep_r):
                os.close(fd)
        self.ctl, self.ev, self.reply = ctl_w, ev_r, rep_w
        os.set_blocking(self.ev, False)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.to_dev.clear()
        self.ev_buf = b""
        self.boots += 1
        self._write_state()

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()  # no goodbye: a power cut
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
            self.proc = None
        for fd in (self.ctl, self.ev, self.reply):
            if fd >= 0:
                os.close(fd)
        self.ctl = self.ev = self.reply = -1
        if self.models is not None:
            self.models.bus.flush()
            self.models = None

    def _control(self, line: str) -> None:
        if self.ctl >= 0:
            try:
                os.write(self.ctl, (line + "\n").encode())
            except OSError:
                pass

    def _events(self) -> None:
        try:
            data = os.read(self.ev, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return
        self.ev_buf += data
        *lines, self.ev_buf = self.ev_buf.split(b"\n")
        for raw in lines:
            self._event(raw.decode("latin-1").split(" "))

    def _event(self, f: list[str]) -> None:
        m = self.models
        if f[0] == "R" and m is not None:
            v = m.read(int(f[1]), f[2] == "1")
            os.write(self.reply, b"%d\n" % v)
        elif f[0] == "W" and m is not None:
            data = b"" if f[2] == "-" else bytes.fromhex(f[2])
            m.write(int(f[1]), data)
            if self.trace and int(f[1]) == self.spec.display_addr:
                self._trace({"ev": "W", "hex": f[2], **_stamp(f[3:6])})
        elif f[0] == "B":
            if f[2] != "power-on":  # a watchdog reboot inside the runner
                self.boots += 1
                self._write_state()
            self._trace({"ev": "boot", "n": int(f[1]), "reason": f[2], **_stamp(f[3:6])})
        elif f[0] == "S":
            self.stats = json.loads(" ".join(f[1:]))
            self._trace({"ev": "stats", **self.stats})
            vhw._store().save(str(self.hw), STATS, self.stats)
        elif f[0] == "P":
            self._trace({"ev": "press", **_stamp(f[1:4])})
        elif f[0] == "H":
            self._trace({"ev": "hold", "level": int(f[1]), **_stamp(f[2:5])})
            if f[1] == "0" and not self._usb_attached():
                # A power latch let go on battery: the supply goes. Off "by the latch",
                # as the sim-latch board's (vhw.latched_off): the next press powers the
                # board up again (vhw.press). With VBUS present the board stays up.
                vhw.power_off(self.hw)
                vhw._store().save(str(self.hw), "power.json", {"on": False, "latch": True})
                self._power = False
                self._cut_now = True  # the loop kills the chip at once (not mid-read)

    def _trace(self, rec: dict[str, Any]) -> None:
        if self.trace:
            self.trace.write(json.dumps(rec) + "\n")
            self.trace.flush()

    # ---- the world outside the chip ----------------------------------------------

    def _usb_attached(self) -> bool:
        try:
            u = self.models.store.load(str(self.hw), "usb.json", None) if self.models else None
        except OSError:
            return True if self._usb is None else self._usb
        return True if u is None else bool(u.get("attached", True))

    def _powered(self) -> bool:
        try:
            self._power = control.powered(self.hw)
        except (OSError, ValueError, vhw.VirtualHardwareError):
            pass
        return self._power

    def _poll_world(self) -> None:
        n = _size(self.hw / "button")
        if n > self._presses:
            self._presses = n
            self._control(f"press {self.spec.button} {PRESS_MS} {int(self.spec.button_high)}")
        if self.spec.vbus is not None:
            usb = self._usb_attached()
            if usb != self._usb:
                self._usb = usb
                self._control(f"pin {self.spec.vbus} {int(usb)}")

    # ---- client side -------------------------------------------------------------

    def _open_client(self) -> str:
        m, s = pty.openpty()
        tty.setraw(s)
        name = os.ttyname(s)
        os.close(s)
        os.set_blocking(m, False)
        self.cm = m
        return name

    def _probe_client(self) -> None:
        try:
            data = os.read(self.cm, 4096)
        except BlockingIOError:
            data = b""
        except OSError as e:
            if e.errno == errno.EIO:
                return
            raise
        self.client = True
        try:  # a fresh opener gets no stale output
            fd = os.open(self._name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            termios.tcflush(fd, termios.TCIFLUSH)
            os.close(fd)
        except OSError:
            pass
        self.to_dev += data

    def _write_state(self) -> None:
        control.write_state(self.flash, {"pid": os.getpid(), "pty": self._name, "port": str(self.link),
                                         "boots": self.boots, "board": self.spec.name, "emulator": "rp2040js",
                                         "image": str(self.image)})

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGUSR1:
            self.reset_wanted = True
        elif signum == signal.SIGUSR2:
            self._control("stats")
        else:
            self.stopping = True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; print the device path first."""
        self.flash.mkdir(parents=True, exist_ok=True)
        try:
            if not (self.hw / "hw.json").exists():
                vhw.create(self.hw, board=self.spec.name, rtc_chip=self.spec.rtc,
                           size=(self.spec.width, self.spec.height))
            vhw.power_on(self.hw)
        except (vhw.VirtualHardwareError, OSError) as e:
            raise Rp2Error(f"hardware folder {self.hw}: {e}") from None
        name = self._name = self._open_client()
        control.replace_link(self.link, name)
        self._write_state()
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        old_wakeup = signal.set_wakeup_fd(wfd)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)}
        try:
            if self._powered():
                self._start()
            print(self.link, file=self.out, flush=True)
            self._loop(rfd)
        finally:
            self.stopping = True
            if self.proc is not None and self.proc.poll() is None:
                self._control("stats")
                time.sleep(0.05)
                self._events()
            self._kill()
            signal.set_wakeup_fd(old_wakeup)
            for s, h in old.items():
                signal.signal(s, h)
            os.close(rfd)
            os.close(wfd)
            os.close(self.cm)
            control.clear_state(self.flash, os.getpid())
            if self.link.is_symlink() and os.readlink(self.link) == name:
                self.link.unlink()
            if self.trace:
                self.trace.close()
        return 0

    def _loop(self, sigfd: int) -> None:
        next_poll = 0.0
        while not self.stopping:
            now = time.monotonic()
            if now >= next_poll or self._cut_now:
                self._cut_now = False
                next_poll = now + _POLL
                on = self._powered()
                if not on and self.proc is not None:
                    self._kill()
                elif on and self.proc is None:
                    self._start()
                if self.proc is not None:
                    self._poll_world()
                if not self.client:
                    self._probe_client()
                if self.proc is not None and self.proc.poll() is not None:
                    self._events()
                    self._kill()  # the runner died: a crash, started again on the next poll
                    time.sleep(0.2)
            if self.reset_wanted:
                self.reset_wanted = False
                self._kill()
                if self._powered():
                    self._start()
            p = self.proc
            rl = [sigfd]
            wl = []
            if self.client and len(self.to_dev) < _MAX_BUF:
                rl.append(self.cm)
            if p is not None and p.stdout is not None:
                rl += [self.ev]
                if len(self.to_host) < _MAX_BUF:
                    rl.append(p.stdout.fileno())
                if self.to_dev and p.stdin is not None:
                    wl.append(p.stdin.fileno())
            if self.to_host and self.client:
                wl.append(self.cm)
            r, w, _ = select.select(rl, wl, [], _POLL)
            if sigfd in r:
                try:
                    os.read(sigfd, 64)
                except BlockingIOError:
                    pass
            if p is not None and self.ev in r:
                self._events()
            if p is not None and p.stdout is not None and p.stdout.fileno() in r:
                try:
                    data = os.read(p.stdout.fileno(), 65536)
                except BlockingIOError:
                    data = b""
                if data and self.client:
                    self.to_host += data
            if self.client and self.cm in r:
                try:
                    self.to_dev += os.read(self.cm, 65536)
                except BlockingIOError:
                    pass
                except OSError:
                    self.client = False
                    self.to_host.clear()
            if self.proc is not None and self.proc.stdin is not None and self.to_dev:
                try:
                    n = os.write(self.proc.stdin.fileno(), self.to_dev)
                    del self.to_dev[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    pass
            if self.client and self.to_host:
                try:
                    n = os.write(self.cm, self.to_host)
                    del self.to_host[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    self.client = False
                    self.to_host.clear()


def _stamp(f: list[str]) -> dict[str, int]:
    return {"t_ns": int(f[0]), "wire_ns": int(f[1]), "idle_ns": int(f[2])}


def stats(flash: Path, timeout: float = 30.0) -> dict[str, Any]:
    """The running emulator's counters (SIGUSR2 to the supervisor; it writes ``emu.json``):
    ``emu_ns`` since power-on, ``cycles``, ``idle_ns``, ``i2c_wire_ns``, ``boots``, ``clk_sys``."""
    st = control.read_state(flash)
    p = control.hw_folder(flash) / STATS
    before = p.stat().st_mtime_ns if p.exists() else 0
    os.kill(int(st["pid"]), signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.exists() and p.stat().st_mtime_ns != before:
            return dict(json.loads(p.read_text()))
        time.sleep(0.02)
    raise control.ControlError(f"no emulator statistics from {flash} within {timeout:g} s")


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0
