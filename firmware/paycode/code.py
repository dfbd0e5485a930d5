"""Payment code format v1: 18 digits, P V | C(15) | K (see docs/FORMAT.md).

Usage: payment_code(secret, 12345678, 1700000000, scheme_key)  # -> "81...." (18 digits)
"""

from .check import damm
from .ff1 import ff1_decrypt, ff1_encrypt
from .otp import totp

# Fixed by format v1: 18 digits; the TOTP inside is RFC 6238 SHA-1, 30 s steps,
# 6 digits; token ids have 8 digits; the issuer accepts 4 steps either side.
WINDOW = 4


def check_prefix(prefix):
    # Two digits, no leading zero, and no start that belongs to another wallet:
    # 10-15 (WeChat Pay), 25-30 (Alipay), 62 (UnionPay).
    if (
        not isinstance(prefix, str)
        or len(prefix) != 2
        or not ("0" <= prefix[0] <= "9" and "0" <= prefix[1] <= "9")
    ):
        raise ValueError("prefix must be two digits")
    p = int(prefix)
    if p < 10:
        raise ValueError("prefix %s starts with 0" % prefix)
    if p <= 15 or 25 <= p <= 30 or p == 62:
        raise ValueError("prefix %s belongs to another wallet (10-15, 25-30, 62)" % prefix)
    return prefix


def payment_code(secret, token_id, unix_time, scheme_key, prefix="81"):
    check_prefix(prefix)
    if not 0 <= token_id <= 99999999:
        raise ValueError("token id must be 0 to 99999999")
    step = unix_time // 30
    inner = "%08d%d%s" % (token_id, step % 10, totp(secret, unix_time))
    body = prefix + ff1_encrypt(scheme_key, prefix.encode(), inner)
    return body + str(damm(body))


def parse_code(code, scheme_key):
    # -> (prefix, token_id, step_residue, otp). Spaces (the groups of four) are
    # ignored. scheme_key is one 16-byte key, or a dict {prefix: key} for the
    # versions an issuer runs; a prefix it lacks is unknown.
    code = code.replace(" ", "")
    for ch in code:
        if not "0" <= ch <= "9":
            raise ValueError("payment code must be digits only")
    if len(code) != 18:
        raise ValueError("payment code must be 18 digits, not %d" % len(code))
    if damm(code) != 0:
        raise ValueError("payment code check digit is wrong (a mistyped digit?)")
    prefix = code[:2]
    try:
        check_prefix(prefix)
    except ValueError:
        raise ValueError("unknown prefix %s" % prefix) from None
    if isinstance(scheme_key, dict):
        key = scheme_key.get(prefix)
        if key is None:
            raise ValueError("unknown prefix %s" % prefix)
    else:
        key = scheme_key
    inner = ff1_decrypt(key, prefix.encode(), code[2:17])
    return (prefix, int(inner[:8]), int(inner[8]), inner[9:])


def resolve_step(residue, unix_time, window=WINDOW):
    # The one time step within +-window of unix_time whose last digit is residue,
    # or -1 if none (a code older or newer than the window).
    now = unix_time // 30
    d = (residue - now) % 10
    if d > 5:
        d -= 10
    if -window <= d <= window:
        return now + d
    return -1


def group4(code):
    # "818765432101234567" -> "8187 6543 2101 2345 67": groups of four from the left.
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
