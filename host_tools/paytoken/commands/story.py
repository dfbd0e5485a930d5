"""The story sub-commands. First chapter: ``paytoken demo`` shows a demo token's live
payment code and TOTP, refreshing with a countdown, each code checked the way the
issuer checks it (decrypt, place the step from the residue, one HOTP, constant-time
compare). Later chapters grow it into the whole story.

The demo token's secret and scheme key are public demo values, never real keys.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import paycode

from paytoken.commands import argtypes
from paytoken.commands.code import iso, now_utc
from paytoken.errors import CommandError

# Public, derived demo values: anyone can reproduce the demo's codes.
DEMO_SECRET = hashlib.sha1(b"paytoken demo token secret").digest()
DEMO_SCHEME_KEY = hashlib.sha256(b"paytoken demo scheme key v1").digest()[:16]
DEMO_TOKEN_ID = 12345678
DEMO_PREFIX = "81"


def demo_frame(t: int) -> dict:
    """Everything the demo shows at UTC second ``t``, with the issuer's check."""
    code = paycode.payment_code(DEMO_SECRET, DEMO_TOKEN_ID, t, DEMO_SCHEME_KEY, DEMO_PREFIX)
    prefix, token_id, residue, otp = paycode.parse_code(code, DEMO_SCHEME_KEY)
    step = paycode.resolve_step(residue, t)
    ok = (
        token_id == DEMO_TOKEN_ID
        and step == t // paycode.PERIOD
        and paycode.equal(paycode.hotp(DEMO_SECRET, step), otp)
    )
    return {
        "at": t,
        "at_iso": iso(t),
        "code": code,
        "grouped": paycode.group4(code),
        "totp": paycode.totp(DEMO_SECRET, t),
        "valid_for": paycode.PERIOD - t % paycode.PERIOD,
        "issuer_ok": ok,
        "token_id": token_id,
        "step": step,
    }


def _render(f: dict):
    from rich.panel import Panel
    from rich.table import Table

    bar_len = 30
    left = f["valid_for"]
    bar = "█" * left + "░" * (bar_len - left)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("UTC", f["at_iso"])
    grid.add_row("payment code", f"[bold cyan]{f['grouped']}[/]")
    grid.add_row("TOTP (RFC 6238)", f"[bold]{f['totp']}[/]")
    grid.add_row("next code in", f"{bar} {left:2d} s")
    check = "[green]accepted[/]" if f["issuer_ok"] else "[red]REJECTED[/]"
    grid.add_row(
        "issuer check",
        f"{check}: token {f['token_id']:08d}, step {f['step']} from residue {f['step'] % 10}",
    )
    return Panel(grid, title="paytoken demo token", subtitle="Ctrl-C to stop")


def do_demo(args: argparse.Namespace) -> int:
    """``paytoken demo``: the whole story (``--live``: a demo token's live code)."""
    if args.live or args.seconds is not None:
        return do_live(args)
    from pathlib import Path

    from rich.console import Console

    from paytoken.story import demo

    if not 0 <= args.burn_in <= 600:
        raise CommandError("--burn-in must be 0 to 600 seconds")
    console = Console()
    console.print("[bold]paytoken demo[/]: the whole product on two virtual tokens and SQLite, "
                  "nine steps, each checked.")
    try:
        demo.run(Path(args.out), console, burn_in=args.burn_in)
    except demo.DemoError as exc:
        raise CommandError(f"demo failed at {exc}") from None
    return 0


def do_live(args: argparse.Namespace) -> int:
    """``paytoken demo --live``: the live code and TOTP of a demo token with a countdown."""
    from rich.console import Console
    from rich.live import Live

    if args.seconds is not None and args.seconds < 0:
        raise CommandError("--seconds must be >= 0")
    console = Console()
    start = time.monotonic()
    rejected = 0
    last_code = None
    # On a terminal the panel refreshes in place; piped, each new code is one line.
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    if live:
        live.start()
    try:
        while True:
            frame = demo_frame(now_utc())
            rejected += not frame["issuer_ok"]
            if live:
                live.update(_render(frame), refresh=True)
            elif frame["code"] != last_code:
                print(
                    f"{frame['at_iso']} code {frame['grouped']} totp {frame['totp']} "
                    f"valid {frame['valid_for']}s issuer "
                    f"{'accepted' if frame['issuer_ok'] else 'REJECTED'}",
                    flush=True,
                )
            last_code = frame["code"]
            if args.seconds is not None and time.monotonic() - start >= args.seconds:
                break
            # Wake just after the next whole UTC second.
            time.sleep(1.0 - (time.time() % 1.0) + 0.01)
    except KeyboardInterrupt:
        pass
    finally:
        if live:
            live.stop()
    if rejected:
        raise CommandError(f"the issuer rejected {rejected} demo code(s)")
    return 0


