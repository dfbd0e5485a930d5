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
CPU_HZ_BATTERY = 48000000  # recorded in cpu.json (the unix port keeps its speed)


def i2c():
    # On battery the CPU clock drops first (a real bus derives its divider from it).
    hw = sim.hardware(WIDTH, HEIGHT)
    if not sim.usb():
        sim.cpu_clock(CPU_HZ_BATTERY)
    return hw.bus


def button():
    return sim.hardware(WIDTH, HEIGHT).button


def sleep(ms):
    # Returns True when a press woke it (the press stays for button().pressed()).
    sim.hardware(WIDTH, HEIGHT)
    return sim.sleep(ms)


def nap(ms):
    # Between countdown ticks on battery: the panel keeps its picture. True on a press.
    sim.hardware(WIDTH, HEIGHT)
    return sim.nap(ms)


def usb():
    # The hardware folder's USB knob (paytoken.vhw.set_usb); attached by default.
    sim.hardware(WIDTH, HEIGHT)
    return sim.usb()


def ticks_ms():
    # World milliseconds in a virtual world (tests run minutes in no time), else the port's.
    sim.hardware(WIDTH, HEIGHT)
    return sim.ticks_ms()


def cold_boot():
    return True  # every interpreter start is a power-up


def mcu_rtc():
    return sim.hardware(WIDTH, HEIGHT).mcu_rtc()
