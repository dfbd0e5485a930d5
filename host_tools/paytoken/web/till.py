"""The merchant's till (``/till``): log in with the merchant API key, take a payment
(amount in major units, the code from a keyboard-wedge scanner or typed in groups of
four), see Approved or Declined with the reason, the day's payments, refund one.

Every payment and refund goes through the Backend, as the merchant API's do: the same
rules, guess budgets and idempotency (the form carries its order id, so a resubmitted
form is the same payment; a refund's idempotency key is the payment's).

Usage::

    app.include_router(till.router(pages), include_in_schema=False)
"""

from __future__ import annotations

import re
import secrets

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from paytoken.backend import THROTTLED, BackendError, rules
from paytoken.backend.api.errors import status_of
from paytoken.backend.service import ledger, operators
from paytoken.web.pages import (
    FormError,
    Pages,
    Refused,
    day_bounds,
    major,
    parse_amount,
    refused_page,
)
from paytoken.web.session import TILL, Session

_ORDER = re.compile(r"\Atill-[0-9a-f]{16}\Z")
_PAYMENT = re.compile(r"\Apay_[0-9a-f]{24}\Z")
_CURRENCY = re.compile(r"\A[A-Z]{3}\Z")
SHOWN = 100  # the day's latest payments on the page


def _order() -> str:
    return "till-" + secrets.token_hex(8)


def router(pages: Pages) -> APIRouter:
    backend = pages.backend
    r = APIRouter()

    async def merchant(s: Session | None) -> int | None:
        if s is None or not s.logged_in:
            return None
        return backend.auth_merchant(s.key)  # a revoked merchant or a rotated key: None

    def today(mid: int) -> list[dict]:
        since, until = day_bounds(pages.now())
        items, after = [], None
        while True:
            page = ledger.list_payments(backend, merchant=mid, since=since, until=until, after=after,
                                           limit=operators.MAX_PAGE)
            items = (items + page.items)[-SHOWN:]
            if page.next is None:
                return items[::-1]
            after = page.next

    async def till_page(request: Request, s: Session, mid: int, status: int = 200, **ctx) -> Response:
        payments = await run_in_threadpool(today, mid)
        ok = [p for p in payments if p["status"] == "succeeded"]
        ctx.setdefault("currency", rules.DEFAULT_CURRENCY)
        return pages.render(request, "till.html", TILL, s, status=status, title="Till", payments=payments,
                            approved=len(ok), total=sum(p["amount"] - p["refunded"] for p in ok),
                            order=_order(), **ctx)

    def login_page(request: Request, s: Session | None = None, status: int = 200, error: str = "") -> Response:
        return pages.render(request, "login.html", TILL, s, status=status, title="Till",
                            heading="Merchant till", label="Merchant API key",
                            hint="The key your issuer gave you (ptk_live_…). It stays on the server, "
                                 "in your session; it is never shown or stored in this browser.",
                            error=error)

    @r.get("/till")
    async def till(request: Request) -> Response:
        s = pages.sessions.read(request, TILL)
        mid = await merchant(s)
        if mid is None:
            return login_page(request, s if s and not s.logged_in else None)
        return await till_page(request, s, mid)

    @r.post("/till/login")
    async def login(request: Request) -> Response:
        try:
            s, f = await pages.form(request, TILL)
        except Refused as exc:
            return refused_page(pages, request, TILL, exc)

        async def check(key: str) -> str | None:
            mid = backend.auth_merchant(key)
            if mid is None:
                return None
            names = await run_in_threadpool(operators.list_merchants, backend)
            return next((m["name"] for m in names if m["merchant_id"] == mid), f"merchant #{mid}")

        got = await pages.login(request, f.get("key", ""), check)
        if isinstance(got, int):
            error = (f"Too many wrong keys from this address: wait {got} s." if got
                     else "That key is not a merchant API key here.")
            return login_page(request, s, status=429 if got else 401, error=error)
        resp = pages.redirect("/till")
        pages.sessions.write(resp, request, TILL, pages.sessions.new(key=f["key"].strip(), subject=got))
        return resp

    @r.post("/till/logout")
    async def logout(request: Request) -> Response:
        try:
            await pages.form(request, TILL)
        except Refused as exc:
            return refused_page(pages, request, TILL, exc)
        resp = pages.redirect("/till")
        pages.sessions.clear(resp, request, TILL)
        return resp

    @r.post("/till/pay")
    async def pay(request: Request) -> Response:
        try:
            s, f = await pages.form(request, TILL)
        except Refused as exc:
            return refused_page(pages, request, TILL, exc)
        mid = await merchant(s)
        if mid is None:
            return login_page(request, status=401, error="Your session ended: log in again.")
        currency = f.get("currency", rules.DEFAULT_CURRENCY)
        keep = {"amount": f.get("amount", ""), "currency": currency if _CURRENCY.match(currency) else "CNY"}
        code = re.sub(r"[\s-]", "", f.get("code", ""))
        try:
            amount = parse_amount(f.get("amount"))
            if not _CURRENCY.match(currency):
                raise FormError("currency: three capital letters, e.g. CNY")
            if not re.fullmatch(r"[0-9]{18}", code):
                raise FormError("code: the 18 digits of the payment code")
            order = f.get("order", "")
            if not _ORDER.match(order):
                raise FormError("the form has no order number: reload the page")
        except FormError as exc:
            return await till_page(request, s, mid, status=422, error=str(exc), **keep)
        try:
            out = await run_in_threadpool(backend.pay, mid, code, amount, currency, order)
        except BackendError as exc:
            if exc.kind == THROTTLED:  # the guess budgets: declined, nothing was recorded
                out = {"status": "refused", "reason": "THROTTLED", "amount": amount, "currency": currency,
                       "payment_id": None, "detail": f"too many wrong codes: wait {exc.retry_after or 1} s"}
            else:
                return await till_page(request, s, mid, status=status_of(exc), error=str(exc), **keep)
        if out["status"] == "succeeded":
            keep["amount"] = ""
        return await till_page(request, s, mid, result=out, **keep)

    @r.post("/till/refund")
    async def refund(request: Request) -> Response:
        try:
            s, f = await pages.form(request, TILL)
        except Refused as exc:
            return refused_page(pages, request, TILL, exc)
        mid = await merchant(s)
        if mid is None:
            return login_page(request, status=401, error="Your session ended: log in again.")
        pid = f.get("payment_id", "")
        if not _PAYMENT.match(pid):
            return await till_page(request, s, mid, status=422, error="no such payment")
        try:
            p = await run_in_threadpool(backend.get_payment, mid, pid)
        except BackendError as exc:
            return await till_page(request, s, mid, status=status_of(exc), error=str(exc))
        if f.get("confirm") != "yes":
            return pages.render(request, "confirm.html", TILL, s, title="Refund", action="/till/refund",
                                question=f"Refund {major(p['amount'] - p['refunded'])} {p['currency']} "
                                         f"of payment {pid} (order {p['merchant_order_id']})?",
                                fields={"payment_id": pid}, verb="Refund", back="/till")
        try:
            # The payment's own key: pressing Refund twice (two tabs, a retry) refunds once.
            out = await run_in_threadpool(backend.refund, mid, pid, None, f"till-full-{pid}")
        except BackendError as exc:
            return await till_page(request, s, mid, status=status_of(exc), error=f"Refund refused: {exc}")
        return await till_page(request, s, mid, notice=f"Refunded {major(out['amount'])} {p['currency']} "
                                                       f"of payment {pid}.")

    return r
