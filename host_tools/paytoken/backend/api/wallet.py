"""The wallet's HTTP API: online codes and the account (docs/WALLET.md; backend/service/online.py).

A wallet authenticates with its wallet key, ``Authorization: Bearer ptk_wallet_...``, as
merchants and admins do with theirs (the three kinds are separate). A request without a
known key is answered 401 and charged to its client address like a bad merchant key
(rules.BAD_KEYS: past the budget, 429 with Retry-After).

Routes: ``POST /v1/online-codes`` (body optional: ``{"count": 1..15, "ttl": 1..86400}``)
-> ``{"codes": [{"code", "expires_at"}]}``; ``GET /v1/wallet`` -> the balance, limits and
latest payments. The codes are paid through the merchants' ``POST /v1/payments``.
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from paytoken.backend import UNAUTHORIZED, BackendError
from paytoken.backend.api.types import JsonInt as StrictInt
from paytoken.backend.service import Backend, online


class OnlineCodesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: StrictInt = Field(default=1, ge=1, le=online.MAX_COUNT, description="codes to issue, 1 to 15")
    ttl: StrictInt = Field(default=online.DEFAULT_TTL, ge=1, le=online.MAX_TTL,
                           description="seconds each code stays valid: 60 by default; up to a day for "
                                       "a batch the wallet caches to pay without a network")


class OnlineCode(BaseModel):
    code: str = Field(description="18 digits, paid through POST /v1/payments once")
    expires_at: int = Field(description="UTC s: the first second the code is refused")


class OnlineCodesOut(BaseModel):
    codes: list[OnlineCode]


class WalletPayment(BaseModel):
    payment_id: str
    merchant: str
    amount: int
    currency: str
    refunded: int
    created_at: int


class WalletOut(BaseModel):
    token_id: int
    status: str
    balance: int | None
    currency: str | None
    limit_per_payment: int | None
    limit_per_day: int | None
    spent_today: int = Field(description="succeeded payments of this UTC day, minor units")
    payments: list[WalletPayment] = Field(description="the latest succeeded payments, newest first")


def router(backend: Backend, refuse: Callable[[Request, str], Awaitable[None]], responses: dict) -> APIRouter:
    """The wallet routes; ``refuse(request, message)`` answers a request without a known key
    (401, or 429 once its address sent too many); ``responses``: app.py's declared errors
    by status (R401, R409, ...)."""
    r = APIRouter(tags=["wallet"])
    bearer = HTTPBearer(auto_error=False)

    async def wallet(request: Request,
                     cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        key = cred.credentials if cred else None
        tid = await run_in_threadpool(backend.wallet_token, key) if key and key.isascii() else None
        if tid is None:
            await refuse(request, "a wallet key is required: Authorization: Bearer <wallet key>")
        return key

    Wallet = Annotated[str, Depends(wallet)]

    @r.post("/v1/online-codes", response_model=OnlineCodesOut,
            responses={k: responses[k] for k in (400, 401, 409, 413, 422, 429, 503)})
    def online_codes(key: Wallet, response: Response, body: OnlineCodesIn | None = None) -> dict:
        """Fresh single-use payment codes for the wallet's token (the issuer keeps only their
        keyed hashes). 409: the token is revoked or lost; 503: no online scheme is set up."""
        body = body or OnlineCodesIn()
        response.headers["Cache-Control"] = "no-store"
        return {"codes": backend.online_codes(key, body.count, body.ttl)}

    @r.get("/v1/wallet", response_model=WalletOut, responses={k: responses[k] for k in (401, 413, 429)})
    def wallet_summary(key: Wallet) -> dict:
        """The wallet's account: balance, limits, today's spending, the 10 latest payments."""
        tid = backend.wallet_token(key)
        if tid is None:  # revoked since the check above
            raise BackendError("unknown wallet key", UNAUTHORIZED)
        return backend.wallet_summary(tid, 10)

    return r
