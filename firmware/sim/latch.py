"""The power latch of the sim-latch board: releasing it powers the board off. Usage: in boards/sim-latch.py, from sim.latch import power_off"""
# As on boards/pico-latch.py: the board is on only while the button or the firmware
# holds its supply. On battery, power_off() is the supply going away: the RTC model goes
# to its battery, the panel goes dark, power.json says off (by the latch) and the
# interpreter stops, as a chip does. The host's press (paytoken.vhw.press) switches the
# supply on again, and the virtual token boots. With USB attached (usb.json) VBUS keeps
# the board up: nothing happens and power_off returns False.
from . import store


def power_off():
    from . import _open, rtc, usb

    if usb():
        return False
    hw = _open()
    hw.bus.flush()
    f = hw.folder
    st = store.load(f, "rtc.json", None)
    if st is not None:
        rtc.power(st, False, store.world_time(f))
        store.save(f, "rtc.json", st)
    w, h = hw.display.width, hw.display.height
    store.save_bytes(f, "panel.bin", bytes(w * h // 8))
    store.save(f, "panel.json", {"width": w, "height": h, "display_on": False, "lit": False,
                                 "inverted": False, "contrast": 0, "entire_on": False,
                                 "powered": False})
    store.save(f, "power.json", {"on": False, "latch": True})
    import os
    import sys

    if os.getenv("PAYTOKEN_BOOT"):
        # a virtual token (paytoken vdev): its supervisor sees power.json and kills the
        # interpreter within 50 ms; an exit here would drop into its REPL meanwhile
        import time

        while True:
            time.sleep_ms(1000)
    sys.exit(0)
