"""NIST SP 800-38G FF1 format-preserving encryption over AES-128, radix 2..36.

Usage: ff1_encrypt(key16, b"81", "123456780123456")  # -> 15 other digits
"""

from .aes import new as _aes

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

# The last context, for one (key, tweak, radix, n): a token encrypts under one
# scheme key, so after its first code FF1 allocates no buffers. A tuple, not an
# instance: (key, tweak, radix, n, u, v, b, d, radix^u, radix^v, cipher, E(P), Q, R, S)
# Q, R and S are scratch. The host makes codes in several threads at once, which must
# never share them: its AES (aeshost) says so, and its contexts hold no key, so that
# none is ever reused. (No new name here: this module is on a token's heap.)
_ctx = None


def _new_ctx(key, tweak, radix, n):
    if len(key) != 16:
        raise ValueError("key must be 16 bytes, not %d" % len(key))
    if len(tweak) > 255:
        raise ValueError("tweak over 255 bytes")
    key = bytes(key)
    u = n // 2
    v = n - u
    # b = ceil(ceil(v * log2(radix)) / 8); ceil(v*log2(radix)) is the least k
    # with 2^k >= radix^v, found with exact integers (no floats, no bit_length).
    top = radix**v
    k = 0
    while (1 << k) < top:
        k += 1
    b = (k + 7) // 8
    d = 4 * ((b + 3) // 4) + 4
    c = _aes(key)
    t = len(tweak)
    # P = [1][2][1] [radix]^3 [10] [u mod 256] [n]^4 [t]^4; CBC-MAC's first
    # block E(P) is the same every round, so it is computed once here.
    p = bytearray(16)
    p[0:3] = b"\x01\x02\x01"
    p[3:6] = radix.to_bytes(3, "big")
    p[6] = 10
    p[7] = u % 256
    p[8:12] = n.to_bytes(4, "big")
    p[12:16] = t.to_bytes(4, "big")
    c.encrypt(p, p)
    # Q = T || 0^((-t-b-1) mod 16) || [i] || [NUM(B)]^b: one buffer whose last
    # b+1 bytes are patched each round.
    q = bytearray(tweak) + bytearray((-t - b - 1) % 16 + 1 + b)
    s = bytearray(((d + 15) // 16) * 16)
    if getattr(c, "threads", 0):
        key = None  # never equal to a key: each code makes its own context
    return (key, bytes(tweak), radix, n, u, v, b, d, radix**u, top, c, p, q, bytearray(16), s)


def _y(f, i, x):
    # NUM(S) for round i and half x: S = the first d bytes of R || CIPH(R^[1]) || ...
    b = f[6]
    c = f[10]
    q = f[12]
    r = f[13]
    s = f[14]
    lq = len(q)
    q[lq - b - 1] = i
    q[lq - b :] = x.to_bytes(b, "big")
    r[:] = f[11]
    for j in range(0, lq, 16):
        for m in range(16):
            r[m] ^= q[j + m]
        c.encrypt(r, r)
    s[:16] = r
    for j in range(16, len(s), 16):
        blk = bytearray(r)  # only when d > 16: radix^v beyond 2^96, never for codes
        blk[15] ^= (j >> 4) & 0xFF
        blk[14] ^= j >> 12
        c.encrypt(blk, blk)
        s[j : j + 16] = blk
    return int.from_bytes(s[: f[7]], "big")


def _prep(key, tweak, numerals, radix):
    global _ctx
    if not 2 <= radix <= 36:
        raise ValueError("radix must be 2..36")
    n = len(numerals)
    # SP 800-38G: at least 2 numerals and radix^n >= 1,000,000.
    if n < 2 or radix**n < 1000000:
        raise ValueError("FF1 input too short: %d numerals" % n)
    for ch in numerals:
        c = ord(ch)
        if not 0 <= (c - 48 if c < 58 else c - 87) < radix:  # '0'-'9', 'a'-'z'
            raise ValueError("numeral outside radix %d" % radix)
    f = _ctx
    if f is None or f[2] != radix or f[3] != n or f[1] != tweak or f[0] != key:
        f = _ctx = _new_ctx(key, tweak, radix, n)
    u = f[4]
    if radix == 10:
        return f, int(numerals[:u]), int(numerals[u:])
    return f, int(numerals[:u], radix), int(numerals[u:], radix)


def _str(v, m, radix):
    # STR^m_radix(v): v as exactly m numerals.
    if radix == 10:
        s = str(v)
    else:
        s = ""
        while v:
            v, r = divmod(v, radix)
            s = _DIGITS[r] + s
    return "0" * (m - len(s)) + s


def ff1_encrypt(key, tweak, numerals, radix=10):
    f, a, b = _prep(key, tweak, numerals, radix)
    for i in range(10):
        c = (a + _y(f, i, b)) % (f[9] if i & 1 else f[8])
        a = b
        b = c
    # After an even number of rounds A has u numerals and B has v.
    return _str(a, f[4], radix) + _str(b, f[5], radix)


def ff1_decrypt(key, tweak, numerals, radix=10):
    f, a, b = _prep(key, tweak, numerals, radix)
    for i in range(9, -1, -1):
        c = (b - _y(f, i, a)) % (f[9] if i & 1 else f[8])
        b = a
        a = c
    return _str(a, f[4], radix) + _str(b, f[5], radix)
