"""The issuer backend: verify payment codes and authorize payments, replay-safe.

Layers, bottom up: ``models`` (tables), ``crypto`` (envelope encryption of secrets),
``db`` (engines and Alembic migrations), ``verify`` (the pure step/drift rules),
``audit`` (the hash-chained log), ``service`` (the transactions) and ``app`` (HTTP).

Usage::

    from paytoken.backend.service import Backend
    backend = Backend.open("sqlite:///paytoken.db", keyring)
    result = backend.pay(merchant_id, code, 1250, "CNY", "order-1")
"""

from __future__ import annotations


class BackendError(Exception):
    """A refused administrative or request-level operation.

    ``status`` is the HTTP status the API maps it to (400, 401, 403, 404, 409, 422, 429).
    The message is safe to show: it never holds a secret. ``retry_after`` (seconds) goes
    with a 429.
    """

    def __init__(self, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
