"""Pico fob with a power latch: off between payments, the button switches it on. Usage: import board; board.i2c()"""
# The Pico of boards/pico.py (DS3231, SSD1306 128x64 on I2C0 GP4/GP5, button on GP15)
# behind a power latch (docs/BATTERY.md, "The power-latch fob"): the cell feeds VSYS
# through a TI TPS22917 load switch whose ON pin is diode-ORed from the button (to the
# cell) and from HOLD_PIN; the firmware holds the supply from its first board call and
# lets go when the display time ends. The button is read on GP15, high while pressed.
# The DS3231 keeps time on its VBAT pin, wired to the cell.
from fam_rp2040 import *  # noqa: F403  i2c, button, sleep, nap, usb, cold_boot, mcu_rtc
from fam_rp2040 import power_off  # noqa: F401  the latch's release (app.run calls it)

NAME = "pico-latch"
FAMILY = "rp2040"
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
BUTTON_ACTIVE_HIGH = True  # GP15 reads the cell through a 100k/220k divider while pressed
BUTTON_WAKE = True  # the press is the power-up
SLEEP = "latch"  # between payments the supply is off: every wake is a power-up
HOLD_PIN = 22  # high: the load switch stays on; low: the board powers off (on battery)
VBUS_PIN = 24
CPU_HZ_BATTERY = 125000000
