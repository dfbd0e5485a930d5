"""The admin API for operators, under ``/v1/admin`` (admin key): the same calls, with the
same meaning, as the operators' CLI (both call ``paytoken.backend.service.operators``).

Lists answer ``{"items": [...], "next": cursor|null}``: pass ``next`` back as ``after``
for the following page; null means nothing more remains. Times in queries are UTC
seconds or ISO-8601 with ``Z``/an offset. Keys appear only in the answers that create
them. See docs/OPERATOR.md.

Usage::

    app.include_router(operators.router(backend))
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

import re
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from paycode import FORMATS
from pydantic import BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema

from paytoken.backend import NOT_FOUND, UNAUTHORIZED, BackendError, rules
from paytoken.backend.api.types import JsonInt
from paytoken.backend.service import ledger, operators
from paytoken.backend.store.models import STATUSES

# The schema states every constraint the domain (``operators``) checks, so a request the
# schema admits is never refused as malformed (schemathesis, tests/backend/test_schema.py).
# Digits are [0-9]: ``\d`` would admit other scripts' digits.
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
_LEAP = r"(?:19(?:7[26]|8[048]|9[26])|[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)"


def _date(year: str) -> str:
    """A calendar date, YYYY-MM-DD, with ``year`` (a regex) and the leap days from 1972."""
    return rf"(?:{year}-{_MONTH_DAY}|{_LEAP}-02-29)"


DAY_RE = rf"^{_date(r'(?:19[7-9][0-9]|[2-9][0-9]{3})')}$"  # operators.day_range: from 1970
# operators.utc_seconds: Unix seconds, or ISO-8601 with Z or an offset. ISO times start in
# 1971, so that no offset can put one before 1970 (Unix seconds cover 1970).
WHEN_RE = (rf"^(?:[0-9]{{1,12}}|{_date(r'(?:197[1-9]|19[89][0-9]|[2-9][0-9]{3})')}"
           r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]))$")
PREFIX_RE = r"^(?:1[6-9]|2[0-4]|3[1-9]|[45][0-9]|6[013-9]|[7-9][0-9])$"  # paycode.check_prefix
NAME_RE = rules.schema(rules.NAME_RE)
REASON_RE = rules.schema(rules.REASON_RE)
CURSOR_RE = r"^[0-9]{1,12}:[A-Za-z0-9_]{1,40}$"  # what a page's ``next`` is (seconds:id)

TokenId = Annotated[int, Path(ge=0, le=rules.MAX_TOKEN_ID, description="token id, 0 to 99999999")]
PaymentId = Annotated[str, Path(min_length=1, max_length=64, description="payment id (pay_ + 24 hex); "
                                                                         "any other is a 404")]
Limit = Annotated[int | None, Query(ge=1, le=operators.MAX_PAGE, description="items per page (default 100)")]
After = Annotated[str | None, Query(pattern=CURSOR_RE, description="the `next` cursor of the previous page")]
When = Annotated[str | None, Query(pattern=WHEN_RE, description="UTC seconds, or ISO-8601 "
                                   "YYYY-MM-DDThh:mm:ss with Z or ±hh:mm (from 1971); until: exclusive, "
                                   "and an until not after since gives an empty page")]
MerchantQ = Annotated[str | None, Query(pattern=NAME_RE, description="a merchant's name, or #ID")]


class NameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr = Field(pattern=NAME_RE, description="1 to 100 printable characters")


class SchemeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: StrictStr = Field(pattern=PREFIX_RE, description="scheme digit + version, e.g. 82: two digits, "
                              "not 0x, 10-15, 25-30 or 62 (other wallets' starts)")
    format: JsonInt = Field(default=1, ge=1, le=len(FORMATS), description="the code format (docs/FORMAT.md)")


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: JsonInt = Field(ge=1, le=rules.MAX_AMOUNT, description="integer minor units")
    reason: StrictStr = Field(pattern=REASON_RE, description="why, 1 to 200 printable characters: kept in the "
                                                          "history and audit log")


class AdminRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Annotated[JsonInt, Field(ge=1, le=rules.MAX_AMOUNT),
                      WithJsonSchema({"type": "integer", "minimum": 1, "maximum": rules.MAX_AMOUNT})
                      ] | None = Field(default=None, description="default: all that remains")
    idempotency_key: StrictStr = Field(pattern=r"^[A-Za-z0-9._:/-]{1,64}$",
                                       description="yours, unique per refund: a retry with it is the same refund")


def _page(page: operators.Page) -> dict:
    return {"items": page.items, "next": page.next}


def _when(text: str | None, what: str) -> int | None:
    return None if text is None else operators.utc_seconds(text, what)


def _window(since: str | None, until: str | None) -> tuple[int | None, int | None] | None:
    """[since, until) in UTC seconds, or None when it is empty (an until not after since):
    the listing is then an empty page, not an error (the schema cannot relate two fields)."""
    lo, hi = _when(since, "since"), _when(until, "until")
    return None if lo is not None and hi is not None and hi <= lo else (lo, hi)


_EMPTY = {"items": [], "next": None}
_PAYMENT_ID = re.compile(r"\Apay_[0-9a-f]{24}\Z")


def _payment_id(text: str) -> str:
    """As on the merchants' routes: an id that is not a payment id names no payment (404)."""
    if not _PAYMENT_ID.match(text):
        raise BackendError("no such payment", NOT_FOUND)
    return text


