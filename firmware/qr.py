"""QR encoder for the token: numeric mode, versions 1-2, ECC L/M/Q/H (ISO/IEC 18004).

Usage: q = qr.encode(b"123456789012345678", 1, "M"); qr.draw(q, fb, 0, 0, 2, 4)
"""

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

# The bitmap holds one 32-bit little-endian word per row: bit x of row y is module
# (x, y), dark = 1. 25 rows (version 2) x 4 bytes = 100 bytes.
_STRIDE = const(4)
_BITMAP = const(100)
_MAX_CW = const(44)  # codewords of version 2 (data + ECC)
_MAX_EC = const(28)  # ECC codewords of version 2-H
_PAT3 = const(0x5D)  # 1:1:3:1:1 finder-like run, dark-light-dark-dark-dark-light-dark
_FMT_GEN = const(0x537)  # BCH(15,5) generator x^10+x^8+x^5+x^4+x^2+x+1
_FMT_XOR = const(0x5412)  # format information mask

# Data codewords per (version, ECC level) in the order L, M, Q, H; one RS block each.
_DATA_CW = b"\x13\x10\x0d\x09\x22\x1c\x16\x10"
_TOTAL_CW = b"\x1a\x2c"  # 26 (version 1), 44 (version 2)
# ECC level indicator bits of the format information, order L, M, Q, H.
_ECC_BITS = b"\x01\x00\x03\x02"
# Bits of a trailing group of 0, 1 or 2 digits (a full group of 3 takes 10 bits).
_TAIL_BITS = b"\x00\x04\x07"

# GF(256) with the QR polynomial x^8+x^4+x^3+x^2+1 (0x11D): _EXP[i] = 2^i, _LOG its inverse.
_EXP = (
    b"\x01\x02\x04\x08\x10\x20\x40\x80\x1d\x3a\x74\xe8\xcd\x87\x13\x26"
    b"\x4c\x98\x2d\x5a\xb4\x75\xea\xc9\x8f\x03\x06\x0c\x18\x30\x60\xc0"
    b"\x9d\x27\x4e\x9c\x25\x4a\x94\x35\x6a\xd4\xb5\x77\xee\xc1\x9f\x23"
    b"\x46\x8c\x05\x0a\x14\x28\x50\xa0\x5d\xba\x69\xd2\xb9\x6f\xde\xa1"
    b"\x5f\xbe\x61\xc2\x99\x2f\x5e\xbc\x65\xca\x89\x0f\x1e\x3c\x78\xf0"
    b"\xfd\xe7\xd3\xbb\x6b\xd6\xb1\x7f\xfe\xe1\xdf\xa3\x5b\xb6\x71\xe2"
    b"\xd9\xaf\x43\x86\x11\x22\x44\x88\x0d\x1a\x34\x68\xd0\xbd\x67\xce"
    b"\x81\x1f\x3e\x7c\xf8\xed\xc7\x93\x3b\x76\xec\xc5\x97\x33\x66\xcc"
    b"\x85\x17\x2e\x5c\xb8\x6d\xda\xa9\x4f\x9e\x21\x42\x84\x15\x2a\x54"
    b"\xa8\x4d\x9a\x29\x52\xa4\x55\xaa\x49\x92\x39\x72\xe4\xd5\xb7\x73"
    b"\xe6\xd1\xbf\x63\xc6\x91\x3f\x7e\xfc\xe5\xd7\xb3\x7b\xf6\xf1\xff"
    b"\xe3\xdb\xab\x4b\x96\x31\x62\xc4\x95\x37\x6e\xdc\xa5\x57\xae\x41"
    b"\x82\x19\x32\x64\xc8\x8d\x07\x0e\x1c\x38\x70\xe0\xdd\xa7\x53\xa6"
    b"\x51\xa2\x59\xb2\x79\xf2\xf9\xef\xc3\x9b\x2b\x56\xac\x45\x8a\x09"
    b"\x12\x24\x48\x90\x3d\x7a\xf4\xf5\xf7\xf3\xfb\xeb\xcb\x8b\x0b\x16"
    b"\x2c\x58\xb0\x7d\xfa\xe9\xcf\x83\x1b\x36\x6c\xd8\xad\x47\x8e"
)
_LOG = (
    b"\x00\x00\x01\x19\x02\x32\x1a\xc6\x03\xdf\x33\xee\x1b\x68\xc7\x4b"
    b"\x04\x64\xe0\x0e\x34\x8d\xef\x81\x1c\xc1\x69\xf8\xc8\x08\x4c\x71"
    b"\x05\x8a\x65\x2f\xe1\x24\x0f\x21\x35\x93\x8e\xda\xf0\x12\x82\x45"
    b"\x1d\xb5\xc2\x7d\x6a\x27\xf9\xb9\xc9\x9a\x09\x78\x4d\xe4\x72\xa6"
    b"\x06\xbf\x8b\x62\x66\xdd\x30\xfd\xe2\x98\x25\xb3\x10\x91\x22\x88"
    b"\x36\xd0\x94\xce\x8f\x96\xdb\xbd\xf1\xd2\x13\x5c\x83\x38\x46\x40"
    b"\x1e\x42\xb6\xa3\xc3\x48\x7e\x6e\x6b\x3a\x28\x54\xfa\x85\xba\x3d"
    b"\xca\x5e\x9b\x9f\x0a\x15\x79\x2b\x4e\xd4\xe5\xac\x73\xf3\xa7\x57"
    b"\x07\x70\xc0\xf7\x8c\x80\x63\x0d\x67\x4a\xde\xed\x31\xc5\xfe\x18"
    b"\xe3\xa5\x99\x77\x26\xb8\xb4\x7c\x11\x44\x92\xd9\x23\x20\x89\x2e"
    b"\x37\x3f\xd1\x5b\x95\xbc\xcf\xcd\x90\x87\x97\xb2\xdc\xfc\xbe\x61"
    b"\xf2\x56\xd3\xab\x14\x2a\x5d\x9e\x84\x3c\x39\x53\x47\x6d\x41\xa2"
    b"\x1f\x2d\x43\xd8\xb7\x7b\xa4\x76\xc4\x17\x49\xec\x7f\x0c\x6f\xf6"
    b"\x6c\xa1\x3b\x52\x29\x9d\x55\xaa\xfb\x60\x86\xb1\xbb\xcc\x3e\x5a"
    b"\xcb\x59\x5f\xb0\x9c\xa9\xa0\x51\x0b\xf5\x16\xeb\x7a\x75\x2c\xd7"
    b"\x4f\xae\xd5\xe9\xe6\xe7\xad\xe8\x74\xd6\xf4\xea\xa8\x50\x58\xaf"
)


