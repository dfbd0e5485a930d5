"""Battery life of each board, from the measured wake and datasheet currents.

The energy of one wake is the time the token is awake times the current of what is on:
the MCU running MicroPython, the SSD1306 lit, the RTC on its supply rail, plus the I2C
transfers at 400 kHz. Between wakes the board sleeps. docs/BATTERY.md is generated from
``markdown()`` (a test keeps the two equal) and names every source and assumption.

Usage::

    est = estimate(BOARDS["esp32-devkitc"], payments_per_day=10, battery=BATTERIES["cr2032"])
    print(est.days)
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- measured on the firmware (tests/bench/bench_firmware.py, `make bench`) -------------
FIRST_FRAME_I2C_BYTES = 1080  # bus model counter: init + RTC read + first full frame
COUNTDOWN_I2C_BYTES_PER_S = 11.6  # partial updates of the countdown bar
COMPUTE_MS_UNIX_X86 = 11.1  # boot(frames=1) on the unix port, best of 5 (x86-64)
AWAKE_S = 60.0  # firmware/app.py _AWAKE_S: the display stays on this long after a press
I2C_HZ = 400_000
BITS_PER_BYTE = 9  # 8 data bits + ACK


@dataclass(frozen=True)
class Part:
    """A current in mA and where the number comes from."""

    ma: float
    source: str


@dataclass(frozen=True)
class Board:
    """A board's currents: awake (MCU running) and asleep, its RTC and display."""

    name: str
    mcu: str
    rtc: str
    mcu_active: Part
    mcu_sleep: Part
    rtc_on_rail: Part  # the RTC chip on the board's 3V3 rail, always powered
    slowdown: float  # MicroPython on this MCU vs the x86-64 unix port (compute time)
    note: str = ""


@dataclass(frozen=True)
class Battery:
    name: str
    mah: float
    usable: float  # fraction of the rated capacity available at this load
    note: str


OLED_ON = Part(10.0, "SSD1306 128x64 module, internal charge pump, ~30 % of pixels lit "
               "(our code screen), contrast 0x7F: ~10 mA from 3.3 V (assumption: the SSD1306 "
               "datasheet rates only the panel's VCC current, so module figures are measured ones)")
OLED_SLEEP = Part(0.010, "SSD1306 datasheet, sleep mode (display off, charge pump off): "
                  "IDD + ICC at most 10 µA")
DS3231_VCC = Part(0.110, "DS3231 datasheet, standby supply current ICCS at VCC = 3.63 V: 110 µA typ "
                  "(I2C idle); the breakouts power it from VCC, not from its VBAT pin")
DS3231_ACTIVE = 0.200  # DS3231 datasheet ICCA at 3.63 V: 200 µA typ, while the bus is active
PCF8563_VDD = Part(0.00025, "PCF8563 datasheet (NXP), timekeeping supply current IDD at VDD = 3.0 V, "
                   "CLKOUT disabled: 0.25 µA typ")

BOARDS = {
    "pico": Board(
        "pico", "RP2040, Raspberry Pi Pico", "DS3231",
        Part(20.0, "Raspberry Pi Pico running MicroPython at 125 MHz: ~20 mA (Pico datasheet, "
             "power consumption section, typical busy figures; approximate)"),
        Part(1.5, "MicroPython rp2 machine.lightsleep(ms) on a Pico, measured from USB: ~1.5 mA "
             "(micropython commit b004e7e, D. George; 0.9 mA in xosc dormant without a timer)"),
        DS3231_VCC, 30.0, "boards/pico.py sleeps with machine.lightsleep in 50 ms slices"),
    "xiao-rp2040": Board(
        "xiao-rp2040", "RP2040, Seeed XIAO", "PCF8563",
        Part(20.0, "RP2040 at 125 MHz as on the Pico (same chip and firmware)"),
        Part(1.5, "the same RP2040 machine.lightsleep as on the Pico"),
        PCF8563_VDD, 30.0, "the XIAO expansion board's PCF8563 sits on 3V3"),
    "esp32-devkitc": Board(
        "esp32-devkitc", "ESP32, DevKitC", "DS3231",
        Part(50.0, "ESP32 datasheet, power consumption by mode: CPU at 240 MHz, radio off "
             "(modem-sleep) 30-68 mA; 50 mA taken"),
        Part(0.010, "ESP32 datasheet, deep-sleep with the RTC timer and RTC memory: 10 µA "
             "(chip only; the DevKitC's LDO, USB bridge and power LED add milliamps)"),
        DS3231_VCC, 15.0, "boards/esp32-devkitc.py deep-sleeps and wakes on GPIO0 (ext0)"),
}

BATTERIES = {
    "cr2032": Battery("CR2032", 220.0, 0.5,
                      "rated 220 mAh at 0.2 mA; at the tens of mA an awake token draws, about half "
                      "is usable (assumption, from the cells' pulse-load curves)"),
    "lipo150": Battery("LiPo 150 mAh", 150.0, 0.85,
                       "85 % usable down to the 3.0-3.3 V the 3V3 regulator needs"),
}


