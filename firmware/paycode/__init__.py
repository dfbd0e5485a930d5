"""paycode: the portable payment-code core, the same files on the token and the host.

Usage: from paycode import totp, payment_code, parse_code
Names load on first use (module __getattr__), so a token pays RAM only for the
modules it calls: the payment-code path never loads base32 or the calendar.
"""

FORMAT_VERSION = 1

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
