"""The online factory and desk: the issuer reached only over its admin HTTP API.

``HttpIssuer`` implements ``station.issuer.Issuer`` (the station) and
``station.issuer.DeskIssuer`` (the service desk) with an admin key; the station
holds no master key and no database URL. It gets the scheme key once, allocates a
pending id with a sync key it made, and activates with the secret in the request body
(``backend/api/factory.py``). Its own verify step computes codes here, from the secret
it made and the scheme key: no code leaves the issuer.

Retries: every call but ``allocate`` is idempotent on the issuer, so a dropped
connection or a 502/503/504 is retried (3 tries, 0.5 s then 1 s apart). ``allocate``
is retried only when the request never left this host (a refused connection); a lost
answer leaves a pending record that never verifies.

Errors are ``BackendError`` of the kind the HTTP status names (``api.errors.kind_of``;
unreachable: unavailable); their messages
are the issuer's, which never hold a secret. The admin key is never in a message.

Usage::

    issuer = HttpIssuer("https://issuer.example", admin_key)
    station = Station(issuer, board="pico")
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from paytoken.backend import INVALID, NOT_FOUND, UNAUTHORIZED, UNAVAILABLE, BackendError
from paytoken.backend.api.errors import kind_of
from paytoken.station import ops
from paytoken.station.issuer import SYNC_KEY_BYTES

CROSS_CHECK_PER_CALL = 250  # backend.api.factory.MAX_TIMES

RETRY_STATUS = (502, 503, 504)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """``url`` without a trailing slash; https, or http to this machine only (the secrets
    travel in the bodies)."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise BackendError(f"not an issuer URL: {url!r} (give https://host[:port])", INVALID)
    if u.username or u.password or u.query or u.fragment:
        raise BackendError("the issuer URL must not hold credentials, a query or a fragment", INVALID)
    if u.scheme == "http" and not _loopback(u.hostname):
        raise BackendError(
            f"plain http to {u.hostname}: secrets would cross the network unencrypted; use https://", INVALID)
    return url.rstrip("/")


def _detail(data: Any) -> str:
    d = data.get("detail") if isinstance(data, dict) else None
    if isinstance(d, list):  # a validation error: where and what, never the input
        return "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
                         for e in d if isinstance(e, dict)) or "invalid request"
    return str(d) if d else "no detail"


