"""The account holder's wallet (``/wallet``), with a wallet key login: the balance, the
recent payments, and an online code (issue 12: issuer-made, single use) as a QR code (an
SVG drawn on the server with segno) with its digits. The page asks for a fresh code before
the current one expires.

The codes come from ``Backend.online_codes``, as ``POST /v1/online-codes`` gives them
(docs/WALLET.md). A code is valid for ``$PAYTOKEN_WALLET_CODE_TTL`` seconds (default 60).

Usage::

    app.include_router(wallet.router(pages), include_in_schema=False)
"""

from __future__ import annotations

import os

import segno
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from paytoken.backend import BackendError
from paytoken.backend.api.errors import status_of
from paytoken.web.pages import Pages, Refused, refused_page
from paytoken.web.session import WALLET, Session

ENV_TTL = "PAYTOKEN_WALLET_CODE_TTL"
RECENT = 10


def _ttl() -> int:
    try:
        return max(10, min(3600, int(os.environ.get(ENV_TTL, "60"))))
    except ValueError:
        return 60


def qr_svg(code: str) -> Markup:
    """The code as a QR code (numeric mode, ECC M), inline SVG: no script, no style attribute."""
    q = segno.make_qr(code, error="m", boost_error=False)
    return Markup(q.svg_inline(scale=6, border=4, dark="#000", light="#fff", omitsize=True,
                               svgclass="qr", lineclass=None, title="payment code"))


def router(pages: Pages) -> APIRouter:
    backend = pages.backend
    r = APIRouter()

    async def token_of(s: Session | None) -> int | None:
        if s is None or not s.logged_in:
            return None
        return await run_in_threadpool(backend.wallet_token, s.key)  # a replaced key: None

    def login_page(request: Request, s: Session | None = None, status: int = 200, error: str = "") -> Response:
        return pages.render(request, "login.html", WALLET, s, status=status, title="Wallet",
                            heading="Your wallet", label="Wallet key",
                            hint="The wallet key your issuer gave you (ptk_wallet_…). It stays on the "
                                 "server, in your session; it is never shown or stored in this browser.",
                            error=error)

    async def new_code(s: Session) -> dict:
        (c,) = await run_in_threadpool(backend.online_codes, s.key, 1, _ttl())
        now = pages.now()
        return {"code": c["code"], "expires_at": c["expires_at"], "left": max(0, c["expires_at"] - now),
                "ttl": _ttl()}

    @r.get("/wallet")
    async def wallet(request: Request) -> Response:
        s = pages.sessions.read(request, WALLET)
        tid = await token_of(s)
        if tid is None:
            return login_page(request, s if s and not s.logged_in else None)
        summary = await run_in_threadpool(backend.wallet_summary, tid, RECENT)
        code, error = None, ""
        if summary["status"] == "active":
            try:
                code = await new_code(s)
            except BackendError as exc:
                error = f"No code right now: {exc}"
        return pages.render(request, "wallet.html", WALLET, s, title="Wallet", summary=summary, code=code,
                            qr=qr_svg(code["code"]) if code else None, error=error)

    @r.post("/wallet/code")
    async def code(request: Request) -> Response:
        """A fresh code for the page's refresh: JSON ``{svg, digits, left, ttl}``."""
        try:
            s, _f = await pages.form(request, WALLET)
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        if await token_of(s) is None:
            return JSONResponse({"error": "your session ended: log in again"}, status_code=401)
        try:
            c = await new_code(s)
        except BackendError as exc:
            return JSONResponse({"error": str(exc)}, status_code=status_of(exc))
        digits = " ".join(c["code"][i:i + 4] for i in range(0, 18, 4))
        return JSONResponse({"svg": str(qr_svg(c["code"])), "digits": digits, "left": c["left"], "ttl": c["ttl"]},
                            headers={"Cache-Control": "no-store"})

    @r.post("/wallet/login")
    async def login(request: Request) -> Response:
        try:
            s, f = await pages.form(request, WALLET)
        except Refused as exc:
            return refused_page(pages, request, WALLET, exc)

        async def check(key: str) -> str | None:
            tid = await run_in_threadpool(backend.wallet_token, key)
            return None if tid is None else f"token {tid:08d}"

        got = await pages.login(request, f.get("key", ""), check)
        if isinstance(got, int):
            error = (f"Too many wrong keys from this address: wait {got} s." if got
                     else "That is not a wallet key here.")
            return login_page(request, s, status=429 if got else 401, error=error)
        resp = pages.redirect("/wallet")
        pages.sessions.write(resp, request, WALLET, pages.sessions.new(key=f["key"].strip(), subject=got))
        return resp

    @r.post("/wallet/logout")
    async def logout(request: Request) -> Response:
        try:
            await pages.form(request, WALLET)
        except Refused as exc:
            return refused_page(pages, request, WALLET, exc)
        resp = pages.redirect("/wallet")
        pages.sessions.clear(resp, request, WALLET)
        return resp

    return r
