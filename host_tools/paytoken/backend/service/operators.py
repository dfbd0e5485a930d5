"""Operators' queries and actions: merchants, admins, schemes and token listings, and the
times, cursors and pages every listing shares (accounts, payments, refunds and the daily
export are in ``ledger``).

Every function takes the ``Backend`` (its engine and clock) first. The CLI
(``commands/operators.py``) and the admin API (``backend/api/operators.py``) both call
these, so they share one meaning. Each write is one transaction with its audit row;
``actor`` names who asked (``cli``, ``admin:<name>``). Keys are returned only by the calls
that create them. Lists are pages: at most ``limit`` items and the cursor of the next
page (``None`` when nothing more remains). Times are UTC seconds.

Usage::

    page = list_tokens(backend, status="active", limit=100)   # Page(items, next)
    revoke_merchant(backend, "corner shop", "cli")
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, func, or_, select, update

from paytoken.backend import CONFLICT, INVALID, NOT_FOUND, BackendError, rules
from paytoken.backend.crypto import hash_api_key, new_api_key
from paytoken.backend.store import audit
from paytoken.backend.store.models import ACTIVE, LOCKED, STATUSES
from paytoken.backend.store.tables import accounts as _a
from paytoken.backend.store.tables import admins as _ad
from paytoken.backend.store.tables import merchants as _m
from paytoken.backend.store.tables import payments as _p
from paytoken.backend.store.tables import schemes as _s
from paytoken.backend.store.tables import tokens as _t
from paytoken.backend.verify import observed_drift

if TYPE_CHECKING:  # the Backend is passed in; this module never builds one
    from paytoken.backend.service import Backend

MAX_PAGE = 1000
DEFAULT_PAGE = 100
_CURSOR = re.compile(r"\A(\d{1,19}):([A-Za-z0-9_]{1,40})\Z")
_DAY = re.compile(r"\A(\d{4})-(\d{2})-(\d{2})\Z")
_ISO_OFFSET = re.compile(r"([zZ]|[+-]\d{2}:?\d{2})\Z")


@dataclass
class Page:
    """One page of a listing: ``next`` is the cursor to pass as ``after``, or None."""

    items: list[dict]
    next: str | int | None = None


# ---- times, cursors, limits ---------------------------------------------------------------


def utc_seconds(text: str | int, what: str = "time") -> int:
    """UTC seconds from Unix seconds or ISO-8601 with ``Z`` or an offset (never local time)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise BackendError(f"{what}: time before 1970 is not supported", INVALID)
        return text
    s = str(text).strip()
    if re.fullmatch(r"\d{1,12}", s):
        return int(s)
    if not _ISO_OFFSET.search(s):
        raise BackendError(f"{what} {s!r}: give Unix seconds or ISO-8601 with Z or +hh:mm "
                           "(local time is never assumed)", INVALID)
    try:
        when = dt.datetime.fromisoformat(s[:-1] + "+00:00" if s[-1] in "zZ" else s)
    except ValueError:
        raise BackendError(f"{what} {s!r}: not Unix seconds or an ISO-8601 time", INVALID) from None
    if when.tzinfo is None:
        raise BackendError(f"{what} {s!r}: an ISO-8601 time needs a UTC offset (Z or +hh:mm)", INVALID)
    t = int(when.timestamp())
    if t < 0:
        raise BackendError(f"{what}: time before 1970 is not supported", INVALID)
    return t


def iso(t: int | None) -> str | None:
    """UTC seconds as ``YYYY-MM-DDTHH:MM:SSZ``."""
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_range(day: str) -> tuple[int, int]:
    """``YYYY-MM-DD`` (a UTC day) as [start, end) in UTC seconds."""
    m = _DAY.match(day or "")
    if not m:
        raise BackendError(f"day {day!r}: give a UTC date as YYYY-MM-DD", INVALID)
    try:
        d = dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise BackendError(f"day {day!r} is not a calendar date", INVALID) from None
    if d.year < 1970:
        raise BackendError(f"day {day!r}: before 1970 is not supported", INVALID)
    start = int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp())
    return start, start + 86400


def page_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise BackendError(f"limit must be 1 to {MAX_PAGE}", INVALID)
    return limit


def parse_cursor(after: str | None) -> tuple[int, str] | None:
    if after is None:
        return None
    m = _CURSOR.match(after)
    if not m:
        raise BackendError("after must be a cursor from a previous page (seconds:id)", INVALID)
    return int(m[1]), m[2]


def after_cursor(created, ident, cur: tuple[int, str] | None):
    if cur is None:
        return None
    return or_(created > cur[0], and_(created == cur[0], ident > cur[1]))


def check_range(since: int | None, until: int | None) -> None:
    if since is not None and until is not None and until <= since:
        raise BackendError("until must be after since", INVALID)


# ---- merchants --------------------------------------------------------------------------------


