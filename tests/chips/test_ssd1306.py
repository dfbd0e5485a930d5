"""SSD1306: our driver against the register model in the real MicroPython interpreter
(bytes on the bus, pixels on the panel), and the model against an independent oracle,
Adafruit's CircuitPython driver, on CPython."""

from __future__ import annotations

import random
import textwrap

import pytest
from paytoken import upy

# Runs in MicroPython: driver + model on the bus model, in memory.
PRELUDE = textwrap.dedent("""
    from sim.bus import I2CBus
    from sim.oled import SSD1306Model
    from ssd1306 import SSD1306_I2C
    import binascii
    def setup(w, h):
        bus = I2CBus()
        m = SSD1306Model(w, h)
        bus.attach(0x3C, m)
        return bus, m, SSD1306_I2C(w, h, bus)
    def sent(bus, f):
        b0, t0 = bus.bytes, bus.transactions
        f()
        return (bus.bytes - b0, bus.transactions - t0)
    def hx(b):
        return binascii.hexlify(bytes(b)).decode()
""")


def _upy(body: str):
    return upy.eval_repr(PRELUDE + textwrap.dedent(body))


def _bits(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr)


def _px(pic: bytes, w: int, x: int, y: int) -> int:
    return (pic[(y >> 3) * w + x] >> (y & 7)) & 1


@pytest.mark.parametrize("h", [64, 32])
def test_full_then_partial_updates(h):
    out = _upy(f"""
        bus, m, d = setup(128, {h})
        r = {{}}
        r["noise"] = hx(m.gddram()[:128 * {h} // 8])
        d.fill(0); d.text("PAY 1234", 0, 0); d.rect(0, {h} - 8, 128, 8, 1)
        r["first"] = sent(bus, d.show)
        r["pic1"] = hx(m.picture()); r["buf1"] = hx(d.buffer)
        r["same"] = sent(bus, d.show)
        d.pixel(5, 10, 1)
        r["one"] = sent(bus, d.show)
        d.pixel(3, 20, 1); d.pixel(100, 21, 1)
        r["span"] = sent(bus, d.show)
        d.pixel(7, 0, 1 - d.pixel(7, 0)); d.pixel(9, 26, 1)
        r["two"] = sent(bus, d.show)
        r["pic2"] = hx(m.picture()); r["buf2"] = hx(d.buffer)
        r["lit"] = m.lit()
        print(repr(r))
    """)
    n = 128 * h // 8
    assert out["noise"] != "00" * n  # power-on GDDRAM is noise ...
    assert out["pic1"] == out["buf1"]  # ... so the first show must (and did) send it all
    assert out["first"] == (8 + 2 + n, 2)  # window command + one data transaction
    assert out["same"] == (0, 0)  # nothing changed, nothing sent
    assert out["one"] == (8 + 3, 2)  # one page, one column
    assert out["span"] == (8 + 2 + 98, 2)  # page 2, columns 3..100
    assert out["two"] == (2 * (8 + 3), 4)  # pages 0 and 3, one column each
    assert out["pic2"] == out["buf2"]
    pic = _bits(out["pic2"])
    assert _px(pic, 128, 5, 10) == 1 and _px(pic, 128, 100, 21) == 1 and _px(pic, 128, 9, 26) == 1
    assert _px(pic, 128, 6, 10) == 0 and _px(pic, 128, 100, 20) == 0
    assert out["lit"] is True


def test_power_contrast_invert_and_absent():
    out = _upy("""
        bus, m, d = setup(128, 64)
        d.fill(0); d.fill_rect(0, 0, 64, 64, 1); d.show()
        r = {"contrast0": m.contrast}
        d.poweroff(); r["off"] = (m.lit(), hx(m.picture()) == "00" * 1024)
        d.poweron(); r["on"] = (m.lit(), bytes(m.picture()) == bytes(d.buffer))
        d.contrast(10); r["contrast"] = m.contrast
        d.invert(True); r["inv"] = (m.inverted, m.pixels()[0], m.pixels()[127])
        d.invert(False); r["norm"] = (m.inverted, m.pixels()[0], m.pixels()[127])
        try:
            d.contrast(256)
        except ValueError as e:
            r["bad"] = str(e)
        try:
            SSD1306_I2C(128, 64, bus, addr=0x3D)
        except OSError as e:
            r["absent"] = str(e)
        print(repr(r))
    """)
    assert out["contrast0"] == 0x7F
    assert out["off"] == (False, True)
    assert out["on"] == (True, True)  # GDDRAM kept while off
    assert out["contrast"] == 10
    assert out["inv"] == (True, 0, 1) and out["norm"] == (False, 1, 0)
    assert "256" in out["bad"]
    assert out["absent"] == "SSD1306 not found at 0x3d"


