"""Render an SSD1306 framebuffer (its GDDRAM) as a picture of the OLED or as terminal text.

Usage: ``panel_png(gddram, 128, 64, "screen.png")`` or ``print(panel_text(gddram, 128, 64))``.

The GDDRAM layout is the controller's (MicroPython's ``framebuf.MONO_VLSB``):
``width * height // 8`` bytes, page-major; byte ``page * width + x`` holds the
column of 8 pixels ``y = 8 * page .. 8 * page + 7`` with the top pixel in the LSB.
A set bit is a lit pixel, unless the panel is in inverse mode (command 0xA7).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

from PIL import Image, ImageDraw

# A lit pixel of a white/blue SSD1306 module, and the unlit glass and bezel.
LIT = (210, 236, 255)
UNLIT = (14, 16, 20)
BEZEL = (0, 0, 0)
# The glass between two lit dots.
GLOW = (118, 132, 146)


class PanelError(ValueError):
    """The framebuffer does not match the panel geometry (or another bad argument)."""


def _check(gddram: bytes | bytearray | memoryview, width: int, height: int) -> None:
    if width <= 0 or height <= 0 or height % 8:
        raise PanelError(f"panel {width}x{height}: width > 0 and height a multiple of 8 needed")
    if len(gddram) != width * height // 8:
        raise PanelError(
            f"framebuffer has {len(gddram)} bytes, a {width}x{height} panel needs "
            f"{width * height // 8}"
        )


def pixels(
    gddram: bytes | bytearray | memoryview,
    width: int,
    height: int,
    *,
    inverted: bool = False,
    display_on: bool = True,
) -> list[list[int]]:
    """Rows of 1 (lit) / 0 (dark) as the viewer sees them: ``pixels(...)[y][x]``.

    ``inverted`` is the controller's inverse mode; a display that is off is all dark.
    """
    _check(gddram, width, height)
    if not display_on:
        return [[0] * width for _ in range(height)]
    flip = 1 if inverted else 0
    rows = []
    for y in range(height):
        base = (y >> 3) * width
        bit = y & 7
        rows.append([((gddram[base + x] >> bit) & 1) ^ flip for x in range(width)])
    return rows


def panel_image(
    gddram: bytes | bytearray | memoryview,
    width: int,
    height: int,
    *,
    scale: int = 4,
    inverted: bool = False,
    display_on: bool = True,
) -> Image.Image:
    """A PIL image that looks like the OLED: dots of ``scale`` px on a black bezel.

    From ``scale`` 4 up each dot leaves a 1-px gap (dark, faintly lit between two lit
    dots, as the glass glows), so the picture reads as a dot matrix and still scans;
    the bezel is ``2 * scale`` px wide.
    """
    if scale < 1:
        raise PanelError(f"scale must be >= 1, got {scale}")
    px = pixels(gddram, width, height, inverted=inverted, display_on=display_on)
    gap = 1 if scale >= 4 else 0
    border = 2 * scale
    img = Image.new("RGB", (width * scale + 2 * border, height * scale + 2 * border), BEZEL)
    draw = ImageDraw.Draw(img)
    draw.rectangle(
        (border, border, border + width * scale - 1, border + height * scale - 1), fill=UNLIT
    )
    for y, row in enumerate(px):
        top = border + y * scale
        below = px[y + 1] if y + 1 < height else None
        for x, lit in enumerate(row):
            if not lit:
                continue
            left = border + x * scale
            right = left + scale - 1
            bottom = top + scale - 1
            if gap:
                # the glass between two lit dots glows a little (and a camera blurs it)
                east = x + 1 < width and row[x + 1]
                south = below is not None and below[x]
                if east:
                    draw.line((right, top, right, bottom - 1), fill=GLOW)
                if south:
                    draw.line((left, bottom, right - 1, bottom), fill=GLOW)
                if east and below is not None and south and below[x + 1]:
                    draw.point((right, bottom), fill=GLOW)
            draw.rectangle((left, top, right - gap, bottom - gap), fill=LIT)
    return img


def panel_png(
    gddram: bytes | bytearray | memoryview,
    width: int,
    height: int,
    path: str | os.PathLike[str],
    scale: int = 4,
    *,
    inverted: bool = False,
    display_on: bool = True,
) -> Path:
    """Write :func:`panel_image` as a PNG to ``path`` (atomically) and return the path."""
    img = panel_image(gddram, width, height, scale=scale, inverted=inverted, display_on=display_on)
    out = Path(path)
    # a temp name of this writer's own (two snapshots of one panel may run at once)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            img.save(f, format="PNG")
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return out


def panel_text(
    gddram: bytes | bytearray | memoryview,
    width: int,
    height: int,
    *,
    inverted: bool = False,
    display_on: bool = True,
) -> str:
    """The panel as Unicode half-blocks, two pixel rows per line (``height // 2`` lines)."""
    px = pixels(gddram, width, height, inverted=inverted, display_on=display_on)
    glyph = (" ", "\u2584", "\u2580", "\u2588")  # index: top lit * 2 + bottom lit
    lines = []
    for y in range(0, height, 2):
        top, bottom = px[y], px[y + 1]
        lines.append("".join(glyph[top[x] * 2 + bottom[x]] for x in range(width)))
    return "\n".join(lines)


class MonoVLSB:
    """A pure-Python stand-in for ``framebuf.FrameBuffer(buf, w, h, framebuf.MONO_VLSB)``.

    Only what drawing code here needs: ``pixel``, ``fill``, ``fill_rect``, ``hline``,
    ``vline``; ``buffer`` is the GDDRAM image.
    """

    def __init__(self, width: int, height: int, buffer: bytearray | None = None) -> None:
        if buffer is None:
            buffer = bytearray(width * height // 8)
        _check(buffer, width, height)
        self.width = width
        self.height = height
        self.buffer = buffer

    def pixel(self, x: int, y: int, c: int | None = None) -> int | None:
        """Set pixel (x, y) to ``c`` (0/1), or return it when ``c`` is None; off-panel is ignored."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        i = (y >> 3) * self.width + x
        m = 1 << (y & 7)
        if c is None:
            return 1 if self.buffer[i] & m else 0
        if c:
            self.buffer[i] |= m
        else:
            self.buffer[i] &= ~m & 0xFF
        return None

    def fill_rect(self, x: int, y: int, w: int, h: int, c: int) -> None:
        """Fill a rectangle, clipped to the panel like framebuf."""
        for yy in range(max(y, 0), min(y + h, self.height)):
            for xx in range(max(x, 0), min(x + w, self.width)):
                self.pixel(xx, yy, c)

    def fill(self, c: int) -> None:
        """Set every pixel to ``c``."""
        v = 0xFF if c else 0
        for i in range(len(self.buffer)):
            self.buffer[i] = v

    def hline(self, x: int, y: int, w: int, c: int) -> None:
        """A horizontal line of ``w`` pixels."""
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x: int, y: int, h: int, c: int) -> None:
        """A vertical line of ``h`` pixels."""
        self.fill_rect(x, y, 1, h, c)
