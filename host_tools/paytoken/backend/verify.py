"""The verification rules, pure: step location, drift learning, the policy.

The format checks (length, digits, Damm, prefix) are ``paycode.parse_code``'s, run
before any cryptography. No database and no clock here: the service passes ``now``
and the token's state in, and applies the decision with a conditional UPDATE.
``judge`` is the one copy of the rules for an offline code.

Usage::

    step, offset = locate_step(now, drift_s, residue)
    decision = judge(row, parsed, lambda: secret, Policy(), now)   # decision.kind == ACCEPT ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import paycode
from paycode import PERIOD

from paytoken.backend import codes, rules

# Refusal reasons (fixed names; the HTTP API and docs/MERCHANT.md use them).
CODE_INVALID = "CODE_INVALID"
CODE_REPLAYED = "CODE_REPLAYED"
CODE_EXPIRED = "CODE_EXPIRED"
CODE_FUTURE = "CODE_FUTURE"  # right for a step far ahead of the token's known clock
TOKEN_LOCKED = "TOKEN_LOCKED"
TOKEN_REVOKED = "TOKEN_REVOKED"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
REASONS = (CODE_INVALID, CODE_REPLAYED, CODE_EXPIRED, CODE_FUTURE, TOKEN_LOCKED, TOKEN_REVOKED,
           INSUFFICIENT_FUNDS, LIMIT_EXCEEDED)


@dataclass(frozen=True)
class Policy:
    """Verification settings. ``window`` steps either side are accepted (1..4)."""

    window: int = 1
    suspect_ahead: int = 3  # a code this many steps ahead of known drift is flagged
    confirm_tolerance: int = 45  # two jump codes must agree on drift within this (seconds)
    rate_sigma_ppm: float = 30.0  # a new token's unknown crystal error (1 sigma) when none is given

    def __post_init__(self) -> None:
        if not 1 <= self.window <= 4:
            raise ValueError("window must be 1..4 steps: the step residue pins only ±4")
        if not 0 < self.rate_sigma_ppm <= RATE_LIMIT_PPM:
            raise ValueError("rate_sigma_ppm must be above 0 and at most 500")


def locate_step(now: int, drift_s: int, residue: int) -> tuple[int, int]:
    """The step with ``step % 10 == residue`` nearest the token's expected step.

    The expectation is ``(now + drift_s) // PERIOD``: the drift is kept in seconds, so the
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
    """The old offset-only rule, kept for comparison: move half-way toward what this code
    implies, at most one step (30 s) per code. It lags a steady drift by about twice the
    drift between two uses; the service uses ``Drift`` (offset and rate) instead."""
    delta = (observed_drift(step, now) - drift_s) // 2
    return drift_s + max(-PERIOD, min(PERIOD, delta))


def day_of(unix_time: int) -> int:
    """UTC day number (for the per-day limit)."""
    return unix_time // 86400


# ---- drift as an offset and a rate -----------------------------------------------------
#
# The token's clock offset (seconds ahead of UTC, as its codes show it) is tracked with a
# two-state Kalman filter: offset at time ``at`` and rate in ppm, with their covariance.
# Each accepted code is one measurement of the offset: the middle of its step minus now,
# whose error is the step quantization (uniform over 30 s, variance 75 s²) plus how late
# the code reaches the till (a few seconds to 20 s). The rate lets a token used weekly at
# 50 ppm (30 s a week) stay inside ±1 step, where an offset alone lags by a step or more.

_PPM = 1e-6
MEASURE_VAR = 120.0  # s²: quantization 75 + presentation delay ~45
OFFSET_WALK = 1.0 / 86_400  # s² per s: small offset jitter (1 s² a day)
RATE_WALK = 1.0 / (30 * 86_400)  # ppm² per s: temperature and ageing, (1 ppm)² a month
INITIAL_OFFSET_VAR = 225.0  # s²: a fresh token's clock was set at the station (±15 s)
RATE_LIMIT_PPM = 500.0


