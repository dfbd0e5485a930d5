"""Find the station's tokens: MicroPython USB boards by vendor id, and virtual tokens.

Usage: ``ports = find_ports()``  # device paths, real boards first
"""

from __future__ import annotations

from serial.tools import list_ports

from paytoken.vdev import control

# USB vendor ids of the boards in boards/: MicroPython's own (0xF055), Raspberry Pi
# (RP2040 boards), Espressif (native USB), and the USB-serial bridges of ESP32 devkits
# (Silicon Labs CP210x, WCH CH340).
MICROPYTHON_VIDS = {
    0xF055: "MicroPython",
    0x2E8A: "Raspberry Pi",
    0x303A: "Espressif",
    0x10C4: "Silicon Labs CP210x",
    0x1A86: "WCH CH340",
}


def usb_boards() -> list[str]:
    """Serial devices whose USB vendor id is one of ``MICROPYTHON_VIDS``."""
    return sorted(p.device for p in list_ports.comports() if p.vid in MICROPYTHON_VIDS)


def virtual_tokens() -> list[str]:
    """Device paths of the running virtual tokens (``paytoken vdev start``)."""
    return sorted(str(d["port"]) for d in control.running() if d.get("port"))


def find_ports() -> list[str]:
    """Every token port this station can see: real boards, then virtual tokens."""
    return usb_boards() + virtual_tokens()
