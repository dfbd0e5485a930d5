"""A year in the field, simulated: N tokens, real firmware clock path, real verification.

Each token is the real firmware's clock path under CPython: an RTC chip model from
``firmware/sim/rtc.py`` (DS3231 or PCF8563) on the I2C bus model, read through the real
driver (``firmware/ds3231.py`` / ``pcf8563.py``), its config in a real config file
(``firmware/config.py``), and the wake decision and drift correction of
``firmware/app.py`` (``decide``, ``true_time``, ``code_at``). Every payment goes through
the real issuer service (``paytoken.backend.service.Backend.pay``) on a fresh SQLite
database whose clock is the simulated world time.

The crystal model (what we chose; see docs/YEAR.md):

* a nominal error ``ppm0`` drawn uniformly from -20..+20 ppm per token;
* a tuning-fork temperature term ``K * (T - 25 °C)^2`` with ``K = -0.034 ppm/°C²``
  (the parabola of 32.768 kHz tuning-fork crystals, turnover 25 °C);
* a daily temperature cycle ``T(t) = T_mean + A * sin(2π (local hour - 9) / 24)``
  (coolest at 03:00, warmest at 15:00 local time), ``T_mean`` 16..26 °C and ``A``
  2..8 °C per token, each token in a random time zone. The model's rate is updated
  every simulated hour with the temperature at the middle of that hour.

Provisioning is simulated as ``paytoken.station`` does it (``station/ops.py``): the
host (NTP, error up to ±5 ms) sends the whole second half a round trip before it; the
token polls its RTC through the driver for the next seconds edge (one read, ~0.5 ms)
and the host takes its receive time minus half the round trip, which errs by the
link's jitter (±2 ms); the same again after the burn-in (600 s) gives
``ppm = (offset after - offset before) / span``. The burn-in runs at factory
temperature (21..25 °C), so the stored ppm also misses the field's temperature term.
``burn_in=0`` is the station's default: nothing measured, ppm 0 on the token.

With ``migrate_day`` the fleet is mixed (docs/FORMAT.md): every other token leaves the
factory on scheme 82 (code format 2, TOTP HMAC-SHA256), the rest on scheme 81 (format
1); from that day on the service desk moves the format 1 tokens to 82 one by one, each
at a random time within ``MIGRATION_DAYS``, as ``paytoken update --prefix 82`` does it
(the issuer's ``move_token``, the config's new prefix, scheme key and format, then
``finish_move``; same secret). When all have moved, scheme 81 is retired and closed,
and a code of its format is checked to get "unknown prefix".

Usage::

    report = simulate(tokens=20, days=365, seed=1)
    print(report["acceptance_rate"], report["resyncs"])
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paycode import PERIOD

from paytoken import fwload

K_TEMP = -0.034  # ppm / °C², tuning-fork crystal parabola
T_TURNOVER = 25.0  # °C
START = 1_798_761_600  # 2027-01-01T00:00:00Z: the field year starts here
DAY = 86400
HOUR = 3600
MIGRATION_DAYS = 30.0  # the desk moves the format 1 tokens within this many days
_MOVE = -1  # an event's amount: the desk moves the token to format 2


class SimulationError(ValueError):
    """Bad simulation parameters, or a token that did not behave (e.g. no code shown)."""


@dataclass
class Params:
    """The knobs of one simulation run (defaults: the documented scenario)."""

    tokens: int = 20
    days: float = 365.0
    seed: int = 1
    ppm_range: float = 20.0  # nominal crystal error, uniform in ±ppm_range
    burn_in: float = 600.0  # seconds the station measures the crystal over (0: not measured)
    poll_ms: float = 0.5  # one RTC read through the driver on the token (I2C at 400 kHz)
    host_error_ms: float = 5.0  # the station's NTP error, uniform in ±this
    jitter_ms: float = 2.0  # the serial link's one-way latency minus half its round trip, ±this
    rate_per_day: tuple[float, float] = (0.5, 5.0)  # payments a day, log-uniform per token
    scan_s: tuple[float, float] = (2.0, 20.0)  # button press -> the till scans the screen
    network_s: tuple[float, float] = (0.2, 3.0)  # scan -> the backend's clock reads the request
    window: int = 1  # acceptance window, steps either side (Policy.window)
    migrate_day: float | None = None  # a mixed fleet, format 1 moved to 2 from this day on

    def check(self) -> None:
        if not 1 <= self.tokens <= 1000:
            raise SimulationError("tokens must be 1..1000")
        if not 0 < self.days <= 3650:
            raise SimulationError("days must be more than 0 and at most 3650")
        if not 0 <= self.ppm_range <= 500:
            raise SimulationError("ppm range must be 0..500")
        if not (self.burn_in == 0 or 10 <= self.burn_in <= 7 * DAY):
            raise SimulationError("burn-in must be 0 (not measured) or 10 s .. 7 days")
        if not 1 <= self.window <= 4:
            raise SimulationError("window must be 1..4 steps")
        if self.migrate_day is not None and not 0 <= self.migrate_day <= self.days - MIGRATION_DAYS:
            raise SimulationError(f"the migration day must be 0 .. days - {MIGRATION_DAYS:g} "
                                  "(the desk takes that long to move the fleet)")


@dataclass
class Sample:
    """One genuine payment as the simulation saw it."""

    day: float
    true_offset: float  # the token's corrected clock minus UTC (s), at the press
    learned: int  # the backend's drift (s) after this payment
    ok: bool
    reason: str | None


@dataclass
class FieldToken:
    """One simulated token: crystal, temperature, RTC model + driver, config file."""

    index: int
    chip: str
    ppm0: float
    t_mean: float
    t_amp: float
    tz_hours: float
    rate: float
    cfg_path: str
    world: list[float]  # [world UTC seconds], shared with the RTC model's clock
    model: Any = None
    driver: Any = None
    token_id: int = 0
    ppm_measured: float = 0.0
    ref_time: int = 0
    next_hour: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    def temperature(self, w: float) -> float:
        local_h = (w / HOUR + self.tz_hours) % 24
        return self.t_mean + self.t_amp * math.sin(2 * math.pi * (local_h - 9) / 24)

    def ppm_at(self, temp: float) -> float:
        return self.ppm0 + K_TEMP * (temp - T_TURNOVER) ** 2

    def advance(self, w: float, rtc_mod: Any) -> None:
        """Run the crystal forward to world time ``w``, the rate set hour by hour."""
        while self.next_hour <= w:
            self.world[0] = self.next_hour
            mid = self.next_hour + HOUR / 2
            rtc_mod.set_ppm(self.model.state, self.ppm_at(self.temperature(mid)), self.next_hour)
            self.next_hour += HOUR
        self.world[0] = w

    def corrected_offset(self) -> float:
        """Truth: the firmware's corrected time (with the fraction) minus world time."""
        reg = self.model.time()
        ppm = self.ppm_measured
        return reg - (reg - self.ref_time) * ppm * 1e-6 - self.world[0]


