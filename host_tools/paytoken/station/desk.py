"""The service desk: a locked token's clock sync, firmware update, info and cross-verify.

Usage::

    api = IssuerAPI("https://issuer.example", admin_key)
    with Device(port) as dev:
        sync_clock(dev, api)          # CHALLENGE -> signed UTC from the issuer -> SETTIME
        update(dev, api, "pico")      # authenticated UNLOCK, deploy (config kept), lock
        cross_verify(dev, backend, steps=20)

The desk never sets a clock or unlocks a token by itself: each change is a ``sync_mac``
the issuer signs over a nonce the token just issued (``/v1/tokens/{id}/clock-sync``,
``/unlock-auth``), so a nonce is used once and a replay is refused by the token.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from paytoken.backend import BackendError
from paytoken.backend.service import Backend
from paytoken.station import deploy as deploy_mod
from paytoken.station import ops
from paytoken.station.transport import Device, DeviceError


class DeskError(Exception):
    """A service-desk operation failed or was refused; never holds a secret."""


class IssuerAPI:
    """The issuer's admin HTTP API (Bearer admin key)."""

    def __init__(self, url: str, admin_key: str, *, timeout: float = 10.0) -> None:
        """``url``: the issuer's base URL; ``admin_key``: an admin API key."""
        if not admin_key:
            raise DeskError("an admin key is needed (--admin-key or $PAYTOKEN_ADMIN_KEY)")
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {admin_key}"}
        self.timeout = timeout

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            r = httpx.post(self.url + path, json=body, headers=self._headers, timeout=self.timeout)
        except httpx.HTTPError as e:
            raise DeskError(f"cannot reach the issuer at {self.url}: {type(e).__name__}") from None
        try:
            data = r.json()
        except ValueError:
            raise DeskError(f"the issuer answered {r.status_code} without JSON") from None
        if r.status_code != 200:
            raise DeskError(f"the issuer refused {path} ({r.status_code}): {data.get('detail')}")
        return data

    def clock_sync(self, token_id: int, nonce: str) -> tuple[int, str]:
        """The issuer's signed UTC time for the token's nonce: (utc, mac)."""
        d = self._post(f"/v1/tokens/{token_id}/clock-sync", {"nonce": nonce})
        return int(d["utc"]), str(d["mac"])

    def unlock_auth(self, token_id: int, nonce: str) -> str:
        """The issuer's UNLOCK mac for the token's nonce."""
        return str(self._post(f"/v1/tokens/{token_id}/unlock-auth", {"nonce": nonce})["mac"])

    def clock_offset(self, token_id: int, offset_s: int) -> dict[str, Any]:
        """Record the offset observed before a clock sync (the drift record)."""
        return self._post(f"/v1/tokens/{token_id}/clock-offset", {"offset_s": offset_s})


def _quick(dev: Device, base: float) -> float:
    # a first INFO try: short on a real board, a quarter of the per-call timeout on a
    # slow one (an emulated Pico given --timeout 90)
    return max(base, dev.timeout / 4)


def _locked_state(dev: Device) -> ops.TokenState:
    try:
        st = ops.info(dev, timeout=_quick(dev, 3.0))
    except ops.OpsError as e:
        raise DeskError(
            f"{dev.port}: no INFO answer ({e}): the token is not locked (a factory token is "
            "provisioned, not synced) or not there"
        ) from None
    if st.token_id is None:
        raise DeskError(f"{dev.port}: the token is not provisioned")
    return st


def info(dev: Device) -> dict[str, Any]:
    """What the token says: ``INFO`` when locked, else the raw REPL probe."""
    try:
        st = ops.info(dev, timeout=_quick(dev, 2.0))
    except ops.OpsError:
        try:
            st = ops.probe(dev)
        except ops.OpsError as e:
            raise DeskError(str(e)) from None
    return asdict(st)


@dataclass
class SyncResult:
    """A clock sync: the token, the time it read before, the issuer's time set."""

    port: str
    token_id: int
    token_time_before: int | None
    utc_set: int
    offset_s: int | None  # token minus UTC before the sync (None: its clock was untrusted)
    time_after: int | None


