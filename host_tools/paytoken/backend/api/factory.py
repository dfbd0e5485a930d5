"""The online factory's admin endpoints: what a provisioning station or a service desk
needs from the issuer over HTTP, so neither holds the master key or a database URL.

Every endpoint takes an admin key (``Authorization: Bearer <admin key>``), like the
other admin endpoints. Secrets travel only in request bodies, never in a URL; no
response echoes the token secret or sync key sent, and no error names them.

- ``GET  /v1/factory/schemes/{prefix}``: the scheme key the tokens get (no-store).
- ``POST /v1/factory/tokens``: allocate a ``pending`` id with the station's sync key.
- ``POST /v1/factory/tokens/{id}/activate``: secret, sync key, prefix -> ``active``;
  a retry of an activation that went through answers the same (idempotent).
- ``POST /v1/factory/tokens/{id}/discard``: give up a pending id (idempotent).
- ``POST /v1/factory/tokens/{id}/pending-unlock``: the UNLOCK mac of a locked but
  pending token (a run cut after its lock).
- ``POST /v1/tokens/{id}/cross-check``: the desk's codes vs the issuer's; answers only
  which times differ, so it never hands out a valid payment code.
- ``POST /v1/tokens/{id}/move`` ``{prefix}``: the desk moves a token to another scheme
  (a new code format); the scheme it leaves stays accepted for it until
  ``POST /v1/tokens/{id}/move/finish`` ``{prefix}`` (docs/FORMAT.md). The move answers
  the new scheme's key for the token's config (no-store).

Usage (in ``app.create_app``)::

    app.include_router(factory.router(backend, admin))
"""

# No `from __future__ import annotations`: FastAPI resolves the local Annotated aliases.

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema

from paytoken.backend import CONFLICT, NOT_FOUND, BackendError, rules
from paytoken.backend.api.types import JsonInt, JsonNumber
from paytoken.backend.service import Backend

TokenId = Annotated[int, Path(ge=0, le=rules.MAX_TOKEN_ID, description="token id, 0 to 99999999")]
Prefix = Annotated[str, Path(pattern=r"^[0-9]{2}$", description="scheme prefix, two digits")]
# Times per request: the largest body the schema admits (250 times of 13 digits and codes of
# 24) stays under the app's 16 KiB body limit. A desk sends more in several requests.
MAX_TIMES = 250
MAX_TIME = 2**40 - 1  # Backend.cross_check: UTC seconds below 2**40
_HEX_KEY = r"^(?:[0-9a-f]{2}){16,64}$"  # 16 to 64 bytes, lower-case hex


class SchemeKeyOut(BaseModel):
    prefix: str
    scheme_key: str = Field(description="the AES-128 scheme key, 32 hex digits (a secret)")
    format: int = Field(default=1, description="the scheme's code format (docs/FORMAT.md)")


# a prefix paycode.check_prefix admits: no leading 0, none of another wallet's starts
_OUR_PREFIX = r"^(1[6-9]|2[0-4]|3[1-9]|[45][0-9]|6[013-9]|[7-9][0-9])$"


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: StrictStr = Field(pattern=_OUR_PREFIX, description="the scheme the token moves to")


class MoveOut(BaseModel):
    token_id: int
    prefix: str
    format: int = Field(description="the new scheme's code format")
    prev_prefix: str | None = Field(description="the scheme left: accepted too until the move finishes")
    scheme_key: str = Field(description="the new scheme's key, 32 hex digits (a secret, for the token)")


class MoveDoneOut(BaseModel):
    token_id: int
    prefix: str
    finished: bool = Field(description="false: there was no move to finish")


class AllocateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sync_key: StrictStr = Field(pattern=_HEX_KEY, description="the token's sync key, hex (16+ bytes)")


class AllocateOut(BaseModel):
    token_id: int
    status: Literal["pending"]


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: StrictStr = Field(pattern=_HEX_KEY, description="the token secret, hex (16+ bytes)")
    sync_key: StrictStr = Field(pattern=_HEX_KEY, description="the sync key given at allocation, hex")
    prefix: StrictStr = Field(pattern=r"^[0-9]{2}$", description="scheme prefix")
    drift_ppm: Annotated[JsonNumber, Field(ge=-500, le=500),
                         WithJsonSchema({"type": "number", "minimum": -500, "maximum": 500})] | None = Field(
        default=None, description="residual clock rate when known, ppm (else learned)")


class ActivateOut(BaseModel):
    token_id: int
    status: str
    prefix: str | None
    already: bool = Field(description="true: this activation had already been recorded (a retry)")


class DiscardOut(BaseModel):
    token_id: int
    discarded: bool = Field(description="false: there was no such pending record (already gone)")


class NonceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nonce: StrictStr = Field(pattern=rules.schema(rules.NONCE_RE), description="the token's CHALLENGE nonce")


class UnlockMacOut(BaseModel):
    token_id: int
    mac: str


class CrossCheckIn(BaseModel):
    """``codes[i]`` is the token's code at ``times[i]``. A time with no code counts as a
    mismatch, and codes past the last time are not compared (``compared`` says how many
    were): JSON Schema cannot tie two lengths, so unequal ones are answered, never refused."""

    model_config = ConfigDict(extra="forbid")
    times: list[Annotated[JsonInt, Field(ge=0, le=MAX_TIME),
                          WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_TIME})]] = Field(
        min_length=1, max_length=MAX_TIMES, description="UTC seconds")
    codes: list[Annotated[StrictStr, Field(pattern=r"^[0-9A-Za-z]{0,24}$")]] = Field(
        min_length=1, max_length=MAX_TIMES, description="the token's code at each time, in order, "
                                                         "as it showed it (up to 24 letters or digits)")


