"""ESP32 DevKitC + DS3231 + SSD1306 128x64, deep sleep woken by the button. Usage: import board; i2c = board.i2c()"""
# Wiring: I2C0 on GPIO21 (SDA) / GPIO22 (SCL); the button is the DevKitC's
# BOOT button on GPIO0 (pulled up on the board, low when pressed), an RTC GPIO
# so ext0 can wake the chip from deep sleep.
from fam_esp32 import *  # noqa: F403  i2c, button, sleep, nap, usb, cold_boot, mcu_rtc

NAME = "esp32-devkitc"
FAMILY = "esp32"  # firmware/fam_esp32.py goes only to boards of this family
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
# On battery: 160 MHz, the esp32 port's default (ESP-IDF's). A lower one saves no
# charge once the chip naps between ticks and shows the first code later
# (docs/BATTERY.md); the APB, and so the I2C divider, stays at 80 MHz.
CPU_HZ_BATTERY = 160000000
