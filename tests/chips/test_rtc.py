"""DS3231 / PCF8563 / MCU-RTC drivers against the register models, on CPython and on the
real MicroPython interpreter; calendar results checked against CPython's calendar."""

from __future__ import annotations

import calendar
import datetime as dt
import textwrap

import pytest
from chips_helpers import run_sim
from paytoken import vhw

CHIPS = ("ds3231", "pcf8563")
# Dates the chips support (2000-2199 via the century bit), leap days and edges.
DATES = [
    (2000, 1, 1, 0, 0, 0),
    (2000, 2, 29, 12, 30, 45),
    (2024, 12, 31, 23, 59, 59),
    (2038, 1, 19, 3, 14, 8),
    (2096, 2, 29, 1, 2, 3),
    (2099, 12, 31, 23, 59, 59),
    (2100, 1, 1, 0, 0, 0),
    (2100, 2, 28, 23, 59, 59),
    (2104, 2, 29, 6, 7, 8),
    (2150, 7, 4, 18, 0, 1),
    (2199, 12, 31, 23, 59, 59),
]


def _driver(fw, chip, bus):
    import ds3231
    import pcf8563

    return ds3231.DS3231(bus) if chip == "ds3231" else pcf8563.PCF8563(bus)


def _bus(fw, chip, clock):
    from sim.bus import I2CBus
    from sim.rtc import RTCModel

    bus = I2CBus()
    m = RTCModel(chip, clock=clock)
    bus.attach(m.addr, m)
    return bus, m


@pytest.mark.parametrize("chip", CHIPS)
def test_round_trip_cpython(fw, clock, chip):
    bus, m = _bus(fw, chip, clock)
    r = _driver(fw, chip, bus)
    assert r.lost_power  # a new chip: flag set, registers at the reset value
    assert r.datetime() == (2000, 1, 1, 0, 0, 0)
    for t in DATES:
        r.set_datetime(t)
        assert not r.lost_power
        assert m.time() == calendar.timegm(t + (0, 0, 0))
        assert r.datetime() == t


@pytest.mark.parametrize("chip", CHIPS)
def test_time_advances_across_month_year_century(fw, clock, chip):
    bus, m = _bus(fw, chip, clock)
    r = _driver(fw, chip, bus)
    for t in DATES:
        r.set_datetime(t)
        clock.t += 1
        want = dt.datetime(*t) + dt.timedelta(seconds=1)
        if want.year > 2199:
            continue
        assert r.datetime() == want.timetuple()[:6]


@pytest.mark.parametrize("chip", CHIPS)
def test_burst_read_is_one_transaction(fw, clock, chip):
    bus, _ = _bus(fw, chip, clock)
    r = _driver(fw, chip, bus)
    n0, b0 = bus.transactions, bus.bytes
    r.datetime()
    # address+W, register pointer, address+R (repeated start), 7 time registers
    assert (bus.transactions - n0, bus.bytes - b0) == (1, 10)
    n0 = bus.transactions
    r.set_datetime((2030, 1, 2, 3, 4, 5))
    # one burst write of 7 registers (+ the DS3231's status read-modify-write)
    assert bus.transactions - n0 == (3 if chip == "ds3231" else 1)


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize(
    "bad",
    [(1999, 12, 31, 0, 0, 0), (2200, 1, 1, 0, 0, 0), (2100, 2, 29, 0, 0, 0),
     (2024, 13, 1, 0, 0, 0), (2024, 1, 1, 24, 0, 0), (2024, 1, 1, 0, 60, 0), (2024, 1)],
)
def test_bad_times_rejected(fw, clock, chip, bad):
    bus, m = _bus(fw, chip, clock)
    r = _driver(fw, chip, bus)
    before = bus.bytes
    with pytest.raises(ValueError):
        r.set_datetime(bad)
    assert bus.bytes == before  # nothing half-written


@pytest.mark.parametrize("chip,addr", [("ds3231", 0x68), ("pcf8563", 0x51)])
def test_absent_chip_names_itself(fw, clock, chip, addr):
    from sim.bus import I2CBus

    with pytest.raises(OSError, match=f"{chip.upper()} not found at 0x{addr:02x}"):
        _driver(fw, chip, I2CBus())


