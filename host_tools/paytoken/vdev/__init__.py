"""Virtual tokens: the real firmware on MicroPython's unix port behind a pseudo-terminal.

Usage: ``paytoken vdev start --flash DIR`` (see ``paytoken.vdev.supervisor``); control
helpers in ``paytoken.vdev.control``.
"""
