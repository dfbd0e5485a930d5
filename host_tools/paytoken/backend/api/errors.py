"""Error kinds as HTTP: the one place that maps a ``BackendError``'s kind to a status.

The domain raises ``BackendError(message, kind)``; the API answers ``status_of(exc)`` with
the body ``{"error": ..., "detail": ...}`` (``ErrorOut``), and a throttled error carries
Retry-After. ``kind_of`` reads an HTTP status back as a kind (the station's HTTP client).

Usage::

    return error_response(status_of(exc), error_name(status_of(exc)), str(exc))
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from paytoken.backend import (
    CONFLICT,
    INTERNAL,
    INVALID,
    NOT_FOUND,
    SETUP,
    THROTTLED,
    UNAUTHORIZED,
    UNAVAILABLE,
    BackendError,
)

STATUS = {INVALID: 422, NOT_FOUND: 404, CONFLICT: 409, UNAUTHORIZED: 401, THROTTLED: 429,
          UNAVAILABLE: 503, SETUP: 400, INTERNAL: 500}
NAMES = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 405: "not_allowed",
         413: "too_large", 422: "invalid_request", 429: "throttled"}


def status_of(exc: BackendError) -> int:
    """The HTTP status of a domain error."""
    return STATUS[exc.kind]


def kind_of(status: int) -> str:
    """The kind an HTTP error status names (an issuer's answer read by a client)."""
    if status in (400, 413, 422):
        return INVALID
    if status in (401, 403):
        return UNAUTHORIZED
    return {404: NOT_FOUND, 409: CONFLICT, 429: THROTTLED}.get(status, UNAVAILABLE)


def error_name(status: int) -> str:
    """The ``error`` field of an answer with this status."""
    return NAMES.get(status, "refused" if status < 500 else "server_error")


def error_response(status: int, error: str, detail, headers: dict | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers or None)


def backend_error_response(exc: BackendError) -> JSONResponse:
    status = status_of(exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return error_response(status, error_name(status), str(exc), headers)