def sync_clock(dev: Device, api: IssuerAPI) -> SyncResult:
    """CHALLENGE -> the issuer's signed UTC -> ``SETTIME``; record the offset seen."""
    st = _locked_state(dev)
    assert st.token_id is not None
    before = st.time or None
    host_at_info = time.time()
    try:
        nonce = ops.challenge(dev, "sync")
    except ops.OpsError as e:
        raise DeskError(str(e)) from None
    utc, mac = api.clock_sync(st.token_id, nonce)
    host_at_utc = time.time()  # before SETTIME: its round trip is no part of the offset
    try:
        dev.line(f"SETTIME {utc} {mac}", check=True)
    except DeviceError as e:
        raise DeskError(f"the token refused the signed time: {e}") from None
    offset = None
    if before is not None:
        # the token's reading against the issuer's clock, carried to the INFO moment
        offset = round(before - (utc - (host_at_utc - host_at_info)))
        api.clock_offset(st.token_id, offset)
    after = _locked_state(dev).time
    return SyncResult(dev.port, st.token_id, before, utc, offset, after)


@dataclass
class UpdateResult:
    """A firmware update at the desk."""

    port: str
    token_id: int
    fw_before: str | None
    fw_after: str | None
    copied: list[str] = field(default_factory=list)
    was_locked: bool = True


def update(dev: Device, api: IssuerAPI, board: str, *, firmware_dir: Path | None = None) -> UpdateResult:
    """Authenticated UNLOCK (mac from the issuer), deploy with the config kept, lock.

    A token found unlocked (an update cut short) is deployed and locked again, if its
    config still names a token.
    """
    try:
        st = ops.info(dev, timeout=_quick(dev, 3.0))
    except ops.OpsError:
        st = None
    try:
        if st is not None:
            if st.token_id is None:
                raise DeskError(f"{dev.port}: the token is not provisioned")
            nonce = ops.challenge(dev, "unlock")
            ops.unlock(dev, api.unlock_auth(st.token_id, nonce))
        before = ops.probe(dev)
        if before.token_id is None or not before.has_secret:
            raise DeskError(f"{dev.port}: the token has no provisioned config: provision it")
        token_id = before.token_id
        res = deploy_mod.deploy(dev, board, firmware_dir=firmware_dir)
        dev.reboot()  # the new firmware's modules, not the ones this REPL imported
        after = ops.probe(dev)
        if after.token_id != token_id or not after.has_secret:
            raise DeskError(f"{dev.port}: the config did not survive the deploy")
        ops.lock(dev, token_id)
    except (ops.OpsError, DeviceError, deploy_mod.DeployError) as e:
        raise DeskError(f"update: {e}") from None
    return UpdateResult(dev.port, token_id, before.fw, after.fw, res.copied, st is not None)


@dataclass
class VerifyResult:
    """A cross-verification: how many times compared and which differed."""

    port: str
    token_id: int
    times: list[int]
    mismatches: list[int]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def cross_verify(dev: Device, backend: Backend, *, steps: int = 20, start: int | None = None,
                 end: int | None = None, actor: str = "desk") -> VerifyResult:
    """Codes the token computes for ``steps`` times from ``start`` to ``end`` (default:
    now to 10 years on) vs the issuer's for its stored secret (which stays sealed in
    the backend). A locked token is unlocked with the issuer's mac and locked again."""
    if not 1 <= steps <= 5000:
        raise DeskError("--steps must be 1 to 5000")
    now = int(time.time())
    start = now if start is None else start
    end = start + 10 * 365 * 86400 if end is None else end
    if end < start:
        raise DeskError("the end of the range is before its start")
    times = ops.spread_times(start, end, steps)
    try:
        try:
            st = ops.info(dev, timeout=_quick(dev, 3.0))
        except ops.OpsError:
            st = None
        if st is not None:
            if st.token_id is None:
                raise DeskError(f"{dev.port}: the token is not provisioned")
            nonce = ops.challenge(dev, "unlock")
            ops.unlock(dev, backend.unlock_auth(st.token_id, nonce, actor)["mac"])
        cur = ops.probe(dev)
        if cur.token_id is None or not cur.has_secret:
            raise DeskError(f"{dev.port}: the token has no provisioned config")
        got = ops.device_codes(dev, times)
        if st is not None:
            ops.lock(dev, cur.token_id)
        want = backend.expected_codes(cur.token_id, times, actor)
    except (ops.OpsError, DeviceError, BackendError) as e:
        raise DeskError(f"cross-verify: {e}") from None
    return VerifyResult(dev.port, cur.token_id, times, ops.mismatches(times, got, want))
