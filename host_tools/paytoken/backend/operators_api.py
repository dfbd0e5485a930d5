"""The admin API for operators, under ``/v1/admin`` (admin key): the same calls, with the
same meaning, as the operators' CLI (both call ``paytoken.backend.operators``).

Lists answer ``{"items": [...], "next": cursor|null}``: pass ``next`` back as ``after``
for the following page; null means nothing more remains. Times in queries are UTC
seconds or ISO-8601 with ``Z``/an offset. Keys appear only in the answers that create
them. See docs/OPERATOR.md.

Usage::

    app.include_router(operators_api.router(backend))
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from paycode import FORMATS
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from paytoken.backend import BackendError, operators
from paytoken.backend.models import STATUSES

TokenId = Annotated[int, Path(ge=0, le=operators.MAX_TOKEN_ID, description="token id, 0 to 99999999")]
PaymentId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$", description="payment id, pay_ + 24 hex")]
Limit = Annotated[int | None, Query(ge=1, le=operators.MAX_PAGE, description="items per page (default 100)")]
After = Annotated[str | None, Query(max_length=64, description="the `next` cursor of the previous page")]
When = Annotated[str | None, Query(max_length=40, description="UTC seconds or ISO-8601 with Z/offset")]
MerchantQ = Annotated[str | None, Query(max_length=100, description="a merchant's name, or #ID")]


class NameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr = Field(min_length=1, max_length=100)


class SchemeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: StrictStr = Field(pattern=r"^\d{2}$", description="scheme digit + version, e.g. 82")
    format: StrictInt = Field(default=1, ge=1, le=len(FORMATS), description="the code format (docs/FORMAT.md)")


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: StrictInt = Field(ge=1, le=operators.MAX_AMOUNT, description="integer minor units")
    reason: StrictStr = Field(min_length=1, max_length=200, description="why: kept in the history and audit log")


class AdminRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: StrictInt | None = Field(default=None, ge=1, le=operators.MAX_AMOUNT,
                                     description="default: all that remains")
    idempotency_key: StrictStr = Field(pattern=r"^[A-Za-z0-9._:/-]{1,64}$",
                                       description="yours, unique per refund: a retry with it is the same refund")


def _page(page: operators.Page) -> dict:
    return {"items": page.items, "next": page.next}


def _when(text: str | None, what: str) -> int | None:
    return None if text is None else operators.utc_seconds(text, what)


def router(backend) -> APIRouter:
    """The ``/v1/admin`` routes over ``backend``; every one needs an admin key."""
    bearer = HTTPBearer(auto_error=False)

    def admin(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        name = backend.auth_admin(cred.credentials) if cred else None
        if name is None:
            raise BackendError("an admin key is required: Authorization: Bearer <admin key>", 401)
        return "admin:" + name

    Actor = Annotated[str, Depends(admin)]
    r = APIRouter(prefix="/v1/admin", tags=["operators"])

    # -- merchants --
    @r.get("/merchants")
    def merchants(_a: Actor) -> list[dict]:
        return operators.list_merchants(backend)

    @r.post("/merchants")
    def merchant_add(body: NameIn, actor: Actor) -> dict:
        """Create a merchant; the answer holds its API key, shown this once."""
        return operators.add_merchant(backend, body.name, actor)

    @r.post("/merchants/{merchant_id}/revoke")
    def merchant_revoke(merchant_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Actor) -> dict:
        return operators.revoke_merchant(backend, merchant_id, actor)

    @r.post("/merchants/{merchant_id}/rotate-key")
    def merchant_rotate(merchant_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Actor) -> dict:
        """A new API key (shown this once); the old one stops working."""
        return operators.rotate_merchant_key(backend, merchant_id, actor)

    # -- admins --
    @r.get("/admins")
    def admins(_a: Actor) -> list[dict]:
        return operators.list_admins(backend)

    @r.post("/admins")
    def admin_add(body: NameIn, actor: Actor) -> dict:
        return operators.add_admin(backend, body.name, actor)

    @r.delete("/admins/{name}")
    def admin_remove(name: Annotated[str, Path(min_length=1, max_length=100)], actor: Actor) -> dict:
        """Never the last admin (409)."""
        return operators.remove_admin(backend, name, actor)

    # -- schemes --
    @r.get("/schemes")
    def schemes(_a: Actor) -> list[dict]:
        return operators.list_schemes(backend)

    @r.post("/schemes")
    def scheme_add(body: SchemeIn, actor: Actor) -> dict:
        """Generate and store a scheme key (sealed); the key is never returned."""
        operators.add_scheme(backend, body.prefix, None, actor, body.format)
        return next(s for s in operators.list_schemes(backend) if s["prefix"] == body.prefix)

    @r.post("/schemes/{prefix}/retire")
    def scheme_retire(prefix: Annotated[str, Path(pattern=r"^\d{2}$")], actor: Actor) -> dict:
        return operators.retire_scheme(backend, prefix, actor)

    # -- tokens and accounts --
    @r.get("/tokens")
    def tokens(_a: Actor, status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
               prefix: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None,
               currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
               after: Annotated[int | None, Query(ge=0, le=operators.MAX_TOKEN_ID)] = None,
               limit: Limit = None) -> dict:
        return _page(operators.list_tokens(backend, status, prefix, currency, after, limit))

    @r.get("/accounts/{token_id}")
    def account(token_id: TokenId, _a: Actor) -> dict:
        return operators.show_account(backend, token_id)

    @r.post("/accounts/{token_id}/credit")
    def credit(token_id: TokenId, body: AdjustIn, actor: Actor) -> dict:
        return operators.adjust(backend, token_id, body.amount, body.reason, actor)

    @r.post("/accounts/{token_id}/debit")
    def debit(token_id: TokenId, body: AdjustIn, actor: Actor) -> dict:
        """Never below a balance of 0 (409)."""
        return operators.adjust(backend, token_id, -body.amount, body.reason, actor)

    @r.get("/accounts/{token_id}/history")
    def account_history(token_id: TokenId, _a: Actor, since: When = None, until: When = None,
                        after: After = None, limit: Limit = None) -> dict:
        return _page(operators.history(backend, token_id, _when(since, "since"), _when(until, "until"),
                                       after, limit))

    # -- payments and refunds --
    @r.get("/payments")
    def payments(_a: Actor, merchant: MerchantQ = None,
                 token_id: Annotated[int | None, Query(ge=0, le=operators.MAX_TOKEN_ID)] = None,
                 since: When = None, until: When = None,
                 status: Literal[operators.PAYMENT_STATUSES] | None = None,  # type: ignore[valid-type]
                 after: After = None, limit: Limit = None) -> dict:
        return _page(operators.list_payments(backend, merchant, token_id, _when(since, "since"),
                                             _when(until, "until"), status, after, limit))

    @r.get("/payments/{payment_id}")
    def payment(payment_id: PaymentId, _a: Actor) -> dict:
        return operators.show_payment(backend, payment_id)

    @r.post("/payments/{payment_id}/refund")
    def payment_refund(payment_id: PaymentId, body: AdminRefundIn, actor: Actor) -> dict:
        return operators.refund(backend, payment_id, body.amount, body.idempotency_key, actor)

    @r.get("/refunds")
    def refunds(_a: Actor, merchant: MerchantQ = None,
                token_id: Annotated[int | None, Query(ge=0, le=operators.MAX_TOKEN_ID)] = None,
                payment_id: Annotated[str | None, Query(pattern=r"^pay_[0-9a-f]{24}$")] = None,
                since: When = None, until: When = None, after: After = None, limit: Limit = None) -> dict:
        return _page(operators.list_refunds(backend, merchant, token_id, payment_id, _when(since, "since"),
                                            _when(until, "until"), after, limit))

    @r.get("/export")
    def export(_a: Actor, day: Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="a UTC date")],
               format: Literal["csv", "jsonl"] = "csv", merchant: MerchantQ = None) -> StreamingResponse:
        """One UTC day's payments and refunds: CSV with a header row, or JSON lines."""
        lines = operators.export_day(backend, day, format, merchant)
        media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
        return StreamingResponse(lines, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="paytoken-{day}.{format}"'})

    return r
