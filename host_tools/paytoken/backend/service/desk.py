"""The service desk and the station: a token's clock sync and its recorded offset,
unlock authorizations (also of a pending token), the expected codes and the
cross-check against them (a part of ``Backend``; see ``service/__init__.py``).

Usage::

    out = backend.clock_sync(42, nonce, "admin:desk")     # {token_id, utc, mac}
"""

from __future__ import annotations

import hmac
import logging

import paycode
from sqlalchemy import Connection, select, update

from paytoken.backend import CONFLICT, INVALID, NOT_FOUND, BackendError, rules
from paytoken.backend.store import audit
from paytoken.backend.store.models import LOST, PENDING, REVOKED
from paytoken.backend.store.sql import TOK_COLS, TokRow
from paytoken.backend.store.tables import schemes as _s
from paytoken.backend.store.tables import tokens as _t

log = logging.getLogger("paytoken.backend")


class Desk:
    """What the desk and the station ask of a token's sync key and secret."""

    def pending_unlock_mac(self, token_id: int, nonce: str, actor: str = "station") -> str:
        """``sync_mac(sync_key, 'UNLOCK', nonce, token_id)`` for a ``pending`` token that
        holds a sync key: the station's way back into a token locked before activation."""
        rules.check_token_id(token_id)
        rules.check_nonce(nonce)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.sync_key_enc).where(_t.c.id == token_id)).first()
            if row is None or row.status != PENDING or row.sync_key_enc is None:
                raise BackendError(f"token {token_id} is not a pending token with a sync key", CONFLICT)
            key = self._ring().open(row.sync_key_enc, f"token:{token_id}:sync")
            audit.append(conn, self.now(), actor, "UNLOCK_AUTH", token_id, {"pending": True})
        return paycode.sync_mac(key, "UNLOCK", nonce, token_id)

    def _sync_key(self, conn: Connection, token_id: int) -> bytes:
        row = conn.execute(select(_t.c.status, _t.c.sync_key_enc).where(_t.c.id == token_id)).first()
        if row is None or row.status == PENDING:
            raise BackendError(f"no token {token_id}", NOT_FOUND)
        if row.status in (REVOKED, LOST):
            raise BackendError(f"token {token_id} is {row.status}", CONFLICT)
        return self._ring().open(row.sync_key_enc, f"token:{token_id}:sync")

    def clock_sync(self, token_id: int, nonce: str, actor: str) -> dict:
        """The UTC time and ``sync_mac(sync_key, 'SETTIME', nonce, utc)`` for the token."""
        rules.check_token_id(token_id)
        rules.check_nonce(nonce)
        with self.engine.begin() as conn:
            key = self._sync_key(conn, token_id)
            utc = self.now()
            mac = paycode.sync_mac(key, "SETTIME", nonce, utc)
            audit.append(conn, utc, actor, "CLOCK_SYNC", token_id, {"utc": utc})
        return {"token_id": token_id, "utc": utc, "mac": mac}

    def record_clock_offset(self, token_id: int, offset_s: int, actor: str) -> dict:
        """After a service-desk SETTIME: the token read ``offset_s`` seconds ahead of UTC
        before it; its clock is right now, so the learned drift restarts at 0."""
        rules.check_token_id(token_id)
        if type(offset_s) is not int or abs(offset_s) > 10 * 365 * 86400:
            raise BackendError("offset_s must be an integer number of seconds within 10 years", INVALID)
        with self.engine.begin() as conn:
            row = conn.execute(select(*(_t.c[c] for c in TOK_COLS)).where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", NOT_FOUND)
            d = self._drift(TokRow._make(row)).jump(self.now(), 0.0)  # the crystal's rate stays
            conn.execute(update(_t).where(_t.c.id == token_id).values(
                drift=0, drift_s=0, pending_drift=None, pending_step=None, drift_at=d.at, drift_off=0.0,
                drift_ppm=d.ppm, drift_p00=d.p00, drift_p01=d.p01, drift_p11=d.p11))
            audit.append(conn, self.now(), actor, "CLOCK_OFFSET", token_id,
                         {"offset_s": offset_s, "drift_s_before": row.drift_s})
        return self.token_info(token_id)

    def unlock_auth(self, token_id: int, nonce: str, actor: str) -> dict:
        """``sync_mac(sync_key, 'UNLOCK', nonce, token_id)``: authorizes a firmware update."""
        rules.check_token_id(token_id)
        rules.check_nonce(nonce)
        with self.engine.begin() as conn:
            key = self._sync_key(conn, token_id)
            mac = paycode.sync_mac(key, "UNLOCK", nonce, token_id)
            audit.append(conn, self.now(), actor, "UNLOCK_AUTH", token_id, {})
        return {"token_id": token_id, "mac": mac}

    def expected_codes(self, token_id: int, times: list[int], actor: str = "station") -> list[str]:
        """The codes an active token must show at ``times`` (UTC seconds), computed here
        with its sealed secret, which never leaves this call: the service desk's oracle
        for cross-verifying a token. Changes no state; audited."""
        rules.check_token_id(token_id)
        if not times or len(times) > 10000:
            raise BackendError("give 1 to 10000 times", INVALID)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.prefix, _t.c.secret_enc)
                               .where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING or row.secret_enc is None:
                raise BackendError(f"no token {token_id}", NOT_FOUND)
            key = self._scheme_key(conn, row.prefix)
            if key is None:
                raise BackendError(f"no scheme key for prefix {row.prefix}", INVALID)
            fmt = conn.execute(select(_s.c.format).where(_s.c.prefix == row.prefix)).scalar()
            secret = self._ring().open(row.secret_enc, f"token:{token_id}:secret")
            audit.append(conn, self.now(), actor, "CODES_EXPECTED", token_id, {"count": len(times)})
        return [paycode.payment_code(secret, token_id, int(t), key, row.prefix, fmt) for t in times]

    def cross_check(self, token_id: int, times: list[int], codes: list[str], actor: str) -> list[int]:
        """The times at which ``codes`` (a token's, in order) differ from the issuer's for
        its sealed secret: the desk's cross-verification without handing out a code."""
        if len(codes) != len(times) or not all(isinstance(c, str) for c in codes):
            raise BackendError("give one code (a string) per time", INVALID)
        if not all(type(t) is int and 0 <= t < 2**40 for t in times):
            raise BackendError("times are UTC seconds (non-negative integers)", INVALID)
        want = self.expected_codes(token_id, times, actor)
        return [t for t, got, exp in zip(times, codes, want, strict=True)
                if not hmac.compare_digest(got.encode(), exp.encode())]
