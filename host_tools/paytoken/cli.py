"""The ``paytoken`` command: a dispatch table of sub-command modules.

Each module in ``paytoken.commands`` exposes ``register(subparsers)``; it adds its
sub-commands and sets ``func=do_x`` on each, where ``do_x(args) -> int | None``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
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
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paytoken", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every clean-up (a token locked again) runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    # first: a command that installs its own (vdev start, serve) replaces it meanwhile
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        rc = args.func(args)
    except CommandError as exc:
        print(f"paytoken: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        print("paytoken: interrupted" + (" (SIGTERM)" if isinstance(exc, Terminated) else ""),
              file=sys.stderr)
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, like other Unix tools.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    finally:
        if argv is None:
            # the process is done: a signal now has nothing left to stop, and must not
            # turn the exit (threads joined, modules torn down) into a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:  # called in-process (tests): the caller's handler again
            signal.signal(signal.SIGTERM, old_term)
    sys.exit(rc or 0)
