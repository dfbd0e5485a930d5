"""The web pages ``paytoken serve`` serves beside the API: the merchant's till (``/till``),
the issuer's console (``/console``) and the account holder's wallet (``/wallet``).

Server-rendered Jinja2 templates with a little JavaScript from ``static/`` (no front-end
build, nothing from a CDN). The pages call the same ``Backend`` the API does; they are
left out of the OpenAPI schema. Safety (docs/SECURITY.md, "The web pages"): sealed
session cookies (``session.py``), a CSRF token on every form, a content security policy,
no key in any page, URL or log, and the API's throttles.

Usage::

    web.mount(app, backend)     # in backend.api.app.create_app
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from paytoken.web import console, till, wallet
from paytoken.web.pages import STATIC, Pages, SecurityHeaders
from paytoken.web.session import Sessions


def mount(app: FastAPI, backend) -> None:
    """Add the pages, their static files and their security headers to ``app``."""
    key = backend.keyring.derive("web-session") if backend.keyring is not None else None
    pages = Pages(backend, Sessions(key, backend.clock))
    app.include_router(till.router(pages), include_in_schema=False)
    app.include_router(console.router(pages), include_in_schema=False)
    app.include_router(wallet.router(pages), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(SecurityHeaders)