@dataclass(frozen=True)
class Estimate:
    board: str
    battery: str
    payments_per_day: float
    awake_s: float  # per wake
    compute_ms: float  # per wake, on this MCU
    i2c_ms: float  # per wake, wire time at 400 kHz
    mah_awake_per_day: float
    mah_sleep_per_day: float
    days: float

    @property
    def mah_per_day(self) -> float:
        return self.mah_awake_per_day + self.mah_sleep_per_day


def wake_i2c_ms(awake_s: float = AWAKE_S) -> float:
    """I2C wire time of one wake: the first frame plus the countdown, at 400 kHz."""
    nbytes = FIRST_FRAME_I2C_BYTES + COUNTDOWN_I2C_BYTES_PER_S * awake_s
    return nbytes * BITS_PER_BYTE / I2C_HZ * 1000


def estimate(board: Board, payments_per_day: float, battery: Battery, awake_s: float = AWAKE_S) -> Estimate:
    """Battery life in days for ``payments_per_day`` wakes of ``awake_s`` seconds."""
    if payments_per_day < 0 or awake_s <= 0:
        raise ValueError("payments per day must be >= 0 and the awake time > 0")
    compute_ms = COMPUTE_MS_UNIX_X86 * board.slowdown
    i2c_ms = wake_i2c_ms(awake_s)
    # Awake: the MCU runs the whole time (the tick loop), the panel is lit, the RTC draws
    # its active current while the bus is busy and its standby current otherwise.
    awake_total_s = awake_s + compute_ms / 1000
    awake_ma = board.mcu_active.ma + OLED_ON.ma + board.rtc_on_rail.ma
    rtc_extra = (DS3231_ACTIVE - board.rtc_on_rail.ma) if board.rtc == "DS3231" else 0.0
    mas_wake = awake_ma * awake_total_s + rtc_extra * i2c_ms / 1000
    awake_day_s = payments_per_day * awake_total_s
    if awake_day_s >= 86400:
        raise ValueError("the token would never sleep")
    sleep_ma = board.mcu_sleep.ma + OLED_SLEEP.ma + board.rtc_on_rail.ma
    mah_awake = payments_per_day * mas_wake / 3600
    mah_sleep = sleep_ma * (86400 - awake_day_s) / 3600
    days = battery.mah * battery.usable / (mah_awake + mah_sleep)
    return Estimate(board.name, battery.name, payments_per_day, awake_s, compute_ms, i2c_ms,
                    mah_awake, mah_sleep, days)


def longest(payments_per_day: float = 10, battery: Battery = BATTERIES["lipo150"]) -> str:
    """The board that lasts longest."""
    return max(BOARDS.values(), key=lambda b: estimate(b, payments_per_day, battery).days).name


def markdown(payments_per_day: float = 10) -> str:
    """The results table of docs/BATTERY.md (10 payments a day, 60 s and 15 s awake)."""
    lines = ["| board | awake s / wake | compute ms | I2C ms | mAh/day awake | mAh/day asleep "
             "| CR2032 days | LiPo 150 mAh days |", "|---|---|---|---|---|---|---|---|"]
    for awake in (AWAKE_S, 15.0):
        for b in BOARDS.values():
            c = estimate(b, payments_per_day, BATTERIES["cr2032"], awake)
            li = estimate(b, payments_per_day, BATTERIES["lipo150"], awake)
            lines.append(f"| {b.name} ({b.mcu}, {b.rtc}) | {awake:g} | {c.compute_ms:.0f} | {c.i2c_ms:.1f} "
                         f"| {c.mah_awake_per_day:.2f} | {c.mah_sleep_per_day:.2f} | {c.days:.1f} "
                         f"| {li.days:.1f} |")
    return "\n".join(lines)


def sources() -> str:
    """Every current used, with its source (markdown list)."""
    seen: dict[str, str] = {}
    for b in BOARDS.values():
        for label, part in ((f"{b.mcu} awake", b.mcu_active), (f"{b.mcu} asleep", b.mcu_sleep),
                            (f"{b.rtc} on 3V3", b.rtc_on_rail)):
            seen.setdefault(label, f"{part.ma:g} mA: {part.source}")
    seen["SSD1306 lit"] = f"{OLED_ON.ma:g} mA: {OLED_ON.source}"
    seen["SSD1306 off"] = f"{OLED_SLEEP.ma:g} mA: {OLED_SLEEP.source}"
    seen["DS3231 bus active"] = f"{DS3231_ACTIVE:g} mA: DS3231 datasheet ICCA at 3.63 V, 200 µA typ"
    return "\n".join(f"- **{k}**: {v}" for k, v in seen.items())
