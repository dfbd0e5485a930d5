"""Base32 secrets (RFC 4648) as authenticator apps show them.

Usage: key = decode_secret("JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP")
"""

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_MIN_BYTES = const(16)  # RFC 4226 R6: a shared secret of at least 128 bits

# A base32 string of n characters carries 5n bits; n mod 8 in (1, 3, 6) leaves
# a whole spare character, which no encoder ever writes.
_BAD_TAIL = (1, 3, 6)


def _uri_secret(text):
    # otpauth://totp/Label?secret=...&issuer=...: take the secret parameter.
    q = text.find("?")
    if q < 0:
        raise ValueError("otpauth URI has no query, so no secret parameter")
    for part in text[q + 1 :].split("&"):
        eq = part.find("=")
        if eq > 0 and part[:eq].lower() == "secret":
            return _unquote(part[eq + 1 :])
    raise ValueError("otpauth URI has no secret parameter")


def _unquote(s):
    # Percent-decoding of the few characters a base32 secret can carry (%20, %3D).
    if "%" not in s and "+" not in s:
        return s
    out = []
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == "%":
            try:
                if i + 3 > n:
                    raise ValueError
                out.append(chr(int(s[i + 1 : i + 3], 16)))
            except ValueError:
                raise ValueError("otpauth URI has a bad %-escape in its secret") from None
            i += 3
            continue
        out.append(" " if ch == "+" else ch)
        i += 1
    return "".join(out)


def decode_secret(text):
    # Accepts lower case, spaces, missing '=' padding and a whole otpauth:// URI.
    # Errors name the position of a bad character, never the secret itself.
    if isinstance(text, (bytes, bytearray)):
        text = text.decode()
    text = text.strip()
    if text[:10].lower() == "otpauth://":
        text = _uri_secret(text)
    s = text.replace(" ", "").upper()
    end = len(s)
    while end and s[end - 1] == "=":
        end -= 1
    if not end:
        raise ValueError("secret is empty")
    out = bytearray(end * 5 // 8)
    acc = 0
    bits = 0
    j = 0
    for i in range(end):
        c = ord(s[i])
        if 65 <= c <= 90:  # A-Z
            v = c - 65
        elif 50 <= c <= 55:  # 2-7
            v = c - 24
        else:
            raise ValueError(
                "secret character %d is not in the base32 alphabet (A-Z, 2-7)" % (i + 1)
            )
        acc = ((acc << 5) | v) & 0xFFF  # at most 12 live bits: small on every port
        bits += 5
        if bits >= 8:
            bits -= 8
            out[j] = (acc >> bits) & 0xFF
            j += 1
    if end % 8 in _BAD_TAIL:
        raise ValueError(
            "secret has %d base32 characters, an impossible length (n mod 8 is 1, 3 or 6)" % end
        )
    if len(out) < _MIN_BYTES:
        raise ValueError("secret is %d bits; RFC 4226 requires at least 128 bits" % (len(out) * 8))
    return bytes(out)