def test_sim_board_persists_panel(hw):
    from chips_helpers import run_sim
    from paytoken import vhw

    f = hw(board="sim-128x32")
    run_sim(textwrap.dedent("""
        import board
        from ssd1306 import SSD1306_I2C
        d = SSD1306_I2C(board.WIDTH, board.HEIGHT, board.i2c())
        d.fill(0); d.hline(0, 31, 128, 1); d.pixel(2, 3, 1); d.show()
        print(repr(board.HEIGHT))
    """), f, board="sim-128x32")
    pic, w, h, on, inv = vhw.panel(f)
    assert (w, h, on, inv) == (128, 32, True, False)
    assert _px(pic, w, 2, 3) == 1 and _px(pic, w, 3, 3) == 0
    assert all(_px(pic, w, x, 31) for x in range(128))
    assert sum(bin(b).count("1") for b in pic) == 129
    assert vhw.i2c_bytes(f) > 8 + 2 + 512  # flushed at exit: init + full frame
    vhw.power_off(f)
    assert vhw.panel(f)[3] is False and not any(vhw.panel(f)[0])


# --- the model alone: addressing modes and panel wiring, by hand-made transactions ---

def test_model_page_and_vertical_addressing(fw):
    from sim.bus import I2CBus
    from sim.oled import SSD1306Model

    bus = I2CBus()
    m = SSD1306Model(128, 64)
    bus.attach(0x3C, m)
    bus.writeto(0x3C, bytes([0x00, 0x20, 0x02, 0xB3, 0x05, 0x11]))  # page mode, page 3, column 0x15
    bus.writeto(0x3C, bytes([0x40, 0xFF, 0x01]))
    ram = m.gddram()
    assert ram[3 * 128 + 21] == 0xFF and ram[3 * 128 + 22] == 0x01
    # Page mode: the column wraps inside the page.
    bus.writeto(0x3C, bytes([0x00, 0xB6, 0x0F, 0x17]))  # page 6, column 127
    bus.writeto(0x3C, bytes([0x40, 0xAA, 0xBB]))
    assert m.gddram()[6 * 128 + 127] == 0xAA and m.gddram()[6 * 128 + 0] == 0xBB
    # Vertical mode in a 2x2 window: page first, then column.
    bus.writeto(0x3C, bytes([0x00, 0x20, 0x01, 0x21, 10, 11, 0x22, 0, 1]))
    bus.writeto(0x3C, bytes([0x40, 1, 2, 3, 4, 5]))
    ram = m.gddram()
    assert (ram[10], ram[128 + 10], ram[11], ram[128 + 11]) == (5, 2, 3, 4)  # 5th byte wrapped
    # Co=1 control bytes: one command each, then a data stream.
    bus.writeto(0x3C, bytes([0x80, 0x81, 0x80, 0x33, 0x80, 0xA7]))
    assert m.contrast == 0x33 and m.inverted


def _std(bus, h, **over):
    seq = {"seg": 0xA1, "scan": 0xC8, "start": 0x40, "mux": h - 1, "off": 0,
           "pins": 0x12 if h == 64 else 0x02}
    seq.update(over)
    bus.writeto(0x3C, bytes([0x00, 0x20, 0x00, seq["seg"], seq["scan"], seq["start"], 0xA8, seq["mux"],
                             0xD3, seq["off"], 0xDA, seq["pins"], 0x8D, 0x14, 0xAF]))


def test_model_panel_wiring(fw):
    from sim.bus import I2CBus
    from sim.oled import SSD1306Model

    for h in (64, 32):
        bus = I2CBus()
        m = SSD1306Model(128, h)
        bus.attach(0x3C, m)
        _std(bus, h)
        bus.writeto(0x3C, bytes([0x00, 0x21, 0, 127, 0x22, 0, 7]))
        ram = bytearray(1024)
        ram[0] = 0x01  # pixel (0, 0)
        ram[128 + 5] = 0x04  # pixel (5, 10)
        bus.writeto(0x3C, b"\x40" + bytes(ram))
        px = m.pixels()
        assert px[0] == 1 and px[10 * 128 + 5] == 1 and sum(px) == 2
        # No segment remap: mirrored left-right.
        _std(bus, h, seg=0xA0)
        px = m.pixels()
        assert px[127] == 1 and px[10 * 128 + 122] == 1 and sum(px) == 2
        # Normal COM scan: upside down.
        _std(bus, h, scan=0xC0)
        px = m.pixels()
        assert px[(h - 1) * 128] == 1 and px[(h - 11) * 128 + 5] == 1
        # Start line 1: the picture moves up a row, row 0 leaves the top.
        _std(bus, h, start=0x41)
        px = m.pixels()
        assert px[9 * 128 + 5] == 1 and px[0] == 0
        # A 128x32 panel set up with 64-row COM pins: rows interleave.
        if h == 32:
            _std(bus, h, pins=0x12)
            px = m.pixels()
            assert px[10 * 128 + 5] == 0


# --- independent oracle: Adafruit's CircuitPython driver on CPython ---

