"""Battery life of each board, from the measured wake and datasheet currents.

One wake (one payment) is the firmware's awake profile on battery: the MCU computes
the first frame and each countdown tick and drives the I2C bus at 400 kHz, then naps
(``board.nap``) until the next second while the SSD1306 holds its picture; after
``AWAKE_S`` seconds the panel goes off and the board sleeps until the next press.
Each phase is charged at the currents of what is on. Two scenarios: each shipped
board **as built** (development boards, with their regulators, LEDs and USB bridges)
and a purpose-built **fob** with the same firmware and chips (the module alone, the
RTC on its VBAT/backup pin, a low-Iq regulator). docs/BATTERY.md is generated from
``markdown()`` and ``sources()`` (a test keeps them equal) and names every source
and assumption.

Usage::

    est = estimate(BOARDS["esp32-devkitc"], payments_per_day=10, battery=BATTERIES["cr2032"])
    print(est.days)
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- measured on the firmware (tests/bench/bench_firmware.py, `make bench`) -------------
# One 20 s wake on battery in a virtual world (tests/firmware/test_power.py's set-up):
# the bus model's byte counter and the unix port's time inside Token.wake and Token.tick.
FIRST_FRAME_I2C_BYTES = 1080  # init + RTC read + the first full frame
WAKE_I2C_BYTES = 1304  # the whole wake: first frame + 19 countdown ticks (one a new code)
FIRST_FRAME_MS_UNIX_X86 = 11.1  # boot(frames=1) on the unix port, best of 5 (x86-64)
WAKE_COMPUTE_MS_UNIX_X86 = 22.7  # wake() + the 19 tick() calls, best of 5 (models included)
AWAKE_S = 20.0  # firmware/app.py _AWAKE_S: the display stays on this long after a press
TICKS_MEASURED = 19  # countdown frames in the measured wake (one a second after the first)
I2C_HZ = 400_000
BITS_PER_BYTE = 9  # 8 data bits + ACK


@dataclass(frozen=True)
class Part:
    """A current in mA and where the number comes from."""

    ma: float
    source: str


@dataclass(frozen=True)
class Board:
    """A board's currents at its battery clock: running, napping (display on), asleep."""

    name: str
    mcu: str
    rtc: str
    cpu_mhz: int  # the board file's CPU_HZ_BATTERY
    mcu_active: Part  # running MicroPython at cpu_mhz (compute and the blocking I2C writes)
    mcu_nap: Part  # board.nap between countdown ticks
    mcu_sleep: Part  # board.sleep between wakes
    rtc_standby: Part  # the RTC keeping time (on VCC as built, on VBAT in the fob)
    slowdown: float  # MicroPython on this MCU at cpu_mhz vs the x86-64 unix port
    extras: tuple[Part, ...] = ()  # always-on parts of the board: LDO, LEDs, USB bridge
    note: str = ""
    low: tuple[int, Part, float] | None = None  # a lower clock weighed for battery: MHz, running current, slowdown


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
DS3231_VBAT = Part(0.00084, "DS3231 datasheet, timekeeping battery current IBATT (EOSC = 0, "
                   "BBSQW = 0): 0.84 µA typ; VCC unconnected, so the chip runs from VBAT and its "
                   "I2C still answers (the datasheet rates the active battery current IBATTA)")
DS3231_ACTIVE = 0.200  # DS3231 datasheet ICCA at 3.63 V: 200 µA typ, while the bus is active
PCF8563_VDD = Part(0.00025, "PCF8563 datasheet (NXP), timekeeping supply current IDD at VDD = 3.0 V, "
                   "CLKOUT disabled: 0.25 µA typ")

RP2040_48 = Part(10.0, "Pico running MicroPython at 48 MHz: ~10 mA (assumption: interpolated "
                 "between ~20 mA at 125 MHz, Pico datasheet typical busy figures, and ~5.5 mA "
                 "underclocked to ~15 MHz, measured by nhasbun/pico_power_saving)")
RP2040_LIGHTSLEEP = Part(1.5, "MicroPython rp2 machine.lightsleep(ms) on a Pico, measured from USB: "
                         "~1.5 mA, the whole board (micropython commit b004e7e, D. George)")