def _uniform(rng: random.Random, lo_hi: tuple[float, float]) -> float:
    return rng.uniform(lo_hi[0], lo_hi[1])


def _payment_times(rng: random.Random, rate: float, start: float, end: float) -> list[float]:
    # A Poisson process of presses, at least 60 s apart (a second press within a
    # minute would show the same code; a person waits for the next one).
    out: list[float] = []
    t = start + rng.expovariate(rate / DAY)
    while t < end:
        out.append(t)
        t += max(60.0, rng.expovariate(rate / DAY))
    return out


def simulate(tokens: int = 20, days: float = 365.0, seed: int = 1, db_dir: str | Path | None = None,
             jobs: int = 1, progress: Callable[[float], None] | None = None, **kw: Any) -> dict:
    """Run the simulation; returns the report (the keys are described in docs/YEAR.md).

    Tokens are simulated in shards of ``SHARD`` tokens, each shard with its own issuer
    database (a token's verification touches only its own row, so this changes no
    result), on ``jobs`` processes. Each token draws from its own random stream
    (``seed``/index), so the result does not depend on ``jobs``.
    ``db_dir``: where the shards' SQLite databases and token config files go (default: a
    temporary folder, in /dev/shm when there is one, removed afterwards).
    ``progress(fraction)`` is called as shards finish.
    """
    p = Params(tokens=tokens, days=days, seed=seed, **kw)
    p.check()
    if not 1 <= jobs <= 64:
        raise SimulationError("jobs must be 1..64")
    t_wall = time.perf_counter()
    if db_dir is not None:
        Path(db_dir).mkdir(parents=True, exist_ok=True)
        shards = _run_shards(p, Path(db_dir), jobs, progress)
    else:
        shm = Path("/dev/shm")
        with tempfile.TemporaryDirectory(prefix="paytoken-year-", dir=shm if shm.is_dir() else None) as d:
            shards = _run_shards(p, Path(d), jobs, progress)
    return _report(p, shards, time.perf_counter() - t_wall)