@dataclass(frozen=True)
class Drift:
    """The learned clock model: ``offset`` seconds ahead at ``at`` (UTC s), gaining
    ``ppm`` parts per million, with covariance ``p00`` (s²), ``p01`` (s·ppm), ``p11`` (ppm²)."""

    at: int
    offset: float
    ppm: float
    p00: float
    p01: float
    p11: float

    @classmethod
    def fresh(cls, at: int, offset: float = 0.0, ppm: float | None = None,
              rate_sigma_ppm: float = 30.0) -> Drift:
        """A new token: clock set at ``at``; ``ppm`` a measured rate (e.g. the station's
        burn-in), known to about 2 ppm, else 0 with ``rate_sigma_ppm`` uncertainty."""
        sigma = 2.0 if ppm is not None else rate_sigma_ppm
        return cls(at, float(offset), float(ppm or 0.0), INITIAL_OFFSET_VAR, 0.0, sigma * sigma)

    def predict(self, now: int) -> float:
        """The offset expected at ``now`` (seconds)."""
        return self.offset + self.ppm * _PPM * (now - self.at)

    def _propagated(self, now: int) -> tuple[float, float, float, float]:
        dt = max(0, now - self.at)
        k = _PPM * dt
        p00 = self.p00 + 2 * k * self.p01 + k * k * self.p11 + OFFSET_WALK * dt
        p01 = self.p01 + k * self.p11
        p11 = self.p11 + RATE_WALK * dt
        return self.predict(now), p00, p01, p11

    def sigma(self, now: int) -> float:
        """Standard deviation (seconds) of the predicted offset at ``now``."""
        return self._propagated(now)[1] ** 0.5

    def update(self, now: int, observed: float) -> Drift:
        """Fold in one accepted code's observed offset (Kalman update)."""
        pred, p00, p01, p11 = self._propagated(now)
        s = p00 + MEASURE_VAR
        k0, k1 = p00 / s, p01 / s
        err = observed - pred
        ppm = max(-RATE_LIMIT_PPM, min(RATE_LIMIT_PPM, self.ppm + k1 * err))
        return Drift(now, pred + k0 * err, ppm, (1 - k0) * p00, (1 - k0) * p01, p11 - k1 * p01)

    def jump(self, now: int, observed: float) -> Drift:
        """A confirmed clock step (battery swap, a set clock): the offset restarts at
        ``observed``; the crystal's rate is unchanged."""
        p11 = self._propagated(now)[3]
        return Drift(now, float(observed), self.ppm, INITIAL_OFFSET_VAR, 0.0, p11)

    def resync(self, now: int, observed: float) -> Drift:
        """Two consecutive codes confirmed an offset outside the window: a drift the
        rate uncertainty explains (within 3 sigma) is learned, rate included; anything
        larger is a clock step (``jump``)."""
        pred, p00, _p01, _p11 = self._propagated(now)
        if abs(observed - pred) <= 3 * (p00 + MEASURE_VAR) ** 0.5:
            return self.update(now, observed)
        return self.jump(now, observed)


# ---- the decision on one code --------------------------------------------------------------
#
# ``judge`` reads a token's row and a parsed code and says what the code is; the service
# applies the decision with conditional writes (so concurrent requests cannot both win).

# Decision kinds.
NO_TOKEN = "no_token"  # the code names no (active, pending-free) token of its scheme
REVOKED = "revoked"
LOCKED = "locked"  # locked by hand, or the guess budget is full (cooling down)
ACCEPT = "accept"  # consume ``step``; ``drift`` is the new model
REPLAYED = "replayed"  # right for a step already consumed
PENDING_DRIFT = "pending_drift"  # right, outside the window, unconfirmed: remember it (CODE_EXPIRED)
STALE = "stale"  # right for a past step never used (CODE_EXPIRED)
FUTURE = "future"  # right for a step far ahead of the known clock (CODE_FUTURE)
BEHIND = "behind"  # wrong, behind the window: not counted
REPEAT_GUESS = "repeat_guess"  # the token's last wrong code again: not counted
GUESS = "guess"  # a wrong code: charged to the budgets (rules.py)
KINDS = (NO_TOKEN, REVOKED, LOCKED, ACCEPT, REPLAYED, PENDING_DRIFT, STALE, FUTURE, BEHIND, REPEAT_GUESS,
         GUESS)


@dataclass(frozen=True)
class Decision:
    """What ``judge`` found. ``step``/``offset``: the step the code is for and its distance
    from the expected one. ``suspect``: also flag the token's clock (a code >= suspect_ahead
    steps ahead). ``resync``: an ACCEPT outside the window, confirmed by the pending drift.
    ``predicted``/``observed``: the drift (s) expected and the one this code implies.
    ``guess``: the bytes that name a wrong code (GUESS, REPEAT_GUESS); ``guess_hash`` its hash."""

    kind: str
    step: int | None = None
    offset: int | None = None
    drift: Drift | None = None
    predicted: int | None = None
    observed: int | None = None
    suspect: bool = False
    resync: bool = False
    guess: bytes | None = None
    guess_hash: str | None = None


