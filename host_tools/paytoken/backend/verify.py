"""The verification rules, pure: step location, drift learning, the policy.

The format checks (length, digits, Damm, prefix) are ``paycode.parse_code``'s, run
before any cryptography. No database and no clock here: the service passes ``now``
and the token's state in, and applies the decision with a conditional UPDATE.

Usage::

    step, offset = locate_step(now, drift_s, residue)
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
    confirm_tolerance: int = 45  # two jump codes must agree on drift within this (seconds)

    def __post_init__(self) -> None:
        if not 1 <= self.window <= 4:
            raise ValueError("window must be 1..4 steps: the step residue pins only ±4")
        if self.lock_after < 1:
            raise ValueError("lock_after must be at least 1")


def locate_step(now: int, drift_s: int, residue: int) -> tuple[int, int]:
    """The step with ``step % 10 == residue`` nearest the token's expected step.

    The expectation is ``(now + drift_s) // 30``: the drift is kept in seconds, so the
    window is not spent on rounding. Returns ``(step, offset)``, offset in -5..4.
    """
    expected = (now + drift_s) // PERIOD
    offset = (residue - expected) % 10
    if offset > 4:
        offset -= 10
    return expected + offset, offset


def observed_drift(step: int, now: int) -> int:
    """The drift (seconds) one accepted code implies: the middle of its step, minus now."""
    return step * PERIOD + PERIOD // 2 - now


def learn_drift(drift_s: int, step: int, now: int) -> int:
    """Gradual drift learning: move half-way toward what this code implies, at most one
    step (30 s) per code. A single code shown at a step edge or late at a slow till
    moves the estimate a little; a crystal that keeps gaining is followed."""
    delta = (observed_drift(step, now) - drift_s) // 2
    return drift_s + max(-PERIOD, min(PERIOD, delta))


def day_of(unix_time: int) -> int:
    """UTC day number (for the per-day limit)."""
    return unix_time // 86400
