"""paytoken.panel: GDDRAM (MONO_VLSB) to pixels, PNG and half-block text."""

from __future__ import annotations

import pytest
from paytoken.panel import (
    BEZEL,
    LIT,
    UNLIT,
    MonoVLSB,
    PanelError,
    panel_image,
    panel_png,
    panel_text,
    pixels,
)
from PIL import Image


def _ram(width=16, height=16):
    ram = bytearray(width * height // 8)
    ram[0] = 0x01  # (0, 0): page 0, LSB = top row
    ram[3] = 0x80  # (3, 7): page 0, MSB = row 7
    ram[width + 5] = 0x03  # (5, 8) and (5, 9): page 1
    return ram


def test_pixels_follow_the_controller_layout():
    px = pixels(_ram(), 16, 16)
    lit = {(x, y) for y in range(16) for x in range(16) if px[y][x]}
    assert lit == {(0, 0), (3, 7), (5, 8), (5, 9)}


def test_inverted_and_display_off():
    inv = pixels(_ram(), 16, 16, inverted=True)
    assert inv[0][0] == 0 and inv[0][1] == 1 and sum(map(sum, inv)) == 256 - 4
    off = pixels(_ram(), 16, 16, display_on=False)
    assert sum(map(sum, off)) == 0
    img = panel_image(_ram(), 16, 16, scale=4, display_on=False)
    assert LIT not in {c for _, c in img.getcolors(100000)}


def test_text_uses_half_blocks():
    ram = bytearray(4)  # 4 x 8 panel
    ram[0] = 0b00000001  # x=0: top of row pair 0 -> upper half
    ram[1] = 0b00000010  # x=1: bottom of row pair 0 -> lower half
    ram[2] = 0b00000011  # x=2: both -> full block
    ram[3] = 0b11000000  # x=3: rows 6, 7 -> full block on the last line
    assert panel_text(ram, 4, 8).split("\n") == ["\u2580\u2584\u2588 ", "    ", "    ", "   \u2588"]


def test_png_looks_like_the_oled(tmp_path):
    ram = _ram()
    path = panel_png(ram, 16, 16, tmp_path / "p.png", scale=4)
    img = Image.open(path).convert("RGB")
    border = 8
    assert img.size == (16 * 4 + 2 * border, 16 * 4 + 2 * border)
    assert img.getpixel((0, 0)) == BEZEL
    assert img.getpixel((border + 0, border + 0)) == LIT  # pixel (0, 0)
    assert img.getpixel((border + 3, border + 3)) == UNLIT  # its gap to dark neighbours
    assert img.getpixel((border + 4 * 3 + 1, border + 4 * 7 + 1)) == LIT  # pixel (3, 7)
    assert img.getpixel((border + 4 * 1 + 1, border + 1)) == UNLIT  # pixel (1, 0) is dark
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temp file left


def test_png_writers_at_once_never_share_a_temp_file(tmp_path):
    # two snapshots of one panel at once (threads here; processes alike): each writes
    # its own temp file and renames it over, so every one succeeds with a whole PNG
    from concurrent.futures import ThreadPoolExecutor

    rams = [bytes([i]) * 32 for i in range(16)]
    out = tmp_path / "p.png"
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda r: panel_png(r, 16, 16, out, scale=8), rams * 4))
    assert done == [out] * 64
    with Image.open(out) as img:
        img.load()  # a whole PNG, not two interleaved
        assert img.size == panel_image(rams[0], 16, 16, scale=8).size
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


@pytest.mark.parametrize(
    "size,width,height",
    [(10, 16, 16), (32, 16, 15), (0, 0, 8)],
)
def test_bad_geometry_is_refused(size, width, height):
    with pytest.raises(PanelError):
        pixels(bytes(size), width, height)


def test_monovlsb_pixel_roundtrip_and_clipping():
    fb = MonoVLSB(16, 16)
    fb.fill_rect(-3, -3, 5, 5, 1)  # clipped to (0..1, 0..1)
    assert [fb.pixel(x, y) for x, y in ((0, 0), (1, 1), (2, 2))] == [1, 1, 0]
    fb.pixel(99, 99, 1)  # off-panel: ignored
    fb.pixel(1, 1, 0)
    assert fb.pixel(1, 1) == 0 and fb.buffer[0] == 0b11 and fb.buffer[1] == 0b01
    with pytest.raises(PanelError):
        MonoVLSB(16, 16, bytearray(3))
