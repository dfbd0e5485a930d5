"""The virtual-token supervisor: MicroPython's unix port behind a pseudo-terminal.

Usage: ``Supervisor(Path("tok1")).run()`` (what ``paytoken vdev start --flash tok1``
does). Its first output line is the device path, a symlink to the pty's slave side
that the stock ``mpremote`` and pyserial open like a USB serial board.

The interpreter runs on a second pty of its own, set raw before it starts. Between
the two the supervisor relays bytes and makes the unix port look like a board:

- an interpreter exit (Ctrl-D, ``sys.exit``, ``machine.reset``) is a reboot: it sends
  ``MPY: soft reboot`` and starts a fresh interpreter, back in raw mode if it was in
  raw mode (output is swallowed until the raw banner, as a board prints nothing else);
- Ctrl-C becomes SIGINT while the interpreter has its SIGINT handler installed
  (``SigCgt`` in ``/proc/PID/status``: code is running), and stays a byte otherwise
  (REPL prompt, or ``kbd_intr(-1)``, where a signal would kill the unix port);
- a bare LF gets a CR only in the friendly REPL, never in raw mode or once
  ``mpremote mount`` speaks its binary protocol;
- power (``paytoken.vhw``) is polled: power off kills the interpreter and keeps it dead;
- the board's watchdog (``firmware/sim/wdt.py``: ``wdt.json``, rewritten on each feed) is
  modelled here: not fed for its timeout, it resets the board (a full boot). As on a
  chip it outlives a soft reset and stops on a hard reset or a power cut;
- one supervisor per flash folder: ``vdev.lock`` in the hardware folder is held with
  ``flock`` while it runs (the kernel drops it with the process), a second is refused;
- the interpreter runs with umask 077: what the firmware writes (the config and its
  secrets) is private to the user (0600);
- SIGUSR1 is a hard reset (kill and boot again), SIGTERM/SIGINT a clean stop.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path
from typing import TextIO

from paytoken import upy, vhw
from paytoken.vdev import control

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_MARK = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
MOUNT_MARK = b"__mount()"
BOOT_MARK = b"\x00paytoken-booted\x00"  # the shim's: "/" is the flash folder now
SHIM = Path(__file__).with_name("shim.py")
RESET_EXIT = 66  # exit status of a hard reset (a sim board's reset()): boot main.py
WDT_FILE = "wdt.json"  # the watchdog's feeds (firmware/sim/wdt.py)
LOCK_FILE = "vdev.lock"  # held (flock) by the running supervisor

_MAX_BUF = 1 << 16  # bytes held for a slow side before the other side is paused
_POLL = 0.05  # seconds between looks at power, client presence and child state
_SIGINT_BIT = 1 << (signal.SIGINT - 1)
_LF = re.compile(rb"(?<!\r)\n")


class VdevError(Exception):
    """The virtual token cannot start or run (bad flash folder, missing interpreter)."""


def check_flash(flash: Path) -> None:
    """Refuse a flash folder holding symlinks: they would lead outside it."""
    for dirpath, dirnames, filenames in os.walk(flash):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p.is_symlink():
                raise VdevError(f"flash folder holds a symlink, refused: {p}")


def sigint_installed(pid: int) -> bool:
    """True when process ``pid`` has a handler for SIGINT (the unix port runs code)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & _SIGINT_BIT)
    except OSError:
        pass
    return False


