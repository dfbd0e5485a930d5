"""The service layer: every backend operation as one database transaction.

Verification advances a token's last accepted step with a conditional UPDATE
(``... WHERE id = :id AND last_step < :step``) in the same transaction as the debit
and the payment row, so when N processes submit one code at once exactly one wins.
Payments are idempotent on (merchant, merchant_order_id): a retry gets the stored
original result. The clock is injected (``clock=``), UTC seconds.

Usage::

    backend = Backend.open("sqlite:///paytoken.db", Keyring.load())
    merchant_id, api_key = backend.add_merchant("corner shop")
    result = backend.pay(merchant_id, "811234...", 1250, "CNY", "order-1")
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import paycode
from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from paytoken.backend import BackendError, audit, codes, online, operators, rules, verify
from paytoken.backend.crypto import Keyring, hash_api_key, new_api_key
from paytoken.backend.db import make_engine, require_schema
from paytoken.backend.fastpay import FastPath
from paytoken.backend.models import (
    ACTIVE,
    LOCKED,
    LOST,
    PENDING,
    REVOKED,
    Account,
    Admin,
    Merchant,
    Payment,
    Refund,
    Scheme,
    Throttle,
    Token,
)
from paytoken.backend.verify import (
    CODE_EXPIRED,
    CODE_FUTURE,
    CODE_INVALID,
    CODE_REPLAYED,
    INSUFFICIENT_FUNDS,
    LIMIT_EXCEEDED,
    PERIOD,
    TOKEN_LOCKED,
    TOKEN_REVOKED,
    Decision,
    Drift,
    Policy,
    day_of,
    judge,
)

log = logging.getLogger("paytoken.backend")

MAX_AMOUNT = 10**12  # minor units; larger amounts are malformed requests
MAX_TOKEN_ID = 99_999_999
MERCHANT_CACHE_S = 60.0
SCHEME_CACHE_S = 10.0  # seconds a server trusts its memory of a scheme's format and closure
_CURRENCY = re.compile(r"\A[A-Z]{3}\Z")
_ORDER_ID = re.compile(r"\A[A-Za-z0-9._:/-]{1,64}\Z")
_NONCE = re.compile(r"\A[A-Za-z0-9]{8,64}\Z")
_NAME = re.compile(r"\A[^\x00-\x1f\x7f]{1,100}\Z")
_IDEM_KEY = re.compile(r"\A[\x21-\x7e]{1,255}\Z")

_t = Token.__table__
_a = Account.__table__
_p = Payment.__table__
_r = Refund.__table__
_s = Scheme.__table__
_m = Merchant.__table__
_ad = Admin.__table__
_th = Throttle.__table__
THROTTLED = "THROTTLED"  # a Verdict reason that becomes HTTP 429, never a stored refusal


# ---- the hot path's SQL (named parameters; _Tx turns them into psycopg's style) ----------

_TOK_COLS = ("status", "prefix", "secret_enc", "drift_s", "last_step", "pending_drift", "pending_step",
             "drift_at", "drift_off", "drift_ppm", "drift_p00", "drift_p01", "drift_p11",
             "last_used_at", "created_at", "guess_tat", "guess_hash", "prev_prefix")
_N_TOK = len(_TOK_COLS)
_TokRow = namedtuple("_TokRow", _TOK_COLS)
_PayTokRow = namedtuple("_PayTokRow", _TOK_COLS + ("limit_per_payment", "limit_per_day", "balance",
                                                   "currency", "spent_day", "spent", "stored", "m_tat",
                                                   "mt_tat"))
_SEL_TOKEN = "SELECT " + ", ".join(_TOK_COLS) + " FROM tokens WHERE id = :id"
_SEL_PAY = (
    "SELECT " + ", ".join("t." + c for c in _TOK_COLS) + ", t.limit_per_payment, t.limit_per_day, "
    "a.balance, a.currency, a.spent_day, a.spent, "
    "(SELECT p.id FROM payments p WHERE p.merchant_id = :m AND p.merchant_order_id = :o), "
    "(SELECT h.tat FROM throttles h WHERE h.key = :km), (SELECT h.tat FROM throttles h WHERE h.key = :kmt) "
    "FROM tokens t LEFT JOIN accounts a ON a.token_id = t.id WHERE t.id = :id")
_PAY_COLS = ("id", "merchant_id", "merchant_order_id", "request_hash", "token_id", "amount", "currency",
             "status", "reason")
_PayRow = namedtuple("_PayRow", _PAY_COLS)
_SEL_PAYMENT = ("SELECT " + ", ".join(_PAY_COLS) + " FROM payments "
                "WHERE merchant_id = :m AND merchant_order_id = :o")
# A write that depends on the token's guess budget being open (rules.TOKEN_GUESSES) says so
# in its WHERE: concurrent requests cannot together check more codes than the budget allows.
_OPEN = "(guess_tat IS NULL OR guess_tat <= :open_by)"
_GUESS = ("UPDATE tokens SET failures = failures + 1, guess_hash = :gh, guess_tat = "
          "CASE WHEN guess_tat IS NULL OR guess_tat < :now THEN :now ELSE guess_tat END + :iv "
          "WHERE id = :id AND " + _OPEN + " RETURNING failures, guess_tat")
_SUSPECT = "UPDATE tokens SET clock_suspect = clock_suspect + 1 WHERE id = :id AND " + _OPEN
_PENDING = "UPDATE tokens SET pending_drift = :drift, pending_step = :step WHERE id = :id AND " + _OPEN
_ACCEPT = (
    "UPDATE tokens SET last_step = :step, drift = :drift, drift_s = :drift_s, drift_at = :at, "
    "drift_off = :off, drift_ppm = :ppm, drift_p00 = :p00, drift_p01 = :p01, drift_p11 = :p11, "
    "failures = 0, pending_drift = NULL, pending_step = NULL, last_used_at = :now "
    "WHERE id = :id AND last_step < :step AND status = 'active' AND " + _OPEN)
_STATUS = "SELECT status, guess_tat FROM tokens WHERE id = :id"
# The debit keeps the day's spending on the account and checks the per-day limit in the same
# statement, so concurrent payments of one token cannot overshoot it.
_DEBIT = ("UPDATE accounts SET balance = balance - :amount, "
          "spent = CASE WHEN spent_day = :day THEN spent + :amount ELSE :amount END, spent_day = :day "
          "WHERE token_id = :id AND currency = :cur AND balance >= :amount "
          "AND CASE WHEN spent_day = :day THEN spent ELSE 0 END + :amount <= :lim")
_ACCOUNT = "SELECT balance, currency, spent_day, spent FROM accounts WHERE token_id = :id"
# One GCRA charge (rules.Budget): no row back when the bucket is full (then nothing changes).
_CHARGE = ("INSERT INTO throttles (key, tat) VALUES (:k, :first) ON CONFLICT (key) DO UPDATE SET tat = "
           "CASE WHEN throttles.tat < :now THEN :now ELSE throttles.tat END + :iv "
           "WHERE throttles.tat <= :open_by RETURNING tat")
_TAT = "SELECT tat FROM throttles WHERE key = :k"
_NO_LIMIT = 2**62
_INSERT_PAYMENT = (
    "INSERT INTO payments (id, merchant_id, merchant_order_id, request_hash, token_id, amount, currency, "
    "status, reason, step, refunded, day, created_at, drift_off, drift_ppm) VALUES (:id, :m, :o, :req, "
    ":token_id, :amount, :currency, :status, :reason, :step, 0, :day, :now, :drift_off, :drift_ppm)")
_PARAM = re.compile(r":(\w+)")


@lru_cache(maxsize=64)
def _pyformat(sql: str) -> str:
    return _PARAM.sub(r"%(\1)s", sql)


def _accept_params(token_id: int, step: int, new: Drift, now: int, open_by: int) -> dict:
    """The parameters of ``_ACCEPT``: consume ``step``, keep the new drift model ``new``."""
    drift_s = round(new.offset)
    return {"id": token_id, "step": step, "drift": round(drift_s / PERIOD), "drift_s": drift_s, "at": new.at,
            "off": new.offset, "ppm": new.ppm, "p00": new.p00, "p01": new.p01, "p11": new.p11, "now": now,
            "open_by": open_by}


class _Tx:
    """One driver-level transaction. ``one`` reads; ``run`` (rowcount) and ``write_one``
    (first row) write. On PostgreSQL the connection is in autocommit mode and BEGIN is
    sent before the first write only: a read costs no BEGIN round trip, and a write
    marked ``alone`` (a single conditional UPDATE, atomic by itself) needs no COMMIT."""

    __slots__ = ("cur", "pg", "open")

    def __init__(self, cur, pg: bool) -> None:
        self.cur, self.pg, self.open = cur, pg, False

    def one(self, sql: str, params: dict):
        cur = self.cur
        cur.execute(_pyformat(sql) if self.pg else sql, params)
        return cur.fetchone()

    def _begin(self) -> None:
        self.cur.execute("BEGIN")
        self.open = True

    def write_one(self, sql: str, params: dict):
        if self.pg and not self.open:
            self._begin()
        return self.one(sql, params)

    def run(self, sql: str, params: dict, alone: bool = False) -> int:
        cur = self.cur
        if self.pg:
            if not self.open and not alone:
                self._begin()
            cur.execute(_pyformat(sql), params)
        else:
            cur.execute(sql, params)
        return cur.rowcount


class _RawPool:
    """The hot path's own driver connections (SQLite: configured by the engine's connect
    hook; PostgreSQL: autocommit). At most ``keep`` idle ones are kept; a connection
    whose transaction failed is closed, never reused; a forked child starts afresh."""

    def __init__(self, engine: Engine, keep: int = 40) -> None:  # 40: anyio's thread pool
        self.engine, self.keep = engine, keep
        self.pg = engine.dialect.name != "sqlite"
        self._idle: list = []
        self._pid = os.getpid()

    def get(self):
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            pass
        fairy = self.engine.raw_connection()
        fairy.detach()  # ours now: never handed to SQLAlchemy's own users
        if self.pg:
            fairy.dbapi_connection.autocommit = True
        return fairy

    def put(self, fairy) -> None:
        if len(self._idle) < self.keep and self._pid == os.getpid():
            self._idle.append(fairy)
        else:
            fairy.close()

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for fairy in idle:
            fairy.close()


class _Job:
    __slots__ = ("fn", "event", "lead", "result", "error")

    def __init__(self, fn) -> None:
        self.fn, self.event, self.lead, self.result, self.error = fn, None, False, None, None


class _GroupCommit:
    """Leader/follower group commit for SQLite's single writer.

    A thread that finds no commit under way leads: it runs every queued job (up to
    ``max_batch``), each inside its own SAVEPOINT, then one COMMIT, then wakes their
    threads. Jobs queued meanwhile wait; the first of them leads the next group. A job
    that raises is rolled back to its savepoint alone; a failed COMMIT fails the group.
    """

    def __init__(self, tx_factory, max_batch: int = 64) -> None:
        self._tx = tx_factory
        self._max = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._busy = False
        self._pid = os.getpid()

    def submit(self, fn):
        if self._pid != os.getpid():  # a forked child: the parent's lock and queue are not ours
            self.__init__(self._tx, self._max)
        job = _Job(fn)
        with self._lock:
            self._queue.append(job)
            lead = not self._busy
            self._busy = True
            if not lead:  # only a waiting job needs something to wait on
                job.event = threading.Event()
        if not lead:
            job.event.wait()
            if not job.lead:
                return _outcome(job)
        with self._lock:
            batch, self._queue = self._queue[:self._max], self._queue[self._max:]
        try:
            self._commit(batch)
        finally:
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.event.set()
                else:
                    self._busy = False
            for j in batch:
                if j.event is not None:
                    j.event.set()
        return _outcome(job)

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with self._tx() as tx:
                if len(batch) == 1:  # alone: its failure aborts the transaction (no savepoint)
                    batch[0].result = batch[0].fn(tx)
                    return
                cur = tx.cur
                for j in batch:
                    cur.execute("SAVEPOINT job")
                    try:
                        j.result = j.fn(tx)
                    except Exception as exc:  # this job alone is undone
                        cur.execute("ROLLBACK TO job")
                        j.error = exc
                    cur.execute("RELEASE job")
        except BaseException as exc:  # the COMMIT (or BEGIN) failed: nothing is written
            for j in batch:
                j.result, j.error = None, exc
            if not isinstance(exc, Exception):
                raise


def _outcome(job: _Job):
    if job.error is not None:
        raise job.error
    return job.result


@dataclass
class Verdict:
    """The outcome of checking one code: ``reason`` None means accepted."""

    reason: str | None
    token_id: int | None = None  # set once the code named a real token
    step: int | None = None
    offset: int | None = None
    detail: str = ""  # why (for logs; never secret)
    retry_after: int = 0  # TOKEN_LOCKED (a cool-down) or THROTTLED: seconds until it clears
    drift: tuple[float, float] | None = None  # accepted: the learned (offset s, rate ppm) after it

    @property
    def ok(self) -> bool:
        return self.reason is None


def _check_amount(amount: object, what: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise BackendError(f"{what} must be an integer number of minor units", 422)
    if not 1 <= amount <= MAX_AMOUNT:
        raise BackendError(f"{what} must be 1 to {MAX_AMOUNT} minor units", 422)
    return amount


def _check_currency(currency: object) -> str:
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise BackendError("currency must be three capital letters (ISO 4217), e.g. CNY", 422)
    return currency


def _check_token_id(token_id: object) -> int:
    if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id <= MAX_TOKEN_ID:
        raise BackendError(f"token id must be an integer 0 to {MAX_TOKEN_ID}", 422)
    return token_id


def _check_nonce(nonce: object) -> str:
    if not isinstance(nonce, str) or not _NONCE.match(nonce):
        raise BackendError("nonce must be 8 to 64 ASCII letters or digits", 422)
    return nonce


def _check_limit(limit: int | None, what: str) -> int | None:
    return None if limit is None else _check_amount(limit, what)


class Backend:
    """The issuer backend over one database. Thread-safe; one per process is enough.

    Unsealed keys are kept in memory: the scheme keys (a handful) and, in a bounded LRU,
    the secrets of up to ``secret_cache`` recently used tokens (0 disables it), so a
    payment costs no AES-GCM unseal. This adds little exposure: the process already holds
    the master key, which opens every secret; what it adds is that up to that many
    secrets sit in memory for longer (core dumps, swap). A changed envelope (a new
    secret, a re-wrap) misses the cache; a master-key rotation clears it.
    """

    def __init__(self, engine: Engine, keyring: Keyring | None = None, policy: Policy | None = None,
                 clock: Callable[[], float] = time.time, secret_cache: int = 10_000,
                 bad_keys: rules.Budget = rules.BAD_KEYS) -> None:
        self.engine = engine
        self.keyring = keyring
        self.policy = policy or Policy()
        self.clock = clock
        self._scheme_keys: dict[str, bytes] = {}
        # prefix -> (format, closed, monotonic expiry): what codes of a prefix mean; a
        # scheme closed elsewhere (another process) is seen within SCHEME_CACHE_S
        self._scheme_meta: dict[str, tuple[int, bool, float]] = {}
        self._secrets: OrderedDict[int, tuple[str, bytes]] = OrderedDict()
        self._secret_cache_size = max(0, int(secret_cache))
        self._cache_lock = threading.Lock()
        self._merchants: dict[str, tuple[int, float]] = {}
        self._blocked: dict[str, int] = {}  # client address -> UTC s its bad-key budget opens
        self._bad_keys = 0
        self.bad_keys_budget = bad_keys  # unknown API keys per client address (rules.BAD_KEYS)
        self._sqlite = engine.dialect.name == "sqlite"
        self._pool = _RawPool(engine)
        self._group = _GroupCommit(self._tx) if self._sqlite else None
        # PostgreSQL: a payment or verification in one statement when this server's copy of
        # the token row is current (backend/fastpay.py); else the full transaction below
        self._fast = None if self._sqlite else FastPath(self)
        self._integrity_errors = (IntegrityError, engine.dialect.loaded_dbapi.IntegrityError)
        self.online = online.Online(self)  # online codes (backend/online.py)

    @classmethod
    def open(cls, url: str, keyring: Keyring | None = None, **kw) -> Backend:
        """Open a migrated database (BackendError if ``paytoken db init`` has not run)."""
        engine = make_engine(url, pool_size=kw.pop("pool_size", 10))
        require_schema(engine)
        return cls(engine, keyring, **kw)

    def now(self) -> int:
        return int(self.clock())

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise BackendError("this operation needs the master key (PAYTOKEN_MASTER_KEY or --master-key-file)")
        return self.keyring

    # ---- schemes ---------------------------------------------------------------------

    def add_scheme(self, prefix: str, key: bytes | None = None, limit_per_payment: int | None = None,
                   limit_per_day: int | None = None, currency: str | None = None,
                   actor: str = "cli", online: bool = False, fmt: int = 1) -> bytes:
        """Store the scheme key of ``prefix`` (generated when None); returns it.

        ``fmt``: the code format of the scheme's tokens (``paycode.FORMATS``). The limits
        and currency are the defaults activation gives the scheme's new tokens; None means
        the issuer's (rules.DEFAULT_*). ``online``: the issuer makes this scheme's codes
        (backend/online.py); no token is activated under it, and it has no code format."""
        if online and fmt != 1:
            raise BackendError("an online scheme has no code format: the issuer makes its codes", 422)
        try:
            paycode.check_prefix(prefix)
            paycode.format_hash(fmt)
        except ValueError as exc:
            raise BackendError(str(exc), 422) from None
        _check_limit(limit_per_payment, "limit_per_payment")
        _check_limit(limit_per_day, "limit_per_day")
        if currency is not None:
            _check_currency(currency)
        if key is None:
            key = os.urandom(16)
        if len(key) != 16:
            raise BackendError("a scheme key is 16 bytes (32 hex digits) for AES-128", 422)
        enc = self._ring().seal(key, f"scheme:{prefix}")
        try:
            with self.engine.begin() as conn:
                conn.execute(_s.insert().values(prefix=prefix, key_enc=enc, created_at=self.now(),
                                                limit_per_payment=limit_per_payment, limit_per_day=limit_per_day,
                                                currency=currency, online=bool(online), format=fmt))
                audit.append(conn, self.now(), actor, "SCHEME_ADD", None,
                             {"prefix": prefix, "online": bool(online), "format": fmt})
        except IntegrityError:
            raise BackendError(f"scheme prefix {prefix} already exists", 409) from None
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
            raise BackendError(f"no scheme {prefix}", 404)
        return self._defaults(row)

    @staticmethod
    def _defaults(row) -> dict:
        return {"limit_per_payment": rules.DEFAULT_LIMIT_PER_PAYMENT if row.limit_per_payment is None
                else row.limit_per_payment,
                "limit_per_day": rules.DEFAULT_LIMIT_PER_DAY if row.limit_per_day is None else row.limit_per_day,
                "currency": row.currency or rules.DEFAULT_CURRENCY}

    def scheme_keys(self) -> dict[str, bytes]:
        """Every offline scheme's key by prefix (for the factory station and tests); an
        online scheme's key never leaves the issuer (backend/online.py)."""
        with self.engine.begin() as conn:
            prefixes = conn.execute(select(_s.c.prefix).where(_s.c.online.is_(False))).scalars().all()
            return {p: self._scheme_key(conn, p) for p in prefixes}

    # ---- tokens ----------------------------------------------------------------------

    def add_token(self, token_id: int, secret: bytes, prefix: str = "81", sync_key: bytes | None = None,
                  currency: str | None = None, limit_per_payment: int | None = None,
                  limit_per_day: int | None = None, actor: str = "cli", drift_ppm: float | None = None) -> None:
        """Register an active token at once (imports and tests). The account starts at 0.
        Currency and limits left None are the scheme's defaults (``scheme_defaults``).

        ``drift_ppm``: the token's measured crystal error, if it does not correct it itself
        (the drift model starts from it instead of learning the rate from 0)."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            self._insert_token(conn, token_id, PENDING, actor)
            self._activate(conn, token_id, secret, sync_key, prefix, currency,
                           limit_per_payment, limit_per_day, actor, drift_ppm)

    def _insert_token(self, conn: Connection, token_id: int, status: str, actor: str) -> None:
        try:
            with conn.begin_nested():
                conn.execute(_t.insert().values(
                    id=token_id, status=status, drift=0, drift_s=0, last_step=-1, failures=0,
                    clock_suspect=0, created_at=self.now()))
        except IntegrityError:
            raise BackendError(f"token {token_id} already exists", 409) from None
        audit.append(conn, self.now(), actor, "TOKEN_ALLOCATE", token_id, {"status": status})

    def allocate_token(self, actor: str = "station", sync_key: bytes | None = None) -> int:
        """Factory step 1: reserve a random unused token id as a ``pending`` record.

        A pending token has no secret and never verifies or counts as active.
        ``sync_key`` (sealed) lets the station unlock a token that was locked but
        never activated (``pending_unlock_mac``).
        """
        if sync_key is not None and (not isinstance(sync_key, bytes) or len(sync_key) < 16):
            raise BackendError("a sync key must be at least 16 bytes", 422)
        for _ in range(20):
            token_id = secrets.randbelow(MAX_TOKEN_ID) + 1
            try:
                with self.engine.begin() as conn:
                    self._insert_token(conn, token_id, PENDING, actor)
                    if sync_key is not None:
                        conn.execute(update(_t).where(_t.c.id == token_id).values(
                            sync_key_enc=self._ring().seal(sync_key, f"token:{token_id}:sync")))
                return token_id
            except BackendError as exc:
                if exc.status != 409:
                    raise
        raise BackendError("could not find a free token id", 503)

    def discard_pending(self, token_id: int, actor: str = "station") -> bool:
        """Remove a ``pending`` record (a provisioning that failed); False if none was."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            res = conn.execute(_t.delete().where(_t.c.id == token_id, _t.c.status == PENDING))
            if res.rowcount != 1:
                return False
            audit.append(conn, self.now(), actor, "TOKEN_DISCARD", token_id, {"status": PENDING})
        return True

    def pending_unlock_mac(self, token_id: int, nonce: str, actor: str = "station") -> str:
        """``sync_mac(sync_key, 'UNLOCK', nonce, token_id)`` for a ``pending`` token that
        holds a sync key: the station's way back into a token locked before activation."""
        _check_token_id(token_id)
        _check_nonce(nonce)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.sync_key_enc).where(_t.c.id == token_id)).first()
            if row is None or row.status != PENDING or row.sync_key_enc is None:
                raise BackendError(f"token {token_id} is not a pending token with a sync key", 409)
            key = self._ring().open(row.sync_key_enc, f"token:{token_id}:sync")
            audit.append(conn, self.now(), actor, "UNLOCK_AUTH", token_id, {"pending": True})
        return paycode.sync_mac(key, "UNLOCK", nonce, token_id)

    def activate_token(self, token_id: int, secret: bytes, sync_key: bytes, prefix: str = "81",
                       currency: str | None = None, limit_per_payment: int | None = None,
                       limit_per_day: int | None = None, actor: str = "station",
                       drift_ppm: float | None = None) -> None:
        """Factory last step: store the secret and sync key and mark the token active,
        in one transaction. Only a ``pending`` token can be activated. Currency and limits
        left None are the scheme's defaults; ``drift_ppm`` as in ``add_token``."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            self._activate(conn, token_id, secret, sync_key, prefix, currency,
                           limit_per_payment, limit_per_day, actor, drift_ppm)

    def _activate(self, conn: Connection, token_id: int, secret: bytes, sync_key: bytes | None,
                  prefix: str, currency: str | None, limit_per_payment: int | None,
                  limit_per_day: int | None, actor: str, drift_ppm: float | None = None) -> None:
        if drift_ppm is not None and (isinstance(drift_ppm, bool) or not isinstance(drift_ppm, (int, float))
                                      or not abs(drift_ppm) <= 500):
            raise BackendError("drift_ppm must be a number within ±500 ppm", 422)
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise BackendError("a token secret must be at least 16 bytes (RFC 4226 R6)", 422)
        if sync_key is None:
            sync_key = os.urandom(20)
        if not isinstance(sync_key, bytes) or len(sync_key) < 16:
            raise BackendError("a sync key must be at least 16 bytes", 422)
        if currency is not None:
            _check_currency(currency)
        _check_limit(limit_per_payment, "limit_per_payment")
        _check_limit(limit_per_day, "limit_per_day")
        if self._scheme_key(conn, prefix) is None:
            raise BackendError(f"no scheme key for prefix {prefix}: run `paytoken scheme add`", 422)
        operators.require_open_scheme(conn, prefix)
        online.require_offline(conn, prefix)
        dflt = self._defaults(conn.execute(select(_s.c.limit_per_payment, _s.c.limit_per_day, _s.c.currency)
                                           .where(_s.c.prefix == prefix)).one())
        currency = currency or dflt["currency"]
        limit_per_payment = dflt["limit_per_payment"] if limit_per_payment is None else limit_per_payment
        limit_per_day = dflt["limit_per_day"] if limit_per_day is None else limit_per_day
        ring = self._ring()
        d = Drift.fresh(self.now(), 0.0, drift_ppm, self.policy.rate_sigma_ppm)
        res = conn.execute(
            update(_t).where(_t.c.id == token_id, _t.c.status == PENDING).values(
                status=ACTIVE, prefix=prefix, drift_at=d.at, drift_off=d.offset, drift_ppm=d.ppm,
                drift_p00=d.p00, drift_p01=d.p01, drift_p11=d.p11,
                secret_enc=ring.seal(secret, f"token:{token_id}:secret"),
                sync_key_enc=ring.seal(sync_key, f"token:{token_id}:sync"),
                limit_per_payment=limit_per_payment, limit_per_day=limit_per_day))
        if res.rowcount != 1:
            raise BackendError(f"token {token_id} is not a pending token", 409)
        conn.execute(_a.insert().values(token_id=token_id, currency=currency, balance=0))
        audit.append(conn, self.now(), actor, "TOKEN_ACTIVATE", token_id,
                     {"prefix": prefix, "currency": currency, "limit_per_payment": limit_per_payment,
                      "limit_per_day": limit_per_day})

    def token_info(self, token_id: int) -> dict:
        """Status, drift, last use, limits and balance (never secrets)."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(_t, _a.c.balance, _a.c.currency)
                .outerjoin(_a, _a.c.token_id == _t.c.id).where(_t.c.id == token_id)).first()
        if row is None:
            raise BackendError(f"no token {token_id}", 404)
        return self._info(row)

    def _info(self, row) -> dict:
        """``status`` says ``locked`` while the guess budget is full (``locked_until``, when the
        lock clears by itself; None for a token locked by hand)."""
        status, until = row.status, None
        b = rules.TOKEN_GUESSES
        if status == ACTIVE and not b.allows(row.guess_tat, self.now()):
            status, until = LOCKED, row.guess_tat - (b.burst - 1) * b.interval_s
        return {
            "token_id": row.id, "status": status, "locked_until": until, "prefix": row.prefix,
            "moving_from": row.prev_prefix,
            "drift_steps": row.drift, "drift_seconds": row.drift_s, "drift_ppm": row.drift_ppm,
            "last_step": None if row.last_step < 0 else row.last_step,
            "last_used_at": row.last_used_at, "failures": row.failures,
            "clock_suspect": row.clock_suspect, "limit_per_payment": row.limit_per_payment,
            "limit_per_day": row.limit_per_day, "balance": row.balance, "currency": row.currency,
        }

    def list_tokens(self, limit: int = 1000) -> list[dict]:
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(_t, _a.c.balance, _a.c.currency)
                .outerjoin(_a, _a.c.token_id == _t.c.id).order_by(_t.c.id).limit(limit)).all()
        return [self._info(r) for r in rows]

    def set_status(self, token_id: int, status: str, actor: str) -> dict:
        """Revoke (``revoked``) or report ``lost``: final; the token never pays again, and
        its status never changes again (asking for the same one again is a no-op)."""
        _check_token_id(token_id)
        if status not in (REVOKED, LOST):
            raise BackendError("status must be revoked or lost", 422)
        with self.engine.begin() as conn:
            res = conn.execute(update(_t).where(_t.c.id == token_id, _t.c.status.in_((ACTIVE, LOCKED)))
                               .values(status=status))
            if res.rowcount != 1:
                now = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
                if now is None or now == PENDING:
                    raise BackendError(f"no token {token_id}", 404)
                if now != status:
                    raise BackendError(f"token {token_id} is {now}; that is final", 409)
            else:
                audit.append(conn, self.now(), actor, "TOKEN_" + status.upper(), token_id, {})
        return self.token_info(token_id)

    def set_token(self, token_id: int, actor: str, **changes) -> dict:
        """Change a token's ``limit_per_payment``, ``limit_per_day`` (minor units, None = no
        limit) and ``currency`` (only while its balance is 0: nothing is converted). Keys
        not given stay as they are. Audited."""
        _check_token_id(token_id)
        unknown = set(changes) - {"limit_per_payment", "limit_per_day", "currency"}
        if unknown:
            raise BackendError(f"cannot set {', '.join(sorted(unknown))}", 422)
        if not changes:
            raise BackendError("nothing to change: give a limit or a currency", 422)
        for k in ("limit_per_payment", "limit_per_day"):
            if k in changes:
                _check_limit(changes[k], k)
        cur = changes.get("currency")
        if "currency" in changes:
            _check_currency(cur)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _a.c.balance, _a.c.currency)
                               .outerjoin(_a, _a.c.token_id == _t.c.id).where(_t.c.id == token_id)
                               .with_for_update(of=_t)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", 404)
            if row.status in (REVOKED, LOST):
                raise BackendError(f"token {token_id} is {row.status}", 409)
            limits = {k: v for k, v in changes.items() if k != "currency"}
            if limits:
                conn.execute(update(_t).where(_t.c.id == token_id).values(**limits))
            if cur is not None and cur != row.currency:
                res = conn.execute(update(_a).where(_a.c.token_id == token_id, _a.c.balance == 0)
                                   .values(currency=cur))
                if res.rowcount != 1:
                    raise BackendError(f"token {token_id} holds {row.balance} {row.currency}: "
                                       "its currency changes only at balance 0", 409)
            audit.append(conn, self.now(), actor, "TOKEN_SET", token_id, dict(changes))
        return self.token_info(token_id)

    def unlock(self, token_id: int, actor: str) -> dict:
        """Unlock a token locked by wrong codes before its cool-down ends; its guess budget
        and failure count restart."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            status = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
            if status is None:
                raise BackendError(f"no token {token_id}", 404)
            if status in (REVOKED, LOST, PENDING):
                raise BackendError(f"token {token_id} is {status}; only a locked token unlocks", 409)
            conn.execute(update(_t).where(_t.c.id == token_id, _t.c.status.in_((LOCKED, ACTIVE)))
                         .values(status=ACTIVE, failures=0, guess_tat=None, guess_hash=None))
            audit.append(conn, self.now(), actor, "TOKEN_UNLOCK", token_id, {"was": status})
        return self.token_info(token_id)

    def lock(self, token_id: int, actor: str) -> dict:
        """Lock a token by hand: it pays nothing until an admin unlocks it (``unlock``).
        Locking a locked token again is a no-op; a revoked or lost one is final (409)."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            status = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
            if status is None or status == PENDING:
                raise BackendError(f"no token {token_id}", 404)
            if status in (REVOKED, LOST):
                raise BackendError(f"token {token_id} is {status}; that is final", 409)
            res = conn.execute(update(_t).where(_t.c.id == token_id, _t.c.status == ACTIVE).values(status=LOCKED))
            if res.rowcount == 1:
                audit.append(conn, self.now(), actor, "TOKEN_LOCK", token_id, {})
        return self.token_info(token_id)

    def _sync_key(self, conn: Connection, token_id: int) -> bytes:
        row = conn.execute(select(_t.c.status, _t.c.sync_key_enc).where(_t.c.id == token_id)).first()
        if row is None or row.status == PENDING:
            raise BackendError(f"no token {token_id}", 404)
        if row.status in (REVOKED, LOST):
            raise BackendError(f"token {token_id} is {row.status}", 409)
        return self._ring().open(row.sync_key_enc, f"token:{token_id}:sync")

    def clock_sync(self, token_id: int, nonce: str, actor: str) -> dict:
        """The UTC time and ``sync_mac(sync_key, 'SETTIME', nonce, utc)`` for the token."""
        _check_token_id(token_id)
        _check_nonce(nonce)
        with self.engine.begin() as conn:
            key = self._sync_key(conn, token_id)
            utc = self.now()
            mac = paycode.sync_mac(key, "SETTIME", nonce, utc)
            audit.append(conn, utc, actor, "CLOCK_SYNC", token_id, {"utc": utc})
        return {"token_id": token_id, "utc": utc, "mac": mac}

    def expected_codes(self, token_id: int, times: list[int], actor: str = "station") -> list[str]:
        """The codes an active token must show at ``times`` (UTC seconds), computed here
        with its sealed secret, which never leaves this call: the service desk's oracle
        for cross-verifying a token. Changes no state; audited."""
        _check_token_id(token_id)
        if not times or len(times) > 10000:
            raise BackendError("give 1 to 10000 times", 422)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.prefix, _t.c.secret_enc)
                               .where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING or row.secret_enc is None:
                raise BackendError(f"no token {token_id}", 404)
            key = self._scheme_key(conn, row.prefix)
            if key is None:
                raise BackendError(f"no scheme key for prefix {row.prefix}", 422)
            fmt = conn.execute(select(_s.c.format).where(_s.c.prefix == row.prefix)).scalar()
            secret = self._ring().open(row.secret_enc, f"token:{token_id}:secret")
            audit.append(conn, self.now(), actor, "CODES_EXPECTED", token_id, {"count": len(times)})
        return [paycode.payment_code(secret, token_id, int(t), key, row.prefix, fmt) for t in times]

    def record_clock_offset(self, token_id: int, offset_s: int, actor: str) -> dict:
        """After a service-desk SETTIME: the token read ``offset_s`` seconds ahead of UTC
        before it; its clock is right now, so the learned drift restarts at 0."""
        _check_token_id(token_id)
        if type(offset_s) is not int or abs(offset_s) > 10 * 365 * 86400:
            raise BackendError("offset_s must be an integer number of seconds within 10 years", 422)
        with self.engine.begin() as conn:
            row = conn.execute(select(*(_t.c[c] for c in _TOK_COLS)).where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", 404)
            d = self._drift(_TokRow._make(row)).jump(self.now(), 0.0)  # the crystal's rate stays
            conn.execute(update(_t).where(_t.c.id == token_id).values(
                drift=0, drift_s=0, pending_drift=None, pending_step=None, drift_at=d.at, drift_off=0.0,
                drift_ppm=d.ppm, drift_p00=d.p00, drift_p01=d.p01, drift_p11=d.p11))
            audit.append(conn, self.now(), actor, "CLOCK_OFFSET", token_id,
                         {"offset_s": offset_s, "drift_s_before": row.drift_s})
        return self.token_info(token_id)

    def unlock_auth(self, token_id: int, nonce: str, actor: str) -> dict:
        """``sync_mac(sync_key, 'UNLOCK', nonce, token_id)``: authorizes a firmware update."""
        _check_token_id(token_id)
        _check_nonce(nonce)
        with self.engine.begin() as conn:
            key = self._sync_key(conn, token_id)
            mac = paycode.sync_mac(key, "UNLOCK", nonce, token_id)
            audit.append(conn, self.now(), actor, "UNLOCK_AUTH", token_id, {})
        return {"token_id": token_id, "mac": mac}

    # ---- accounts, merchants, admins -----------------------------------------------------

    def credit(self, token_id: int, amount: int, actor: str = "cli", reason: str = "credit") -> int:
        """Add ``amount`` minor units to the token's account; returns the new balance.
        Recorded with its reason in the account's history (``operators.adjust``)."""
        _check_token_id(token_id)
        _check_amount(amount)
        return operators.adjust(self, token_id, amount, reason, actor)["balance"]

    def add_merchant(self, name: str, actor: str = "cli") -> tuple[int, str]:
        """Create a merchant; returns (id, api key). Only the key's hash is stored."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise BackendError("merchant name must be 1 to 100 printable characters", 422)
        key = new_api_key("live")
        try:
            with self.engine.begin() as conn:
                mid = conn.execute(_m.insert().values(name=name, api_key_hash=hash_api_key(key),
                                                      created_at=self.now()).returning(_m.c.id)).scalar()
                audit.append(conn, self.now(), actor, "MERCHANT_ADD", None, {"merchant_id": mid})
        except IntegrityError:
            raise BackendError(f"merchant {name!r} already exists", 409) from None
        return mid, key

    def add_admin(self, name: str, actor: str = "cli") -> str:
        """Create an admin credential; returns the bearer key (shown once)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise BackendError("admin name must be 1 to 100 printable characters", 422)
        key = new_api_key("admin")
        try:
            with self.engine.begin() as conn:
                conn.execute(_ad.insert().values(name=name, key_hash=hash_api_key(key), created_at=self.now()))
                audit.append(conn, self.now(), actor, "ADMIN_ADD", None, {"name": name})
        except IntegrityError:
            raise BackendError(f"admin {name!r} already exists", 409) from None
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
        wait (HTTP 429, Retry-After). A full budget is remembered here until it opens, so a
        flood of bad keys costs no further writes."""
        b, now, key = self.bad_keys_budget, self.now(), "ip:" + client[:100]
        with self.engine.begin() as conn:
            ok = conn.execute(text(_CHARGE), {"k": key, "first": now + b.interval_s, "now": now,
                                              "iv": b.interval_s, "open_by": b.open_by(now)}).first()
            if ok is not None:
                self._bad_keys += 1
                if self._bad_keys % 1000 == 0:  # forget buckets that have long emptied
                    conn.execute(_th.delete().where(_th.c.tat < now - 86_400))
                return 0
            tat = conn.execute(text(_TAT), {"k": key}).scalar()
        wait = b.retry_after(tat, now)
        if len(self._blocked) >= 10_000:
            self._blocked.clear()
        self._blocked[client] = now + wait
        return wait

    def auth_admin(self, key: str) -> str | None:
        with self.engine.begin() as conn:
            return conn.execute(select(_ad.c.name).where(_ad.c.key_hash == hash_api_key(key))).scalar()

    # ---- the hot path: driver-level transactions -------------------------------------
    #
    # verify and pay run on the DBAPI connection itself with fixed SQL (no ORM, no SQL
    # compilation per call): a successful payment is one SELECT (token, account, the
    # order id's stored payment, today's spending), the conditional token UPDATE, the
    # debit and the payment INSERT.
    #
    # SQLite has one writer and each commit waits for an fsync (synchronous=FULL), so
    # there the work goes through a group commit (``_GroupCommit``): requests arriving
    # while a commit is under way are run together, each in its own SAVEPOINT (its own
    # all-or-nothing unit), under one COMMIT; no answer leaves before that COMMIT is on
    # disk. Threads queue in Python instead of in SQLite's busy handler, which sleeps
    # 1-100 ms. PostgreSQL runs concurrent transactions and groups commits itself.

    @contextmanager
    def _tx(self) -> Iterator[_Tx]:
        fairy = self._pool.get()
        ok = False
        try:
            cur = fairy.dbapi_connection.cursor()
            tx = _Tx(cur, self._pool.pg)
            if not tx.pg:
                cur.execute("BEGIN IMMEDIATE")
            yield tx
            if not tx.pg or tx.open:
                cur.execute("COMMIT")
            ok = True
        finally:
            if ok:
                self._pool.put(fairy)
            else:  # closing the connection rolls its transaction back
                fairy.close()

    def close(self) -> None:
        """Close the hot path's connections and dispose of the engine."""
        self._pool.close()
        self.engine.dispose()

    def _atomic(self, fn: Callable[[_Tx], object]):
        """Run ``fn(tx)`` as one durable transaction (grouped with others on SQLite)."""
        if self._group is not None:
            return self._group.submit(fn)
        with self._tx() as tx:
            return fn(tx)

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

    def _parse(self, code: str):
        # -> (prefix, token_id, residue, otp, format) or a Verdict. The prefix picks the
        # scheme, and the scheme its key and format (paycode.FORMATS).
        prefix = code.replace(" ", "")[:2]
        keys = {}
        fmt = 1
        if len(prefix) == 2 and prefix.isascii() and prefix.isdigit():
            scheme = self._code_scheme(prefix)
            if scheme is not None:
                keys[prefix], fmt = scheme
        try:  # length, digits, Damm and prefix first; then FF1 (codes.py: paycode's, faster)
            return codes.parse_code(code, keys) + (fmt,)
        except ValueError as exc:
            return Verdict(CODE_INVALID, detail=str(exc))

    def _drift(self, r: _TokRow) -> Drift:
        return verify.drift_of(r, self.policy.rate_sigma_ppm)

    def verify(self, code: str, actor: str = "library") -> Verdict:
        """Check a code and, when good, consume its step (one transaction). No payment."""
        if not isinstance(code, str) or len(code) > 64:
            return Verdict(CODE_INVALID, detail="not a payment code")
        parsed = self._parse(code)
        if isinstance(parsed, Verdict):
            return parsed
        now = self.now()
        if self._fast is not None:
            fast = self._fast.verify(parsed, now)
            if fast is not None:
                return fast

        def work(tx: _Tx) -> Verdict:
            row = tx.one(_SEL_TOKEN, {"id": parsed[1]})
            return self._check(tx, row and _TokRow._make(row), parsed, now, actor, alone=True)

        return self._atomic(work)

    def _check(self, tx: _Tx, r: _TokRow | None, parsed, now: int, actor: str, alone: bool = False,
               merchant_id: int | None = None) -> Verdict:
        """The verification rules on the token's row (``verify.judge`` decides); the writes
        go through ``tx``. ``alone``: the accepting UPDATE is the transaction's only write
        (verify, not pay). With ``merchant_id`` a guess is also charged to that merchant key."""
        prefix, token_id = parsed[0], parsed[1]
        if self.online.is_online(tx, prefix):  # an issuer-made code: looked up, not computed
            return self.online.check(tx, r, parsed[:4], now, actor, merchant_id)
        d = judge(r, parsed, lambda: self._secret(token_id, r.secret_enc), self.policy, now)
        return self._apply(tx, r, d, token_id, now, actor, alone, merchant_id)

    def _apply(self, tx: _Tx, r: _TokRow, d: Decision, token_id: int, now: int, actor: str, alone: bool,
               merchant_id: int | None) -> Verdict:
        """Apply ``judge``'s decision with conditional writes, as one unit in ``tx``."""
        kind, step, off = d.kind, d.step, d.offset
        if kind == verify.NO_TOKEN:
            return Verdict(CODE_INVALID, detail="no such token")
        if kind == verify.REVOKED:
            return Verdict(TOKEN_REVOKED, token_id)
        if kind == verify.LOCKED:
            return self._locked(token_id, r.status, r.guess_tat, now)
        open_by = rules.TOKEN_GUESSES.open_by(now)
        if kind == verify.FUTURE:
            if tx.run(_SUSPECT, {"id": token_id, "open_by": open_by}) != 1:
                return self._recheck(tx, token_id, now)
            audit.append_raw(tx, now, actor, "CLOCK_SUSPECT", token_id,
                             {"offset": off, "known_drift_s": d.predicted})
            return Verdict(CODE_FUTURE, token_id, step, off, detail="for a time far ahead of the token's known clock")
        if kind == verify.REPLAYED:
            audit.append_raw(tx, now, actor, "CODE_REPLAYED", token_id, {"step": step})
            return Verdict(CODE_REPLAYED, token_id, step, off)
        if kind == verify.STALE:
            return Verdict(CODE_EXPIRED, token_id, step, off, detail="a stale code")
        if kind == verify.BEHIND:
            return Verdict(CODE_INVALID, token_id, detail="wrong code behind the window (not counted)")
        if kind == verify.REPEAT_GUESS:
            return Verdict(CODE_INVALID, token_id, detail="the same wrong code again (not counted)")
        if kind == verify.GUESS:
            return self._guess(tx, r, token_id, d.guess, now, actor, merchant_id)
        if d.suspect:  # ACCEPT (a resync) or PENDING_DRIFT, this many steps ahead
            tx.run(_SUSPECT, {"id": token_id, "open_by": open_by})
            audit.append_raw(tx, now, actor, "CLOCK_SUSPECT", token_id,
                             {"offset": off, "known_drift_s": d.predicted})
        if kind == verify.PENDING_DRIFT:
            if tx.run(_PENDING, {"id": token_id, "drift": d.observed, "step": step, "open_by": open_by}) != 1:
                return self._recheck(tx, token_id, now)
            return Verdict(CODE_EXPIRED, token_id, step, off, detail="outside the time window")
        if d.resync:
            audit.append_raw(tx, now, actor, "DRIFT_RESYNC", token_id, {"from_s": d.predicted, "to_s": d.observed})
        new = d.drift
        if tx.run(_ACCEPT, _accept_params(token_id, step, new, now, open_by), alone=alone and not tx.open) != 1:
            # another transaction consumed this step (or changed the status, or filled the budget) first
            return self._recheck(tx, token_id, now, step, off)
        return Verdict(None, token_id, step, off, drift=(new.offset, new.ppm))

    def _locked(self, token_id: int, status: str, tat: int | None, now: int) -> Verdict:
        if status == LOCKED:  # locked by hand (or before migration 0003): until an admin unlocks
            return Verdict(TOKEN_LOCKED, token_id, detail="locked until unlocked")
        return Verdict(TOKEN_LOCKED, token_id, detail="cooling down after wrong codes",
                       retry_after=rules.TOKEN_GUESSES.retry_after(tat, now))

    def _recheck(self, tx: _Tx, token_id: int, now: int, step: int | None = None,
                 off: int | None = None) -> Verdict:
        """Why a conditional write on the token found nothing to change."""
        status, tat = tx.one(_STATUS, {"id": token_id})
        if status in (REVOKED, LOST):
            return Verdict(TOKEN_REVOKED, token_id, step, off)
        if status == LOCKED or not rules.TOKEN_GUESSES.allows(tat, now):
            return self._locked(token_id, status, tat, now)
        return Verdict(CODE_REPLAYED, token_id, step, off)

    def _guess(self, tx: _Tx, r: _TokRow, token_id: int, guess: bytes, now: int, actor: str,
               merchant_id: int | None) -> Verdict:
        """Charge a wrong code for a real token (``guess`` names it: the same one twice in a
        row is not counted) to the budgets of rules.py; offline and online codes alike."""
        gh = verify.guess_hash(guess)
        if gh == r.guess_hash:
            return Verdict(CODE_INVALID, token_id, detail="the same wrong code again (not counted)")
        if merchant_id is not None:
            key = f"mt:{merchant_id}:{token_id}"
            if not self._charge(tx, key, rules.MERCHANT_TOKEN_GUESSES, now):
                tat = tx.one(_TAT, {"k": key})[0]
                return Verdict(THROTTLED, token_id, retry_after=rules.MERCHANT_TOKEN_GUESSES.retry_after(tat, now),
                               detail="too many wrong codes for this token from this merchant key")
        b = rules.TOKEN_GUESSES
        row = tx.write_one(_GUESS, {"id": token_id, "gh": gh, "now": now, "iv": b.interval_s,
                                    "open_by": b.open_by(now)})
        if row is None:  # concurrent guesses filled the budget first
            return self._recheck(tx, token_id, now)
        failures, tat = row
        detail = {"failures": failures}
        if not b.allows(tat, now):
            audit.append_raw(tx, now, actor, "TOKEN_LOCKED", token_id,
                             dict(detail, until=tat - (b.burst - 1) * b.interval_s))
        audit.append_raw(tx, now, actor, "CODE_FAILED", token_id, detail)
        if merchant_id is not None:
            self._charge(tx, f"m:{merchant_id}", rules.MERCHANT_GUESSES, now)
        return Verdict(CODE_INVALID, token_id, detail="wrong code for its token")

    @staticmethod
    def _charge(tx: _Tx, key: str, budget: rules.Budget, now: int) -> bool:
        """One charge to ``key``'s budget; False (and nothing changed) when it is full."""
        return tx.write_one(_CHARGE, {"k": key, "first": now + budget.interval_s, "now": now,
                                      "iv": budget.interval_s, "open_by": budget.open_by(now)}) is not None

    # ---- payments ----------------------------------------------------------------------

    def pay(self, merchant_id: int, code: str, amount: int, currency: str, merchant_order_id: str) -> dict:
        """Authorize and debit atomically, or refuse with a reason. Idempotent per order id.

        Raises BackendError (422) for a malformed request, which writes nothing, (409) when
        the order id was already used for a different request, and (429, ``retry_after``)
        when this merchant key sent too many wrong codes (rules.py): nothing checked or
        stored. A ``TOKEN_LOCKED`` refusal of a token cooling down is not stored either
        and carries ``retry_after`` (seconds until the lock clears by itself).
        """
        if not isinstance(code, str) or not 1 <= len(code) <= 64:
            raise BackendError("code must be a string of the 18 code digits", 422)
        _check_amount(amount)
        _check_currency(currency)
        if not isinstance(merchant_order_id, str) or not _ORDER_ID.match(merchant_order_id):
            raise BackendError("merchant_order_id must be 1 to 64 of A-Z a-z 0-9 . _ : / -", 422)
        code = code.replace(" ", "")
        req = hashlib.sha256(f"{code}|{amount}|{currency}".encode()).hexdigest()
        parsed = self._parse(code)
        for _ in range(5):
            try:
                out = None
                if self._fast is not None and not isinstance(parsed, Verdict):
                    out = self._fast.pay(merchant_id, parsed, amount, currency, merchant_order_id, req)
                if out is None:
                    out = self._atomic(lambda tx: self._pay_tx(tx, merchant_id, parsed, amount, currency,
                                                               merchant_order_id, req))
                if isinstance(out, Verdict):  # THROTTLED: nothing was written
                    raise BackendError(f"{out.detail}; retry after {out.retry_after} s", 429,
                                       retry_after=out.retry_after)
                return out
            except self._integrity_errors:
                # A concurrent request with the same order id committed first: answer with its result.
                stored = self._atomic(lambda tx: self._stored(tx, merchant_id, merchant_order_id, req))
                if stored is not None:
                    return stored
        raise BackendError("payment could not be recorded; retry with the same order id", 503)

    def _stored(self, tx: _Tx, merchant_id: int, order_id: str, req: str) -> dict | None:
        row = tx.one(_SEL_PAYMENT, {"m": merchant_id, "o": order_id})
        if row is None:
            return None
        p = _PayRow._make(row)
        if p.request_hash != req:
            raise BackendError("merchant_order_id was already used for a different request", 409)
        return self._result(p)

    @staticmethod
    def _result(row) -> dict:
        ok = row.status == "succeeded"
        return {"payment_id": row.id, "status": row.status, "reason": row.reason,
                "token_id": row.token_id if ok else None, "amount": row.amount, "currency": row.currency}

    def _pay_tx(self, tx: _Tx, merchant_id: int, parsed, amount: int, currency: str,
                order_id: str, req: str) -> dict:
        now = self.now()
        day = day_of(now)
        row = None
        if not isinstance(parsed, Verdict):
            row = tx.one(_SEL_PAY, {"id": parsed[1], "m": merchant_id, "o": order_id,
                                    "km": f"m:{merchant_id}", "kmt": f"mt:{merchant_id}:{parsed[1]}"})
        if row is None:  # no such token: only the order id can have a stored answer
            stored = self._stored(tx, merchant_id, order_id, req)
            if stored is not None:
                return stored
            v = parsed if isinstance(parsed, Verdict) else Verdict(CODE_INVALID, detail="no such token")
            log.info("payment refused %s merchant=%s order=%s: %s", v.reason, merchant_id, order_id, v.detail)
            return {"payment_id": None, "status": "refused", "reason": v.reason, "token_id": None,
                    "amount": amount, "currency": currency}
        r = _PayTokRow._make(row)
        if r.stored is not None:
            return self._stored(tx, merchant_id, order_id, req)
        for budget, tat, what in ((rules.MERCHANT_GUESSES, r.m_tat, "too many wrong codes from this merchant key"),
                                  (rules.MERCHANT_TOKEN_GUESSES, r.mt_tat,
                                   "too many wrong codes for this token from this merchant key")):
            if not budget.allows(tat, now):
                return Verdict(THROTTLED, parsed[1], retry_after=budget.retry_after(tat, now), detail=what)
        v = self._check(tx, _TokRow._make(row[:_N_TOK]), parsed, now, f"merchant:{merchant_id}",
                        merchant_id=merchant_id)
        reason = v.reason
        if v.token_id is None or (reason in (THROTTLED, TOKEN_LOCKED) and v.retry_after):
            # The code names no token (stateless, repeatable), or the token is cooling down
            # (nothing checked): nothing to debit or store. THROTTLED becomes a 429.
            log.info("payment refused %s merchant=%s order=%s: %s", reason, merchant_id, order_id, v.detail)
            if reason == THROTTLED:
                return v
            out = {"payment_id": None, "status": "refused", "reason": reason, "token_id": None,
                   "amount": amount, "currency": currency}
            if v.retry_after:
                out["retry_after"] = v.retry_after
            return out
        if reason is None:
            spent = r.spent if r.spent_day == day else 0
            if r.limit_per_payment is not None and amount > r.limit_per_payment:
                reason = LIMIT_EXCEEDED
            elif r.limit_per_day is not None and spent + amount > r.limit_per_day:
                reason = LIMIT_EXCEEDED
            elif r.balance is None or r.currency != currency or r.balance < amount:
                reason = INSUFFICIENT_FUNDS
            elif tx.run(_DEBIT, {"id": v.token_id, "cur": currency, "amount": amount, "day": day,
                                 "lim": _NO_LIMIT if r.limit_per_day is None else r.limit_per_day}) != 1:
                # a concurrent payment of this token changed the account since the SELECT
                bal, cur, sday, sp = tx.one(_ACCOUNT, {"id": v.token_id})
                over = r.limit_per_day is not None and (sp if sday == day else 0) + amount > r.limit_per_day
                reason = LIMIT_EXCEEDED if over else INSUFFICIENT_FUNDS
        pid = "pay_" + secrets.token_hex(12)
        status = "succeeded" if reason is None else "refused"
        drift = v.drift  # the code was accepted (its step consumed) even if the debit was refused
        out = {"id": pid, "m": merchant_id, "o": order_id, "req": req, "token_id": v.token_id,
               "amount": amount, "currency": currency, "status": status, "reason": reason, "step": v.step,
               "day": day, "now": now, "drift_off": drift and drift[0], "drift_ppm": drift and drift[1]}
        tx.run(_INSERT_PAYMENT, out)
        log.info("payment %s %s %s merchant=%s token=%s", pid, status, reason or "", merchant_id, v.token_id)
        return self._result(_Row(out))

    def get_payment(self, merchant_id: int, payment_id: str) -> dict:
        """A merchant's own payment, with the refunded total and creation time."""
        with self.engine.begin() as conn:
            row = conn.execute(select(_p).where(_p.c.id == payment_id, _p.c.merchant_id == merchant_id)).first()
        if row is None:
            raise BackendError(f"no payment {payment_id}", 404)
        out = self._result(row)
        out.update(merchant_order_id=row.merchant_order_id, refunded=row.refunded, created_at=row.created_at)
        return out

    def refund(self, merchant_id: int, payment_id: str, amount: int | None = None,
               idempotency_key: str | None = None) -> dict:
        """Refund all (default) or part of a succeeded payment back to the token's account.

        Idempotent like a payment: the same ``idempotency_key`` with the same payment and
        amount gives the stored answer and refunds once; with another payment or amount it
        is a 409. Without a key the request itself is the key: an identical refund (same
        payment, same amount, or again "all that remains") is the same refund, answered
        from the record; a second refund of the same amount needs its own key. Whatever
        runs concurrently, the refunds of a payment never exceed it (a conditional UPDATE).
        """
        if amount is not None:
            _check_amount(amount)
        if idempotency_key is not None and (not isinstance(idempotency_key, str)
                                            or not _IDEM_KEY.match(idempotency_key)):
            raise BackendError("Idempotency-Key must be 1 to 255 visible ASCII characters", 422)
        req = hashlib.sha256(f"{payment_id}|{'rest' if amount is None else amount}".encode()).hexdigest()
        idem = f"key:{idempotency_key}" if idempotency_key is not None else f"body:{req}"
        for _ in range(5):
            try:
                return self._refund_tx(merchant_id, payment_id, amount, idem, req)
            except IntegrityError:
                pass  # a concurrent refund with this key committed first: its answer follows
            stored = self._stored_refund(merchant_id, idem, req)
            if stored is not None:
                return stored
        raise BackendError("refund could not be recorded; retry with the same Idempotency-Key", 503)

    def _stored_refund(self, merchant_id: int, idem: str, req: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_r).where(_r.c.merchant_id == merchant_id, _r.c.idem == idem)).first()
        if row is None:
            return None
        if row.request_hash != req:
            raise BackendError("Idempotency-Key was already used for a different refund", 409)
        return {"refund_id": row.id, "payment_id": row.payment_id, "amount": row.amount,
                "refunded": row.refunded_after}

    def _refund_tx(self, merchant_id: int, payment_id: str, amount: int | None, idem: str, req: str) -> dict:
        def stored_answer(conn) -> dict | None:
            stored = conn.execute(select(_r).where(_r.c.merchant_id == merchant_id, _r.c.idem == idem)).first()
            if stored is None:
                return None
            if stored.request_hash != req:
                raise BackendError("Idempotency-Key was already used for a different refund", 409)
            return {"refund_id": stored.id, "payment_id": stored.payment_id, "amount": stored.amount,
                    "refunded": stored.refunded_after}

        with self.engine.begin() as conn:
            out = stored_answer(conn)
            if out is not None:
                return out
            # The payment's row lock orders the refunds of a payment (PostgreSQL; on SQLite
            # BEGIN IMMEDIATE orders everything). A twin with the same key waits here, then
            # finds this one's record.
            row = conn.execute(select(_p).where(_p.c.id == payment_id, _p.c.merchant_id == merchant_id)
                               .with_for_update()).first()
            if row is None:
                raise BackendError(f"no payment {payment_id}", 404)
            out = stored_answer(conn)
            if out is not None:
                return out
            if row.status != "succeeded":
                raise BackendError("only a succeeded payment can be refunded", 409)
            rid = "ref_" + secrets.token_hex(12)
            now = self.now()
            remaining = row.amount - row.refunded
            if amount is None:
                amount = remaining
            if amount < 1 or amount > remaining:
                raise BackendError("refund exceeds what remains of the payment", 409)
            refunded = conn.execute(update(_p).where(_p.c.id == payment_id, _p.c.refunded + amount <= _p.c.amount)
                                    .values(refunded=_p.c.refunded + amount).returning(_p.c.refunded)).scalar()
            if refunded is None:  # cannot happen under the row lock; fail closed all the same
                raise BackendError("refund exceeds what remains of the payment", 409)
            conn.execute(_r.insert().values(id=rid, payment_id=payment_id, amount=amount, created_at=now,
                                            merchant_id=merchant_id, idem=idem, request_hash=req,
                                            refunded_after=refunded))
            conn.execute(update(_a).where(_a.c.token_id == row.token_id).values(balance=_a.c.balance + amount))
            audit.append(conn, now, f"merchant:{merchant_id}", "REFUND", row.token_id,
                         {"payment_id": payment_id, "refund_id": rid, "amount": amount})
        return {"refund_id": rid, "payment_id": payment_id, "amount": amount, "refunded": refunded}

    # ---- keys and audit ----------------------------------------------------------------

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

    def verify_audit(self) -> audit.ChainReport:
        with self.engine.begin() as conn:
            return audit.verify_chain(conn)

    # ---- the online factory (backend/factory_api.py) ------------------------------------

    def station_scheme_key(self, prefix: str, actor: str) -> bytes:
        """The scheme key of ``prefix`` for a provisioning station over the admin API; audited."""
        with self.engine.begin() as conn:
            key = self._scheme_key(conn, prefix)
            if key is None:
                raise BackendError(f"no scheme key for prefix {prefix}: run `paytoken scheme add`", 404)
            online.require_offline(conn, prefix)  # an online scheme's key never leaves the issuer
            audit.append(conn, self.now(), actor, "SCHEME_KEY_READ", None, {"prefix": prefix})
        return key

    def activation_matches(self, token_id: int, secret: bytes, sync_key: bytes) -> bool:
        """True when token ``token_id`` was activated with exactly this secret and sync key
        (an activation's retry); compared in constant time."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.secret_enc, _t.c.sync_key_enc)
                               .where(_t.c.id == token_id)).first()
        if row is None or row.status == PENDING or row.secret_enc is None or row.sync_key_enc is None:
            return False
        ring = self._ring()
        same_secret = hmac.compare_digest(ring.open(row.secret_enc, f"token:{token_id}:secret"), secret)
        same_sync = hmac.compare_digest(ring.open(row.sync_key_enc, f"token:{token_id}:sync"), sync_key)
        return same_secret and same_sync

    # ---- a token's move to another scheme (a new format) at the service desk ----------------

    def move_token(self, token_id: int, prefix: str, actor: str) -> dict:
        """Step 1 of a move: the token's scheme becomes ``prefix`` and the one it leaves
        stays accepted (``prev_prefix``) until ``finish_move``; so whichever config the
        token holds while the desk rewrites it, its codes pay. Returns ``{token_id,
        prefix, format, prev_prefix, scheme_key}`` (the key for the token's config).
        Repeating a started move is a no-op; a token already moving elsewhere is 409."""
        _check_token_id(token_id)
        try:
            paycode.check_prefix(prefix)
        except ValueError as exc:
            raise BackendError(str(exc), 422) from None
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.prefix, _t.c.prev_prefix)
                               .where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", 404)
            if row.status in (REVOKED, LOST):
                raise BackendError(f"token {token_id} is {row.status}", 409)
            sch = conn.execute(select(_s.c.format, _s.c.closed_at).where(_s.c.prefix == prefix)).first()
            key = self._scheme_key(conn, prefix)
            if sch is None or key is None:
                raise BackendError(f"no scheme key for prefix {prefix}: run `paytoken scheme add`", 404)
            if sch.closed_at is not None:
                raise BackendError(f"scheme {prefix} is closed: its codes are refused", 409)
            operators.require_open_scheme(conn, prefix)
            prev = row.prev_prefix
            if row.prefix != prefix:
                if prev is not None:
                    raise BackendError(f"token {token_id} is still moving from {prev} to {row.prefix}: "
                                       f"finish that move first (update --prefix {row.prefix})", 409)
                prev = row.prefix
                conn.execute(update(_t).where(_t.c.id == token_id).values(prefix=prefix, prev_prefix=prev))
                audit.append(conn, self.now(), actor, "TOKEN_MOVE", token_id,
                             {"from": prev, "to": prefix, "format": sch.format})
        return {"token_id": token_id, "prefix": prefix, "format": sch.format, "prev_prefix": prev,
                "scheme_key": key}

    def finish_move(self, token_id: int, prefix: str, actor: str) -> dict:
        """Step 2 of a move, once the token was seen computing ``prefix``'s codes: the scheme
        it left is no longer accepted for it. ``{token_id, prefix, finished}``; finished is
        False when there was nothing to finish."""
        _check_token_id(token_id)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.prefix, _t.c.prev_prefix)
                               .where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", 404)
            if row.prefix != prefix:
                raise BackendError(f"token {token_id} is on scheme {row.prefix}, not {prefix}", 409)
            if row.prev_prefix is None:
                return {"token_id": token_id, "prefix": prefix, "finished": False}
            conn.execute(update(_t).where(_t.c.id == token_id).values(prev_prefix=None))
            audit.append(conn, self.now(), actor, "TOKEN_MOVED", token_id,
                         {"from": row.prev_prefix, "to": prefix})
        return {"token_id": token_id, "prefix": prefix, "finished": True}

    def cross_check(self, token_id: int, times: list[int], codes: list[str], actor: str) -> list[int]:
        """The times at which ``codes`` (a token's, in order) differ from the issuer's for
        its sealed secret: the desk's cross-verification without handing out a code."""
        if len(codes) != len(times) or not all(isinstance(c, str) for c in codes):
            raise BackendError("give one code (a string) per time", 422)
        if not all(type(t) is int and 0 <= t < 2**40 for t in times):
            raise BackendError("times are UTC seconds (non-negative integers)", 422)
        want = self.expected_codes(token_id, times, actor)
        return [t for t, got, exp in zip(times, codes, want, strict=True)
                if not hmac.compare_digest(got.encode(), exp.encode())]

    # ---- online codes and the wallet (backend/online.py; docs/WALLET.md) --------------------

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


class _Row:
    """Attribute access over a dict, so a new payment renders like a stored one."""

    def __init__(self, d: dict) -> None:
        self.__dict__.update(d)