def router(backend, admin: Callable[..., str] | None = None) -> APIRouter:
    """The ``/v1/admin`` routes over ``backend``; every one needs an admin key. ``admin``
    is the app's admin-key dependency (with its bad-key throttle); by default a plain check."""
    if admin is None:
        bearer = HTTPBearer(auto_error=False)

        def admin(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
            name = backend.auth_admin(cred.credentials) if cred and cred.credentials.isascii() else None
            if name is None:
                raise BackendError("an admin key is required: Authorization: Bearer <admin key>", UNAUTHORIZED)
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
    def admin_remove(name: Annotated[str, Path(pattern=NAME_RE)], actor: Actor) -> dict:
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
    def scheme_retire(prefix: Annotated[str, Path(pattern=r"^[0-9]{2}$")], actor: Actor) -> dict:
        return operators.retire_scheme(backend, prefix, actor)

    # -- tokens and accounts --
    @r.get("/tokens")
    def tokens(_a: Actor, status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
               prefix: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
               currency: Annotated[str | None, Query(pattern=rules.schema(rules.CURRENCY_RE))] = None,
               after: Annotated[int | None, Query(ge=0, le=rules.MAX_TOKEN_ID)] = None,
               limit: Limit = None) -> dict:
        return _page(operators.list_tokens(backend, status, prefix, currency, after, limit))

    @r.get("/accounts/{token_id}")
    def account(token_id: TokenId, _a: Actor) -> dict:
        return ledger.show_account(backend, token_id)

    @r.post("/accounts/{token_id}/credit")
    def credit(token_id: TokenId, body: AdjustIn, actor: Actor) -> dict:
        return ledger.adjust(backend, token_id, body.amount, body.reason, actor)

    @r.post("/accounts/{token_id}/debit")
    def debit(token_id: TokenId, body: AdjustIn, actor: Actor) -> dict:
        """Never below a balance of 0 (409)."""
        return ledger.adjust(backend, token_id, -body.amount, body.reason, actor)

    @r.get("/accounts/{token_id}/history")
    def account_history(token_id: TokenId, _a: Actor, since: When = None, until: When = None,
                        after: After = None, limit: Limit = None) -> dict:
        window = _window(since, until)
        if window is None:
            ledger.show_account(backend, token_id)  # still a 404 for a token without an account
            return _EMPTY
        return _page(ledger.history(backend, token_id, *window, after, limit))

    # -- payments and refunds --
    @r.get("/payments")
    def payments(_a: Actor, merchant: MerchantQ = None,
                 token_id: Annotated[int | None, Query(ge=0, le=rules.MAX_TOKEN_ID)] = None,
                 since: When = None, until: When = None,
                 status: Literal[ledger.PAYMENT_STATUSES] | None = None,  # type: ignore[valid-type]
                 after: After = None, limit: Limit = None) -> dict:
        window = _window(since, until)
        if window is None:  # nothing in it; the other filters are still checked (an unknown merchant: 404)
            ledger.list_payments(backend, merchant, token_id, None, None, status, after, 1)
            return _EMPTY
        return _page(ledger.list_payments(backend, merchant, token_id, *window, status, after, limit))

    @r.get("/payments/{payment_id}")
    def payment(payment_id: PaymentId, _a: Actor) -> dict:
        return ledger.show_payment(backend, _payment_id(payment_id))

    @r.post("/payments/{payment_id}/refund")
    def payment_refund(payment_id: PaymentId, body: AdminRefundIn, actor: Actor) -> dict:
        return ledger.refund(backend, _payment_id(payment_id), body.amount, body.idempotency_key, actor)

    @r.get("/refunds")
    def refunds(_a: Actor, merchant: MerchantQ = None,
                token_id: Annotated[int | None, Query(ge=0, le=rules.MAX_TOKEN_ID)] = None,
                payment_id: Annotated[str | None, Query(pattern=r"^pay_[0-9a-f]{24}$")] = None,
                since: When = None, until: When = None, after: After = None, limit: Limit = None) -> dict:
        window = _window(since, until)
        if window is None:
            ledger.list_refunds(backend, merchant, token_id, payment_id, None, None, after, 1)
            return _EMPTY
        return _page(ledger.list_refunds(backend, merchant, token_id, payment_id, *window, after, limit))

    @r.get("/export", response_class=StreamingResponse, responses={200: {
        "description": "the day's rows: CSV (format=csv) or JSON lines (format=jsonl)",
        "content": {"text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}}}}})
    def export(_a: Actor, day: Annotated[str, Query(pattern=DAY_RE, description="a UTC date, YYYY-MM-DD, "
                                                                            "from 1970")],
               format: Literal["csv", "jsonl"] = "csv", merchant: MerchantQ = None) -> StreamingResponse:
        """One UTC day's payments and refunds: CSV with a header row, or JSON lines."""
        lines = ledger.export_day(backend, day, format, merchant)
        media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
        return StreamingResponse(lines, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="paytoken-{day}.{format}"'})

    return r
