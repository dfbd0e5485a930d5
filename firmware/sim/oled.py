# SSD1306 register model: decodes the I2C control byte and the command set
# into a 128x64 GDDRAM and the picture a person sees on the attached panel.
# The panel module is wired for the usual setup of its size (segment remap
# 0xA1, COM scan 0xC8, multiplex height-1, offset 0, start line 0, COM pins
# 0x12 for 64 rows / 0x02 for 32); any other setting mirrors, shifts or
# interleaves the picture the way the chip would.
from . import store

_W = 128
_NPAGES = 8
# Argument counts of the multi-byte commands, as (command, count) byte pairs:
# bytes, not a dict, so the table costs no heap on the sim board.
_ARGS = (b"\x81\x01\x8d\x01\x20\x01\x21\x02\x22\x02\xa8\x01\xd3\x01\xd5\x01\xd9\x01"
         b"\xda\x01\xdb\x01\x26\x06\x27\x06\x29\x05\x2a\x05\xa3\x02\xad\x01\xd6\x01")


def _nargs(v):
    # Argument count of command byte v; 0 for a single-byte command.
    for i in range(0, len(_ARGS), 2):
        if _ARGS[i] == v:
            return _ARGS[i + 1]
    return 0


def _pad(i, mux, offset, scan_rev, compins):
    # Scan line i (0..mux-1) -> the COM pad it drives.
    com = (i + offset) % 64
    if scan_rev:
        com = (mux - 1 - com) % 64
    if compins & 0x10:  # alternative COM pin configuration
        pad = 2 * com if com < 32 else 2 * (com - 32) + 1
        if compins & 0x20:
            pad ^= 1
    else:
        pad = com
        if compins & 0x20:
            pad = (pad + 32) % 64
    return pad


