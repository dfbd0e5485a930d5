"""TOTP secrets as people paste them: base32, or a whole ``otpauth://totp/...`` URI whose
``digits``, ``period`` and ``algorithm`` parameters count (Google Authenticator's Key Uri
Format, as pyotp reads it).

Usage::

    p = parse_secret("otpauth://totp/Shop:ann?secret=GEZD...&digits=8&algorithm=SHA256")
    paycode.totp(p.secret, t, p.period, p.digits, p.algorithm)

What cannot be honoured is refused with a ``ValueError`` naming the parameter (never the
secret): ``otpauth://hotp``, ``digits`` outside 6..10, a ``period`` that is not a positive
number of seconds, an algorithm other than SHA1, SHA256 and SHA512, a parameter given twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import paycode

ALGORITHMS = ("sha1", "sha256", "sha512")
MAX_PERIOD = 120  # NIST SP 800-63B-4 3.1.4.1: a new code at least every two minutes (as pyotp)


@dataclass(frozen=True)
class OtpParams:
    """A secret and how its TOTP is computed (RFC 6238 defaults unless a URI says else)."""

    secret: bytes
    digits: int = 6
    period: int = paycode.PERIOD  # RFC 6238's default, 30 s, is every code format's
    algorithm: str = "sha1"
    from_uri: bool = False

    @property
    def is_default(self) -> bool:
        """True for SHA-1, 6 digits and 30 s: what payment codes of format 1 use."""
        return self.fits(1)

    def fits(self, fmt: int) -> bool:
        """True when these are the TOTP parameters of payment-code format ``fmt``."""
        return (self.digits, self.period, self.algorithm) == (paycode.DIGITS, paycode.PERIOD,
                                                              paycode.format_hash(fmt))


def _decimal(name: str, value: str, lo: int, hi: int) -> int:
    v = value.strip()
    if not v.isascii() or not v.isdigit() or len(v) > 9:
        raise ValueError(f"otpauth URI: {name}={value[:20]!r} is not a whole number")
    n = int(v)
    if not lo <= n <= hi:
        raise ValueError(f"otpauth URI: {name}={n} is not supported ({lo} to {hi})")
    return n


def parse_uri(text: str) -> OtpParams:
    """An ``otpauth://totp/LABEL?secret=...`` URI; ``ValueError`` for what is not supported."""
    parts = urlsplit(text.strip())
    if parts.scheme.lower() != "otpauth":
        raise ValueError("not an otpauth:// URI")
    kind = parts.netloc.lower()
    if kind == "hotp":
        raise ValueError("otpauth URI is HOTP (counter-based); only time-based TOTP (otpauth://totp/) is supported")
    if kind != "totp":
        raise ValueError(f"otpauth URI type {kind[:20]!r} is unknown: only otpauth://totp/ is supported")
    seen: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        k = key.lower()
        if k in seen:
            raise ValueError(f"otpauth URI gives {k} twice")
        seen[k] = value
    if "secret" not in seen:
        raise ValueError("otpauth URI has no secret parameter")
    secret = paycode.decode_secret(seen["secret"])
    digits = _decimal("digits", seen["digits"], 6, 10) if "digits" in seen else 6
    period = _decimal("period", seen["period"], 1, MAX_PERIOD) if "period" in seen else paycode.PERIOD
    algorithm = seen.get("algorithm", "SHA1").strip().lower()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"otpauth URI: algorithm={seen['algorithm'][:20]!r} is not supported "
                         "(SHA1, SHA256 or SHA512)")
    return OtpParams(secret, digits, period, algorithm, from_uri=True)


def parse_secret(text: str) -> OtpParams:
    """A base32 secret (RFC 6238 defaults) or an otpauth URI."""
    if text.strip()[:10].lower() == "otpauth://":
        return parse_uri(text)
    return OtpParams(paycode.decode_secret(text))


def payment_secret(text: str, fmt: int = 1) -> bytes:
    """The secret of a payment token of format ``fmt``: its URI, if any, must ask for that
    format's TOTP (format 1: SHA-1, 6 digits, 30 s; format 2: SHA-256)."""
    p = parse_secret(text)
    if p.from_uri and not p.fits(fmt):
        raise ValueError(
            f"this URI asks for {p.algorithm.upper()}, {p.digits} digits, {p.period} s; "
            f"payment codes of format {fmt} use {paycode.format_hash(fmt).upper().replace('SHA', 'SHA-')}, "
            f"{paycode.DIGITS} digits and {paycode.PERIOD} s")
    return p.secret
