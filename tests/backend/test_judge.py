"""``verify.judge`` alone: every decision from a token row, a parsed code and the clock.

Pure: no database. The codes come from pyotp (RFC 4226 HOTP, an independent oracle), so
the rules are checked against a HOTP this project did not write.
"""

from __future__ import annotations

import base64
import dataclasses
from types import SimpleNamespace

import pyotp
import pytest
from paytoken.backend import rules, verify
from paytoken.backend.verify import PERIOD, Drift, Policy, judge

from .conftest import SECRET, T0

NOW = T0 + 86_400 + 15  # the middle of a step: no rounding at the edges
STEP = NOW // PERIOD
_HOTP = pyotp.HOTP(base64.b32encode(SECRET).decode())


def otp(step: int) -> str:
    return _HOTP.at(step)


def wrong(step: int) -> str:
    return "%06d" % ((int(otp(step)) + 1) % 10**6)


def row(**kw) -> SimpleNamespace:
    """A fresh active token of scheme 81 whose clock is right (drift 0 learned at T0)."""
    d = Drift.fresh(T0)
    base = dict(status="active", prefix="81", prev_prefix=None, last_step=-1, pending_drift=None,
                pending_step=None, guess_tat=None, guess_hash=None, drift_s=0, drift_at=d.at,
                drift_off=d.offset, drift_ppm=d.ppm, drift_p00=d.p00, drift_p01=d.p01, drift_p11=d.p11,
                last_used_at=None, created_at=T0)
    base.update(kw)
    return SimpleNamespace(**base)


def parsed(step: int, code: str | None = None, prefix: str = "81") -> tuple:
    return (prefix, 42, step % 10, otp(step) if code is None else code, 1)


def secret() -> bytes:
    return SECRET


def no_secret() -> bytes:
    raise AssertionError("the secret was asked for although the status refuses the code")


POL = Policy()


def test_accept_in_the_window_learns_the_drift():
    for off in (-1, 0, 1):
        d = judge(row(), parsed(STEP + off), secret, POL, NOW)
        assert (d.kind, d.step, d.offset) == (verify.ACCEPT, STEP + off, off)
        assert not d.resync and not d.suspect
        assert d.observed == verify.observed_drift(STEP + off, NOW)
        assert d.drift == Drift.fresh(T0).update(NOW, d.observed)
        assert d.drift.at == NOW


def test_no_token_pending_and_foreign_prefix():
    assert judge(None, parsed(STEP), no_secret, POL, NOW).kind == verify.NO_TOKEN
    assert judge(row(status="pending"), parsed(STEP), no_secret, POL, NOW).kind == verify.NO_TOKEN
    assert judge(row(), parsed(STEP, prefix="82"), no_secret, POL, NOW).kind == verify.NO_TOKEN
    # during a move at the desk, the scheme left is accepted too
    moving = row(prefix="82", prev_prefix="81")
    assert judge(moving, parsed(STEP), secret, POL, NOW).kind == verify.ACCEPT
    assert judge(moving, parsed(STEP, prefix="82"), secret, POL, NOW).kind == verify.ACCEPT


def test_revoked_lost_and_locked_check_nothing():
    assert judge(row(status="revoked"), parsed(STEP), no_secret, POL, NOW).kind == verify.REVOKED
    assert judge(row(status="lost"), parsed(STEP), no_secret, POL, NOW).kind == verify.REVOKED
    assert judge(row(status="locked"), parsed(STEP), no_secret, POL, NOW).kind == verify.LOCKED
    b = rules.TOKEN_GUESSES
    full = b.open_by(NOW) + 1  # one guess more than the burst: cooling down
    assert judge(row(guess_tat=full), parsed(STEP), no_secret, POL, NOW).kind == verify.LOCKED
    assert judge(row(guess_tat=b.open_by(NOW)), parsed(STEP), secret, POL, NOW).kind == verify.ACCEPT


def test_replay_of_the_last_step_and_of_an_older_one():
    d = judge(row(last_step=STEP), parsed(STEP), secret, POL, NOW)
    assert (d.kind, d.step, d.offset) == (verify.REPLAYED, STEP, 0)
    # right for a step 10 back (same residue) that was consumed: a replay, found by the search
    d = judge(row(last_step=STEP - 10), parsed(STEP - 10), secret, POL, NOW)
    assert (d.kind, d.step, d.offset) == (verify.REPLAYED, STEP - 10, -10)