RP2040_FOB_SLEEP = Part(1.5, "the same timed lightsleep: the measurement is the whole Pico, and the "
                        "RP2040's own share is not published for it (assumption: the fob saves "
                        "nothing here; the 12 MHz crystal and the timer keep running)")
ESP32_80 = Part(25.0, "ESP32 datasheet, power consumption by mode: modem-sleep (radio off) at "
                "80 MHz, 20-31 mA; 25 mA taken")
ESP32_160 = Part(35.0, "ESP32 datasheet, power consumption by mode: modem-sleep (radio off) at "
                 "160 MHz, 27-44 mA; 35 mA taken")
ESP32_LIGHT = Part(0.8, "ESP32 datasheet, light-sleep: 0.8 mA (RAM, CPU state and peripherals "
                   "kept, clocks gated; woken by the timer or ext0)")
ESP32_DEEP = Part(0.010, "ESP32 datasheet, deep-sleep with the RTC timer and RTC memory: 10 µA")
AMS1117 = Part(5.0, "DevKitC's AMS1117-3.3 LDO: quiescent current 5 mA typ (AMS1117 datasheet)")
POWER_LED = Part(1.0, "a power LED on the 3V3 rail: ~1 mA (assumption: a red LED behind 1-2 kΩ)")
CP2102 = Part(0.08, "the DevKitC's CP2102 USB-UART bridge without a host: 80 µA (assumption: its "
              "datasheet's USB-suspend supply current)")
LOW_IQ_LDO = Part(0.0016, "a low-Iq 3.3 V LDO such as the MCP1700: quiescent current 1.6 µA typ "
                  "(MCP1700 datasheet)")

RP2040_125 = Part(20.0, "Raspberry Pi Pico running MicroPython at 125 MHz: ~20 mA (Pico datasheet, "
                  "power consumption section, typical busy figures; approximate)")

@dataclass(frozen=True)
class Time:
    """A time in ms and where the number comes from."""

    ms: float
    source: str


# THE SEAM: every RP2040 time the rows use, in one table, measured on the emulated Pico
# by `make bench` (tests/bench/bench_rp2.py) with the frozen release image (what a token
# ships with): EMULATED time, rp2040js 1.4.1 cycles ÷ 125 MHz from its per-instruction
# costs, no XIP flash cache or wait-state model, the I2C wire apart (counted below from
# the bytes at 400 kHz). Run 2026-12-01; re-run `make bench` and copy its figures here.
_EMU = ("emulated Pico (rp2040js 1.4.1: cycles ÷ 125 MHz, no flash-cache model), frozen image "
        "pico-52e22e06ecd3ab71, `make bench` (bench_rp2.py) 2026-12-01")
RP2040_TIMES = {
    "boot": Time(27.8, "power-up to the first frame's start: the power-on to the code's compute "
                 "(214.3 ms, I2C excluded) minus one Token.wake's (186.5 ms); " + _EMU
                 + "; the crystal's and the regulator's start-up not modelled"),
    "first_frame": Time(186.5, "Token.wake (config, clock, code, QR, draw), I2C excluded, best of 3; "
                        + _EMU),
    "wake_compute": Time(186.5 + 346.8, "the first frame (186.5 ms) and 19 countdown ticks, one "
                         "of them a new code (346.8 ms), I2C excluded; " + _EMU),
}

# Compute of MicroPython on the MCU against the x86-64 unix port. The RP2040's is the
# measured wake above over the unix port's (an effective ratio, not an assumption: its
# rows' compute is the measured time); the ESP32's is assumed: ×15 at 240 MHz. Both scale
# with the clock. On battery each board runs at its MicroPython port's default clock
# (RP2040 125 MHz, ESP32 160 MHz: ESP-IDF's default, which MicroPython's esp32 port
# keeps); the lower clock is weighed in clock_tradeoff().
_RP2040_SLOW = RP2040_TIMES["wake_compute"].ms / WAKE_COMPUTE_MS_UNIX_X86
_ESP32_SLOW = 15.0 * 240 / 160
_RP2040_LOW = (48, RP2040_48, _RP2040_SLOW * 125 / 48)
_ESP32_LOW = (80, ESP32_80, 15.0 * 240 / 80)

