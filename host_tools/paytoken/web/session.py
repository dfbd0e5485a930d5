"""The pages' sessions: a sealed cookie per area (till, console, wallet), CSRF tokens.

A session is JSON sealed with AES-GCM under a key derived from the master key
(``Keyring.derive``), so every server process opens it and nobody else can read or
forge it; the area's name is the associated data, so a till cookie is no console
cookie. It holds the key the holder logged in with (the browser never sees it in
clear: the cookie is opaque, ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over https),
the CSRF token every form carries, and two expiries: idle (renewed by each page) and
absolute (from login). Before login the same cookie holds only a CSRF token, so the
login form is protected as well.

Usage::

    sessions = Sessions(keyring.derive("web-session"), clock)
    s = sessions.read(request, TILL)          # None: absent, forged or expired
    sessions.write(response, request, TILL, s)
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response


@dataclass(frozen=True)
class Area:
    """One area of pages: its path (the cookie's), cookie name and session lifetimes (s)."""

    name: str
    path: str
    idle_s: int
    max_s: int

    @property
    def cookie(self) -> str:
        return "pt_" + self.name


TILL = Area("till", "/till", idle_s=2 * 3600, max_s=12 * 3600)  # a shift at the till
CONSOLE = Area("console", "/console", idle_s=15 * 60, max_s=8 * 3600)
WALLET = Area("wallet", "/wallet", idle_s=10 * 60, max_s=3600)
PRE_LOGIN_S = 30 * 60  # a login form's CSRF token


@dataclass(frozen=True)
class Session:
    csrf: str
    born: int
    seen: int
    key: str | None = None  # the API key logged in with; None before login
    subject: str = ""  # who, for the page (a merchant's name, an admin's name, a token id)

    @property
    def logged_in(self) -> bool:
        return self.key is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secure_request(request: Request) -> bool:
    """True when the page was asked for over https (uvicorn sets the scheme from a trusted
    proxy's X-Forwarded-Proto with --proxy-headers): then cookies are ``Secure``."""
    return request.url.scheme == "https"


class Sessions:
    def __init__(self, key: bytes | None, clock: Callable[[], float]) -> None:
        # No master key (a Backend built without one): a per-process key, sessions die with it.
        self._aead = AESGCM(key if key is not None else AESGCM.generate_key(256))
        self.clock = clock

    def now(self) -> int:
        return int(self.clock())

    def new(self, key: str | None = None, subject: str = "") -> Session:
        now = self.now()
        return Session(csrf=secrets.token_urlsafe(24), born=now, seen=now, key=key, subject=subject)

    def seal(self, area: Area, s: Session) -> str:
        nonce = os.urandom(12)
        data = json.dumps({"c": s.csrf, "b": s.born, "s": s.seen, "k": s.key, "u": s.subject},
                          separators=(",", ":")).encode()
        return _b64(nonce + self._aead.encrypt(nonce, data, area.name.encode()))

    def open(self, area: Area, text: str | None) -> Session | None:
        """The session in a cookie value, or None if absent, forged, for another area or expired."""
        if not text or len(text) > 4096:
            return None
        try:
            raw = _unb64(text)
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], area.name.encode()))
            s = Session(csrf=data["c"], born=int(data["b"]), seen=int(data["s"]), key=data["k"],
                        subject=str(data.get("u", "")))
        except (ValueError, InvalidTag, KeyError, TypeError):
            return None
        now = self.now()
        max_s = area.max_s if s.logged_in else PRE_LOGIN_S
        idle_s = area.idle_s if s.logged_in else PRE_LOGIN_S
        if now - s.born > max_s or now - s.seen > idle_s or s.seen > now + 60:
            return None
        return s

    def read(self, request: Request, area: Area) -> Session | None:
        return self.open(area, request.cookies.get(area.cookie))

    def write(self, response: Response, request: Request, area: Area, s: Session) -> None:
        """Set the cookie, the idle expiry renewed from now."""
        s = replace(s, seen=self.now())
        max_s = area.max_s if s.logged_in else PRE_LOGIN_S
        response.set_cookie(area.cookie, self.seal(area, s), max_age=max(1, max_s - (s.seen - s.born)),
                            path=area.path, httponly=True, samesite="strict",
                            secure=secure_request(request))

    def clear(self, response: Response, request: Request, area: Area) -> None:
        response.delete_cookie(area.cookie, path=area.path, httponly=True, samesite="strict",
                               secure=secure_request(request))


def csrf_ok(s: Session | None, given: str | None) -> bool:
    """The form's token is the session's (constant-time)."""
    if s is None or not given:
        return False
    return hmac.compare_digest(s.csrf.encode(), given.encode("utf-8", "replace"))


def same_origin(request: Request) -> bool:
    """A browser's Origin (or, without one, Referer) names this server, or is absent."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    base = f"{request.url.scheme}://{request.url.netloc}"
    return origin == base or origin.startswith(base + "/")