def test_stale_code_never_used():
    d = judge(row(last_step=STEP - 20), parsed(STEP - 10), secret, POL, NOW)
    assert (d.kind, d.step, d.offset) == (verify.STALE, STEP - 10, -10)


def test_outside_the_window_is_pending_then_confirmed():
    r = row()
    d = judge(r, parsed(STEP + 2), secret, POL, NOW)
    assert (d.kind, d.step, d.offset, d.suspect) == (verify.PENDING_DRIFT, STEP + 2, 2, False)
    assert d.observed == verify.observed_drift(STEP + 2, NOW)
    # the next code confirms the same drift: resynchronized, and accepted
    later = NOW + PERIOD
    r2 = row(pending_drift=d.observed, pending_step=d.step)
    d2 = judge(r2, parsed(STEP + 3), secret, POL, later)
    assert (d2.kind, d2.step, d2.resync) == (verify.ACCEPT, STEP + 3, True)
    assert d2.drift == Drift.fresh(T0).resync(later, verify.observed_drift(STEP + 3, later))
    # the same code again is no confirmation (step not after the pending one)
    d3 = judge(r2, parsed(STEP + 2), secret, POL, NOW)
    assert d3.kind == verify.PENDING_DRIFT
    # a drift that disagrees by more than the tolerance is pending again
    r4 = row(pending_drift=d.observed - POL.confirm_tolerance - 1, pending_step=d.step)
    assert judge(r4, parsed(STEP + 3), secret, POL, later).kind == verify.PENDING_DRIFT


def test_far_ahead_is_suspect():
    d = judge(row(), parsed(STEP + 3), secret, POL, NOW)
    assert (d.kind, d.offset, d.suspect) == (verify.PENDING_DRIFT, 3, True)
    d = judge(row(), parsed(STEP + 10), secret, POL, NOW)
    assert (d.kind, d.step, d.offset, d.suspect) == (verify.FUTURE, STEP + 10, 10, True)


def test_wrong_codes_guess_repeat_and_behind():
    d = judge(row(), parsed(STEP, wrong(STEP)), secret, POL, NOW)
    assert (d.kind, d.step) == (verify.GUESS, STEP)
    assert d.guess == b"%d|%s" % (STEP, wrong(STEP).encode())
    assert d.guess_hash == verify.guess_hash(d.guess)
    again = judge(row(guess_hash=d.guess_hash), parsed(STEP, wrong(STEP)), secret, POL, NOW)
    assert again.kind == verify.REPEAT_GUESS
    # a wrong code whose residue places it behind the window: of no use to a guesser
    d = judge(row(), parsed(STEP - 3, wrong(STEP - 3)), secret, POL, NOW)
    assert (d.kind, d.offset) == (verify.BEHIND, -3)


def test_a_learned_drift_moves_the_window():
    ahead = Drift(T0, 95.0, 0.0, 10.0, 0.0, 1.0)  # the token runs 95 s (3 steps) ahead
    r = row(drift_at=ahead.at, drift_off=ahead.offset, drift_ppm=ahead.ppm, drift_p00=ahead.p00,
            drift_p01=ahead.p01, drift_p11=ahead.p11)
    d = judge(r, parsed(STEP + 3), secret, POL, NOW)
    assert (d.kind, d.offset) == (verify.ACCEPT, 0)
    assert judge(r, parsed(STEP), secret, POL, NOW).kind == verify.PENDING_DRIFT


def test_a_row_without_a_model_starts_fresh_from_drift_s():
    r = row(drift_at=None, drift_s=60, last_used_at=T0)
    assert verify.drift_of(r) == Drift.fresh(T0, 60)
    assert judge(r, parsed(STEP + 2), secret, POL, NOW).offset == 0


def test_wider_window_and_purity():
    wide = Policy(window=2)
    assert judge(row(), parsed(STEP + 2), secret, wide, NOW).kind == verify.ACCEPT
    r = row()
    first = judge(r, parsed(STEP), secret, POL, NOW)
    assert judge(r, parsed(STEP), secret, POL, NOW) == first  # same inputs, same decision
    assert r == row()  # the row is not changed
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.kind = verify.GUESS  # type: ignore[misc]
    assert set(verify.KINDS) >= {first.kind}