BOARDS = {
    "pico": Board(
        "pico", "RP2040, Raspberry Pi Pico", "DS3231 on VCC", 125, RP2040_125, RP2040_LIGHTSLEEP,
        RP2040_LIGHTSLEEP, DS3231_VCC, _RP2040_SLOW, (),
        "no power LED on the Pico; its buck-boost is inside the measured sleep current. "
        "ZS-042-style DS3231 breakouts add a ~1.5 mA power LED (not counted: remove it)", _RP2040_LOW),
    "xiao-rp2040": Board(
        "xiao-rp2040", "RP2040, Seeed XIAO", "PCF8563", 125, RP2040_125, RP2040_LIGHTSLEEP,
        RP2040_LIGHTSLEEP, PCF8563_VDD, _RP2040_SLOW, (POWER_LED,),
        "the expansion board's PCF8563 sits on 3V3 at 0.25 µA", _RP2040_LOW),
    "esp32-devkitc": Board(
        "esp32-devkitc", "ESP32, DevKitC", "DS3231 on VCC", 160, ESP32_160, ESP32_LIGHT,
        ESP32_DEEP, DS3231_VCC, _ESP32_SLOW, (AMS1117, POWER_LED, CP2102),
        "deep sleep between wakes; its LDO, LED and bridge draw ~600 times the chip asleep", _ESP32_LOW),
}

FOBS = {
    "pico": Board(
        "pico", "RP2040 fob", "DS3231 on VBAT", 125, RP2040_125, RP2040_FOB_SLEEP,
        RP2040_FOB_SLEEP, DS3231_VBAT, _RP2040_SLOW, (LOW_IQ_LDO,),
        "RP2040 + flash + crystal, DS3231 on its VBAT pin, a low-Iq LDO", _RP2040_LOW),
    "xiao-rp2040": Board(
        "xiao-rp2040", "RP2040 fob", "PCF8563", 125, RP2040_125, RP2040_FOB_SLEEP,
        RP2040_FOB_SLEEP, PCF8563_VDD, _RP2040_SLOW, (LOW_IQ_LDO,),
        "the XIAO's parts without its LED", _RP2040_LOW),
    "esp32-devkitc": Board(
        "esp32-devkitc", "ESP32 module fob", "DS3231 on VBAT", 160, ESP32_160, ESP32_LIGHT,
        ESP32_DEEP, DS3231_VBAT, _ESP32_SLOW, (LOW_IQ_LDO,),
        "an ESP32 module without the DevKitC's LDO, LED and bridge", _ESP32_LOW),
}

SCENARIOS = {"as built": BOARDS, "fob": FOBS}

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
    awake_s: float  # per wake: the display is on
    compute_ms: float  # per wake, on this MCU at its battery clock
    i2c_ms: float  # per wake, wire time at 400 kHz
    nap_s: float  # per wake, napping with the display on
    mah_awake_per_day: float
    mah_sleep_per_day: float
    days: float

    @property
    def mah_per_day(self) -> float:
        return self.mah_awake_per_day + self.mah_sleep_per_day


def wake_i2c_bytes(awake_s: float = AWAKE_S) -> float:
    """I2C bytes of one wake: the first frame plus one countdown frame a second."""
    per_tick = (WAKE_I2C_BYTES - FIRST_FRAME_I2C_BYTES) / TICKS_MEASURED
    return FIRST_FRAME_I2C_BYTES + per_tick * (awake_s - 1)


def wake_compute_ms_unix(awake_s: float = AWAKE_S) -> float:
    """Compute of one wake on the unix port: the first frame plus the countdown ticks."""
    per_tick = (WAKE_COMPUTE_MS_UNIX_X86 - FIRST_FRAME_MS_UNIX_X86) / TICKS_MEASURED
    return FIRST_FRAME_MS_UNIX_X86 + per_tick * (awake_s - 1)