class SSD1306Model:
    def __init__(self, width=128, height=64, folder=None):
        if width != _W or height not in (32, 64):
            raise ValueError("panel %dx%d not modelled (128x64 or 128x32)" % (width, height))
        self.width = width
        self.height = height
        self.folder = folder
        self.addr = 0x3C
        self.ram = bytearray(_W * _NPAGES)
        self._rammv = memoryview(self.ram)
        # Power-on GDDRAM content is undefined: noise, so a driver must send it all.
        x = 0x2545
        for i in range(len(self.ram)):
            x = (x * 75 + 74) % 65537
            self.ram[i] = x & 0xFF
        self._std_compins = 0x12 if height == 64 else 0x02
        # The picture buffer is made on first need: a standard setup shows GDDRAM
        # as it is (render returns a view of it).
        self._pic = None
        self.unknown = []
        self.reset()
        self.persist()

    def reset(self):
        # Register reset values (datasheet): display off, page addressing, etc.
        self.display_on = False
        self.contrast = 0x7F
        self.inverted = False
        self.entire_on = False
        self.mode = 2
        self.col_lo, self.col_hi, self.page_lo, self.page_hi = 0, 127, 0, 7
        self.col, self.page = 0, 0
        self.start_line = 0
        self.seg_remap = False
        self.scan_rev = False
        self.mux = 64
        self.offset = 0
        self.compins = 0x12
        self.charge_pump = False
        self.scrolling = False
        self._cmd = None
        self._args = bytearray(6)
        self._nargs = 0
        self._changed = True

    # --- I2C device ---
    def xfer_write(self, bufs):
        # Control byte: Co (bit 7) = one byte follows then another control
        # byte; D/C# (bit 6) = data (GDDRAM) or command.
        ctrl = -1
        cont = False
        for b in bufs:
            for v in b:
                if ctrl < 0:
                    ctrl = v
                    cont = bool(v & 0x80)
                    continue
                if ctrl & 0x40:
                    self._data(v)
                else:
                    self._command(v)
                if cont:
                    ctrl = -1
        if self._changed:
            self.persist()
            return True
        return False

    def xfer_read(self, buf):
        # Status read: bit 6 = display off.
        for i in range(len(buf)):
            buf[i] = 0 if self.display_on else 0x40

    def _data(self, v):
        self.ram[self.page * _W + self.col] = v
        self._changed = True
        if self.mode == 1:  # vertical
            if self.page >= self.page_hi:
                self.page = self.page_lo
                self.col = self.col_lo if self.col >= self.col_hi else self.col + 1
            else:
                self.page += 1
        elif self.mode == 0:  # horizontal
            if self.col >= self.col_hi:
                self.col = self.col_lo
                self.page = self.page_lo if self.page >= self.page_hi else self.page + 1
            else:
                self.col += 1
        else:  # page addressing: the column wraps within the page
            self.col = (self.col + 1) % _W

    def _command(self, v):
        if self._cmd is not None:
            self._args[self._nargs] = v
            self._nargs += 1
            if self._nargs == _nargs(self._cmd):
                c = self._cmd
                self._cmd = None
                self._command_args(c, self._args)
            return
        if _nargs(v):
            self._cmd = v
            self._nargs = 0
            return
        ch = True
        if v == 0xAE or v == 0xAF:
            self.display_on = v == 0xAF
        elif v == 0xA4 or v == 0xA5:
            self.entire_on = v == 0xA5
        elif v == 0xA6 or v == 0xA7:
            self.inverted = v == 0xA7
        elif v == 0xA0 or v == 0xA1:
            self.seg_remap = v == 0xA1
        elif v == 0xC0 or v == 0xC8:
            self.scan_rev = v == 0xC8
        elif 0x40 <= v <= 0x7F:
            self.start_line = v - 0x40
        elif 0xB0 <= v <= 0xB7:
            ch = False
            if self.mode == 2:
                self.page = v - 0xB0
        elif v <= 0x0F:
            ch = False
            if self.mode == 2:
                self.col = (self.col & 0xF0) | v
        elif v <= 0x1F:
            ch = False
            if self.mode == 2:
                self.col = (self.col & 0x0F) | (v & 0x07) << 4
        elif v == 0x2E or v == 0x2F:
            self.scrolling = v == 0x2F
        elif v == 0xE3:  # NOP
            ch = False
        else:
            ch = False
            self.unknown.append(v)
        if ch:
            self._changed = True

    def _command_args(self, c, a):
        ch = True
        if c == 0x81:
            self.contrast = a[0]
        elif c == 0x8D:
            self.charge_pump = bool(a[0] & 0x04)
        elif c == 0x20:
            self.mode = a[0] & 0x03
            ch = False
        elif c == 0x21:
            self.col_lo, self.col_hi = a[0] & 0x7F, a[1] & 0x7F
            self.col = self.col_lo
            ch = False
        elif c == 0x22:
            self.page_lo, self.page_hi = a[0] & 0x07, a[1] & 0x07
            self.page = self.page_lo
            ch = False
        elif c == 0xA8:
            m = (a[0] & 0x3F) + 1
            self.mux = m if m >= 16 else self.mux  # 0..14 are invalid entries
        elif c == 0xD3:
            self.offset = a[0] & 0x3F
        elif c == 0xDA:
            self.compins = a[0] & 0x32
        else:
            ch = False  # timing, pre-charge, VCOMH, scroll set-up: no effect on pixels
        if ch:
            self._changed = True

    # --- what a person sees ---
    def standard(self):
        return (self.seg_remap and self.scan_rev and self.start_line == 0 and self.offset == 0
                and self.mux == self.height and self.compins == self._std_compins)

    def lit(self):
        return self.display_on and self.charge_pump

    def gddram(self):
        return bytes(self.ram)

    def picture(self):
        # The lit pixels, packed like a MONO_VLSB framebuffer of the panel size.
        return self._render(True)

    def image(self):
        # The panel's picture before inversion and display on/off (panel.bin).
        return self._render(False)

    def _render(self, final):
        n = self.width * self.height // 8
        if final and not self.lit():
            pic = self._buf(n)
            for i in range(n):
                pic[i] = 0
            return pic
        inv = final and self.inverted and not self.entire_on
        if self.entire_on:
            pic = self._buf(n)
            for i in range(n):
                pic[i] = 0xFF
            if self.standard():
                return pic
        elif self.standard():
            if not inv:
                return self._rammv[:n]
            pic = self._buf(n)
            for i in range(n):
                pic[i] = self.ram[i] ^ 0xFF
            return pic
        # General path (the power-on state, tests of odd settings): rows through the
        # COM wiring, columns through the remap, into buffers that are not kept.
        pic = bytearray(n)
        # The module's wiring: screen row y <- COM pad under the usual setup (255: none).
        rp = bytearray(b"\xff" * 64)
        for y in range(self.height):
            rp[_pad(y, self.height, 0, True, self._std_compins)] = y
        w = self.width
        for i in range(self.mux):
            y = rp[_pad(i, self.mux, self.offset, self.scan_rev, self.compins)]
            if y == 255:
                continue
            r = (i + self.start_line) % 64
            base = (r >> 3) * _W
            bit = 1 << (r & 7)
            out = (y >> 3) * w
            obit = 1 << (y & 7)
            for x in range(w):
                c = x if self.seg_remap else _W - 1 - x
                on = self.entire_on or bool(self.ram[base + c] & bit)
                if on != inv:
                    pic[out + x] |= obit
        return pic

    def _buf(self, n):
        if self._pic is None:
            self._pic = bytearray(n)
        return self._pic

    def pixels(self):
        # Row-major 0/1 bytes, width*height: what a person sees.
        w, h = self.width, self.height
        pic = self.picture()
        px = bytearray(w * h)
        for y in range(h):
            base = (y >> 3) * w
            bit = 1 << (y & 7)
            for x in range(w):
                if pic[base + x] & bit:
                    px[y * w + x] = 1
        return px

    def state(self):
        return {"width": self.width, "height": self.height, "display_on": self.display_on,
                "lit": self.lit(), "inverted": self.inverted, "contrast": self.contrast,
                "entire_on": self.entire_on, "powered": True}

    def persist(self):
        # panel.bin (image(): inversion and on/off are in panel.json) and
        # panel.json, when a hardware folder backs us.
        self._changed = False
        if self.folder:
            store.save_bytes(self.folder, "panel.bin", self.image())
            store.save(self.folder, "panel.json", self.state())
