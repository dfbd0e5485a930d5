"""HMAC-SHA-512 for HOTP/TOTP (RFC 6238 allows it; authenticator URIs ask for it).

Usage: hotp(key, counter, algorithm="sha512") loads this module; the token never does.
"""

import hashlib


def wide_mac(hmac, algorithm, key, msg):
    # hmac: otp._hmac (passed in, so the two modules do not import each other).
    if algorithm != "sha512":
        raise ValueError("algorithm must be sha1, sha256 or sha512")
    h = getattr(hashlib, "sha512", None)
    if h is None:
        raise ValueError("this runtime's hashlib has no sha512")
    return hmac(h, key, msg, 128)  # SHA-512 hashes 128-byte blocks
