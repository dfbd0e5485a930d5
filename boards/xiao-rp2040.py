"""Seeed XIAO RP2040 on the XIAO expansion board (PCF8563, SSD1306 128x64, button). Usage: import board; i2c = board.i2c()"""
# The expansion board wires the OLED and the PCF8563 to D4/D5 = GPIO6/GPIO7,
# which is I2C1 on the RP2040; its user button pulls D1 = GPIO27 to GND.
NAME = "xiao-rp2040"
ARCH = "armv6m"
WIDTH = 128
HEIGHT = 64
DISPLAY_ADDR = 0x3C
DISPLAY_RESET = None
RTC = "pcf8563"
I2C_ID = 1
SDA = 6  # D4
SCL = 7  # D5
FREQ = 400000
BUTTON_PIN = 27  # D1
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
