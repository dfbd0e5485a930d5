"""AES-128 forward block cipher (FIPS 197) for FF1: the fastest one the runtime has.

Usage: c = new(key16); c.encrypt(src16, dst16)  # the cryptolib.aes ECB interface
Order: MicroPython's cryptolib, then CPython's `cryptography` (aeshost), then
aespure, a compact encryptor for ports built without cryptolib. All agree (tested).
"""

try:
    from cryptolib import aes as _aes

    BACKEND = "cryptolib"

    def new(key):
        return _aes(key, 1)  # mode 1: ECB, one block at a time

except ImportError:
    try:
        from .aeshost import new  # noqa: F401

        BACKEND = "cryptography"
    except ImportError:
        from .aespure import new  # noqa: F401

        BACKEND = "pure"
