"""Firmware version and build year (clocks reading earlier are not trusted).

Usage: import fwversion; fwversion.VERSION
"""

VERSION = "1.0.0"
# A clock that reads a year before this one was never set: the token asks for a sync.
BUILD_YEAR = 2026
