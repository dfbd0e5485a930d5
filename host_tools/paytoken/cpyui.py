"""The token's screens under CPython: ``firmware/ui.py`` drawn through Adafruit's driver.

Usage: ``picture = cpyui.render("code", code=c, remaining=17, wake=0)`` returns the
panel picture (MONO_VLSB bytes) of the SSD1306 model that the
``adafruit_ssd1306.SSD1306_I2C`` driver fed over a busio-style I2C object. The same
ui.py runs on MicroPython's ``framebuf``; tests compare the two pictures pixel for
pixel. No Blinka board is needed: the I2C object routes to the chip models. The
firmware's modules come from ``paytoken.fwload`` (no top-level ``ui`` in this process).
"""

from __future__ import annotations

from typing import Any

from paycode import PERIOD

from paytoken import fwload


class UIError(ValueError):
    """A screen that the UI does not have, or a bad argument."""


class BusioI2C:
    """The ``busio.I2C`` calls Adafruit drivers make, routed to the I2C bus model."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self._locked = False

    def try_lock(self) -> bool:
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self) -> None:
        self._locked = False

    def scan(self) -> list[int]:
        return self.bus.scan()

    def writeto(self, address: int, buffer: Any, *, start: int = 0, end: int | None = None) -> None:
        self.bus.writeto(address, bytes(memoryview(buffer)[start:end]))

    def readfrom_into(
        self, address: int, buffer: Any, *, start: int = 0, end: int | None = None
    ) -> None:
        mv = memoryview(buffer)[start:end]
        tmp = bytearray(len(mv))
        self.bus.readfrom_into(address, tmp)
        mv[:] = tmp

    def writeto_then_readfrom(
        self, address: int, out_buffer: Any, in_buffer: Any, *,
        out_start: int = 0, out_end: int | None = None, in_start: int = 0, in_end: int | None = None,
    ) -> None:
        self.writeto(address, out_buffer, start=out_start, end=out_end)
        self.readfrom_into(address, in_buffer, start=in_start, end=in_end)


def render(
    screen: str,
    *,
    width: int = 128,
    height: int = 64,
    code: str | None = None,
    remaining: int = PERIOD,
    wake: int = 0,
    note: str | None = None,
    ticks: tuple[int, ...] = (),
) -> tuple[bytes, int]:
    """Draw one screen as the token would; return (panel picture, I2C bytes sent).

    ``screen`` is ``"code"`` (needs the 18-digit ``code`` and ``remaining`` seconds)
    or an error screen of ``ui.SCREENS``; ``ticks`` are later countdown values drawn
    with partial updates after the first frame.
    """
    import adafruit_ssd1306

    ui = fwload.module("ui")
    I2CBus = fwload.module("sim.bus").I2CBus  # noqa: N806 (a class)
    SSD1306Model = fwload.module("sim.oled").SSD1306Model  # noqa: N806

    if screen != "code" and screen not in ui.SCREENS:
        raise UIError(f"unknown screen {screen!r}: code or one of {sorted(ui.SCREENS)}")
    if screen == "code" and (not code or len(code) != 18 or not code.isdigit()):
        raise UIError("the code screen needs the 18-digit code")
    bus = I2CBus()
    model = SSD1306Model(width, height)
    bus.attach(0x3C, model)
    disp = adafruit_ssd1306.SSD1306_I2C(width, height, BusioI2C(bus), addr=0x3C)
    u = ui.UI(disp, width, height, PERIOD)
    if screen == "code":
        u.code(code, remaining, wake)
    else:
        u.message(screen, wake, note)
    disp.show()
    for r in ticks:
        u.countdown(r)
        disp.show()
    return bytes(model.picture()), bus.bytes
