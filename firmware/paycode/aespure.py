"""Compact pure-Python AES-128 forward cipher (FIPS 197), for ports without cryptolib.

Usage: new(key16).encrypt(src16, dst16)  # the cryptolib.aes ECB interface
Loaded only where neither cryptolib nor `cryptography` exists (see aes.py).
"""


def _tables():
    # S-box from the multiplicative inverse in GF(2^8) plus the affine map,
    # walking p over the powers of 3 and q over those of its inverse.
    sbox = bytearray(256)
    x2 = bytearray(256)  # xtime: multiplication by 2 mod x^8+x^4+x^3+x+1
    for i in range(256):
        x2[i] = ((i << 1) ^ (0x1B if i & 0x80 else 0)) & 0xFF
    p = 1
    q = 1
    while True:
        p = p ^ x2[p]  # p *= 3
        q ^= q << 1  # q /= 3
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        r = q
        a = q
        for _ in range(4):
            a = ((a << 1) | (a >> 7)) & 0xFF
            r ^= a
        sbox[p] = r ^ 0x63
        if p == 1:
            break
    sbox[0] = 0x63
    return sbox, x2  # bytearrays: no second copy


_SBOX, _X2 = _tables()
del _tables
_RCON = b"\x01\x02\x04\x08\x10\x20\x40\x80\x1b\x36"
# SubBytes+ShiftRows in one gather: state byte i (row i%4, column i//4) takes
# the byte of row i%4 from column (i//4 + i%4) mod 4.
_SHIFT = bytes(((i // 4 + i % 4) % 4) * 4 + i % 4 for i in range(16))


class new:  # noqa: N801 - a constructor named like cryptolib's
    # Forward cipher only; the 176-byte schedule and one scratch block are
    # allocated once, so encrypt allocates nothing.
    def __init__(self, key):
        if len(key) != 16:
            raise ValueError("AES-128 key must be 16 bytes, not %d" % len(key))
        sb = _SBOX
        w = bytearray(176)
        w[:16] = key
        for i in range(16, 176, 4):
            a = w[i - 4]
            b = w[i - 3]
            c = w[i - 2]
            d = w[i - 1]
            if i % 16 == 0:
                a, b, c, d = sb[b] ^ _RCON[i // 16 - 1], sb[c], sb[d], sb[a]
            w[i] = w[i - 16] ^ a
            w[i + 1] = w[i - 15] ^ b
            w[i + 2] = w[i - 14] ^ c
            w[i + 3] = w[i - 13] ^ d
        self._w = w
        self._t = bytearray(16)

    def encrypt(self, src, s):
        w = self._w
        t = self._t
        sb = _SBOX
        x2 = _X2
        sh = _SHIFT
        for i in range(16):
            s[i] = src[i] ^ w[i]
        k = 16
        for rnd in range(10):
            for i in range(16):
                t[i] = sb[s[sh[i]]]
            if rnd == 9:
                for i in range(16):
                    s[i] = t[i] ^ w[k + i]
                return s
            for c in range(0, 16, 4):
                a0 = t[c]
                a1 = t[c + 1]
                a2 = t[c + 2]
                a3 = t[c + 3]
                e = a0 ^ a1 ^ a2 ^ a3
                s[c] = a0 ^ e ^ x2[a0 ^ a1] ^ w[k + c]
                s[c + 1] = a1 ^ e ^ x2[a1 ^ a2] ^ w[k + c + 1]
                s[c + 2] = a2 ^ e ^ x2[a2 ^ a3] ^ w[k + c + 2]
                s[c + 3] = a3 ^ e ^ x2[a3 ^ a0] ^ w[k + c + 3]
            k += 16
        return s
