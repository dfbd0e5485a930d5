"""PCF8563 RTC driver. Usage: rtc = PCF8563(i2c); y, mo, d, h, mi, s = rtc.datetime()"""
# Same API and year range as ds3231.py (2000-2199; century bit = 21xx). The VL
# flag (bit 7 of the seconds register) means the supply dropped too low and the
# time cannot be trusted; writing the time clears it.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

from ds3231 import _bcd, _dec, check, decode, weekday

_REG_CTRL1 = const(0x00)
_REG_TIME = const(0x02)  # VL|seconds, minutes, hours, days, weekdays, C|months, years
_VL = const(0x80)
_CENTURY = const(0x80)


class PCF8563:
    def __init__(self, i2c, addr=0x51):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(7)
        self._one = bytearray(1)
        try:
            i2c.readfrom_mem_into(addr, _REG_CTRL1, self._one)
        except OSError:
            raise OSError("PCF8563 not found at 0x%02x" % addr)

    def datetime(self):
        b = self._buf
        self.i2c.readfrom_mem_into(self.addr, _REG_TIME, b)
        y = 2000 + (100 if b[5] & _CENTURY else 0) + _dec(b[6])
        return decode("PCF8563", y, b[5] & 0x1F, b[3] & 0x3F, b[2] & 0x3F, b[1] & 0x7F, b[0] & 0x7F)

    def set_datetime(self, t):
        y, mo, d, h, mi, s = check(t)
        b = self._buf
        b[0] = _bcd(s)  # VL = 0
        b[1] = _bcd(mi)
        b[2] = _bcd(h)
        b[3] = _bcd(d)
        b[4] = weekday(y, mo, d) % 7  # 0 = Sunday
        b[5] = (_CENTURY if y >= 2100 else 0) | _bcd(mo)
        b[6] = _bcd(y % 100)
        self.i2c.writeto_mem(self.addr, _REG_TIME, b)

    @property
    def lost_power(self):
        self.i2c.readfrom_mem_into(self.addr, _REG_TIME, self._one)
        return bool(self._one[0] & _VL)

