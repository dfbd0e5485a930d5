"""HMAC (RFC 2104), HOTP (RFC 4226), TOTP (RFC 6238) and the clock-sync MAC.

Usage: totp(key, 1111111109)  # -> "081804" for the RFC 6238 SHA-1 key
"""

import hashlib

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_BLOCK = const(64)  # SHA-1 and SHA-256 both hash 64-byte blocks

# Pad tables, built once: xor with 0x36 / 0x5c is a lookup, not a per-call loop.
_IPAD = bytes(i ^ 0x36 for i in range(256))
_OPAD = bytes(i ^ 0x5C for i in range(256))

_POW10 = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000, 10000000000)


def _hash(name):
    # The runtime's constructor, or a clear error where the port lacks it.
    h = getattr(hashlib, name, None)
    if h is None:
        raise ValueError("this runtime's hashlib has no %s" % name)
    return h


def _hmac(h, key, msg):
    # A built-in hash finalizes on digest(), so each object is digested once.
    if len(key) > _BLOCK:
        key = h(key).digest()
    k = bytearray(_BLOCK)
    k[: len(key)] = key
    pad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        pad[i] = _IPAD[k[i]]
    inner = h(pad)
    inner.update(msg)
    for i in range(_BLOCK):
        pad[i] = _OPAD[k[i]]
    outer = h(pad)
    outer.update(inner.digest())
    return outer.digest()


def hmac_sha1(key, msg):
    return _hmac(hashlib.sha1, key, msg)


def hmac_sha256(key, msg):
    return _hmac(_hash("sha256"), key, msg)


def hotp(key, counter, digits=6, algorithm="sha1"):
    # RFC 4226 section 5.3: dynamic truncation to 31 bits, then mod 10^digits.
    if not 6 <= digits <= 10:
        raise ValueError("digits must be 6 to 10, not %d" % digits)
    if counter < 0 or counter >= 1 << 64:
        raise ValueError("counter must be 0 to 2^64-1")
    if algorithm == "sha1":
        mac = hmac_sha1(key, counter.to_bytes(8, "big"))
    elif algorithm == "sha256":
        mac = hmac_sha256(key, counter.to_bytes(8, "big"))
    else:
        raise ValueError("algorithm must be sha1 or sha256")
    o = mac[-1] & 0x0F
    mod = _POW10[digits]
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
        raise ValueError("period must be >= 1 second")
    return hotp(key, unix_time // period, digits, algorithm)


def sync_mac(key, verb, nonce, value):
    # docs/ARCHITECTURE.md: hex HMAC-SHA1 of "paytoken-sync-v1|VERB|NONCE|VALUE" (ASCII).
    if isinstance(verb, str):
        verb = verb.encode()
    if isinstance(nonce, str):
        nonce = nonce.encode()
    msg = b"paytoken-sync-v1|" + verb + b"|" + nonce + b"|" + str(int(value)).encode()
    mac = hmac_sha1(key, msg)
    out = bytearray(40)
    hexd = b"0123456789abcdef"
    for i in range(20):
        out[2 * i] = hexd[mac[i] >> 4]
        out[2 * i + 1] = hexd[mac[i] & 15]
    return out.decode()
