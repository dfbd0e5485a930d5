"""Sub-commands ``vdev`` (virtual tokens) and ``deploy`` (firmware onto a token).

Usage::

    paytoken vdev start --flash tok1 &          # first line: the device path
    paytoken deploy --port tok1.hw/tty --board sim
    paytoken vdev press --flash tok1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paytoken import vhw
from paytoken.commands import argtypes
from paytoken.errors import CommandError
from paytoken.station import deploy as deploy_mod
from paytoken.station.transport import DEFAULT_TIMEOUT, Device, DeviceError
from paytoken.vdev import control
from paytoken.vdev.supervisor import Supervisor, VdevError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``vdev`` and ``deploy``."""
    p = sub.add_parser("vdev", help="virtual tokens on pseudo-terminals")
    vsub = p.add_subparsers(dest="vdev_command", metavar="ACTION")
    vsub.required = True

    def flash_arg(q: argparse.ArgumentParser) -> None:
        q.add_argument("--flash", required=True, type=argtypes.flash_dir, metavar="DIR",
                       help="the token's flash folder (its hardware is DIR.hw)")

    q = vsub.add_parser("start", help="run a virtual token in the foreground")
    flash_arg(q)
    q.add_argument("--board", type=argtypes.board, default="sim",
                   help="sim, sim-128x32 (unix port) or an RP2040 board such as pico (emulated RP2040)")
    q.add_argument("--locked", action="store_true", help="sim boards: production image, no REPL fallback")
    q.add_argument("--heapsize", type=argtypes.heapsize, default=None, help="sim boards: MicroPython heap, 4K to 256M, e.g. 256K (default: the port's)")
    q.add_argument("--image", type=argtypes.in_file, default=None,
                   help="RP2040 boards: the .uf2 to flash (default: the stock MicroPython)")
    q.add_argument("--fast-idle", action="store_true",
                   help="RP2040 boards: idle time passes at once (breaks mpremote mount)")
    q.add_argument("--trace", type=argtypes.out_file, default=None,
                   help="RP2040 boards: append boots, presses and panel writes (emulated ns) as JSON lines")
    q.set_defaults(func=do_vdev_start)

    q = vsub.add_parser("press", help="press the button")
    flash_arg(q)
    q.add_argument("--times", type=argtypes.integer(1, 1000, "a number of presses"), default=1,
                   help="how many presses, 1 to 1000")
    q.set_defaults(func=do_vdev_press)

    q = vsub.add_parser("snapshot", help="write the panel as a PNG")
    flash_arg(q)
    q.add_argument("file", type=argtypes.out_file, help="the PNG to write")
    q.add_argument("--scale", type=argtypes.integer(1, MAX_SCALE, "a scale"), default=4,
                   help=f"pixels per panel pixel, 1 to {MAX_SCALE}")
    q.set_defaults(func=do_vdev_snapshot)

    q = vsub.add_parser("power-off", help="cut the power (the interpreter dies)")
    flash_arg(q)
    q.set_defaults(func=do_vdev_power_off)

    q = vsub.add_parser("power-on", help="restore the power (the token boots)")
    flash_arg(q)
    q.set_defaults(func=do_vdev_power_on)

    q = vsub.add_parser("set-rtc", help="change the RTC model")
    flash_arg(q)
    q.add_argument("--ppm", type=argtypes.number(-MAX_PPM, MAX_PPM, what="a crystal error in ppm"), default=None,
                   help=f"crystal error, parts per million, -{MAX_PPM} to {MAX_PPM}")
    q.add_argument("--battery", choices=("on", "off"), default=None,
                   help="the RTC's backup cell fitted or not")
    q.set_defaults(func=do_vdev_set_rtc)

    q = vsub.add_parser("reset", help="hard reset: kill the interpreter and boot again")
    flash_arg(q)
    q.set_defaults(func=do_vdev_reset)

    q = vsub.add_parser("port", help="print the device path of a running virtual token")
    flash_arg(q)
    q.set_defaults(func=do_vdev_port)

    p = sub.add_parser("deploy", help="compile and copy the firmware to a token")
    p.add_argument("--port", type=argtypes.serial_port, required=True,
                   help="serial port or virtual token device path")
    p.add_argument("--board", type=argtypes.board, required=True, help="board name (boards/<name>.py)")
    p.add_argument("--timeout", type=argtypes.seconds, default=DEFAULT_TIMEOUT,
                   help="seconds per device call")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=do_deploy)


