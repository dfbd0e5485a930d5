# DS3231 and PCF8563 register models. The chip time advances with world time
# x (1 + ppm * 1e-6) from a base; a write rebases it. The oscillator runs while
# the board is powered or the backup battery is in; when both are gone it
# stops, and the next power-up restarts the registers from 2000-01-01 00:00:00
# with the lost-time flag set (DS3231 OSF, PCF8563 VL). The DS3231 aging
# register trims the rate by about -0.1 ppm per LSB, as on the chip.
# Calendar note: the models count the true Gregorian calendar; the real chips
# treat every year divisible by 4 as a leap year, so they err in 2100.
from . import store

_RESET_TIME = 946684800  # 2000-01-01 00:00:00, the chips' power-on value
_DS_NREGS = 19  # 0x00..0x12
_PCF_NREGS = 16  # 0x00..0x0F


def days_from_civil(y, m, d):
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method).
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _bcd(v):
    return (v // 10) << 4 | v % 10


def _dec(b):
    return (b >> 4) * 10 + (b & 0x0F)


# --- the state shared by the device model and the host (rtc.json) ---

def new_state(chip, ppm=0.0, battery=True, world=0.0, time=None):
    if chip not in ("ds3231", "pcf8563"):
        raise ValueError("unknown RTC chip %r (ds3231 or pcf8563)" % chip)
    st = {"chip": chip, "ppm": float(ppm), "battery": bool(battery), "powered": True,
          "running": True, "off_at": None}
    _reset(st, world)
    if time is not None:
        set_time(st, time, world)
    return st


def _reset(st, world):
    # Power-on reset values of every register; the time is lost.
    st["base_reg"] = float(_RESET_TIME)
    st["base_world"] = float(world)
    st["lost"] = True
    st["h12"] = False
    if st["chip"] == "ds3231":
        st["dow"] = 1
        # control 0x0E = 0x1C (INTCN, RS2, RS1), status 0x0F = EN32kHz, aging 0
        st["regs"] = [0] * 14 + [0x1C, 0x08, 0, 0, 0]
    else:
        st["dow"] = 6  # 2000-01-01 was a Saturday
        st["regs"] = [0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x03, 0]


def aging(st):
    a = st["regs"][0x10] if st["chip"] == "ds3231" else 0
    return a - 256 if a > 127 else a


def rate(st):
    return 1.0 + (st["ppm"] - 0.1 * aging(st)) * 1e-6


def reg_time(st, world):
    # What the time registers hold at this world time (None: oscillator stopped).
    if not st["running"]:
        return None
    return st["base_reg"] + (world - st["base_world"]) * rate(st)


def rebase(st, world):
    t = reg_time(st, world)
    if t is not None:
        st["dow"] = _dow_at(st, t)
        st["base_reg"] = t
        st["base_world"] = float(world)


def _dow_at(st, t):
    days = int(t // 86400) - int(st["base_reg"] // 86400)
    if st["chip"] == "ds3231":
        return (st["dow"] - 1 + days) % 7 + 1
    return (st["dow"] + days) % 7


def set_time(st, t, world, dow=None):
    st["base_reg"] = float(t)
    st["base_world"] = float(world)
    days = int(t // 86400)
    # 1970-01-01 was a Thursday: ISO 1..7 for the DS3231, 0=Sunday for the PCF8563
    st["dow"] = dow if dow is not None else ((days + 3) % 7 + 1 if st["chip"] == "ds3231" else (days + 4) % 7)
    st["lost"] = False


def set_ppm(st, ppm, world):
    rebase(st, world)
    st["ppm"] = float(ppm)


def _update_running(st, world):
    run = st["powered"] or st["battery"]
    if run and not st["running"]:
        st["running"] = True
        _reset(st, world)
    elif not run and st["running"]:
        st["running"] = False


def power(st, on, world):
    if on == st["powered"]:
        return
    rebase(st, world)
    st["powered"] = bool(on)
    st["off_at"] = None if on else float(world)
    _update_running(st, world)


def set_battery(st, on, world):
    rebase(st, world)
    st["battery"] = bool(on)
    _update_running(st, world)


# --- register images ---

def registers(st, world, out):
    # Fill out (a register-file bytearray) as the chip would present it now.
    regs = st["regs"]
    for i in range(len(regs)):
        out[i] = regs[i]
    t = reg_time(st, world)
    if t is None:
        t = st["base_reg"]
    secs = int(t // 1)
    days = secs // 86400
    r = secs - days * 86400
    y, mo, d = civil_from_days(days)
    h = r // 3600
    mi = r // 60 % 60
    s = r % 60
    dow = _dow_at(st, t)
    if st["h12"]:
        hb = 0x40 | (0x20 if h >= 12 else 0) | _bcd(h % 12 or 12)
    else:
        hb = _bcd(h)
    cent = ((y // 100) - 20) & 1
    if st["chip"] == "ds3231":
        out[0] = _bcd(s)
        out[1] = _bcd(mi)
        out[2] = hb
        out[3] = dow
        out[4] = _bcd(d)
        out[5] = cent << 7 | _bcd(mo)
        out[6] = _bcd(y % 100)
        out[0x0F] = (regs[0x0F] & 0x7F) | (0x80 if st["lost"] else 0)
        out[0x11] = 25  # temperature 25.00 C
        out[0x12] = 0
    else:
        out[2] = (0x80 if st["lost"] else 0) | _bcd(s)
        out[3] = _bcd(mi)
        out[4] = _bcd(h)
        out[5] = _bcd(d)
        out[6] = dow
        out[7] = cent << 7 | _bcd(mo)
        out[8] = _bcd(y % 100)


def _decode_time(st, img):
    # Back from a written register image to a chip time (seconds).
    if st["chip"] == "ds3231":
        s, mi, hb, d, mob, yb = img[0] & 0x7F, img[1] & 0x7F, img[2], img[4] & 0x3F, img[5], img[6]
    else:
        s, mi, hb, d, mob, yb = img[2] & 0x7F, img[3] & 0x7F, img[4] & 0x3F, img[5] & 0x3F, img[7], img[8]
    if st["chip"] == "ds3231" and hb & 0x40:
        st["h12"] = True
        h = _dec(hb & 0x1F) % 12 + (12 if hb & 0x20 else 0)
    else:
        st["h12"] = False
        h = _dec(hb & 0x3F)
    y = 2000 + 100 * (mob >> 7) + _dec(yb)
    mo = _dec(mob & 0x1F)
    if not 1 <= mo <= 12:
        mo = 1
    days = days_from_civil(y, mo, max(1, _dec(d)))
    return days * 86400 + h * 3600 + _dec(mi) * 60 + _dec(s)


class RTCModel:
    # An I2C device; folder-backed (rtc.json, reread per transaction) or in
    # memory with an injected clock (clock() -> world UTC seconds).
    def __init__(self, chip=None, folder=None, clock=None, state=None):
        self.folder = folder
        self._clock = clock
        if folder:
            state = store.load(folder, "rtc.json", None)
            if state is None:
                raise OSError("no rtc.json in the hardware folder %s" % folder)
        elif state is None:
            state = new_state(chip, world=self.world())
        self.state = state
        self.chip = state["chip"]
        self.addr = 0x68 if self.chip == "ds3231" else 0x51
        self._n = _DS_NREGS if self.chip == "ds3231" else _PCF_NREGS
        self._img = bytearray(self._n)
        self._ptr = 0

    def world(self):
        if self._clock is not None:
            return self._clock()
        return store.world_time(self.folder)

    def _load(self):
        if self.folder:
            st = store.load(self.folder, "rtc.json", None)
            if st is not None:
                self.state = st

    def _save(self):
        if self.folder:
            store.save(self.folder, "rtc.json", self.state)

    def time(self):
        return reg_time(self.state, self.world())

    def xfer_write(self, bufs):
        # First byte: the register pointer; then data, auto-incrementing.
        self._load()
        st = self.state
        w = self.world()
        first = True
        wrote = False
        touched = False
        registers(st, w, self._img)
        secs_written = False
        n = self._n
        tlo, thi = (0, 6) if self.chip == "ds3231" else (2, 8)
        for b in bufs:
            for v in b:
                if first:
                    self._ptr = v % n
                    first = False
                    continue
                p = self._ptr
                wrote = True
                self._img[p] = v
                if tlo <= p <= thi:
                    touched = True
                    if p == tlo:
                        secs_written = True
                elif self.chip == "ds3231":
                    if p == 0x0F:
                        # OSF can only be cleared; the low bits are writable
                        st["lost"] = st["lost"] and bool(v & 0x80)
                        st["regs"][p] = v & 0x7F
                    elif p == 0x10:
                        rebase(st, w)
                        st["regs"][p] = v
                    elif p < 0x11:
                        st["regs"][p] = v
                else:
                    st["regs"][p] = v
                self._ptr = (p + 1) % n
        if touched:
            t_old = reg_time(st, w) or st["base_reg"]
            t = _decode_time(st, self._img)
            if not secs_written:
                t += t_old - int(t_old // 1)
            lost = st["lost"]
            dw = self._img[3] if self.chip == "ds3231" else self._img[6]
            set_time(st, t, w, dw)
            if self.chip == "pcf8563":
                st["lost"] = bool(self._img[2] & 0x80)
            else:
                st["lost"] = lost
        if wrote:
            self._save()
        return False

    def xfer_read(self, buf):
        # The chip latches the time at the start of a read; the pointer wraps.
        self._load()
        registers(self.state, self.world(), self._img)
        n = self._n
        p = self._ptr
        for i in range(len(buf)):
            buf[i] = self._img[p]
            p = (p + 1) % n
        self._ptr = p

