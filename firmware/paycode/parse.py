"""Payment codes, the issuer's side: check, decrypt, place in time (every format so far).

Usage: prefix, token_id, residue, otp = parse_code(code, scheme_key)
"""

from . import FORMATS, PERIOD
from .check import damm
from .ff1 import ff1_decrypt

DIGITS = 6  # TOTP digits in every format (code.py passes them to totp)


def format_hash(fmt):
    # The TOTP hash of code format fmt (the table is paycode.FORMATS); ValueError
    # for a format this code does not know. (The token's code.py checks inline.)
    if type(fmt) is not int or not 0 < fmt <= len(FORMATS):
        raise ValueError("unknown code format %r" % (fmt,))
    return FORMATS[fmt - 1]


WINDOW = 4  # time steps the issuer accepts either side of its own clock


def parse_code(code, scheme_key, decrypt=ff1_decrypt):
    # -> (prefix, token_id, step_residue, otp). Spaces (the groups of four) are
    # ignored. scheme_key is one 16-byte key, or a dict {prefix: key} for the
    # versions an issuer runs; a prefix it lacks is unknown. decrypt: the FF1
    # decryption to use (an issuer may pass a faster host one; same results).
    code = code.replace(" ", "")
    for ch in code:
        if not "0" <= ch <= "9":
            raise ValueError("code has a non-digit")
    if len(code) != 18:
        raise ValueError("code has %d digits, not 18" % len(code))
    if damm(code) != 0:
        raise ValueError("code check digit is wrong")
    prefix = code[:2]
    p = int(prefix)
    key = scheme_key.get(prefix) if isinstance(scheme_key, dict) else scheme_key
    if key is None or p < 16 or 25 <= p <= 30 or p == 62:
        raise ValueError("unknown prefix %s" % prefix)
    inner = decrypt(key, prefix.encode(), code[2:17])
    return (prefix, int(inner[:8]), int(inner[8]), inner[9:])


def resolve_step(residue, unix_time, window=WINDOW):
    # The one time step within +-window of unix_time whose last digit is residue,
    # or -1 if none (a code older or newer than the window).
    now = unix_time // PERIOD
    d = (residue - now) % 10
    if d > 5:
        d -= 10
    if -window <= d <= window:
        return now + d
    return -1


def group4(code):
    # "818765432101234567" -> "8187 6543 2101 2345 67": groups of four from the left.
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
