# hashlib for a port built without sha1: its own sha256, and SHA-1 (FIPS 180-4) in Python.
from hashlib import sha256  # noqa: F401


class sha1:
    def __init__(self, data=b""):
        self._h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
        self._buf = b""
        self._n = 0
        self.update(data)

    def update(self, data):
        data = self._buf + bytes(data)
        self._n += len(data) - len(self._buf)
        i = 0
        while len(data) - i >= 64:
            self._block(data[i : i + 64])
            i += 64
        self._buf = data[i:]

    def _block(self, blk):
        w = [int.from_bytes(blk[j : j + 4], "big") for j in range(0, 64, 4)]
        for j in range(16, 80):
            x = w[j - 3] ^ w[j - 8] ^ w[j - 14] ^ w[j - 16]
            w.append(((x << 1) | (x >> 31)) & 0xFFFFFFFF)
        a, b, c, d, e = self._h
        for j in range(80):
            if j < 20:
                f, k = (b & c) | (~b & d), 0x5A827999
            elif j < 40:
                f, k = b ^ c ^ d, 0x6ED9EBA1
            elif j < 60:
                f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
            else:
                f, k = b ^ c ^ d, 0xCA62C1D6
            t = (((a << 5) | (a >> 27)) + f + e + k + w[j]) & 0xFFFFFFFF
            a, b, c, d, e = t, a, ((b << 30) | (b >> 2)) & 0xFFFFFFFF, c, d
        h = self._h
        for j, v in enumerate((a, b, c, d, e)):
            h[j] = (h[j] + v) & 0xFFFFFFFF

    def digest(self):
        n = self._n
        pad = b"\x80" + bytes((55 - n) % 64) + (n * 8).to_bytes(8, "big")
        self.update(pad)
        return b"".join(v.to_bytes(4, "big") for v in self._h)