def merchant_row(conn: Connection, merchant: str | int):
    """A merchant by name, or by id when given an int or ``#<id>``."""
    if isinstance(merchant, int) and not isinstance(merchant, bool):
        cond = _m.c.id == merchant
    elif isinstance(merchant, str) and re.fullmatch(r"#\d{1,9}", merchant):
        cond = _m.c.id == int(merchant[1:])
    else:
        cond = _m.c.name == merchant
    row = conn.execute(select(_m.c.id, _m.c.name, _m.c.created_at, _m.c.revoked_at).where(cond)).first()
    if row is None:
        raise BackendError(f"no merchant {merchant!r}", NOT_FOUND)
    return row


def _merchant_out(row) -> dict:
    return {"merchant_id": row.id, "name": row.name, "created_at": row.created_at,
            "revoked_at": row.revoked_at, "status": "revoked" if row.revoked_at is not None else "active"}


def add_merchant(backend: Backend, name: str, actor: str) -> dict:
    """Create a merchant: its id, name and API key (the only time the key is shown)."""
    mid, key = backend.add_merchant(name, actor=actor)
    return {"merchant_id": mid, "name": name, "api_key": key}


def list_merchants(backend: Backend, include_revoked: bool = True) -> list[dict]:
    q = select(_m.c.id, _m.c.name, _m.c.created_at, _m.c.revoked_at).order_by(_m.c.id)
    if not include_revoked:
        q = q.where(_m.c.revoked_at.is_(None))
    with backend.engine.connect() as conn:
        return [_merchant_out(r) for r in conn.execute(q)]


def revoke_merchant(backend: Backend, merchant: str | int, actor: str) -> dict:
    """Its key stops working (final). Its payments stay, and can still be refunded here."""
    now = backend.now()
    with backend.engine.begin() as conn:
        row = merchant_row(conn, merchant)
        res = conn.execute(update(_m).where(_m.c.id == row.id, _m.c.revoked_at.is_(None)).values(revoked_at=now))
        if res.rowcount != 1:
            raise BackendError(f"merchant {row.name!r} is already revoked", CONFLICT)
        audit.append(conn, now, actor, "MERCHANT_REVOKE", None, {"merchant_id": row.id})
        row = merchant_row(conn, row.id)
    backend.forget_merchant_keys()
    return _merchant_out(row)


def rotate_merchant_key(backend: Backend, merchant: str | int, actor: str) -> dict:
    """A new API key for the merchant (shown once); the old one stops working."""
    key = new_api_key("live")
    now = backend.now()
    with backend.engine.begin() as conn:
        row = merchant_row(conn, merchant)
        res = conn.execute(update(_m).where(_m.c.id == row.id, _m.c.revoked_at.is_(None))
                           .values(api_key_hash=hash_api_key(key)))
        if res.rowcount != 1:
            raise BackendError(f"merchant {row.name!r} is revoked; its key cannot be rotated", CONFLICT)
        audit.append(conn, now, actor, "MERCHANT_KEY_ROTATE", None, {"merchant_id": row.id})
    backend.forget_merchant_keys()
    return {"merchant_id": row.id, "name": row.name, "api_key": key}


# ---- admins -------------------------------------------------------------------------------------


def add_admin(backend: Backend, name: str, actor: str) -> dict:
    key = backend.add_admin(name, actor=actor)
    return {"name": name, "admin_key": key}


def list_admins(backend: Backend) -> list[dict]:
    with backend.engine.connect() as conn:
        rows = conn.execute(select(_ad.c.id, _ad.c.name, _ad.c.created_at).order_by(_ad.c.id)).all()
    return [{"admin_id": r.id, "name": r.name, "created_at": r.created_at} for r in rows]


def remove_admin(backend: Backend, name: str, actor: str) -> dict:
    """Remove an admin credential; never the last one (the rows are locked while counting,
    so two removals at once cannot leave none)."""
    now = backend.now()
    with backend.engine.begin() as conn:
        rows = conn.execute(select(_ad.c.id, _ad.c.name).order_by(_ad.c.id).with_for_update()).all()
        target = [r for r in rows if r.name == name]
        if not target:
            raise BackendError(f"no admin {name!r}", NOT_FOUND)
        if len(rows) <= 1:
            raise BackendError(f"{name!r} is the last admin; add another before removing it", CONFLICT)
        conn.execute(_ad.delete().where(_ad.c.id == target[0].id))
        audit.append(conn, now, actor, "ADMIN_REMOVE", None, {"name": name})
    return {"name": name, "removed": True, "admins_left": len(rows) - 1}


# ---- schemes ------------------------------------------------------------------------------------


def add_scheme(backend: Backend, prefix: str, key: bytes | None, actor: str, fmt: int = 1) -> bytes:
    """Store a scheme key (generated when None) for codes of format ``fmt``; returns it
    for the caller to show or not."""
    return backend.add_scheme(prefix, key, actor=actor, fmt=fmt)