def test_ds3231_twelve_hour_registers_read_as_24h(fw, clock):
    bus, m = _bus(fw, "ds3231", clock)
    r = _driver(fw, "ds3231", bus)
    r.set_datetime((2031, 5, 6, 0, 0, 0))
    # Another program put the chip in 12-hour mode: 11 PM
    bus.writeto_mem(0x68, 0x02, bytes([0x40 | 0x20 | 0x11]))
    assert r.datetime()[3] == 23
    bus.writeto_mem(0x68, 0x02, bytes([0x40 | 0x12]))  # 12 AM
    assert r.datetime()[3] == 0


def test_ds3231_osf_write_only_clears(fw, clock):
    bus, m = _bus(fw, "ds3231", clock)
    r = _driver(fw, "ds3231", bus)
    r.set_datetime((2030, 1, 1, 0, 0, 0))
    bus.writeto_mem(0x68, 0x0F, b"\x80")  # writing 1 to OSF does not set it
    assert not r.lost_power


# --- folder-backed: power, battery, drift, aging (the state the host controls) ---

DAY = 86400


@pytest.mark.parametrize("chip", CHIPS)
def test_power_loss_without_battery_sets_flag(fw, hw, chip):
    f = hw(rtc_chip=chip, battery=False, at=4_000_000_000, frozen=True)
    from sim.bus import I2CBus
    from sim.rtc import RTCModel

    def driver():
        bus = I2CBus()
        m = RTCModel(folder=str(f))
        bus.attach(m.addr, m)
        return _driver(fw, chip, bus)

    r = driver()
    assert not r.lost_power  # created set (as after a clock sync)
    assert r.datetime() == dt.datetime.fromtimestamp(4_000_000_000, dt.timezone.utc).timetuple()[:6]
    vhw.power_off(f)
    assert vhw.rtc_time(f) is None  # oscillator stopped
    vhw.set_world_time(f, 4_000_000_000 + 3600, frozen=True)
    vhw.power_on(f)
    r = driver()
    assert r.lost_power
    assert r.datetime() == (2000, 1, 1, 0, 0, 0)
    r.set_datetime((2096, 10, 11, 12, 13, 14))
    assert not r.lost_power


@pytest.mark.parametrize("chip", CHIPS)
def test_power_loss_with_battery_keeps_time(fw, hw, chip):
    f = hw(rtc_chip=chip, battery=True, at=4_000_000_000, frozen=True)
    vhw.power_off(f)
    vhw.set_world_time(f, 4_000_000_000 + 5 * DAY, frozen=True)
    vhw.power_on(f)
    assert vhw.rtc_time(f) == 4_000_000_000 + 5 * DAY
    assert not vhw.rtc_state(f)["lost"]
    # Pulling the battery while the board is off loses the time too.
    vhw.power_off(f)
    vhw.set_rtc(f, battery=False)
    vhw.power_on(f)
    assert vhw.rtc_state(f)["lost"]
    assert vhw.rtc_time(f) == 946684800


@pytest.mark.parametrize("chip", CHIPS)
def test_ppm_drift_and_rebase(fw, hw, chip):
    t0 = 4_000_000_000
    f = hw(rtc_chip=chip, ppm=20.0, at=t0, frozen=True)
    vhw.set_world_time(f, t0 + DAY, frozen=True)
    st = vhw.rtc_state(f)
    from paytoken.vhw import _rtc

    exact = _rtc().reg_time(st, t0 + DAY)
    assert exact - (t0 + DAY) == pytest.approx(1.728, abs=1e-6)  # +20 ppm x 1 day
    assert vhw.rtc_time(f) == t0 + DAY + 1
    # Changing ppm keeps the time already elapsed at the old rate.
    vhw.set_rtc(f, ppm=-50.0)
    vhw.set_world_time(f, t0 + 2 * DAY, frozen=True)
    exact = _rtc().reg_time(vhw.rtc_state(f), t0 + 2 * DAY)
    assert exact - (t0 + 2 * DAY) == pytest.approx(1.728 - 4.32, abs=1e-6)


def test_ds3231_aging_register(fw, hw):
    from sim.bus import I2CBus
    from sim.rtc import RTCModel

    t0 = 4_000_000_000
    f = hw(rtc_chip="ds3231", aging=-20, at=t0, frozen=True)
    bus = I2CBus()
    m = RTCModel(folder=str(f))
    bus.attach(0x68, m)
    r = _driver(fw, "ds3231", bus)
    assert r.aging == -20
    vhw.set_rtc(f, aging=17)
    assert r.aging == 17
    # Aging trims the rate: +17 LSB ~ -1.7 ppm.
    vhw.set_world_time(f, t0 + DAY, frozen=True)
    exact = _rtc_exact(f, t0 + DAY)
    assert exact - (t0 + DAY) == pytest.approx(-1.7e-6 * DAY, abs=1e-6)


