"""The payments HTTP API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``): the app,
its error handlers and body limit, and the routers of ``api/`` (payments, tokens, factory,
operators, wallet), with the pages of ``paytoken.web``.

Merchants, admins and wallets authenticate with ``Authorization: Bearer <key>``
(``api/deps.py``); the three kinds of key are separate. A malformed request gets a 4xx
JSON error and writes nothing. This package is the only place that knows HTTP: the
domain raises ``BackendError`` with a kind, ``api/errors.py`` maps it to a status.

Usage::

    uvicorn --factory paytoken.backend.api.app:create_app_from_env   # env PAYTOKEN_DB, PAYTOKEN_MASTER_KEY
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

import gc
import logging
import os

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from paytoken import web
from paytoken.backend import BackendError, rules
from paytoken.backend.api import factory, operators, payments, tokens, wallet
from paytoken.backend.api.deps import Auth
from paytoken.backend.api.errors import backend_error_response, error_name, error_response
from paytoken.backend.api.schemas import (
    AUTH,
    BODY,
    R400,
    R401,
    R404,
    R409,
    R413,
    R422,
    R429,
    R503,
    responses,
)
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import Backend
from paytoken.backend.store.db import DEFAULT_URL
from paytoken.backend.verify import Policy

log = logging.getLogger("paytoken.backend.api.app")
MAX_BODY = 16 * 1024
ENV_DB = "PAYTOKEN_DB"
ENV_WINDOW = "PAYTOKEN_WINDOW"


class BodyTooLarge(Exception):
    """A body that grew past MAX_BODY while it was read (HTTP 413)."""


class _BodyLimit:
    """Refuse request bodies over MAX_BODY bytes with 413, before any handler runs."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                return await error_response(413, "too_large", f"request body over {MAX_BODY} bytes")(
                    scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > MAX_BODY:
                    raise BodyTooLarge(f"request body over {MAX_BODY} bytes")
            return msg

        return await self.app(scope, limited, send)


def _allowed(app: FastAPI, path: str) -> list[str]:
    methods = set()
    for route in app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods - {"HEAD"})


def create_app(backend: Backend) -> FastAPI:
    """The API over ``backend``."""
    app = FastAPI(
        title="paytoken issuer API",
        version="1",
        description="Authorize payments from offline payment codes. See docs/MERCHANT.md.",
    )
    app.state.backend = backend

    @app.exception_handler(BackendError)
    async def _backend_error(_req: Request, exc: BackendError):
        return backend_error_response(exc)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_req: Request, exc: BodyTooLarge):
        return error_response(413, "too_large", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(req: Request, exc: StarletteHTTPException):
        # Routing (404, 405) and FastAPI's own body errors ("There was an error parsing the body"),
        # in the API's one error shape.
        error = error_name(exc.status_code)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not just the first route's
            headers["Allow"] = ", ".join(_allowed(app, req.url.path))
        return error_response(exc.status_code, error, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError):
        # Say what is wrong and where; never echo the input back.
        detail = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", "invalid")}
                  for e in exc.errors()]
        return error_response(422, "invalid_request", detail)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):
        log.error("internal error: %s", exc.__class__.__name__)
        return error_response(500, "server_error", "internal error")

    auth = Auth(backend)


    @app.get("/v1/health", responses=R413)
    def health() -> dict:
        return {"status": "ok"}

    app.include_router(payments.router(backend, auth))  # the merchants' payments and refunds
    app.include_router(tokens.router(backend, auth))  # /v1/tokens: an admin's tokens
    # every route of both declares the statuses any admin route can answer
    admin_errors = responses(AUTH, BODY, R404, R409)
    app.include_router(factory.router(backend, auth.admin), responses=admin_errors)  # the online factory and desk
    app.include_router(operators.router(backend, auth.admin), responses=admin_errors)  # /v1/admin: operators
    # the wallet: online codes and its account (Authorization: Bearer <wallet key>)
    app.include_router(wallet.router(backend, auth.refuse, responses(R400, R401, R409, R413, R422, R429, R503)))
    web.mount(app, backend)  # the till, the console and the wallet (paytoken.web)
    app.add_middleware(_BodyLimit)
    return app


def create_app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory``: database from $PAYTOKEN_DB, master key from the
    environment ($PAYTOKEN_MASTER_KEY or $PAYTOKEN_MASTER_KEY_FILE)."""
    window = int(os.environ.get(ENV_WINDOW, "1"))
    # $PAYTOKEN_BAD_KEY_BURST: unknown API keys a client address may send at once (default
    # rules.BAD_KEYS.burst), e.g. for a scanner run from one address against a test server.
    burst = int(os.environ.get("PAYTOKEN_BAD_KEY_BURST", str(rules.BAD_KEYS.burst)))
    backend = Backend.open(os.environ.get(ENV_DB, DEFAULT_URL), Keyring.load(), policy=Policy(window=window),
                           bad_keys=rules.Budget(max(1, burst), rules.BAD_KEYS.interval_s))
    # $PAYTOKEN_WALLET_BURST: online-code requests a wallet may send at once (default
    # rules.WALLET_CODES.burst), e.g. for a scanner's many requests against a test server.
    wburst = int(os.environ.get("PAYTOKEN_WALLET_BURST", str(rules.WALLET_CODES.burst)))
    backend.online.wallet_budget = rules.Budget(max(1, wburst), rules.WALLET_CODES.interval_s)
    app = create_app(backend)
    # The app, FastAPI, pydantic and SQLAlchemy are ~10^5 long-lived objects: move them out
    # of the collector's reach, so a full collection under load takes ~1 ms, not ~60 ms
    # (a p99 latency spike at a few hundred payments/s).
    gc.collect()
    gc.freeze()
    return app