class HttpIssuer:
    """The issuer's admin API (``Authorization: Bearer <admin key>``)."""

    def __init__(self, url: str, admin_key: str, *, timeout: float = 10.0, tries: int = 3) -> None:
        if not admin_key or not admin_key.isascii() or not admin_key.isprintable():
            raise BackendError("an admin key is needed (--admin-key-file or $PAYTOKEN_ADMIN_KEY)", UNAUTHORIZED)
        self.url = check_url(url)
        self.tries = max(1, tries)
        self._client = httpx.Client(base_url=self.url, timeout=timeout,
                                    headers={"Authorization": f"Bearer {admin_key}"})
        self._keys: dict[str, bytes] = {}
        self._formats: dict[str, int] = {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpIssuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the one way out -------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
              idempotent: bool = True) -> tuple[int, dict[str, Any]]:
        last = ""
        for attempt in range(self.tries):
            if attempt:
                time.sleep(0.5 * 2 ** (attempt - 1))
            try:
                r = self._client.request(method, path, json=body)
            except httpx.ConnectError as e:
                last = type(e).__name__  # never sent: safe to try again
                continue
            except httpx.TransportError as e:
                last = type(e).__name__
                if idempotent:
                    continue
                raise BackendError(f"the issuer at {self.url} did not answer {path} ({last}); "
                                   "not retried", UNAVAILABLE) from None
            if r.status_code in RETRY_STATUS and idempotent and attempt + 1 < self.tries:
                last = f"HTTP {r.status_code}"
                continue
            try:
                data = r.json()
            except ValueError:
                raise BackendError(f"the issuer answered {path} with {r.status_code} without JSON",
                                   UNAVAILABLE) from None
            return r.status_code, data
        raise BackendError(f"cannot reach the issuer at {self.url} ({last})", UNAVAILABLE)

    def _ok(self, method: str, path: str, body: dict[str, Any] | None = None, *,
            idempotent: bool = True, allow: tuple[int, ...] = ()) -> tuple[int, dict[str, Any]]:
        status, data = self._call(method, path, body, idempotent=idempotent)
        if status in (200, 201) or status in allow:
            return status, data
        raise BackendError(f"the issuer refused {path} ({status}): {_detail(data)}", kind_of(status))

    # ---- the station (station.issuer.Issuer) -----------------------------------------

    def scheme_key(self, prefix: str) -> bytes | None:
        if prefix not in self._keys:
            status, data = self._ok("GET", f"/v1/factory/schemes/{prefix}", allow=(404,))
            if status == 404:
                return None
            self._keys[prefix] = bytes.fromhex(data["scheme_key"])
            self._formats[prefix] = int(data.get("format", 1))
        return self._keys[prefix]

    def scheme_format(self, prefix: str) -> int:
        if self.scheme_key(prefix) is None:
            raise BackendError(f"no scheme key for prefix {prefix}", NOT_FOUND)
        return self._formats[prefix]

    def allocate(self, actor: str) -> tuple[int, bytes]:
        # ``actor``: the issuer records the admin key's name (the station is that key)
        sync_key = secrets.token_bytes(SYNC_KEY_BYTES)
        _, data = self._ok("POST", "/v1/factory/tokens", {"sync_key": sync_key.hex()},
                           idempotent=False)
        return int(data["token_id"]), sync_key

    def status(self, token_id: int) -> str | None:
        status, data = self._ok("GET", f"/v1/tokens/{token_id}", allow=(404,))
        return None if status == 404 else str(data["status"])

    def discard(self, token_id: int, actor: str) -> None:
        self._ok("POST", f"/v1/factory/tokens/{token_id}/discard")

    def unlock_mac(self, token_id: int, nonce: str, actor: str) -> str:
        _, data = self._ok("POST", f"/v1/factory/tokens/{token_id}/pending-unlock", {"nonce": nonce})
        return str(data["mac"])

    def expected_codes(self, token_id: int, secret: bytes, prefix: str, times: list[int]) -> list[str]:
        key = self.scheme_key(prefix)
        if key is None:
            raise ops.OpsError("verify", f"no scheme key for prefix {prefix}")
        return ops.host_codes(secret, token_id, times, key, prefix, self.scheme_format(prefix))

    def activate(self, token_id: int, secret: bytes, sync_key: bytes, prefix: str, *,
                 actor: str, drift_ppm: float | None) -> None:
        self._ok("POST", f"/v1/factory/tokens/{token_id}/activate",
                 {"secret": secret.hex(), "sync_key": sync_key.hex(), "prefix": prefix,
                  "drift_ppm": drift_ppm})

    # ---- the service desk (station.issuer.DeskIssuer) --------------------------------

    def clock_sync(self, token_id: int, nonce: str) -> tuple[int, str]:
        _, d = self._ok("POST", f"/v1/tokens/{token_id}/clock-sync", {"nonce": nonce})
        return int(d["utc"]), str(d["mac"])

    def unlock_auth(self, token_id: int, nonce: str) -> str:
        _, d = self._ok("POST", f"/v1/tokens/{token_id}/unlock-auth", {"nonce": nonce})
        return str(d["mac"])

    def clock_offset(self, token_id: int, offset_s: int) -> None:
        self._ok("POST", f"/v1/tokens/{token_id}/clock-offset", {"offset_s": offset_s})

    def cross_check(self, token_id: int, times: list[int], codes: list[str]) -> list[int]:
        # At most CROSS_CHECK_PER_CALL times a request, so a body stays under the server's 16 KiB.
        if len(codes) != len(times):
            raise BackendError("give one code per time", INVALID)
        bad: list[int] = []
        for i in range(0, len(times), CROSS_CHECK_PER_CALL):
            part = slice(i, i + CROSS_CHECK_PER_CALL)
            _, d = self._ok("POST", f"/v1/tokens/{token_id}/cross-check",
                            {"times": times[part], "codes": codes[part]})
            bad += [int(t) for t in d["mismatches"]]
        return bad

    def move_token(self, token_id: int, prefix: str) -> tuple[bytes, int]:
        _, d = self._ok("POST", f"/v1/tokens/{token_id}/move", {"prefix": prefix})
        return bytes.fromhex(d["scheme_key"]), int(d["format"])

    def finish_move(self, token_id: int, prefix: str) -> None:
        self._ok("POST", f"/v1/tokens/{token_id}/move/finish", {"prefix": prefix})
