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
        q.add_argument("--flash", required=True, type=Path, help="the token's flash folder")

    q = vsub.add_parser("start", help="run a virtual token in the foreground")
    flash_arg(q)
    q.add_argument("--board", default="sim", help="sim board (hardware folder layout)")
    q.add_argument("--locked", action="store_true", help="production image: no REPL fallback")
    q.add_argument("--heapsize", default=None, help="MicroPython heap, e.g. 256K")
    q.set_defaults(func=do_vdev_start)

    q = vsub.add_parser("press", help="press the button")
    flash_arg(q)
    q.add_argument("--times", type=int, default=1)
    q.set_defaults(func=do_vdev_press)

    q = vsub.add_parser("snapshot", help="write the panel as a PNG")
    flash_arg(q)
    q.add_argument("file", type=Path)
    q.add_argument("--scale", type=int, default=4)
    q.set_defaults(func=do_vdev_snapshot)

    q = vsub.add_parser("power-off", help="cut the power (the interpreter dies)")
    flash_arg(q)
    q.set_defaults(func=do_vdev_power_off)

    q = vsub.add_parser("power-on", help="restore the power (the token boots)")
    flash_arg(q)
    q.set_defaults(func=do_vdev_power_on)

    q = vsub.add_parser("set-rtc", help="change the RTC model")
    flash_arg(q)
    q.add_argument("--ppm", type=float, default=None, help="crystal error, parts per million")
    q.add_argument("--battery", choices=("on", "off"), default=None)
    q.set_defaults(func=do_vdev_set_rtc)

    q = vsub.add_parser("reset", help="hard reset: kill the interpreter and boot again")
    flash_arg(q)
    q.set_defaults(func=do_vdev_reset)

    q = vsub.add_parser("port", help="print the device path of a running virtual token")
    flash_arg(q)
    q.set_defaults(func=do_vdev_port)

    p = sub.add_parser("deploy", help="compile and copy the firmware to a token")
    p.add_argument("--port", required=True, help="serial port or virtual token device path")
    p.add_argument("--board", required=True, help="board name (boards/<name>.py)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per device call")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=do_deploy)


def _hw(args: argparse.Namespace) -> Path:
    hw = control.hw_folder(args.flash)
    if not (hw / "hw.json").exists():
        raise CommandError(f"no virtual hardware for {args.flash} ({hw} missing): start it first")
    return hw


def do_vdev_start(args: argparse.Namespace) -> int:
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
    except (vhw.VirtualHardwareError, OSError) as e:
        raise CommandError(f"snapshot: {e}") from None


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
