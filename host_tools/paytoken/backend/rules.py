"""The issuer's rules in one place: guess budgets, cool-downs, search horizons, default limits,
and the limits and validators of every request field.

Pure: no database and no clock. The service applies them with conditional UPDATEs, so
they hold across threads, server processes and uvicorn workers on one database (all the
state is in the database: per token on its row, the rest in the ``throttles`` table).

A budget is a GCRA (generic cell rate algorithm) bucket: one number per key, its
*theoretical arrival time* ``tat`` (UTC s). Each charge moves ``tat`` on by ``interval_s``
(from now, if it lies in the past). A charge is allowed while ``tat <= now + (burst - 1) *
interval_s``: ``burst`` charges at once, then one per ``interval_s``. In any 24 hours a
key takes at most ``burst + 86400 / interval_s`` charges.

docs/SECURITY.md states the bound these numbers give (``guess_bound``); a test checks the
document against this module.

Usage::

    open_by = TOKEN_GUESSES.open_by(now)          # a guess is allowed if tat <= open_by
    new_tat = TOKEN_GUESSES.charge(tat, now)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paytoken.backend import INVALID, BackendError

OTP_SPACE = 10**6  # 6-digit HOTP (RFC 4226)
PERIOD = 30  # seconds per TOTP step
RESIDUE = 10  # the code carries step % 10: it names one step in any 10 consecutive ones


@dataclass(frozen=True)
class Budget:
    """``burst`` charges at once, then one per ``interval_s`` seconds."""

    burst: int
    interval_s: int

    def open_by(self, now: int) -> int:
        """A charge is allowed while the key's ``tat`` is at most this."""
        return now + (self.burst - 1) * self.interval_s

    def allows(self, tat: int | None, now: int) -> bool:
        return tat is None or tat <= self.open_by(now)

    def charge(self, tat: int | None, now: int) -> int:
        return max(tat or now, now) + self.interval_s

    def retry_after(self, tat: int | None, now: int) -> int:
        """Seconds until the next charge is allowed (at least 1; 0 if allowed now)."""
        if self.allows(tat, now):
            return 0
        return max(1, tat - self.open_by(now))

    def per_day(self) -> int:
        """The most charges in any 24 hours."""
        return self.burst + 86_400 // self.interval_s


# ---- wrong codes (guesses) ---------------------------------------------------------------
#
# A *guess* is a code that decrypts to a real token, whose step residue places it in the
# accepted window or ahead of it (up to +4 steps), and whose OTP is wrong for that step and
# for every step searched below. Only guesses are charged. A stale, replayed or far-future
# code (its OTP right for another step) and a repeat of the token's last wrong guess are
# refused with their own reason and charge nothing.

# Per token (on its row): 5 guesses at once, then one an hour. While the bucket is full the
# token is locked (TOKEN_LOCKED, no code is checked) and the lock clears by itself: an hour
# after a burst of 5.
TOKEN_GUESSES = Budget(burst=5, interval_s=3600)
# Per (merchant key, token): 2 at once, then one per 12 hours. 4 in any day is fewer than the
# token's burst of 5, so one merchant key alone can never lock a customer's token.
MERCHANT_TOKEN_GUESSES = Budget(burst=2, interval_s=12 * 3600)
# Per merchant key, over all tokens: 20 at once, then one per 5 minutes (308 a day).
MERCHANT_GUESSES = Budget(burst=20, interval_s=300)
# Requests with an unknown API key, per client address: 20 at once, then one per 3 s.
BAD_KEYS = Budget(burst=20, interval_s=3)
# Online-code requests per wallet (token): 30 at once, then one per 10 s (a wallet showing a
# fresh 60 s code asks once a minute; a batch of 15 is one request). Bounds the rows one
# wallet key can make: at most 15 * (30 + 8640) codes a day.
WALLET_CODES = Budget(burst=30, interval_s=10)

# How far from the step its residue names a code's OTP is looked for, to tell a stale code
# (a past step: CODE_EXPIRED, or CODE_REPLAYED if used) and a far-future one (CODE_FUTURE)
# from a guess. Past steps are harmless to reveal; each future step searched is one more
# usable code a guess can reveal, so the future horizon is short.
STALE_SEARCH_S = 7 * 86_400  # 2016 candidate steps, about 2 ms of HMAC
FUTURE_SEARCH_S = 30 * 60  # 6 candidate steps beyond the residue's +4


