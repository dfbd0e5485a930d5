"""The one-statement payment and verification on PostgreSQL: an optimistic path.

Each server keeps a bounded cache of the token rows it last saw, each with the row's
``version`` (migration 0009: a trigger bumps it on every UPDATE of the row, by anyone).
With a cached row, ``verify.judge`` decides in Python; when it accepts a code inside the
window, ONE statement in autocommit does everything, or nothing:

- the token UPDATE, only ``WHERE version = :seen`` (nothing judged has changed since),
  the step not consumed, the token active and not cooling down, the order id not stored
  yet, and neither merchant guess budget full (rules.py);
- the debit with the limits (per payment, per day with the day's rollover, the balance,
  the currency), from the same snapshot;
- the payment INSERT, ``succeeded`` or ``refused`` with LIMIT_EXCEEDED or
  INSUFFICIENT_FUNDS, computed in SQL.

When the token's condition fails, the statement answers with the row as it is now: a
newer version (another server or thread wrote the token) is judged again and tried once
more; the same version (the order id was already used, a budget is full) or a second
failure sends the caller to the full transaction (``Backend._pay_tx``), which also stays
the path of every other decision. A concurrent INSERT of the same order id aborts the whole statement (the unique
constraint), and the caller answers with the stored payment. A cold cache costs one
SELECT more (two round trips), never a full transaction.

No session state and no explicit transaction: the statements work through PgBouncer in
transaction mode exactly as the rest of the hot path does (the same driver connections).
On SQLite the full transaction runs (one process, group commit: no round trips to save).

Usage::

    fast = FastPath(backend)                # PostgreSQL only
    out = fast.pay(merchant_id, parsed, 1250, "CNY", "order-1", req)   # None: run the full path
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict, namedtuple

from paytoken.backend import rules, verify
from paytoken.backend.service.verification import Verdict
from paytoken.backend.verify import INSUFFICIENT_FUNDS, LIMIT_EXCEEDED, PERIOD, day_of

log = logging.getLogger("paytoken.backend")

_COLS = ("status", "prefix", "prev_prefix", "secret_enc", "drift_s", "last_step", "pending_drift",
         "pending_step", "drift_at", "drift_off", "drift_ppm", "drift_p00", "drift_p01", "drift_p11",
         "last_used_at", "created_at", "guess_tat", "guess_hash", "version")
Row = namedtuple("Row", _COLS)
_SELECT = "SELECT " + ", ".join(_COLS) + " FROM tokens WHERE id = %(id)s"

# The accepting UPDATE: the slow path's _ACCEPT, plus the version the decision was made on.
_SET = ("last_step = %(step)s, drift = %(drift)s, drift_s = %(drift_s)s, drift_at = %(at)s, "
        "drift_off = %(off)s, drift_ppm = %(ppm)s, drift_p00 = %(p00)s, drift_p01 = %(p01)s, "
        "drift_p11 = %(p11)s, failures = 0, pending_drift = NULL, pending_step = NULL, last_used_at = %(now)s")
_WHERE = ("id = %(id)s AND version = %(ver)s AND status = 'active' AND last_step < %(step)s "
          "AND (guess_tat IS NULL OR guess_tat <= %(open_by)s)")
# When the token's condition fails, the statement answers with the row as it is now (as of
# the statement's snapshot), so a server whose copy was stale judges again at once.
_NOW_ROW = (" UNION ALL SELECT NULL, NULL, NULL, " + ", ".join("t." + c for c in _COLS) +
            " FROM tokens t WHERE t.id = %(id)s AND NOT EXISTS (SELECT 1 FROM tok)")
_NULLS = ", ".join(["NULL"] * len(_COLS))
VERIFY_SQL = ("WITH tok AS (UPDATE tokens SET " + _SET + " WHERE " + _WHERE + " RETURNING version) "
              "SELECT tok.version, NULL, NULL, " + _NULLS + " FROM tok" + _NOW_ROW)
PAY_SQL = (
    "WITH tok AS (UPDATE tokens SET " + _SET + " WHERE " + _WHERE + " "
    "AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.merchant_id = %(m)s AND p.merchant_order_id = %(o)s) "
    "AND NOT EXISTS (SELECT 1 FROM throttles h WHERE (h.key = %(km)s AND h.tat > %(km_open)s) "
    "OR (h.key = %(kmt)s AND h.tat > %(kmt_open)s)) "
    "RETURNING id, version, limit_per_payment, limit_per_day), "
    "acc AS (UPDATE accounts a SET balance = a.balance - %(amount)s, "
    "spent = CASE WHEN a.spent_day = %(day)s THEN a.spent + %(amount)s ELSE %(amount)s END, spent_day = %(day)s "
    "FROM tok WHERE a.token_id = tok.id AND a.currency = %(cur)s AND a.balance >= %(amount)s "
    "AND (tok.limit_per_payment IS NULL OR %(amount)s <= tok.limit_per_payment) "
    "AND (tok.limit_per_day IS NULL OR "
    "CASE WHEN a.spent_day = %(day)s THEN a.spent ELSE 0 END + %(amount)s <= tok.limit_per_day) "
    "RETURNING a.token_id), "
    "ins AS (INSERT INTO payments (id, merchant_id, merchant_order_id, request_hash, token_id, amount, currency, "
    "status, reason, step, refunded, day, created_at, drift_off, drift_ppm) "
    "SELECT %(pid)s, %(m)s, %(o)s, %(req)s, tok.id, %(amount)s, %(cur)s, "
    "CASE WHEN EXISTS (SELECT 1 FROM acc) THEN 'succeeded' ELSE 'refused' END, "
    "CASE WHEN EXISTS (SELECT 1 FROM acc) THEN NULL "
    "WHEN tok.limit_per_payment IS NOT NULL AND %(amount)s > tok.limit_per_payment THEN '" + LIMIT_EXCEEDED + "' "
    "WHEN tok.limit_per_day IS NOT NULL AND COALESCE((SELECT CASE WHEN a.spent_day = %(day)s THEN a.spent "
    "ELSE 0 END FROM accounts a WHERE a.token_id = tok.id), 0) + %(amount)s > tok.limit_per_day "
    "THEN '" + LIMIT_EXCEEDED + "' ELSE '" + INSUFFICIENT_FUNDS + "' END, "
    "%(step)s, 0, %(day)s, %(now)s, %(off)s, %(ppm)s FROM tok RETURNING status, reason) "
    "SELECT tok.version, ins.status, ins.reason, " + _NULLS + " FROM tok, ins" + _NOW_ROW)


class FastPath:
    """The optimistic path over ``backend`` (a PostgreSQL ``Backend``): its driver pool,
    clock, policy, keyring and caches. ``size`` rows are cached at most (LRU)."""

    def __init__(self, backend, size: int = 10_000) -> None:
        self.b = backend
        self.size = max(0, int(size))
        self._rows: OrderedDict[int, Row] = OrderedDict()
        self._lock = threading.Lock()

    # ---- the cache ----------------------------------------------------------------------

    def forget(self, token_id: int | None = None) -> None:
        """Drop one cached row (or all): the next request reads it afresh."""
        with self._lock:
            if token_id is None:
                self._rows.clear()
            else:
                self._rows.pop(token_id, None)

    def _keep(self, token_id: int, row: Row) -> None:
        if not self.size:
            return
        with self._lock:
            self._rows[token_id] = row
            self._rows.move_to_end(token_id)
            if len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def _row(self, cur, token_id: int) -> Row | None:
        with self._lock:
            hit = self._rows.get(token_id)
        if hit is not None:
            return hit
        cur.execute(_SELECT, {"id": token_id})
        got = cur.fetchone()
        if got is None:
            return None
        row = Row._make(got)
        self._keep(token_id, row)
        return row

    # ---- the decision ---------------------------------------------------------------------

    def _decide(self, cur, parsed, now: int):
        """(row, decision, statement parameters) when the code is accepted inside the window on the cached row;
        None when the full path must decide (cold online prefix, any other decision)."""
        prefix, token_id = parsed[0], parsed[1]
        if self.b.online._online.get(prefix) is not False:  # online, or not known yet
            return None
        row = self._row(cur, token_id)
        if row is None:
            return None
        d = verify.judge(row, parsed, lambda: self.b._secret(token_id, row.secret_enc), self.b.policy, now)
        if d.kind != verify.ACCEPT or d.resync or d.suspect:
            return None  # replays, guesses, resyncs...: the full transaction (and its audit)
        new = d.drift
        drift_s = round(new.offset)
        params = {"id": token_id, "ver": row.version, "step": d.step, "drift": round(drift_s / PERIOD),
                  "drift_s": drift_s, "at": new.at, "off": new.offset, "ppm": new.ppm, "p00": new.p00,
                  "p01": new.p01, "p11": new.p11, "now": now, "open_by": rules.TOKEN_GUESSES.open_by(now)}
        return row, d, params

    def _accepted(self, token_id: int, row: Row, params: dict, version: int) -> None:
        # the row as this statement left it: the next code of the token is judged on it
        self._keep(token_id, row._replace(
            last_step=params["step"], drift_s=params["drift_s"], drift_at=params["at"], drift_off=params["off"],
            drift_ppm=params["ppm"], drift_p00=params["p00"], drift_p01=params["p01"], drift_p11=params["p11"],
            pending_drift=None, pending_step=None, last_used_at=params["now"], version=version))

    def _stale(self, token_id: int, row: Row, hit) -> bool:
        """After a failed condition: keep the row as the statement found it; True when it
        is newer than the one judged (judge again), False when the full path must decide."""
        if hit is None:  # no such token any more
            self.forget(token_id)
            return False
        now_row = Row._make(hit[3:])
        self._keep(token_id, now_row)
        return now_row.version != row.version

    def _run(self, fn):
        pool = self.b._pool
        fairy = pool.get()
        ok = False
        try:
            out = fn(fairy.dbapi_connection.cursor())
            ok = True
            return out
        finally:
            if ok:
                pool.put(fairy)
            else:
                fairy.close()

    # ---- verification and payment ------------------------------------------------------------

    def verify(self, parsed, now: int):
        """A Verdict for a code accepted in one UPDATE, or None: run the full path."""
        token_id = parsed[1]

        def work(cur):
            for _attempt in range(2):
                got = self._decide(cur, parsed, now)
                if got is None:
                    return None
                row, d, params = got
                cur.execute(VERIFY_SQL, params)
                hit = cur.fetchone()
                if hit is not None and hit[0] is not None:
                    self._accepted(token_id, row, params, hit[0])
                    return Verdict(None, token_id, d.step, d.offset, drift=(d.drift.offset, d.drift.ppm))
                if not self._stale(token_id, row, hit):
                    return None
            self.forget(token_id)
            return None

        return self._run(work)

    def pay(self, merchant_id: int, parsed, amount: int, currency: str, order_id: str, req: str) -> dict | None:
        """The payment's answer from one statement, or None: run the full path."""
        token_id = parsed[1]
        now = self.b.now()
        day = day_of(now)

        def work(cur):
            for _attempt in range(2):
                got = self._decide(cur, parsed, now)
                if got is None:
                    return None
                row, d, params = got
                pid = "pay_" + secrets.token_hex(12)
                params.update(m=merchant_id, o=order_id, req=req, pid=pid, amount=amount, cur=currency, day=day,
                              km=f"m:{merchant_id}", km_open=rules.MERCHANT_GUESSES.open_by(now),
                              kmt=f"mt:{merchant_id}:{token_id}",
                              kmt_open=rules.MERCHANT_TOKEN_GUESSES.open_by(now))
                try:
                    cur.execute(PAY_SQL, params)
                except BaseException:
                    self.forget(token_id)  # e.g. the order id's twin committed first: the caller answers
                    raise
                hit = cur.fetchone()
                if hit is not None and hit[0] is not None:
                    version, status, reason = hit[:3]
                    self._accepted(token_id, row, params, version)
                    log.info("payment %s %s %s merchant=%s token=%s", pid, status, reason or "", merchant_id,
                             token_id)
                    ok = status == "succeeded"
                    return {"payment_id": pid, "status": status, "reason": reason,
                            "token_id": token_id if ok else None, "amount": amount, "currency": currency}
                if not self._stale(token_id, row, hit):
                    return None  # a stored order id or a full budget: the full path says which
            self.forget(token_id)
            return None

        return self._run(work)
