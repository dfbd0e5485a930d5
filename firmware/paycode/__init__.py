"""paycode: the portable payment-code core, the same files on the token and the host.

Usage: from paycode import totp, payment_code, parse_code
Names load on first use (module __getattr__), so a token pays RAM only for the
modules it calls: the payment-code path never loads base32 or the calendar.
"""

# The payment-code formats (docs/FORMAT.md): the one table, for the token and the
# issuer. Every format has format 1's layout (18 digits: prefix | FF1(token id (8),
# step residue (1), TOTP (6 digits)) | Damm) and PERIOD-second steps; format n's
# TOTP uses the HMAC hash FORMATS[n - 1] (parse.format_hash). Here because this file
# is on every heap anyway: a table module of its own costs a token's wake its RAM.
PERIOD = 30  # seconds per TOTP step (T0 = 0): the project's one period
FORMATS = ("sha1", "sha256")  # formats 1, 2

# Modules searched for a public name, the token's hot path first. A tuple scan
# instead of a name table: this file is on every token's heap.
_MODULES = (
    "code",
    "otp",
    "ff1",
    "check",
    "parse",
    "ct",
    "civil",
    "b32",
    "aes",
    "aespure",
    "aeshost",
)


def __getattr__(name):
    if name in _MODULES:
        # A submodule (MicroPython's `from . import x` asks the package first).
        return __import__("paycode." + name, None, None, ("x",))
    if name[0] != "_":
        attr = "BACKEND" if name == "AES_BACKEND" else name
        for mod in _MODULES[:9]:
            m = __import__("paycode." + mod, None, None, ("x",))
            if attr in m.__dict__:
                v = m.__dict__[attr]
                globals()[name] = v  # cache: the next lookup is a plain dict hit
                return v
    raise AttributeError("paycode has no attribute " + name)
