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
        and step == t // 30
        and paycode.equal(paycode.hotp(DEMO_SECRET, step), otp)
    )
    return {
        "at": t,
        "at_iso": iso(t),
        "code": code,
        "grouped": paycode.group4(code),
        "totp": paycode.totp(DEMO_SECRET, t),
        "valid_for": 30 - t % 30,
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
    """``paytoken demo``: the live code and TOTP of a demo token with a countdown."""
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="a demo token's live payment code and TOTP, with a countdown")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="N",
        help="stop after N seconds (default: run until Ctrl-C)",
    )
    p.set_defaults(func=do_demo)
