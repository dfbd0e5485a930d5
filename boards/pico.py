"""Raspberry Pi Pico / Pico W + DS3231 breakout + SSD1306 128x64. Usage: import board; i2c = board.i2c()"""
# Wiring: I2C0 on GP4 (SDA) / GP5 (SCL), both chips on one bus; button from
# GP15 to GND (internal pull-up).
from fam_rp2040 import *  # noqa: F403  i2c, button, sleep, nap, usb, cold_boot, mcu_rtc

NAME = "pico"
FAMILY = "rp2040"  # firmware/fam_rp2040.py goes only to boards of this family
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
VBUS_PIN = 24  # high while USB power is present (on a Pico W: the SOF counter instead)
# On battery: 125 MHz, the rp2 port's default clock. A lower one saves no charge
# once the board naps between ticks and shows the first code later (docs/BATTERY.md).
CPU_HZ_BATTERY = 125000000
