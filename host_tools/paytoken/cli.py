"""The ``paytoken`` command: a dispatch table of sub-command modules.

Each module in ``paytoken.commands`` exposes ``register(subparsers)``; it adds its
sub-commands and sets ``func=do_x`` on each, where ``do_x(args) -> int | None``.
Bad command lines, like every other failure, end in one line ``paytoken: message``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Iterator

from paytoken import __version__
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

OVERVIEW = """\
An offline payment token: a small board (or a virtual one) shows an 18-digit payment
code, a till scans it, and the issuer's server checks it and moves the money.

  try it          demo, code, decode, sim, simulate-year
  run an issuer   db, scheme, token, merchant, account, serve
  a factory       vdev, deploy, provision
  service desk    info, sync-clock, update, cross-verify
  a merchant      pay
"""

EPILOG = """\
Start with `paytoken demo`: the whole story on virtual tokens, in a few minutes.
`paytoken COMMAND --help` explains a command. Settings from the environment:
PAYTOKEN_DB, PAYTOKEN_MASTER_KEY, PAYTOKEN_URL, PAYTOKEN_ADMIN_KEY, PAYTOKEN_API_KEY.
Times are UTC; amounts are integer minor units (1250 = 12.50).
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless its help names it already or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        d = action.default
        if (action.option_strings and action.nargs != 0 and "default" not in h
                and d not in (None, argparse.SUPPRESS) and h != argparse.SUPPRESS):
            h += " (default: %(default)s)"
        return h


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one error form: ``paytoken: code: argument --at: ...``, exit 1
    (2 means a refusal to ``pay`` and a failed token to ``provision``)."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.removeprefix("paytoken").strip()
        line = " ".join(f"{where + ': ' if where else ''}{message}".split())
        self.exit(1, f"paytoken: {line} (see: {self.prog} --help)\n")


def iter_parsers(parser: argparse.ArgumentParser,
                 path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the tree with its command path, the top one first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from iter_parsers(child, (*path, name))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="paytoken", description=OVERVIEW, epilog=EPILOG,
                    formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"paytoken {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for _, p in iter_parsers(parser):
        p.formatter_class = _Formatter
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every clean-up (a token locked again) runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    # A Ctrl-C (or SIGTERM) that landed inside an import can come back wrapped, e.g. as the
    # RuntimeError "Error calling __set_name__": it is still an interrupt.
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _interrupted(exc: KeyboardInterrupt) -> None:
    print("paytoken: interrupted" + (" (SIGTERM)" if isinstance(exc, Terminated) else ""),
          file=sys.stderr)
    sys.exit(143 if isinstance(exc, Terminated) else 130)


def main(argv: list[str] | None = None) -> None:
    # first: a command that installs its own (vdev start, serve) replaces it meanwhile
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        rc = args.func(args)
    except CommandError as exc:
        print(f"paytoken: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, like other Unix tools.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:
        cause = _interrupt_in(exc)
        if cause is None:
            raise
        _interrupted(cause)
    finally:
        if argv is None:
            # the process is done: a signal now has nothing left to stop, and must not
            # turn the exit (threads joined, modules torn down) into a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:  # called in-process (tests): the caller's handler again
            signal.signal(signal.SIGTERM, old_term)
    sys.exit(rc or 0)