def do_simulate_year(args: argparse.Namespace) -> int:
    """``paytoken simulate-year``: N tokens a year in the field, real clock and verification."""
    import json
    import os

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from paytoken.story import year

    jobs = args.jobs if args.jobs is not None else min(4, os.cpu_count() or 1)
    console = Console(stderr=True)
    try:
        with Progress(TextColumn("[bold]simulating[/] {task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      console=console, disable=args.json or not console.is_terminal) as bar:
            task = bar.add_task(f"{args.tokens} tokens x {args.days:g} days", total=1.0)
            report = year.simulate(tokens=args.tokens, days=args.days, seed=args.seed,
                                   burn_in=args.burn_in, window=args.window, jobs=jobs,
                                   migrate_day=args.migrate_day,
                                   db_dir=args.keep, progress=lambda f: bar.update(task, completed=f))
        if args.plot:
            year.plot(report, args.plot)
    except year.SimulationError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # --keep or --plot not writable
        raise CommandError(f"{exc.filename or 'simulate-year'}: {exc.strerror or exc}") from None
    if args.json:
        out = dict(report)
        if not args.series:
            out.pop("series")
        print(json.dumps(out, indent=2))
    else:
        print(year.summary(report))
        if args.plot:
            print(f"drift plot: {args.plot}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` and ``simulate-year``."""
    y = sub.add_parser(
        "simulate-year",
        help="N tokens a year in the field: real firmware clock path, real verification",
        description="Simulate tokens whose crystals err by -20..+20 ppm plus a daily "
        "temperature cycle, paying at random for a year, through the firmware's RTC "
        "drivers and drift correction and the issuer's verification on SQLite. "
        "Reports the acceptance rate, the learned drift against the truth and the resyncs.")
    y.add_argument("--tokens", type=argtypes.integer(1, 1000, "a number of tokens"), default=20,
                   metavar="N", help="tokens, 1 to 1000 (default 20)")
    y.add_argument("--days", type=argtypes.number(0, 3650, lo_open=True, what="a number of days"),
                   default=365.0, metavar="D", help="days, up to 3650 (default 365)")
    y.add_argument("--seed", type=argtypes.integer(0, 2**63 - 1, "a seed"), default=1, metavar="S",
                   help="random seed (default 1)")
    y.add_argument("--burn-in", type=argtypes.number(0, 7 * 86400, what="a number of seconds"),
                   default=600.0, metavar="SECONDS",
                   help="the station's crystal measurement, 0 or 10 s to 7 days "
                   "(default 600; 0: ppm not measured)")
    y.add_argument("--window", type=argtypes.integer(1, 4, "a number of steps"), default=1,
                   metavar="STEPS",
                   help="the backend's acceptance window, steps either side, 1 to 4 (default 1)")
    y.add_argument("--migrate-day", type=argtypes.number(0, 3650, what="a day of the simulation"),
                   default=None, metavar="DAY",
                   help="a mixed fleet: every other token on code format 2, the rest moved from format 1 "
                   "to 2 at the desk from this day on (within 30 days), then format 1 closed")
    y.add_argument("--jobs", type=argtypes.integer(1, 64, "a number of processes"), default=None,
                   metavar="J", help="processes (default: the CPU count, at most 4); no effect on results")
    y.add_argument("--keep", type=argtypes.out_dir, default=None, metavar="DIR",
                   help="keep the issuer databases and token configs in DIR")
    y.add_argument("--json", action="store_true", help="the report as JSON")
    y.add_argument("--series", action="store_true", help="with --json: every payment's sample")
    y.add_argument("--plot", type=argtypes.out_file, default=None, metavar="FILE.png",
                   help="write the drift plot")
    y.set_defaults(func=do_simulate_year)

    p = sub.add_parser(
        "demo", help="the whole story, narrated: backend, two virtual tokens, provisioning, "
        "payments, refusals, clock sync (--live: a demo token's live code)")
    p.add_argument("--out", type=argtypes.out_dir, default="demo-out", metavar="DIR",
                   help="the folder for the database, images, reports and logs (default demo-out; "
                   "a previous demo's folder is wiped)")
    p.add_argument("--burn-in", type=argtypes.number(0, 600, what="a number of seconds"), default=3.0,
                   metavar="SECONDS", help="the station's crystal measurement per token, 0 to 600 (default 3)")
    p.add_argument("--live", action="store_true",
                   help="instead: a demo token's live payment code and TOTP with a countdown")
    p.add_argument(
        "--seconds",
        type=argtypes.number(0, 10**7, what="a number of seconds"),
        default=None,
        metavar="N",
        help="with --live: stop after N seconds (default: run until Ctrl-C)",
    )
    p.set_defaults(func=do_demo)
