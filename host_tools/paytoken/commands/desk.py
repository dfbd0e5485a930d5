"""Factory and service-desk sub-commands: provision, sync-clock, update, info, cross-verify.

Usage::

    paytoken provision --all --board sim --burn-in 600 --report-dir reports
    paytoken provision --all --board pico --url https://issuer --admin-key-file admin.key
    paytoken sync-clock --port /dev/ttyACM0 --url https://issuer --admin-key-file admin.key
    paytoken update --port /dev/ttyACM0 --board pico --url https://issuer
    paytoken info --port /dev/ttyACM0
    paytoken cross-verify --port /dev/ttyACM0 --steps 50 --url https://issuer

``provision --offline-batch`` reaches no issuer (see ``commands/pskc.py``).
``provision --url`` and ``cross-verify --url`` talk to the issuer's admin API only
(the online factory: no master key, no database URL); without ``--url`` they open the
issuer database in this process (``--db``, master key from ``$PAYTOKEN_MASTER_KEY`` or
``--master-key-file``), through the same interface. ``sync-clock`` and ``update`` always
talk HTTP (``--url`` or ``$PAYTOKEN_URL``). The admin key: ``--admin-key-file`` (or
``$PAYTOKEN_ADMIN_KEY_FILE``), ``$PAYTOKEN_ADMIN_KEY``, or ``--admin-key``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from paytoken.commands import argtypes
from paytoken.errors import CommandError
from paytoken.station.transport import DEFAULT_TIMEOUT


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=argtypes.db_url, default=None, metavar="URL",
                   help="database URL or SQLite file (default $PAYTOKEN_DB or sqlite:///paytoken.db)")
    p.add_argument("--master-key-file", type=argtypes.in_file, default=None, metavar="FILE",
                   help="file holding the master key (default $PAYTOKEN_MASTER_KEY)")


def _http_args(p: argparse.ArgumentParser, *, online_only: bool = True) -> None:
    if online_only:
        p.add_argument("--url", type=argtypes.http_url, default=os.environ.get("PAYTOKEN_URL", "http://127.0.0.1:8080"),
                       help="the issuer's base URL (default $PAYTOKEN_URL)")
    else:
        p.add_argument("--url", type=argtypes.http_url, default=None,
                       help="the issuer's base URL: talk to its admin API only (no --db)")
    p.add_argument("--admin-key-file", type=argtypes.in_file, default=None, metavar="FILE",
                   help="file holding an admin API key, mode 0600 (default $PAYTOKEN_ADMIN_KEY_FILE)")
    p.add_argument("--admin-key", type=argtypes.secret_key, default=None,
                   help="admin API key (default $PAYTOKEN_ADMIN_KEY; a file keeps it out of ps)")


def _admin_key(args: argparse.Namespace) -> str:
    """--admin-key-file / $PAYTOKEN_ADMIN_KEY_FILE, then --admin-key, then $PAYTOKEN_ADMIN_KEY."""
    path = args.admin_key_file or os.environ.get("PAYTOKEN_ADMIN_KEY_FILE")
    if path:
        try:
            st = os.stat(path)
            text = Path(path).read_text(encoding="ascii")
        except FileNotFoundError:
            raise CommandError(f"no admin key file {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise CommandError(f"cannot read the admin key file {path}: {type(e).__name__}") from None
        if st.st_mode & 0o077:
            raise CommandError(f"the admin key file {path} is readable by others "
                               f"(mode {st.st_mode & 0o777:04o}): chmod 600 it")
        key = text.strip()
        if not key or not key.isprintable() or " " in key:
            raise CommandError(f"the admin key file {path} does not hold one key")
        return key
    key = args.admin_key or os.environ.get("PAYTOKEN_ADMIN_KEY", "")
    if key and not args.admin_key:
        try:
            key = argtypes.secret_key(key)
        except argparse.ArgumentTypeError as e:
            raise CommandError(f"$PAYTOKEN_ADMIN_KEY: {e}") from None
    if not key:
        raise CommandError("an admin key is needed: --admin-key-file FILE or $PAYTOKEN_ADMIN_KEY")
    return key


def _port_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--port", type=argtypes.serial_port, required=required,
                   action=None if required else "append",
                   help="serial port or virtual token device path"
                   + ("" if required else " (repeatable)"))
    p.add_argument("--timeout", type=argtypes.seconds, default=DEFAULT_TIMEOUT,
                   help="seconds per device call")


def _backend(args: argparse.Namespace):
    from paytoken.commands.backend import _backend as open_backend

    return open_backend(args, key=True)


def _api(args: argparse.Namespace):
    from paytoken.backend import BackendError
    from paytoken.station.online import HttpIssuer

    try:
        return HttpIssuer(args.url, _admin_key(args), timeout=args.timeout)
    except BackendError as e:
        raise CommandError(str(e)) from None


def _desk_issuer(args: argparse.Namespace, actor: str):
    """``--url``: the admin API; else the database in this process (``--db``)."""
    from paytoken.station.issuer import DbIssuer

    if args.url:
        if args.db or args.master_key_file:
            raise CommandError("give --url (the issuer's API) or --db/--master-key-file "
                               "(its database here), not both")
        return _api(args)
    if args.admin_key_file or args.admin_key:
        raise CommandError("an admin key goes with --url")
    return DbIssuer(_backend(args), actor)


def _device(args: argparse.Namespace):
    from paytoken.station.transport import Device, DeviceError

    try:
        return Device(args.port, timeout=args.timeout)
    except DeviceError as e:
        raise CommandError(str(e)) from None


def _print(args: argparse.Namespace, data: object, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else text)


# ---- provision ---------------------------------------------------------------------------


class _Live:
    """Per-port progress with rich (stderr), or plain lines when not a terminal."""

    def __init__(self, ports: list[str], enabled: bool) -> None:
        self.ports = ports
        self.rows = {p: ("waiting", "") for p in ports}
        self.lock = threading.Lock()
        self.live = None
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._table(), console=Console(stderr=True), refresh_per_second=8)

    def _table(self):
        from rich.table import Table

        t = Table(title="paytoken provision")
        t.add_column("port")
        t.add_column("step")
        t.add_column("detail")
        for p in self.ports:
            step, detail = self.rows[p]
            style = "red" if step == "failed" else "green" if step == "done" else ""
            t.add_row(p, step, detail, style=style)
        return t

    def __call__(self, port: str, step: str, detail: str) -> None:
        with self.lock:
            self.rows[port] = (step, detail)
            if self.live is not None:
                self.live.update(self._table())
            elif self.enabled:
                print(f"{port}: {step} {detail}".rstrip(), file=sys.stderr, flush=True)

    def __enter__(self) -> _Live:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


def do_provision(args: argparse.Namespace) -> int:
    from paytoken.station import ops
    from paytoken.station.ports import find_ports
    from paytoken.station.provision import Interrupted, Station

    if args.all and args.port:
        raise CommandError("give --port or --all, not both")
    ports = find_ports() if args.all else list(dict.fromkeys(args.port or []))
    if not ports:
        raise CommandError("no ports: give --port P (repeatable) or --all" +
                           (" (none found)" if args.all else ""))
    if args.burn_in < 0:
        raise CommandError("--burn-in must be >= 0 seconds")
    from paytoken.commands.pskc import offline_issuer

    if args.url and args.offline_batch:
        raise CommandError("give --url or --offline-batch, not both (offline, no issuer is reached)")
    issuer = offline_issuer(args) or _desk_issuer(args, "station")
    args.prefix = args.prefix or "81"
    try:
        station = Station(issuer, board=args.board, burn_in=args.burn_in, prefix=args.prefix,
                          report_dir=args.report_dir, timeout=args.timeout)
    except (ops.OpsError, OSError, ValueError) as e:
        raise CommandError(f"provision: {e}") from None
    interrupted = False
    with _Live(ports, enabled=not args.quiet) as live:
        try:
            reports = station.run(ports, progress=live)
        except Interrupted as e:  # every port stopped cleanly at its next step
            from paytoken.cli import Terminated

            reports, interrupted = e.reports, True
            term = isinstance(e.cause, Terminated)
    data = [asdict(r) for r in reports]
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        for r in reports:
            tid = f"{r.token_id:08d}" if r.token_id else "-"
            if r.status == "failed":
                print(f"{r.port}: FAILED at {r.step}: {r.error}")
            elif r.status == "skipped":
                print(f"{r.port}: skipped, {r.recovered}")
            else:
                print(f"{r.port}: token {tid} provisioned in {r.seconds:.1f} s "
                      f"(offset {r.offset_ms:+.1f} ms, {_ppm_text(r)})")
    if interrupted:
        stopped = sum(r.status == "failed" for r in reports)
        print(f"paytoken: provision interrupted{' (SIGTERM)' if term else ''}: {stopped} of "
              f"{len(reports)} ports stopped (none left unlocked); re-run to finish", file=sys.stderr)
        if stopped:
            return 143 if term else 130
    return 0 if all(r.status != "failed" for r in reports) else 2


def _ppm_text(r) -> str:
    # the crystal error stored, and why 0 when it is 0
    if r.ppm_measured is None:
        return "crystal error not measured (no --burn-in): 0 ppm stored"
    if r.ppm == 0 and r.ppm_measured != 0:
        return (f"{r.ppm_measured:+.2f} ± {r.ppm_resolution:.2f} ppm measured, too coarse to "
                "store: 0 ppm stored (a longer --burn-in resolves it)")
    return f"{r.ppm:+.2f} ppm stored (± {r.ppm_resolution:.2f})"


# ---- the service desk ----------------------------------------------------------------------


def do_sync_clock(args: argparse.Namespace) -> None:
    from paytoken.station.desk import DeskError, sync_clock

    api = _api(args)
    with _device(args) as dev:
        try:
            r = sync_clock(dev, api)
        except DeskError as e:
            raise CommandError(f"sync-clock: {e}") from None
    off = "unknown (its clock was not trusted)" if r.offset_s is None else f"{r.offset_s:+d} s"
    _print(args, asdict(r), f"token {r.token_id:08d}: clock set to {r.utc_set} UTC; it was {off}")


def do_update(args: argparse.Namespace) -> None:
    from paytoken.station.desk import DeskError, update

    api = _api(args)
    with _device(args) as dev:
        try:
            r = update(dev, api, args.board, firmware_dir=args.firmware, prefix=args.prefix)
        except DeskError as e:
            raise CommandError(str(e)) from None
    moved = "" if r.prefix is None else f", moved to scheme {r.prefix} (code format {r.code_format})"
    _print(args, asdict(r), f"token {r.token_id:08d}: firmware {r.fw_before} -> {r.fw_after} "
           f"({len(r.copied)} files copied){moved}, locked again")


def do_info(args: argparse.Namespace) -> None:
    from paytoken.station.desk import DeskError, info

    with _device(args) as dev:
        try:
            d = info(dev)
        except DeskError as e:
            raise CommandError(f"info: {e}") from None
    text = " ".join(f"{k}={v}" for k, v in d.items() if v is not None)
    _print(args, d, text)


def do_cross_verify(args: argparse.Namespace) -> int:
    from paytoken.station.desk import DeskError, cross_verify

    issuer = _desk_issuer(args, "desk:" + args.port)
    with _device(args) as dev:
        try:
            r = cross_verify(dev, issuer, steps=args.steps, start=args.start, end=args.end,
                             actor="desk:" + args.port)
        except DeskError as e:
            raise CommandError(str(e)) from None
    data = {"port": r.port, "token_id": r.token_id, "steps": len(r.times),
            "first": r.times[0], "last": r.times[-1], "mismatches": r.mismatches}
    if r.ok:
        _print(args, data, f"token {r.token_id:08d}: {len(r.times)} codes agree "
               f"({r.times[0]}..{r.times[-1]} UTC)")
        return 0
    _print(args, data, f"token {r.token_id:08d}: MISMATCH at {len(r.mismatches)} of "
           f"{len(r.times)} times (first t={r.mismatches[0]})")
    return 3


def register(sub: argparse._SubParsersAction) -> None:
    """Add provision, sync-clock, update, info and cross-verify."""
    p = sub.add_parser("provision", help="provision tokens in parallel (factory station)")
    _port_args(p, required=False)
    p.add_argument("--all", action="store_true", help="every MicroPython USB board and virtual token")
    p.add_argument("--board", type=argtypes.board, required=True, help="board name (boards/<name>.py)")
    p.add_argument("--burn-in", type=argtypes.number(0, 86400, what="a number of seconds"),
                   default=0.0, metavar="SECONDS",
                   help="seconds between clock readings for the crystal error, up to 86400 "
                   "(0: not measured)")
    p.add_argument("--prefix", type=argtypes.prefix, default=None,
                   help="scheme prefix (two digits; default 81, or the offline batch's)")
    p.add_argument("--report-dir", type=argtypes.out_dir, default=None, metavar="DIR",
                   help="write a JSON report per token and audit.jsonl here")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    _db_args(p)
    _http_args(p, online_only=False)
    from paytoken.commands.pskc import add_offline_args

    add_offline_args(p)
    p.set_defaults(func=do_provision)

    p = sub.add_parser("sync-clock", help="set a locked token's clock from the issuer's signed time")
    _port_args(p)
    _http_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_sync_clock)

    p = sub.add_parser("update", help="authenticated unlock, firmware deploy (config kept), lock")
    _port_args(p)
    p.add_argument("--board", type=argtypes.board, required=True, help="board name (boards/<name>.py)")
    p.add_argument("--firmware", type=argtypes.existing_dir, default=None, metavar="DIR",
                   help="firmware tree to deploy (default: the installed firmware/)")
    p.add_argument("--prefix", type=argtypes.prefix, default=None, metavar="PV",
                   help="also move the token to this scheme and its code format (same secret; "
                   "docs/FORMAT.md)")
    _http_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_update)

    p = sub.add_parser("info", help="what a token says about itself (no secrets)")
    _port_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_info)

    p = sub.add_parser("cross-verify", help="compare the token's codes with the issuer's")
    _port_args(p)
    p.add_argument("--steps", type=argtypes.integer(1, 5000, "a number of steps"), default=20,
                   help="how many times to compare, 1 to 5000")
    p.add_argument("--start", type=argtypes.utc_seconds, default=None, help="UTC seconds (default now)")
    p.add_argument("--end", type=argtypes.utc_seconds, default=None,
                   help="UTC seconds (default start + 10 years)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _db_args(p)
    _http_args(p, online_only=False)
    p.set_defaults(func=do_cross_verify)
