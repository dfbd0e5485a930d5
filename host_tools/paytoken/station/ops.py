"""Token operations shared by the factory station and the service desk.

Usage::

    with Device(port) as dev:
        st = probe(dev)                      # TokenState: fw, board, id, locked, mode
        clk = set_clock_utc(dev)             # RTC set to UTC through the firmware's driver
        codes = device_codes(dev, [t1, t2])  # computed on the token from its own config
        lock(dev, token_id)                  # lock flag, hard reset, INFO locked, REPL refused

A token open to the station (a factory token, or one an UNLOCK opened) is held under
its lease (``firmware/lease.py``, the board's watchdog): ``hold_lease`` starts or feeds
it before each step, and a session ends with a hard reset (``lock``; on an error or an
interrupt ``relock``). If the host dies, the lease runs out and the token resets into
its locked config by itself.

Every operation is one of the token's named calls for the host (``firmware/hostapi.py``,
through ``station.hostcalls``: probe, clock, edge, codes, config, lease) in the raw
REPL, or speaks the locked line protocol. Secrets go to the token only as a call's
arguments and never come back: a failure is an ``OpsError`` naming the step, with any
secret scrubbed from the text.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paycode

from paytoken import literal, upy
from paytoken.station import hostcalls
from paytoken.station.transport import Device, DeviceError

REPL_PROBE_TIMEOUT = 3.0  # seconds to get a raw REPL before trying the line protocol
REFUSE_TIMEOUT = 1.0  # seconds a locked token is given to (wrongly) offer a REPL
BOOT_TIMEOUT = 8.0  # seconds for a rebooted token to answer INFO
MAX_PPM = 1000.0  # the config's bound on the crystal error
STORE_PPM_BOUND = 5.0  # a measured crystal error known this well is always stored
# Fixed times for cross-verification: the calendar's corners and leap days.
FIXED_TIMES = (
    1735689600,  # 2025-01-01T00:00:00Z, the firmware's earliest trusted time
    1767225599,  # 2025-12-31T23:59:59Z
    1772323200,  # 2026-03-01T00:00:00Z
    1835395199,  # 2028-02-29T23:59:59Z (leap day)
    2147483647,  # 2038-01-19T03:14:07Z (32-bit signed limit)
    2147483648,  # one second later
    4102444800,  # 2100-01-01T00:00:00Z (not a leap year)
    4107542399,  # 2100-02-28T23:59:59Z
    7258118399,  # 2199-12-31T23:59:59Z, the last time a token accepts
)


class OpsError(Exception):
    """A token operation failed; ``step`` names it. The message never holds a secret."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class TokenState:
    """What a token says about itself (never a secret)."""

    mode: str  # "repl" (factory/unlocked, raw REPL answered) or "locked" (line protocol)
    fw: str | None
    board: str | None
    token_id: int | None  # from the config; None when there is none
    locked: bool
    has_secret: bool | None = None  # known only through the REPL
    corrupt: bool = False
    clock: str | None = None
    time: int | None = None  # INFO's time= (locked mode only)
    image: str | None = None  # "files" (deployed) or the frozen image's id (fwimage.ID)
    code_format: int | None = None  # INFO's code=: the token's own code format (locked mode)


def host_fw_version(firmware_dir: Path | None = None) -> str:
    """``VERSION`` of this host's ``firmware/fwversion.py`` (read, not imported)."""
    path = (firmware_dir or upy.FIRMWARE_DIR) / "fwversion.py"
    v = literal.top_level_literals(path, ("VERSION",)).get("VERSION")
    if isinstance(v, str):
        return v
    raise OpsError("check", f"{path} has no VERSION string")


def secret_forms(*secrets_: bytes) -> list[str]:
    """The texts a secret could leak as: hex (both cases), base32, and Python's repr."""
    out: list[str] = []
    for s in secrets_:
        if not s:
            continue
        h = s.hex()
        b32 = base64.b32encode(s).decode()
        out += [h, h.upper(), b32, b32.rstrip("="), repr(s)[2:-1]]
    return [f for f in out if len(f) >= 8]


def scrub(text: str, *secrets_: bytes) -> str:
    """``text`` with every form of the given secrets replaced by ``<secret>``."""
    for f in secret_forms(*secrets_):
        text = text.replace(f, "<secret>")
    return text


