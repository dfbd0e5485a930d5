"""The station's device transport: one narrow, time-bounded seam to a token's serial port.

Usage::

    with Device("/dev/ttyACM0", timeout=10) as dev:
        dev.eval("1 + 1")                      # -> 2 (raw REPL, repr parsed)
        dev.put(b"...", "/app.mpy")            # temp file, hash check, rename
        dev.line("INFO")                       # locked line protocol -> "OK id=..."

It opens real boards and virtual tokens alike with mpremote's ``SerialTransport``.
Every call has a deadline: the serial object is wrapped so that each read, write and
poll past the deadline raises, whatever mpremote's own loops would have waited for
(a pty has no read timeout in mpremote). Every failure leaves as one ``DeviceError``
that names the port and the operation, never the code or data sent (they may hold
secrets).
"""

from __future__ import annotations

import binascii
import hashlib
import math
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from paytoken import literal

DEFAULT_TIMEOUT = 10.0
_CHUNK = 3072  # bytes of file data per exec (4 KiB of base64)
_POLL = 0.02  # the serial read timeout under our own deadline loop
_RAW_TRY = 3.0  # seconds of the first try to reach the raw REPL; each next try doubles
_NEVER = 1e9  # mpremote's own overall timeout, left to ours
_QUIET = 0.05  # seconds of silence that end stale input before a protocol line


class DeviceError(Exception):
    """A device failed, timed out, or refused: the message names the port and the step."""


class _Expired(Exception):
    pass


class _Bounded:
    """A pyserial object whose reads, writes and polls stop at ``deadline``."""

    def __init__(self, ser: serial.Serial) -> None:
        self._s = ser
        self.deadline = math.inf

    def _check(self) -> None:
        if time.monotonic() >= self.deadline:
            raise _Expired

    def read(self, n: int = 1) -> bytes:
        # mpremote expects read(n) to return n bytes (it has no timeout on a pty)
        buf = b""
        while len(buf) < n:
            self._check()
            buf += self._s.read(n - len(buf))
        return buf

    def write(self, data: bytes) -> int | None:
        self._check()
        return self._s.write(data)

    def inWaiting(self) -> int:  # noqa: N802 (mpremote's name)
        self._check()
        return self._s.in_waiting

    @property
    def in_waiting(self) -> int:
        return self.inWaiting()

    def close(self) -> None:
        self._s.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)


