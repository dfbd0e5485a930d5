"""The emulated power-latch board (as boards/pico-latch.py): off between payments. Usage: import board; board.i2c()"""
from sim import *  # noqa: F403  the sim family (firmware/sim/__init__.py)
from sim.latch import power_off  # noqa: F401  releasing the latch powers the board off

NAME = "sim-latch"
FAMILY = "sim"
ARCH = "x64"
WIDTH = 128
HEIGHT = 64
RTC = rtc_chip()  # noqa: F405
SLEEP = "latch"  # between payments the supply is off: every wake is a power-up