def parse_info(reply: str) -> dict[str, str]:
    """``OK id=... fw=...`` -> its key=value pairs; unknown keys are kept, order ignored."""
    if not reply.startswith("OK "):
        raise OpsError("info", f"INFO refused: {reply[:80]}")
    out: dict[str, str] = {}
    for part in reply[3:].split():
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    if "id" not in out or "locked" not in out:
        raise OpsError("info", f"INFO answer without id/locked: {reply[:80]}")
    return out


def _ask(dev: Device, cmd: str, good: Callable[[str], bool], timeout: float | None) -> str:
    # A token still answering stale input (a client's REPL attempt, noise) may send
    # an "ERR ..." for it after ours went out: the transport skips replies that cannot
    # be ours and waits for our own, never sending the command twice (transport.line).
    try:
        return dev.line(cmd, timeout=timeout, want=good)
    except DeviceError as e:
        raise OpsError(cmd.split()[0].lower(), str(e)) from None


def info(dev: Device, *, timeout: float | None = None) -> TokenState:
    """``INFO`` over the locked line protocol."""
    d = parse_info(_ask(dev, "INFO", lambda r: r.startswith("OK id="), timeout))
    tid = d.get("id", "-")
    return TokenState(
        mode="locked",
        fw=d.get("fw"),
        board=d.get("board"),
        token_id=int(tid) if tid.isdigit() else None,
        locked=d.get("locked") == "1",
        corrupt=tid == "-" and d.get("locked") == "1",
        clock=d.get("clock"),
        time=int(d["time"]) if d.get("time", "").isdigit() else None,
        image=d.get("image"),
        code_format=int(d["code"]) if d.get("code", "").isdigit() else None,
    )


def probe(dev: Device, *, repl_timeout: float = REPL_PROBE_TIMEOUT,
          need_firmware: bool = True) -> TokenState:
    """The token's firmware, board and config state, by raw REPL or else by ``INFO``.
    ``need_firmware=False``: a REPL without the paytoken firmware is a state (``fw``
    None), not an error."""
    try:
        dev.enter_raw(timeout=repl_timeout)
    except DeviceError:
        try:
            # a slow board (an emulated one, between 1 s sleeps) gets its per-call timeout
            return info(dev, timeout=max(repl_timeout, dev.timeout))
        except OpsError:
            pass
        # a token that was booting (just powered, or reset) gets a second, longer try
        try:
            dev.enter_raw(timeout=2 * repl_timeout)
        except DeviceError:
            raise OpsError(
                "check", f"{dev.port}: the token answers neither the raw REPL nor INFO "
                "(no MicroPython, wrong port, or no power)"
            ) from None
    try:
        got = hostcalls.call(dev, "probe")
    except DeviceError as e:
        if any(m in str(e) for m in ("hostapi", "fwversion", "board", "config")):
            if not need_firmware:
                return TokenState("repl", None, None, None, False)
            raise OpsError(
                "check", f"{dev.port}: no paytoken firmware on the token ({str(e).split(': ')[-1]}): "
                "run `paytoken deploy --port PORT --board BOARD`"
            ) from None
        raise OpsError("check", str(e)) from None
    try:
        fw, board, st, image = got
    except (ValueError, TypeError):
        raise OpsError("check", f"{dev.port}: unexpected probe answer") from None
    if st == "corrupt":
        return TokenState("repl", fw, board, None, False, corrupt=True, image=image)
    if st is None:
        return TokenState("repl", fw, board, None, False, image=image)
    return TokenState("repl", fw, board, int(st[0]) or None, bool(st[1]), has_secret=bool(st[2]),
                      image=image)


def check_firmware(st: TokenState, board: str, host_fw: str, port: str) -> None:
    """Refuse a token whose firmware or board is not what this station expects."""
    fix = f"run `paytoken deploy --port {port} --board {board}`"
    if st.fw != host_fw:
        raise OpsError(
            "check", f"{port}: firmware {st.fw} on the token, {host_fw} on this station: {fix}"
        )
    if st.board != board:
        raise OpsError("check", f"{port}: the token has board {st.board}, not {board}: {fix}")


# ---- the clock ------------------------------------------------------------------------

@dataclass
class ClockReading:
    """One seconds edge: the token's UTC second, the host's UTC time of that edge, and
    the bound on that host time (the edge lies within ``host ± uncertainty``)."""

    device: int
    host: float
    uncertainty: float

    @property
    def offset(self) -> float:
        """Token minus host, seconds."""
        return self.device - self.host


