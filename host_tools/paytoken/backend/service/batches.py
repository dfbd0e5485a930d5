"""The issuer's side of the offline factory: hand out batches, import PSKC files.

``create_batch`` reserves a free range of token ids as ``pending`` rows and records the
batch; the station provisions without reaching the issuer and writes a PSKC file;
``import_tokens`` activates the tokens of that file in one transaction, all or none.
A token id outside every batch, a batch sealed under another pre-shared key, a token
already active with another secret, or a package that is not this scheme's TOTP is
refused; a package already imported with the same secret is a no-op. A package's
``TimeDrift`` (steps the token runs ahead) starts the token's drift model there.

Usage::

    batch, scheme_key, sync_master = create_batch(backend, "81", 100, psk_id(psk))
    result = import_tokens(backend, pskc.loads(data, psk), psk_id(psk))
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from paycode import PERIOD
from sqlalchemy import func, select, update

from paytoken.backend import CONFLICT, INVALID, UNAVAILABLE, BackendError, rules
from paytoken.backend.service import Backend
from paytoken.backend.store import audit
from paytoken.backend.store.models import ACTIVE, LOCKED, LOST, PENDING, REVOKED
from paytoken.backend.store.tables import batches as _b
from paytoken.backend.store.tables import tokens as _t
from paytoken.backend.verify import Drift
from paytoken.batch import MAX_COUNT, Batch, sync_key
from paytoken.pskc import KeyPackage

TOTP_PERIOD = PERIOD
TOTP_DIGITS = 6
MAX_DRIFT_STEPS = 2880  # a day: more is a broken clock, not a drift


@dataclass
class ImportResult:
    """What an import did: ids activated now, and ids that already were (a re-import)."""

    imported: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)


def create_batch(backend: Backend, prefix: str, count: int, psk_id: str,
                 actor: str = "cli") -> tuple[Batch, bytes, bytes]:
    """Reserve ``count`` consecutive free token ids as pending rows of a new batch.
    Returns the batch header, the prefix's scheme key and the batch's sync master."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise BackendError(f"a batch holds 1 to {MAX_COUNT} tokens", INVALID)
    ring = backend._ring()
    key = backend.scheme_keys().get(prefix)
    if key is None:
        raise BackendError(f"no scheme key for prefix {prefix}: run `paytoken scheme add`", INVALID)
    if backend.scheme_format(prefix) != 1:
        # PSKC carries the TOTP as HOTP-SHA1 (import checks it): offline batches are format 1
        raise BackendError(f"scheme {prefix} is of format {backend.scheme_format(prefix)}: "
                           "offline batches are of format 1", INVALID)
    sync_master = secrets.token_bytes(32)
    for _ in range(20):
        first = secrets.randbelow(rules.MAX_TOKEN_ID - count + 1) + 1
        batch_id = "b" + secrets.token_hex(6)
        now = backend.now()
        with backend.engine.begin() as conn:
            taken = conn.execute(select(func.count()).select_from(_t).where(
                _t.c.id >= first, _t.c.id < first + count)).scalar()
            overlap = conn.execute(select(func.count()).select_from(_b).where(
                _b.c.first_id < first + count, _b.c.first_id + _b.c.count > first)).scalar()
            if taken or overlap:
                continue  # try another range (the transaction writes nothing)
            conn.execute(_b.insert().values(
                id=batch_id, prefix=prefix, first_id=first, count=count, psk_id=psk_id,
                sync_master_enc=ring.seal(sync_master, f"batch:{batch_id}:sync"), created_at=now))
            conn.execute(_t.insert(), [dict(id=i, status=PENDING, drift=0, drift_s=0, last_step=-1,
                                            failures=0, clock_suspect=0, created_at=now)
                                       for i in range(first, first + count)])
            audit.append(conn, now, actor, "BATCH_CREATE", None,
                         {"batch": batch_id, "prefix": prefix, "first_id": first, "count": count,
                          "psk_id": psk_id})
        return Batch(batch_id, prefix, first, count, psk_id, now), key, sync_master
    raise BackendError(f"could not find {count} consecutive free token ids", UNAVAILABLE)


