"""What the three areas share: templates, forms, login with the API's throttle, money in
major units, times, the security headers.

Usage::

    pages = Pages(backend, sessions)
    return pages.render(request, "till.html", TILL, session, payments=...)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qsl

from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from paytoken.backend.verify import (
    CODE_EXPIRED,
    CODE_FUTURE,
    CODE_INVALID,
    CODE_REPLAYED,
    INSUFFICIENT_FUNDS,
    LIMIT_EXCEEDED,
    TOKEN_LOCKED,
    TOKEN_REVOKED,
)
from paytoken.web.session import Area, Session, Sessions, csrf_ok, same_origin

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
MAX_FIELDS = 40

# The content security policy of every page: nothing but this server's own scripts, styles
# and images (the QR and the drift chart are inline SVG, no script or style attribute).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
WEB_PATHS = ("/till", "/console", "/wallet", "/static/")

# Refusal reasons in words, for the till's clerk and the wallet's holder.
REASON_WORDS = {
    CODE_INVALID: "not a valid payment code for this issuer",
    CODE_REPLAYED: "this code was already used",
    CODE_EXPIRED: "this code has expired: ask for a fresh one",
    CODE_FUTURE: "this code is from the future: the token's clock is wrong",
    TOKEN_LOCKED: "the token is locked",
    TOKEN_REVOKED: "the token is revoked",
    INSUFFICIENT_FUNDS: "not enough money on the account",
    LIMIT_EXCEEDED: "over the token's spending limit",
}

_AMOUNT = re.compile(r"\A([0-9]{1,10})(?:[.,]([0-9]{1,2}))?\Z")


class FormError(ValueError):
    """A form field is wrong: the message says which and how, in one line."""


def parse_amount(text: str | None) -> int:
    """``12.50`` (or ``12,50``, ``12.5``, ``12``) in major units -> 1250 minor units."""
    s = (text or "").strip().replace(" ", "")
    m = _AMOUNT.match(s)
    if not m:
        raise FormError("amount: write it as 12.50 (digits, then at most two decimals)")
    minor = int(m[1]) * 100 + int((m[2] or "0").ljust(2, "0"))
    if minor < 1:
        raise FormError("amount must be more than 0.00")
    if minor > 10**12:
        raise FormError("amount is too large")
    return minor


def major(minor: int | None) -> str:
    """1250 -> ``12.50``; None -> an empty string."""
    if minor is None:
        return ""
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


def parse_limit(text: str | None, what: str) -> int | None:
    """An optional limit in major units: blank -> None (no limit)."""
    if not (text or "").strip():
        return None
    try:
        return parse_amount(text)
    except FormError as exc:
        raise FormError(f"{what}: {str(exc).split(': ', 1)[-1]}") from None


def utc(t: int | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if t is None:
        return "—"
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime(fmt)


def day_bounds(now: int) -> tuple[int, int]:
    start = now - now % 86_400
    return start, start + 86_400


def _ppm(v: float | None) -> str:
    return "—" if v is None else f"{v:+.1f}"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(major=major, utc=utc, ppm=_ppm,
                       hm=lambda t: utc(t, "%H:%M:%S"),
                       words=lambda r: REASON_WORDS.get(r, r or ""))
    return env


class Pages:
    def __init__(self, backend, sessions: Sessions) -> None:
        self.backend = backend
        self.sessions = sessions
        self.env = _env()

    def now(self) -> int:
        return self.backend.now()

    def render(self, request: Request, template: str, area: Area, s: Session | None,
               status: int = 200, cookie: bool = True, **ctx) -> HTMLResponse:
        """The page, with the session's cookie renewed (a fresh pre-login one if none;
        ``cookie=False`` leaves the browser's cookie as it is)."""
        s = s or self.sessions.new()
        html = self.env.get_template(template).render(area=area.name, csrf=s.csrf, session=s, **ctx)
        resp = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
        if cookie:
            self.sessions.write(resp, request, area, s)
        return resp

    @staticmethod
    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    async def form(self, request: Request, area: Area) -> tuple[Session | None, dict[str, str]]:
        """The posted form after its CSRF check: (the session, the fields).

        Raises ``Refused`` (403) without a matching CSRF token or from another origin."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise Refused(415, "send the page's form (application/x-www-form-urlencoded)")
        body = await request.body()
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS,
                              strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "the form could not be read") from None
        fields: dict[str, str] = {}
        for k, v in pairs:
            fields.setdefault(k, v)
        s = self.sessions.read(request, area)
        if not same_origin(request) or not csrf_ok(s, fields.get("csrf")):
            raise Refused(403, "the form's security token is missing or old: reload the page and try again")
        return s, fields

    async def login(self, request: Request, key: str, check: Callable[[str], Awaitable[str | None]]) -> str | int:
        """The subject ``check`` finds for ``key`` (a name), or the seconds to wait (0: just wrong).

        A wrong key is charged to the client address as at the API (rules.BAD_KEYS):
        past the budget the answer is a wait, not another try; a good key is never throttled."""
        key = key.strip()
        subject = await check(key) if key and key.isascii() and len(key) <= 200 else None
        if subject is not None:
            return subject
        client = request.client.host if request.client else "-"
        return self.backend.throttled_client(client) or await run_in_threadpool(self.backend.bad_key, client)


class Refused(Exception):
    """A request the pages refuse (bad CSRF, wrong content type): status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SecurityHeaders:
    """The CSP and the other browser hardening headers on every page and static file."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(WEB_PATHS):
            return await self.app(scope, receive, send)

        async def with_headers(msg):
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers", ())}
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()
                         if k.lower().encode() not in have]
                msg = dict(msg, headers=list(msg.get("headers", ())) + extra)
            await send(msg)

        return await self.app(scope, receive, with_headers)


def refused_page(pages: Pages, request: Request, area: Area, exc: Refused) -> Response:
    return pages.render(request, "refused.html", area, None, status=exc.status, cookie=False,
                        message=str(exc))