SHARD = 4  # tokens per issuer database


def _run_shards(p: Params, folder: Path, jobs: int, progress: Callable[[float], None] | None) -> list[dict]:
    groups = [list(range(i, min(i + SHARD, p.tokens))) for i in range(0, p.tokens, SHARD)]
    dirs = [folder / f"shard{k:02d}" for k in range(len(groups))]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        if (d / "year.db").exists():
            raise SimulationError(f"{d / 'year.db'} exists: the simulation needs a fresh folder")
    done = 0
    out: list[dict] = []
    if jobs == 1 or len(groups) == 1:
        for g, d in zip(groups, dirs, strict=True):
            out.append(run_shard(p, g, str(d)))
            done += len(g)
            if progress:
                progress(done / p.tokens)
        return out
    import concurrent.futures as cf
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no forked SQLite handles or threads
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futs = {pool.submit(run_shard, p, g, str(d)): len(g) for g, d in zip(groups, dirs, strict=True)}
        for f in cf.as_completed(futs):
            out.append(f.result())
            done += futs[f]
            if progress:
                progress(done / p.tokens)
    out.sort(key=lambda r: r["first"])
    return out


def run_shard(p: Params, indexes: list[int], folder: str) -> dict:
    """Simulate the tokens ``indexes`` against one fresh issuer database in ``folder``."""
    import paycode
    from sqlalchemy import select

    from paytoken.backend.crypto import Keyring
    from paytoken.backend.service import Backend
    from paytoken.backend.store.db import make_engine, migrate
    from paytoken.backend.store.models import Token
    from paytoken.backend.verify import Policy

    # the firmware's own modules, under private names (paytoken.fwload)
    fw_app, fw_config = fwload.module("app"), fwload.module("config")
    ds3231, pcf8563 = fwload.module("ds3231"), fwload.module("pcf8563")
    rtc_mod = fwload.module("sim.rtc")
    I2CBus = fwload.module("sim.bus").I2CBus  # noqa: N806 (a class)

    engine = make_engine(str(Path(folder) / "year.db"))
    migrate(engine)
    clock = [START - 2 * DAY]
    ring, _ = Keyring.generate()
    backend = Backend(engine, ring, Policy(window=p.window), clock=lambda: clock[0])
    scheme_key = backend.add_scheme("81")
    schemes = {"81": (scheme_key, 1)}
    if p.migrate_day is not None:
        schemes["82"] = (backend.add_scheme("82", fmt=2), 2)
    merchant_id, _key = backend.add_merchant("simulated till")

    end = START + p.days * DAY
    toks: dict[int, FieldToken] = {}
    rngs: dict[int, random.Random] = {}
    events: list[tuple[float, int, int]] = []
    for i in indexes:
        rng = rngs[i] = random.Random(f"paytoken-year/{p.seed}/{i}")
        chip = "ds3231" if i % 2 == 0 else "pcf8563"
        world = [0.0]
        ft = FieldToken(
            index=i, chip=chip, ppm0=rng.uniform(-p.ppm_range, p.ppm_range),
            t_mean=rng.uniform(16.0, 26.0), t_amp=rng.uniform(2.0, 8.0),
            tz_hours=rng.uniform(0.0, 24.0),
            rate=math.exp(rng.uniform(math.log(p.rate_per_day[0]), math.log(p.rate_per_day[1]))),
            cfg_path=str(Path(folder) / f"token{i:03d}.cfg"), world=world)
        ft.model = rtc_mod.RTCModel(chip=chip, clock=lambda world=world: world[0])
        bus = I2CBus()
        bus.attach(ft.model.addr, ft.model)
        ft.driver = ds3231.DS3231(bus) if chip == "ds3231" else pcf8563.PCF8563(bus)
        prefix = "82" if p.migrate_day is not None and i % 2 else "81"
        _provision(ft, p, rng, backend, clock, prefix, schemes[prefix], fw_config, paycode, rtc_mod)
        toks[i] = ft
        presses = _payment_times(rng, ft.rate, START, end)
        amounts = [rng.randint(100, 30000) for _ in presses]  # minor units: 1.00 .. 300.00
        events.extend((w, i, a) for w, a in zip(presses, amounts, strict=True))
        if prefix == "81" and p.migrate_day is not None:
            events.append((START + (p.migrate_day + rng.uniform(0, MIGRATION_DAYS)) * DAY, i, _MOVE))
        clock[0] = START - DAY
        if amounts:  # the account holds what the year will spend
            backend.credit(ft.token_id, sum(amounts) + 100, actor="sim")
    events.sort()  # the backend sees one timeline

    # The token's config as the firmware holds it after boot: read once from the file
    # the station wrote; each wake records last_step in it (the device writes the
    # file too, which costs a sync here and changes nothing the simulation measures).
    cfgs = {i: fw_config.load(toks[i].cfg_path) for i in indexes}
    drift_q = select(Token.__table__.c.drift_s)
    refusals: dict[str, int] = {}
    screens: dict[str, int] = {}
    by_format: dict[int, list[int]] = {}  # format -> [genuine codes paid with, accepted]
    moved = 0
    for n, (w, i, amount) in enumerate(events):
        ft = toks[i]
        rng = rngs[i]
        if amount == _MOVE:
            clock[0] = w
            _move(backend, ft, cfgs[i], "82", schemes["82"], fw_config)
            moved += 1
            continue
        ft.advance(w, rtc_mod)
        true_off = ft.corrected_offset()
        # The wake: RTC read through the driver, the firmware's decision and code.
        cfg = cfgs[i]
        dt = ft.driver.datetime()
        screen, t0 = fw_app.decide(cfg, dt, ft.driver.lost_power)
        if screen != "code":
            screens[screen] = screens.get(screen, 0) + 1
            continue
        if t0 // paycode.PERIOD > cfg["last_step"]:
            cfg["last_step"] = t0 // paycode.PERIOD
        # The till scans the screen a few seconds later (the firmware counts the
        # seconds since its RTC read on the MCU's ticks and redraws at a new step).
        scan = _uniform(rng, p.scan_s)
        code = fw_app.code_at(cfg, t0 + int(scan))
        clock[0] = w + scan + _uniform(rng, p.network_s)
        res = backend.pay(merchant_id, code, amount, "CNY", f"sim-{i}-{n}")
        ok = res["status"] == "succeeded"
        if not ok:
            refusals[res["reason"]] = refusals.get(res["reason"], 0) + 1
        tally = by_format.setdefault(cfg["format"], [0, 0])
        tally[0] += 1
        tally[1] += ok
        with engine.begin() as conn:
            learned = conn.execute(drift_q.where(Token.__table__.c.id == ft.token_id)).scalar()
        ft.samples.append(Sample((w - START) / DAY, true_off, learned, ok, res["reason"]))
    closed = None
    if p.migrate_day is not None:
        closed = _close_old_scheme(backend, toks[indexes[0]], cfgs[indexes[0]], scheme_key, paycode, clock)
    per_token = []
    for i in indexes:
        ft = toks[i]
        ft.advance(end, rtc_mod)
        per_token.append(_token_summary(ft, backend.token_info(ft.token_id)))
    engine.dispose()
    return {"first": indexes[0], "refusals": refusals, "screens": screens, "per_token": per_token,
            "by_format": by_format, "moved": moved, "closed": closed,
            "series": [[(round(s.day, 4), round(s.true_offset, 2), s.learned, s.ok) for s in toks[i].samples]
                       for i in indexes]}