def _rtc_exact(f, world):
    from paytoken.vhw import _rtc

    return _rtc().reg_time(vhw.rtc_state(f), world)


def test_mcurtc_on_machine_rtc_model(fw, clock):
    from mcurtc import MCURTC
    from sim.mcu import MachineRTC

    m = MachineRTC(clock=clock)
    r = MCURTC(m, cold_boot=True)
    assert r.lost_power
    r.set_datetime((2101, 3, 4, 5, 6, 7))
    assert not r.lost_power
    assert m.datetime() == (2101, 3, 4, dt.date(2101, 3, 4).weekday(), 5, 6, 7, 0)
    clock.t += 61
    assert r.datetime() == (2101, 3, 4, 5, 7, 8)
    # A warm reset: the RTC memory says the time was set since power-up.
    assert not MCURTC(m, cold_boot=False).lost_power
    # A warm reset on an RTC never set since power-up is still lost.
    assert MCURTC(MachineRTC(clock=clock), cold_boot=False).lost_power


# --- the same drivers in the real MicroPython interpreter on the sim board ---

@pytest.mark.parametrize("chip", CHIPS)
def test_micropython_round_trips_and_power_loss(hw, chip):
    f = hw(rtc_chip=chip, battery=False, at=4_102_444_799, frozen=True)  # 2099-12-31 23:59:59
    cls = "DS3231" if chip == "ds3231" else "PCF8563"
    code = textwrap.dedent(f"""
        import board
        from {chip} import {cls}
        i2c = board.i2c()
        r = {cls}(i2c)
        out = [board.RTC, r.lost_power, r.datetime()]
        for t in {DATES!r}:
            r.set_datetime(t)
            out.append(r.datetime())
        n0, b0 = i2c.transactions, i2c.bytes
        r.datetime()
        out.append((i2c.transactions - n0, i2c.bytes - b0))
        r.set_datetime((2099, 12, 31, 23, 59, 59))
        print(repr(out))
    """)
    out = run_sim(code, f)
    assert out[0] == chip
    assert out[1] is False and out[2] == (2099, 12, 31, 23, 59, 59)
    assert out[3:-1] == DATES
    assert out[-1] == (1, 10)
    # The device's write rebased rtc.json; one second on, the century rolls over.
    vhw.set_world_time(f, 4_102_444_800, frozen=True)
    assert vhw.rtc_time(f) == 4_102_444_800
    # Cut power without a battery: the next boot reads the flag and the reset time.
    vhw.power_off(f)
    vhw.power_on(f)
    out = run_sim(f"import board\nfrom {chip} import {cls}\nr = {cls}(board.i2c())\n"
                  "print(repr((r.lost_power, r.datetime())))", f)
    assert out == (True, (2000, 1, 1, 0, 0, 0))


def test_micropython_drift_over_a_day(hw):
    t0 = 4_000_000_000
    f = hw(rtc_chip="ds3231", ppm=20.0, at=t0, frozen=True)
    vhw.set_world_time(f, t0 + DAY + 0.5, frozen=True)
    out = run_sim("import board\nfrom ds3231 import DS3231\nprint(repr(DS3231(board.i2c()).datetime()))", f)
    # t0 + 1 day + 0.5 s + 1.728 s of drift, truncated to the second
    assert out == dt.datetime.fromtimestamp(t0 + DAY + 2, dt.timezone.utc).timetuple()[:6]


def test_micropython_mcu_rtc_board(hw):
    f = hw(rtc_chip="mcu", at=4_000_000_000, frozen=True)
    out = run_sim(textwrap.dedent("""
        import board
        from mcurtc import MCURTC
        r = MCURTC(board.mcu_rtc(), board.cold_boot())
        a = r.lost_power
        r.set_datetime((2096, 2, 29, 1, 2, 3))
        print(repr((board.RTC, a, r.lost_power, r.datetime())))
    """), f)
    assert out == ("mcu", True, False, (2096, 2, 29, 1, 2, 3))