# Each mask's pattern along a row y repeats every 6 modules (bits 0-5, y mod 12: row
# y), and down a column x every 12 (bits 0-11, two bytes; x mod 6: column x).
_MROW = (
    b"\x15\x2a\x15\x2a\x15\x2a\x15\x2a\x15\x2a\x15\x2a\x3f\x00\x3f\x00"
    b"\x3f\x00\x3f\x00\x3f\x00\x3f\x00\x09\x09\x09\x09\x09\x09\x09\x09"
    b"\x09\x09\x09\x09\x09\x24\x12\x09\x24\x12\x09\x24\x12\x09\x24\x12"
    b"\x07\x07\x38\x38\x07\x07\x38\x38\x07\x07\x38\x38\x3f\x01\x09\x15"
    b"\x09\x01\x3f\x01\x09\x15\x09\x01\x3f\x07\x1b\x15\x2d\x31\x3f\x07"
    b"\x1b\x15\x2d\x31\x15\x38\x31\x2a\x07\x0e\x15\x38\x31\x2a\x07\x0e"
)
_MCOL = (
    b"\x55\x05\xaa\x0a\x55\x05\xaa\x0a\x55\x05\xaa\x0a\x55\x05\x55\x05"
    b"\x55\x05\x55\x05\x55\x05\x55\x05\xff\x0f\x00\x00\x00\x00\xff\x0f"
    b"\x00\x00\x00\x00\x49\x02\x24\x09\x92\x04\x49\x02\x24\x09\x92\x04"
    b"\x33\x03\x33\x03\x33\x03\xcc\x0c\xcc\x0c\xcc\x0c\xff\x0f\x41\x00"
    b"\x49\x02\x55\x05\x49\x02\x41\x00\xff\x0f\xc7\x01\xdb\x06\x55\x05"
    b"\x6d\x0b\x71\x0c\x55\x05\x38\x0e\x71\x0c\xaa\x0a\xc7\x01\x8e\x03"
)

# (table 10's mask conditions, tabulated: tests/qr/test_qr_matrix.py derives them again
# from the standard; kept small, since a deployed qr.mpy loads them into the heap)


def _mul(a, b):
    if a == 0 or b == 0:
        return 0
    return _EXP[(_LOG[a] + _LOG[b]) % 255]


def _pop(v):
    # set bits of a word below 2^28 (the symbol's rows and columns are 25 bits at
    # most): SWAR in a fixed dozen operations, every intermediate a small int
    v -= (v >> 1) & 0x5555555
    v = (v & 0x3333333) + ((v >> 2) & 0x3333333)
    v = (v + (v >> 4)) & 0xF0F0F0F
    v += v >> 8
    return (v + (v >> 16)) & 0x3F