def _call(dev: Device, step: str, name: str, *args: object, timeout: float | None = None,
          secrets: tuple[bytes, ...] = (), **kwargs: object) -> object:
    # one named call (hostcalls); a failure is an OpsError for ``step``, secrets scrubbed
    try:
        return hostcalls.call(dev, name, *args, timeout=timeout, **kwargs)
    except DeviceError as e:
        raise OpsError(step, scrub(str(e), *secrets)) from None


def read_edge(dev: Device) -> ClockReading:
    """Time the token's next RTC seconds edge against the host's UTC clock.

    The edge is detected on the token (``hostapi.edge``: a tight poll of the RTC
    through the board's driver), which also reports how long it waited for it. With
    the host's clock read just before the request (``t0``) and just after the answer
    (``t1``), the edge lies in ``[t0 + waited, t1]`` whatever the delays on the way in
    and out (a busy host, the serial link, the raw REPL compiling the call): the
    reading is the middle of that interval and its uncertainty half its width, a
    bound, not an estimate.
    """
    t0 = time.time()
    got = _call(dev, "clock", "edge", timeout=5.0)
    t1 = time.time()
    try:
        dev_t, waited_us = got  # type: ignore[misc]
        dev_t, waited = int(dev_t), int(waited_us) / 1e6
    except (ValueError, TypeError):
        raise OpsError("clock", f"{dev.port}: unexpected RTC answer") from None
    lo = min(t0 + waited, t1)
    return ClockReading(dev_t, (lo + t1) / 2, (t1 - lo) / 2)


def best_edge(dev: Device, n: int = 3, first: ClockReading | None = None) -> ClockReading:
    """The tightest of ``n`` edge readings (``first`` counts as one)."""
    rds = [first] if first is not None else []
    while len(rds) < n:
        rds.append(read_edge(dev))
    return min(rds, key=lambda r: r.uncertainty)


@dataclass
class ClockSet:
    """The result of setting a token's RTC to UTC."""

    utc: int  # the second written
    first: ClockReading  # the edge just after


_MAX_LEAD = 0.9  # seconds: the most a clock write is sent ahead of the second it names


def set_clock_utc(dev: Device, *, tolerance: float = 0.25, tries: int = 4) -> ClockSet:
    """Set the token's RTC to the host's UTC through the board's RTC driver.

    ``hostapi.set_clock`` makes the civil time with ``paycode.civil_from_unix`` on the
    host's UTC seconds, never local time. The write is sent ahead of the whole second
    it names, by half a round trip at first; then the next seconds edge is timed. An
    offset beyond ``tolerance`` is retried with the lead corrected by the offset just
    measured (a slow board compiles the call late every time), then refused.
    """
    _call(dev, "clock", "read_clock")  # the driver is made now, not inside the timed write
    rd: ClockReading | None = None
    lead: float | None = None
    for _ in range(tries):
        if lead is None:
            # a short call's round trip: the write is sent half of one early
            t0 = time.time()
            try:
                hostcalls.roundtrip(dev)
            except DeviceError as e:
                raise OpsError("clock", str(e)) from None
            lead = (time.time() - t0) / 2
        now = time.time()
        n = int(now) + 1 if now % 1 < 0.7 - lead else int(now) + 2
        time.sleep(max(0.0, n - lead - time.time()))
        _call(dev, "clock", "set_clock", n)
        rd = best_edge(dev, 2)
        if abs(rd.offset) <= tolerance + rd.uncertainty:
            return ClockSet(n, rd)
        # a token behind (negative offset) took the write late: send the next earlier
        lead = min(_MAX_LEAD, max(0.0, lead - rd.offset))
    assert rd is not None
    raise OpsError(
        "clock", f"{dev.port}: the RTC is {rd.offset * 1000:+.0f} ms off right after "
        "being set: it does not keep the time"
    )


def ppm_between(a: ClockReading, b: ClockReading) -> tuple[float, float]:
    """Crystal error (ppm, token fast is positive) between two readings, and its
    bound (ppm): the true error lies within ``ppm ± bound``."""
    span = b.host - a.host
    if span <= 0:
        raise OpsError("drift", "readings out of order")
    ppm = (b.offset - a.offset) / span * 1e6
    res = (a.uncertainty + b.uncertainty) / span * 1e6
    return ppm, res


