"""Payment-code parsing for the issuer's hot path: ``paycode.parse_code`` with a faster FF1.

``paycode`` is the device's code (MicroPython-shaped: byte loops, one AES block per
call). Here FF1 decryption (NIST SP 800-38G, radix 10) keeps one AES-ECB encryptor per
scheme key and computes each round's PRF as ``AES(AES(P) xor Q)`` on Python integers:
the first CBC-MAC block ``AES(P)`` depends only on the key, tweak and length, so it is
computed once. Same checks, same errors and same results as ``paycode.parse_code``
(tests: NIST SP 800-38G samples and agreement with paycode on random codes).

HOTP (RFC 4226, 6 digits, the format's hash from ``paycode.FORMATS``: SHA-1 in format 1,
SHA-256 in format 2) uses the standard library's C HMAC (``hmac.digest``) instead of
paycode's two-pass pure-Python one.

Usage::

    prefix, token_id, residue, otp = parse_code(code, {"81": scheme_key})
    ok = hmac.compare_digest(hotp(secret, step, fmt), otp)
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from paycode.parse import DIGITS, format_hash
from paycode.parse import parse_code as _parse


class _FF1:
    """FF1 decryption, radix 10, for one (key, tweak, length)."""

    __slots__ = ("enc", "u", "v", "b", "d", "mod_u", "mod_v", "head", "ap")

    def __init__(self, key: bytes, tweak: bytes, n: int) -> None:
        self.enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self.u, self.v = n // 2, n - n // 2
        self.b = ((10**self.v - 1).bit_length() + 7) // 8  # ceil(ceil(v log2 10) / 8)
        self.d = 4 * ((self.b + 3) // 4) + 4
        if self.d > 16:
            raise ValueError("FF1 fast path covers up to 16 PRF bytes")
        self.mod_u, self.mod_v = 10**self.u, 10**self.v
        t = len(tweak)
        p = (bytes((1, 2, 1, 0, 0, 10, 10, self.u % 256)) + n.to_bytes(4, "big") + t.to_bytes(4, "big"))
        # Q = T || 0^((-t-b-1) mod 16) || [i] || [NUM(B)]^b; all blocks but the last are fixed.
        self.head = tweak + bytes((-t - self.b - 1) % 16)
        if len(self.head) + 1 + self.b != 16:
            raise ValueError("FF1 fast path covers tweaks that fit Q in one block")
        self.ap = int.from_bytes(self.enc.update(p), "big")  # AES(P): the CBC-MAC's first block

    def _y(self, i: int, x: int) -> int:
        q = self.head + bytes((i,)) + x.to_bytes(self.b, "big")
        r = self.enc.update((self.ap ^ int.from_bytes(q, "big")).to_bytes(16, "big"))
        return int.from_bytes(r[: self.d], "big")

    def decrypt(self, numerals: str) -> str:
        u = self.u
        a, b = int(numerals[:u]), int(numerals[u:])
        for i in range(9, -1, -1):
            c = (b - self._y(i, a)) % (self.mod_v if i & 1 else self.mod_u)
            b, a = a, c
        return str(a).zfill(u) + str(b).zfill(self.v)


_ciphers: dict[tuple[bytes, bytes, int], _FF1] = {}


def ff1_decrypt(key: bytes, tweak: bytes, numerals: str) -> str:
    """FF1-decrypt a string of decimal digits (cached per key, tweak and length)."""
    k = (bytes(key), bytes(tweak), len(numerals))
    f = _ciphers.get(k)
    if f is None:
        if len(_ciphers) > 64:
            _ciphers.clear()
        f = _ciphers[k] = _FF1(*k)
    return f.decrypt(numerals)


def parse_code(code: str, keys: dict[str, bytes]) -> tuple[str, int, int, str]:
    """(prefix, token_id, residue, otp) of a payment code: ``paycode.parse_code``'s
    checks and errors, with this module's FF1 decryption."""
    return _parse(code, keys, ff1_decrypt)


_MOD = 10**DIGITS


def hotp(key: bytes, counter: int, fmt: int = 1) -> str:
    """RFC 4226 HOTP, 6 digits, with format ``fmt``'s HMAC (``paycode.FORMATS``):
    ``paycode.hotp(key, counter, algorithm=format_hash(fmt))``, faster. Dynamic
    truncation takes the offset from the last byte of the MAC, whatever its length
    (RFC 6238's SHA-256 variant: 32 bytes)."""
    mac = hmac.digest(key, counter.to_bytes(8, "big"), format_hash(fmt))
    o = mac[-1] & 0x0F
    return "%0*d" % (DIGITS, (int.from_bytes(mac[o:o + 4], "big") & 0x7FFFFFFF) % _MOD)


def find_step(key: bytes, otp: str, steps, fmt: int = 1) -> int | None:
    """The first of ``steps`` whose HOTP is ``otp`` (constant-time compares), or None."""
    for s in steps:
        if hmac.compare_digest(hotp(key, s, fmt), otp):
            return s
    return None
