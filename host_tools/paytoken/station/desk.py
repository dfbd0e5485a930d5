"""The service desk: a locked token's clock sync, firmware update, info and cross-verify.

Usage::

    api = HttpIssuer("https://issuer.example", admin_key)   # or DbIssuer(backend)
    with Device(port) as dev:
        sync_clock(dev, api)          # CHALLENGE -> signed UTC from the issuer -> SETTIME
        update(dev, api, "pico")      # build, authenticated UNLOCK, deploy (config kept), lock
        cross_verify(dev, api, steps=20)

Every call to the issuer goes through a ``station.issuer.DeskIssuer``: ``HttpIssuer``
(the admin API) or ``DbIssuer`` (the embedded database, ``--db``).

The desk never sets a clock or unlocks a token by itself: each change is a ``sync_mac``
the issuer signs over a nonce the token just issued (``/v1/tokens/{id}/clock-sync``,
``/unlock-auth``), so a nonce is used once and a replay is refused by the token.
An UNLOCK opens the token in RAM only, under its lease (``firmware/lease.py``): the
desk feeds the lease between steps and ends with a hard reset, and any error,
Ctrl-C or SIGTERM on the way resets it too (``ops.relock``); the lock flag never
leaves the flash.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paycode

from paytoken.backend import BackendError
from paytoken.backend.service import Backend
from paytoken.station import deploy as deploy_mod
from paytoken.station import hostcalls, ops
from paytoken.station.issuer import DbIssuer, DeskIssuer
from paytoken.station.online import HttpIssuer
from paytoken.station.transport import Device, DeviceError


class DeskError(Exception):
    """A service-desk operation failed or was refused; never holds a secret."""


# The desk over HTTP (``--url``/``--admin-key-file``); ``DbIssuer`` is the embedded one.
IssuerAPI = HttpIssuer


def _issuer(issuer: DeskIssuer | Backend, actor: str) -> DeskIssuer:
    return DbIssuer(issuer, actor) if isinstance(issuer, Backend) else issuer


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


def sync_clock(dev: Device, api: DeskIssuer | Backend) -> SyncResult:
    """CHALLENGE -> the issuer's signed UTC -> ``SETTIME``; record the offset seen. A
    token found open (a desk session cut short) is reset first: it boots locked."""
    api = _issuer(api, "desk:" + dev.port)
    try:
        ops.info(dev, timeout=_quick(dev, 3.0))
    except ops.OpsError:
        if ops.relock(dev):
            try:
                ops.wait_booted(dev)
            except ops.OpsError:
                pass  # _locked_state says what it is
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
    prefix: str | None = None  # the scheme moved to (update --prefix), else None
    code_format: int | None = None  # the token's code format after the update (INFO's code=)


class _Open:
    """An open session on a token: from just before UNLOCK (or a REPL found open) until
    the token is locked again. ``close()`` ends it cleanly; leaving the ``with`` block
    any other way (an error, Ctrl-C, SIGTERM) hard-resets the token, whose flag on flash
    is set, so it boots locked. Should even that fail, the lease runs out on the token."""

    def __init__(self, dev: Device) -> None:
        self.dev = dev
        self.active = False

    def __enter__(self) -> _Open:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.active = False
            ops.relock(self.dev)


def _open_token(dev: Device, session: _Open, mac_for, *, need_firmware: bool = True
                ) -> tuple[ops.TokenState, bool]:
    # -> (the token's REPL state under a held lease, whether it was locked). A locked
    # token is unlocked with mac_for(token_id, nonce); one found in its REPL (a session
    # cut short, an old firmware) is hard-reset first, so that no lease of an earlier
    # run can end this one: it then boots locked (the flag is on flash), or stays open.
    try:
        st: ops.TokenState | None = ops.info(dev, timeout=_quick(dev, 3.0))
    except ops.OpsError:
        st = None
    if st is None:
        session.active = True
        try:
            dev.hard_reset()
        except DeviceError:
            pass  # no REPL either: the probe below says what it is
        st = ops.wait_booted(dev, need_firmware=need_firmware)
    was_locked = st.mode == "locked"
    for _ in range(ops.UNLOCK_TRIES):
        if st.mode != "locked":
            break
        if st.token_id is None:
            raise DeskError(f"{dev.port}: the token is not provisioned")
        nonce = ops.challenge(dev, "unlock")
        mac = mac_for(st.token_id, nonce)
        session.active = True  # from the UNLOCK on, every way out locks again
        ops.unlock(dev, mac)
        st = ops.probe_unlocked(dev)
    if st.mode == "locked":
        raise DeskError(f"{dev.port}: the token locked itself again after each of "
                        f"{ops.UNLOCK_TRIES} unlocks")
    session.active = True
    return st, was_locked


def _hold(dev: Device) -> None:
    # the lease; a token without firmware (found so, being mended) has none to hold
    try:
        ops.hold_lease(dev)
    except ops.OpsError:
        pass


def update(dev: Device, api: DeskIssuer | Backend, board: str, *,
           firmware_dir: Path | None = None, prefix: str | None = None) -> UpdateResult:
    """Build and check the firmware tree, then authenticated UNLOCK (mac from the issuer),
    deploy with the config kept, and lock (a hard reset; the lock flag never left flash).
    ``prefix``: also move the token to that scheme (its format), see ``_move``.

    A token found open (an update cut short, or a token left without firmware) is
    hard-reset first, then unlocked, or deployed and locked if it stays open. Any error
    or interrupt after the unlock resets the token, so it boots locked.
    """
    api = _issuer(api, "desk:" + dev.port)
    try:
        bd = deploy_mod.load_board(board)
        built = deploy_mod.build(bd, firmware_dir)  # before the token is touched
    except (deploy_mod.DeployError, OSError, ValueError) as e:
        raise DeskError(f"update: {e}") from None
    try:
        with _Open(dev) as session:
            st, was_locked = _open_token(dev, session, api.unlock_auth, need_firmware=False)
            _hold(dev)
            if st.fw is None:
                # no config the probe could read: a missing firmware reads the file
                st = _config_state(dev, st)
            if st.token_id is None or st.has_secret is False:
                raise DeskError(f"{dev.port}: the token has no provisioned config: provision it")
            token_id = st.token_id
            res = deploy_mod.deploy(dev, bd, built=built, progress=lambda *_: _hold(dev))
            dev.soft_reset()  # the new firmware's modules, still in the raw REPL
            _hold(dev)
            after = ops.probe(dev)
            if after.token_id != token_id or not after.has_secret:
                raise DeskError(f"{dev.port}: the config did not survive the deploy")
            fmt = _move(dev, api, token_id, prefix) if prefix is not None else None
            locked = ops.lock(dev, token_id, flag_set=after.locked)
            session.active = False
            if prefix is not None:
                # the token boots locked computing the new scheme's codes: only now does the
                # issuer stop accepting the old scheme's for it
                if locked.code_format != fmt:
                    raise DeskError(f"{dev.port}: the token reports code format {locked.code_format}, "
                                    f"not {fmt}: the move is not finished (both schemes still pay)")
                api.finish_move(token_id, prefix)
    except (ops.OpsError, DeviceError, deploy_mod.DeployError, BackendError) as e:
        raise DeskError(f"update: {e}") from None
    return UpdateResult(dev.port, token_id, st.fw, after.fw, res.copied, was_locked, prefix,
                        locked.code_format)


def _move(dev: Device, api: DeskIssuer, token_id: int, prefix: str) -> int:
    # A token's move to another scheme (a new code format) in the open session, the
    # same secret: (1) the issuer takes the new scheme for the token and keeps the old
    # one accepted; (2) the config gets the new prefix, scheme key and format (one
    # atomic write: a cut leaves the old or the new, and both pay); (3) the token's codes
    # under it are cross-checked with the issuer's. The caller locks, then finishes the
    # move at the issuer, after which the old scheme's codes are refused for it.
    key, fmt = api.move_token(token_id, prefix)
    _hold(dev)
    ops.move_config(dev, prefix, key, fmt)
    _hold(dev)
    now = int(time.time())
    times = [now, now + paycode.PERIOD] + ops.spread_times(now, now + 10 * 365 * 86400, 8)
    got = ops.device_codes(dev, times, between=lambda: _hold(dev))
    bad = api.cross_check(token_id, times, got)
    if bad:
        raise DeskError(f"{dev.port}: under scheme {prefix} the token's codes differ from the "
                        f"issuer's at {len(bad)} of {len(times)} times: the move is not finished")
    return fmt


def _config_state(dev: Device, st: ops.TokenState) -> ops.TokenState:
    # The token id and whether a secret is there, from the config file itself, for a
    # token whose firmware (and so its hostapi) is gone. Nothing else leaves it.
    try:
        v = hostcalls.config_state_without_firmware(dev)
    except DeviceError as e:
        raise ops.OpsError("check", str(e)) from None
    if v is None:
        return st
    return ops.TokenState("repl", st.fw, st.board, v[0] or None, v[1], has_secret=v[2])


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
    the issuer: it answers only which times differ). The token is unlocked with the
    issuer's mac (a token found open is reset first) and locked again, on every way out.
    ``actor``: the audit name (embedded only)."""
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
        with _Open(dev) as session:
            cur, _ = _open_token(dev, session, api.unlock_auth)
            ops.hold_lease(dev)
            if cur.token_id is None or not cur.has_secret:
                raise DeskError(f"{dev.port}: the token has no provisioned config")
            got = ops.device_codes(dev, times, between=lambda: ops.hold_lease(dev))
            ops.lock(dev, cur.token_id, flag_set=cur.locked)
            session.active = False
        bad = api.cross_check(cur.token_id, times, got)
    except (ops.OpsError, DeviceError, BackendError) as e:
        raise DeskError(f"cross-verify: {e}") from None
    return VerifyResult(dev.port, cur.token_id, times, bad)