def _data_row(y, n, version):
    # word of the data (non-function) modules of row y
    if y == 6:
        return 0  # horizontal timing pattern
    f = 0x40  # vertical timing pattern, column 6
    if y < 9:
        f |= 0x1FF | (0xFF << (n - 8))  # finders, separators, format information
    elif y >= n - 8:
        f |= 0x1FF  # bottom-left finder, separator, format information, dark module
    if version == 2 and 16 <= y <= 20:
        f |= 0x1F << 16  # alignment pattern centred on (18, 18)
    return ((1 << n) - 1) & ~f


def _mrow(m, y):
    # mask m's pattern along row y, 25 modules (bits below 2^30: small ints everywhere)
    p = _MROW[m * 12 + y % 12]
    return (p | (p << 6) | (p << 12) | (p << 18) | (p << 24)) & 0x1FFFFFF


def _mcol(m, x):
    # mask m's pattern down column x, 25 modules
    o = (m * 6 + x % 6) * 2
    p = _MCOL[o] | (_MCOL[o + 1] << 8)
    return p | (p << 12) | ((p & 1) << 24)


def _line(w, n):
    # N1 (runs of 5+ in one colour) and N3 (1:1:3:1:1 with 4 light modules on one
    # side, outside the symbol counting as light) of one row or column word, a word
    # at a time (every intermediate stays below 2^30: a small int on a 32-bit port).
    full = (1 << n) - 1
    # N1: e bit j = modules j and j+1 alike; a run of L alike is L - 1 set bits of e,
    # f keeps L - 4 of them for L >= 5: the run scores (L - 4) + 2 = L - 2.
    e = ~(w ^ (w >> 1)) & (full >> 1)
    f = e & (e >> 1) & (e >> 2) & (e >> 3)
    s = _pop(f) + 2 * _pop(f & ~(f << 1))
    # N3: m bit k = the 1011101 pattern starts at module k (k <= n - 7). The search
    # resumes like segno's reference: after a hit at k+7, else at k+4.
    m = w & ~(w >> 1) & (w >> 2) & (w >> 3) & (w >> 4) & ~(w >> 5) & (w >> 6) & (full >> 6)
    if m:
        hit = m & (~((w << 1) | (w << 2) | (w << 3) | (w << 4))
                   | ~((w >> 7) | (w >> 8) | (w >> 9) | (w >> 10)))
        k = 0
        while m >> k:
            if (m >> k) & 1:
                if (hit >> k) & 1:
                    s += 40
                    k += 7
                else:
                    k += 4
            else:
                k += 1
    return s


