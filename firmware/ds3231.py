"""DS3231 RTC driver. Usage: rtc = DS3231(i2c); y, mo, d, h, mi, s = rtc.datetime()"""
# Time is kept in UTC, 24-hour mode. Years 2000-2199: the century bit (bit 7 of
# the month register) selects 21xx. The chip sets it when the year register
# wraps 99 -> 00, so 2099 -> 2100 works; its leap-year rule (year % 4) is wrong
# for 2100, and a wrap past 2199 would read 2000 again, so a token must be
# re-synced before either. 1970-1999 cannot be stored.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_REG_TIME = const(0x00)  # seconds, minutes, hours, day, date, month/century, year
_REG_STATUS = const(0x0F)
_REG_AGING = const(0x10)
_OSF = const(0x80)  # status bit 7: the oscillator stopped, the time is lost
_H12 = const(0x40)  # hours bit 6: 12-hour mode
_PM = const(0x20)  # hours bit 5 in 12-hour mode
_CENTURY = const(0x80)  # month bit 7


def _bcd(v):
    return (v // 10) << 4 | v % 10


def _dec(b):
    return (b >> 4) * 10 + (b & 0x0F)


def _mdays(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def weekday(y, m, d):
    # ISO weekday 1 (Monday) .. 7 (Sunday), Sakamoto's method.
    t = (0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4)
    if m < 3:
        y -= 1
    w = (y + y // 4 - y // 100 + y // 400 + t[m - 1] + d) % 7  # 0 = Sunday
    return w or 7


def check(t, lo=2000, hi=2199):
    # Validate a (y, mo, d, h, mi, s) tuple; return it as six ints.
    if len(t) < 6:
        raise ValueError("datetime needs (year, month, day, hour, minute, second)")
    y, mo, d, h, mi, s = t[0], t[1], t[2], t[3], t[4], t[5]
    if not lo <= y <= hi:
        raise ValueError("year %d outside %d-%d" % (y, lo, hi))
    if not 1 <= mo <= 12 or not 1 <= d <= _mdays(y, mo):
        raise ValueError("no such date %d-%d-%d" % (y, mo, d))
    if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 60):
        raise ValueError("no such time %d:%d:%d" % (h, mi, s))
    return y, mo, d, h, mi, s


def decode(name, y, mo, d, hb, mi, s):
    # BCD registers -> civil tuple; hb is the raw hours byte (12/24-hour).
    if hb & _H12:
        h = _dec(hb & 0x1F) % 12 + (12 if hb & _PM else 0)
    else:
        h = _dec(hb & 0x3F)
    t = (y, _dec(mo), _dec(d), h, _dec(mi), _dec(s))
    try:
        return check(t, 2000, 2199)
    except ValueError:
        raise OSError("%s holds an invalid time %r" % (name, t))


class DS3231:
    def __init__(self, i2c, addr=0x68):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(7)  # the time registers, one burst each way
        self._one = bytearray(1)
        try:
            i2c.readfrom_mem_into(addr, _REG_STATUS, self._one)
        except OSError:
            raise OSError("DS3231 not found at 0x%02x" % addr)

    def datetime(self):
        b = self._buf
        self.i2c.readfrom_mem_into(self.addr, _REG_TIME, b)
        y = 2000 + (100 if b[5] & _CENTURY else 0) + _dec(b[6])
        return decode("DS3231", y, b[5] & 0x1F, b[4] & 0x3F, b[2], b[1] & 0x7F, b[0] & 0x7F)

    def set_datetime(self, t):
        y, mo, d, h, mi, s = check(t)
        b = self._buf
        b[0] = _bcd(s)
        b[1] = _bcd(mi)
        b[2] = _bcd(h)  # bit 6 clear: 24-hour mode
        b[3] = weekday(y, mo, d)
        b[4] = _bcd(d)
        b[5] = (_CENTURY if y >= 2100 else 0) | _bcd(mo)
        b[6] = _bcd(y % 100)
        self.i2c.writeto_mem(self.addr, _REG_TIME, b)
        # Only now clear OSF: a power cut in between leaves the time marked lost.
        one = self._one
        self.i2c.readfrom_mem_into(self.addr, _REG_STATUS, one)
        one[0] &= ~_OSF & 0xFF
        self.i2c.writeto_mem(self.addr, _REG_STATUS, one)

    @property
    def lost_power(self):
        self.i2c.readfrom_mem_into(self.addr, _REG_STATUS, self._one)
        return bool(self._one[0] & _OSF)

    @property
    def aging(self):
        # Aging offset, signed; about 0.1 ppm per LSB, positive slows the clock.
        self.i2c.readfrom_mem_into(self.addr, _REG_AGING, self._one)
        a = self._one[0]
        return a - 256 if a & 0x80 else a