def wake_i2c_ms(awake_s: float = AWAKE_S) -> float:
    """I2C wire time of one wake at 400 kHz."""
    return wake_i2c_bytes(awake_s) * BITS_PER_BYTE / I2C_HZ * 1000


def estimate(board: Board, payments_per_day: float, battery: Battery, awake_s: float = AWAKE_S) -> Estimate:
    """Battery life in days for ``payments_per_day`` wakes of ``awake_s`` seconds."""
    if payments_per_day < 0 or awake_s < 1:
        raise ValueError("payments per day must be >= 0 and the awake time >= 1 s")
    compute_ms = wake_compute_ms_unix(awake_s) * board.slowdown
    i2c_ms = wake_i2c_ms(awake_s)
    # The MCU runs while it computes and while it drives the bus (MicroPython's I2C
    # writes block); it naps for the rest of the display time. The display is lit for
    # awake_s; the DS3231 draws its active current while the bus is busy.
    busy_s = (compute_ms + i2c_ms) / 1000
    wake_s = max(awake_s, busy_s)
    nap_s = wake_s - busy_s
    mas_wake = (board.mcu_active.ma * busy_s + board.mcu_nap.ma * nap_s + OLED_ON.ma * awake_s
                + OLED_SLEEP.ma * (wake_s - awake_s))
    if board.rtc.startswith("DS3231"):
        mas_wake += (DS3231_ACTIVE - board.rtc_standby.ma) * i2c_ms / 1000
    awake_day_s = payments_per_day * wake_s
    if awake_day_s >= 86400:
        raise ValueError("the token would never sleep")
    sleep_ma = board.mcu_sleep.ma + OLED_SLEEP.ma
    always_ma = board.rtc_standby.ma + sum(p.ma for p in board.extras)
    mah_awake = payments_per_day * mas_wake / 3600
    mah_sleep = (sleep_ma * (86400 - awake_day_s) + always_ma * 86400) / 3600
    days = battery.mah * battery.usable / (mah_awake + mah_sleep)
    return Estimate(board.name, battery.name, payments_per_day, awake_s, compute_ms, i2c_ms, nap_s,
                    mah_awake, mah_sleep, days)


def wake_charge_mas(board: Board, awake_s: float = AWAKE_S) -> float:
    """Charge of one wake in mA·s (display lit, MCU busy then napping, RTC on the bus)."""
    est = estimate(board, 1, BATTERIES["lipo150"], awake_s)
    return est.mah_awake_per_day * 3600


def at_low_clock(board: Board) -> Board:
    """The same board run at its lower clock on battery (for the clock trade-off)."""
    if board.low is None:
        raise ValueError(f"{board.name}: no lower clock known")
    mhz, part, slow = board.low
    return Board(board.name, board.mcu, board.rtc, mhz, part, board.mcu_nap, board.mcu_sleep,
                 board.rtc_standby, slow, board.extras, board.note, board.low)


def first_frame_ms(board: Board) -> float:
    """The first frame's compute on the board's MCU at its clock: measured on the emulated
    Pico for the RP2040 (RP2040_TIMES), the unix port's × the slowdown for the others."""
    if board.mcu.startswith("RP2040"):
        return RP2040_TIMES["first_frame"].ms * 125 / board.cpu_mhz
    return FIRST_FRAME_MS_UNIX_X86 * board.slowdown


def clock_tradeoff() -> str:
    """Markdown table: each MCU's wake at its lower clock vs its battery (default) clock."""
    lines = ["| MCU | clock MHz | first frame ms | compute ms / wake | mA·s / wake |", "|---|---|---|---|---|"]
    for key in ("pico", "esp32-devkitc"):
        for b in (at_low_clock(BOARDS[key]), BOARDS[key]):
            est = estimate(b, 1, BATTERIES["lipo150"])
            lines.append(f"| {b.mcu.split(',')[0]} | {b.cpu_mhz} | {first_frame_ms(b):.0f} "
                         f"| {est.compute_ms:.0f} | {wake_charge_mas(b):.1f} |")
    return "\n".join(lines)