def ppm_to_store(ppm: float, bound: float) -> float:
    """The correction worth storing on the token: the measured error when it is known
    well enough to help (its bound is at most half of it, or a few ppm), else 0.

    A wrong correction is worse than none: a stored +70 ppm on a good crystal walks
    the token 37 minutes a year. When the burn-in was too short to resolve the
    crystal, the token stores 0 and the issuer learns the drift from payments.
    """
    if bound <= STORE_PPM_BOUND or bound <= abs(ppm) / 2:
        return ppm
    return 0.0


# ---- config and codes -----------------------------------------------------------------


def write_config(dev: Device, cfg: dict[str, object]) -> None:
    """``hostapi.save_config(cfg)`` on the token (atomic there: temp, fsync, rename)."""
    secrets_ = tuple(v for v in cfg.values() if isinstance(v, bytes))
    try:
        hostcalls.call(dev, "save_config", cfg)
    except DeviceError as e:
        raise OpsError("config", scrub(f"writing the config failed: {e}", *secrets_)) from None


def update_config(dev: Device, step: str, **changes: object) -> None:
    """``hostapi.save_fields(**changes)`` on the token: some fields of its config changed
    (a key among them is scrubbed from any error)."""
    secrets_ = tuple(v for v in changes.values() if isinstance(v, bytes))
    _call(dev, step, "save_fields", secrets=secrets_, **changes)


CODES_PER_CALL = 50  # codes per exec: the lease is fed between calls


def wipe_config(dev: Device) -> bool:
    """Remove the token's config (a cut run's, before its pending record goes); True
    when the token confirmed it is gone."""
    try:
        return hostcalls.call(dev, "wipe_config", timeout=5.0) is True
    except DeviceError:
        return False


def device_codes(dev: Device, times: Iterable[int], *, between: Callable[[], None] | None = None
                 ) -> list[str]:
    """Codes the token computes from its stored config (``hostapi.codes``), in calls of
    ``CODES_PER_CALL``; ``between()`` runs before each call (``hold_lease``)."""
    ts = [int(t) for t in times]
    codes: list[object] = []
    for i in range(0, len(ts), CODES_PER_CALL):
        part = ts[i:i + CODES_PER_CALL]
        if between is not None:
            between()
        got = _call(dev, "verify", "codes", part, timeout=max(10.0, len(part) * 0.5))
        if not isinstance(got, list) or len(got) != len(part):
            n = len(got) if isinstance(got, list) else 0
            raise OpsError("verify", f"{dev.port}: the token returned {n} codes for {len(part)} times")
        codes += got
    return [str(c) for c in codes]


def mismatches(times: list[int], got: list[str], want: list[str]) -> list[int]:
    """The times whose codes differ (compared in constant time)."""
    return [t for t, g, w in zip(times, got, want, strict=True) if not hmac.compare_digest(g, w)]


def differing_digits(times: list[int], got: list[str], want: list[str], t: int) -> str:
    """How the codes at ``t`` differ, without either code: "3 of 18 digits differ" (few:
    a byte changed on the way; most: another code), or the answer's length when it is
    not a code's."""
    i = times.index(t)
    g, w = got[i], want[i]
    if len(g) != len(w):
        return f"the token's answer has {len(g)} characters, not {len(w)}"
    return f"{sum(a != b for a, b in zip(g, w, strict=True))} of {len(w)} digits differ"


def host_codes(secret: bytes, token_id: int, times: Iterable[int], scheme_key: bytes,
               prefix: str, fmt: int = 1) -> list[str]:
    """The same codes by CPython's paycode (code format ``fmt``)."""
    return [paycode.payment_code(secret, token_id, int(t), scheme_key, prefix, fmt) for t in times]


def move_config(dev: Device, prefix: str, scheme_key: bytes, fmt: int) -> None:
    """The token's config moves to another scheme: its prefix, scheme key and code format
    in one atomic write (``hostapi.save_fields``; the secret and the rest stay)."""
    update_config(dev, "config", prefix=prefix, format=int(fmt), scheme_key=bytes(scheme_key))