def drift_of(row, rate_sigma_ppm: float = 30.0) -> Drift:
    """The drift model a token row holds (``drift_at``, ``drift_off``, ... ``drift_p11``);
    a row from before migration 0002 (or a bulk import) starts fresh from ``drift_s``."""
    if row.drift_at is None:
        return Drift.fresh(row.last_used_at or row.created_at, row.drift_s, None, rate_sigma_ppm)
    return Drift(row.drift_at, row.drift_off, row.drift_ppm, row.drift_p00, row.drift_p01, row.drift_p11)


def guess_hash(guess: bytes) -> str:
    """The short hash a token row keeps of its last wrong code (``guess_hash``)."""
    return hashlib.sha256(guess).hexdigest()[:16]


def judge(row, parsed: tuple, secret: Callable[[], bytes], policy: Policy, now: int) -> Decision:
    """Decide an offline code for a token: pure (no database, no I/O, no clock).

    ``row``: the token's row (attributes ``status``, ``prefix``, ``prev_prefix``,
    ``last_step``, ``pending_drift``, ``pending_step``, ``guess_tat``, ``guess_hash`` and
    the drift model's, see ``drift_of``), or None. ``parsed``: ``(prefix, token_id,
    residue, otp, fmt)`` as the code's parse gives it. ``secret``: returns the token's
    secret; called only once the status allows checking the code. ``now``: UTC seconds."""
    prefix, _token_id, residue, otp, fmt = parsed
    # a token's codes are those of its scheme, and during a move at the desk also those of
    # the scheme it leaves (Backend.move_token)
    if row is None or row.status == "pending" or (prefix != row.prefix and prefix != row.prev_prefix):
        return Decision(NO_TOKEN)
    if row.status in ("revoked", "lost"):
        return Decision(REVOKED)
    if row.status == "locked" or not rules.TOKEN_GUESSES.allows(row.guess_tat, now):
        return Decision(LOCKED)
    key = secret()
    drift = drift_of(row, policy.rate_sigma_ppm)
    predicted = round(drift.predict(now))
    step, off = locate_step(now, predicted, residue)
    if step < 0 or not paycode.equal(codes.hotp(key, step, fmt), otp):
        return _miss(row, key, step, off, otp, now, predicted, policy, fmt)
    if step <= row.last_step:
        return Decision(REPLAYED, step, off)
    observed = observed_drift(step, now)
    if abs(off) <= policy.window:
        return Decision(ACCEPT, step, off, drift.update(now, observed), predicted, observed)
    suspect = off >= policy.suspect_ahead
    if (row.pending_drift is not None and abs(observed - row.pending_drift) <= policy.confirm_tolerance
            and step > row.pending_step):
        # Confirmed by two consecutive codes (RFC 6238 §6): resynchronize.
        return Decision(ACCEPT, step, off, drift.resync(now, observed), predicted, observed, suspect, True)
    return Decision(PENDING_DRIFT, step, off, None, predicted, observed, suspect)


def _miss(row, key: bytes, step: int, off: int, otp: str, now: int, predicted: int, policy: Policy,
          fmt: int) -> Decision:
    # The OTP is wrong for the step the residue names: a far-future, stale or replayed code
    # (right for another step), or a guess. Only a guess is charged (rules.py).
    if step >= 0:
        span = rules.RESIDUE
        ahead = codes.find_step(key, otp, range(step + span, step + span * rules.future_candidates() + 1, span),
                                fmt)
        if ahead is not None:
            return Decision(FUTURE, ahead, off + (ahead - step), predicted=predicted, suspect=True)
        lo = max(0, (now + predicted - rules.STALE_SEARCH_S) // PERIOD)
        past = codes.find_step(key, otp, range(step - span, lo - 1, -span), fmt)
        if past is not None:
            kind = REPLAYED if past <= row.last_step else STALE
            return Decision(kind, past, off + (past - step), predicted=predicted)
    if off < -policy.window:
        # Behind the window: a hit there would be of no use to a guesser; not counted.
        return Decision(BEHIND, step, off, predicted=predicted)
    guess = b"%d|%s" % (step, otp.encode())
    gh = guess_hash(guess)
    kind = REPEAT_GUESS if gh == row.guess_hash else GUESS
    return Decision(kind, step, off, predicted=predicted, guess=guess, guess_hash=gh)
