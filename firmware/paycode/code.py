"""Payment code format v1, the token's side: 18 digits, P V | C(15) | K (docs/FORMAT.md).

Usage: payment_code(secret, 12345678, 1700000000, scheme_key)  # -> "81...." (18 digits)
The issuer's side (parse_code, resolve_step) is parse.py, never loaded on a token.
"""

from .check import damm
from .ff1 import ff1_encrypt
from .otp import totp

# Fixed by format v1: the TOTP inside is RFC 6238 SHA-1, 30 s steps, 6 digits;
# token ids have 8 digits.


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


def payment_code(secret, token_id, unix_time, scheme_key, prefix="81"):
    check_prefix(prefix)
    if not 0 <= token_id <= 99999999:
        raise ValueError("token id must be 0 to 99999999")
    step = unix_time // 30
    inner = "%08d%d%s" % (token_id, step % 10, totp(secret, unix_time))
    body = prefix + ff1_encrypt(scheme_key, prefix.encode(), inner)
    return body + str(damm(body))


def group4(code):
    # "818765432101234567" -> "8187 6543 2101 2345 67": groups of four from the left.
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
