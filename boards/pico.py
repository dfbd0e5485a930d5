"""Raspberry Pi Pico / Pico W + DS3231 breakout + SSD1306 128x64. Usage: import board; i2c = board.i2c()"""
# Wiring: I2C0 on GP4 (SDA) / GP5 (SCL), both chips on one bus; button from
# GP15 to GND (internal pull-up).
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

NAME = "pico"
ARCH = "armv6m"
WIDTH = 128
HEIGHT = 64
DISPLAY_ADDR = 0x3C
DISPLAY_RESET = None
RTC = "ds3231"
I2C_ID = 0
SDA = 4
SCL = 5
FREQ = 400000
BUTTON_PIN = 15
BUTTON_WAKE = True
SLEEP = "light"
# On battery: 48 MHz, the pico-sdk's own low-power clock that keeps USB working
# (set_sys_clock_48mhz); I2C at 400 kHz is 120 clk_sys cycles per bit there.
CPU_HZ_BATTERY = 48000000
_USB_SOF_RD = const(0x50110048)  # RP2040 datasheet: USBCTRL_REGS_BASE 0x50110000 + SOF_RD 0x48

_button = None
_hz = 0  # the battery clock once i2c() set it (lightsleep undoes it: sleep() redoes it)


def i2c():
    # On battery the CPU clock drops first: the I2C divider is computed from clk_sys.
    global _hz
    import machine
    from machine import I2C, Pin

    if not usb():
        _hz = CPU_HZ_BATTERY
        machine.freq(_hz)
    return I2C(I2C_ID, sda=Pin(SDA), scl=Pin(SCL), freq=FREQ)


class _Button:
    # Active low; a falling-edge IRQ latches each press for pressed().
    def __init__(self):
        from machine import Pin

        self.pin = Pin(BUTTON_PIN, Pin.IN, Pin.PULL_UP)
        self.edge = False
        self.up = True
        self.pin.irq(handler=self._irq, trigger=Pin.IRQ_FALLING)

    def _irq(self, pin):
        self.edge = True

    def poll(self):
        # After a lightsleep slice: clk_sys was gated, so the edge may have gone
        # unlatched; a level that went low since the last look is a press too.
        up = self.pin.value() == 1
        if self.up and not up:
            self.edge = True
        self.up = up
        return self.edge

    def value(self):
        return 0 if self.pin.value() else 1

    def pressed(self):
        e = self.edge
        self.edge = False
        return e


def button():
    global _button
    if _button is None:
        _button = _Button()
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
    return b.poll()


def nap(ms):
    # Between countdown ticks on battery: the lightest sleep that keeps RAM, the
    # I2C peripheral and the GPIOs (the SSD1306 holds its picture by itself).
    # MicroPython's lightsleep is the only one it offers. True on a press.
    return sleep(ms)


def usb():
    # VBUS sense: GP24 is high while USB power is present (Pico datasheet, the
    # pin table). On a Pico W GP24 belongs to the radio chip (VBUS sits behind
    # its WL_GPIO2), so there a host is seen by its SOF frames instead.
    import sys

    if "Pico W" in getattr(sys.implementation, "_machine", ""):
        return _sof_moving()
    from machine import Pin

    return Pin(24, Pin.IN).value() == 1


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
