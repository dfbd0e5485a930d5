"""Raspberry Pi Pico / Pico W + DS3231 breakout + SSD1306 128x32. Usage: import board; i2c = board.i2c()"""
# Wiring: I2C0 on GP4 (SDA) / GP5 (SCL), both chips on one bus; button from
# GP15 to GND (internal pull-up).
NAME = "pico-128x32"
ARCH = "armv6m"
WIDTH = 128
HEIGHT = 32
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

_button = None


def i2c():
    from machine import I2C, Pin

    return I2C(I2C_ID, sda=Pin(SDA), scl=Pin(SCL), freq=FREQ)


class _Button:
    # Active low; a falling-edge IRQ latches each press for pressed().
    def __init__(self):
        from machine import Pin

        self.pin = Pin(BUTTON_PIN, Pin.IN, Pin.PULL_UP)
        self.edge = False
        self.pin.irq(handler=self._irq, trigger=Pin.IRQ_FALLING)

    def _irq(self, pin):
        self.edge = True

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
    import time

    import machine

    b = button()
    end = time.ticks_add(time.ticks_ms(), ms)
    for _ in range(ms // 50 + 1):  # bounded even if ticks stall in sleep
        if b.edge:
            return True
        left = time.ticks_diff(end, time.ticks_ms())
        if left <= 0:
            break
        machine.lightsleep(min(left, 50))
    return b.edge


def cold_boot():
    import machine

    return machine.reset_cause() == machine.PWRON_RESET


def mcu_rtc():
    import machine

    return machine.RTC()