def longest(payments_per_day: float = 10, battery: Battery = BATTERIES["lipo150"],
            scenario: str = "as built") -> str:
    """The board that lasts longest in a scenario ("as built" or "fob")."""
    boards = SCENARIOS[scenario]
    return max(boards.values(), key=lambda b: estimate(b, payments_per_day, battery).days).name


def table(scenario: str, payments_per_day: float = 10) -> str:
    """One scenario's results table (markdown)."""
    lines = ["| board | awake s | compute ms | I2C ms | nap s | mAh/day awake | mAh/day asleep "
             "| CR2032 days | LiPo 150 mAh days |", "|---|---|---|---|---|---|---|---|---|"]
    for b in SCENARIOS[scenario].values():
        c = estimate(b, payments_per_day, BATTERIES["cr2032"])
        li = estimate(b, payments_per_day, BATTERIES["lipo150"])
        lines.append(f"| {b.name} ({b.mcu} at {b.cpu_mhz} MHz, {b.rtc}) | {c.awake_s:g} "
                     f"| {c.compute_ms:.0f} | {c.i2c_ms:.1f} | {c.nap_s:.1f} | {c.mah_awake_per_day:.2f} "
                     f"| {c.mah_sleep_per_day:.2f} | {c.days:.1f} | {li.days:.1f} |")
    return "\n".join(lines)


def markdown(payments_per_day: float = 10) -> str:
    """The results tables of docs/BATTERY.md: as built, then the fob."""
    return ("**As built** (the shipped development boards):\n\n" + table("as built", payments_per_day)
            + "\n\n**Design scenario: a purpose-built fob** (same firmware and chips; module only, "
            "RTC on VBAT, low-Iq LDO):\n\n" + table("fob", payments_per_day))


def sources() -> str:
    """Every current used, with its source (markdown list)."""
    seen: dict[str, str] = {}
    for scen, boards in SCENARIOS.items():
        for b in boards.values():
            for label, part in ((f"{b.mcu} at {b.cpu_mhz} MHz, running", b.mcu_active),
                                (f"{b.mcu}, napping (display on)", b.mcu_nap),
                                (f"{b.mcu}, asleep between wakes", b.mcu_sleep),
                                (f"{b.rtc}, keeping time", b.rtc_standby)):
                seen.setdefault(label, f"{part.ma:g} mA: {part.source}")
            for part in b.extras:
                seen.setdefault(f"{b.name} ({scen}): {part.source.split(':')[0]}", f"{part.ma:g} mA: "
                                + part.source)
    for b in BOARDS.values():
        if b.low is not None:
            mhz, part, _ = b.low
            seen.setdefault(f"{b.mcu.split(',')[0]} at {mhz} MHz, running (the clock trade-off only)",
                            f"{part.ma:g} mA: {part.source}")
    seen["SSD1306 lit"] = f"{OLED_ON.ma:g} mA: {OLED_ON.source}"
    seen["SSD1306 off"] = f"{OLED_SLEEP.ma:g} mA: {OLED_SLEEP.source}"
    seen["DS3231 bus active"] = f"{DS3231_ACTIVE:g} mA: DS3231 datasheet ICCA at 3.63 V, 200 µA typ"
    return "\n".join(f"- **{k}**: {v}" for k, v in seen.items())


# ---- the power-latch fob (boards/pico-latch.py) -----------------------------------------
# Off between payments: the button switches the cell onto the Pico's VSYS through a load
# switch, the firmware holds it (HOLD_PIN) and lets go when the display time ends; the
# DS3231 keeps time on its VBAT pin, wired to the cell. Every wake is a power-up.

TPS22917_OFF = Part(0.00001, "TI TPS22917 load switch, OFF state (ON held low by its smart "
                    "pull-down): shutdown current ISD 10 nA typ (TI product page)")
TPS22917_ON = Part(0.0005, "TI TPS22917 load switch, ON state: quiescent current IQ 0.5 µA typ "
                   "(TI product page)")
LATCH_OFF_EXTRAS = ("the button and its sense divider (from the cell, 320 kΩ: ~13 µA) draw only "
                    "while pressed; the Schottky diodes on the switch's ON pin see no voltage "
                    "while it is off; the Pico, its VSYS divider, the panel and the I2C pull-ups "
                    "sit behind the switch (assumption: nothing else on the cell side)")
