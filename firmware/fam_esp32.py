"""The ESP32 boards' code; a board file holds the constants. Usage: in boards/<name>.py, from fam_esp32 import *"""
# Every function reads the board's constants from the deployed /board.py at call
# time (the board file star-imports this module first, then defines them).
import board as _b
from gpiobutton import Button

__all__ = ("i2c", "button", "sleep", "nap", "usb", "cold_boot", "mcu_rtc", "wdt", "LEASE_MS")

LEASE_MS = 8000  # the unlock lease (lease.py)

_button = None


def i2c():
    import machine
    from machine import I2C, Pin

    if not usb():
        machine.freq(_b.CPU_HZ_BATTERY)
    return I2C(_b.I2C_ID, sda=Pin(_b.SDA), scl=Pin(_b.SCL), freq=_b.FREQ)


def button():
    # A wake from deep sleep by ext0 counts as the first press.
    global _button
    if _button is None:
        import machine

        _button = Button(_b.BUTTON_PIN, machine.wake_reason() == machine.EXT0_WAKE)
    return _button


def sleep(ms):
    # Deep sleep until the button (ext0, level low) or the timeout. The chip
    # resets on wake and boots again; this returns only if a press is pending.
    import esp32
    import machine
    from machine import Pin

    if button().edge:
        return True
    esp32.wake_on_ext0(Pin(_b.BUTTON_PIN, Pin.IN), esp32.WAKEUP_ALL_LOW)
    machine.deepsleep(ms)
    return True


def nap(ms):
    # Between countdown ticks on battery: light sleep keeps RAM, the CPU state, the
    # I2C peripheral and the GPIOs (the SSD1306 holds its picture by itself); ext0
    # on the button ends it early. True on a press.
    import esp32
    import machine

    b = button()
    if b.edge:
        return True
    esp32.wake_on_ext0(b.pin, esp32.WAKEUP_ALL_LOW)
    machine.lightsleep(ms)
    if machine.wake_reason() == machine.EXT0_WAKE:
        b.edge = True  # the GPIO IRQ does not run in light sleep
    return b.edge


def usb():
    # No VBUS sense on a GPIO (the DevKitC's CP2102 VBUS only feeds the LDO), but a
    # station or desk opens the port with DTR/RTS, which resets the chip
    # through EN: so a boot from a reset or power-up counts as USB (the token stays
    # awake for the serial protocol), and a wake from deep sleep by the button as
    # battery. A battery token naps from its second wake on.
    import machine

    return machine.reset_cause() != machine.DEEPSLEEP_RESET


def cold_boot():
    # The RTC domain (and machine.RTC) survives deep sleep and soft resets only.
    import machine

    return machine.reset_cause() not in (machine.DEEPSLEEP_RESET, machine.SOFT_RESET)


def mcu_rtc():
    import machine

    return machine.RTC()


def wdt(ms):
    # The unlock lease's watchdog (lease.py): it resets the chip unless fed in time.
    from machine import WDT

    return WDT(timeout=ms)
