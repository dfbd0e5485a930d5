"""The RP2040 boards' code; a board file holds the constants. Usage: in boards/<name>.py, from fam_rp2040 import *"""
# Every function reads the board's constants from the deployed /board.py at call
# time (the board file star-imports this module first, then defines them).
import board as _b

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

from gpiobutton import Button

__all__ = ("i2c", "button", "sleep", "nap", "usb", "cold_boot", "mcu_rtc", "wdt", "LEASE_MS")

LEASE_MS = 8000  # the unlock lease (lease.py); the RP2040 watchdog counts to 8.3 s at most

_USB_SOF_RD = const(0x50110048)  # RP2040 datasheet: USBCTRL_REGS_BASE 0x50110000 + SOF_RD 0x48

_button = None
_hz = 0  # the battery clock once i2c() set it (lightsleep undoes it: sleep() redoes it)
_OFF_MS = const(200)  # a released latch: the rail has fallen well within this


def i2c():
    # On battery the CPU clock is set first: the I2C divider is computed from clk_sys.
    # A power-latch board holds its supply first of all (the wake's first board call).
    global _hz
    import machine
    from machine import I2C, Pin

    hold()
    if not usb():
        _hz = _b.CPU_HZ_BATTERY
        machine.freq(_hz)
    return I2C(_b.I2C_ID, sda=Pin(_b.SDA), scl=Pin(_b.SCL), freq=_b.FREQ)


def button():
    global _button
    if _button is None:
        _button = Button(_b.BUTTON_PIN, False, getattr(_b, "BUTTON_ACTIVE_HIGH", False))
    return _button


def sleep(ms):
    # Light sleep in 50 ms slices until a press or the deadline. USB serial
    # pauses while asleep, so the app sleeps only while no host is talking.
    # lightsleep brings clk_sys back at the build's default (125 MHz): the battery
    # clock is set again before the bus is used (its divider was computed for it).
    import time

    import machine

    b = button()
    end = time.ticks_add(time.ticks_ms(), ms)
    for _ in range(ms // 50 + 1):  # bounded even if ticks stall in sleep
        if b.poll():
            break
        left = time.ticks_diff(end, time.ticks_ms())
        if left <= 0:
            break
        machine.lightsleep(min(left, 50))
    if _hz and machine.freq() != _hz:
        machine.freq(_hz)
    if b.poll():
        hold()  # a latch released while USB powered the board: this wake holds again
        return True
    return False


def hold():
    # A power-latch board (HOLD_PIN, boards/pico-latch.py): drive the load switch's
    # enable so the supply stays on after the press that switched it on. Others: nothing.
    pin = getattr(_b, "HOLD_PIN", None)
    if pin is not None:
        from machine import Pin

        Pin(pin, Pin.OUT, value=1)


def power_off():
    # The end of a wake on a power-latch board: let go of the supply. On battery the
    # board dies within _OFF_MS and this never returns; the DS3231 keeps time on its
    # VBAT pin and the next press powers the board up again. It returns (False) while
    # something else feeds it (USB on VBUS, or the button still held down): the app
    # then sleeps as on any board, and the next press holds the supply again.
    pin = getattr(_b, "HOLD_PIN", None)
    if pin is None:
        return False
    import time

    from machine import Pin

    Pin(pin, Pin.OUT, value=0)
    time.sleep_ms(_OFF_MS)
    return False


def nap(ms):
    # Between countdown ticks on battery: the lightest sleep that keeps RAM, the
    # I2C peripheral and the GPIOs (the SSD1306 holds its picture by itself).
    # MicroPython's lightsleep is the only one it offers. True on a press.
    return sleep(ms)


def usb():
    # VBUS_PIN: a GPIO that is high while USB power is present (the Pico's GP24,
    # per its pin table). Without one (the XIAO), or on a Pico W, where GP24
    # belongs to the radio chip (VBUS sits behind its WL_GPIO2), a host is seen by
    # its start-of-frame packets instead; a charger alone then counts as battery.
    import sys

    pin = _b.VBUS_PIN
    if pin is None or "Pico W" in getattr(sys.implementation, "_machine", ""):
        return _sof_moving()
    from machine import Pin

    return Pin(pin, Pin.IN).value() == 1


def _sof_moving():
    # A USB host sends a start-of-frame every 1 ms; the controller keeps the last
    # frame number (USBCTRL SOF_RD, 11 bits). It moves only while a host is there.
    import time

    from machine import mem32

    a = mem32[_USB_SOF_RD] & 0x7FF
    time.sleep_ms(3)
    return mem32[_USB_SOF_RD] & 0x7FF != a


def cold_boot():
    import machine

    return machine.reset_cause() == machine.PWRON_RESET


def mcu_rtc():
    import machine

    return machine.RTC()


def wdt(ms):
    # The unlock lease's watchdog (lease.py): it resets the chip unless fed in time.
    from machine import WDT

    return WDT(timeout=min(ms, 8388))