def list_schemes(backend: Backend) -> list[dict]:
    """Prefixes with their state and token counts by status; never a key."""
    with backend.engine.connect() as conn:
        rows = conn.execute(select(_s.c.prefix, _s.c.format, _s.c.created_at, _s.c.retired_at, _s.c.closed_at)
                            .order_by(_s.c.prefix)).all()
        counts: dict[str, dict[str, int]] = {}
        for prefix, status, n in conn.execute(
                select(_t.c.prefix, _t.c.status, func.count()).where(_t.c.prefix.is_not(None))
                .group_by(_t.c.prefix, _t.c.status)):
            counts.setdefault(prefix, {})[status] = n
    return [{"prefix": r.prefix, "format": r.format, "created_at": r.created_at, "retired_at": r.retired_at,
             "closed_at": r.closed_at,
             "status": "closed" if r.closed_at is not None else "retired" if r.retired_at is not None else "active",
             "tokens": {s: counts.get(r.prefix, {}).get(s, 0) for s in STATUSES}} for r in rows]


def retire_scheme(backend: Backend, prefix: str, actor: str, close: bool = False) -> dict:
    """No new token is activated under a retired prefix; its tokens keep paying until
    they are moved to another scheme at the desk (``update --prefix``) or replaced.

    ``close``: the last stage, once no token uses the scheme: its codes are refused as
    "unknown prefix" (a server sees it within ``SCHEME_CACHE_S``). Refused (conflict) while an
    active or locked token is on it or still moving away from it."""
    now = backend.now()
    with backend.engine.begin() as conn:
        row = conn.execute(select(_s.c.prefix, _s.c.retired_at, _s.c.closed_at).where(_s.c.prefix == prefix)).first()
        if row is None:
            raise BackendError(f"no scheme {prefix!r}", NOT_FOUND)
        if row.closed_at is not None:
            raise BackendError(f"scheme {prefix} is already closed", CONFLICT)
        if row.retired_at is not None and not close:
            raise BackendError(f"scheme {prefix} is already retired", CONFLICT)
        if close:
            users = conn.execute(select(func.count()).select_from(_t).where(
                _t.c.status.in_((ACTIVE, LOCKED)), or_(_t.c.prefix == prefix, _t.c.prev_prefix == prefix))).scalar()
            if users:
                raise BackendError(f"{users} tokens still use scheme {prefix}: move them "
                                   "(paytoken update --prefix ...) or revoke them first", CONFLICT)
        values = {"closed_at": now} if close else {}
        if row.retired_at is None:
            values["retired_at"] = now
            audit.append(conn, now, actor, "SCHEME_RETIRE", None, {"prefix": prefix})
        if close:
            audit.append(conn, now, actor, "SCHEME_CLOSE", None, {"prefix": prefix})
        conn.execute(update(_s).where(_s.c.prefix == prefix).values(**values))
    backend.forget_schemes()
    return next(s for s in list_schemes(backend) if s["prefix"] == prefix)


def require_open_scheme(conn: Connection, prefix: str) -> None:
    """BackendError (conflict) when ``prefix`` is retired (the activation path calls it)."""
    retired = conn.execute(select(_s.c.retired_at).where(_s.c.prefix == prefix)).scalar()
    if retired is not None:
        raise BackendError(f"scheme {prefix} is retired: activate new tokens under a newer prefix", CONFLICT)


# ---- tokens -------------------------------------------------------------------------------------


def list_tokens(backend: Backend, status: str | None = None, prefix: str | None = None,
                currency: str | None = None, after: int | None = None, limit: int | None = None) -> Page:
    """Tokens by id, filtered; ``next`` is the last id when more remain."""
    n = page_limit(limit)
    if status is not None and status not in STATUSES:
        raise BackendError(f"status must be one of {', '.join(STATUSES)}", INVALID)
    if prefix is not None and not re.fullmatch(r"\d{2}", prefix):
        raise BackendError("prefix must be two digits", INVALID)
    q = select(_t, _a.c.balance, _a.c.currency).outerjoin(_a, _a.c.token_id == _t.c.id)
    if status is not None:
        q = q.where(_t.c.status == status)
    if prefix is not None:
        q = q.where(_t.c.prefix == prefix)
    if currency is not None:
        q = q.where(_a.c.currency == currency)
    if after is not None:
        q = q.where(_t.c.id > rules.check_token_id(after))
    with backend.engine.connect() as conn:
        rows = conn.execute(q.order_by(_t.c.id).limit(n + 1)).all()
    items = [backend._info(r) for r in rows[:n]]
    return Page(items, items[-1]["token_id"] if len(rows) > n else None)


def drift_history(backend: Backend, token_id: int, limit: int | None = None) -> list[dict]:
    """A token's drift over time, oldest first, from its last ``limit`` accepted payments:
    ``at`` (UTC s), ``observed_s`` (the offset the code showed: the middle of its step minus
    the time), ``offset_s`` and ``ppm`` (the learned model after it; None before 0007)."""
    rules.check_token_id(token_id)
    n = page_limit(limit)
    q = (select(_p.c.created_at, _p.c.step, _p.c.drift_off, _p.c.drift_ppm)
         .where(_p.c.token_id == token_id, _p.c.step.is_not(None))
         .order_by(_p.c.created_at.desc(), _p.c.id.desc()).limit(n))
    with backend.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [{"at": r.created_at, "observed_s": observed_drift(r.step, r.created_at), "offset_s": r.drift_off,
             "ppm": r.drift_ppm} for r in reversed(rows)]