class BusioI2C:
    """busio.I2C as adafruit_bus_device uses it, forwarding to the bus model."""

    def __init__(self, bus):
        self.bus = bus
        self.locked = False

    def try_lock(self):
        if self.locked:
            return False
        self.locked = True
        return True

    def unlock(self):
        self.locked = False

    def writeto(self, address, buffer, *, start=0, end=None):
        self.bus.writeto(address, memoryview(buffer)[start:end])

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        mv = memoryview(buffer)[start:end]
        self.bus.readfrom_into(address, mv)

    def writeto_then_readfrom(self, address, out_buffer, in_buffer, *, out_start=0,
                              out_end=None, in_start=0, in_end=None):
        self.writeto(address, out_buffer, start=out_start, end=out_end)
        self.readfrom_into(address, in_buffer, start=in_start, end=in_end)


@pytest.mark.parametrize("h", [64, 32])
def test_model_matches_adafruit_driver(fw, h):
    import adafruit_ssd1306
    from sim.bus import I2CBus
    from sim.oled import SSD1306Model

    bus = I2CBus()
    m = SSD1306Model(128, h)
    bus.attach(0x3C, m)
    d = adafruit_ssd1306.SSD1306_I2C(128, h, BusioI2C(bus), addr=0x3C)
    rng = random.Random(h)
    for _ in range(4):
        d.fill(0)
        for _ in range(300):
            d.pixel(rng.randrange(128), rng.randrange(h), 1)
        d.line(0, 0, 127, h - 1, 1)
        d.fill_rect(rng.randrange(100), rng.randrange(h - 8), 20, 8, 1)
        d.show()
        px = m.pixels()
        want = bytes(d.pixel(x, y) or 0 for y in range(h) for x in range(128))
        assert bytes(px) == want
    assert m.lit() and m.unknown == []
    # Rotated 180 degrees (COM scan and segment remap both off).
    d.rotate(False)
    d.show()
    px = m.pixels()
    want = bytes(d.pixel(127 - x, h - 1 - y) or 0 for y in range(h) for x in range(128))
    assert bytes(px) == want
    d.rotate(True)
    d.invert(True)
    d.contrast(3)
    d.show()
    px = m.pixels()
    assert m.inverted and m.contrast == 3
    assert bytes(px) == bytes(1 - (d.pixel(x, y) or 0) for y in range(h) for x in range(128))
    d.poweroff()
    assert not m.lit() and not any(m.pixels())


def test_vhw_panel_and_snapshot(hw, tmp_path):
    from chips_helpers import run_sim
    from paytoken import panel, vhw
    from PIL import Image

    f = hw()
    run_sim(textwrap.dedent("""
        import board
        from ssd1306 import SSD1306_I2C
        d = SSD1306_I2C(128, 64, board.i2c())
        d.fill(0); d.fill_rect(0, 0, 10, 64, 1); d.invert(True); d.show()
        print(repr(1))
    """), f)
    data, w, h, on, inv = vhw.panel(f)
    assert (on, inv) == (True, True)
    assert _px(data, w, 0, 0) == 1 and _px(data, w, 10, 0) == 0  # before inversion
    vhw.snapshot(f, tmp_path / "p.png", scale=1)
    img = Image.open(tmp_path / "p.png")
    want = panel.panel_image(data, w, h, scale=1, inverted=True, display_on=True)
    assert img.convert("L").tobytes() == want.convert("L").tobytes()
    # Inverted: the bar is dark, the rest lit, as a person sees it.
    assert panel.pixels(data, w, h, inverted=True)[0][0] == 0


def test_random_partial_updates_keep_panel_equal_to_framebuffer():
    # 300 random drawings with partial shows: after each, the panel equals the
    # framebuffer, and the bytes sent equal the per-page changed spans.
    out = _upy("""
        import random
        random.seed(7)
        bus, m, d = setup(128, 64)
        d.fill(0); d.show()
        prev = bytearray(d.buffer)
        bad = 0; wrong_bytes = 0; total = 0
        for i in range(300):
            k = random.getrandbits(2)
            x = random.getrandbits(7); y = random.getrandbits(6)
            if k == 0:
                d.pixel(x, y, random.getrandbits(1))
            elif k == 1:
                d.hline(x, y, random.getrandbits(5), 1)
            elif k == 2:
                d.fill_rect(x, y, random.getrandbits(4), random.getrandbits(4), random.getrandbits(1))
            else:
                d.text("%d" % i, x, y, 1)
            want = 0
            for p in range(8):
                cols = [c for c in range(128) if d.buffer[p * 128 + c] != prev[p * 128 + c]]
                if cols:
                    want += 8 + 2 + cols[-1] - cols[0] + 1
            b0 = bus.bytes
            d.show()
            total += bus.bytes - b0
            if bus.bytes - b0 != want:
                wrong_bytes += 1
            if bytes(m.picture()) != bytes(d.buffer):
                bad += 1
            prev[:] = d.buffer
        print(repr((bad, wrong_bytes, total)))
    """)
    bad, wrong_bytes, total = out
    assert (bad, wrong_bytes) == (0, 0)
    assert 0 < total < 300 * 1034  # partial shows send less than full frames