def future_candidates() -> int:
    return FUTURE_SEARCH_S // (RESIDUE * PERIOD)


def guess_bound(days: int = 1) -> tuple[int, float]:
    """(guesses per token in ``days`` days, the chance that one of them reveals a usable code).

    A guess names one step (its residue) and is also checked against
    ``future_candidates()`` far-future steps; each is one OTP of ``OTP_SPACE``."""
    n = TOKEN_GUESSES.burst + days * 86_400 // TOKEN_GUESSES.interval_s
    p_one = (1 + future_candidates()) / OTP_SPACE
    return n, 1 - (1 - p_one) ** n


# ---- limits -----------------------------------------------------------------------------
#
# A scheme carries the default limits and currency that activation applies to each new
# token (``paytoken scheme add --limit-per-payment --limit-per-day --currency``); these are
# the issuer's defaults for a scheme added without them. Minor units; None = no limit.

DEFAULT_CURRENCY = "CNY"
DEFAULT_LIMIT_PER_PAYMENT = 50_000  # 500.00
DEFAULT_LIMIT_PER_DAY = 200_000  # 2000.00


# ---- requests: the limits and validators every layer shares -----------------------------
#
# The patterns are written without anchors: ``full`` anchors one for Python (\A...\Z) and
# ``schema`` for the API's request models (^...$, pydantic's regex engine has no \Z).

MAX_AMOUNT = 10**12  # minor units; larger amounts are malformed requests
MAX_TOKEN_ID = 99_999_999
PRINTABLE = r"[^\x00-\x1f\x7f]"
CURRENCY_RE = r"[A-Z]{3}"
ORDER_ID_RE = r"[A-Za-z0-9._:/-]{1,64}"
NONCE_RE = r"[A-Za-z0-9]{8,64}"
NAME_RE = PRINTABLE + "{1,100}"
REASON_RE = PRINTABLE + "{1,200}"
IDEM_KEY_RE = r"[\x21-\x7e]{1,255}"
PREFIX_RE = r"[0-9]{2}"


def full(pattern: str) -> re.Pattern:
    """``pattern`` matching a whole string."""
    return re.compile(rf"\A{pattern}\Z")


def schema(pattern: str) -> str:
    """``pattern`` as a JSON Schema / pydantic pattern of a whole string."""
    return f"^{pattern}$"


CURRENCY = full(CURRENCY_RE)
ORDER_ID = full(ORDER_ID_RE)
NONCE = full(NONCE_RE)
NAME = full(NAME_RE)
REASON = full(REASON_RE)
IDEM_KEY = full(IDEM_KEY_RE)


def check_amount(amount: object, what: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise BackendError(f"{what} must be an integer number of minor units", INVALID)
    if not 1 <= amount <= MAX_AMOUNT:
        raise BackendError(f"{what} must be 1 to {MAX_AMOUNT} minor units", INVALID)
    return amount


def check_limit(limit: int | None, what: str) -> int | None:
    return None if limit is None else check_amount(limit, what)


def _text(value: object, pattern: re.Pattern, message: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise BackendError(message, INVALID)
    return value


def check_currency(currency: object) -> str:
    return _text(currency, CURRENCY, "currency must be three capital letters (ISO 4217), e.g. CNY")


def check_token_id(token_id: object) -> int:
    if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id <= MAX_TOKEN_ID:
        raise BackendError(f"token id must be an integer 0 to {MAX_TOKEN_ID}", INVALID)
    return token_id


def check_nonce(nonce: object) -> str:
    return _text(nonce, NONCE, "nonce must be 8 to 64 ASCII letters or digits")


def check_name(name: object, what: str) -> str:
    """A merchant's or an admin's name (``what``: merchant, admin)."""
    return _text(name, NAME, f"{what} name must be 1 to 100 printable characters")


def check_order_id(order_id: object) -> str:
    return _text(order_id, ORDER_ID, "merchant_order_id must be 1 to 64 of A-Z a-z 0-9 . _ : / -")


def check_idem_key(key: object) -> str:
    return _text(key, IDEM_KEY, "Idempotency-Key must be 1 to 255 visible ASCII characters")
