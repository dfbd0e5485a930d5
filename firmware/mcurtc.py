"""The MCU's internal RTC as a fallback clock. Usage: rtc = MCURTC(machine.RTC(), board.cold_boot())"""
# Valid only while the board stays powered: after a power-up the time counts
# as lost until set_datetime. Where the RTC keeps memory across resets (ESP32
# deep sleep), a marker there remembers that the time was set since power-up.
from ds3231 import check, weekday

_MARK = b"paytoken-rtc-set"
_MIN_YEAR = 2024  # an RTC earlier than this was never set (rp2 starts in 2021)


class MCURTC:
    def __init__(self, rtc, cold_boot):
        self.rtc = rtc
        self._lost = bool(cold_boot)
        if not self._lost and hasattr(rtc, "memory"):
            self._lost = rtc.memory() != _MARK

    def datetime(self):
        t = self.rtc.datetime()  # (y, mo, d, weekday, h, mi, s, subseconds)
        return t[0], t[1], t[2], t[4], t[5], t[6]

    def set_datetime(self, t):
        y, mo, d, h, mi, s = check(t)
        self.rtc.datetime((y, mo, d, weekday(y, mo, d) - 1, h, mi, s, 0))  # 0 = Monday
        if hasattr(self.rtc, "memory"):
            self.rtc.memory(_MARK)
        self._lost = False

    @property
    def lost_power(self):
        return self._lost or self.rtc.datetime()[0] < _MIN_YEAR
