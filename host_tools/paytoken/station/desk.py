"""The service desk: a locked token's clock sync, firmware update, info and cross-verify.

Usage::

    api = HttpIssuer("https://issuer.example", admin_key)   # or DbIssuer(backend)
    with Device(port) as dev:
        sync_clock(dev, api)          # CHALLENGE -> signed UTC from the issuer -> SETTIME
        update(dev, api, "pico")      # authenticated UNLOCK, deploy (config kept), lock
        cross_verify(dev, api, steps=20)

Every call to the issuer goes through a ``station.issuer.DeskIssuer``: ``HttpIssuer``
(the admin API) or ``DbIssuer`` (the embedded database, ``--db``).

The desk never sets a clock or unlocks a token by itself: each change is a ``sync_mac``
the issuer signs over a nonce the token just issued (``/v1/tokens/{id}/clock-sync``,
``/unlock-auth``), so a nonce is used once and a replay is refused by the token.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paytoken.backend import BackendError
from paytoken.backend.service import Backend
from paytoken.station import deploy as deploy_mod
from paytoken.station import ops
from paytoken.station.issuer import DbIssuer, DeskIssuer
from paytoken.station.online import HttpIssuer
from paytoken.station.transport import Device, DeviceError


class DeskError(Exception):
    """A service-desk operation failed or was refused; never holds a secret."""


# The desk over HTTP (``--url``/``--admin-key-file``); ``DbIssuer`` is the embedded one.
IssuerAPI = HttpIssuer


def _issuer(issuer: DeskIssuer | Backend, actor: str) -> DeskIssuer:
    return DbIssuer(issuer, actor) if isinstance(issuer, Backend) else issuer


def _locked_state(dev: Device) -> ops.TokenState:
    try:
        st = ops.info(dev, timeout=3.0)
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
        st = ops.info(dev, timeout=2.0)
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


def sync_clock(dev: Device, api: DeskIssuer | Backend) -> SyncResult:
    """CHALLENGE -> the issuer's signed UTC -> ``SETTIME``; record the offset seen."""
    api = _issuer(api, "desk:" + dev.port)
    st = _locked_state(dev)
    assert st.token_id is not None
    before = st.time or None
    host_at_info = time.time()
    try:
        nonce = ops.challenge(dev, "sync")
    except ops.OpsError as e:
        raise DeskError(str(e)) from None
    try:
        utc, mac = api.clock_sync(st.token_id, nonce)
    except BackendError as e:
        raise DeskError(str(e)) from None
    host_at_utc = time.time()  # the issuer's answer: its utc is (about) this moment
    try:
        dev.line(f"SETTIME {utc} {mac}", check=True)
    except DeviceError as e:
        raise DeskError(f"the token refused the signed time: {e}") from None
    offset = None
    if before is not None:
        # the token's reading against the issuer's clock, carried to the INFO moment
        # (not through the SETTIME round trip, which a busy link makes seconds long)
        offset = round(before - (utc - (host_at_utc - host_at_info)))
        try:
            api.clock_offset(st.token_id, offset)
        except BackendError as e:
            raise DeskError(f"the clock is set, but its offset was not recorded: {e}") from None
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


def update(dev: Device, api: DeskIssuer | Backend, board: str, *,
           firmware_dir: Path | None = None) -> UpdateResult:
    """Authenticated UNLOCK (mac from the issuer), deploy with the config kept, lock.

    A token found unlocked (an update cut short) is deployed and locked again, if its
    config still names a token.
    """
    api = _issuer(api, "desk:" + dev.port)
    try:
        st = ops.info(dev, timeout=3.0)
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
    except (ops.OpsError, DeviceError, deploy_mod.DeployError, BackendError) as e:
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


def cross_verify(dev: Device, issuer: DeskIssuer | Backend, *, steps: int = 20,
                 start: int | None = None, end: int | None = None,
                 actor: str = "desk") -> VerifyResult:
    """Codes the token computes for ``steps`` times from ``start`` to ``end`` (default:
    now to 10 years on) vs the issuer's for its stored secret (which stays sealed in
    the issuer: it answers only which times differ). A locked token is unlocked with the
    issuer's mac and locked again. ``actor``: the audit name (embedded only)."""
    api = _issuer(issuer, actor)
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
            st = ops.info(dev, timeout=3.0)
        except ops.OpsError:
            st = None
        if st is not None:
            if st.token_id is None:
                raise DeskError(f"{dev.port}: the token is not provisioned")
            nonce = ops.challenge(dev, "unlock")
            ops.unlock(dev, api.unlock_auth(st.token_id, nonce))
        cur = ops.probe(dev)
        if cur.token_id is None or not cur.has_secret:
            raise DeskError(f"{dev.port}: the token has no provisioned config")
        got = ops.device_codes(dev, times)
        if st is not None:
            ops.lock(dev, cur.token_id)
        bad = api.cross_check(cur.token_id, times, got)
    except (ops.OpsError, DeviceError, BackendError) as e:
        raise DeskError(f"cross-verify: {e}") from None
    return VerifyResult(dev.port, cur.token_id, times, bad)
