"""The request and response models of the merchants' and the tokens' routes, and the
error answers every route declares (``R401``, ``R429``, ...; bodies ``ErrorOut``).

Usage::

    @router.post("/v1/payments", response_model=PaymentOut, responses=responses(AUTH, BODY, R409))
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema

from paytoken.backend import rules
from paytoken.backend.api.types import JsonInt
from paytoken.backend.verify import REASONS

# A JSON number with no fraction is an integer (api.types.JsonInt).
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


