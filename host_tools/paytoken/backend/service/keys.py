"""The scheme keys and the master key: schemes' keys and defaults, their cache, the
token-secret cache, the station's key read and the master-key rotation (a part of
``Backend``; see ``service/__init__.py``).

Usage::

    key = backend.add_scheme("81")
    backend.rotate_master_key(Keyring.load())
"""

from __future__ import annotations

import logging
import os
import time

import paycode
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from paytoken.backend import CONFLICT, INVALID, NOT_FOUND, BackendError, rules
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import online
from paytoken.backend.store import audit
from paytoken.backend.store.tables import schemes as _s
from paytoken.backend.store.tables import tokens as _t

log = logging.getLogger("paytoken.backend")

SCHEME_CACHE_S = 10.0  # seconds a server trusts its memory of a scheme's format and closure


class Keys:
    """Scheme keys, token secrets and the master key (``Backend`` state: ``keyring``,
    ``_scheme_keys``, ``_scheme_meta``, ``_secrets``)."""

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise BackendError("this operation needs the master key (PAYTOKEN_MASTER_KEY or --master-key-file)")
        return self.keyring

    def add_scheme(self, prefix: str, key: bytes | None = None, limit_per_payment: int | None = None,
                   limit_per_day: int | None = None, currency: str | None = None,
                   actor: str = "cli", online: bool = False, fmt: int = 1) -> bytes:
        """Store the scheme key of ``prefix`` (generated when None); returns it.

        ``fmt``: the code format of the scheme's tokens (``paycode.FORMATS``). The limits
        and currency are the defaults activation gives the scheme's new tokens; None means
        the issuer's (rules.DEFAULT_*). ``online``: the issuer makes this scheme's codes
        (backend/service/online.py); no token is activated under it, and it has no code format."""
        if online and fmt != 1:
            raise BackendError("an online scheme has no code format: the issuer makes its codes", INVALID)
        try:
            paycode.check_prefix(prefix)
            paycode.format_hash(fmt)
        except ValueError as exc:
            raise BackendError(str(exc), INVALID) from None
        rules.check_limit(limit_per_payment, "limit_per_payment")
        rules.check_limit(limit_per_day, "limit_per_day")
        if currency is not None:
            rules.check_currency(currency)
        if key is None:
            key = os.urandom(16)
        if len(key) != 16:
            raise BackendError("a scheme key is 16 bytes (32 hex digits) for AES-128", INVALID)
        enc = self._ring().seal(key, f"scheme:{prefix}")
        try:
            with self.engine.begin() as conn:
                conn.execute(_s.insert().values(prefix=prefix, key_enc=enc, created_at=self.now(),
                                                limit_per_payment=limit_per_payment, limit_per_day=limit_per_day,
                                                currency=currency, online=bool(online), format=fmt))
                audit.append(conn, self.now(), actor, "SCHEME_ADD", None,
                             {"prefix": prefix, "online": bool(online), "format": fmt})
        except IntegrityError:
            raise BackendError(f"scheme prefix {prefix} already exists", CONFLICT) from None
        return key

    def _scheme_key(self, conn: Connection, prefix: str) -> bytes | None:
        key = self._scheme_keys.get(prefix)
        if key is None:
            enc = conn.execute(select(_s.c.key_enc).where(_s.c.prefix == prefix)).scalar()
            if enc is None:
                return None
            key = self._scheme_keys[prefix] = self._ring().open(enc, f"scheme:{prefix}")
        return key

    def scheme_format(self, prefix: str) -> int | None:
        """The code format of ``prefix``'s scheme (None: no such scheme)."""
        with self.engine.connect() as conn:
            return conn.execute(select(_s.c.format).where(_s.c.prefix == prefix)).scalar()

    def _code_scheme(self, prefix: str) -> tuple[bytes, int] | None:
        """(key, format) that codes of ``prefix`` are read with; None for an unknown or a
        closed scheme (its codes get "unknown prefix"). Cached for SCHEME_CACHE_S."""
        meta = self._scheme_meta.get(prefix)
        mono = time.monotonic()
        if meta is None or meta[2] <= mono:
            with self.engine.connect() as conn:
                row = conn.execute(select(_s.c.format, _s.c.closed_at).where(_s.c.prefix == prefix)).first()
                if row is None:
                    return None
                if prefix not in self._scheme_keys:
                    self._scheme_key(conn, prefix)
            meta = self._scheme_meta[prefix] = (row.format, row.closed_at is not None, mono + SCHEME_CACHE_S)
        if meta[1]:
            return None
        return self._scheme_keys[prefix], meta[0]

    def forget_schemes(self) -> None:
        """Drop this process's cache of scheme formats and closures (after a close)."""
        self._scheme_meta.clear()

    def scheme_defaults(self, prefix: str) -> dict:
        """The limits and currency a new token of ``prefix`` gets (the scheme's, else the issuer's)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_s.c.limit_per_payment, _s.c.limit_per_day, _s.c.currency)
                               .where(_s.c.prefix == prefix)).first()
        if row is None:
            raise BackendError(f"no scheme {prefix}", NOT_FOUND)
        return self._defaults(row)

    @staticmethod
    def _defaults(row) -> dict:
        return {"limit_per_payment": rules.DEFAULT_LIMIT_PER_PAYMENT if row.limit_per_payment is None
                else row.limit_per_payment,
                "limit_per_day": rules.DEFAULT_LIMIT_PER_DAY if row.limit_per_day is None else row.limit_per_day,
                "currency": row.currency or rules.DEFAULT_CURRENCY}

    def scheme_keys(self) -> dict[str, bytes]:
        """Every offline scheme's key by prefix (for the factory station and tests); an
        online scheme's key never leaves the issuer (backend/service/online.py)."""
        with self.engine.begin() as conn:
            prefixes = conn.execute(select(_s.c.prefix).where(_s.c.online.is_(False))).scalars().all()
            return {p: self._scheme_key(conn, p) for p in prefixes}

    def station_scheme_key(self, prefix: str, actor: str) -> bytes:
        """The scheme key of ``prefix`` for a provisioning station over the admin API; audited."""
        with self.engine.begin() as conn:
            key = self._scheme_key(conn, prefix)
            if key is None:
                raise BackendError(f"no scheme key for prefix {prefix}: run `paytoken scheme add`", NOT_FOUND)
            online.require_offline(conn, prefix)  # an online scheme's key never leaves the issuer
            audit.append(conn, self.now(), actor, "SCHEME_KEY_READ", None, {"prefix": prefix})
        return key

    def _secret(self, token_id: int, envelope: str) -> bytes:
        """A token's secret, unsealed once and kept in a bounded LRU (see __init__)."""
        cache = self._secrets
        with self._cache_lock:
            hit = cache.get(token_id)
            if hit is not None and hit[0] == envelope:
                cache.move_to_end(token_id)
                return hit[1]
        secret = self._ring().open(envelope, f"token:{token_id}:secret")
        if self._secret_cache_size:
            with self._cache_lock:
                cache[token_id] = (envelope, secret)
                if len(cache) > self._secret_cache_size:
                    cache.popitem(last=False)
        return secret

    def rotate_master_key(self, new_ring: Keyring, batch: int = 200) -> int:
        """Re-wrap every data key under ``new_ring``'s current key, a batch per transaction.

        ``new_ring`` must also hold the old key(s). Servers that hold both keys keep
        serving throughout; each row changes only by compare-and-set. Returns rows done.
        """
        done = 0
        targets = ((_t, _t.c.id, ("secret_enc", "sync_key_enc")), (_s, _s.c.prefix, ("key_enc",)))
        for table, pk, cols in targets:
            for col in cols:
                c = table.c[col]
                while True:
                    with self.engine.begin() as conn:
                        rows = conn.execute(select(pk, c).where(c.is_not(None),
                                                                ~c.like(f"v1.{new_ring.current_id}.%"))
                                            .limit(batch)).all()
                        for key, env in rows:
                            res = conn.execute(update(table).where(pk == key, c == env)
                                               .values({col: new_ring.rewrap(env)}))
                            done += res.rowcount
                    if not rows:
                        break
        with self.engine.begin() as conn:
            audit.append(conn, self.now(), "cli", "MASTER_KEY_ROTATE", None,
                         {"to": new_ring.current_id, "rows": done})
        self.keyring = new_ring
        with self._cache_lock:
            self._secrets.clear()
        return done
