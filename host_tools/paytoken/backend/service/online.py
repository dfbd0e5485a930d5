"""Online codes: the issuer makes a wallet's payment codes (issue 12 item 4; docs/WALLET.md).

An *online scheme* is a scheme (a prefix and its 16-byte key) marked ``online``
(``paytoken scheme add --prefix 71 --online``). Its codes keep format v1's layout
(docs/FORMAT.md): ``prefix ‖ FF1(token id (8) ‖ serial (7)) ‖ Damm``, FF1 under the
scheme's key with the prefix as tweak, the serial random. A till and ``paycode.parse_code``
read them as any code (the serial sits where the step residue and the OTP are), and the
issuer decrypts the token id instead of searching. The key never leaves the issuer: no token
is activated under an online prefix and the factory API does not hand its key out.

Each code is stored only as ``code_hash``: HMAC-SHA256 of its content under a key derived
from the scheme's key (itself sealed under the master key), with its token, expiry, use and
revocation. A payment (``Backend.pay``, the merchants' own ``POST /v1/payments``) accepts it
once: ``Online.check`` runs inside the payment's transaction in place of the TOTP check, and
everything else (guess budgets and throttles, limits, funds, the payment row, idempotency)
is the offline path's.

The wallet authenticates with a *wallet key* (``Authorization: Bearer ptk_wallet_...``),
one per token, stored as its SHA-256 like a merchant key. A new key replaces the old one;
replacing or revoking it kills its outstanding codes (``revoked_at``), and a revoked token's
codes are refused by the token's own status.

Usage::

    key = backend.issue_wallet_key(42)                       # shown once
    codes = backend.online_codes(key, count=15, ttl=3600)    # [{"code", "expires_at"}]
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

import paycode
from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.exc import IntegrityError

from paytoken.backend import (
    CONFLICT,
    INVALID,
    NOT_FOUND,
    THROTTLED,
    UNAUTHORIZED,
    UNAVAILABLE,
    BackendError,
    rules,
)
from paytoken.backend.crypto import hash_api_key, new_api_key
from paytoken.backend.store import audit
from paytoken.backend.store.models import ACTIVE, LOCKED, LOST, PENDING, REVOKED
from paytoken.backend.store.sql import CHARGE, TAT
from paytoken.backend.store.tables import accounts as _a
from paytoken.backend.store.tables import merchants as _m
from paytoken.backend.store.tables import online_codes as _c
from paytoken.backend.store.tables import payments as _p
from paytoken.backend.store.tables import schemes as _s
from paytoken.backend.store.tables import tokens as _t
from paytoken.backend.store.tables import wallet_keys as _w
from paytoken.backend.verify import CODE_EXPIRED, CODE_INVALID, CODE_REPLAYED, TOKEN_REVOKED

if TYPE_CHECKING:  # the Backend is passed in; this module never builds one
    from paytoken.backend.service import Backend, Tx, Verdict

DEFAULT_TTL = 60  # seconds a code is valid unless the wallet asks otherwise
MAX_TTL = 86_400  # the longest a wallet may ask for (a cached batch, used offline)
MAX_COUNT = 15  # codes per request (WeChat Pay caches 15)
SERIALS = 10**7  # 7 digits
KEEP_S = 7 * 86_400  # a code's row is kept this long past its expiry (a late replay is named)
MAX_RECENT = 100


# The hot path's SQL (named parameters; store.tx.Tx turns them into psycopg's style).
_ONLINE = "SELECT online FROM schemes WHERE prefix = :p"
_USE = ("UPDATE online_codes SET used_at = :now WHERE hash = :h AND token_id = :id AND used_at IS NULL "
        "AND revoked_at IS NULL AND expires_at > :now")
_CODE = "SELECT token_id, expires_at, used_at, revoked_at FROM online_codes WHERE hash = :h"
# A use of the token: as the offline accept, only while it is active and its guess budget open.
_TOUCH = ("UPDATE tokens SET failures = 0, last_used_at = :now WHERE id = :id AND status = 'active' "
          "AND (guess_tat IS NULL OR guess_tat <= :open_by)")


def make_code(scheme_key: bytes, prefix: str, token_id: int, serial: int) -> str:
    """The 18-digit code of ``serial`` for ``token_id`` under an online scheme."""
    paycode.check_prefix(prefix)
    if not 0 <= token_id <= 99_999_999 or not 0 <= serial < SERIALS:
        raise ValueError("token id is 8 digits and serial 7")
    body = prefix + paycode.ff1_encrypt(scheme_key, prefix.encode(), "%08d%07d" % (token_id, serial))
    return body + str(paycode.damm(body))


def code_hash(scheme_key: bytes, prefix: str, token_id: int, serial: str) -> str:
    """What the database holds of a code: HMAC-SHA256 of its content (prefix, token id,
    serial; the code is a bijection of them under the key) under a key derived from the
    scheme key. Without the scheme key the table gives no code back."""
    k = hmac.new(scheme_key, b"paytoken-online-code-hash-v1", hashlib.sha256).digest()
    return hmac.new(k, ("%s|%08d|%s" % (prefix, token_id, serial)).encode(), hashlib.sha256).hexdigest()


def _count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise BackendError(f"count must be an integer 1 to {MAX_COUNT}", INVALID)
    return count


def _ttl(ttl: object) -> int:
    if ttl is None:
        return DEFAULT_TTL
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise BackendError(f"ttl must be an integer 1 to {MAX_TTL} seconds", INVALID)
    return ttl



def require_offline(conn: Connection, prefix: str) -> None:
    """BackendError (invalid) when ``prefix`` is an online scheme: its key stays in the issuer,
    so no token is activated under it and no station reads it."""
    if conn.execute(select(_s.c.online).where(_s.c.prefix == prefix)).scalar():
        raise BackendError(f"scheme {prefix} is an online scheme: the issuer makes its codes; "
                           "tokens use an offline prefix", INVALID)


class Online:
    """Online codes over one ``Backend`` (its engine, keyring, clock and the payment path).

    ``wallet_budget``: online-code requests per wallet (rules.WALLET_CODES)."""

    def __init__(self, backend: Backend, wallet_budget: rules.Budget = rules.WALLET_CODES) -> None:
        self.backend = backend
        self.wallet_budget = wallet_budget
        self._online: dict[str, bool] = {}  # prefix -> online (a scheme's flag never changes)

    # ---- the payment path (inside Backend._check, in the payment's transaction) ----------

    def is_online(self, tx: Tx, prefix: str) -> bool:
        hit = self._online.get(prefix)
        if hit is None:
            row = tx.one(_ONLINE, {"p": prefix})
            if row is None:
                return False
            hit = self._online[prefix] = bool(row[0])
        return hit

    def check(self, tx: Tx, r, parsed: tuple, now: int, actor: str, merchant_id: int | None) -> Verdict:
        """Accept an online code once, for its token, before it expires; else say why.
        A code that names a real token but was never issued is a guess (charged as one)."""
        from paytoken.backend.service import Verdict

        b = self.backend
        prefix, token_id, residue, otp = parsed
        if r is None or r.status == PENDING:
            return Verdict(CODE_INVALID, detail="no such token")
        if r.status in (REVOKED, LOST):
            return Verdict(TOKEN_REVOKED, token_id)
        open_by = rules.TOKEN_GUESSES.open_by(now)
        if r.status == LOCKED or (r.guess_tat is not None and r.guess_tat > open_by):
            return b._locked(token_id, r.status, r.guess_tat, now)
        key = b._code_scheme(prefix)[0]
        h = code_hash(key, prefix, token_id, "%d%s" % (residue, otp))
        if tx.run(_USE, {"h": h, "id": token_id, "now": now}) == 1:
            if tx.run(_TOUCH, {"id": token_id, "now": now, "open_by": open_by}) != 1:
                return b._recheck(tx, token_id, now)  # revoked (or locked) since the SELECT
            return Verdict(None, token_id)
        row = tx.one(_CODE, {"h": h})
        if row is None or row[0] != token_id:
            return b._guess(tx, r, token_id, ("online|" + h).encode(), now, actor, merchant_id)
        _tid, expires_at, used_at, revoked_at = row
        if used_at is not None:
            audit.append_raw(tx, now, actor, "CODE_REPLAYED", token_id, {"online": True})
            return Verdict(CODE_REPLAYED, token_id, detail="this online code was used already")
        if revoked_at is not None:
            return Verdict(CODE_EXPIRED, token_id, detail="its wallet key was replaced or revoked")
        return Verdict(CODE_EXPIRED, token_id, detail=f"expired {now - expires_at} s ago")

    # ---- schemes ---------------------------------------------------------------------------

    def _current_scheme(self, conn: Connection) -> tuple[str, bytes]:
        prefix = conn.execute(select(_s.c.prefix).where(_s.c.online.is_(True), _s.c.retired_at.is_(None))
                              .order_by(_s.c.created_at.desc(), _s.c.prefix.desc()).limit(1)).scalar()
        if prefix is None:
            raise BackendError("this issuer has no online scheme: run `paytoken scheme add --online`", UNAVAILABLE)
        return prefix, self.backend._scheme_key(conn, prefix)

    # ---- wallet keys ---------------------------------------------------------------------------

    def issue_wallet_key(self, token_id: int, actor: str = "cli") -> str:
        """A new wallet key for an active token (returned once; only its hash is kept). It
        replaces the token's old key, whose outstanding codes die with it."""
        rules.check_token_id(token_id)
        b = self.backend
        key = new_api_key("wallet")
        now = b.now()
        try:
            with b.engine.begin() as conn:
                status = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
                if status is None or status == PENDING:
                    raise BackendError(f"no token {token_id}", NOT_FOUND)
                if status in (REVOKED, LOST):
                    raise BackendError(f"token {token_id} is {status}: it gets no wallet key", CONFLICT)
                killed, replaced = self._drop_key(conn, token_id, now)
                conn.execute(_w.insert().values(token_id=token_id, key_hash=hash_api_key(key), created_at=now))
                audit.append(conn, now, actor, "WALLET_KEY_ISSUE", token_id,
                             {"replaced": replaced, "codes_revoked": killed})
        except IntegrityError:  # a concurrent issue for this token committed first
            raise BackendError(f"token {token_id} got another wallet key at the same time; retry", CONFLICT) from None
        return key

    def revoke_wallet_key(self, token_id: int, actor: str = "cli") -> int:
        """Remove the token's wallet key; its outstanding codes die. Returns how many did."""
        rules.check_token_id(token_id)
        b = self.backend
        now = b.now()
        with b.engine.begin() as conn:
            killed, replaced = self._drop_key(conn, token_id, now)
            if not replaced:
                raise BackendError(f"token {token_id} has no wallet key", NOT_FOUND)
            audit.append(conn, now, actor, "WALLET_KEY_REVOKE", token_id, {"codes_revoked": killed})
        return killed

    @staticmethod
    def _drop_key(conn: Connection, token_id: int, now: int) -> tuple[int, bool]:
        # The key's row first: an issue under way holds it (FOR UPDATE), so its codes are
        # committed before this kills the outstanding ones.
        replaced = conn.execute(delete(_w).where(_w.c.token_id == token_id)).rowcount == 1
        killed = conn.execute(update(_c).where(_c.c.token_id == token_id, _c.c.used_at.is_(None),
                                               _c.c.revoked_at.is_(None), _c.c.expires_at > now)
                              .values(revoked_at=now)).rowcount
        return killed, replaced

    def wallet_token(self, wallet_key: str) -> int | None:
        """The token id of a wallet key, or None (looked up by hash: no timing on the key)."""
        if not isinstance(wallet_key, str) or not wallet_key.isascii():
            return None
        with self.backend.engine.connect() as conn:
            return conn.execute(select(_w.c.token_id).where(_w.c.key_hash == hash_api_key(wallet_key))).scalar()

    # ---- issuing codes ------------------------------------------------------------------------

    def issue_codes(self, wallet_key: str, count: int = 1, ttl: int | None = None) -> list[dict]:
        """``count`` (1 to 15) fresh codes for the wallet key's token, each valid ``ttl``
        seconds (default 60, at most a day): ``[{"code", "expires_at"}]``, ``expires_at``
        the first UTC second it is refused. BackendError: unauthorized (unknown key), conflict (token not
        active), throttled (``retry_after``), unavailable (no online scheme)."""

        count, ttl = _count(count), _ttl(ttl)
        b = self.backend
        kh = hash_api_key(wallet_key) if isinstance(wallet_key, str) else ""
        for _ in range(3):
            now = b.now()
            try:
                with b.engine.begin() as conn:
                    # FOR UPDATE: a revocation of this key waits until these codes are in.
                    token_id = conn.execute(select(_w.c.token_id).where(_w.c.key_hash == kh)
                                            .with_for_update()).scalar()
                    if token_id is None:
                        raise BackendError("unknown wallet key", UNAUTHORIZED)
                    status = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
                    if status not in (ACTIVE, LOCKED):
                        raise BackendError(f"token {token_id} is {status}: it pays no more", CONFLICT)
                    bud, wk = self.wallet_budget, f"w:{token_id}"
                    if conn.execute(text(CHARGE), {"k": wk, "first": now + bud.interval_s, "now": now,
                                                    "iv": bud.interval_s, "open_by": bud.open_by(now)}).first() is None:
                        wait = bud.retry_after(conn.execute(text(TAT), {"k": wk}).scalar(), now)
                        raise BackendError(f"too many code requests from this wallet; retry after {wait} s", THROTTLED, retry_after=wait)
                    prefix, key = self._current_scheme(conn)
                    conn.execute(delete(_c).where(_c.c.token_id == token_id, _c.c.expires_at < now - KEEP_S))
                    fresh: dict[str, int] = {}
                    while len(fresh) < count:
                        want = {code_hash(key, prefix, token_id, "%07d" % s): s
                                for s in (secrets.randbelow(SERIALS) for _ in range(count - len(fresh)))}
                        taken = set(conn.execute(select(_c.c.hash).where(_c.c.hash.in_(list(want)))).scalars())
                        fresh.update((h, s) for h, s in want.items() if h not in taken)
                    hashes = list(fresh)[:count]
                    expires = now + ttl
                    conn.execute(_c.insert(), [{"hash": h, "token_id": token_id, "prefix": prefix,
                                                "created_at": now, "expires_at": expires} for h in hashes])
                    audit.append(conn, now, f"wallet:{token_id}", "ONLINE_CODES", token_id,
                                 {"prefix": prefix, "count": count, "expires_at": expires})
                return [{"code": make_code(key, prefix, token_id, fresh[h]), "expires_at": expires}
                        for h in hashes]
            except IntegrityError:  # a concurrent request drew the same serial: draw again
                continue
        raise BackendError("could not issue codes; retry", UNAVAILABLE)

    # ---- what the wallet shows ----------------------------------------------------------------

    def wallet_summary(self, token_id: int, recent: int = 10) -> dict:
        """The account for its holder: status, balance, currency, limits, today's spending,
        and the ``recent`` (0 to 100) latest succeeded payments, newest first."""
        from paytoken.backend.verify import day_of

        rules.check_token_id(token_id)
        if isinstance(recent, bool) or not isinstance(recent, int) or not 0 <= recent <= MAX_RECENT:
            raise BackendError(f"recent must be 0 to {MAX_RECENT}", INVALID)
        b = self.backend
        info = b.token_info(token_id)
        with b.engine.connect() as conn:
            acc = conn.execute(select(_a.c.spent_day, _a.c.spent).where(_a.c.token_id == token_id)).first()
            rows = conn.execute(
                select(_p.c.id, _p.c.amount, _p.c.currency, _p.c.refunded, _p.c.created_at,
                       _m.c.name.label("merchant"))
                .join(_m, _m.c.id == _p.c.merchant_id)
                .where(_p.c.token_id == token_id, _p.c.status == "succeeded")
                .order_by(_p.c.created_at.desc(), _p.c.id.desc()).limit(recent)).all() if recent else []
        today = day_of(b.now())
        return {"token_id": token_id, "status": info["status"], "balance": info["balance"],
                "currency": info["currency"], "limit_per_payment": info["limit_per_payment"],
                "limit_per_day": info["limit_per_day"],
                "spent_today": acc.spent if acc is not None and acc.spent_day == today else 0,
                "payments": [{"payment_id": r.id, "merchant": r.merchant, "amount": r.amount,
                              "currency": r.currency, "refunded": r.refunded, "created_at": r.created_at}
                             for r in rows]}
