"""The append-only, hash-chained audit log.

Each row's ``hash = sha256(prev_hash | seq | ts | actor | action | token_id | detail)``.
The chain holds security events (failures, lockouts, replays, suspect jumps, drift
resyncs, admin actions, revocations, credits, refunds, key rotation); each successful
or refused payment is recorded in the ``payments`` table instead (see docs/SECURITY.md:
hashing every payment would serialize every payment of every server on one head row).
Appends take the ``audit_head`` row lock (one UPDATE), so concurrent writers chain in
order. ``verify_chain`` recomputes every hash and checks the head, so an edited,
inserted or deleted row (also the last one) is detected.

Usage::

    append(conn, now, "merchant:3", "PAYMENT", token_id=42, detail={"amount": 100})
    report = verify_chain(conn)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from paytoken.backend.store.tables import audit_head as _head
from paytoken.backend.store.tables import audit_log as _log

GENESIS = "0" * 64


def _canon(detail: dict) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def row_hash(prev: str, seq: int, ts: int, actor: str, action: str, token_id, detail: str) -> str:
    """The chain hash of one row."""
    text = "|".join((prev, str(seq), str(ts), actor, action, "" if token_id is None else str(token_id), detail))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append(conn: Connection, ts: int, actor: str, action: str, token_id: int | None = None,
           detail: dict | None = None) -> int:
    """Append one event inside the caller's transaction; returns its seq.

    ``detail`` must never hold secrets or whole codes (callers pass ids, steps, amounts).
    """
    head = conn.execute(
        update(_head).where(_head.c.id == 1).values(seq=_head.c.seq + 1)
        .returning(_head.c.seq, _head.c.hash)
    ).one()
    seq, prev = head.seq, head.hash
    body = _canon(detail or {})
    h = row_hash(prev, seq, ts, actor, action, token_id, body)
    conn.execute(_log.insert().values(seq=seq, ts=ts, actor=actor, action=action,
                                      token_id=token_id, detail=body, prev_hash=prev, hash=h))
    conn.execute(update(_head).where(_head.c.id == 1).values(hash=h))
    return seq


_BUMP = "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash"
_INSERT = ("INSERT INTO audit_log (seq, ts, actor, action, token_id, detail, prev_hash, hash) "
           "VALUES (:seq, :ts, :actor, :action, :token_id, :detail, :prev, :hash)")
_SET_HASH = "UPDATE audit_head SET hash = :hash WHERE id = 1"


def append_raw(tx, ts: int, actor: str, action: str, token_id: int | None = None,
               detail: dict | None = None) -> int:
    """``append`` on the hot path's driver-level transaction (``store.tx.Tx``)."""
    seq, prev = tx.write_one(_BUMP, {})
    body = _canon(detail or {})
    h = row_hash(prev, seq, ts, actor, action, token_id, body)
    tx.run(_INSERT, {"seq": seq, "ts": ts, "actor": actor, "action": action, "token_id": token_id,
                     "detail": body, "prev": prev, "hash": h})
    tx.run(_SET_HASH, {"hash": h})
    return seq


@dataclass
class ChainReport:
    ok: bool
    rows: int
    problems: list[str]


def verify_chain(conn: Connection) -> ChainReport:
    """Recompute the chain. Problems name the first bad seq of each kind."""
    problems: list[str] = []
    prev, expect, n = GENESIS, 1, 0
    for row in conn.execute(select(_log).order_by(_log.c.seq)):
        n += 1
        if row.seq != expect:
            problems.append(f"row {expect} missing (next row is {row.seq})")
        if row.prev_hash != prev:
            problems.append(f"row {row.seq}: prev_hash does not match row before it")
        h = row_hash(row.prev_hash, row.seq, row.ts, row.actor, row.action, row.token_id, row.detail)
        if h != row.hash:
            problems.append(f"row {row.seq}: content does not match its hash (edited)")
        prev, expect = row.hash, row.seq + 1
    head = conn.execute(select(_head.c.seq, _head.c.hash).where(_head.c.id == 1)).one()
    if head.seq != expect - 1 or head.hash != prev:
        problems.append(f"chain ends at row {expect - 1} but the head says {head.seq} (rows deleted at the end?)")
    return ChainReport(ok=not problems, rows=n, problems=problems)
