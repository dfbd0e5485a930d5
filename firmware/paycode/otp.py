"""HMAC (RFC 2104), HOTP (RFC 4226), TOTP (RFC 6238) and the clock-sync MAC.

Usage: totp(key, 1111111109)  # -> "081804" for the RFC 6238 SHA-1 key
"""

import hashlib
from binascii import hexlify


def _hmac(h, key, msg, block=64):
    # A built-in hash finalizes on digest(), so each object is digested once.
    # SHA-1 and SHA-256 hash 64-byte blocks, SHA-512 128-byte ones.
    if len(key) > block:
        key = h(key).digest()
    pad = bytearray(block)
    pad[: len(key)] = key
    for i in range(block):
        pad[i] ^= 0x36  # K xor ipad
    inner = h(pad)
    inner.update(msg)
    for i in range(block):
        pad[i] ^= 0x6A  # 0x36 ^ 0x6A == 0x5C: now K xor opad
    outer = h(pad)
    outer.update(inner.digest())
    return outer.digest()


def hmac_sha1(key, msg):
    return _hmac(hashlib.sha1, key, msg)


def hmac_sha256(key, msg):
    h = getattr(hashlib, "sha256", None)
    if h is None:
        raise ValueError("this runtime's hashlib has no sha256")
    return _hmac(h, key, msg)


def hotp(key, counter, digits=6, algorithm="sha1"):
    # RFC 4226 section 5.3: dynamic truncation to 31 bits, then mod 10^digits.
    if not 6 <= digits <= 10:
        raise ValueError("digits must be 6..10, not %d" % digits)
    if counter < 0 or counter >= 1 << 64:
        raise ValueError("counter must be 0..2^64-1")
    if algorithm == "sha1":
        mac = hmac_sha1(key, counter.to_bytes(8, "big"))
    elif algorithm == "sha256":
        mac = hmac_sha256(key, counter.to_bytes(8, "big"))
    else:
        # SHA-512 and the errors: host apps only, so the token never loads this code.
        from paycode.otpwide import wide_mac

        mac = wide_mac(_hmac, algorithm, key, counter.to_bytes(8, "big"))
    o = mac[-1] & 0x0F
    mod = 10**digits
    # Horner's rule mod 10^digits keeps 6-digit arithmetic in small ints on 30-bit ports.
    v = mac[o] & 0x7F
    v = (v * 256 + mac[o + 1]) % mod
    v = (v * 256 + mac[o + 2]) % mod
    v = (v * 256 + mac[o + 3]) % mod
    s = str(v)
    return "0" * (digits - len(s)) + s


def totp(key, unix_time, period=30, digits=6, algorithm="sha1"):
    # RFC 6238: counter = floor(unix_time / period), T0 = 0. UTC seconds, an int.
    if unix_time < 0:
        raise ValueError("unix_time must be >= 0")
    if period < 1:
        raise ValueError("period must be >= 1")
    return hotp(key, unix_time // period, digits, algorithm)


def sync_mac(key, verb, nonce, value):
    # docs/ARCHITECTURE.md: hex HMAC-SHA1 of "paytoken-sync-v1|VERB|NONCE|VALUE" (ASCII).
    if isinstance(verb, str):
        verb = verb.encode()
    if isinstance(nonce, str):
        nonce = nonce.encode()
    msg = b"paytoken-sync-v1|" + verb + b"|" + nonce + b"|" + str(int(value)).encode()
    return hexlify(hmac_sha1(key, msg)).decode()
