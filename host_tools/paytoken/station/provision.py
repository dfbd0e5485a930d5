"""Factory provisioning: many tokens in parallel, none half-done, no secret leaked.

Usage::

    station = Station(issuer, board="sim", burn_in=10, report_dir=Path("reports"))
    reports = station.run(["/dev/ttyACM0", "/dev/ttyACM1"], progress=callback)

``issuer`` is a ``station.issuer.Issuer``, through which every call to the issuer goes
(``DbIssuer`` over a ``Backend``, which is wrapped in one when passed; or
``offline.OfflineIssuer`` over a batch). Each port gets its own thread and its own
time-bounded ``Device``. The steps:

1. ``check``: the token's firmware version equals this host's ``fwversion.py`` and its
   board is the one asked for (else: run ``paytoken deploy``). A locked token that is
   active in the database is skipped; one locked but still ``pending`` (a run cut
   after its lock) is unlocked with the pending record's sync key and redone.
2. ``secret``: a 160-bit secret from ``secrets``.
3. ``allocate``: a ``pending`` token id and its sync key from the issuer.
4. ``config``: ``hostapi.save_config`` on the token (atomic there); the secret travels
   only as that call's argument.
5. ``clock``: the RTC set to UTC through the board's RTC driver.
6. ``drift``: the offset at the seconds edge, then after the burn-in again: the
   crystal error in ppm; ``ppm`` and ``ref_time`` stored on the token.
7. ``verify``: codes for fixed times computed on the token vs CPython's paycode.
8. ``lock``: the lock flag, a reboot, ``INFO`` locked, the REPL refused.
9. ``activate``: the issuer records secret, sync key and ``active`` (in one transaction,
   or in the offline batch's PSKC file).

A failure before ``lock`` discards the pending record (the token is re-provisionable
as it is); from ``lock`` on the pending record is kept, because it holds the sync key
that unlocks the token on the next run, which then discards it and starts afresh.
Reports (JSON per token) and the station's audit lines never hold a secret.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import paycode

from paytoken.backend import BackendError
from paytoken.backend.service import Backend
from paytoken.backend.store.models import ACTIVE, PENDING
from paytoken.station import ops
from paytoken.station.issuer import DbIssuer, Issuer
from paytoken.station.transport import DEFAULT_TIMEOUT, Device, DeviceError

STEPS = ("connect", "check", "secret", "allocate", "config", "clock", "drift", "verify",
         "lock", "activate")
SECRET_BYTES = 20  # 160 bits (RFC 4226 R6 recommends 160)

_AUDIT_LOCK = threading.Lock()  # audit.jsonl lines from every Station of this process

# (port, step, detail) -> None; detail is a short text, never a secret
Progress = Callable[[str, str, str], None]


class Interrupted(KeyboardInterrupt):
    """``Station.run`` was interrupted; ``reports`` says where each port stopped."""

    def __init__(self, reports: list[TokenReport], cause: BaseException | None = None) -> None:
        super().__init__("interrupted")
        self.reports = reports
        self.cause = cause  # the KeyboardInterrupt (the CLI's for SIGTERM a subclass)


@dataclass
class TokenReport:
    """The outcome for one port; written as JSON, so it never holds a secret."""

    port: str
    board: str
    status: str = "failed"  # provisioned | skipped | failed
    step: str = "connect"  # the last step begun
    token_id: int | None = None
    error: str | None = None
    fw: str | None = None
    clock_set_utc: int | None = None
    offset_ms: float | None = None  # token minus UTC right after the set
    offset_uncertainty_ms: float | None = None  # its bound: the truth is offset_ms ± this
    drift_offset_ms: float | None = None  # the same after the burn-in
    burn_in_s: float = 0.0
    ppm: float | None = None  # stored on the token (0.0 when not measured)
    ppm_measured: float | None = None  # what the burn-in measured (± ppm_resolution)
    ppm_resolution: float | None = None
    verified_times: list[int] = field(default_factory=list)
    recovered: str | None = None  # what a previous, cut run left and how it was handled
    started_at: float = 0.0
    seconds: float = 0.0


class Station:
    """A provisioning station over one issuer."""

    def __init__(
        self,
        issuer: Issuer | Backend,
        *,
        board: str,
        burn_in: float = 0.0,
        prefix: str = "81",
        report_dir: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        firmware_dir: Path | None = None,
        actor: str | None = None,
    ) -> None:
        """A ``Backend`` needs the master key; ``burn_in`` is seconds between the two
        clock readings (0: the crystal error is not measured, ppm stays 0)."""
        if burn_in < 0:
            raise ValueError("burn-in must be >= 0 seconds")
        self.issuer: Issuer = DbIssuer(issuer) if isinstance(issuer, Backend) else issuer
        self.board = board
        self.burn_in = float(burn_in)
        self.prefix = prefix
        self.report_dir = report_dir
        self.timeout = timeout
        self.host_fw = ops.host_fw_version(firmware_dir)
        self.actor = actor or f"station:{socket.gethostname()}"
        try:
            self.scheme_key = self.issuer.scheme_key(prefix)
        except BackendError as e:
            raise ops.OpsError("setup", str(e)) from None
        if self.scheme_key is None:
            raise ops.OpsError(
                "setup", f"no scheme key for prefix {prefix} in the database: run `paytoken scheme add`"
            )
        try:
            self.code_format = self.issuer.scheme_format(prefix)  # a token's format is its scheme's
        except BackendError as e:
            raise ops.OpsError("setup", str(e)) from None
        self._audit_lock = _AUDIT_LOCK  # one per process: Stations may share a report folder
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask every running provisioning to stop at its next step (Ctrl-C): a token
        not yet locked is wiped and reset (its pending record discarded), one already
        locked is activated."""
        self._stop.set()

    # ---- many ports ----------------------------------------------------------------

    def run(self, ports: list[str], progress: Progress | None = None) -> list[TokenReport]:
        """Provision every port in parallel; one report per port, in the given order.

        Ctrl-C (or SIGTERM, as ``KeyboardInterrupt``) stops every port at its next step
        and raises ``Interrupted`` with the reports once all have stopped."""
        if not ports:
            return []
        if len(set(ports)) != len(ports):
            raise ValueError("a port is given twice")
        self._stop.clear()
        with ThreadPoolExecutor(max_workers=len(ports), thread_name_prefix="provision") as pool:
            futures = [pool.submit(self.provision, p, progress) for p in ports]
            try:
                return [f.result() for f in futures]
            except KeyboardInterrupt as e:
                self.stop()
                with ops.signals_held():  # the ports clean up; a second Ctrl-C waits
                    reports = [f.result() for f in futures]
                raise Interrupted(reports, e) from None

    # ---- one port ------------------------------------------------------------------

    def provision(self, port: str, progress: Progress | None = None) -> TokenReport:
        """Provision the token on ``port``; never raises for a token's failure."""
        rep = TokenReport(port=port, board=self.board, burn_in_s=self.burn_in,
                          started_at=time.time())
        t0 = time.monotonic()
        secret = b""
        sync_key = b""
        pending: int | None = None
        locking = False
        wrote = False  # the token's flash holds this run's config (and its secrets)
        wiped = False  # ... and it was removed again after a failure

        def step(name: str, detail: str = "") -> None:
            # a stop (Ctrl-C) ends the run at the next step; once locked, it finishes
            if self._stop.is_set() and name not in ("activate", "done"):
                raise ops.OpsError(name, "interrupted: stopped before this step; re-run to provision")
            rep.step = name
            if progress:
                progress(port, name, detail)

        try:
            step("connect")
            with Device(port, timeout=self.timeout) as dev:
                opened = False  # the token's REPL is ours: any way out resets it
                try:
                    step("check")
                    st = ops.probe(dev)
                    rep.fw = st.fw
                    if st.mode == "repl" and st.has_secret:
                        # a REPL open over a secret: a run or a desk session cut short, its
                        # lease maybe still running. Reset it, so no earlier lease ends this
                        # run: it boots locked (the flag is on flash), or stays open
                        opened = True
                        dev.hard_reset()
                        st = ops.wait_booted(dev)
                    for _ in range(ops.UNLOCK_TRIES):
                        if st.mode != "locked":
                            break
                        opened = True
                        done = self._locked(dev, st, rep)
                        if done:
                            opened = False
                            return rep
                        st = ops.probe_unlocked(dev)
                    if st.mode == "locked":
                        raise ops.OpsError("check", f"{port}: the token locked itself again after "
                                           f"each of {ops.UNLOCK_TRIES} unlocks")
                    if st.locked and st.token_id is not None and self._status(st.token_id) == ACTIVE:
                        # a provisioned token stopped at boot (an old firmware): back into
                        # its firmware, confirmed locked
                        ops.lock(dev, st.token_id, flag_set=True)
                        opened = False
                        rep.token_id = st.token_id
                        rep.status = "skipped"
                        rep.recovered = (f"already provisioned: token {st.token_id:08d} was in its "
                                         "REPL with the lock flag set; reset, locked")
                        return rep
                    ops.check_firmware(st, self.board, self.host_fw, port)
                    opened = True
                    lease = ops.hold_lease(dev)  # from here on the token resets by itself
                    if st.token_id is not None:
                        self._leftover(dev, st.token_id, rep)

                    step("secret")
                    secret = secrets.token_bytes(SECRET_BYTES)

                    step("allocate")
                    pending, sync_key = self.issuer.allocate(self.actor + ":" + port)
                    rep.token_id = pending

                    step("config", f"token {pending:08d}")
                    assert self.scheme_key is not None
                    ops.hold_lease(dev)
                    # locked on flash from the first write: whatever happens next, the
                    # token's next boot is a locked one
                    wrote = True
                    ops.write_config(dev, {
                        "token_id": pending, "secret": secret, "scheme_key": self.scheme_key,
                        "prefix": self.prefix, "format": self.code_format, "sync_key": sync_key,
                        "ppm": 0.0, "ref_time": 0,
                        "locked": True, "last_step": 0, "last_sync": 0,
                    })

                    step("clock")
                    ops.hold_lease(dev)
                    cs = ops.set_clock_utc(dev)
                    rep.clock_set_utc = cs.utc
                    rep.offset_ms = round(cs.first.offset * 1000, 2)
                    rep.offset_uncertainty_ms = round(cs.first.uncertainty * 1000, 2)

                    step("drift", f"burn-in {self.burn_in:g} s" if self.burn_in else "")
                    ops.hold_lease(dev)
                    ppm = 0.0
                    if self.burn_in > 0:
                        start = ops.best_edge(dev, 3, cs.first)
                        end = time.monotonic() + self.burn_in
                        fed = time.monotonic()
                        while (left := end - time.monotonic()) > 0:
                            if self._stop.is_set():
                                raise ops.OpsError("drift", "interrupted during the burn-in; "
                                                   "re-run to provision")
                            time.sleep(min(left, 1.0))
                            if time.monotonic() - fed > lease / 3:
                                ops.hold_lease(dev)
                                fed = time.monotonic()
                            if progress:
                                progress(port, "drift", f"burn-in {max(0.0, end - time.monotonic()):.0f} s left")
                        ops.hold_lease(dev)
                        later = ops.best_edge(dev, 3)
                        measured, res = ops.ppm_between(start, later)
                        rep.drift_offset_ms = round(later.offset * 1000, 2)
                        rep.ppm_measured = round(measured, 3)
                        rep.ppm_resolution = round(res, 3)
                        # faulty only when even the most favourable reading of the
                        # interval is out of bounds: a busy link widens it, never fails it
                        if abs(measured) - res > ops.MAX_PPM:
                            raise ops.OpsError(
                                "drift", f"crystal error {measured:+.0f} ± {res:.0f} ppm is beyond "
                                f"+-{ops.MAX_PPM:g}: a faulty crystal (or a clock that does not keep time)"
                            )
                        ppm = max(-ops.MAX_PPM, min(ops.MAX_PPM, ops.ppm_to_store(measured, res)))
                    rep.ppm = round(ppm, 3)
                    ops.update_config(dev, "drift", ppm=rep.ppm, ref_time=cs.utc, last_sync=cs.utc,
                                      last_step=cs.utc // paycode.PERIOD)

                    step("verify")
                    ops.hold_lease(dev)
                    times = list(ops.FIXED_TIMES) + [cs.utc, cs.utc + paycode.PERIOD]
                    got = ops.device_codes(dev, times)
                    want = self.issuer.expected_codes(pending, secret, self.prefix, times)
                    bad = ops.mismatches(times, got, want)
                    if bad:
                        raise ops.OpsError(
                            "verify", f"the token's codes differ from the station's at {len(bad)} of "
                            f"{len(times)} times (first: t={bad[0]}, {ops.differing_digits(times, got, want, bad[0])})"
                        )
                    rep.verified_times = times

                    step("lock")
                    ops.hold_lease(dev)
                    locking = True
                    ops.lock(dev, pending, flag_set=True)  # a hard reset: the lease ends
                    opened = False
                except BaseException:
                    if opened:
                        with ops.signals_held():
                            if wrote and not locking:
                                wiped = ops.wipe_config(dev)  # then the pending record can go
                            ops.relock(dev)
                    raise

            step("activate")
            # The token corrects its own crystal error; when the burn-in pinned it
            # to a few ppm, tell the issuer the residual rate is known to be ~0
            # (else it starts from an unknown rate and learns it from payments).
            known = rep.ppm_resolution is not None and rep.ppm_resolution <= ops.STORE_PPM_BOUND
            self.issuer.activate(pending, secret, sync_key, self.prefix,
                                 actor=self.actor + ":" + port,
                                 drift_ppm=0.0 if known else None)
            pending = None
            rep.status = "provisioned"
            step("done", f"token {rep.token_id:08d}")
        except (ops.OpsError, DeviceError, BackendError, OSError, ValueError) as e:
            rep.status = "failed"
            rep.error = ops.scrub(str(e), secret, sync_key)
            # the pending record holds the sync key that unlocks a token left holding
            # its config: it goes only when the token cannot hold it
            if pending is not None and not locking and (not wrote or wiped):
                try:
                    self.issuer.discard(pending, self.actor + ":" + port)
                except (BackendError, ops.OpsError, OSError):
                    pass  # the next run finds and removes it
            if progress:
                progress(port, "failed", rep.error)
        finally:
            secret = sync_key = b""
            rep.seconds = round(time.monotonic() - t0, 3)
            self._record(rep)
        return rep

    def _status(self, token_id: int) -> str | None:
        return self.issuer.status(token_id)

    def _locked(self, dev: Device, st: ops.TokenState, rep: TokenReport) -> bool:
        # A token that answers only the line protocol. -> True when it is done with.
        if st.token_id is None:
            raise ops.OpsError(
                "check", f"{dev.port}: a locked token without a readable config: it cannot be "
                "provisioned here (unlock needs its sync key)"
            )
        rep.token_id = st.token_id
        status = self._status(st.token_id)
        if status == ACTIVE:
            rep.status = "skipped"
            rep.error = None
            rep.recovered = f"already provisioned: token {st.token_id:08d} is locked and active"
            return True
        if status != PENDING:
            raise ops.OpsError(
                "check", f"{dev.port}: locked token {st.token_id:08d} is "
                f"{status or 'unknown to this database'}: not provisioned again"
            )
        # cut after its lock, before activation: unlock with the pending sync key
        nonce = ops.challenge(dev, "check")
        mac = self.issuer.unlock_mac(st.token_id, nonce, self.actor + ":" + dev.port)
        ops.unlock(dev, mac)
        rep.recovered = f"token {st.token_id:08d} was locked but pending: unlocked, redone"
        return False

    def _leftover(self, dev: Device, token_id: int, rep: TokenReport) -> None:
        # The token holds the id of an earlier, unfinished run. Its config goes first:
        # a token left holding it (locked on flash) would need that record's sync key.
        status = self._status(token_id)
        if status == PENDING:
            if not ops.wipe_config(dev):
                raise ops.OpsError("check", f"{rep.port}: cannot remove the config of the cut run")
            self.issuer.discard(token_id, self.actor + ":" + rep.port)
            rep.recovered = (rep.recovered or "") + (
                f"{'; ' if rep.recovered else ''}pending record {token_id:08d} of a cut run removed")
        elif status is not None:
            raise ops.OpsError(
                "check", f"{rep.port}: the token is unlocked but token {token_id:08d} is {status} "
                "in the database (an update cut short?): finish it with `paytoken update`"
            )

    def _record(self, rep: TokenReport) -> None:
        if self.report_dir is None:
            return
        d = self.report_dir
        d.mkdir(parents=True, exist_ok=True)
        data = asdict(rep)
        name = f"{rep.token_id:08d}" if rep.token_id else _safe(rep.port)
        base = f"token-{name}-{int(rep.started_at)}"
        tmp = d / f".{base}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp"
        # private (0600) like everything of the station's: ids, ports and times only,
        # but nobody else's business
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        path = _publish_new(tmp, d, base)
        line = json.dumps({
            "ts": int(time.time()), "actor": self.actor, "port": rep.port,
            "token_id": rep.token_id, "status": rep.status, "step": rep.step,
            "error": rep.error, "report": path.name,
        }, sort_keys=True)
        fd = os.open(d / "audit.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with self._audit_lock, os.fdopen(fd, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def _publish_new(tmp: Path, folder: Path, base: str) -> Path:
    """Give the written ``tmp`` its name ``base.json`` in one step, never over another
    report: two runs of one token in one second (a redo, parallel ports whose names map
    alike) get ``base_2.json``, ``base_3.json``, ... (sorted after the first)."""
    n = 1
    try:
        while True:
            path = folder / (base + ("" if n == 1 else f"_{n}") + ".json")
            try:
                os.link(tmp, path)  # atomic, and refuses an existing name
                return path
            except FileExistsError:
                n += 1
    finally:
        os.unlink(tmp)


def _safe(port: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in port).strip("_")[-40:] or "port"
