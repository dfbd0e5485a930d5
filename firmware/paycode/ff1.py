"""NIST SP 800-38G FF1 format-preserving encryption over AES-128, radix 2..36.

Usage: ff1_encrypt(key16, b"81", "123456780123456")  # -> 15 other digits
"""

from . import aes

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_ROUNDS = const(10)
_MAX_TWEAK = const(255)
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _num(x, radix):
    # NUM_radix(X): numerals, most significant first, as an int.
    if radix == 10:
        return int(x)
    return int(x, radix)


def _str(v, m, radix):
    # STR^m_radix(v): v as exactly m numerals.
    if radix == 10:
        s = str(v)
    else:
        ds = []
        while v:
            v, r = divmod(v, radix)
            ds.append(_DIGITS[r])
        ds.reverse()
        s = "".join(ds)
    return "0" * (m - len(s)) + s


def _check(radix, x):
    if not 2 <= radix <= 36:
        raise ValueError("FF1 radix must be 2 to 36")
    n = len(x)
    # SP 800-38G: radix^minlen >= 1,000,000 and minlen >= 2.
    if n < 2 or radix**n < 1000000:
        raise ValueError("FF1 needs at least 2 numerals and radix^n >= 10^6; got %d" % n)
    for ch in x:
        c = ord(ch)
        v = c - 48 if c < 58 else c - 87  # '0'-'9', 'a'-'z'
        if not 0 <= v < radix:
            raise ValueError("FF1 input has a numeral outside radix %d" % radix)


class _Prf:
    # Everything that depends only on (key, tweak, radix, n), built once per call:
    # E(P), the first CBC-MAC block, so each round costs len(Q)/16 block encryptions.
    def __init__(self, key, tweak, radix, n):
        if len(tweak) > _MAX_TWEAK:
            raise ValueError("FF1 tweak longer than %d bytes" % _MAX_TWEAK)
        u = n // 2
        v = n - u
        # b = ceil(ceil(v * log2(radix)) / 8); ceil(v*log2(radix)) is the least k
        # with 2^k >= radix^v, found with exact integers (no floats, no bit_length).
        top = radix**v
        k = 0
        while (1 << k) < top:
            k += 1
        b = (k + 7) // 8
        self.u = u
        self.v = v
        self.b = b
        self.d = 4 * ((b + 3) // 4) + 4
        self.c = aes.new(key)
        t = len(tweak)
        p = bytearray(16)
        p[0] = 1
        p[1] = 2
        p[2] = 1
        p[3:6] = radix.to_bytes(3, "big")
        p[6] = 10
        p[7] = u % 256
        p[8:12] = n.to_bytes(4, "big")
        p[12:16] = t.to_bytes(4, "big")
        self.c.encrypt_block(p)
        self.ep = p
        # Q = T || 0^((-t-b-1) mod 16) || [i] || [NUM(B)]^b: all but the last b+1
        # bytes are fixed, so Q is one buffer patched per round.
        self.q = bytearray(tweak) + bytearray((-t - b - 1) % 16 + 1 + b)
        self.r = bytearray(16)
        self.s = bytearray(((self.d + 15) // 16) * 16)

    def y(self, i, num_b):
        # y = NUM(S) for round i, where S = first d bytes of R || CIPH(R^[1]) || ...
        q = self.q
        lq = len(q)
        b = self.b
        q[lq - b - 1] = i
        q[lq - b :] = num_b.to_bytes(b, "big")
        r = self.r
        r[:] = self.ep
        c = self.c
        for j in range(0, lq, 16):
            for m in range(16):
                r[m] ^= q[j + m]
            c.encrypt_block(r)
        s = self.s
        s[:16] = r
        for j in range(1, len(s) // 16):
            blk = bytearray(r)
            blk[15] ^= j & 0xFF
            blk[14] ^= (j >> 8) & 0xFF
            c.encrypt_block(blk)
            s[16 * j : 16 * j + 16] = blk
        return int.from_bytes(s[: self.d], "big")


def ff1_encrypt(key, tweak, numerals, radix=10):
    _check(radix, numerals)
    f = _Prf(key, tweak, radix, len(numerals))
    u = f.u
    a = _num(numerals[:u], radix)
    b = _num(numerals[u:], radix)
    mod_u = radix**u
    mod_v = radix**f.v
    for i in range(_ROUNDS):
        c = (a + f.y(i, b)) % (mod_u if i % 2 == 0 else mod_v)
        a = b
        b = c
    # After an even number of rounds A has u numerals and B has v.
    return _str(a, u, radix) + _str(b, f.v, radix)


def ff1_decrypt(key, tweak, numerals, radix=10):
    _check(radix, numerals)
    f = _Prf(key, tweak, radix, len(numerals))
    u = f.u
    a = _num(numerals[:u], radix)
    b = _num(numerals[u:], radix)
    mod_u = radix**u
    mod_v = radix**f.v
    for i in range(_ROUNDS - 1, -1, -1):
        c = (b - f.y(i, a)) % (mod_u if i % 2 == 0 else mod_v)
        b = a
        a = c
    return _str(a, u, radix) + _str(b, f.v, radix)