def _move(backend: Any, ft: FieldToken, cfg: dict, prefix: str, scheme: tuple[bytes, int],
          fw_config: Any) -> None:
    """The desk's ``update --prefix`` (station/desk.py ``_move``): the issuer first, which
    accepts both schemes until the move is finished; then the config; then finished."""
    d = backend.move_token(ft.token_id, prefix, "desk")
    if (d["scheme_key"], d["format"]) != scheme:
        raise SimulationError("the issuer answered another scheme key or format for the move")
    cfg["prefix"], cfg["scheme_key"], cfg["format"] = prefix, d["scheme_key"], d["format"]
    fw_config.save(cfg, ft.cfg_path)
    backend.finish_move(ft.token_id, prefix, "desk")


def _close_old_scheme(backend: Any, ft: FieldToken, cfg: dict, key1: bytes, paycode: Any,
                      clock: list[float]) -> str:
    """Retire and close scheme 81 once every token moved; a format 1 code of a moved
    token then gets the issuer's "unknown prefix". Returns that verdict's detail."""
    from paytoken.backend.service import operators

    operators.retire_scheme(backend, "81", "ops", close=True)
    code = paycode.payment_code(cfg["secret"], ft.token_id, int(clock[0]), key1, "81", 1)
    v = backend.verify(code)
    if v.reason != "CODE_INVALID":
        raise SimulationError(f"a code of the closed scheme 81 was answered {v.reason}")
    return str(v.detail)


