"""The service layer: every backend operation as one database transaction.

Verification advances a token's last accepted step with a conditional UPDATE
(``... WHERE id = :id AND last_step < :step``) in the same transaction as the debit
and the payment row, so when N processes submit one code at once exactly one wins.
Payments are idempotent on (merchant, merchant_order_id): a retry gets the stored
original result. The clock is injected (``clock=``), UTC seconds.

``Backend`` is the facade: it holds the engine, keyring, policy, clock, caches and the
hot path's connections, and takes its operations from one module per concern:
``keys`` (schemes, secrets, the master key), ``parties`` (merchants, admins, wallets),
``tokens``, ``desk`` (clock sync, unlock, expected codes), ``verification`` and
``payments``; ``online`` (online codes), ``operators`` and ``ledger`` (operators' listings and
actions) and ``batches`` (the offline factory) take the Backend as an argument.

Usage::

    backend = Backend.open("sqlite:///paytoken.db", Keyring.load())
    merchant_id, api_key = backend.add_merchant("corner shop")
    result = backend.pay(merchant_id, "811234...", 1250, "CNY", "order-1")
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from paytoken.backend import rules
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import online
from paytoken.backend.service.desk import Desk
from paytoken.backend.service.fastpay import FastPath
from paytoken.backend.service.keys import Keys
from paytoken.backend.service.parties import Parties
from paytoken.backend.service.payments import Payments
from paytoken.backend.service.tokens import Tokens
from paytoken.backend.service.verification import Verification
from paytoken.backend.store import audit
from paytoken.backend.store.db import make_engine, require_schema
from paytoken.backend.store.tx import GroupCommit, RawPool, Tx
from paytoken.backend.verify import Policy

log = logging.getLogger("paytoken.backend")


class Backend(Keys, Parties, Tokens, Desk, Verification, Payments):
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
        self._pool = RawPool(engine)
        self._group = GroupCommit(self._tx) if self._sqlite else None
        # PostgreSQL: a payment or verification in one statement when this server's copy of
        # the token row is current (service/fastpay.py); else the full transaction
        self._fast = None if self._sqlite else FastPath(self)
        self._integrity_errors = (IntegrityError, engine.dialect.loaded_dbapi.IntegrityError)
        self.online = online.Online(self)  # online codes (backend/service/online.py)

    @classmethod
    def open(cls, url: str, keyring: Keyring | None = None, **kw) -> Backend:
        """Open a migrated database (BackendError if ``paytoken db init`` has not run)."""
        engine = make_engine(url, pool_size=kw.pop("pool_size", 10))
        require_schema(engine)
        return cls(engine, keyring, **kw)

    def now(self) -> int:
        return int(self.clock())

    # ---- the hot path: driver-level transactions -------------------------------------
    #
    # verify and pay run on the DBAPI connection itself with fixed SQL (no ORM, no SQL
    # compilation per call): a successful payment is one SELECT (token, account, the
    # order id's stored payment, today's spending), the conditional token UPDATE, the
    # debit and the payment INSERT.
    #
    # SQLite has one writer and each commit waits for an fsync (synchronous=FULL), so
    # there the work goes through a group commit (``GroupCommit``): requests arriving
    # while a commit is under way are run together, each in its own SAVEPOINT (its own
    # all-or-nothing unit), under one COMMIT; no answer leaves before that COMMIT is on
    # disk. Threads queue in Python instead of in SQLite's busy handler, which sleeps
    # 1-100 ms. PostgreSQL runs concurrent transactions and groups commits itself.

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        fairy = self._pool.get()
        ok = False
        try:
            cur = fairy.dbapi_connection.cursor()
            tx = Tx(cur, self._pool.pg)
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

    def _atomic(self, fn: Callable[[Tx], object]):
        """Run ``fn(tx)`` as one durable transaction (grouped with others on SQLite)."""
        if self._group is not None:
            return self._group.submit(fn)
        with self._tx() as tx:
            return fn(tx)

    def verify_audit(self) -> audit.ChainReport:
        with self.engine.begin() as conn:
            return audit.verify_chain(conn)
