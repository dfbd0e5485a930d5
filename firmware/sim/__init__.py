"""Virtual hardware for the sim boards (chip models on an I2C bus model, state in $PAYTOKEN_HW) and their shared definition. Usage: hw = sim.hardware(128, 64); hw.bus; in boards/sim*.py: from sim import *"""
# Files in the hardware folder (each written atomically: temp file + rename):
#   hw.json     board, width, height, rtc chip (written by the host)
#   world.json  {"offset": s} world = host UTC + s, or {"frozen": t}
#   rtc.json    the RTC chip state (sim/rtc.py), shared with the host
#   button      one byte appended by the host per press
#   panel.bin   the lit pixels, MONO_VLSB pages, width*height/8 bytes
#   panel.json  display_on, lit, inverted, contrast, powered
#   i2c.json    cumulative bus counters {"bytes", "transactions"}
#   power.json  {"on": bool}: the board's supply (the host cuts it)
#   usb.json    {"attached": bool}: a USB host on the serial (absent: attached)
#   cpu.json    {"hz", "naps", "nap_ms"}: the clock a battery boot chose, naps taken
#   wdt.json    {"timeout_ms", "fed"}: the watchdog (sim/wdt.py), rewritten on each feed
from . import store

# The sim family: boards/sim*.py star-import these names, then add their NAME, FAMILY,
# ARCH, WIDTH, HEIGHT and RTC (boards/README.md). The functions open the hardware for
# that panel on first use. They live here, not in a module of their own: the sim
# boards load this package anyway, and one more module costs the heap test ~300 bytes.
__all__ = ("DISPLAY_ADDR", "DISPLAY_RESET", "I2C_ID", "SDA", "SCL", "FREQ", "BUTTON_PIN",
           "BUTTON_WAKE", "SLEEP", "CPU_HZ_BATTERY", "rtc_chip",
           "LEASE_MS", "i2c", "button", "sleep", "nap", "usb", "ticks_ms", "cold_boot", "mcu_rtc",
           "wdt")
DISPLAY_ADDR = 0x3C
DISPLAY_RESET = None
I2C_ID = 0
SDA = None
SCL = None
FREQ = 400000
BUTTON_PIN = None
BUTTON_WAKE = True
SLEEP = "light"
CPU_HZ_BATTERY = 125000000  # recorded in cpu.json (the unix port keeps its speed)
# The unlock lease (lease.py). Longer than a chip's 8 s: the emulated board shares a
# busy host, where one exec of the desk can stall for seconds.
LEASE_MS = 15000

_hw = None
overhead = 0  # heap bytes the models took at creation (their code included)


def _unpowered(folder):
    import os

    if os.getenv("PAYTOKEN_BOOT"):
        # a virtual token: its supervisor sees power.json and kills the interpreter within
        # 50 ms (as in latch.power_off: an exit would drop into its REPL meanwhile)
        import time

        while True:
            time.sleep_ms(1000)
    raise OSError("the board's power is off (power.json in %s): power it on first" % folder)


class Hardware:
    def __init__(self, folder, width, height):
        # The models are imported here, so that their heap share can be measured.
        from . import rtc as _rtc
        from .bus import I2CBus
        from .button import Button
        from .oled import SSD1306Model
        from .rtc import RTCModel

        self.folder = folder
        cfg = store.load(folder, "hw.json", None)
        if cfg is None:
            raise OSError("no hw.json in %s: create it with paytoken.vhw.create" % folder)
        self.config = cfg
        # The host powers the board (paytoken.vhw.power_on, the supervisor's start, a press
        # on a latch board); the board never does. A cut that came while this interpreter
        # started stays a cut: nothing here runs, writes or turns the RTC's supply back on.
        p = store.load(folder, "power.json", None)
        if p is not None and not p.get("on", True):
            _unpowered(folder)
        st = store.load(folder, "rtc.json", None)
        if st is not None and not st["powered"]:
            _rtc.power(st, True, store.world_time(folder))
            store.save(folder, "rtc.json", st)
        self.bus = I2CBus(folder)
        self.display = SSD1306Model(width, height, folder)
        self.bus.attach(0x3C, self.display)
        self.rtc = None
        if st is not None:
            self.rtc = RTCModel(folder=folder)
            self.bus.attach(self.rtc.addr, self.rtc)
        self.button = Button(folder)
        self._mcu = None
        # Keep i2c.json current when the interpreter exits.
        try:
            import sys

            sys.atexit(self.bus.flush)
        except (AttributeError, ImportError):
            import atexit

            atexit.register(self.bus.flush)


    def mcu_rtc(self):
        if self._mcu is None:
            from .mcu import MachineRTC

            self._mcu = MachineRTC(self.folder)
        return self._mcu


