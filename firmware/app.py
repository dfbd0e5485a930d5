"""The wake cycle: read the clock, trust it or refuse, compute the payment code, draw it.

Usage: import app; app.boot()  # from main.py; app.run(board, frames=1) draws one frame
"""

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

import gc
import sys

import fwversion
from paycode import PERIOD as _STEP  # seconds per code step: the one constant

_PATH = "/paytoken.cfg"  # config.PATH; config itself is loaded only while a wake needs it
# The display sleeps this long after the last press. A payment takes a scan (2-5 s
# from the press) or, when the till cannot scan, 18 typed digits (10-15 s); 20 s
# covers both, and a press starts another 20 s. A code shown until the last second
# still verifies: the backend accepts the step before and after (+-1 step).
_AWAKE_S = const(20)
_TICK_MS = const(250)  # the serial protocol's poll while USB is attached


# --- pure logic -----------------------------------------------------------------

def true_time(t_rtc, ppm, ref_time):
    # Drift correction: t_true = t_rtc - (t_rtc - ref_time) * ppm / 1e6, in integer
    # parts per billion so every port (single- or double-precision float) agrees.
    ppb = int(ppm * 1000 + (0.5 if ppm >= 0 else -0.5))
    num = (t_rtc - ref_time) * ppb
    if num >= 0:
        corr = (num + 500000000) // 1000000000
    else:
        corr = -((500000000 - num) // 1000000000)
    return t_rtc - corr


def decide(cfg, dt, lost, build_year=fwversion.BUILD_YEAR):
    # -> (screen, unix time): screen is "code", "provision", "sync" or "back".
    # cfg: the config dict (None: never provisioned); dt: the RTC's civil UTC
    # (y, mo, d, h, mi, s); lost: the clock cannot be trusted (lost power, or an
    # MCU RTC after a cold boot).
    if cfg is None or not cfg["secret"] or len(cfg["scheme_key"]) != 16:
        return "provision", 0
    if lost or not cfg["ref_time"] or dt[0] < build_year:
        return "sync", 0
    # The submodule itself: paycode.unix_from_civil would search (and load) the
    # code path's modules first.
    from paycode.civil import unix_from_civil

    t = true_time(unix_from_civil(*dt), cfg["ppm"], cfg["ref_time"])
    if t // _STEP < cfg["last_step"]:
        return "back", t
    return "code", t


def code_at(cfg, t):
    from paycode.code import payment_code

    # the config names the token's format (its scheme's), and the code follows it
    return payment_code(cfg["secret"], cfg["token_id"], t, cfg["scheme_key"], cfg["prefix"],
                        cfg["format"])


def drop(*names):
    # Forget one-off modules (and their submodules) so their code leaves the heap:
    # a wake loads config, paycode, qr and font in turn, and none of them must hold
    # heap while the next one loads. MicroPython only: CPython (the host, which
    # imports these very files) keeps its modules.
    if sys.implementation.name != "micropython":
        return
    mods = sys.modules
    for n in list(mods):
        if n in names or n.split(".")[0] in names:
            del mods[n]
    gc.collect()


def _drop_qr():
    drop("qr")


# --- the clock and the board ---------------------------------------------------

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def _sleep_ms(ms):
    import time

    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def devices(board, cold):
    # The display, the RTC driver and the button of a board definition module.
    # cold: this boot is a power-up (an MCU RTC has lost its time).
    i2c = board.i2c()
    import ssd1306

    disp = ssd1306.SSD1306_I2C(board.WIDTH, board.HEIGHT, i2c, getattr(board, "DISPLAY_ADDR", 0x3C))
    kind = board.RTC
    if kind == "ds3231":
        import ds3231

        rtc = ds3231.DS3231(i2c)
    elif kind == "pcf8563":
        import pcf8563

        rtc = pcf8563.PCF8563(i2c)
    else:
        import mcurtc

        rtc = mcurtc.MCURTC(board.mcu_rtc(), cold)
    return disp, rtc, board.button()


def _pressed(button):
    if button is None:
        return False
    if hasattr(button, "pressed"):
        return button.pressed()
    return bool(button.value())


class Token:
    # One token: its devices, config path and screen. It is also proto's context
    # (config, cfg_path, board, set_clock, clock_state).
    def __init__(self, bd, disp, rtc, button, cfg_path=_PATH):
        self.bd = bd
        self.disp = disp
        self.rtc = rtc
        self.button = button
        self.cfg_path = cfg_path
        self.board = getattr(bd, "NAME", "?")
        self._ui = None  # the screens, loaded on the first draw (not while paycode is in)
        self.cfg = None
        self.screen = None
        self.step = -1
        self.wake_no = 0
        # the millisecond clock of the countdown: the board's (a sim board's runs
        # with its world) or the port's
        self.ticks = getattr(bd, "ticks_ms", None) or ticks_ms

    @property
    def ui(self):
        if self._ui is None:
            import ui

            self._ui = ui.UI(self.disp, self.bd.WIDTH, self.bd.HEIGHT, _STEP)
        return self._ui

    @property
    def config(self):
        # The config module (proto's ctx.config), loaded on use.
        import config

        return config

    def clock_state(self):
        if self.rtc.lost_power:
            return "lost"
        try:
            cfg = self.config.load(self.cfg_path)
        except ValueError:
            return "unset"
        return "ok" if cfg and cfg["ref_time"] else "unset"

    def now(self):
        # The UTC time codes are computed at (drift-corrected); 0 when not trusted.
        try:
            cfg = self.config.load(self.cfg_path)
        except ValueError:
            return 0
        screen, t = decide(cfg, self.rtc.datetime(), self.rtc.lost_power)
        return t if screen in ("code", "back") else 0

    def set_clock(self, utc):
        from paycode.civil import civil_from_unix

        self.rtc.set_datetime(civil_from_unix(utc))

    def wake(self, wake_no=0):
        # One wake: decide, record last_step once, draw the first frame.
        # -> (screen, UTC time read, ticks_ms at the read)
        # Stages, each dropping its modules before the next loads: config (read,
        # decide, write last_step), paycode (the code), qr + font (the picture).
        config = self.config
        try:
            cfg = config.load(self.cfg_path)
        except ValueError:
            cfg = "corrupt"
        dt = self.rtc.datetime()
        k0 = self.ticks()
        if cfg == "corrupt":
            screen, t = "corrupt", 0
        else:
            # lost_power covers an MCU RTC after a cold boot (mcurtc.py)
            screen, t = decide(cfg, dt, self.rtc.lost_power)
            drop("paycode")  # the calendar, before the config write
        self.cfg = cfg
        self.screen = screen
        self.wake_no = wake_no
        if screen == "code":
            step = t // _STEP
            if step > cfg["last_step"]:
                cfg["last_step"] = step
                config.save(cfg, self.cfg_path)  # config.update without a second read
        config = None
        drop("config")
        if screen == "code":
            self._draw_code(t)
        else:
            note = None
            if isinstance(cfg, dict) and cfg["token_id"]:
                note = "ID %08d" % cfg["token_id"]
            self.ui.message(screen, wake_no, note)
            drop("screens", "font")
        self.disp.show()
        return screen, t, k0

    def _draw_code(self, t):
        # The code, then its picture; paycode leaves before ui, qr and font load.
        # A code screen is drawn whole (UI.code keeps nothing from the last one),
        # so the UI leaves too while paycode is in.
        self.step = t // _STEP
        self._ui = None
        drop("ui")
        code = code_at(self.cfg, t)
        drop("paycode")
        self.ui.code(code, _STEP - t % _STEP, self.wake_no, _drop_qr)
        self.ui.release()  # a kept QR object would pin the qr module's code
        drop("qr", "font")

    def tick(self, t):
        # The time moved on (t: UTC seconds): a new code at a new step, else the bar.
        if self.screen != "code":
            return
        if t // _STEP != self.step:
            self._draw_code(t)
        else:
            self.ui.countdown(_STEP - t % _STEP)
        self.disp.show()


def make_token(bd, cfg_path=_PATH):
    disp, rtc, button = devices(bd, bd.cold_boot())
    return Token(bd, disp, rtc, button, cfg_path)


def _battery(bd):
    # True when no USB host can be talking: the board may nap between ticks.
    # A board without nap() or usb() stays awake (responsive) as before.
    if not hasattr(bd, "nap"):
        return False
    usb = getattr(bd, "usb", None)
    return usb is not None and not usb()


def run(tok, frames=0, idle=None, awake_s=_AWAKE_S, wake_no=0, clock=None):
    # The token's life: wake, count down, sleep, wake on the button. frames > 0
    # stops after that many frames (the first frame is 1: the simulator's snapshot).
    # idle(ms) waits between frames while USB is attached (the locked protocol
    # serves there) and returns True to stop; on battery the board naps to the
    # next second of the countdown instead (the panel keeps its picture).
    # wake_no: the burn-in position of the first wake (boot passes the last step
    # shown, which moves on with every wake in a new 30 s step: no extra write).
    # clock: a ticks_ms function (default: the token's, see Token.ticks).
    wait = idle or _idle
    bd = tok.bd
    if clock:
        tok.ticks = clock
    now = tok.ticks
    shown = 0
    while True:
        screen, t0, k0 = tok.wake(wake_no)
        shown += 1
        if frames and shown >= frames:
            return
        last = t0
        awake_until = awake_s * 1000
        while True:
            if _battery(bd):
                el = ticks_diff(now(), k0)
                # a press stays pending for _pressed below
                bd.nap(max(1, min(1000 - el % 1000, awake_until - el)))
            elif wait(_TICK_MS):
                return
            el = ticks_diff(now(), k0)
            if _pressed(tok.button):
                awake_until = el + awake_s * 1000
            if el >= awake_until:
                break
            t = t0 + el // 1000
            if t != last:
                last = t
                tok.tick(t)
                shown += 1
                if frames and shown >= frames:
                    return
        tok.disp.poweroff()
        if hasattr(bd, "power_off"):
            bd.power_off()  # a power-latch board switches off here (on battery: no return)
        # Sleep until the button (a deep-sleep board resets instead of returning);
        # between 1 s slices the locked protocol still answers.
        while not bd.sleep(1000):
            if wait(0):
                return
        _pressed(tok.button)  # take the press that woke us
        tok.disp.poweron()
        wake_no += 1


def _idle(ms):
    _sleep_ms(ms)
    return False


def boot(bd=None, cfg_path=_PATH, frames=0):
    # main.py's body; kbd_intr(-1) ran before this. A locked (or unreadable) config
    # keeps Ctrl-C off and never returns, unless UNLOCK succeeds (in RAM only: until
    # the next reset, or the lease runs out); a factory token gets Ctrl-C back and
    # runs until interrupted.
    if bd is None:
        import board as bd
    import config

    try:
        cfg = config.load(cfg_path)
        locked = bool(cfg and cfg["locked"])
        wake_no = cfg["last_step"] if cfg else 0
    except ValueError:
        locked = True  # fail closed: a damaged config may hide a lock flag
        wake_no = 0
    cfg = config = None
    drop("config")  # a one-off check: the wake loads it again
    if not locked:
        _kbd(3)
        run(make_token(bd, cfg_path), frames, None, _AWAKE_S, wake_no)
        return
    import proto

    while True:
        try:
            tok = make_token(bd, cfg_path)
            p = proto.Proto(tok)
            run(tok, frames, p.serve, _AWAKE_S, wake_no)
            if p.unlocked:
                # the REPL, for the service desk, under the lease: its watchdog resets
                # the token (which boots locked: the flag on flash is still set)
                # unless the desk feeds it, and the desk ends with machine.reset()
                import lease

                lease.hold()
                _kbd(3)
                return
            if frames:
                return
        except Exception as e:  # never the REPL: report the type only, retry
            import sys

            sys.stdout.write("ERR internal %s\n" % type(e).__name__)
            _sleep_ms(1000)


def _kbd(c):
    try:
        import micropython

        micropython.kbd_intr(c)
    except (ImportError, AttributeError):
        pass