LATCH_BATTERIES = {
    "cr2032": BATTERIES["cr2032"],
    "lipo150": Battery("LiPo 150 mAh", 150.0, 0.95,
                       "rated down to the cell's cut-off (2.75-3.0 V); the Pico's RT6150 "
                       "buck-boost runs from VSYS down to 1.8 V (Pico datasheet, powering Pico), "
                       "so the fob uses the cell to 3.0 V: 95 % taken (assumption)"),
}
LATCH_TARGET_UA = 5.0  # issue 10: the chosen design draws at most this between payments
LATCH_TARGET_DAYS = 365.25 / 2  # issue 10: six months on the 150 mAh LiPo at 10 payments a day


@dataclass(frozen=True)
class LatchEstimate:
    battery: str
    payments_per_day: float
    on_s: float  # per wake: power-up to the supply's release
    busy_ms: float  # per wake: boot + compute + I2C, the MCU running
    nap_s: float  # per wake: napping with the display on
    mas_wake: float  # charge of one wake, mA·s
    off_ua: float  # the draw between payments
    mah_awake_per_day: float
    mah_off_per_day: float
    days: float

    @property
    def mah_per_day(self) -> float:
        return self.mah_awake_per_day + self.mah_off_per_day


def latch_off_ua() -> float:
    """The latch fob's draw between payments, µA: the load switch off and the RTC on VBAT."""
    return (TPS22917_OFF.ma + DS3231_VBAT.ma) * 1000


def latch_estimate(payments_per_day: float, battery: Battery,
                   times: dict[str, Time] | None = None, awake_s: float = AWAKE_S) -> LatchEstimate:
    """Battery life of the power-latch fob: each wake a power-up, off in between."""
    if payments_per_day < 0:
        raise ValueError("payments per day must be >= 0")
    t = times or RP2040_TIMES
    board = BOARDS["pico"]
    i2c_ms = wake_i2c_ms(awake_s)
    busy_s = (t["boot"].ms + t["wake_compute"].ms + i2c_ms) / 1000
    # The display time starts at the first frame; the supply goes at its end.
    on_s = max(t["boot"].ms / 1000 + awake_s, busy_s)
    nap_s = on_s - busy_s
    mas = (board.mcu_active.ma * busy_s + board.mcu_nap.ma * nap_s + OLED_ON.ma * awake_s
           + (DS3231_VCC.ma + TPS22917_ON.ma) * on_s + (DS3231_ACTIVE - DS3231_VCC.ma) * i2c_ms / 1000)
    on_day_s = payments_per_day * on_s
    if on_day_s >= 86400:
        raise ValueError("the token would never be off")
    off_ma = latch_off_ua() / 1000
    mah_awake = payments_per_day * mas / 3600
    mah_off = off_ma * (86400 - on_day_s) / 3600
    days = battery.mah * battery.usable / (mah_awake + mah_off)
    return LatchEstimate(battery.name, payments_per_day, on_s, busy_s * 1000, nap_s, mas,
                         off_ma * 1000, mah_awake, mah_off, days)


