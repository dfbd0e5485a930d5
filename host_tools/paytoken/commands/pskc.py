"""Offline factory sub-commands: batch create, token import (and provision's --offline-batch).

Usage::

    paytoken batch create --count 100 --prefix 81 --psk-file factory.psk --out batch.json
    paytoken provision --all --board pico --offline-batch batch.json --pskc-out tokens.pskc --psk-file factory.psk
    paytoken token import --pskc tokens.pskc --psk-file factory.psk

The pre-shared key file holds 32 hex digits, mode 0600. ``batch create`` makes a new
random one when the file does not exist (and says so); ``provision`` and ``token
import`` only read it, and refuse one that others may read.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from paytoken.commands import argtypes
from paytoken.errors import CommandError


def _psk(path: Path, create: bool = False) -> tuple[bytes, bool]:
    from paytoken import pskc

    try:
        if create and not os.path.lexists(path):
            return pskc.new_psk_file(path), True
        return pskc.read_psk_file(path), False
    except pskc.PskcError as e:
        raise CommandError(str(e)) from None


def _out(args: argparse.Namespace, data: object, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else text)


def do_batch_create(args: argparse.Namespace) -> None:
    from paytoken.backend import INVALID, BackendError
    from paytoken.backend.service.batches import create_batch
    from paytoken.batch import MAX_COUNT, BatchError, seal
    from paytoken.commands.backend import _backend
    from paytoken.pskc import psk_id

    if not 1 <= args.count <= MAX_COUNT:
        raise CommandError(f"--count: a batch holds 1 to {MAX_COUNT} tokens")
    out = Path(args.out)
    if os.path.lexists(out):
        raise CommandError(f"{out} exists; refusing to overwrite a batch")
    backend = _backend(args, key=True)
    try:
        if backend.scheme_keys().get(args.prefix) is None:  # before a key file is made
            raise BackendError(f"no scheme key for prefix {args.prefix}: run `paytoken scheme add`", INVALID)
    except BackendError as e:
        raise CommandError(str(e)) from None
    psk, created = _psk(Path(args.psk_file), create=True)
    try:
        b, scheme_key, sync_master = create_batch(backend, args.prefix, args.count, psk_id(psk),
                                                  actor="cli")
        data = seal(b, scheme_key, sync_master, psk)
    except (BackendError, BatchError) as e:
        raise CommandError(str(e)) from None
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CommandError(f"batch {b.batch_id} was created, but {out} could not be written "
                           f"({e.strerror}); its ids stay pending: create another batch") from None
    data_out = {"batch_id": b.batch_id, "prefix": b.prefix, "first_id": b.first_id,
                "last_id": b.last_id, "count": b.count, "psk_id": b.psk_id, "out": str(out),
                "psk_created": created}
    text = (f"batch {b.batch_id}: {b.count} token ids {b.first_id:08d}..{b.last_id:08d} "
            f"(prefix {b.prefix}) written to {out}")
    if created:
        text += (f"\nwrote a new pre-shared key to {args.psk_file} (mode 0600, key {b.psk_id}): "
                 "give it to the station by another channel than the batch")
    _out(args, data_out, text)


def do_token_import(args: argparse.Namespace) -> None:
    from paytoken import pskc
    from paytoken.backend import BackendError
    from paytoken.backend.service.batches import import_tokens
    from paytoken.commands.backend import _backend

    psk, _ = _psk(Path(args.psk_file))
    try:
        packages = pskc.read_file(Path(args.pskc), psk)
    except pskc.PskcError as e:
        raise CommandError(f"{args.pskc}: {e}") from None
    backend = _backend(args, key=True)
    try:
        r = import_tokens(backend, packages, pskc.psk_id(psk), actor="cli")
    except BackendError as e:
        raise CommandError(f"{args.pskc}: nothing imported: {e}") from None
    text = f"{len(r.imported)} tokens imported and active"
    if r.already:
        text += f"; {len(r.already)} were already active (a re-import changes nothing)"
    _out(args, {"imported": r.imported, "already": r.already}, text)


def offline_issuer(args: argparse.Namespace):
    """The ``Issuer`` for ``provision --offline-batch B --pskc-out F --psk-file K``, or
    None without ``--offline-batch``."""
    from paytoken.station import ops
    from paytoken.station.offline import OfflineIssuer

    if not args.offline_batch:
        if args.pskc_out or args.psk_file:
            raise CommandError("--pskc-out and --psk-file go with --offline-batch")
        return None
    missing = [f for f, v in (("--pskc-out", args.pskc_out), ("--psk-file", args.psk_file)) if not v]
    if missing:
        raise CommandError(f"--offline-batch needs {' and '.join(missing)}")
    if args.db:
        raise CommandError("give --db or --offline-batch, not both (offline, no issuer is reached)")
    psk, _ = _psk(Path(args.psk_file))
    try:
        issuer = OfflineIssuer(Path(args.offline_batch), psk, Path(args.pskc_out))
    except ops.OpsError as e:
        raise CommandError(f"provision: {e}") from None
    if args.prefix not in (None, issuer.prefix):
        raise CommandError(f"batch {issuer.batch.batch_id} is for prefix {issuer.prefix}, "
                           f"not {args.prefix}")
    args.prefix = issuer.prefix
    return issuer


def add_offline_args(p: argparse.ArgumentParser) -> None:
    """provision's offline flags."""
    p.add_argument("--offline-batch", type=argtypes.in_file, default=None, metavar="BATCH",
                   help="provision from this batch file, without reaching the issuer")
    p.add_argument("--pskc-out", type=argtypes.out_file, default=None, metavar="FILE",
                   help="with --offline-batch: append one PSKC key package per token here")
    p.add_argument("--psk-file", type=argtypes.in_file, default=None, metavar="KEYFILE",
                   help="with --offline-batch: the pre-shared key the batch was made for")