class QR:
    # One symbol, preallocated for version 2; encode(..., into=q) reuses it.
    def __init__(self):
        self.bits = bytearray(_BITMAP)
        self.cw = bytearray(_MAX_CW)
        self.gen = bytearray(_MAX_EC)
        # the symbol's columns, as bits holds its rows (for the penalty)
        self.cols = bytearray(_BITMAP)
        self.version = 0
        self.ecc = "M"
        self.mask = 0
        self.size = 0

    def module(self, x, y):
        # True for a dark module; (0, 0) is the top-left corner
        if x < 0 or y < 0 or x >= self.size or y >= self.size:
            raise ValueError("module outside the symbol")
        return (self.bits[y * _STRIDE + (x >> 3)] >> (x & 7)) & 1 == 1

    def _set(self, x, y, dark):
        o = y * _STRIDE + (x >> 3)
        if dark:
            self.bits[o] |= 1 << (x & 7)
        else:
            self.bits[o] &= ~(1 << (x & 7)) & 0xFF

    def _row(self, y):
        b = self.bits
        o = y * _STRIDE
        return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)

    def _put_row(self, y, w):
        b = self.bits
        o = y * _STRIDE
        b[o] = w & 0xFF
        b[o + 1] = (w >> 8) & 0xFF
        b[o + 2] = (w >> 16) & 0xFF
        b[o + 3] = (w >> 24) & 0xFF

    def _data(self, y):
        # word of the data (non-function) modules of row y (of column y: the function
        # patterns are symmetric about the diagonal)
        return _data_row(y, self.size, self.version)

    def _apply_mask(self, m):
        for y in range(self.size):
            self._put_row(y, self._row(y) ^ (self._data(y) & _mrow(m, y)))

    def _load(self):
        # the columns of the symbol as it stands (column x is row x of cols)
        c = self.cols
        for i in range(_BITMAP):
            c[i] = 0
        for y in range(self.size):
            w = self._row(y)
            o = y >> 3
            bit = 1 << (y & 7)
            x = 0
            while w:
                if w & 1:
                    c[x * _STRIDE + o] |= bit
                w >>= 1
                x += 1

    def _col(self, x):
        c = self.cols
        o = x * _STRIDE
        return c[o] | (c[o + 1] << 8) | (c[o + 2] << 16) | (c[o + 3] << 24)

    def _penalty(self):
        # the ISO penalty of the symbol as it stands
        self._load()
        return self._score(-1)

    def _score(self, m):
        # the penalty of the symbol (its columns loaded) with mask m applied (-1: none)
        # (the row, column and mask words are read inline: five calls fewer a row)
        n = self.size
        ver = self.version
        b = self.bits
        c = self.cols
        s = 0
        dark = 0
        prev = 0
        pairs = (1 << (n - 1)) - 1
        for y in range(n):
            o = y * _STRIDE
            w = b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)
            v = c[o] | (c[o + 1] << 8) | (c[o + 2] << 16) | (c[o + 3] << 24)
            if m >= 0:
                d = _data_row(y, n, ver)
                p = _MROW[m * 12 + y % 12]
                w ^= d & (p | (p << 6) | (p << 12) | (p << 18) | (p << 24)) & 0x1FFFFFF
                o = (m * 6 + y % 6) * 2
                p = _MCOL[o] | (_MCOL[o + 1] << 8)
                v ^= d & (p | (p << 12) | ((p & 1) << 24))
            s += _line(w, n) + _line(v, n)
            dark += _pop(w)
            if y:
                # N2: 2x2 blocks of one colour
                s += 3 * _pop(~((w ^ prev) | (w ^ (w >> 1)) | (prev ^ (prev >> 1))) & pairs)
            prev = w
        # N4: 10 points per full 5 % that the dark share is away from 50 %
        t = n * n
        d = 20 * dark - 10 * t
        if d < 0:
            d = -d
        return s + 10 * (d // t)

    def _function_patterns(self):
        n = self.size
        for c in range(3):
            # finders: 7x7 dark ring, light ring, 3x3 dark core; separators stay light
            ox = n - 7 if c == 1 else 0
            oy = n - 7 if c == 2 else 0
            for i in range(7):
                for j in range(7):
                    r = i - 3 if i > 3 else 3 - i
                    q = j - 3 if j > 3 else 3 - j
                    if q > r:
                        r = q
                    self._set(ox + j, oy + i, r != 2)
        for i in range(8, n - 8):
            self._set(i, 6, i & 1 == 0)  # timing patterns
            self._set(6, i, i & 1 == 0)
        if self.version == 2:
            for i in range(-2, 3):
                for j in range(-2, 3):
                    r = i if i > 0 else -i
                    q = j if j > 0 else -j
                    self._set(18 + j, 18 + i, r == 2 or q == 2 or r + q == 0)

    def _place(self, count):
        # zigzag two-module columns from the bottom right, skipping column 6
        n = self.size
        cw = self.cw
        i = 0
        total = count * 8
        right = n - 1
        while right >= 1:
            if right == 6:
                right = 5
            up = (right + 1) & 2 == 0
            for v in range(n):
                y = n - 1 - v if up else v
                d = self._data(y)
                for z in range(2):
                    x = right - z
                    if (d >> x) & 1 and i < total:
                        if (cw[i >> 3] >> (7 - (i & 7))) & 1:
                            self._set(x, y, True)
                        i += 1
            right -= 2

    def _format(self, e):
        # 5 bits (ECC level, mask) + BCH(15,5) remainder, masked; two copies
        n = self.size
        v = (_ECC_BITS[e] << 3) | self.mask
        r = v
        for _ in range(10):
            r = (r << 1) ^ ((r >> 9) * _FMT_GEN)
        f = ((v << 10) | r) ^ _FMT_XOR
        for i in range(15):
            b = (f >> i) & 1 == 1
            # first copy around the top-left finder, stepping over the timing row/column
            if i < 6:
                self._set(8, i, b)
            elif i < 8:
                self._set(8, i + 1, b)
            elif i == 8:
                self._set(7, 8, b)
            else:
                self._set(14 - i, 8, b)
            # second copy: under the top-right finder, beside the bottom-left one
            if i < 8:
                self._set(n - 1 - i, 8, b)
            else:
                self._set(8, n - 15 + i, b)
        self._set(8, n - 8, True)  # the dark module


def _digit(digits, k):
    c = digits[k]
    if not isinstance(c, int):
        c = ord(c)
    c -= 48
    if c < 0 or c > 9:
        raise ValueError("not a digit at position %d" % k)
    return c


def encode(digits, version=1, ecc="M", mask=None, into=None):
    # digits: str or bytes of ASCII digits. mask None picks the lowest penalty of
    # the 8 masks. into: a QR to reuse, so that encoding allocates nothing.
    if version != 1 and version != 2:
        raise ValueError("version must be 1 or 2")
    e = "LMQH".find(ecc) if isinstance(ecc, str) and len(ecc) == 1 else -1
    if e < 0:
        raise ValueError("ecc must be one of L, M, Q, H")
    if mask is not None and (not isinstance(mask, int) or mask < 0 or mask > 7):
        raise ValueError("mask must be 0..7 or None")
    n = len(digits)
    if n == 0:
        raise ValueError("no digits")
    for k in range(n):
        _digit(digits, k)
    dc = _DATA_CW[(version - 1) * 4 + e]
    need = 14 + 10 * (n // 3) + _TAIL_BITS[n % 3]
    if need > dc * 8:
        raise ValueError("%d digits do not fit version %d-%s" % (n, version, ecc))
    q = into if into is not None else QR()
    q.version = version
    q.ecc = ecc
    q.size = 17 + 4 * version
    total = _TOTAL_CW[version - 1]
    ec = total - dc
    cw = q.cw
    for i in range(_MAX_CW):
        cw[i] = 0
    # bit stream: mode 0001, 10-bit count, groups of 3 digits in 10 bits
    p = _bits(cw, 0, 1, 4)
    p = _bits(cw, p, n, 10)
    k = 0
    while k < n:
        g = n - k if n - k < 3 else 3
        v = 0
        for j in range(g):
            v = v * 10 + _digit(digits, k + j)
        p = _bits(cw, p, v, 3 * g + 1)
        k += g
    # terminator (up to 4 zero bits, already zero), pad to the byte, pad codewords
    p += 4 if dc * 8 - p > 4 else dc * 8 - p
    i = (p + 7) >> 3
    pad = 0xEC
    while i < dc:
        cw[i] = pad
        pad ^= 0xEC ^ 0x11
        i += 1
    _rs(q.gen, cw, dc, ec)
    # matrix
    b = q.bits
    for i in range(_BITMAP):
        b[i] = 0
    q._function_patterns()
    q._place(total)
    if mask is None:
        best = 0
        low = -1
        q._load()  # the unmasked symbol; each mask is applied while scoring
        for m in range(8):
            s = q._score(m)
            if low < 0 or s < low:
                low = s
                best = m
        mask = best
    q.mask = mask
    q._apply_mask(mask)
    q._format(e)
    return q


def _bits(buf, p, v, count):
    # append the count low bits of v, MSB first, at bit position p
    for i in range(count - 1, -1, -1):
        if (v >> i) & 1:
            buf[p >> 3] |= 0x80 >> (p & 7)
        p += 1
    return p


def _rs(gen, cw, dc, ec):
    # generator prod(x - 2^i), i < ec: coefficients below the leading 1, highest first
    for i in range(ec):
        gen[i] = 0
    gen[ec - 1] = 1
    root = 1
    for _ in range(ec):
        for j in range(ec):
            gen[j] = _mul(gen[j], root) ^ (gen[j + 1] if j + 1 < ec else 0)
        root = _mul(root, 2)
    # remainder of data * x^ec divided by the generator, written after the data
    for i in range(dc):
        f = cw[i] ^ cw[dc]
        for j in range(ec - 1):
            cw[dc + j] = cw[dc + j + 1]
        cw[dc + ec - 1] = 0
        if f:
            for j in range(ec):
                cw[dc + j] ^= _mul(gen[j], f)


def draw(q, fb, x0=0, y0=0, scale=2, quiet=4):
    # Paint q on a framebuf-like fb (anything with fill_rect): a lit (1) square
    # with a quiet zone of `quiet` modules, dark modules as 0, `scale` px each.
    # (x0, y0) is the outer corner of the quiet zone; returns the side in px.
    if scale < 1 or quiet < 0:
        raise ValueError("scale must be >= 1 and quiet >= 0")
    n = q.size
    side = (n + 2 * quiet) * scale
    fb.fill_rect(x0, y0, side, side, 1)
    ox = x0 + quiet * scale
    oy = y0 + quiet * scale
    for y in range(n):
        w = q._row(y)
        x = 0
        while x < n:
            if (w >> x) & 1:
                s = x
                while x < n and (w >> x) & 1:
                    x += 1
                fb.fill_rect(ox + s * scale, oy + y * scale, (x - s) * scale, scale, 0)
            else:
                x += 1
    return side
