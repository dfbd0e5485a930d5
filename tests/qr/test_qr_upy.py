"""The same qr.py inside the real MicroPython interpreter: same symbols, no allocation,
and MonoVLSB (our CPython canvas) equal to MicroPython's own framebuf.MONO_VLSB."""

from __future__ import annotations

import random

import qr
from paytoken import upy
from paytoken.panel import MonoVLSB
from qrcases import CAPACITY


def _batch(n: int, seed: int) -> list[tuple[str, int, str, int | None]]:
    rnd = random.Random(seed)
    cases = []
    for i in range(n):
        v = 1 + i % 2
        e = "LMQH"[(i // 2) % 4]
        length = rnd.randint(1, CAPACITY[(v, e)])
        digits = "".join(rnd.choice("0123456789") for _ in range(length))
        mask = None if i % 3 == 0 else rnd.randrange(8)
        cases.append((digits, v, e, mask))
    cases.append(("123456789012345678", 1, "M", None))
    return cases


def test_micropython_matrix_equals_cpython():
    cases = _batch(160, seed=3)
    code = (
        "import qr\n"
        "q = qr.QR()\n"
        "out = []\n"
        f"for d, v, e, m in {cases!r}:\n"
        "    qr.encode(d, v, e, m, q)\n"
        "    out.append((q.size, q.mask, bytes(q.bits).hex()))\n"
        "print(repr(out))\n"
    )
    got = upy.eval_repr(code)
    want = []
    for d, v, e, m in cases:
        q = qr.encode(d, v, e, m)
        want.append((q.size, q.mask, bytes(q.bits).hex()))
    assert len(got) == len(cases)
    assert got == want


def test_micropython_reencode_allocates_nothing():
    # Once a QR exists, encoding (automatic mask included) and drawing must not touch
    # the heap: heap_lock() turns any allocation into MemoryError.
    code = """
import framebuf, micropython, qr
buf = bytearray(128 * 64 // 8)
fb = framebuf.FrameBuffer(buf, 128, 64, framebuf.MONO_VLSB)
q = qr.QR()
d = b"123456789012345678"
qr.encode(d, 1, "M", None, q)
qr.draw(q, fb, 1, 3, 2, 4)
r = "none"
micropython.heap_lock()
try:
    qr.encode(d, 1, "M", None, q)
    qr.encode("0123456789", 2, "H", None, q)
    qr.encode(d, 1, "M", 5, q)
    qr.draw(q, fb, 1, 3, 2, 4)
    r = "ok"
except MemoryError:
    r = "allocated"
micropython.heap_unlock()
print(repr(r))
"""
    assert upy.eval_repr(code) == "ok"


def test_micropython_rejects_bad_input_with_value_error():
    code = """
import qr
out = []
for args in (("12a",), ("1" * 35, 1, "M"), ("1", 3), ("1", 1, "Z"), ("1", 1, "M", 9), ("",)):
    try:
        qr.encode(*args)
        out.append("accepted")
    except ValueError as e:
        out.append(str(e))
print(repr(out))
"""
    out = upy.eval_repr(code)
    assert out[0] == "not a digit at position 2"
    assert out[1] == "35 digits do not fit version 1-M"
    assert "version" in out[2] and "ecc" in out[3] and "mask" in out[4] and out[5] == "no digits"


def test_monovlsb_equals_micropython_framebuf():
    # The pure-Python canvas must lay out pixels exactly as framebuf.MONO_VLSB does.
    code = """
import framebuf, qr
buf = bytearray(128 * 64 // 8)
fb = framebuf.FrameBuffer(buf, 128, 64, framebuf.MONO_VLSB)
fb.fill(0)
q = qr.encode("987654321098765432", 1, "M")
qr.draw(q, fb, 1, 3, 2, 4)
fb.fill_rect(70, 10, 50, 3, 1)
fb.pixel(127, 63, 1)
fb.fill_rect(120, 60, 20, 20, 1)
fb.hline(66, 33, 9, 1)
fb.vline(100, 20, 17, 1)
print(repr(bytes(buf).hex()))
"""
    want = bytes.fromhex(upy.eval_repr(code))
    fb = MonoVLSB(128, 64)
    fb.fill(0)
    q = qr.encode("987654321098765432", 1, "M")
    qr.draw(q, fb, 1, 3, 2, 4)
    fb.fill_rect(70, 10, 50, 3, 1)
    fb.pixel(127, 63, 1)
    fb.fill_rect(120, 60, 20, 20, 1)
    fb.hline(66, 33, 9, 1)
    fb.vline(100, 20, 17, 1)
    assert bytes(fb.buffer) == want
