"""AES-128 on CPython through `cryptography`, shaped like MicroPython's cryptolib.aes.

Usage: new(key16).encrypt(src16, dst16)
"""

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class new:  # noqa: N801 - a constructor named like cryptolib's
    # The host runs threads: FF1 must not keep a context (its scratch blocks) for
    # reuse across codes (ff1._new_ctx).
    threads = True

    def __init__(self, key):
        self._e = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

    def encrypt(self, src, dst):
        dst[:16] = self._e.update(bytes(src[:16]))
        return dst
