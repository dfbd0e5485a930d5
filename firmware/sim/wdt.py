# A model of machine.WDT for the sim boards: the watchdog itself is the supervisor's
# (paytoken.vdev.supervisor), which resets the board (kills the interpreter, boots
# main.py) when wdt.json in the hardware folder has not been rewritten for timeout_ms.
# Each feed rewrites it (a new file: temp + rename). Like the chip's, the watchdog
# outlives a soft reset and stops only on a hard reset or a power cut.
import os

from . import store


class WDT:
    def __init__(self, folder, timeout):
        self._folder = folder
        self._ms = timeout
        self.feed()

    def feed(self):
        store.save(self._folder, "wdt.json",
                   {"timeout_ms": self._ms, "fed": int.from_bytes(os.urandom(4), "big")})