def latch_markdown(payments_per_day: float = 10) -> str:
    """The latch fob's rows (markdown), at 10 payments a day and unused (the shelf)."""
    lines = ["| payments a day | on s / wake | MCU busy ms | nap s | mA·s / wake | µA off "
             "| mAh/day | CR2032 days | LiPo 150 mAh days | LiPo months |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n in (payments_per_day, 1, 0):
        c = latch_estimate(n, LATCH_BATTERIES["cr2032"])
        li = latch_estimate(n, LATCH_BATTERIES["lipo150"])
        lines.append(f"| {n:g} | {li.on_s:.2f} | {li.busy_ms:.0f} | {li.nap_s:.1f} | {li.mas_wake:.1f} "
                     f"| {li.off_ua:.2f} | {li.mah_per_day:.3f} | {c.days:.0f} | {li.days:.0f} "
                     f"| {li.days / (365.25 / 12):.1f} |")
    return "\n".join(lines)


def latch_sources() -> str:
    """The latch rows' inputs with their sources (markdown list): the times, then currents."""
    b = BOARDS["pico"]
    items = [(f"time: {k}", f"{v.ms:g} ms: {v.source}") for k, v in RP2040_TIMES.items()]
    items += [("RP2040 running", f"{b.mcu_active.ma:g} mA: {b.mcu_active.source}"),
              ("RP2040 napping (display on)", f"{b.mcu_nap.ma:g} mA: {b.mcu_nap.source}"),
              ("DS3231 on the switched VCC while on", f"{DS3231_VCC.ma:g} mA: {DS3231_VCC.source}"),
              ("DS3231 on VBAT while off", f"{DS3231_VBAT.ma:g} mA: {DS3231_VBAT.source}"),
              ("load switch off", f"{TPS22917_OFF.ma:g} mA: {TPS22917_OFF.source}"),
              ("load switch on", f"{TPS22917_ON.ma:g} mA: {TPS22917_ON.source}"),
              ("SSD1306 lit", f"{OLED_ON.ma:g} mA: {OLED_ON.source}"),
              ("SSD1306 while off", "0 mA: behind the load switch, unpowered"),
              ("not counted", LATCH_OFF_EXTRAS),
              ("LiPo 150 mAh", f"{LATCH_BATTERIES['lipo150'].usable:g} usable: "
                               f"{LATCH_BATTERIES['lipo150'].note}"),
              ("CR2032", f"{LATCH_BATTERIES['cr2032'].usable:g} usable: {LATCH_BATTERIES['cr2032'].note}")]
    return "\n".join(f"- **{k}**: {v}" for k, v in items)


def latch_time_to_code_ms(times: dict[str, Time] | None = None) -> float:
    """Power-up (the press) to the code on the panel: boot + the first frame + its I2C."""
    t = times or RP2040_TIMES
    return t["boot"].ms + t["first_frame"].ms + FIRST_FRAME_I2C_BYTES * BITS_PER_BYTE / I2C_HZ * 1000


def latch_summary(payments_per_day: float = 10, self_discharge_per_month: float = 0.02) -> str:
    """docs/BATTERY.md's figures for the latch fob, in words (generated, kept equal by a test)."""
    lipo, coin = LATCH_BATTERIES["lipo150"], LATCH_BATTERIES["cr2032"]
    e = latch_estimate(payments_per_day, lipo)
    c = latch_estimate(payments_per_day, coin)
    shelf = latch_estimate(0, lipo)
    month = 365.25 / 12
    sd_days = lipo.mah * lipo.usable / (e.mah_per_day + self_discharge_per_month * lipo.mah / month)
    return (
        f"Between payments only the switch and the RTC's battery current remain: "
        f"**{latch_off_ua():.2f} µA** (target ≤ {LATCH_TARGET_UA:g} µA). At {payments_per_day:g} "
        f"payments a day the fob lasts **{e.days:.0f} days ({e.days / month:.1f} months) on the "
        f"150 mAh LiPo** (target ≥ 6 months) and {c.days:.0f} days on a CR2032 (the charge "
        f"arithmetic only: a coin cell sags under the 20-30 mA of a wake). Unused, the token "
        f"itself would take {shelf.days / 365.25:.0f} years to drain the LiPo: the shelf life is "
        f"the cell's own self-discharge (roughly 2-3 % a month for a LiPo, about 1 % a year for "
        f"a CR2032: assumptions, not counted in the rows), some three years for the LiPo and "
        f"the rated shelf life of a CR2032. Counting a {self_discharge_per_month * 100:g} % monthly "
        f"self-discharge, the LiPo lasts about {sd_days:.0f} days at {payments_per_day:g} payments "
        f"a day. The wake is now almost everything: the lit panel is "
        f"{OLED_ON.ma * AWAKE_S:.0f} of its {e.mas_wake:.0f} mA·s. Time to the code after a "
        f"press (the power-up): {latch_time_to_code_ms():.0f} ms with these inputs (boot, first "
        f"frame and its I2C; the target is ≤ 250 ms emulated, frozen image)."
    )