def _token_summary(ft: FieldToken, info: dict) -> dict:
    last = ft.samples[-1] if ft.samples else None
    gaps = [b.day - a.day for a, b in zip(ft.samples, ft.samples[1:], strict=False)]
    return {
        "token_id": ft.token_id, "chip": ft.chip, "ppm_nominal": round(ft.ppm0, 3),
        "ppm_measured": ft.ppm_measured, "temp_mean_c": round(ft.t_mean, 1),
        "temp_amplitude_c": round(ft.t_amp, 1), "payments_per_day": round(ft.rate, 2),
        "payments": len(ft.samples), "accepted": sum(s.ok for s in ft.samples),
        "raw_offset_end_s": round(ft.model.time() - ft.world[0], 2),
        "corrected_offset_end_s": round(ft.corrected_offset(), 2),
        "learned_drift_s": info["drift_seconds"],
        "learned_minus_true_s": None if last is None else round(last.learned - last.true_offset, 2),
        "max_gap_days": round(max(gaps, default=0.0), 2),
    }


def _provision(ft: FieldToken, p: Params, rng: random.Random, backend: Any, clock: list[float],
               prefix: str, scheme: tuple[bytes, int], fw_config: Any, paycode: Any, rtc_mod: Any) -> None:
    """The station's provisioning of one token onto the scheme ``prefix`` ((key, format)),
    at factory temperature."""
    host_err = rng.uniform(-p.host_error_ms, p.host_error_ms) / 1000  # host clock - UTC
    t_factory = rng.uniform(21.0, 25.0)
    w0 = START - DAY - p.burn_in - 120 + rng.uniform(0, 60)
    ft.world[0] = w0
    rtc_mod.set_ppm(ft.model.state, ft.ppm_at(t_factory), w0)
    jit = p.jitter_ms / 1000
    # Set (station.ops.set_clock_utc): the write of second S is sent half a round trip
    # before S; it lands within the link's asymmetry/jitter of the host's S.
    s_set = math.floor(w0 + host_err) + 1
    ft.world[0] = s_set - host_err + rng.uniform(-jit, jit)
    ft.driver.set_datetime(paycode.civil_from_unix(s_set))
    # station.ops.read_edge: the token polls its RTC through the driver until the
    # seconds change; the host takes its receive time minus half the round trip. The
    # reading errs by one RTC read (the poll) and the link's jitter; it is taken right
    # after the set and again after the burn-in (ops.ppm_between).
    r0, h0 = _edge(ft, p, rng, ft.world[0], host_err)
    measured = 0.0
    if p.burn_in > 0:
        r1, h1 = _edge(ft, p, rng, ft.world[0] + p.burn_in - 1.0, host_err)
        measured = ((r1 - h1) - (r0 - h0)) / (h1 - h0) * 1e6
    w = ft.world[0]
    ft.ppm_measured = round(measured, 3)
    ft.ref_time = s_set
    clock[0] = w
    token_id = backend.allocate_token(actor="station")
    secret = rng.randbytes(20)
    sync_key = rng.randbytes(20)
    fw_config.save({"token_id": token_id, "secret": secret, "scheme_key": scheme[0], "prefix": prefix,
                    "format": scheme[1], "sync_key": sync_key, "ppm": ft.ppm_measured, "ref_time": s_set,
                    "locked": True, "last_step": 0, "last_sync": s_set}, ft.cfg_path)
    backend.activate_token(token_id, secret, sync_key, prefix, actor="station")
    ft.token_id = token_id
    ft.next_hour = float(START)  # field temperature from the start of the year