class CrossCheckOut(BaseModel):
    token_id: int
    compared: int
    mismatches: list[int] = Field(description="the times at which the codes differ")


# The app declares the statuses every admin route can answer (400, 401, 404, 409, 413, 422,
# 429) when it includes this router, all with its one error body; a route adds the others.
_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
R503 = {503: {"description": "no free token id was found (try again)", "content": _ERROR_BODY}}


def _key(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)  # the pattern admits only whole lower-case hex bytes


def router(backend: Backend, admin: Callable[..., str]) -> APIRouter:
    """The endpoints over ``backend``; ``admin`` is the app's admin-key dependency."""
    r = APIRouter(tags=["factory"])
    Admin = Annotated[str, Depends(admin)]

    @r.get("/v1/factory/schemes/{prefix}", response_model=SchemeKeyOut)
    def scheme_key(prefix: Prefix, actor: Admin, response: Response) -> dict:
        """The scheme key a station writes onto its tokens (audited; not cached)."""
        response.headers["Cache-Control"] = "no-store"
        key = backend.station_scheme_key(prefix, actor).hex()
        return {"prefix": prefix, "scheme_key": key, "format": backend.scheme_format(prefix) or 1}

    @r.post("/v1/factory/tokens", status_code=201, response_model=AllocateOut, responses=R503)
    def allocate(body: AllocateIn, actor: Admin) -> dict:
        """A fresh ``pending`` token id holding the station's sync key. Not idempotent: a
        lost answer leaves a pending record that never verifies (the station does not retry)."""
        return {"token_id": backend.allocate_token(actor, sync_key=_key(body.sync_key)),
                "status": "pending"}

    @r.post("/v1/factory/tokens/{token_id}/activate", response_model=ActivateOut)
    def activate(token_id: TokenId, body: ActivateIn, actor: Admin) -> dict:
        """Record the secret and sync key; the token becomes ``active``. Repeating an
        activation that went through (same secret and sync key) answers it again."""
        secret, sync_key = _key(body.secret), _key(body.sync_key)
        backend.scheme_defaults(body.prefix)  # an unknown prefix is a 404 (the schema admits any two digits)
        try:
            backend.activate_token(token_id, secret, sync_key, body.prefix, actor=actor,
                                   drift_ppm=body.drift_ppm)
            already = False
        except BackendError as exc:
            if exc.kind != CONFLICT or not backend.activation_matches(token_id, secret, sync_key):
                raise
            already = True
        info = backend.token_info(token_id)
        return {"token_id": token_id, "status": info["status"], "prefix": info["prefix"],
                "already": already}

    @r.post("/v1/factory/tokens/{token_id}/discard", response_model=DiscardOut)
    def discard(token_id: TokenId, actor: Admin) -> dict:
        """Remove a pending record (a run that failed before its lock). Idempotent; a
        token past pending is refused with 409."""
        if backend.discard_pending(token_id, actor):
            return {"token_id": token_id, "discarded": True}
        try:
            status = backend.token_info(token_id)["status"]
        except BackendError as exc:
            if exc.kind == NOT_FOUND:
                return {"token_id": token_id, "discarded": False}
            raise
        raise BackendError(f"token {token_id} is {status}, not pending: not discarded", CONFLICT)

    @r.post("/v1/factory/tokens/{token_id}/pending-unlock", response_model=UnlockMacOut)
    def pending_unlock(token_id: TokenId, body: NonceIn, actor: Admin) -> dict:
        """``sync_mac(sync_key, 'UNLOCK', nonce, id)`` for a locked token still pending."""
        return {"token_id": token_id, "mac": backend.pending_unlock_mac(token_id, body.nonce, actor)}

    @r.post("/v1/tokens/{token_id}/cross-check", response_model=CrossCheckOut)
    def cross_check(token_id: TokenId, body: CrossCheckIn, actor: Admin) -> dict:
        """Compare a token's codes with the issuer's for its sealed secret; changes no state.
        ``compared`` is the number of times; a time without a code is a mismatch."""
        n = len(body.times)
        codes = body.codes[:n] + [""] * (n - len(body.codes))  # "" never equals a code
        bad = backend.cross_check(token_id, body.times, codes, actor)
        return {"token_id": token_id, "compared": n, "mismatches": bad}

    @r.post("/v1/tokens/{token_id}/move", response_model=MoveOut)
    def move(token_id: TokenId, body: MoveIn, actor: Admin, response: Response) -> dict:
        """Step 1 of a token's move to the scheme ``prefix`` (idempotent; audited)."""
        response.headers["Cache-Control"] = "no-store"
        d = backend.move_token(token_id, body.prefix, actor)
        return dict(d, scheme_key=d["scheme_key"].hex())

    @r.post("/v1/tokens/{token_id}/move/finish", response_model=MoveDoneOut)
    def move_finish(token_id: TokenId, body: MoveIn, actor: Admin) -> dict:
        """Step 2, once the token computes the new scheme's codes: the old one is refused."""
        return backend.finish_move(token_id, body.prefix, actor)

    return r
