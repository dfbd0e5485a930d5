"""ESP32 DevKitC + DS3231 + SSD1306 128x64, deep sleep woken by the button. Usage: import board; i2c = board.i2c()"""
# Wiring: I2C0 on GPIO21 (SDA) / GPIO22 (SCL); the button is the DevKitC's
# BOOT button on GPIO0 (pulled up on the board, low when pressed), an RTC GPIO
# so ext0 can wake the chip from deep sleep.
NAME = "esp32-devkitc"
ARCH = "xtensawin"
WIDTH = 128
HEIGHT = 64
DISPLAY_ADDR = 0x3C
DISPLAY_RESET = None
RTC = "ds3231"
I2C_ID = 0
SDA = 21
SCL = 22
FREQ = 400000
BUTTON_PIN = 0
BUTTON_WAKE = True
SLEEP = "deep"
# On battery: 80 MHz, the lowest clock that keeps the APB (and so the I2C and
# UART dividers) at 80 MHz; one code per second needs far less.
CPU_HZ_BATTERY = 80000000

_button = None


def i2c():
    import machine
    from machine import I2C, Pin

    if not usb():
        machine.freq(CPU_HZ_BATTERY)
    return I2C(I2C_ID, sda=Pin(SDA), scl=Pin(SCL), freq=FREQ)


class _Button:
    # Active low; a falling-edge IRQ latches each press. A wake from deep sleep
    # by ext0 counts as the first press.
    def __init__(self):
        import machine
        from machine import Pin

        self.pin = Pin(BUTTON_PIN, Pin.IN, Pin.PULL_UP)
        self.edge = machine.wake_reason() == machine.EXT0_WAKE
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
    # Deep sleep until the button (ext0, level low) or the timeout. The chip
    # resets on wake and boots again; this returns only if a press is pending.
    import esp32
    import machine
    from machine import Pin

    if button().edge:
        return True
    esp32.wake_on_ext0(Pin(BUTTON_PIN, Pin.IN), esp32.WAKEUP_ALL_LOW)
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
    # The DevKitC wires no VBUS sense to a GPIO (its CP2102's VBUS only feeds the
    # LDO). A station or desk opens the port with DTR/RTS, which resets the chip
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
