"""Backend sub-commands: db, scheme, token, merchant, account, serve, pay.

Every command takes ``--db URL`` (default ``$PAYTOKEN_DB`` or ``sqlite:///paytoken.db``);
commands that touch secrets need the master key (``$PAYTOKEN_MASTER_KEY`` or
``--master-key-file``). Data output has ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

from paytoken.commands import argtypes
from paytoken.errors import CommandError


def _common(p: argparse.ArgumentParser, key: bool = False, as_json: bool = True) -> None:
    p.add_argument("--db", type=argtypes.db_url, default=None, metavar="URL",
                   help="database URL or SQLite file (default $PAYTOKEN_DB or sqlite:///paytoken.db)")
    if key:
        p.add_argument("--master-key-file", type=argtypes.in_file, default=None, metavar="FILE",
                       help="file holding the 64-hex-digit master key (default $PAYTOKEN_MASTER_KEY)")
    if as_json:
        p.add_argument("--json", action="store_true", help="print JSON")


def _url(args) -> str:
    from paytoken.backend.store.db import DEFAULT_URL

    url = args.db or os.environ.get("PAYTOKEN_DB") or DEFAULT_URL
    if not args.db:  # $PAYTOKEN_DB gets the checks --db got from argparse
        try:
            argtypes.db_url(url)
        except argparse.ArgumentTypeError as exc:
            raise CommandError(f"$PAYTOKEN_DB: {exc}") from None
    return url


def _shown_url(url: str) -> str:
    # The URL as an error may show it: the password masked.
    from sqlalchemy.engine import make_url

    from paytoken.backend.store.db import normalize_url

    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by make_engine
        return "the database"


def _check_sqlite_file(url: str, create: bool) -> None:
    """A missing file is never created by a mistyped --db (only ``db init`` creates one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from paytoken.backend.store.db import normalize_url

    try:
        u = make_url(normalize_url(url))
    except (ArgumentError, ValueError):
        raise CommandError("database URL is not valid") from None
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return
    path = Path(u.database)
    if path.is_dir():
        raise CommandError(f"--db {path} is a folder, not an SQLite database file")
    if path.exists():
        return
    if not create:
        raise CommandError(f"no database at {path}: check --db, or create it with "
                           f"`paytoken db init --db {path}`")
    if not path.parent.is_dir():
        raise CommandError(f"--db {path}: folder {path.parent} does not exist")


@contextlib.contextmanager
def _db_errors(url: str) -> Iterator[None]:
    """Database and driver failures, as one line naming the database (password masked)."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from paytoken.backend import BackendError

    try:
        yield
    except BackendError as exc:
        raise CommandError(str(exc)) from None
    except DBAPIError as exc:
        reason = " ".join(str(exc.orig or exc.__class__.__name__).split())[:300]
        if "file is not a database" in reason:
            reason = "the file is not an SQLite database"
        raise CommandError(f"database {_shown_url(url)}: {reason}") from None
    except SQLAlchemyError as exc:
        raise CommandError(f"database {_shown_url(url)}: {exc.__class__.__name__}") from None


def _backend(args, key: bool = False):
    from paytoken.backend.crypto import Keyring
    from paytoken.backend.service import Backend

    url = _url(args)
    _check_sqlite_file(url, create=False)
    with _db_errors(url):
        ring = Keyring.load(getattr(args, "master_key_file", None)) if key else None
        return Backend.open(url, ring)


def _run(fn, *a, **kw):
    # fn is a Backend method: its engine's URL names the database (str() masks a password).
    engine = getattr(getattr(fn, "__self__", None), "engine", None)
    with _db_errors(str(getattr(engine, "url", ""))):
        return fn(*a, **kw)


def _out(args, data, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if getattr(args, "json", False) else text)


def _int(text: str) -> int:
    # Only plain ASCII decimal integers (int() would also take '١٢٣' and '1_000').
    t = text.strip()
    body = t[1:] if t[:1] == "-" else t
    if not body or not body.isascii() or not body.isdigit():
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    return int(t)


def _prefix(args) -> str:
    if args.prefix:
        return args.prefix
    v = args.version
    return v if len(v) == 2 else "8" + v


# ---- db ----------------------------------------------------------------------------------


def do_db_init(args) -> None:
    from alembic.util.exc import CommandError as AlembicError

    from paytoken.backend.service import Backend
    from paytoken.backend.store.db import make_engine, migrate

    url = _url(args)
    _check_sqlite_file(url, create=True)
    try:
        with _db_errors(url):
            engine = make_engine(url)
            head = migrate(engine)
            backend = Backend(engine)
            admin_key = backend.add_admin("admin") if backend.count_admins() == 0 else None
    except AlembicError as exc:
        raise CommandError(f"database {_shown_url(url)}: {' '.join(str(exc).split())}") from None
    data = {"schema": head, "admin_key": admin_key}
    text = f"database ready at schema {head}"
    if admin_key:
        text += f"\nadmin key (shown once, keep it safe): {admin_key}"
    _out(args, data, text)


def do_db_add_admin(args) -> None:
    key = _run(_backend(args).add_admin, args.name)
    _out(args, {"name": args.name, "admin_key": key}, f"admin key for {args.name} (shown once): {key}")


def do_db_new_master_key(args) -> None:
    path = Path(args.file)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} exists; refusing to overwrite a master key") from None
    except OSError as exc:
        raise CommandError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_bytes(32).hex() + "\n")
    _out(args, {"file": str(path)}, f"wrote a new master key to {path} (mode 0600)")


def do_db_rotate(args) -> None:
    from paytoken.backend import BackendError
    from paytoken.backend.crypto import parse_master_keys

    backend = _backend(args, key=True)
    try:
        new = parse_master_keys(Path(args.new_key_file).read_text(encoding="ascii"))[0]
    except OSError as exc:
        raise CommandError(f"cannot read {args.new_key_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{args.new_key_file} is not a master key file (not ASCII)") from None
    except BackendError as exc:
        raise CommandError(str(exc)) from None
    ring = backend.keyring.promote(new)
    n = _run(backend.rotate_master_key, ring)
    _out(args, {"rewrapped": n, "kek_id": ring.current_id},
         f"re-wrapped {n} secrets under master key {ring.current_id}; "
         "servers may now drop the old key")


def do_db_audit(args) -> None:
    rep = _run(_backend(args).verify_audit)
    _out(args, {"ok": rep.ok, "rows": rep.rows, "problems": rep.problems},
         f"audit chain {'intact' if rep.ok else 'BROKEN'}: {rep.rows} rows"
         + "".join(f"\n  {p}" for p in rep.problems))
    if not rep.ok:
        raise CommandError("audit chain verification failed")


# ---- scheme, token, merchant, account -------------------------------------------------------


def do_scheme_add(args) -> None:
    key = None
    if args.key:
        try:
            key = bytes.fromhex(args.key)
        except ValueError:
            raise CommandError("--key must be 32 hex digits") from None
    backend = _backend(args, key=True)
    key = _run(backend.add_scheme, args.prefix, key, args.limit_per_payment, args.limit_per_day, args.currency,
               online=args.online, fmt=args.format)
    data = dict(_run(backend.scheme_defaults, args.prefix), prefix=args.prefix, online=args.online)
    if args.online:
        text = (f"online scheme {args.prefix} stored (key encrypted at rest): the issuer makes its codes "
                "for wallets (docs/WALLET.md)")
    else:
        data["format"] = args.format
        text = (f"scheme {args.prefix} (code format {args.format}) stored (key encrypted at rest); new tokens "
                f"get {data['limit_per_payment']} per payment, {data['limit_per_day']} a day, {data['currency']}")
    if args.show_key:
        data["key"] = key.hex()
        text += f"\nscheme key: {key.hex()}"
    _out(args, data, text)


def do_token_add(args) -> None:
    from paytoken import otpauth
    from paytoken.commands.code import read_secret_text

    text = read_secret_text(args.secret)
    try:
        otpauth.parse_secret(text)
    except ValueError as exc:
        raise CommandError(f"--secret: {exc}") from None
    sync = None
    if args.sync_key:
        try:
            sync = bytes.fromhex(args.sync_key)
        except ValueError:
            raise CommandError("--sync-key must be hex") from None
    backend = _backend(args, key=True)
    fmt = _run(backend.scheme_format, _prefix(args)) or 1  # an unknown prefix: add_token says so
    try:
        secret = otpauth.payment_secret(text, fmt)  # a URI must ask for the scheme's TOTP
    except ValueError as exc:
        raise CommandError(f"--secret: {exc}") from None
    _run(backend.add_token, args.id, secret, _prefix(args), sync, args.currency,
         args.limit_per_payment, args.limit_per_day)
    info = _run(backend.token_info, args.id)
    _out(args, info, f"token {args.id} active (prefix {info['prefix']})")


def _fmt_token(t: dict) -> str:
    return (f"{t['token_id']:>8}  {t['status']:<8} prefix {t['prefix'] or '--'}  "
            f"drift {t['drift_steps']:+d} steps  balance {t['balance']} {t['currency'] or ''}  "
            f"last used {t['last_used_at'] or 'never'}  failures {t['failures']}")


def do_token_show(args) -> None:
    t = _run(_backend(args).token_info, args.id)
    _out(args, t, "\n".join(f"{k}: {v}" for k, v in t.items()))


def do_token_revoke(args) -> None:
    t = _run(_backend(args).set_status, args.id, "lost" if args.lost else "revoked", "cli")
    _out(args, t, f"token {args.id} {t['status']}")



def do_token_set(args) -> None:
    changes = {k: getattr(args, k) for k in ("limit_per_payment", "limit_per_day", "currency")
               if getattr(args, k) is not _UNSET}
    if not changes:
        raise CommandError("nothing to change: give --limit-per-payment, --limit-per-day or --currency")
    t = _run(_backend(args).set_token, args.id, "cli", **changes)
    _out(args, t, f"token {args.id}: {t['limit_per_payment']} per payment, {t['limit_per_day']} a day, "
                  f"{t['currency']}")


_UNSET = object()


def do_token_unlock(args) -> None:
    t = _run(_backend(args).unlock, args.id, "cli")
    _out(args, t, f"token {args.id} {t['status']}")


def do_account_wallet_key(args) -> None:
    backend = _backend(args)
    if args.revoke:
        n = _run(backend.revoke_wallet_key, args.token_id, "cli")
        _out(args, {"token_id": args.token_id, "codes_revoked": n},
             f"token {args.token_id}: wallet key revoked, {n} outstanding online codes with it")
        return
    key = _run(backend.issue_wallet_key, args.token_id, "cli")
    _out(args, {"wallet_key": key}, f"wallet key for token {args.token_id} (shown once; it replaces "
                                    f"any earlier one): {key}")


def do_merchant_add(args) -> None:
    mid, key = _run(_backend(args).add_merchant, args.name)
    _out(args, {"merchant_id": mid, "api_key": key},
         f"merchant {args.name} (id {mid}); API key, shown once: {key}")


# ---- serve, pay -------------------------------------------------------------------------------


def _check_listen(host: str, port: int) -> None:
    # A one-line error for a port in use or a host that is not ours, before uvicorn starts.
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise CommandError(f"--host {host}: cannot resolve it to an address") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def do_serve(args) -> None:
    import uvicorn

    from paytoken.backend.api.app import ENV_DB, ENV_WINDOW
    from paytoken.backend.crypto import ENV_MASTER_KEY_FILE

    if args.workers is None:
        from paytoken.backend.store.db import normalize_url

        args.workers = 1 if normalize_url(_url(args)).startswith("sqlite") else 2
    _backend(args, key=True)  # fail here, clearly, on a missing key or schema
    _check_listen(args.host, args.port)
    os.environ[ENV_DB] = _url(args)
    os.environ[ENV_WINDOW] = str(args.window)
    if args.master_key_file:
        os.environ[ENV_MASTER_KEY_FILE] = str(Path(args.master_key_file).resolve())
    uvicorn.run("paytoken.backend.api.app:create_app_from_env", factory=True, host=args.host,
                port=args.port, workers=args.workers, log_level=args.log_level)


def do_pay(args) -> None:
    import httpx

    key = args.api_key or os.environ.get("PAYTOKEN_API_KEY")
    if not key:
        raise CommandError("a merchant API key is needed: --api-key or $PAYTOKEN_API_KEY")
    try:
        key = argtypes.secret_key(key)
    except argparse.ArgumentTypeError as exc:
        raise CommandError(f"$PAYTOKEN_API_KEY: {exc}") from None
    # One order id per invocation, reused by every retry: a retry after a timeout gets the
    # first attempt's answer (the payment is idempotent per order id), never a replay refusal.
    order = args.order_id or "cli-" + secrets.token_hex(8)
    if not args.order_id:
        print(f"paytoken: order id {order}", file=sys.stderr)
    body = {"code": args.code, "amount": args.amount, "currency": args.currency, "merchant_order_id": order}
    for attempt in range(max(0, args.retries) + 1):
        try:
            r = httpx.post(args.url.rstrip("/") + "/v1/payments", json=body,
                           headers={"Authorization": f"Bearer {key}"}, timeout=args.timeout)
        except httpx.HTTPError as exc:
            if attempt < args.retries:
                print(f"paytoken: {exc.__class__.__name__}; retrying order {order}", file=sys.stderr)
                continue
            raise CommandError(f"cannot reach {args.url}: {exc.__class__.__name__} "
                               f"(retry with --order-id {order})") from None
        if r.status_code < 500 or attempt == args.retries:
            break
        print(f"paytoken: server answered {r.status_code}; retrying order {order}", file=sys.stderr)
    try:
        data = r.json()
    except ValueError:
        raise CommandError(f"server answered {r.status_code} without JSON") from None
    if r.status_code != 200:
        raise CommandError(f"server refused the request ({r.status_code}): {data.get('detail')}")
    data["merchant_order_id"] = order
    if data["status"] == "succeeded":
        text = f"PAID {data['amount']} {data['currency']} from token {data['token_id']} ({data['payment_id']})"
    else:
        text = f"REFUSED {data['reason']} (order {order})"
    _out(args, data, text)
    if data["status"] != "succeeded":
        sys.exit(2)


def register(sub: argparse._SubParsersAction) -> None:
    """Add db, scheme, token, merchant, account, serve and pay."""
    name = argtypes.text(100, what="the name")
    db = sub.add_parser("db", help="database: init (migrations), admins, master key, audit")
    dbs = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = dbs.add_parser("init", help="create or migrate the schema; prints a first admin key once")
    _common(p)
    p.set_defaults(func=do_db_init)
    p = dbs.add_parser("add-admin", help="create another admin key (printed once)")
    p.add_argument("name", type=name, help="who the key is for")
    _common(p)
    p.set_defaults(func=do_db_add_admin)
    p = dbs.add_parser("new-master-key", help="write a random master key file (mode 0600)")
    p.add_argument("file", type=argtypes.out_file, help="the new file (never overwritten)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_db_new_master_key)
    p = dbs.add_parser("rotate-master-key", help="re-wrap every secret under a new master key")
    p.add_argument("--new-key-file", type=argtypes.in_file, required=True, metavar="FILE",
                   help="the new master key (from `paytoken db new-master-key`)")
    _common(p, key=True)
    p.set_defaults(func=do_db_rotate)
    p = dbs.add_parser("audit-verify", help="check the audit log's hash chain")
    _common(p)
    p.set_defaults(func=do_db_audit)

    sc = sub.add_parser("scheme", help="scheme keys, one per code prefix")
    scs = sc.add_subparsers(dest="scheme_command", metavar="ACTION", required=True)
    p = scs.add_parser("add", help="store a scheme key (generated unless --key)")
    p.add_argument("--prefix", type=argtypes.prefix, required=True,
                   help="two digits: scheme digit + version, e.g. 81")
    p.add_argument("--key", help="16-byte key in hex (default: generate one)")
    p.add_argument("--show-key", action="store_true", help="print the key (it is secret)")
    p.add_argument("--limit-per-payment", type=argtypes.amount, default=None, metavar="MINOR",
                   help="default for the scheme's new tokens (default: the issuer's, 50000)")
    p.add_argument("--limit-per-day", type=argtypes.amount, default=None, metavar="MINOR",
                   help="default for the scheme's new tokens (default: the issuer's, 200000)")
    p.add_argument("--currency", type=argtypes.currency, default=None,
                   help="default account currency of new tokens (default CNY)")
    p.add_argument("--online", action="store_true",
                   help="an online scheme: the issuer makes its codes for wallets (docs/WALLET.md); "
                        "its key never leaves the issuer and no token is activated under it")
    p.add_argument("--format", type=argtypes.code_format, default=1, metavar="N",
                   help="the code format of the scheme's tokens: 1 (TOTP HMAC-SHA1) or 2 (HMAC-SHA256); "
                   "default 1 (docs/FORMAT.md)")
    _common(p, key=True)
    p.set_defaults(func=do_scheme_add)

    tk = sub.add_parser("token", help="tokens: add, list, show, revoke, unlock, import")
    tks = tk.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    p = tks.add_parser("add", help="register an active token (imports and tests)")
    p.add_argument("--id", type=argtypes.token_id, required=True, help="the token id, up to 8 digits")
    p.add_argument("--secret", required=True,
                   help="base32 secret or otpauth:// URI; '-' reads it from stdin (keeps it out of ps)")
    p.add_argument("--version", default="1", help="format/key version digit (prefix 8V), or a prefix")
    p.add_argument("--prefix", type=argtypes.prefix, default=None,
                   help="the two-digit prefix (overrides --version)")
    p.add_argument("--sync-key", default=None, help="hex (default: generated)")
    p.add_argument("--currency", type=argtypes.currency, default=None,
                   help="the account's ISO 4217 currency (default: the scheme's)")
    p.add_argument("--limit-per-payment", type=argtypes.amount, default=None, metavar="MINOR",
                   help="largest single payment, minor units (default: the scheme's)")
    p.add_argument("--limit-per-day", type=argtypes.amount, default=None, metavar="MINOR",
                   help="most paid in a UTC day, minor units (default: the scheme's)")
    _common(p, key=True)
    p.set_defaults(func=do_token_add)
    p = tks.add_parser("set", help="change a token's limits and currency (admin)")
    p.add_argument("id", type=argtypes.token_id, help="the token id")
    p.add_argument("--limit-per-payment", type=argtypes.amount_or_none, default=_UNSET, metavar="N",
                   help="minor units, or 'none' for no limit")
    p.add_argument("--limit-per-day", type=argtypes.amount_or_none, default=_UNSET, metavar="N",
                   help="minor units, or 'none' for no limit")
    p.add_argument("--currency", type=argtypes.currency, default=_UNSET, metavar="C", help="ISO 4217; only while the balance is 0")
    _common(p)
    p.set_defaults(func=do_token_set)
    for cmd, fn, hlp in (("show", do_token_show, "status, drift, last use"),
                         ("revoke", do_token_revoke, "revoke a token for good"),
                         ("unlock", do_token_unlock, "unlock a token locked by failures")):
        p = tks.add_parser(cmd, help=hlp)
        p.add_argument("id", type=argtypes.token_id, help="the token id")
        if cmd == "revoke":
            p.add_argument("--lost", action="store_true", help="mark it lost instead of revoked")
        _common(p)
        p.set_defaults(func=fn)
    from paytoken.commands.pskc import register_token_import

    register_token_import(tks)

    mc = sub.add_parser("merchant", help="merchants and their API keys")
    mcs = mc.add_subparsers(dest="merchant_command", metavar="ACTION", required=True)
    p = mcs.add_parser("add", help="create a merchant; prints its API key once")
    p.add_argument("name", type=name, help="the merchant's name")
    _common(p)
    p.set_defaults(func=do_merchant_add)

    ac = sub.add_parser("account", help="token accounts")
    acs = ac.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    p = acs.add_parser("wallet-key", help="issue the token holder's wallet key (printed once; "
                                          "replaces the old one) or --revoke it")
    p.add_argument("--token-id", type=argtypes.token_id, required=True, help="the token id")
    p.add_argument("--revoke", action="store_true",
                   help="remove the wallet key instead; its outstanding online codes die with it")
    _common(p)
    p.set_defaults(func=do_account_wallet_key)

    # merchant/scheme/token/account list and lifecycle, admin, payment, refund: commands/operators.py
    from paytoken.commands import operators

    operators.register(sub, {"merchant": mcs, "scheme": scs, "token": tks, "account": acs})

    p = sub.add_parser("serve", help="run the payments HTTP API (uvicorn)")
    p.add_argument("--host", type=argtypes.host, default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=argtypes.tcp_port, default=8080, help="TCP port, 1 to 65535")
    p.add_argument("--workers", type=argtypes.integer(1, 64, "a number of workers"), default=None,
                   help="server processes, 1 to 64 (default: 1 on SQLite, whose single writer they "
                        "would contend for; 2 on PostgreSQL)")
    p.add_argument("--window", type=argtypes.integer(1, 4, "a number of steps"), default=1,
                   help="steps accepted either side, 1 to 4")
    p.add_argument("--log-level", choices=argtypes.LOG_LEVELS, default="info",
                   help="uvicorn's log level")
    _common(p, key=True, as_json=False)
    p.set_defaults(func=do_serve)

    p = sub.add_parser("pay", help="merchant client: pay with a code")
    p.add_argument("code", type=argtypes.text(64, ascii_only=True, what="the code"),
                   help="the 18-digit payment code the customer shows")
    p.add_argument("--amount", type=argtypes.amount, required=True, metavar="MINOR",
                   help="minor units (1250 = 12.50)")
    p.add_argument("--currency", type=argtypes.currency, default="CNY", help="ISO 4217 currency")
    p.add_argument("--order-id", type=argtypes.text(64, ascii_only=True, what="the order id"),
                   default=None, help="your order id: a retry with it is answered, not paid twice "
                   "(default: a random one)")
    p.add_argument("--url", type=argtypes.http_url,
                   default=os.environ.get("PAYTOKEN_URL", "http://127.0.0.1:8080"),
                   help="the issuer's base URL (default $PAYTOKEN_URL or http://127.0.0.1:8080)")
    p.add_argument("--api-key", type=argtypes.secret_key, default=None,
                   help="the merchant API key (default $PAYTOKEN_API_KEY)")
    p.add_argument("--timeout", type=argtypes.seconds, default=10.0, help="seconds to wait for the answer")
    p.add_argument("--retries", type=argtypes.integer(0, 10, "a number of retries"), default=2,
                   help="retries after a timeout or a 5xx, with the same order id, 0 to 10")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_pay)