def register_token_import(tks: argparse._SubParsersAction) -> None:
    """``token import`` under the ``token`` group (commands/backend.py)."""
    p = tks.add_parser("import", help="activate the tokens of a PSKC file (all or none)")
    p.add_argument("--pskc", type=argtypes.in_file, required=True, metavar="FILE", help="PSKC (RFC 6030) file")
    p.add_argument("--psk-file", type=argtypes.in_file, required=True, metavar="KEYFILE", help="its pre-shared key")
    p.add_argument("--db", type=argtypes.db_url, default=None, metavar="URL",
                   help="database URL or SQLite file (default $PAYTOKEN_DB or sqlite:///paytoken.db)")
    p.add_argument("--master-key-file", type=argtypes.in_file, default=None, metavar="FILE",
                   help="file holding the master key (default $PAYTOKEN_MASTER_KEY)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_token_import)


def register(sub: argparse._SubParsersAction) -> None:
    """Add batch."""
    bt = sub.add_parser("batch", help="batches of token ids for offline factory stations")
    bts = bt.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    p = bts.add_parser("create", help="reserve N token ids and write them, with the scheme key "
                       "sealed under a pre-shared key, to a batch file")
    p.add_argument("--count", type=argtypes.integer(1, 10000, what="a number of token ids"), required=True, metavar="N", help="token ids, 1 to 10000")
    p.add_argument("--prefix", type=argtypes.prefix, required=True, metavar="PV", help="scheme prefix, e.g. 81")
    p.add_argument("--psk-file", type=argtypes.out_file, required=True, metavar="KEYFILE",
                   help="pre-shared key file (created, mode 0600, when it does not exist)")
    p.add_argument("--out", type=argtypes.out_file, required=True, metavar="BATCH", help="the batch file to write")
    p.add_argument("--db", type=argtypes.db_url, default=None, metavar="URL",
                   help="database URL or SQLite file (default $PAYTOKEN_DB or sqlite:///paytoken.db)")
    p.add_argument("--master-key-file", type=argtypes.in_file, default=None, metavar="FILE",
                   help="file holding the master key (default $PAYTOKEN_MASTER_KEY)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_batch_create)
