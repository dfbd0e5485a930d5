"""The emulated board with a 128x32 panel: chip models on a bus model, state in $PAYTOKEN_HW. Usage: import board; i2c = board.i2c()"""
import sim

NAME = "sim-128x32"
ARCH = "x64"  # the host's mpy-cross -march (the unix port)
WIDTH = 128
HEIGHT = 32
DISPLAY_ADDR = 0x3C
DISPLAY_RESET = None
RTC = sim.rtc_chip()  # the chip chosen in the hardware folder (hw.json)
I2C_ID = 0
SDA = None
SCL = None
FREQ = 400000
BUTTON_PIN = None
BUTTON_WAKE = True
SLEEP = "light"


def i2c():
    return sim.hardware(WIDTH, HEIGHT).bus


def button():
    return sim.hardware(WIDTH, HEIGHT).button


def sleep(ms):
    # Returns True when a press woke it (the press stays for button().pressed()).
    sim.hardware(WIDTH, HEIGHT)
    return sim.sleep(ms)


def cold_boot():
    return True  # every interpreter start is a power-up


def mcu_rtc():
    return sim.hardware(WIDTH, HEIGHT).mcu_rtc()
