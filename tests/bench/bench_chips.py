"""I2C traffic of the drivers, measured on the bus model in the real MicroPython interpreter.

Wire time assumes 400 kHz and 9 bits per byte (8 data + ACK); start/stop are ignored.
"""

from __future__ import annotations

import textwrap

from paytoken import upy

TITLE = "Drivers and chip models: I2C traffic"
_HZ = 400_000

_CODE = textwrap.dedent("""
    from sim.bus import I2CBus
    from sim.oled import SSD1306Model
    from sim.rtc import RTCModel
    from ssd1306 import SSD1306_I2C
    from ds3231 import DS3231
    from pcf8563 import PCF8563
    import time
    out = {}
    def sent(bus, f):
        b0 = bus.bytes
        f()
        return bus.bytes - b0
    for h in (64, 32):
        bus = I2CBus()
        bus.attach(0x3C, SSD1306Model(128, h))
        d = [None]
        def make():
            d[0] = SSD1306_I2C(128, h, bus)
        out["init%d" % h] = sent(bus, make)
        d = d[0]
        d.fill(0); d.text("1234 5678", 0, 0)
        out["full%d" % h] = sent(bus, d.show)
        d.fill_rect(0, h - 4, 4, 4, 1)
        out["part4_%d" % h] = sent(bus, d.show)
        d.fill_rect(0, h - 4, 128, 4, 1)
        out["page%d" % h] = sent(bus, d.show)
        n = 200
        t0 = time.ticks_us()
        for i in range(n):
            d.pixel(i % 128, h - 1, i & 1)
            d.show()
        out["show_us%d" % h] = time.ticks_diff(time.ticks_us(), t0) / n
    clk = lambda: 4000000000.0
    for name, cls in (("ds3231", DS3231), ("pcf8563", PCF8563)):
        bus = I2CBus()
        m = RTCModel(name, clock=clk)
        bus.attach(m.addr, m)
        r = cls(bus)
        out["read_" + name] = sent(bus, r.datetime)
        out["set_" + name] = sent(bus, lambda: r.set_datetime((2030, 1, 2, 3, 4, 5)))
        out["lost_" + name] = sent(bus, lambda: r.lost_power)
    print(repr(out))
""")


def _row(name: str, nbytes: int, how: str, target: str | None = None, limit: int | None = None):
    row = {"name": name, "value": nbytes, "unit": "bytes", "how": how}
    if limit is not None:
        row["target"] = target
        row["met"] = nbytes <= limit
    ms = {"name": f"{name}: wire time", "value": nbytes * 9 / _HZ * 1000, "unit": "ms",
          "how": "bytes x 9 bits / 400 kHz"}
    return [row, ms]


def run() -> list[dict]:
    r = upy.eval_repr(_CODE)
    rows: list[dict] = []
    how = "bus model counter (address + data bytes per transaction), MicroPython unix port"
    for h in (64, 32):
        rows += _row(f"SSD1306 128x{h} init sequence (probe included)", r[f"init{h}"], how)
        rows += _row(f"SSD1306 128x{h} first show (full frame)", r[f"full{h}"], how)
        rows += _row(
            f"SSD1306 128x{h} init + first show", r[f"init{h}"] + r[f"full{h}"], how,
            "first frame <= 1.2 KB", 1200,
        )
        rows += _row(f"SSD1306 128x{h} partial show, one page, 4 columns", r[f"part4_{h}"], how)
        rows += _row(f"SSD1306 128x{h} partial show, one full page", r[f"page{h}"], how)
        rows.append({"name": f"SSD1306 128x{h} show() compute, one changed pixel", "value":
                     r[f"show_us{h}"], "unit": "us", "how": "mean of 200 shows, unix port, model included"})
    for chip in ("ds3231", "pcf8563"):
        rows += _row(f"{chip.upper()} time read (burst)", r[f"read_{chip}"], how)
        rows += _row(f"{chip.upper()} set_datetime", r[f"set_{chip}"], how)
        rows += _row(f"{chip.upper()} lost_power check", r[f"lost_{chip}"], how)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
