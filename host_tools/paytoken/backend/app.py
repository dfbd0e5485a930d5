"""The payments HTTP API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Merchants, admins and wallets (online codes, backend/online_api.py) authenticate with
``Authorization: Bearer <key>``; the three kinds of key are separate. A malformed request gets a 4xx JSON error and writes nothing.

Usage::

    uvicorn --factory paytoken.backend.app:create_app_from_env   # env PAYTOKEN_DB, PAYTOKEN_MASTER_KEY
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

import gc
import logging
import os
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from paytoken import web
from paytoken.backend import (
    THROTTLED,
    UNAUTHORIZED,
    BackendError,
    factory_api,
    online_api,
    operators_api,
    rules,
)
from paytoken.backend.api.errors import backend_error_response, error_name, error_response
from paytoken.backend.apitypes import JsonInt
from paytoken.backend.crypto import Keyring
from paytoken.backend.db import DEFAULT_URL
from paytoken.backend.service import Backend
from paytoken.backend.verify import REASONS, Policy

log = logging.getLogger("paytoken.backend.app")
MAX_BODY = 16 * 1024
ENV_DB = "PAYTOKEN_DB"
ENV_WINDOW = "PAYTOKEN_WINDOW"

# A JSON number with no fraction is an integer (apitypes.JsonInt).
StrictInt = JsonInt

# An amount or limit in minor units (its schema spelled out: pydantic loses it inside ``| None``).
Minor = Annotated[StrictInt, Field(ge=1, le=rules.MAX_AMOUNT),
                  WithJsonSchema({"type": "integer", "minimum": 1, "maximum": rules.MAX_AMOUNT})]

TokenId = Annotated[int, Path(ge=0, le=rules.MAX_TOKEN_ID, description="token id, 0 to 99999999")]
PaymentId = Annotated[str, Path(min_length=1, max_length=64, description="payment id (pay_ + 24 hex); "
                                                                         "any other is a 404")]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: StrictStr = Field(min_length=1, max_length=64, description="the 18-digit payment code")
    amount: StrictInt = Field(ge=1, le=rules.MAX_AMOUNT, description="integer minor units, e.g. 1250 = 12.50")
    currency: StrictStr = Field(pattern=rules.schema(rules.CURRENCY_RE), description="ISO 4217, e.g. CNY")
    merchant_order_id: StrictStr = Field(
        pattern=rules.schema(rules.ORDER_ID_RE), description="your order id; a retry with it is idempotent")


class ErrorItem(BaseModel):
    loc: list[str] = Field(description="where: body, path, query or header, then the field")
    msg: str


class ErrorOut(BaseModel):
    """Every error the API answers (4xx and 5xx) has this body."""

    error: str = Field(description="invalid_request, unauthorized, not_found, refused, too_large, "
                                   "throttled, not_allowed or server_error")
    detail: str | list[ErrorItem] = Field(description="what is wrong; a list of fields for invalid_request")


class PaymentOut(BaseModel):
    payment_id: str | None = Field(description="null when the code named no token (nothing stored)")
    status: Literal["succeeded", "refused"]
    reason: str | None = Field(description="null, or one of " + ", ".join(REASONS))
    token_id: int | None
    amount: int
    currency: str


class PaymentDetail(PaymentOut):
    merchant_order_id: str
    refunded: int
    created_at: int


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Minor | None = Field(default=None, description="default: all that remains")


class RefundOut(BaseModel):
    refund_id: str
    payment_id: str
    amount: int
    refunded: int


class NonceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nonce: StrictStr = Field(pattern=rules.schema(rules.NONCE_RE), description="the token's CHALLENGE nonce")


class ClockOffsetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offset_s: StrictInt = Field(ge=-315360000, le=315360000,
                                description="seconds the token's clock ran ahead of UTC before a clock sync")


class TokenSetIn(BaseModel):
    """Fields left out stay as they are; null removes a limit."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    limit_per_payment: Minor | None = Field(default=None, description="minor units")
    limit_per_day: Minor | None = Field(default=None, description="minor units")
    currency: StrictStr = Field(default=None, pattern=rules.schema(rules.CURRENCY_RE),
                                description="ISO 4217; changes only while the balance is 0")


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["revoked", "lost"] = "revoked"


