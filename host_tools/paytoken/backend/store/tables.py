"""The Core tables of ``models``, by the names of the tables: what queries are written on.

Usage::

    from paytoken.backend.store.tables import tokens as _t
    conn.execute(select(_t.c.status).where(_t.c.id == token_id))
"""

from __future__ import annotations

from paytoken.backend.store import models

schemes = models.Scheme.__table__
tokens = models.Token.__table__
accounts = models.Account.__table__
merchants = models.Merchant.__table__
admins = models.Admin.__table__
payments = models.Payment.__table__
refunds = models.Refund.__table__
throttles = models.Throttle.__table__
adjustments = models.Adjustment.__table__
audit_log = models.AuditLog.__table__
audit_head = models.AuditHead.__table__
batches = models.Batch.__table__
wallet_keys = models.WalletKey.__table__
online_codes = models.OnlineCode.__table__