def spread_times(start: int, end: int, n: int) -> list[int]:
    """``n`` times from ``start`` to ``end`` (inclusive), evenly spread, 30 s aligned
    plus a varying second so that step edges are exercised too."""
    if n < 1:
        raise ValueError("at least one step")
    if n == 1:
        return [start]
    span = end - start
    return [start + span * i // (n - 1) - (i % 31 if i else 0) for i in range(n)]


# ---- lock and unlock ------------------------------------------------------------------


def hold_lease(dev: Device) -> float:
    """Start or feed the token's unlock lease (``hostapi.hold_lease``: ``lease.hold()``);
    returns its length in seconds. Until the session ends, call it before each step."""
    ms = _call(dev, "lease", "hold_lease", timeout=5.0)
    if type(ms) is not int:
        raise OpsError("lease", f"{dev.port}: unexpected answer to the lease")
    return ms / 1000


def lock(dev: Device, token_id: int, *, flag_set: bool = False) -> TokenState:
    """Set the lock flag (unless ``flag_set``: it is already), hard-reset the token into
    its firmware (which ends the lease) and confirm: ``INFO`` answers locked with
    ``token_id``, and the raw REPL is refused."""
    if not flag_set:
        update_config(dev, "lock", locked=True)
    try:
        dev.hard_reset()
    except DeviceError as e:
        raise OpsError("lock", str(e)) from None
    st = None
    # a slow board (an emulated one) gets its per-call timeout, if that is longer
    deadline = time.monotonic() + max(BOOT_TIMEOUT, dev.timeout)
    # each try waits a quarter of the device's timeout (at least 2 s): a slow board's
    # late answers to tries given up on would pile up as stale replies
    per_try = max(2.0, dev.timeout / 4)
    while st is None:
        try:
            st = info(dev, timeout=per_try)
        except OpsError:
            if time.monotonic() > deadline:
                raise OpsError("lock", f"{dev.port}: no INFO answer after the reset") from None
    if not st.locked or st.token_id != token_id:
        raise OpsError(
            "lock", f"{dev.port}: after the reboot INFO says id={st.token_id} locked={int(st.locked)}"
        )
    if repl_open(dev):
        raise OpsError("lock", f"{dev.port}: the locked token still gives a REPL")
    return st


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait (in the main thread) until the block is done: a second
    Ctrl-C must not cut a clean-up short. They are delivered after it."""
    main = threading.current_thread() is threading.main_thread()
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs) if main else None
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def relock(dev: Device) -> bool:
    """Best effort on an error or interrupt path: end an open session with a hard reset
    (the flag on flash is set, so the token boots locked). True if the token took it;
    False if it gave no raw REPL (locked already, or gone: its lease ends the session)."""
    with signals_held():
        try:
            dev.hard_reset(timeout=3.0)
            return True
        except DeviceError:
            return False


def wait_booted(dev: Device, timeout: float = BOOT_TIMEOUT, *, need_firmware: bool = True
                ) -> TokenState:
    """The state of a token that is (re)booting: ``INFO`` if it comes up locked, else the
    raw REPL probe."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return info(dev, timeout=2.0)
        except OpsError:
            pass
        try:
            return probe(dev, repl_timeout=1.5, need_firmware=need_firmware)
        except OpsError:
            if time.monotonic() > deadline:
                raise OpsError("check", f"{dev.port}: no answer after the reset") from None


def repl_open(dev: Device, timeout: float = REFUSE_TIMEOUT) -> bool:
    """True if the raw REPL answers within ``timeout`` (a locked token never does)."""
    try:
        dev.enter_raw(soft_reset=False, timeout=timeout)
    except DeviceError:
        return False
    return True


def challenge(dev: Device, step: str) -> str:
    """A fresh nonce from the token (``CHALLENGE``)."""
    # sync first: stale replies are drained by a good INFO
    info(dev)
    r = _ask(dev, "CHALLENGE", lambda r: r.startswith("OK ") and r[3:].strip().isalnum(), None)
    nonce = r[3:].strip()
    if not r.startswith("OK ") or not nonce.isalnum():
        raise OpsError(step, f"{dev.port}: no nonce from the token: {r[:60]}")
    return nonce


UNLOCK_TRIES = 2  # a token that resets right after its UNLOCK gets one more


def probe_unlocked(dev: Device) -> TokenState:
    """The probe after an ``UNLOCK``: the raw REPL comes after a soft reset that a slow
    board (an emulated one) takes seconds over, so it gets the device's timeout. A
    ``locked`` answer means the token has reset since the UNLOCK (its lease ran out
    just then): the caller unlocks it again, at most ``UNLOCK_TRIES`` times in all."""
    return probe(dev, repl_timeout=max(REPL_PROBE_TIMEOUT, dev.timeout))


def unlock(dev: Device, mac: str) -> None:
    """``UNLOCK <mac>``; then the firmware returns to the REPL."""
    try:
        dev.line(f"UNLOCK {mac}", check=True)
    except DeviceError as e:
        raise OpsError("unlock", str(e)) from None
