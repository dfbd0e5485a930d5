"""The parties: merchants and admins (their keys, authentication and this process's
caches of them), the bad-key budget per client address, and the wallets' keys and codes
(``online``) (a part of ``Backend``; see ``service/__init__.py``).

Usage::

    merchant_id, api_key = backend.add_merchant("corner shop")
    assert backend.auth_merchant(api_key) == merchant_id
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from paytoken.backend import CONFLICT, BackendError, rules
from paytoken.backend.crypto import hash_api_key, new_api_key
from paytoken.backend.store import audit
from paytoken.backend.store.sql import CHARGE, TAT
from paytoken.backend.store.tables import admins as _ad
from paytoken.backend.store.tables import merchants as _m
from paytoken.backend.store.tables import throttles as _th

log = logging.getLogger("paytoken.backend")

MERCHANT_CACHE_S = 60.0


class Parties:
    """Merchants, admins and wallets: keys, authentication, caches."""

    def add_merchant(self, name: str, actor: str = "cli") -> tuple[int, str]:
        """Create a merchant; returns (id, api key). Only the key's hash is stored."""
        rules.check_name(name, "merchant")
        key = new_api_key("live")
        try:
            with self.engine.begin() as conn:
                mid = conn.execute(_m.insert().values(name=name, api_key_hash=hash_api_key(key),
                                                      created_at=self.now()).returning(_m.c.id)).scalar()
                audit.append(conn, self.now(), actor, "MERCHANT_ADD", None, {"merchant_id": mid})
        except IntegrityError:
            raise BackendError(f"merchant {name!r} already exists", CONFLICT) from None
        return mid, key

    def add_admin(self, name: str, actor: str = "cli") -> str:
        """Create an admin credential; returns the bearer key (shown once)."""
        rules.check_name(name, "admin")
        key = new_api_key("admin")
        try:
            with self.engine.begin() as conn:
                conn.execute(_ad.insert().values(name=name, key_hash=hash_api_key(key), created_at=self.now()))
                audit.append(conn, self.now(), actor, "ADMIN_ADD", None, {"name": name})
        except IntegrityError:
            raise BackendError(f"admin {name!r} already exists", CONFLICT) from None
        return key

    def count_admins(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(select(func.count()).select_from(_ad)).scalar()

    def auth_merchant(self, api_key: str) -> int | None:
        """The merchant id of a bearer key, or None (lookup by hash: no timing on the key).

        A known key is remembered for ``MERCHANT_CACHE_S`` seconds of wall time (by hash;
        unknown keys are always looked up), saving a query per payment."""
        h = hash_api_key(api_key)
        hit = self._merchants.get(h)
        mono = time.monotonic()
        if hit is not None and hit[1] > mono:
            return hit[0]
        with self.engine.connect() as conn:
            mid = conn.execute(select(_m.c.id).where(_m.c.api_key_hash == h, _m.c.revoked_at.is_(None))).scalar()
        if mid is not None:
            if len(self._merchants) >= 4096:
                self._merchants.clear()
            self._merchants[h] = (mid, mono + MERCHANT_CACHE_S)
        return mid

    def forget_merchant_keys(self) -> None:
        """Drop this process's merchant-key cache (after a revocation or key rotation)."""
        self._merchants.clear()

    def throttled_client(self, client: str) -> int:
        """Seconds this client address must still wait after too many unknown API keys
        (rules.BAD_KEYS), from this process's memory of the database's answer; 0: go on."""
        until = self._blocked.get(client)
        if until is None:
            return 0
        left = until - self.now()
        if left <= 0:
            self._blocked.pop(client, None)
            return 0
        return left

    def bad_key(self, client: str) -> int:
        """Charge one unknown API key to ``client``'s budget (in the database, shared by
        every server process). Returns 0 while the budget allows it, else the seconds to
        wait (throttled: the API answers 429 with Retry-After). A full budget is remembered here until it opens, so a
        flood of bad keys costs no further writes."""
        b, now, key = self.bad_keys_budget, self.now(), "ip:" + client[:100]
        with self.engine.begin() as conn:
            ok = conn.execute(text(CHARGE), {"k": key, "first": now + b.interval_s, "now": now,
                                              "iv": b.interval_s, "open_by": b.open_by(now)}).first()
            if ok is not None:
                self._bad_keys += 1
                if self._bad_keys % 1000 == 0:  # forget buckets that have long emptied
                    conn.execute(_th.delete().where(_th.c.tat < now - 86_400))
                return 0
            tat = conn.execute(text(TAT), {"k": key}).scalar()
        wait = b.retry_after(tat, now)
        if len(self._blocked) >= 10_000:
            self._blocked.clear()
        self._blocked[client] = now + wait
        return wait

    def auth_admin(self, key: str) -> str | None:
        with self.engine.begin() as conn:
            return conn.execute(select(_ad.c.name).where(_ad.c.key_hash == hash_api_key(key))).scalar()

    def issue_wallet_key(self, token_id: int, actor: str = "cli") -> str:
        """A new wallet key for the token (shown once; it replaces the old one, whose codes die)."""
        return self.online.issue_wallet_key(token_id, actor)

    def revoke_wallet_key(self, token_id: int, actor: str = "cli") -> int:
        """Remove the token's wallet key; returns how many outstanding codes died with it."""
        return self.online.revoke_wallet_key(token_id, actor)

    def wallet_token(self, wallet_key: str) -> int | None:
        """The token id a wallet key belongs to, or None."""
        return self.online.wallet_token(wallet_key)

    def online_codes(self, wallet_key: str, count: int = 1, ttl: int | None = None) -> list[dict]:
        """``count`` (1 to 15) single-use codes for the wallet key's token, each valid ``ttl``
        seconds (default 60, at most 86400): ``[{"code": str, "expires_at": int}]``."""
        return self.online.issue_codes(wallet_key, count, ttl)

    def wallet_summary(self, token_id: int, recent: int = 10) -> dict:
        """Balance, currency, limits, today's spending and the latest payments, for the holder."""
        return self.online.wallet_summary(token_id, recent)
