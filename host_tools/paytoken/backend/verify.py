"""The verification rules, pure: step location, drift learning, the policy.

The format checks (length, digits, Damm, prefix) are ``paycode.parse_code``'s, run
before any cryptography. No database and no clock here: the service passes ``now``
and the token's state in, and applies the decision with a conditional UPDATE.

Usage::

    step, offset = locate_step(now // 30, drift, residue)
"""

from __future__ import annotations

from dataclasses import dataclass

PERIOD = 30

# Refusal reasons (fixed names; the HTTP API and docs/MERCHANT.md use them).
CODE_INVALID = "CODE_INVALID"
CODE_REPLAYED = "CODE_REPLAYED"
CODE_EXPIRED = "CODE_EXPIRED"
TOKEN_LOCKED = "TOKEN_LOCKED"
TOKEN_REVOKED = "TOKEN_REVOKED"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
REASONS = (CODE_INVALID, CODE_REPLAYED, CODE_EXPIRED, TOKEN_LOCKED, TOKEN_REVOKED,
           INSUFFICIENT_FUNDS, LIMIT_EXCEEDED)


@dataclass(frozen=True)
class Policy:
    """Verification settings. ``window`` steps either side are accepted (1..4)."""

    window: int = 1
    lock_after: int = 5  # consecutive failures that lock a token (RFC 4226 §7.3)
    suspect_ahead: int = 3  # a code this many steps ahead of known drift is flagged
    confirm_tolerance: int = 1  # two jump codes must agree on drift within this

    def __post_init__(self) -> None:
        if not 1 <= self.window <= 4:
            raise ValueError("window must be 1..4 steps: the step residue pins only ±4")
        if self.lock_after < 1:
            raise ValueError("lock_after must be at least 1")


def locate_step(now_step: int, drift: int, residue: int) -> tuple[int, int]:
    """The step with ``step % 10 == residue`` nearest ``now_step + drift``.

    Returns ``(step, offset)`` with offset in -5..4 relative to that expectation.
    """
    expected = now_step + drift
    offset = (residue - expected) % 10
    if offset > 4:
        offset -= 10
    return expected + offset, offset


def learn_drift(drift: int, offset: int, previous_offset_sign: int) -> tuple[int, int]:
    """Gradual drift learning from an accepted code at ``offset`` (within the window).

    Drift moves by one step only when two accepted codes in a row lean the same way,
    so a slow till or a code shown near a step edge does not swing it. Returns the new
    drift and the sign to remember for the next code.
    """
    sign = (offset > 0) - (offset < 0)
    if sign and sign == previous_offset_sign:
        return drift + sign, 0
    return drift, sign


def day_of(unix_time: int) -> int:
    """UTC day number (for the per-day limit)."""
    return unix_time // 86400