class ClockSyncOut(BaseModel):
    token_id: int
    utc: int
    mac: str


class UnlockAuthOut(BaseModel):
    token_id: int
    mac: str


class TokenOut(BaseModel):
    token_id: int
    status: str
    locked_until: int | None = Field(default=None, description="UTC s when a lock after wrong codes clears")
    prefix: str | None
    moving_from: str | None = Field(default=None, description="the scheme a token moving at the desk "
                                    "leaves: its codes are accepted too until the move finishes")
    drift_steps: int
    drift_seconds: int
    drift_ppm: float | None = Field(default=None, description="learned clock rate, parts per million")
    last_step: int | None
    last_used_at: int | None
    failures: int
    clock_suspect: int
    limit_per_payment: int | None
    limit_per_day: int | None
    balance: int | None
    currency: str | None


def _err(description: str, headers: dict | None = None) -> dict:
    out = {"model": ErrorOut, "description": description}
    if headers:
        out["headers"] = headers
    return out


_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}}
_AUTH = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
R400 = {400: _err("the body could not be read")}
R401 = {401: _err("no valid API key", _AUTH)}
R404 = {404: _err("no such resource (or not yours)")}
R409 = {409: _err("conflicts with what is stored")}
R413 = {413: _err("request body over 16 KiB")}
R422 = {422: _err("a malformed request: nothing was written")}
R429 = {429: _err("too many wrong codes, unknown API keys or code requests: wait Retry-After seconds", _RETRY)}
R503 = {503: _err("no online scheme is set up on this issuer")}


def responses(*parts: dict) -> dict:
    out = {}
    for p in parts:
        out.update(p)
    return out


