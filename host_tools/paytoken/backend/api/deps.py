"""The API's authentication dependencies: merchant, admin and (``api/wallet.py``) wallet
keys, ``Authorization: Bearer <key>``; the three kinds of key are separate.

A request without a known key is charged to its client address (rules.BAD_KEYS, in the
database): past the budget it gets 429 with Retry-After instead of 401. A good key is
never throttled here, so a scanner behind a merchant's address does not lock it out.

Usage::

    auth = Auth(backend)
    def handler(mid: Annotated[int, Depends(auth.merchant)]): ...
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from paytoken.backend import THROTTLED, UNAUTHORIZED, BackendError
from paytoken.backend.service import Backend

bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class Auth:
    """The dependencies over one ``backend``: ``merchant`` (its id), ``admin``
    (``admin:<name>``) and ``refuse`` (the answer to a request without a known key)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def refuse(self, request: Request, message: str):
        backend = self.backend
        client = request.client.host if request.client else "-"
        wait = backend.throttled_client(client) or await run_in_threadpool(backend.bad_key, client)
        if wait:
            raise BackendError(f"too many requests without a valid API key; retry after {wait} s", THROTTLED,
                               retry_after=wait)
        raise BackendError(message, UNAUTHORIZED)

    # ``async def``: a known key is answered from memory, without a thread-pool hop
    # (Backend.auth_merchant); an unknown one costs one indexed lookup on the loop.
    async def merchant(self, request: Request, cred: Credentials) -> int:
        key = cred.credentials if cred else None
        mid = self.backend.auth_merchant(key) if key and key.isascii() else None
        if mid is None:
            await self.refuse(request, "a merchant API key is required: Authorization: Bearer <key>")
        return mid

    async def admin(self, request: Request, cred: Credentials) -> str:
        key = cred.credentials if cred else None
        name = await run_in_threadpool(self.backend.auth_admin, key) if key and key.isascii() else None
        if name is None:
            await self.refuse(request, "an admin key is required: Authorization: Bearer <admin key>")
        return "admin:" + name
