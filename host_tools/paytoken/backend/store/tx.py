"""Driver-level transactions for the hot path: ``Tx`` (one transaction on a DBAPI cursor),
``RawPool`` (the hot path's own driver connections) and ``GroupCommit`` (SQLite's single
writer, one COMMIT for a group of requests).

Usage::

    pool = RawPool(engine)
    group = GroupCommit(tx_factory)      # SQLite only
    result = group.submit(lambda tx: tx.one(sql, params))
"""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache

from sqlalchemy.engine import Engine

_PARAM = re.compile(r":(\w+)")


@lru_cache(maxsize=64)
def _pyformat(sql: str) -> str:
    return _PARAM.sub(r"%(\1)s", sql)


class Tx:
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


class RawPool:
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


class GroupCommit:
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