BODY = responses(R400, R413, R422)
AUTH = responses(R401, R429, R422)


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
    bearer = HTTPBearer(auto_error=False)

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

    # ``async def``: a known key is answered from memory, without a thread-pool hop
    # (Backend.auth_merchant); an unknown one costs one indexed lookup on the loop.
    # A request without a known key is charged to its client address (rules.BAD_KEYS, in the
    # database): past the budget it gets 429 with Retry-After instead of 401. A good key is
    # never throttled here, so a scanner behind a merchant's address does not lock it out.
    async def refuse(request: Request, message: str):
        client = request.client.host if request.client else "-"
        wait = backend.throttled_client(client) or await run_in_threadpool(backend.bad_key, client)
        if wait:
            raise BackendError(f"too many requests without a valid API key; retry after {wait} s", THROTTLED,
                               retry_after=wait)
        raise BackendError(message, UNAUTHORIZED)

    async def merchant(request: Request,
                       cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> int:
        key = cred.credentials if cred else None
        mid = backend.auth_merchant(key) if key and key.isascii() else None
        if mid is None:
            await refuse(request, "a merchant API key is required: Authorization: Bearer <key>")
        return mid

    async def admin(request: Request,
                    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        key = cred.credentials if cred else None
        name = await run_in_threadpool(backend.auth_admin, key) if key and key.isascii() else None
        if name is None:
            await refuse(request, "an admin key is required: Authorization: Bearer <admin key>")
        return "admin:" + name

    Merchant = Annotated[int, Depends(merchant)]
    Admin = Annotated[str, Depends(admin)]

    @app.get("/v1/health", responses=R413)
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/payments", response_model=PaymentOut, responses=responses(AUTH, BODY, R409))
    def create_payment(body: PaymentIn, mid: Merchant, response: Response) -> dict:
        """Authorize and debit atomically, or refuse with a reason. Idempotent per merchant_order_id.
        A TOKEN_LOCKED refusal of a token cooling down carries Retry-After (nothing is stored)."""
        out = backend.pay(mid, body.code, body.amount, body.currency, body.merchant_order_id)
        wait = out.pop("retry_after", None)
        if wait:
            response.headers["Retry-After"] = str(wait)
        return out

    @app.get("/v1/payments/{payment_id}", response_model=PaymentDetail, responses=responses(AUTH, R404, R413))
    def get_payment(payment_id: PaymentId, mid: Merchant) -> dict:
        return backend.get_payment(mid, payment_id)

    @app.post("/v1/payments/{payment_id}/refund", response_model=RefundOut,
              responses=responses(AUTH, BODY, R404, R409))
    def refund(payment_id: PaymentId, mid: Merchant, body: RefundIn | None = None,
               idempotency_key: Annotated[str, Header(
                   alias="Idempotency-Key", pattern=rules.schema(rules.IDEM_KEY_RE),
                   description="the same key and body give the same answer, refunded once; "
                               "another body with it is a 409. Without it the body is the key")] = None) -> dict:
        return backend.refund(mid, payment_id, body.amount if body else None, idempotency_key)

    TOKEN = responses(AUTH, R404, R413)

    @app.get("/v1/tokens/{token_id}", response_model=TokenOut, responses=TOKEN)
    def get_token(token_id: TokenId, _actor: Admin) -> dict:
        return backend.token_info(token_id)

    @app.patch("/v1/tokens/{token_id}", response_model=TokenOut, responses=responses(TOKEN, BODY, R409))
    def set_token(token_id: TokenId, body: TokenSetIn, actor: Admin) -> dict:
        """Change a token's limits and currency (fields left out stay; null removes a limit)."""
        return backend.set_token(token_id, actor, **body.model_dump(exclude_unset=True))

    @app.post("/v1/tokens/{token_id}/revoke", response_model=TokenOut, responses=responses(TOKEN, BODY, R409))
    def revoke(token_id: TokenId, actor: Admin, body: RevokeIn | None = None) -> dict:
        """Final: a revoked (or lost) token never pays again and its status never changes."""
        return backend.set_status(token_id, body.status if body else "revoked", actor)

    @app.post("/v1/tokens/{token_id}/unlock", response_model=TokenOut, responses=responses(TOKEN, R409))
    def unlock(token_id: TokenId, actor: Admin) -> dict:
        return backend.unlock(token_id, actor)

    @app.post("/v1/tokens/{token_id}/clock-sync", response_model=ClockSyncOut,
              responses=responses(TOKEN, BODY, R409))
    def clock_sync(token_id: TokenId, body: NonceIn, actor: Admin) -> dict:
        return backend.clock_sync(token_id, body.nonce, actor)

    @app.post("/v1/tokens/{token_id}/clock-offset", response_model=TokenOut, responses=responses(TOKEN, BODY))
    def clock_offset(token_id: TokenId, body: ClockOffsetIn, actor: Admin) -> dict:
        """Record the offset a service desk observed before SETTIME; the drift restarts at 0."""
        return backend.record_clock_offset(token_id, body.offset_s, actor)

    @app.post("/v1/tokens/{token_id}/unlock-auth", response_model=UnlockAuthOut,
              responses=responses(TOKEN, BODY, R409))
    def unlock_auth(token_id: TokenId, body: NonceIn, actor: Admin) -> dict:
        return backend.unlock_auth(token_id, body.nonce, actor)

    # every route of both declares the statuses any admin route can answer
    app.include_router(factory_api.router(backend, admin), responses=responses(AUTH, BODY, R404, R409))  # the online factory and desk
    app.include_router(operators_api.router(backend, admin), responses=responses(AUTH, BODY, R404, R409))  # /v1/admin: operators
    # the wallet: online codes and its account (Authorization: Bearer <wallet key>)
    app.include_router(online_api.router(backend, refuse, responses(R400, R401, R409, R413, R422, R429, R503)))
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
