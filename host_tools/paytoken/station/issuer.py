"""The factory station's and the service desk's one seam to the issuer.

``Station`` (``provision.py``) talks to an ``Issuer`` and the desk (``desk.py``) to a
``DeskIssuer``; neither opens a database or reads a batch itself. Implementations:

- ``DbIssuer``: the embedded single-machine default (``--db``), over a ``Backend``
  (station and issuer one program; needs the master key). Both seams.
- ``station.online.HttpIssuer``: the issuer's admin HTTP API with an admin key (no
  master key, no database URL). Both seams.
- ``station.offline.OfflineIssuer``: a batch file and a PSKC file, no issuer reached
  (the station only).

Errors: ``BackendError`` or ``ops.OpsError``, whose messages never hold a secret.

Usage::

    issuer = DbIssuer(backend)
    token_id, sync_key = issuer.allocate("station:host:/dev/ttyACM0")
"""

from __future__ import annotations

import secrets
from typing import Protocol

from paytoken.backend import NOT_FOUND, BackendError
from paytoken.backend.service import Backend
from paytoken.station import ops

SYNC_KEY_BYTES = 20


class Issuer(Protocol):
    """What a provisioning station needs from the issuer."""

    def scheme_key(self, prefix: str) -> bytes | None:
        """The scheme key the tokens get (None: the issuer has no such prefix)."""

    def scheme_format(self, prefix: str) -> int:
        """The code format of the scheme (``paycode.FORMATS``), written into the config."""

    def allocate(self, actor: str) -> tuple[int, bytes]:
        """A fresh ``pending`` token id and the sync key that goes with it."""

    def status(self, token_id: int) -> str | None:
        """``active`` (provisioned: skip), ``pending`` (a cut run), another status, or
        None (unknown here)."""

    def discard(self, token_id: int, actor: str) -> None:
        """Give up a pending id (a run that failed before the lock)."""

    def unlock_mac(self, token_id: int, nonce: str, actor: str) -> str:
        """``sync_mac(sync_key, 'UNLOCK', nonce, id)`` for a locked but pending token."""

    def expected_codes(self, token_id: int, secret: bytes, prefix: str, times: list[int]) -> list[str]:
        """The codes the token must show at ``times`` (the verify step's oracle)."""

    def activate(self, token_id: int, secret: bytes, sync_key: bytes, prefix: str, *,
                 actor: str, drift_ppm: float | None) -> None:
        """The last step: the token is locked and good; record it."""


class DeskIssuer(Protocol):
    """What the service desk needs from the issuer (for a token already active)."""

    def clock_sync(self, token_id: int, nonce: str) -> tuple[int, str]:
        """The issuer's UTC and ``sync_mac(sync_key, 'SETTIME', nonce, utc)``."""

    def unlock_auth(self, token_id: int, nonce: str) -> str:
        """``sync_mac(sync_key, 'UNLOCK', nonce, id)``: authorizes a firmware update."""

    def clock_offset(self, token_id: int, offset_s: int) -> None:
        """Record the offset seen before a clock sync (the drift restarts)."""

    def cross_check(self, token_id: int, times: list[int], codes: list[str]) -> list[int]:
        """The times at which the token's ``codes`` differ from the issuer's."""

    def move_token(self, token_id: int, prefix: str) -> tuple[bytes, int]:
        """Start a move to the scheme ``prefix``: (its key, its format); the issuer accepts
        the old scheme's codes too until ``finish_move``."""

    def finish_move(self, token_id: int, prefix: str) -> None:
        """The token computes ``prefix``'s codes: the old scheme's are refused from now."""


class DbIssuer:
    """The issuer database in this process (needs the master key)."""

    def __init__(self, backend: Backend, actor: str = "desk") -> None:
        """``actor``: who the desk calls are audited as (the station passes its own)."""
        self.backend = backend
        self.actor = actor
        self._keys: dict[str, bytes] | None = None
        self._formats: dict[str, int] = {}

    def scheme_key(self, prefix: str) -> bytes | None:
        if self._keys is None:
            self._keys = self.backend.scheme_keys()
        return self._keys.get(prefix)

    def scheme_format(self, prefix: str) -> int:
        if prefix not in self._formats:
            self._formats[prefix] = self.backend.scheme_format(prefix) or 1
        return self._formats[prefix]

    def allocate(self, actor: str) -> tuple[int, bytes]:
        sync_key = secrets.token_bytes(SYNC_KEY_BYTES)
        return self.backend.allocate_token(actor, sync_key=sync_key), sync_key

    def status(self, token_id: int) -> str | None:
        try:
            return self.backend.token_info(token_id)["status"]
        except BackendError as e:
            if e.kind == NOT_FOUND:
                return None
            raise

    def discard(self, token_id: int, actor: str) -> None:
        self.backend.discard_pending(token_id, actor)

    def unlock_mac(self, token_id: int, nonce: str, actor: str) -> str:
        return self.backend.pending_unlock_mac(token_id, nonce, actor)

    def expected_codes(self, token_id: int, secret: bytes, prefix: str, times: list[int]) -> list[str]:
        key = self.scheme_key(prefix)
        if key is None:
            raise ops.OpsError("verify", f"no scheme key for prefix {prefix}")
        return ops.host_codes(secret, token_id, times, key, prefix, self.scheme_format(prefix))

    def activate(self, token_id: int, secret: bytes, sync_key: bytes, prefix: str, *,
                 actor: str, drift_ppm: float | None) -> None:
        self.backend.activate_token(token_id, secret, sync_key, prefix, actor=actor,
                                    drift_ppm=drift_ppm)

    # ---- the service desk ------------------------------------------------------------

    def clock_sync(self, token_id: int, nonce: str) -> tuple[int, str]:
        d = self.backend.clock_sync(token_id, nonce, self.actor)
        return int(d["utc"]), str(d["mac"])

    def unlock_auth(self, token_id: int, nonce: str) -> str:
        return str(self.backend.unlock_auth(token_id, nonce, self.actor)["mac"])

    def clock_offset(self, token_id: int, offset_s: int) -> None:
        self.backend.record_clock_offset(token_id, offset_s, self.actor)

    def cross_check(self, token_id: int, times: list[int], codes: list[str]) -> list[int]:
        return self.backend.cross_check(token_id, times, codes, self.actor)

    def move_token(self, token_id: int, prefix: str) -> tuple[bytes, int]:
        d = self.backend.move_token(token_id, prefix, self.actor)
        return d["scheme_key"], int(d["format"])

    def finish_move(self, token_id: int, prefix: str) -> None:
        self.backend.finish_move(token_id, prefix, self.actor)