def _open():
    # The hardware for the sim board's panel (board.WIDTH x board.HEIGHT), opened on first use.
    if _hw is None:
        import board

        return hardware(board.WIDTH, board.HEIGHT)
    return _hw


def hardware(width, height):
    # The one Hardware of this interpreter (created on first use). The heap it
    # took is kept in sim.overhead, so heap benchmarks can tell it apart.
    global _hw, overhead
    if _hw is None:
        import gc

        gc.collect()
        a = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
        _hw = Hardware(store.hw_folder(), width, height)
        gc.collect()
        overhead = (gc.mem_alloc() - a) if a else 0
    return _hw


def rtc_chip():
    # The RTC chip the hardware folder holds ("ds3231", "pcf8563" or "mcu").
    f = store.hw_folder()
    cfg = store.load(f, "hw.json", None)
    return cfg["rtc"] if cfg else "ds3231"


def sleep(ms):
    # Poll the button file until a press or the deadline (bounded by ticks); in a
    # virtual world the time moves on by ms at once instead.
    import time

    hw = _open()
    hw.bus.flush()
    b = hw.button
    if b.value():
        return True
    if store.advance(hw.folder, ms / 1000):
        return False
    if not hasattr(time, "ticks_ms"):  # CPython
        end = time.monotonic() + ms / 1000
        while not b.value():
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.02))
        return True
    end = time.ticks_add(time.ticks_ms(), ms)
    while not b.value():
        left = time.ticks_diff(end, time.ticks_ms())
        if left <= 0:
            return False
        time.sleep_ms(min(left, 20))
    return True


def usb():
    # A USB host attached to the serial (usb.json; attached unless the host said not).
    u = store.load(_open().folder, "usb.json", None)
    return True if u is None else bool(u.get("attached", True))


def _cpu(hz=None, nap_ms=None):
    c = store.load(_hw.folder, "cpu.json", None) or {"hz": None, "naps": 0, "nap_ms": 0}
    if hz is not None:
        c["hz"] = hz
    if nap_ms is not None:
        c["naps"] += 1
        c["nap_ms"] += nap_ms
    store.save(_hw.folder, "cpu.json", c)


def cpu_clock(hz):
    # The clock a battery boot asks for (a unix port keeps its speed: recorded only).
    _cpu(hz=hz)


def nap(ms):
    # The display-on nap between countdown ticks: a sleep that a press ends (True),
    # counted with the time slept; the panel model keeps its picture, the bus its state.
    woke = sleep(ms)
    _cpu(nap_ms=0 if woke else ms)
    return woke


_v0 = None  # the virtual world's time at the first ticks_ms()


def ticks_ms():
    # In a virtual world (which stands still between naps) its milliseconds since
    # the first call, else the interpreter's ticks.
    global _v0
    import time

    w = store.load(_open().folder, "world.json", None)
    if w and w.get("virtual") is not None:
        v = float(w["virtual"])
        if _v0 is None:
            _v0 = v
        return time.ticks_add(0, int((v - _v0) * 1000 + 0.5))
    return time.ticks_ms()


def i2c():
    # On battery the CPU clock is set first (a real bus derives its divider from it).
    hw = _open()
    if not usb():
        cpu_clock(CPU_HZ_BATTERY)
    return hw.bus


def button():
    return _open().button


def cold_boot():
    return True  # every interpreter start is a power-up


def mcu_rtc():
    return _open().mcu_rtc()


def wdt(ms):
    # machine.WDT(timeout=ms) of the emulated board (the watchdog runs in the supervisor)
    from .wdt import WDT

    return WDT(_open().folder, ms)
