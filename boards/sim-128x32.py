"""The emulated board with a 128x32 panel: chip models on a bus model, state in $PAYTOKEN_HW. Usage: import board; i2c = board.i2c()"""
from sim import *  # noqa: F403  the sim family (firmware/sim/__init__.py): bus and button constants, the functions

NAME = "sim-128x32"
FAMILY = "sim"  # firmware/sim/ (the chip models and this family's code) goes only to sim boards
ARCH = "x64"  # the host's mpy-cross -march (the unix port)
WIDTH = 128
HEIGHT = 32
RTC = rtc_chip()  # noqa: F405  the chip chosen in the hardware folder (hw.json)
