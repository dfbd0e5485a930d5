"""The issuer backend: verify payment codes and authorize payments, replay-safe.

Layers, bottom up: ``rules`` (every budget, limit and validator), ``verify`` (the pure
step/drift rules), ``codes`` and ``crypto`` (envelope encryption of secrets); ``store``
(tables, engines and migrations, the hot path's SQL and transactions, the audit log);
``service`` (the domain, one module per concern, behind the ``Backend`` facade); and
``api`` (HTTP: the only layer that turns an error's kind into a status).

Usage::

    from paytoken.backend.service import Backend
    backend = Backend.open("sqlite:///paytoken.db", keyring)
    result = backend.pay(merchant_id, code, 1250, "CNY", "order-1")
"""

from __future__ import annotations

# What went wrong, in the domain's words; only the API (backend/api/errors.py) turns a
# kind into an HTTP status.
INVALID = "invalid"  # a malformed request: nothing was written
NOT_FOUND = "not_found"
CONFLICT = "conflict"  # conflicts with what is stored
UNAUTHORIZED = "unauthorized"
THROTTLED = "throttled"  # a budget is spent: ``retry_after`` seconds
UNAVAILABLE = "unavailable"  # not now, or not set up on this issuer: retry or set it up
SETUP = "setup"  # the operator's configuration is wrong (master key, database URL)
INTERNAL = "internal"  # stored data does not open: never the caller's fault
KINDS = (INVALID, NOT_FOUND, CONFLICT, UNAUTHORIZED, THROTTLED, UNAVAILABLE, SETUP, INTERNAL)


class BackendError(Exception):
    """A refused administrative or request-level operation, of one ``kind`` (KINDS).

    The message is safe to show: it never holds a secret. ``retry_after`` (seconds) goes
    with THROTTLED.
    """

    def __init__(self, message: str, kind: str = SETUP, retry_after: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