MAX_SCALE = 32  # 128x64 at 32 is a 4096x2048 PNG: a few MB, never an out-of-memory kill
MAX_PPM = 10000  # the station refuses beyond 1000 ppm; the model goes ten times further


def _hw(args: argparse.Namespace) -> Path:
    hw = control.hw_folder(args.flash)
    if not (hw / "hw.json").exists():
        raise CommandError(f"no virtual hardware for {args.flash} ({hw} missing): start it first")
    return hw


def do_vdev_start(args: argparse.Namespace) -> int:
    if args.board not in vhw.BOARDS:
        from paytoken.vdev.rp2 import Rp2Error, Rp2Supervisor

        if args.locked or args.heapsize:
            raise CommandError("vdev start: --locked and --heapsize are for sim boards only")
        try:
            return Rp2Supervisor(args.flash, board=args.board, image=args.image,
                                 fast_idle=args.fast_idle, trace=args.trace).run()
        except Rp2Error as e:
            raise CommandError(str(e)) from None
    if args.image or args.fast_idle or args.trace:
        raise CommandError("vdev start: --image, --fast-idle and --trace are for RP2040 boards only")
    try:
        return Supervisor(
            args.flash, board=args.board, locked=args.locked, heapsize=args.heapsize
        ).run()
    except VdevError as e:
        raise CommandError(str(e)) from None


def do_vdev_press(args: argparse.Namespace) -> None:
    try:
        vhw.press(_hw(args), args.times)
    except vhw.VirtualHardwareError as e:
        raise CommandError(str(e)) from None


def do_vdev_snapshot(args: argparse.Namespace) -> None:
    try:
        vhw.snapshot(_hw(args), args.file, scale=args.scale)
    except vhw.VirtualHardwareError as e:
        raise CommandError(f"snapshot: {e}") from None
    except OSError as e:
        raise CommandError(f"snapshot: {args.file}: {e.strerror or e}") from None


def do_vdev_power_off(args: argparse.Namespace) -> None:
    try:
        vhw.power_off(_hw(args))
    except vhw.VirtualHardwareError as e:
        raise CommandError(str(e)) from None


def do_vdev_power_on(args: argparse.Namespace) -> None:
    try:
        vhw.power_on(_hw(args))
    except vhw.VirtualHardwareError as e:
        raise CommandError(str(e)) from None


def do_vdev_set_rtc(args: argparse.Namespace) -> None:
    if args.ppm is None and args.battery is None:
        raise CommandError("set-rtc: give --ppm and/or --battery")
    battery = None if args.battery is None else args.battery == "on"
    try:
        vhw.set_rtc(_hw(args), ppm=args.ppm, battery=battery)
    except vhw.VirtualHardwareError as e:
        raise CommandError(str(e)) from None


def do_vdev_reset(args: argparse.Namespace) -> None:
    try:
        control.hard_reset(args.flash)
    except control.ControlError as e:
        raise CommandError(str(e)) from None


def do_vdev_port(args: argparse.Namespace) -> None:
    try:
        print(control.port(args.flash))
    except control.ControlError as e:
        raise CommandError(str(e)) from None


def do_deploy(args: argparse.Namespace) -> None:
    def progress(path: str, i: int, n: int) -> None:
        if path and not args.json:
            print(f"  [{i + 1}/{n}] {path}", file=sys.stderr, flush=True)

    try:
        board = deploy_mod.load_board(args.board)
        with Device(args.port, timeout=args.timeout) as dev:
            r = deploy_mod.deploy(dev, board, progress=progress)
    except (deploy_mod.DeployError, DeviceError) as e:
        raise CommandError(f"deploy: {e}") from None
    if args.json:
        print(json.dumps(r.__dict__, indent=2))
    elif r.image != "files":
        print(f"{r.port} runs the frozen image {r.image} ({r.board}): nothing to copy, "
              f"{len(r.removed)} old files removed in {r.seconds:.2f} s")
    else:
        print(
            f"deployed {r.board} to {r.port}: {len(r.copied)} copied, {len(r.unchanged)} "
            f"unchanged, {len(r.removed)} removed in {r.seconds:.2f} s"
        )