def _edge(ft: FieldToken, p: Params, rng: random.Random, w: float, host_err: float) -> tuple[int, float]:
    """The token's next seconds edge from world time ``w``: (the new second, host time)."""
    import paycode

    ft.world[0] = w
    prev = paycode.unix_from_civil(*ft.driver.datetime())
    w += rng.uniform(0, p.poll_ms) / 1000  # where the poll loop stands at the edge
    for _ in range(int(2000 / p.poll_ms) + 2):
        ft.world[0] = w
        now = paycode.unix_from_civil(*ft.driver.datetime())
        if now != prev:
            jit = p.jitter_ms / 1000
            return now, w + host_err + rng.uniform(-jit, jit)
        prev = now
        w += p.poll_ms / 1000
    raise SimulationError(f"token {ft.index}: the RTC seconds did not move within 2 s")


def _stats(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "max_abs": None, "p95_abs": None}
    a = sorted(abs(v) for v in values)
    return {"mean": round(sum(values) / len(values), 3), "max_abs": round(a[-1], 3),
            "p95_abs": round(a[min(len(a) - 1, int(0.95 * len(a)))], 3)}


def _report(p: Params, shards: list[dict], elapsed: float) -> dict:
    per_token = [t for sh in shards for t in sh["per_token"]]
    series = [ser for sh in shards for ser in sh["series"]]
    refusals: dict[str, int] = {}
    screens: dict[str, int] = {}
    for sh in shards:
        for src, dst in ((sh["refusals"], refusals), (sh["screens"], screens)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
    shown = sum(len(ser) for ser in series)
    accepted = sum(s[3] for ser in series for s in ser)
    genuine = shown + sum(screens.values())
    errors = [s[2] - s[1] for ser in series for s in ser if s[3]]
    by_format: dict[str, dict[str, int]] = {}
    for sh in shards:
        for fmt, (n, ok) in sh["by_format"].items():
            d = by_format.setdefault(str(fmt), {"payments": 0, "accepted": 0})
            d["payments"] += n
            d["accepted"] += ok
    migration = None
    if p.migrate_day is not None:
        migration = {"day": p.migrate_day, "over_days": MIGRATION_DAYS,
                     "moved": sum(sh["moved"] for sh in shards),
                     "old_code_after_close": sorted({sh["closed"] for sh in shards})}
    return {
        "tokens": p.tokens, "days": p.days, "seed": p.seed, "window_steps": p.window,
        "burn_in_s": p.burn_in, "payments": genuine, "accepted": accepted,
        "acceptance_rate": round(accepted / genuine, 6) if genuine else None,
        "refusals": refusals, "wrong_screens": screens,
        # a resync = the token's offset left the window: the backend refused the code
        # as expired (the next code, confirming the jump, resynchronizes it)
        "resyncs": refusals.get("CODE_EXPIRED", 0),
        "learned_drift_error_s": _stats(errors),
        "raw_offset_end_s": _stats([t["raw_offset_end_s"] for t in per_token]),
        "corrected_offset_end_s": _stats([t["corrected_offset_end_s"] for t in per_token]),
        "ppm_measurement_error": _stats([t["ppm_measured"] - t["ppm_nominal"] for t in per_token]),
        "max_gap_days": max((t["max_gap_days"] for t in per_token), default=0.0),
        "by_format": by_format,  # codes paid with per code format (the token's at the time)
        "migration": migration,
        "elapsed_s": round(elapsed, 2),
        "per_token": per_token,
        "series": series,
    }


def plot(report: dict, path: str | Path) -> Path:
    """Write the drift plot (true offset vs learned drift per token, and the error) as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SimulationError("the plot needs matplotlib (pip install matplotlib)") from None
    path = Path(path)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    cmap = plt.get_cmap("tab20")
    for k, series in enumerate(report["series"]):
        if not series:
            continue
        day = [s[0] for s in series]
        true = [s[1] for s in series]
        learned = [s[2] for s in series]
        c = cmap(k % 20)
        ax1.plot(day, true, color=c, lw=1.2)
        ax1.plot(day, learned, ".", color=c, ms=2.5, alpha=0.6)
        ax2.plot(day, [b - a for a, b in zip(true, learned, strict=True)], ".", color=c, ms=2, alpha=0.6)
    w = report["window_steps"] * PERIOD
    ax1.set_ylabel("token clock - UTC (s)")
    ax1.set_title(f"{report['tokens']} tokens, {report['days']:g} days: true offset (lines) "
                  f"vs drift learned by the backend (dots)")
    ax1.grid(alpha=0.3)
    ax2.axhline(w, color="red", lw=0.8, ls="--")
    ax2.axhline(-w, color="red", lw=0.8, ls="--", label=f"±{report['window_steps']} step ({w} s)")
    ax2.set_ylabel("learned - true (s)")
    ax2.set_xlabel("day in the field")
    ax2.legend(loc="upper right")
    ax2.grid(alpha=0.3)
    rate = report["acceptance_rate"]
    fig.text(0.01, 0.005, f"accepted {report['accepted']}/{report['payments']} "
             f"({100 * (rate or 0):.3f} %), resyncs {report['resyncs']}, seed {report['seed']}",
             fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(report: dict) -> str:
    """The report in a few human lines."""
    r = report
    rate = r["acceptance_rate"]
    err = r["learned_drift_error_s"]
    lines = [
        f"{r['tokens']} tokens, {r['days']:g} days, seed {r['seed']}, window ±{r['window_steps']} step, "
        f"burn-in {r['burn_in_s']:g} s ({r['elapsed_s']:.1f} s)",
        f"genuine payments  {r['payments']}, accepted {r['accepted']} "
        f"({100 * (rate or 0):.4f} %)",
        f"refusals          {r['refusals'] or 'none'}; wrong screens {r['wrong_screens'] or 'none'}",
        f"resyncs           {r['resyncs']} (offset left the window)",
        f"learned - true    mean {err['mean']} s, p95 |{err['p95_abs']}| s, max |{err['max_abs']}| s",
        f"offset at the end raw RTC max |{r['raw_offset_end_s']['max_abs']}| s, after the firmware's "
        f"correction max |{r['corrected_offset_end_s']['max_abs']}| s",
        f"ppm measured      error vs nominal max |{r['ppm_measurement_error']['max_abs']}| ppm",
        f"longest gap       {r['max_gap_days']} days between two payments of one token",
    ]
    if r.get("migration"):
        m = r["migration"]
        per = ", ".join(f"format {k}: {v['accepted']}/{v['payments']}" for k, v in sorted(r["by_format"].items()))
        lines.append(f"migration         {m['moved']} tokens moved to format 2 from day {m['day']:g} "
                     f"within {m['over_days']:g} days; accepted {per}; a format 1 code after 81 closed: "
                     f"{', '.join(m['old_code_after_close'])}")
    return "\n".join(lines)
