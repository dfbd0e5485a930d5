"""The admin's token routes under ``/v1/tokens/{id}`` (admin key): show, limits and
currency, revoke, unlock, clock sync and offset, unlock authorization.

Usage::

    app.include_router(tokens.router(backend, auth))
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, Depends

from paytoken.backend.api import schemas
from paytoken.backend.api.deps import Auth
from paytoken.backend.api.schemas import AUTH, BODY, R404, R409, R413, responses
from paytoken.backend.service import Backend


def router(backend: Backend, auth: Auth) -> APIRouter:
    """The token routes over ``backend``."""
    r = APIRouter()
    Admin = Annotated[str, Depends(auth.admin)]

    TOKEN = responses(AUTH, R404, R413)

    @r.get("/v1/tokens/{token_id}", response_model=schemas.TokenOut, responses=TOKEN)
    def get_token(token_id: schemas.TokenId, _actor: Admin) -> dict:
        return backend.token_info(token_id)

    @r.patch("/v1/tokens/{token_id}", response_model=schemas.TokenOut, responses=responses(TOKEN, BODY, R409))
    def set_token(token_id: schemas.TokenId, body: schemas.TokenSetIn, actor: Admin) -> dict:
        """Change a token's limits and currency (fields left out stay; null removes a limit)."""
        return backend.set_token(token_id, actor, **body.model_dump(exclude_unset=True))

    @r.post("/v1/tokens/{token_id}/revoke", response_model=schemas.TokenOut, responses=responses(TOKEN, BODY, R409))
    def revoke(token_id: schemas.TokenId, actor: Admin, body: schemas.RevokeIn | None = None) -> dict:
        """Final: a revoked (or lost) token never pays again and its status never changes."""
        return backend.set_status(token_id, body.status if body else "revoked", actor)

    @r.post("/v1/tokens/{token_id}/unlock", response_model=schemas.TokenOut, responses=responses(TOKEN, R409))
    def unlock(token_id: schemas.TokenId, actor: Admin) -> dict:
        return backend.unlock(token_id, actor)

    @r.post("/v1/tokens/{token_id}/clock-sync", response_model=schemas.ClockSyncOut,
              responses=responses(TOKEN, BODY, R409))
    def clock_sync(token_id: schemas.TokenId, body: schemas.NonceIn, actor: Admin) -> dict:
        return backend.clock_sync(token_id, body.nonce, actor)

    @r.post("/v1/tokens/{token_id}/clock-offset", response_model=schemas.TokenOut, responses=responses(TOKEN, BODY))
    def clock_offset(token_id: schemas.TokenId, body: schemas.ClockOffsetIn, actor: Admin) -> dict:
        """Record the offset a service desk observed before SETTIME; the drift restarts at 0."""
        return backend.record_clock_offset(token_id, body.offset_s, actor)

    @r.post("/v1/tokens/{token_id}/unlock-auth", response_model=schemas.UnlockAuthOut,
              responses=responses(TOKEN, BODY, R409))
    def unlock_auth(token_id: schemas.TokenId, body: schemas.NonceIn, actor: Admin) -> dict:
        return backend.unlock_auth(token_id, body.nonce, actor)

    return r
