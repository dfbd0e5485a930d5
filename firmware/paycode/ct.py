"""Constant-time comparison (MicroPython has no hmac.compare_digest).

Usage: equal(otp_seen, otp_expected)
"""


def equal(a, b):
    # Time depends only on the lengths, never on where the inputs differ.
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0
