"""The merchants' payment routes: pay, a payment, its refund (merchant key).

Usage::

    app.include_router(payments.router(backend, auth))
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from paytoken.backend import rules
from paytoken.backend.api.deps import Auth
from paytoken.backend.api.schemas import (
    AUTH,
    BODY,
    R404,
    R409,
    R413,
    PaymentDetail,
    PaymentId,
    PaymentIn,
    PaymentOut,
    RefundIn,
    RefundOut,
    responses,
)
from paytoken.backend.service import Backend


def router(backend: Backend, auth: Auth) -> APIRouter:
    """The payment routes over ``backend``."""
    r = APIRouter()
    Merchant = Annotated[int, Depends(auth.merchant)]

    @r.post("/v1/payments", response_model=PaymentOut, responses=responses(AUTH, BODY, R409))
    def create_payment(body: PaymentIn, mid: Merchant, response: Response) -> dict:
        """Authorize and debit atomically, or refuse with a reason. Idempotent per merchant_order_id.
        A TOKEN_LOCKED refusal of a token cooling down carries Retry-After (nothing is stored)."""
        out = backend.pay(mid, body.code, body.amount, body.currency, body.merchant_order_id)
        wait = out.pop("retry_after", None)
        if wait:
            response.headers["Retry-After"] = str(wait)
        return out

    @r.get("/v1/payments/{payment_id}", response_model=PaymentDetail, responses=responses(AUTH, R404, R413))
    def get_payment(payment_id: PaymentId, mid: Merchant) -> dict:
        return backend.get_payment(mid, payment_id)

    @r.post("/v1/payments/{payment_id}/refund", response_model=RefundOut,
              responses=responses(AUTH, BODY, R404, R409))
    def refund(payment_id: PaymentId, mid: Merchant, body: RefundIn | None = None,
               idempotency_key: Annotated[str, Header(
                   alias="Idempotency-Key", pattern=rules.schema(rules.IDEM_KEY_RE),
                   description="the same key and body give the same answer, refunded once; "
                               "another body with it is a 409. Without it the body is the key")] = None) -> dict:
        return backend.refund(mid, payment_id, body.amount if body else None, idempotency_key)

    return r
