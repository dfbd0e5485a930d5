"""The payments HTTP API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Merchants and admins authenticate with ``Authorization: Bearer <key>``; the two kinds
of key are separate. A malformed request gets a 4xx JSON error and writes nothing.

Usage::

    uvicorn --factory paytoken.backend.app:create_app_from_env   # env PAYTOKEN_DB, PAYTOKEN_MASTER_KEY
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

import gc
import logging
import os
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from paytoken.backend import BackendError, factory_api, operators_api
from paytoken.backend.crypto import Keyring
from paytoken.backend.db import DEFAULT_URL
from paytoken.backend.service import MAX_AMOUNT, MAX_TOKEN_ID, Backend
from paytoken.backend.verify import REASONS, Policy

log = logging.getLogger("paytoken.backend.app")
MAX_BODY = 16 * 1024
ENV_DB = "PAYTOKEN_DB"
ENV_WINDOW = "PAYTOKEN_WINDOW"

TokenId = Annotated[int, Path(ge=0, le=MAX_TOKEN_ID, description="token id, 0 to 99999999")]
PaymentId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$", description="payment id, pay_ + 24 hex")]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: StrictStr = Field(min_length=1, max_length=64, description="the 18-digit payment code")
    amount: StrictInt = Field(ge=1, le=MAX_AMOUNT, description="integer minor units, e.g. 1250 = 12.50")
    currency: StrictStr = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. CNY")
    merchant_order_id: StrictStr = Field(
        pattern=r"^[A-Za-z0-9._:/-]{1,64}$", description="your order id; a retry with it is idempotent")


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
    amount: StrictInt | None = Field(default=None, ge=1, le=MAX_AMOUNT, description="default: all that remains")


class RefundOut(BaseModel):
    refund_id: str
    payment_id: str
    amount: int
    refunded: int


class NonceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nonce: StrictStr = Field(pattern=r"^[A-Za-z0-9]{8,64}$", description="the token's CHALLENGE nonce")


class ClockOffsetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offset_s: StrictInt = Field(ge=-315360000, le=315360000,
                                description="seconds the token's clock ran ahead of UTC before a clock sync")


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
    prefix: str | None
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


def _error(status: int, error: str, detail) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


class _BodyLimit:
    """Refuse request bodies over MAX_BODY bytes with 413, before any handler runs."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                return await _error(413, "too_large", f"request body over {MAX_BODY} bytes")(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > MAX_BODY:
                    raise BackendError(f"request body over {MAX_BODY} bytes", 413)
            return msg

        return await self.app(scope, limited, send)


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
        return _error(exc.status, "refused" if exc.status < 500 else "server_error", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError):
        # Say what is wrong and where; never echo the input back.
        detail = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", "invalid")}
                  for e in exc.errors()]
        return _error(422, "invalid_request", detail)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):
        log.error("internal error: %s", exc.__class__.__name__)
        return _error(500, "server_error", "internal error")

    # ``async def``: a known key is answered from memory, without a thread-pool hop
    # (Backend.auth_merchant); an unknown one costs one indexed lookup on the loop.
    async def merchant(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> int:
        mid = backend.auth_merchant(cred.credentials) if cred else None
        if mid is None:
            raise BackendError("a merchant API key is required: Authorization: Bearer <key>", 401)
        return mid

    def admin(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        name = backend.auth_admin(cred.credentials) if cred else None
        if name is None:
            raise BackendError("an admin key is required: Authorization: Bearer <admin key>", 401)
        return "admin:" + name

    Merchant = Annotated[int, Depends(merchant)]
    Admin = Annotated[str, Depends(admin)]

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/payments", response_model=PaymentOut)
    def create_payment(body: PaymentIn, mid: Merchant) -> dict:
        """Authorize and debit atomically, or refuse with a reason. Idempotent per merchant_order_id."""
        return backend.pay(mid, body.code, body.amount, body.currency, body.merchant_order_id)

    @app.get("/v1/payments/{payment_id}", response_model=PaymentDetail)
    def get_payment(payment_id: PaymentId, mid: Merchant) -> dict:
        return backend.get_payment(mid, payment_id)

    @app.post("/v1/payments/{payment_id}/refund", response_model=RefundOut)
    def refund(payment_id: PaymentId, mid: Merchant, body: RefundIn | None = None) -> dict:
        return backend.refund(mid, payment_id, body.amount if body else None)

    @app.get("/v1/tokens/{token_id}", response_model=TokenOut)
    def get_token(token_id: TokenId, _actor: Admin) -> dict:
        return backend.token_info(token_id)

    @app.post("/v1/tokens/{token_id}/revoke", response_model=TokenOut)
    def revoke(token_id: TokenId, actor: Admin, body: RevokeIn | None = None) -> dict:
        return backend.set_status(token_id, body.status if body else "revoked", actor)

    @app.post("/v1/tokens/{token_id}/unlock", response_model=TokenOut)
    def unlock(token_id: TokenId, actor: Admin) -> dict:
        return backend.unlock(token_id, actor)

    @app.post("/v1/tokens/{token_id}/clock-sync", response_model=ClockSyncOut)
    def clock_sync(token_id: TokenId, body: NonceIn, actor: Admin) -> dict:
        return backend.clock_sync(token_id, body.nonce, actor)

    @app.post("/v1/tokens/{token_id}/clock-offset", response_model=TokenOut)
    def clock_offset(token_id: TokenId, body: ClockOffsetIn, actor: Admin) -> dict:
        """Record the offset a service desk observed before SETTIME; the drift restarts at 0."""
        return backend.record_clock_offset(token_id, body.offset_s, actor)

    @app.post("/v1/tokens/{token_id}/unlock-auth", response_model=UnlockAuthOut)
    def unlock_auth(token_id: TokenId, body: NonceIn, actor: Admin) -> dict:
        return backend.unlock_auth(token_id, body.nonce, actor)

    app.include_router(factory_api.router(backend, admin))  # the online factory and desk
    app.include_router(operators_api.router(backend))  # /v1/admin: the operators' calls
    app.add_middleware(_BodyLimit)
    return app


def create_app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory``: database from $PAYTOKEN_DB, master key from the
    environment ($PAYTOKEN_MASTER_KEY or $PAYTOKEN_MASTER_KEY_FILE)."""
    window = int(os.environ.get(ENV_WINDOW, "1"))
    backend = Backend.open(os.environ.get(ENV_DB, DEFAULT_URL), Keyring.load(), policy=Policy(window=window))
    app = create_app(backend)
    # The app, FastAPI, pydantic and SQLAlchemy are ~10^5 long-lived objects: move them out
    # of the collector's reach, so a full collection under load takes ~1 ms, not ~60 ms
    # (a p99 latency spike at a few hundred payments/s).
    gc.collect()
    gc.freeze()
    return app
