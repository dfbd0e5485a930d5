"""Seeed XIAO RP2040 on the XIAO expansion board (PCF8563, SSD1306 128x64, button). Usage: import board; i2c = board.i2c()"""
# The expansion board wires the OLED and the PCF8563 to D4/D5 = GPIO6/GPIO7,
# which is I2C1 on the RP2040; its user button pulls D1 = GPIO27 to GND.
from fam_rp2040 import *  # noqa: F403  i2c, button, sleep, nap, usb, cold_boot, mcu_rtc

NAME = "xiao-rp2040"
FAMILY = "rp2040"  # firmware/fam_rp2040.py goes only to boards of this family
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
VBUS_PIN = None  # no VBUS sense on a GPIO: a USB host is seen by its SOF packets
# On battery: 125 MHz, the rp2 port's default clock. A lower one saves no charge
# once the board naps between ticks and shows the first code later (docs/BATTERY.md).
CPU_HZ_BATTERY = 125000000
