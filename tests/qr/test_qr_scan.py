"""Symbols drawn by qr.draw on an SSD1306-layout framebuffer, rendered by panel_png,
read back by zxing-cpp (paytoken.scan.read_qr): the digits come back."""

from __future__ import annotations

import random

import pytest
import qr
from paytoken.panel import MonoVLSB, panel_image, panel_png, pixels
from paytoken.scan import ScanError, read_qr
from PIL import Image
from qrcases import CAPACITY, byte_aligned_after_terminator


def _panel_with(digits: str, version: int = 1, ecc: str = "M", x0: int = 1, y0: int = 3):
    fb = MonoVLSB(128, 64)
    fb.fill(0)
    side = qr.draw(qr.encode(digits, version, ecc), fb, x0, y0, 2, 4)
    return fb, side


def test_draw_geometry_on_128x64():
    # Version 1 at 2 px/module with a 4-module quiet zone: (21 + 8) * 2 = 58 <= 64 px.
    q = qr.encode("123456789012345678", 1, "M")
    fb = MonoVLSB(128, 64)
    fb.fill(0)
    x0, y0, scale, quiet = 1, 3, 2, 4
    side = qr.draw(q, fb, x0, y0, scale, quiet)
    assert side == 58
    px = pixels(fb.buffer, 128, 64)
    for y in range(64):
        for x in range(128):
            inside = x0 <= x < x0 + side and y0 <= y < y0 + side
            if not inside:
                assert px[y][x] == 0, (x, y)  # nothing drawn outside the square
                continue
            mx = (x - x0) // scale - quiet
            my = (y - y0) // scale - quiet
            if 0 <= mx < q.size and 0 <= my < q.size:
                assert px[y][x] == (0 if q.module(mx, my) else 1), (x, y)
            else:
                assert px[y][x] == 1, (x, y)  # lit quiet zone: normal polarity


def test_draw_rejects_bad_geometry():
    q = qr.encode("1", 1, "M")
    with pytest.raises(ValueError, match="scale"):
        qr.draw(q, MonoVLSB(128, 64), 0, 0, 0, 4)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 6])
def test_panel_png_of_drawn_code_scans(tmp_path, scale):
    digits = "123456789012345678"
    fb, _ = _panel_with(digits)
    fb.fill_rect(70, 10, 50, 3, 1)  # other content on the panel does not matter
    path = panel_png(fb.buffer, 128, 64, tmp_path / "panel.png", scale=scale)
    assert read_qr(path) == digits


def test_random_codes_every_level_scan(tmp_path):
    rnd = random.Random(18004)
    cases = [(v, e) for v in (1, 2) for e in "LMQH"] * 3
    for i, (v, e) in enumerate(cases):
        n = rnd.randint(1, CAPACITY[(v, e)])
        if i < 8:  # include the lengths where segno itself pads wrongly
            quirk = [
                k for k in range(1, CAPACITY[(v, e)] + 1) if byte_aligned_after_terminator(k, v, e)
            ]
            n = rnd.choice(quirk)
        digits = "".join(rnd.choice("0123456789") for _ in range(n))
        fb, side = _panel_with(digits, v, e, x0=rnd.randint(0, 128 - 66), y0=0)
        assert side == (17 + 4 * v + 8) * 2
        img = panel_image(fb.buffer, 128, 64, scale=4)
        assert read_qr(img) == digits, (v, e, digits)


def test_normal_polarity_is_required_by_default(tmp_path):
    # An inverse-mode panel shows light modules on dark: a strict scanner refuses it.
    digits = "555555555555555555"
    fb, _ = _panel_with(digits)
    inverted = panel_image(fb.buffer, 128, 64, scale=4, inverted=True)
    with pytest.raises(ScanError, match="no QR code"):
        read_qr(inverted)
    assert read_qr(inverted, allow_inverted=True) == digits


def test_dark_display_and_blank_and_bad_files(tmp_path):
    fb, _ = _panel_with("123")
    with pytest.raises(ScanError, match="no QR code"):
        read_qr(panel_image(fb.buffer, 128, 64, display_on=False))
    with pytest.raises(ScanError, match="no QR code"):
        read_qr(Image.new("RGB", (200, 200), (255, 255, 255)))
    with pytest.raises(ScanError, match="cannot read picture"):
        read_qr(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(ScanError, match="cannot read picture"):
        read_qr(junk)


def test_two_different_codes_are_refused():
    fb = MonoVLSB(128, 64)
    fb.fill(0)
    qr.draw(qr.encode("111", 1, "M"), fb, 0, 3, 2, 4)
    qr.draw(qr.encode("222", 1, "M"), fb, 64, 3, 2, 4)
    with pytest.raises(ScanError, match="2 different QR codes"):
        read_qr(panel_image(fb.buffer, 128, 64, scale=4))
