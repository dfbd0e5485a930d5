"""``paytoken sim``: the real firmware on the MicroPython unix port with the sim board.

With ``--snapshot FILE.png`` it renders the screen at ``--at`` once and exits; without
it, it runs live in the terminal (half-block panel; any key presses the button, q quits).
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paytoken.commands import argtypes
from paytoken.errors import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sim`` sub-command."""
    p = sub.add_parser("sim", help="run the token firmware on the emulated board")
    p.add_argument("--secret", required=True,
                   help="the TOTP secret, base32 or otpauth:// URI ('-' reads it from stdin)")
    p.add_argument("--token-id", type=argtypes.token_id, required=True, help="the token id, up to 8 digits")
    p.add_argument("--scheme-key", required=True, help="16-byte scheme key, hex")
    p.add_argument("--prefix", type=argtypes.prefix, default="81", help="scheme and version digits")
    p.add_argument("--at", type=argtypes.integer(946684800, 7258118399, "UTC seconds in 2000-2199"),
                   default=None, help="world time, UTC seconds in 2000-2199 (default now)")
    p.add_argument("--board", default="sim", choices=["sim", "sim-128x32"], help="the sim board")
    p.add_argument("--heapsize", type=argtypes.heapsize, default=None,
                   help="MicroPython heap, 4K to 256M, e.g. 96K (default: the port's)")
    p.add_argument("--snapshot", type=argtypes.out_file, default=None, metavar="FILE.png",
                   help="write the screen as a PNG and exit")
    p.add_argument("--frames", type=argtypes.integer(0, 10**6, "a number of frames"), default=0,
                   help="live mode: stop after N refreshes once the firmware has lit the panel (0: run until q)")
    p.set_defaults(func=do_sim)


def _config(args: argparse.Namespace, at: int) -> dict:
    import paycode

    from paytoken import otpauth, simrun
    from paytoken.commands.code import read_secret_text

    try:
        secret = otpauth.payment_secret(read_secret_text(args.secret))
    except ValueError as e:
        raise CommandError(f"--secret: {e}") from None
    try:
        key = bytes.fromhex(args.scheme_key)
    except ValueError:
        raise CommandError("--scheme-key must be hex") from None
    if len(key) != 16:
        raise CommandError(f"--scheme-key must be 16 bytes (32 hex digits), got {len(key)}")
    if not 0 <= args.token_id <= 99999999:
        raise CommandError("--token-id must be 0 to 99999999")
    try:
        paycode.check_prefix(args.prefix)
    except ValueError as e:
        raise CommandError(f"--prefix: {e}") from None
    return simrun.token_config(secret, args.token_id, key, args.prefix, at)


DARK_LIMIT = 120  # seconds --frames waits for the firmware to light the panel


def do_sim(args: argparse.Namespace) -> int:
    """Render one snapshot, or run live."""
    from paytoken import panel, simrun

    at = args.at if args.at is not None else int(time.time())
    if not 946684800 <= at < 7258118400:
        raise CommandError("--at must lie in 2000-2199 (UTC seconds)")
    cfg = _config(args, at)
    with tempfile.TemporaryDirectory(prefix="paytoken-sim-") as d:
        try:
            flash, hw = simrun.prepare(d, config=cfg, at=at, board=args.board,
                                       frozen=bool(args.snapshot))
            if args.snapshot:
                res = simrun.run(flash, hw, heapsize=args.heapsize)
                panel.panel_png(res.picture, res.width, res.height, args.snapshot,
                                inverted=res.inverted, display_on=res.display_on)
                print(f"wrote {args.snapshot} ({res.width}x{res.height}, {res.i2c_bytes} I2C bytes)")
                return 0
        except simrun.SimError as e:
            raise CommandError(str(e)) from None
        except OSError as e:
            raise CommandError(f"--snapshot {args.snapshot}: {e.strerror or e}") from None
        return _live(flash, hw, args)


def _live(flash: Path, hw: Path, args: argparse.Namespace) -> int:
    from paytoken import panel, simrun, vhw

    argv, env = simrun.command(flash, hw, 0, args.heapsize)
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tty = sys.stdin.isatty()
    old = None
    if tty:
        import termios
        import tty as ttymod

        old = termios.tcgetattr(sys.stdin)
        ttymod.setcbreak(sys.stdin.fileno())
    shown = 0
    lit = False  # --frames counts from the first lit frame: a busy machine boots slowly
    started = time.monotonic()
    try:
        print("\x1b[2J", end="")
        while proc.poll() is None:
            try:
                data, w, h, on, inv = vhw.panel(hw)
            except vhw.VirtualHardwareError:
                time.sleep(0.1)
                continue
            text = panel.panel_text(data, w, h, inverted=inv, display_on=on)
            print("\x1b[H" + text)
            print("any key: press the button   q: quit   (display sleeps 20 s after the last press)")
            lit = lit or bool(on)
            shown += lit
            if args.frames and shown >= args.frames:
                break
            if args.frames and not lit and time.monotonic() - started > DARK_LIMIT:
                raise CommandError(f"the firmware left the panel dark for {DARK_LIMIT} s")
            r, _, _ = select.select([sys.stdin], [], [], 0.25) if tty else ([], [], time.sleep(0.25))
            if r:
                ch = os.read(sys.stdin.fileno(), 1)
                if ch in (b"q", b"Q"):
                    break
                vhw.press(hw)
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-500:]
            raise CommandError(f"the firmware stopped: {err}")
    finally:
        if old is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, old)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=5)
    return 0
