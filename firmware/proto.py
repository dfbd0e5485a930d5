"""The locked token's line protocol on the USB serial: INFO, CHALLENGE, SETTIME, UNLOCK.

Usage: p = proto.Proto(ctx); reply = p.handle(b"INFO")  # or p.serve(ms) between frames
"""

import os
import sys

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_MAX_LINE = const(120)
_NONCE_BYTES = const(8)
# Times before the firmware's build year or after 2199 are refused.
_T_MIN = const(1735689600)  # 2025-01-01T00:00:00Z


class Proto:
    # ctx: an object with .config (the config module), .cfg_path, .board (name),
    # .set_clock(utc) -> None, .clock_state() -> "ok" | "lost" | "unset";
    # urandom: the nonce source (os.urandom).
    def __init__(self, ctx, urandom=None):
        self.ctx = ctx
        self.urandom = urandom or os.urandom
        self.nonce = None
        self.unlocked = False
        self._line = bytearray(_MAX_LINE + 1)
        self._n = 0
        self._over = False
        self._poll = None
        self._eof = False
        self._in = getattr(sys.stdin, "buffer", sys.stdin)

    def _cfg(self):
        try:
            return self.ctx.config.load(self.ctx.cfg_path)
        except ValueError:
            return "corrupt"

    def _take_nonce(self):
        # A nonce is good for one command, whatever its outcome.
        n = self.nonce
        self.nonce = None
        return n

    def handle(self, line):
        # One request line (bytes or str, without the newline) -> one reply line (str).
        if isinstance(line, str):
            line = line.encode()
        if len(line) > _MAX_LINE:
            return "ERR line too long"
        try:
            parts = line.decode().split()
        except UnicodeError:
            return "ERR not ASCII"
        if not parts:
            return "ERR empty line"
        verb = parts[0]
        if verb == "INFO" and len(parts) == 1:
            return self._info()
        if verb == "CHALLENGE" and len(parts) == 1:
            self.nonce = "%016x" % int.from_bytes(self.urandom(_NONCE_BYTES), "big")
            return "OK " + self.nonce
        if verb == "SETTIME" and len(parts) == 3:
            return self._settime(parts[1], parts[2])
        if verb == "UNLOCK" and len(parts) == 2:
            return self._unlock(parts[1])
        if verb in ("INFO", "CHALLENGE", "SETTIME", "UNLOCK"):
            self._take_nonce()
            return "ERR wrong arguments for " + verb
        return "ERR unknown command"

    def _info(self):
        import fwversion

        cfg = self._cfg()
        if cfg == "corrupt":
            tid, sync, locked, fmt = "-", 0, 1, "-"
        elif cfg is None:
            tid, sync, locked, fmt = "-", 0, 0, "-"
        else:
            tid, sync, locked = "%08d" % cfg["token_id"], cfg["last_sync"], int(cfg["locked"])
            fmt = str(cfg["format"])  # this token's own code format
        # time: the token's code time (drift-corrected UTC; 0 untrusted), for the
        # service desk's offset record; a clock is no secret.
        now = self.ctx.now() if hasattr(self.ctx, "now") else 0
        return "OK id=%s fw=%s board=%s code=%s clock=%s sync=%d locked=%d time=%d image=%s" % (
            tid, fwversion.VERSION, self.ctx.board, fmt,
            self.ctx.clock_state(), sync, locked, now, image())

    def _auth(self, verb, value, mac):
        # -> (cfg, None) when mac is sync_mac over the last nonce, else (None, error).
        nonce = self._take_nonce()
        if nonce is None:
            return None, "ERR no challenge: send CHALLENGE first"
        cfg = self._cfg()
        if cfg == "corrupt":
            return None, "ERR config corrupt"
        if cfg is None or not cfg["sync_key"]:
            return None, "ERR not provisioned"
        import paycode

        want = paycode.sync_mac(cfg["sync_key"], verb, nonce, value)
        if len(mac) != 40 or not paycode.equal(want, mac.lower()):
            return None, "ERR bad mac"
        return cfg, None

    def _settime(self, text, mac):
        try:
            utc = int(text)
        except ValueError:
            self._take_nonce()
            return "ERR time must be UTC seconds"
        if utc < _T_MIN or utc > 7258118399:
            self._take_nonce()
            return "ERR time out of range"
        cfg, err = self._auth("SETTIME", utc, mac)
        if err:
            return err
        self.ctx.set_clock(utc)
        from paycode import PERIOD
        # The station's time is trusted: drift is measured from here, and the
        # tamper floor moves to the new step (a clock that ran fast comes back).
        self.ctx.config.update(self.ctx.cfg_path, ref_time=utc, last_sync=utc,
                               last_step=utc // PERIOD)
        return "OK time set %d" % utc

    def _unlock(self, mac):
        # The unlock is this RAM flag only: the config on flash stays locked, so the
        # next reset or power-up boots locked, and app.boot holds the REPL open under
        # the lease's watchdog (lease.py). Nothing is written.
        cfg, err = self._auth_unlock(mac)
        if err:
            return err
        self.unlocked = True
        return "OK unlocked"

    def _auth_unlock(self, mac):
        # UNLOCK's value is the token id, read from the config.
        cfg = self._cfg()
        tid = cfg["token_id"] if isinstance(cfg, dict) else 0
        return self._auth("UNLOCK", tid, mac)

    # --- the serial side -------------------------------------------------------

    def serve(self, ms, out=None):
        # Wait up to ms for input; answer each complete line. Returns True once unlocked.
        import select

        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(sys.stdin, select.POLLIN)
        out = out or sys.stdout
        if self._eof:
            _sleep_ms(ms)
            return self.unlocked
        wait = ms
        while self._poll.poll(wait):
            wait = 0
            b = self._in.read(1)
            if not b:
                self._eof = True
                break
            c = b[0] if not isinstance(b, str) else ord(b)
            if c == 10 or c == 13:
                if self._over:
                    out.write("ERR line too long\n")
                elif self._n:
                    out.write(self.handle(bytes(self._line[:self._n])) + "\n")
                self._n = 0
                self._over = False
                if self.unlocked:
                    break
            elif self._n < _MAX_LINE:
                self._line[self._n] = c
                self._n += 1
            else:
                self._over = True
        return self.unlocked


def image():
    # The frozen image's id (its fwimage module), or "files": the firmware was deployed.
    try:
        from fwimage import ID
    except ImportError:
        return "files"
    return ID


def _sleep_ms(ms):
    import time

    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)
