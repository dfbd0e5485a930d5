# A model of machine.RTC for the sim boards: follows the world clock from the
# value set, lives only as long as the interpreter (power), and starts at
# 2021-01-01 like the rp2 port. datetime tuple: (y, mo, d, weekday, h, mi, s, sub).
from . import store
from .rtc import civil_from_days, days_from_civil

_START = 1609459200  # 2021-01-01 00:00:00


class MachineRTC:
    def __init__(self, folder=None, clock=None):
        self.folder = folder
        self._clock = clock
        self._base = float(_START)
        self._world = self._now()
        self._mem = b""

    def _now(self):
        return self._clock() if self._clock else store.world_time(self.folder)

    def datetime(self, t=None):
        if t is not None:
            self._base = float(days_from_civil(t[0], t[1], t[2]) * 86400 + t[4] * 3600 + t[5] * 60 + t[6])
            self._world = self._now()
            return None
        s = int((self._base + self._now() - self._world) // 1)
        days = s // 86400
        r = s - days * 86400
        y, mo, d = civil_from_days(days)
        return (y, mo, d, (days + 3) % 7, r // 3600, r // 60 % 60, r % 60, 0)

    def memory(self, data=None):
        if data is None:
            return self._mem
        self._mem = bytes(data)
