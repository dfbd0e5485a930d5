"""Payment codes, the token's side: 18 digits, P V | C(15) | K (docs/FORMAT.md).

Usage: payment_code(secret, 12345678, 1700000000, scheme_key)  # -> "81...." (18 digits)
       payment_code(secret, 12345678, 1700000000, scheme_key, "82", 2)  # format 2
The issuer's side (parse_code, resolve_step, group4) is parse.py, never loaded on a token.
"""

from . import FORMATS, PERIOD
from .check import damm
from .ff1 import ff1_encrypt
from .otp import totp

# The format table is paycode.FORMATS; every format's TOTP has 6 digits
# (parse.DIGITS on the issuer). The issuer's lookup in the table is parse.format_hash.


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
        raise ValueError("prefix %s belongs to another wallet" % prefix)
    return prefix


def payment_code(secret, token_id, unix_time, scheme_key, prefix="81", fmt=1):
    # fmt: the code format, which names the TOTP's hash (FORMATS[fmt - 1])
    check_prefix(prefix)
    if not 0 < fmt <= len(FORMATS):
        raise ValueError("unknown code format")
    if not 0 <= token_id <= 99999999:
        raise ValueError("token id must be 0 to 99999999")
    otp = totp(secret, unix_time, PERIOD, 6, FORMATS[fmt - 1])
    inner = "%08d%d%s" % (token_id, unix_time // PERIOD % 10, otp)
    body = prefix + ff1_encrypt(scheme_key, prefix.encode(), inner)
    return body + str(damm(body))
