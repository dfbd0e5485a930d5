"""The ``paytoken`` command: a dispatch table of sub-command modules.

Each module in ``paytoken.commands`` exposes ``register(subparsers)``; it adds its
sub-commands and sets ``func=do_x`` on each, where ``do_x(args) -> int | None``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from paytoken.errors import CommandError

# One module per concern; each adds its own sub-commands.
COMMAND_MODULES = (
    "paytoken.commands.code",  # code, decode
    "paytoken.commands.sim",  # sim
    "paytoken.commands.backend",  # db, scheme, token, merchant, account, serve, pay
    "paytoken.commands.station",  # vdev, deploy
    "paytoken.commands.desk",  # provision, sync-clock, update, info, cross-verify
    "paytoken.commands.story",  # demo, simulate-year
    "paytoken.commands.pskc",  # batch (and token import, provision --offline-batch)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paytoken", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except CommandError as exc:
        print(f"paytoken: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, like other Unix tools.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    sys.exit(rc or 0)