class Device:
    """A token on a serial port (real or virtual); a context manager."""

    def __init__(self, port: str, *, timeout: float = DEFAULT_TIMEOUT, baudrate: int = 115200):
        """Open ``port``; ``timeout`` bounds each later call (seconds)."""
        self.port = port
        self.timeout = timeout
        self.baudrate = baudrate
        self._raw = False
        self._t = None
        self._open()

    def _open(self) -> None:
        # mpremote reads a /dev/pts device byte by byte without sleeping: resolve a
        # virtual token's symlink to it (our deadline bounds the reads)
        port = self.port
        dev = os.path.realpath(port) if os.path.islink(port) else port
        try:
            t = SerialTransport(dev, baudrate=self.baudrate, exclusive=True, timeout=_POLL)
        except (TransportError, serial.SerialException, OSError) as e:
            raise DeviceError(f"{port}: cannot open: {_why(e)}") from None
        t.serial.write_timeout = self.timeout
        self._ser = _Bounded(t.serial)
        t.serial = self._ser
        self._t = t
        self._raw = False

    # ---- plumbing ----------------------------------------------------------------

    def __enter__(self) -> Device:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Leave the raw REPL (best effort) and close the port."""
        t = getattr(self, "_t", None)
        if t is None:
            return
        self._t = None  # type: ignore[assignment]
        try:
            if self._raw:
                self._ser.deadline = time.monotonic() + 1.0
                t.exit_raw_repl()
        except Exception:  # closing must not fail on a dead device
            pass
        try:
            self._ser.close()
        except Exception:
            pass

    def _call(self, what: str, timeout: float | None, fn: Any, *args: Any) -> Any:
        if self._t is None:
            raise DeviceError(f"{self.port}: {what}: the port is closed")
        limit = self.timeout if timeout is None else timeout
        self._ser.deadline = time.monotonic() + limit
        try:
            return fn(*args)
        except _Expired:
            self._raw = False  # the device state is unknown now
            raise DeviceError(f"{self.port}: {what}: no answer within {limit:g} s") from None
        except TransportExecError as e:
            raise DeviceError(f"{self.port}: {what}: {_last_line(e.error_output)}") from None
        except (TransportError, serial.SerialException, OSError, ValueError, SyntaxError) as e:
            self._raw = False
            raise DeviceError(f"{self.port}: {what}: {_why(e)}") from None
        finally:
            self._ser.deadline = math.inf

    # ---- raw REPL ----------------------------------------------------------------

    def enter_raw(self, *, soft_reset: bool = True, timeout: float | None = None) -> None:
        """Interrupt what runs and enter the raw REPL (soft reset first, as mpremote)."""
        if self._raw:
            return

        def go() -> None:
            # mpremote sends its Ctrl-C and Ctrl-A once. A board still booting (a slow
            # host, an emulated chip just reset) can take them before its REPL reads
            # them: the prompt then never comes. Each try ends at its own deadline
            # (never mpremote's own timeout, which prints to stdout) and sends them
            # again; the tries grow, so a slow soft reset still completes in one.
            overall = self._ser.deadline
            per_try = _RAW_TRY
            try:
                while True:
                    self._ser.deadline = min(overall, time.monotonic() + per_try)
                    try:
                        self._t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=_NEVER)
                        return
                    except _Expired:
                        if time.monotonic() >= overall:
                            raise
                    per_try *= 2
            except TransportError:
                raise TransportError("no raw REPL (a locked token, or not MicroPython)") from None
            finally:
                self._ser.deadline = overall

        try:
            self._call("enter raw REPL", timeout, go)
        except DeviceError as e:
            raise DeviceError(f"{e} (a locked token answers only its line protocol)") from None
        self._raw = True

    def exec(self, code: str, *, timeout: float | None = None) -> str:
        """Run ``code`` in the raw REPL; return its stdout. A device exception raises."""
        self.enter_raw(timeout=timeout)

        def go() -> bytes:
            out, err = self._t.exec_raw(code.encode(), timeout=None)
            if err:
                raise TransportExecError(out, err.decode(errors="replace"))
            return out

        return self._call("exec", timeout, go).decode(errors="replace")

    def eval(self, expr: str, *, timeout: float | None = None) -> Any:
        """Evaluate ``expr`` on the device; its ``repr()`` comes back parsed."""
        out = self.exec(f"print(repr({expr}))", timeout=timeout).strip()
        try:
            return literal.literal_eval(out)
        except (ValueError, SyntaxError):
            raise DeviceError(f"{self.port}: eval: the device returned no Python literal") from None

    def reboot(self, *, timeout: float | None = None) -> None:
        """Soft reboot into the firmware: leave the raw REPL, then Ctrl-D at the friendly
        prompt, so that ``main.py`` runs (a soft reset from the raw REPL skips it)."""

        def go() -> None:
            ser = self._ser
            ser.write(b"\r\x02")  # Ctrl-B: friendly REPL
            buf = b""
            while not buf.endswith(b">>> "):
                buf = (buf + ser.read(1))[-64:]
            ser.write(b"\x04")  # Ctrl-D at an empty prompt: soft reboot, main.py runs
            buf = b""
            while b"soft reboot" not in buf:
                buf = (buf + ser.read(1))[-64:]

        self.enter_raw(timeout=timeout)
        self._raw = False
        self._call("reboot", timeout, go)

    def soft_reset(self, *, timeout: float | None = None) -> None:
        """A soft reset into the raw REPL (fresh modules; ``main.py`` does not run, and a
        running watchdog keeps counting)."""
        self._raw = False
        self.enter_raw(soft_reset=True, timeout=timeout)

    def hard_reset(self, *, timeout: float | None = None) -> None:
        """``machine.reset()`` from the raw REPL: the board restarts as at power-up
        (``main.py`` runs; a watchdog stops). A USB board leaves the bus and comes back,
        so the port is closed and opened again. Works on a token whose last call was
        cut (the raw REPL is entered afresh, without a soft reset)."""
        limit = self.timeout if timeout is None else timeout
        self._raw = False  # whatever a cut call left: Ctrl-C, then the raw REPL again
        self.enter_raw(soft_reset=False, timeout=limit)

        def go() -> None:
            self._t.exec_raw_no_follow(b"import machine\nmachine.reset()\n")

        self._call("reset", limit, go)
        self._raw = False
        deadline = time.monotonic() + max(limit, 5.0)
        try:
            self._ser.close()
        except Exception:
            pass
        self._t = None  # type: ignore[assignment]
        node = os.path.realpath(self.port)
        if not node.startswith("/dev/pts/"):
            # a USB board drops off the bus: wait for its node to go (else the old one
            # would be opened again), then for the new one
            gone = time.monotonic() + 2.0
            while os.path.exists(node) and time.monotonic() < gone:
                time.sleep(0.05)
        time.sleep(0.1)
        while True:
            try:
                self._open()
                return
            except DeviceError:
                if time.monotonic() >= deadline:
                    raise DeviceError(f"{self.port}: reset: the port did not come back") from None
                time.sleep(0.2)

    # ---- files -------------------------------------------------------------------

    def sha256(self, paths: list[str], *, timeout: float | None = None) -> dict[str, str | None]:
        """SHA-256 (hex) of each file on the device; ``None`` for a missing one."""
        code = (
            "import hashlib,binascii\n"
            "def _h(p):\n"
            " try:\n  f=open(p,'rb')\n except OSError:\n  return None\n"
            " h=hashlib.sha256();b=bytearray(1024)\n"
            " while True:\n"
            "  n=f.readinto(b)\n"
            "  if not n:break\n"
            "  h.update(b[:n])\n"
            " f.close();return binascii.hexlify(h.digest()).decode()\n"
            f"print(repr({{p:_h(p) for p in {paths!r}}}))\n"
            "del _h\n"
        )
        out = self.exec(code, timeout=timeout).strip()
        try:
            return literal.literal_eval(out)
        except (ValueError, SyntaxError):
            raise DeviceError(f"{self.port}: hash: unexpected answer") from None

    def put(self, data: bytes, path: str, *, timeout: float | None = None,
            stage: bool = False) -> None:
        """Write ``data`` to ``path`` atomically: ``path.tmp``, hash check, rename.

        The device hashes the temp file and renames it only if the SHA-256 matches,
        so a cut copy leaves at most ``path.tmp``, never a half file under ``path``.
        ``stage``: stop after the hash check (the caller renames ``path.tmp`` later,
        with others at once).
        """
        tmp = path + ".tmp"
        limit = self.timeout if timeout is None else timeout
        want = hashlib.sha256(data).hexdigest()
        chunks = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
        for i, chunk in enumerate(chunks):
            b64 = binascii.b2a_base64(chunk, newline=False).decode()
            code = "import binascii,hashlib,os\n"
            code += f"_f=open({tmp!r},{'wb' if i == 0 else 'ab'!r})\n"
            code += f"_f.write(binascii.a2b_base64({b64!r}))\n_f.close()\n"
            if i == len(chunks) - 1:
                code += (
                    f"_f=open({tmp!r},'rb');_h=hashlib.sha256();_b=bytearray(1024)\n"
                    "while True:\n"
                    " _n=_f.readinto(_b)\n"
                    " if not _n:break\n"
                    " _h.update(_b[:_n])\n"
                    "_f.close()\n"
                    f"if binascii.hexlify(_h.digest()).decode()!={want!r}:\n"
                    " raise OSError('hash mismatch after the copy')\n"
                    + ("" if stage else f"os.rename({tmp!r},{path!r})\n")
                    + "del _h,_b,_n\n"
                )
            code += "del _f\n"
            try:
                self.exec(code, timeout=limit)
            except DeviceError as e:
                raise DeviceError(f"{self.port}: put {path}: {str(e).split(': ', 2)[-1]}") from None

    def get(self, path: str, *, timeout: float | None = None) -> bytes:
        """Read a whole file from the device."""
        out = self.exec(
            "import binascii\n"
            f"with open({path!r},'rb') as _f:\n"
            " while True:\n"
            f"  _b=_f.read({_CHUNK})\n"
            "  if not _b:break\n"
            "  print(binascii.b2a_base64(_b).decode().strip())\n",
            timeout=timeout,
        )
        try:
            return b"".join(binascii.a2b_base64(ln) for ln in out.split())
        except binascii.Error:
            raise DeviceError(f"{self.port}: get {path}: bad data from the device") from None

    # ---- the locked line protocol ------------------------------------------------

    def line(self, cmd: str, *, timeout: float | None = None, check: bool = False,
             want: Callable[[str], bool] | None = None) -> str:
        """Send one protocol line; return the reply line (``OK ...`` or ``ERR ...``).

        Lines that are neither (noise, a stale frame) are skipped. ``want``: replies it
        rejects are a slow token's answers to stale input (a client's REPL attempt, noise)
        and are skipped too, without sending the command again: a second CHALLENGE would
        replace the nonce the first reply carries. If only rejected replies come before
        the timeout, the last of them is returned. ``check`` turns an ``ERR`` reply into
        a ``DeviceError``. Only the verb appears in messages.
        """
        if "\n" in cmd or "\r" in cmd:
            raise DeviceError(f"{self.port}: line: a command is one line")
        verb = cmd.split(" ", 1)[0][:16]
        self._raw = False  # whatever the device was in, it now gets a text line

        def go() -> str:
            nonlocal rejected
            ser = self._ser
            # end any partial line left by someone else (its reply, if any, is
            # dropped with the rest of the stale input once the line goes quiet)
            ser.write(b"\n")
            quiet = time.monotonic() + _QUIET
            while time.monotonic() < quiet:
                n = ser.inWaiting()
                if n:
                    ser.read(n)
                    quiet = time.monotonic() + _QUIET
                else:
                    time.sleep(0.005)
            ser.write(cmd.encode() + b"\n")
            buf = b""
            while True:
                try:
                    buf += ser.read(1)
                except _Expired:
                    if rejected is None:
                        raise
                    return rejected
                if not buf.endswith(b"\n"):
                    continue
                text = buf.decode(errors="replace").strip()
                buf = b""
                if text == "OK" or text.startswith(("OK ", "ERR ")) or text == "ERR":
                    if want is None or want(text):
                        return text
                    rejected = text

        rejected: str | None = None
        reply = self._call(verb, timeout, go)
        if check and reply.startswith("ERR"):
            raise DeviceError(f"{self.port}: {verb}: {reply}")
        return reply


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "device error"


def _why(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return (msg[-1] if msg else type(e).__name__)[:200]