def _token_id(p: KeyPackage, n: int) -> int:
    s = p.serial
    if not (len(s) == 8 and s.isascii() and s.isdigit()):
        raise BackendError(f"key package {n}: serial {s[:20]!r} is not an 8-digit token id", INVALID)
    return int(s)


def _check_package(p: KeyPackage, tid: int) -> None:
    if not p.is_totp or p.interval != TOTP_PERIOD or p.digits != TOTP_DIGITS or p.encoding != "DECIMAL":
        raise BackendError(
            f"token {tid:08d}: this issuer's tokens are TOTP, {TOTP_DIGITS} decimal digits, "
            f"{TOTP_PERIOD} s; the package is {p.algorithm.rpartition(':')[2] or 'unnamed'}, "
            f"{p.digits} {p.encoding or '?'} digits, {p.interval} s", INVALID)
    if len(p.secret) < 16:
        raise BackendError(f"token {tid:08d}: the secret is shorter than 16 bytes", INVALID)
    if p.drift is not None and abs(p.drift) > MAX_DRIFT_STEPS:
        raise BackendError(f"token {tid:08d}: a time drift of {p.drift} steps is beyond "
                           f"±{MAX_DRIFT_STEPS}", INVALID)


def import_tokens(backend: Backend, packages: list[KeyPackage], psk_id: str,
                  actor: str = "cli", currency: str = "CNY") -> ImportResult:
    """Activate every token of a PSKC file in one transaction: all of them or none."""
    if not packages:
        raise BackendError("the PSKC file holds no key package", INVALID)
    ids: dict[int, KeyPackage] = {}
    for n, p in enumerate(packages, 1):
        tid = _token_id(p, n)
        if tid in ids:
            raise BackendError(f"token {tid:08d} is in the file twice", INVALID)
        _check_package(p, tid)
        ids[tid] = p
    ring = backend._ring()
    out = ImportResult()
    masters: dict[str, bytes] = {}
    with backend.engine.begin() as conn:
        for tid, p in sorted(ids.items()):
            b = conn.execute(select(_b).where(_b.c.first_id <= tid, _b.c.first_id + _b.c.count > tid)).first()
            if b is None:
                raise BackendError(f"token {tid:08d} is outside every batch this issuer handed out", CONFLICT)
            if b.psk_id != psk_id:
                raise BackendError(f"token {tid:08d} belongs to batch {b.id}, which was handed out "
                                   f"under another pre-shared key ({b.psk_id})", CONFLICT)
            row = conn.execute(select(_t.c.status, _t.c.secret_enc).where(_t.c.id == tid)).first()
            if row is None:
                raise BackendError(f"token {tid:08d} of batch {b.id} is no longer in the database", CONFLICT)
            if row.status in (ACTIVE, LOCKED, REVOKED, LOST):
                have = ring.open(row.secret_enc, f"token:{tid}:secret")
                if not hmac.compare_digest(have, p.secret):
                    raise BackendError(f"token {tid:08d} is already {row.status} with another secret", CONFLICT)
                out.already.append(tid)
                continue
            if row.status != PENDING:
                raise BackendError(f"token {tid:08d} is {row.status}", CONFLICT)
            if b.id not in masters:
                masters[b.id] = ring.open(b.sync_master_enc, f"batch:{b.id}:sync")
            backend._activate(conn, tid, p.secret, sync_key(masters[b.id], tid), b.prefix, currency,
                              None, None, actor)
            if p.drift:  # the file's TimeDrift (steps ahead, as ipa-otptoken-import takes it)
                d = Drift.fresh(backend.now(), float(p.drift * TOTP_PERIOD), None,
                                backend.policy.rate_sigma_ppm)
                conn.execute(update(_t).where(_t.c.id == tid).values(
                    drift=p.drift, drift_s=p.drift * TOTP_PERIOD, drift_at=d.at, drift_off=d.offset))
            out.imported.append(tid)
        if out.imported:
            audit.append(conn, backend.now(), actor, "PSKC_IMPORT", None,
                         {"imported": len(out.imported), "already": len(out.already), "psk_id": psk_id})
    return out