class Supervisor:
    """One virtual token: a client pty, an interpreter on its own pty, the relay."""

    def __init__(
        self,
        flash: Path,
        *,
        board: str = "sim",
        locked: bool = False,
        heapsize: str | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.flash = Path(flash).resolve()
        self.hw = control.hw_folder(self.flash)
        self.board = board
        self.locked = locked
        self.heapsize = heapsize
        self.out = out or sys.stdout
        self.link = control.port_link(self.flash)
        self.proc: subprocess.Popen[bytes] | None = None
        self.im = -1  # interpreter pty master
        self.cm = -1  # client pty master
        self.client = False
        self.raw = False
        self.mounted = False
        self.swallow = b""  # raw reboot: output dropped until the raw banner
        self.swallowing = False
        self.last_out = b""
        self.marks = b""  # tail of output, for markers split across reads
        self.to_dev = bytearray()
        self.to_host = bytearray()
        self.started_at = 0.0
        self.stopping = False
        self.reset_wanted = False
        self.boots = 0
        self._power = True
        self.booted = False
        self.boot_buf = b""
        self.held = b""  # client input while the shim boots
        self.wdt_seen: tuple[int, int] | None = None  # (inode, mtime) of the last feed
        self.wdt_deadline: float | None = None  # monotonic; None: the watchdog is off
        self.wdt_resets = 0
        self._lock_fd = -1

    # ---- interpreter -------------------------------------------------------------

    def _start(self, mode: str) -> None:
        check_flash(self.flash)
        m, s = pty.openpty()
        tty.setraw(s)  # before the child starts: no CR/LF doubling, no echo
        env = dict(os.environ)
        env.update(
            PAYTOKEN_FLASH=str(self.flash),
            PAYTOKEN_BOOT=mode,
            PAYTOKEN_HW=str(self.hw),
            PAYTOKEN_BOARD=self.board,
            MICROPYPATH=".frozen",
        )
        argv = [upy.micropython()]
        if self.heapsize:
            argv += ["-X", f"heapsize={self.heapsize}"]
        argv += ["-i", "-c", SHIM.read_text()]
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=s,
                stdout=s,
                stderr=s,
                cwd=self.flash,
                env=env,
                close_fds=True,
                start_new_session=True,  # a terminal's Ctrl-C must not reach it
                umask=0o077,  # the flash is the token's: its files are the user's only
            )
        finally:
            os.close(s)
        os.set_blocking(m, False)
        self.im = m
        self.raw = False
        self.mounted = False
        self.marks = b""
        self.to_dev.clear()
        self.started_at = time.monotonic()
        self.boots += 1
        self.booted = False
        self.boot_buf = b""
        self._write_state()
        if mode == "raw":
            self.swallowing = True
            self.swallow = b""
            self.to_dev += b"\x01"
        else:
            self.swallowing = False

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.im >= 0:
            os.close(self.im)
            self.im = -1

    def _exited(self) -> None:
        # the interpreter is gone: a reboot, unless the power is off or we stop
        lived = time.monotonic() - self.started_at
        was_raw = self.raw
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(2)  # its pty closed: it is exiting
            except subprocess.TimeoutExpired:
                pass  # a child holding the pty open: killed below
        self._kill()
        if code == RESET_EXIT or not self._powered():
            self._wdt_stop()  # a hard reset or a power cut stops the watchdog
        if self.stopping or not self._powered():
            return
        self._send_host(SOFT_REBOOT)
        if self.locked:
            mode = "locked"
        elif was_raw and code != RESET_EXIT:
            mode = "raw"  # a soft reboot from the raw REPL skips main.py, as on a board
        else:
            mode = "full"
        if mode != "raw" and lived < 0.5:
            time.sleep(0.2)  # a crash loop must not spin
        self._start(mode)

    # ---- relay -------------------------------------------------------------------

    def _send_host(self, data: bytes) -> None:
        if self.client:
            self.to_host += data
            if len(self.to_host) > 4 * _MAX_BUF:  # a client that never reads
                del self.to_host[: len(self.to_host) - 4 * _MAX_BUF]

    def _from_dev(self, data: bytes) -> None:
        if not self.booted:
            self.boot_buf += data
            i = self.boot_buf.find(BOOT_MARK)
            if i < 0:
                return
            data = self.boot_buf[:i] + self.boot_buf[i + len(BOOT_MARK) :]
            self.boot_buf = b""
            self.booted = True
            held, self.held = self.held, b""
            if held:
                self._from_host(held)  # what the client sent while it booted
        if self.swallowing:
            self.swallow = (self.swallow + data)[-4096:]
            i = self.swallow.find(RAW_BANNER)
            if i < 0:
                return
            data = self.swallow[i:]
            self.swallowing = False
            self.swallow = b""
        window = self.marks + data
        base = len(self.marks)
        r = window.rfind(RAW_BANNER)
        f = window.rfind(FRIENDLY_MARK)
        cut = 0
        new_raw = self.raw
        if r >= 0 or f >= 0:
            new_raw = r > f
            cut = max(0, max(r, f) - base)
        head, tail = data[:cut], data[cut:]
        self._send_host(self._cook(head, self.raw) + self._cook(tail, new_raw))
        self.raw = new_raw
        self.marks = window[-64:]
        if data:
            self.last_out = data[-1:]

    def _cook(self, data: bytes, raw: bool) -> bytes:
        if raw or self.mounted or not data:
            if data:
                self.last_out = data[-1:]
            return data
        out = _LF.sub(b"\r\n", data)
        if data[:1] == b"\n" and self.last_out == b"\r":
            out = out[1:]  # the CR came in the previous read
        self.last_out = data[-1:]
        return out

    def _from_host(self, data: bytes) -> None:
        if not self.booted:
            self.held += data  # no Ctrl-C may reach a half-booted shim
            return
        if MOUNT_MARK in data:
            self.mounted = True  # binary file protocol from now until the next boot
        while data:
            i = data.find(b"\x03")
            if i < 0:
                self.to_dev += data
                return
            self.to_dev += data[:i]
            data = data[i + 1 :]
            proc = self.proc
            if proc is not None and proc.poll() is None and sigint_installed(proc.pid):
                self._flush_dev()
                os.kill(proc.pid, signal.SIGINT)
            else:
                self.to_dev += b"\x03"

    def _flush_dev(self) -> None:
        if self.im < 0 or not self.to_dev:
            return
        try:
            n = os.write(self.im, self.to_dev)
            del self.to_dev[:n]
        except BlockingIOError:
            pass
        except OSError:
            pass  # the interpreter is dying; its exit is handled on read

    def _flush_host(self) -> None:
        if not self.client or not self.to_host:
            return
        try:
            n = os.write(self.cm, self.to_host)
            del self.to_host[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._client_gone()

    def _client_gone(self) -> None:
        self.client = False
        self.to_host.clear()

    def _probe_client(self) -> None:
        # no slave open: read gives EIO. A fresh opener gets no stale output.
        try:
            data = os.read(self.cm, 4096)
        except BlockingIOError:
            data = b""
        except OSError as e:
            if e.errno == errno.EIO:
                return
            raise
        self.client = True
        self._drop_stale_output()
        if data:
            self._from_host(data)

    def _drop_stale_output(self) -> None:
        try:
            fd = os.open(self._name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        finally:
            os.close(fd)

    # ---- main loop ---------------------------------------------------------------

    def _open_client(self) -> str:
        m, s = pty.openpty()
        tty.setraw(s)
        name = os.ttyname(s)
        os.close(s)  # open only to name it: a client is whoever opens it next
        os.set_blocking(m, False)
        self.cm = m
        return name

    def _powered(self) -> bool:
        try:
            self._power = control.powered(self.hw)
        except (OSError, ValueError, vhw.VirtualHardwareError):
            pass  # unreadable for a moment: keep the last known state
        return self._power

    # ---- the watchdog ----------------------------------------------------------

    def _wdt_stop(self) -> None:
        self.wdt_seen = self.wdt_deadline = None
        try:
            os.unlink(self.hw / WDT_FILE)
        except FileNotFoundError:
            pass

    def _wdt_poll(self, now: float) -> bool:
        # -> True when the watchdog fired (not fed for its timeout): a reset is due
        try:
            st = os.stat(self.hw / WDT_FILE)
        except FileNotFoundError:
            self.wdt_seen = self.wdt_deadline = None
            return False
        seen = (st.st_ino, st.st_mtime_ns)
        if seen != self.wdt_seen:  # fed (or started): the count starts again
            try:
                ms = float(json.loads((self.hw / WDT_FILE).read_text())["timeout_ms"])
            except (OSError, ValueError, KeyError, TypeError):
                return False  # being replaced: read it on the next poll
            self.wdt_seen = seen
            self.wdt_deadline = now + max(ms, 1.0) / 1000
            return False
        return self.wdt_deadline is not None and now >= self.wdt_deadline

    def _take_lock(self) -> None:
        # flock, not a pid file: the kernel releases it when this process dies
        self.hw.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.hw / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            try:
                pid = int(json.loads((self.hw / control.STATE).read_text())["pid"])
                who = f" (supervisor pid {pid})"
            except (OSError, ValueError, KeyError, TypeError):
                who = ""
            raise VdevError(f"a virtual token already runs on {self.flash}{who}") from None
        self._lock_fd = fd

    def _write_state(self) -> None:
        control.write_state(
            self.flash,
            {"pid": os.getpid(), "pty": self._name, "port": str(self.link), "boots": self.boots},
        )

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGUSR1:
            self.reset_wanted = True
        else:
            self.stopping = True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; print the device path first. Returns the exit code."""
        if not upy.micropython():
            raise VdevError("micropython not found")
        self.flash.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._run()
        finally:
            os.close(self._lock_fd)  # after the clean-up: a successor finds it done
            self._lock_fd = -1
        return 0

    def _run(self) -> None:
        try:
            control.ensure_hw(self.flash, self.board)
            vhw.power_on(self.hw)  # plugging the board in
        except (control.ControlError, vhw.VirtualHardwareError, OSError) as e:
            raise VdevError(f"hardware folder {self.hw}: {e}") from None
        check_flash(self.flash)
        self._wdt_stop()  # plugged in: the watchdog starts off
        name = self._name = self._open_client()
        control.replace_link(self.link, name)
        self._write_state()
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        old_wakeup = signal.set_wakeup_fd(wfd)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
        print(self.link, file=self.out, flush=True)
        try:
            if self._powered():
                self._start("locked" if self.locked else "full")
            self._loop(rfd)
        finally:
            self.stopping = True
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

    def _loop(self, sigfd: int) -> None:
        next_poll = 0.0
        while not self.stopping:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + _POLL
                on = self._powered()
                if not on and self.proc is not None:
                    self._kill()  # a power cut: no goodbye
                    self.held = b""  # nor does a dead board keep input
                    self._wdt_stop()
                elif on and self._wdt_poll(now):
                    self._wdt_stop()  # the watchdog's reset: a hard reset
                    self.wdt_resets += 1
                    self._kill()
                    self._send_host(SOFT_REBOOT)
                    self._start("locked" if self.locked else "full")
                elif on and self.proc is None:
                    self._start("locked" if self.locked else "full")
                if not self.client:
                    self._probe_client()
                if self.proc is not None and self.proc.poll() is not None:
                    self._drain_dev()
                    self._exited()
            if self.reset_wanted:
                self.reset_wanted = False
                self._kill()
                self._wdt_stop()
                if self._powered():
                    self._start("locked" if self.locked else "full")
            rl = [sigfd]
            wl = []
            if self.client and len(self.to_dev) + len(self.held) < _MAX_BUF:
                rl.append(self.cm)
            if self.im >= 0 and len(self.to_host) < _MAX_BUF:
                rl.append(self.im)
            if self.to_dev and self.im >= 0:
                wl.append(self.im)
            if self.to_host and self.client:
                wl.append(self.cm)
            r, w, _ = select.select(rl, wl, [], _POLL)
            if sigfd in r:
                try:
                    os.read(sigfd, 64)
                except BlockingIOError:
                    pass
            if self.im in r:
                try:
                    data = os.read(self.im, 65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    self._drain_dev()
                    self._exited()
                    continue
                if data:
                    self._from_dev(data)
            if self.client and self.cm in r:
                try:
                    data = os.read(self.cm, 65536)
                    self._from_host(data)
                except BlockingIOError:
                    pass
                except OSError:
                    self._client_gone()
            self._flush_dev()
            self._flush_host()

    def _drain_dev(self) -> None:
        while self.im >= 0:
            try:
                data = os.read(self.im, 65536)
            except OSError:
                return
            if not data:
                return
            self._from_dev(data)
