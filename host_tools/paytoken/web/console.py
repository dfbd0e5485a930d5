"""The issuer's console (``/console``), with an admin key login: tokens (search by id
and status, drift chart, last payment; revoke, lock, unlock, set limits, each after a
confirmation page), payments and refunds (filters, CSV export), merchants (add, revoke,
rotate key: a new key is handed over as a one-time file download, never shown on a
page) and the audit chain's verification.

Every action calls the Backend or ``backend.operators``, as the admin API does, and is
audited under the admin's name.

Usage::

    app.include_router(console.router(pages), include_in_schema=False)
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from paytoken.backend import BackendError, rules
from paytoken.backend.api.errors import status_of
from paytoken.backend.service import ledger, operators
from paytoken.backend.store.models import STATUSES
from paytoken.web.chart import drift_svg
from paytoken.web.pages import FormError, Pages, Refused, major, parse_limit, refused_page
from paytoken.web.session import CONSOLE, Session

ACTIONS = {"revoke": "Revoke", "lock": "Lock", "unlock": "Unlock", "limits": "Set limits"}
MERCHANT_ACTIONS = {"revoke": "Revoke", "rotate": "Rotate the key of"}
PAGE = 50
CSV_PAYMENTS = ("payment_id", "created_at", "merchant_id", "merchant", "merchant_order_id", "token_id",
                "amount", "currency", "status", "reason", "refunded")
CSV_REFUNDS = ("refund_id", "created_at", "payment_id", "merchant_id", "merchant", "token_id", "amount",
               "currency")
_DATE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")


def _filters(q, kinds: tuple[str, ...]) -> tuple[dict, dict]:
    """(the listing's keyword arguments, the form's values) from a query string."""
    form = {k: (q.get(k) or "").strip()[:100] for k in ("merchant", "token_id", "status", "since", "until",
                                                        "payment_id")}
    kw: dict = {}
    if form["merchant"]:
        kw["merchant"] = form["merchant"]
    if form["token_id"]:
        if not re.fullmatch(r"[0-9]{1,8}", form["token_id"]) or int(form["token_id"]) > rules.MAX_TOKEN_ID:
            raise FormError("token: an id of up to 8 digits")
        kw["token_id"] = int(form["token_id"])
    if "status" in kinds and form["status"]:
        if form["status"] not in ledger.PAYMENT_STATUSES:
            raise FormError("status: succeeded, refused or refunded")
        kw["status"] = form["status"]
    if "payment_id" in kinds and form["payment_id"]:
        kw["payment_id"] = form["payment_id"]
    for name, edge in (("since", 0), ("until", 1)):
        if form[name]:
            if not _DATE.match(form[name]):
                raise FormError(f"{name}: a UTC date, YYYY-MM-DD")
            try:
                kw[name] = operators.day_range(form[name])[edge]
            except BackendError as exc:
                raise FormError(str(exc)) from None
    return kw, form


def _csv(rows: Iterator[dict], columns: tuple[str, ...]) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow(row)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()


def router(pages: Pages) -> APIRouter:
    backend = pages.backend
    r = APIRouter()

    async def admin(request: Request) -> tuple[Session | None, str | None]:
        s = pages.sessions.read(request, CONSOLE)
        if s is None or not s.logged_in:
            return s, None
        name = await run_in_threadpool(backend.auth_admin, s.key)
        return s, None if name is None else "admin:" + name

    def login_page(request: Request, s: Session | None = None, status: int = 200, error: str = "") -> Response:
        return pages.render(request, "login.html", CONSOLE, s, status=status, title="Console",
                            heading="Issuer console", label="Admin key",
                            hint="An operator's admin key (paytoken admin add). It stays on the server, "
                                 "in your session; it is never shown or stored in this browser.",
                            error=error)

    def page(request: Request, s: Session, template: str, status: int = 200, **ctx) -> Response:
        return pages.render(request, template, CONSOLE, s, status=status, title="Console", **ctx)

    async def gate(request: Request):
        """(session, actor) for a page, or the login page to answer instead."""
        s, actor = await admin(request)
        if actor is None:
            return None, login_page(request, s if s and not s.logged_in else None,
                                    status=401 if s and s.logged_in else 200,
                                    error="Your session ended: log in again." if s and s.logged_in else "")
        return (s, actor), None

    async def posted(request: Request):
        """(session, actor, fields) for a form, or the answer instead (refused, log in)."""
        try:
            s, f = await pages.form(request, CONSOLE)
        except Refused as exc:
            return None, refused_page(pages, request, CONSOLE, exc)
        name = await run_in_threadpool(backend.auth_admin, s.key) if s.logged_in else None
        if name is None:
            return None, login_page(request, status=401, error="Your session ended: log in again.")
        return (s, "admin:" + name, f), None

    # ---- login ----

    @r.post("/console/login")
    async def login(request: Request) -> Response:
        try:
            s, f = await pages.form(request, CONSOLE)
        except Refused as exc:
            return refused_page(pages, request, CONSOLE, exc)

        async def check(key: str) -> str | None:
            return await run_in_threadpool(backend.auth_admin, key)

        got = await pages.login(request, f.get("key", ""), check)
        if isinstance(got, int):
            error = (f"Too many wrong keys from this address: wait {got} s." if got
                     else "That key is not an admin key here.")
            return login_page(request, s, status=429 if got else 401, error=error)
        resp = pages.redirect("/console")
        pages.sessions.write(resp, request, CONSOLE, pages.sessions.new(key=f["key"].strip(), subject=got))
        return resp

    @r.post("/console/logout")
    async def logout(request: Request) -> Response:
        try:
            await pages.form(request, CONSOLE)
        except Refused as exc:
            return refused_page(pages, request, CONSOLE, exc)
        resp = pages.redirect("/console")
        pages.sessions.clear(resp, request, CONSOLE)
        return resp

    # ---- tokens ----

    @r.get("/console")
    async def tokens(request: Request) -> Response:
        ok, other = await gate(request)
        if other:
            return other
        s, _actor = ok
        q = request.query_params
        status = q.get("status") or None
        tid = (q.get("id") or "").strip()
        after = q.get("after")
        error = ""
        items: list[dict] = []
        nxt = None
        if status is not None and status not in STATUSES:
            error, status = "status: one of " + ", ".join(STATUSES), None
        if tid:
            if re.fullmatch(r"[0-9]{1,8}", tid):
                return pages.redirect(f"/console/tokens/{int(tid)}")
            error = "token id: up to 8 digits"
        try:
            start = int(after) if after and re.fullmatch(r"[0-9]{1,8}", after) else None
            pg = await run_in_threadpool(operators.list_tokens, backend, status, None, None, start, PAGE)
            items, nxt = pg.items, pg.next
        except BackendError as exc:
            error = str(exc)
        schemes = await run_in_threadpool(operators.list_schemes, backend)
        counts = {st: sum(sc["tokens"][st] for sc in schemes) for st in STATUSES}
        more = urlencode({k: v for k, v in (("status", status), ("after", nxt)) if v is not None})
        return page(request, s, "console_tokens.html", status=422 if error else 200, tokens=items,
                    statuses=STATUSES, status_filter=status or "", counts=counts, error=error,
                    more=more if nxt is not None else "", section="tokens")

    @r.get("/console/tokens/{token_id}")
    async def token(request: Request, token_id: int) -> Response:
        ok, other = await gate(request)
        if other:
            return other
        s, _actor = ok
        return await token_page(request, s, token_id)

    async def token_page(request: Request, s: Session, token_id: int, status: int = 200, **ctx) -> Response:
        if not 0 <= token_id <= rules.MAX_TOKEN_ID:
            return page(request, s, "refused.html", status=404, message=f"no token {token_id}")
        try:
            info = await run_in_threadpool(backend.token_info, token_id)
        except BackendError as exc:
            return page(request, s, "refused.html", status=status_of(exc), message=str(exc))
        history = await run_in_threadpool(operators.drift_history, backend, token_id, 500)
        last = await run_in_threadpool(ledger.list_payments, backend, None, token_id)
        # the listing is oldest first: the last payment is on the last page
        last_payment = None
        while True:
            if last.items:
                last_payment = last.items[-1]
            if last.next is None:
                break
            last = await run_in_threadpool(lambda c=last.next: ledger.list_payments(
                backend, None, token_id, after=c, limit=operators.MAX_PAGE))
        return page(request, s, "console_token.html", status=status, token=info, chart=drift_svg(history),
                    points=len(history), last_payment=last_payment, actions=ACTIONS, section="tokens", **ctx)

    @r.post("/console/tokens/{token_id}/{action}")
    async def token_action(request: Request, token_id: int, action: str) -> Response:
        ok, other = await posted(request)
        if other:
            return other
        s, actor, f = ok
        if action not in ACTIONS or not 0 <= token_id <= rules.MAX_TOKEN_ID:
            return page(request, s, "refused.html", status=404, message="no such action")
        try:
            lim = {}
            if action == "limits":
                lim = {"limit_per_payment": parse_limit(f.get("limit_per_payment"), "limit per payment"),
                       "limit_per_day": parse_limit(f.get("limit_per_day"), "limit per day")}
            revoke_as = f.get("as", "revoked")
            if revoke_as not in ("revoked", "lost"):
                raise FormError("revoke as revoked or lost")
        except FormError as exc:
            return await token_page(request, s, token_id, status=422, error=str(exc))
        if f.get("confirm") != "yes":
            what = {"revoke": f"Revoke token {token_id} (as {revoke_as})? This is final: it never pays again.",
                    "lock": f"Lock token {token_id}? It pays nothing until an admin unlocks it.",
                    "unlock": f"Unlock token {token_id}? Its wrong-code budget starts afresh.",
                    "limits": f"Set token {token_id}'s limits to {major(lim.get('limit_per_payment')) or 'none'} "
                              f"per payment and {major(lim.get('limit_per_day')) or 'none'} per day?"}[action]
            fields = {k: f.get(k, "") for k in ("limit_per_payment", "limit_per_day", "as") if k in f}
            return page(request, s, "confirm.html", action=f"/console/tokens/{token_id}/{action}",
                        question=what, fields=fields, verb=ACTIONS[action], back=f"/console/tokens/{token_id}",
                        danger=action in ("revoke", "lock"), section="tokens")
        try:
            if action == "revoke":
                await run_in_threadpool(backend.set_status, token_id, revoke_as, actor)
            elif action == "lock":
                await run_in_threadpool(backend.lock, token_id, actor)
            elif action == "unlock":
                await run_in_threadpool(backend.unlock, token_id, actor)
            else:
                await run_in_threadpool(lambda: backend.set_token(token_id, actor, **lim))
        except BackendError as exc:
            return await token_page(request, s, token_id, status=status_of(exc), error=str(exc))
        done = {"revoke": f"Token {token_id} is {revoke_as}.", "lock": f"Token {token_id} is locked.",
                "unlock": f"Token {token_id} is unlocked.", "limits": f"Token {token_id}'s limits are set."}
        return await token_page(request, s, token_id, notice=done[action])

    # ---- payments and refunds ----

    def listing(kind: str):
        fn = ledger.list_payments if kind == "payments" else ledger.list_refunds
        kinds = ("status",) if kind == "payments" else ("payment_id",)

        async def html(request: Request) -> Response:
            ok, other = await gate(request)
            if other:
                return other
            s, _actor = ok
            items, nxt, error = [], None, ""
            try:
                kw, form = _filters(request.query_params, kinds)
                after = request.query_params.get("after")
                pg = await run_in_threadpool(lambda: fn(backend, after=after or None, limit=PAGE, **kw))
                items, nxt = pg.items, pg.next
            except (FormError, BackendError) as exc:
                form = {k: (request.query_params.get(k) or "")[:100] for k in
                        ("merchant", "token_id", "status", "since", "until", "payment_id")}
                error = str(exc)
            query = urlencode({k: v for k, v in form.items() if v})
            return page(request, s, f"console_{kind}.html", status=422 if error else 200, items=items,
                        form=form, error=error, query=query, section=kind,
                        more=urlencode({**{k: v for k, v in form.items() if v}, "after": nxt}) if nxt else "",
                        statuses=ledger.PAYMENT_STATUSES)

        async def export(request: Request) -> Response:
            ok, other = await gate(request)
            if other:
                return other
            try:
                kw, _form = _filters(request.query_params, kinds)
                first = await run_in_threadpool(lambda: fn(backend, limit=operators.MAX_PAGE, **kw))
            except (FormError, BackendError) as exc:
                return page(request, ok[0], "refused.html", status=422, message=str(exc))

            def rows() -> Iterator[dict]:
                pg = first
                while True:
                    yield from pg.items
                    if pg.next is None:
                        return
                    pg = fn(backend, after=pg.next, limit=operators.MAX_PAGE, **kw)

            cols = CSV_PAYMENTS if kind == "payments" else CSV_REFUNDS
            return StreamingResponse(_csv(rows(), cols), media_type="text/csv; charset=utf-8", headers={
                "Content-Disposition": f'attachment; filename="paytoken-{kind}.csv"',
                "Cache-Control": "no-store"})

        return html, export

    for kind in ("payments", "refunds"):
        html, export = listing(kind)
        r.add_api_route(f"/console/{kind}", html, methods=["GET"])
        r.add_api_route(f"/console/{kind}.csv", export, methods=["GET"])

    # ---- merchants ----

    async def merchants_page(request: Request, s: Session, status: int = 200, **ctx) -> Response:
        items = await run_in_threadpool(operators.list_merchants, backend)
        return page(request, s, "console_merchants.html", status=status, merchants=items,
                    section="merchants", **ctx)

    @r.get("/console/merchants")
    async def merchants(request: Request) -> Response:
        ok, other = await gate(request)
        if other:
            return other
        return await merchants_page(request, ok[0])

    def key_file(out: dict) -> Response:
        # The new key goes to the operator as a file, once: never into a page, a URL or a log.
        body = (f"# paytoken merchant API key for {out['name']!r} (merchant #{out['merchant_id']}).\n"
                f"# Hand it to the merchant; it is shown only this once.\n{out['api_key']}\n")
        return Response(body, media_type="text/plain; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="paytoken-merchant-{out["merchant_id"]}.key"',
            "Cache-Control": "no-store"})

    @r.post("/console/merchants/add")
    async def merchant_add(request: Request) -> Response:
        ok, other = await posted(request)
        if other:
            return other
        s, actor, f = ok
        name = f.get("name", "").strip()
        if not name or len(name) > 100 or not name.isprintable():
            return await merchants_page(request, s, status=422, error="name: 1 to 100 printable characters")
        try:
            out = await run_in_threadpool(operators.add_merchant, backend, name, actor)
        except BackendError as exc:
            return await merchants_page(request, s, status=status_of(exc), error=str(exc))
        return key_file(out)

    @r.post("/console/merchants/{merchant_id}/{action}")
    async def merchant_action(request: Request, merchant_id: int, action: str) -> Response:
        ok, other = await posted(request)
        if other:
            return other
        s, actor, f = ok
        if action not in MERCHANT_ACTIONS or not 1 <= merchant_id < 2**31:
            return page(request, s, "refused.html", status=404, message="no such action")
        if f.get("confirm") != "yes":
            what = (f"Revoke merchant #{merchant_id}? Its key stops working; this is final."
                    if action == "revoke" else
                    f"Rotate merchant #{merchant_id}'s key? The old key stops working now; the new one "
                    "downloads as a file, once.")
            return page(request, s, "confirm.html", action=f"/console/merchants/{merchant_id}/{action}",
                        question=what, fields={}, verb=MERCHANT_ACTIONS[action].split()[0],
                        back="/console/merchants", danger=True, section="merchants")
        try:
            if action == "revoke":
                await run_in_threadpool(operators.revoke_merchant, backend, merchant_id, actor)
                return await merchants_page(request, s, notice=f"Merchant #{merchant_id} is revoked.")
            out = await run_in_threadpool(operators.rotate_merchant_key, backend, merchant_id, actor)
        except BackendError as exc:
            return await merchants_page(request, s, status=status_of(exc), error=str(exc))
        return key_file(out)

    # ---- audit ----

    @r.get("/console/audit")
    async def audit(request: Request) -> Response:
        ok, other = await gate(request)
        if other:
            return other
        report = await run_in_threadpool(backend.verify_audit)
        return page(request, ok[0], "console_audit.html", report=report, section="audit")

    return r
