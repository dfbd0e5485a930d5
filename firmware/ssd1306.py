"""SSD1306 OLED driver over I2C with partial updates. Usage: d = SSD1306_I2C(128, 64, i2c); d.text("hi", 0, 0); d.show()"""
# A framebuf.FrameBuffer (MONO_VLSB: byte = 8 vertical pixels of one page).
# show() compares the framebuffer with a shadow of what the panel holds and
# sends, per page, only the column span that changed; the first show sends all.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

import framebuf

_CMD = const(0x00)  # control byte: Co=0, D/C#=0 -> the rest are commands
_DATA = const(0x40)  # control byte: Co=0, D/C#=1 -> the rest is GDDRAM data

# Init sequence, one command (and its arguments) per line.
_INIT = (
    0xAE,  # display off while configuring
    0x20, 0x00,  # memory addressing mode: horizontal (windows set by 0x21/0x22)
    0x40,  # display start line 0
    0xA1,  # segment remap: column 127 -> SEG0 (panel mounted mirrored)
    0xA8, 0x3F,  # multiplex ratio: height - 1 (patched below)
    0xC8,  # COM scan remapped, COM[N-1] -> COM0 (with 0xA1: upright picture)
    0xD3, 0x00,  # display offset 0
    0xDA, 0x12,  # COM pins: 0x12 alternative for 64 rows, 0x02 sequential for 32 (patched)
    0xD5, 0x80,  # clock: divide ratio 1, oscillator frequency 8 (reset value)
    0xD9, 0xF1,  # pre-charge: phase 1 = 1 clock, phase 2 = 15 clocks (internal charge pump)
    0xDB, 0x30,  # VCOMH deselect level ~0.83 x Vcc
    0x81, 0x7F,  # contrast 127 of 255: half drive, less wear (burn-in) and current
    0xA4,  # display follows GDDRAM (not entire-display-on)
    0xA6,  # normal polarity: 1 bits lit
    0x8D, 0x14,  # charge pump on (the modules have no external VCC)
    0x2E,  # scrolling off
    0xAF,  # display on
)


class SSD1306_I2C(framebuf.FrameBuffer):
    def __init__(self, width, height, i2c, addr=0x3C, reset=None):
        if width < 1 or width > 128 or height not in (16, 32, 48, 64):
            raise ValueError("SSD1306 size %dx%d not supported" % (width, height))
        self.width = width
        self.height = height
        self.i2c = i2c
        self.addr = addr
        self.pages = height // 8
        self.buffer = bytearray(self.pages * width)
        self._shadow = bytearray(self.pages * width)
        self._mv = memoryview(self.buffer)
        self._full = True  # panel RAM unknown: the first show sends everything
        self._cmd = bytearray(3)
        self._cmd[0] = _CMD
        self._cmd1 = memoryview(self._cmd)[:2]
        self._cmd2 = memoryview(self._cmd)
        self._win = bytearray((_CMD, 0x21, 0, 0, 0x22, 0, 0))  # column, page window
        self._vec = [b"\x40", None]  # writevto vector: control byte, data slice
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        if reset is not None:
            reset.init(reset.OUT, value=1)
            reset(0)  # hold RESET# low >= 3 us, then release
            reset(1)
        init = bytearray(len(_INIT) + 1)
        init[0] = _CMD
        init[1:] = bytes(_INIT)
        init[7] = height - 1
        init[12] = 0x02 if width > 2 * height else 0x12
        try:
            i2c.writeto(addr, init)  # the probe: no ACK -> OSError
        except OSError:
            raise OSError("SSD1306 not found at 0x%02x" % addr)

    def _command(self, c, arg=-1):
        b = self._cmd
        b[1] = c
        if arg < 0:
            self.i2c.writeto(self.addr, self._cmd1)
        else:
            b[2] = arg
            self.i2c.writeto(self.addr, self._cmd2)

    def poweroff(self):
        self._command(0xAE)

    def poweron(self):
        self._command(0xAF)

    def contrast(self, v):
        if not 0 <= v <= 255:
            raise ValueError("contrast %d outside 0-255" % v)
        self._command(0x81, v)

    def invert(self, flag):
        self._command(0xA7 if flag else 0xA6)

    def _send(self, p0, p1, c0, c1):
        # Window [c0..c1] x [p0..p1], then the data of each page row (one
        # transaction; vector entries are memoryview slices, no copy).
        w = self._win
        w[2], w[3], w[5], w[6] = c0, c1, p0, p1
        self.i2c.writeto(self.addr, w)
        if c0 == 0 and c1 == self.width - 1:
            self._vec[1] = self._mv[p0 * self.width:(p1 + 1) * self.width]
            self.i2c.writevto(self.addr, self._vec)
        else:
            self._vec[1] = self._mv[p0 * self.width + c0:p0 * self.width + c1 + 1]
            self.i2c.writevto(self.addr, self._vec)
        self._vec[1] = None

    def show(self):
        buf = self.buffer
        sh = self._shadow
        w = self.width
        if self._full:
            self._send(0, self.pages - 1, 0, w - 1)
            sh[:] = buf
            self._full = False
            return
        for p in range(self.pages):
            i = p * w
            end = i + w
            while i < end and buf[i] == sh[i]:
                i += 1
            if i == end:
                continue
            j = end - 1
            while buf[j] == sh[j]:
                j -= 1
            self._send(p, p, i - p * w, j - p * w)
            while i <= j:
                sh[i] = buf[i]
                i += 1
