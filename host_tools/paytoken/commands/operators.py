"""Operators' sub-commands: merchants, admins, schemes, token listings, accounts,
payments, refunds and the daily export (docs/OPERATOR.md).

They join the ``merchant``, ``scheme``, ``token`` and ``account`` groups of
``commands/backend.py`` and add ``admin``, ``payment`` and ``refund``. Each calls one
function of ``paytoken.backend.service.operators``, as the admin API does. Lists print one page
(``--limit``, default 100) and say on stderr how to get the next (``--after``) when more
remain; ``--all`` walks every page. Keys are printed only when created or rotated.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from paytoken.commands import argtypes
from paytoken.commands.backend import _backend, _common, _out, _run
from paytoken.errors import CommandError

ACTOR = "cli"


def _ops():
    from paytoken.backend.service import operators

    return operators


def _ledger():
    from paytoken.backend.service import ledger

    return ledger


# Validators (the CLI fuzz, tests/core/test_cli_fuzz.py, probes each by its type).
_NAME = argtypes.text(100, what="the name")
_TEXT = argtypes.text(255, ascii_only=True, what="the value")
_TIME = argtypes.text(40, ascii_only=True, what="a time")


def _time(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    return _run(_ops().utc_seconds, text, what)


def _page_args(p: argparse.ArgumentParser, cursor: str = "CURSOR") -> None:
    p.add_argument("--limit", type=argtypes.integer(1, 1000, "a page size"), default=None, metavar="N", help="items per page (1-1000, default 100)")
    p.add_argument("--after", type=_TEXT, default=None, metavar=cursor, help="start after this (the cursor a page printed)")
    p.add_argument("--all", action="store_true", help="every page, not only the first")


def _time_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=_TIME, default=None, metavar="T", help="from T (UTC seconds or ISO-8601 with Z/offset)")
    p.add_argument("--until", type=_TIME, default=None, metavar="T", help="before T (exclusive)")


def _pages(args, fetch) -> list[dict]:
    """One page, or every page with --all; says on stderr when more remain."""
    after, items = args.after, []
    while True:
        page = _run(fetch, after)
        items.extend(page.items)
        if page.next is None:
            return items
        if not args.all:
            print(f"more remain: repeat with --after {page.next}", file=sys.stderr)
            return items
        after = page.next


def _lines(rows: list[dict], fmt, empty: str) -> str:
    return "\n".join(fmt(r) for r in rows) or empty


# ---- merchants ------------------------------------------------------------------------------


def do_merchant_list(args) -> None:
    rows = _run(_ops().list_merchants, _backend(args), not args.active)
    _out(args, rows, _lines(rows, lambda m: f"{m['merchant_id']:>6}  {m['status']:<8} {m['name']}", "no merchants"))


def do_merchant_revoke(args) -> None:
    m = _run(_ops().revoke_merchant, _backend(args), args.name, ACTOR)
    _out(args, m, f"merchant {m['name']} revoked: its key no longer works")


def do_merchant_rotate_key(args) -> None:
    m = _run(_ops().rotate_merchant_key, _backend(args), args.name, ACTOR)
    _out(args, m, f"merchant {m['name']}: new API key, shown once: {m['api_key']}\nthe old key no longer works")


# ---- admins ---------------------------------------------------------------------------------


def do_admin_add(args) -> None:
    a = _run(_ops().add_admin, _backend(args), args.name, ACTOR)
    _out(args, a, f"admin key for {a['name']} (shown once): {a['admin_key']}")


def do_admin_list(args) -> None:
    rows = _run(_ops().list_admins, _backend(args))
    _out(args, rows, _lines(rows, lambda a: f"{a['admin_id']:>6}  {a['name']}", "no admins"))


def do_admin_remove(args) -> None:
    a = _run(_ops().remove_admin, _backend(args), args.name, ACTOR)
    _out(args, a, f"admin {a['name']} removed ({a['admins_left']} left)")


# ---- schemes --------------------------------------------------------------------------------


def do_scheme_list(args) -> None:
    rows = _run(_ops().list_schemes, _backend(args))
    _out(args, rows, _lines(rows, lambda s: f"{s['prefix']}  format {s['format']}  {s['status']:<8} tokens "
                            + " ".join(f"{k}={v}" for k, v in s["tokens"].items() if v), "no schemes"))


def do_scheme_retire(args) -> None:
    s = _run(_ops().retire_scheme, _backend(args), args.prefix, ACTOR, args.close)
    if args.close:
        _out(args, s, f"scheme {s['prefix']} closed: its codes are refused (unknown prefix)")
        return
    _out(args, s, f"scheme {s['prefix']} retired: no new tokens under it; its "
                  f"{s['tokens']['active']} active tokens keep paying until moved (update --prefix) "
                  "or replaced")


# ---- tokens ---------------------------------------------------------------------------------


def do_token_list(args) -> None:
    from paytoken.commands.backend import _fmt_token

    backend = _backend(args)
    if args.after is not None and not (args.after.isascii() and args.after.isdigit()):
        raise CommandError("--after must be a token id (the one a page printed)")
    rows = _pages(args, lambda after: _ops().list_tokens(
        backend, status=args.status, prefix=args.prefix, currency=args.currency,
        after=None if after is None else int(after), limit=args.limit))
    _out(args, rows, _lines(rows, _fmt_token, "no tokens"))


# ---- accounts -------------------------------------------------------------------------------


def do_account_show(args) -> None:
    a = _run(_ledger().show_account, _backend(args), args.token_id)
    _out(args, a, f"token {a['token_id']} ({a['status']}): balance {a['balance']} {a['currency']}")


def _adjust(args, sign: int) -> None:
    a = _run(_ledger().adjust, _backend(args), args.token_id, sign * args.amount, args.reason, ACTOR)
    _out(args, a, f"token {a['token_id']} {a['kind']} {abs(a['amount'])}: balance {a['balance']} "
                  f"{a['currency']} ({a['adjustment_id']})")


def do_account_credit(args) -> None:
    _adjust(args, 1)


def do_account_debit(args) -> None:
    _adjust(args, -1)


def _fmt_entry(e: dict) -> str:
    ops = _ops()
    what = e.get("reason") or e.get("merchant_order_id") or e.get("payment_id") or ""
    return f"{ops.iso(e['created_at'])}  {e['kind']:<7} {e['amount']:>+12} {e['currency']}  {e['id']}  {what}"


def do_account_history(args) -> None:
    backend = _backend(args)
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    rows = _pages(args, lambda after: _ledger().history(backend, args.token_id, since, until, after, args.limit))
    _out(args, rows, _lines(rows, _fmt_entry, "no movements"))


# ---- payments and refunds ---------------------------------------------------------------------


def _fmt_payment(p: dict) -> str:
    ops = _ops()
    money = f"{p['amount']} {p['currency']}"
    extra = f" refunded {p['refunded']}" if p["refunded"] else ""
    return (f"{ops.iso(p['created_at'])}  {p['payment_id']}  {p['status']:<9} {p['reason'] or '':<18} "
            f"{money:>16}  token {p['token_id'] if p['token_id'] is not None else '-'}  "
            f"{p['merchant']} {p['merchant_order_id']}{extra}")


def do_payment_list(args) -> None:
    backend = _backend(args)
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    rows = _pages(args, lambda after: _ledger().list_payments(
        backend, merchant=args.merchant, token_id=args.token_id, since=since, until=until,
        status=args.status, after=after, limit=args.limit))
    _out(args, rows, _lines(rows, _fmt_payment, "no payments"))


def do_payment_show(args) -> None:
    p = _run(_ledger().show_payment, _backend(args), args.payment_id)
    text = _fmt_payment(p) + "".join(
        f"\n  refund {r['refund_id']} {r['amount']} {r['currency']} at {_ops().iso(r['created_at'])}"
        for r in p["refunds"])
    _out(args, p, text)


def do_payment_refund(args) -> None:
    r = _run(_ledger().refund, _backend(args), args.payment_id, args.amount, args.idempotency_key, ACTOR)
    _out(args, r, f"refund {r['refund_id']} of {r['amount']} on {r['payment_id']} "
                  f"(refunded {r['refunded']} in all)")


def do_payment_export(args) -> None:
    lines = _run(_ledger().export_day, _backend(args), args.day, args.format, args.merchant)
    if args.output is None:
        for line in _run_iter(lines):
            sys.stdout.write(line)
        return
    out = Path(args.output)
    # Temp file beside the target, renamed at the end: never half an export under its name.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or ".")
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            for line in _run_iter(lines):
                f.write(line)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"wrote {out}", file=sys.stderr)


def _run_iter(it):
    from paytoken.backend import BackendError

    try:
        yield from it
    except BackendError as exc:
        raise CommandError(str(exc)) from None


def _fmt_refund(r: dict) -> str:
    return (f"{_ops().iso(r['created_at'])}  {r['refund_id']}  {r['amount']:>12} {r['currency']}  "
            f"{r['payment_id']}  token {r['token_id']}  {r['merchant']}")


def do_refund_list(args) -> None:
    backend = _backend(args)
    since, until = _time(args.since, "--since"), _time(args.until, "--until")
    rows = _pages(args, lambda after: _ledger().list_refunds(
        backend, merchant=args.merchant, token_id=args.token_id, payment_id=args.payment_id,
        since=since, until=until, after=after, limit=args.limit))
    _out(args, rows, _lines(rows, _fmt_refund, "no refunds"))


# ---- registration ------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add to the ``merchant``, ``scheme``, ``token`` and ``account`` groups (``groups``),
    and add the ``admin``, ``payment`` and ``refund`` groups to ``sub``."""
    from paytoken.backend.store.models import STATUSES

    mcs = groups["merchant"]
    p = mcs.add_parser("list", help="merchants, active and revoked (never a key)")
    p.add_argument("--active", action="store_true", help="only merchants whose key works")
    _common(p)
    p.set_defaults(func=do_merchant_list)
    for name, fn, hlp in (("revoke", do_merchant_revoke, "revoke a merchant: its key stops working (final)"),
                          ("rotate-key", do_merchant_rotate_key, "a new API key (printed once); the old one stops")):
        p = mcs.add_parser(name, help=hlp)
        p.add_argument("name", type=_NAME, help="the merchant's name (or #ID)")
        _common(p)
        p.set_defaults(func=fn)

    ad = sub.add_parser("admin", help="admin credentials for the admin API: add, list, remove")
    ads = ad.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    p = ads.add_parser("add", help="create an admin key (printed once)")
    p.add_argument("name", type=_NAME, help="the name")
    _common(p)
    p.set_defaults(func=do_admin_add)
    p = ads.add_parser("list", help="admins (never a key)")
    _common(p)
    p.set_defaults(func=do_admin_list)
    p = ads.add_parser("remove", help="remove an admin (never the last one)")
    p.add_argument("name", type=_NAME, help="the name")
    _common(p)
    p.set_defaults(func=do_admin_remove)

    scs = groups["scheme"]
    p = scs.add_parser("list", help="scheme prefixes, their state and token counts (never a key)")
    _common(p)
    p.set_defaults(func=do_scheme_list)
    p = scs.add_parser("retire", help="no new tokens under this prefix; its tokens keep paying")
    p.add_argument("prefix", type=argtypes.prefix, help="two digits, e.g. 81")
    p.add_argument("--close", action="store_true",
                   help="the last stage, once no token uses it: refuse its codes (unknown prefix)")
    _common(p)
    p.set_defaults(func=do_scheme_retire)

    tks = groups["token"]
    p = tks.add_parser("list", help="tokens by id, filtered, a page at a time")
    p.add_argument("--status", choices=STATUSES, default=None, help="only tokens in this status")
    p.add_argument("--prefix", type=argtypes.prefix, default=None, help="two digits, e.g. 81")
    p.add_argument("--currency", type=argtypes.currency, default=None, help="the account's currency, e.g. CNY")
    _page_args(p, cursor="ID")
    _common(p)
    p.set_defaults(func=do_token_list)

    acs = groups["account"]
    p = acs.add_parser("show", help="a token's balance and currency")
    p.add_argument("--token-id", type=argtypes.token_id, required=True, help="the token id")
    _common(p)
    p.set_defaults(func=do_account_show)
    for name, fn, hlp in (("credit", do_account_credit, "add funds (minor units), with a reason"),
                          ("debit", do_account_debit, "take funds (minor units), with a reason; never below 0")):
        p = acs.add_parser(name, help=hlp)
        p.add_argument("--token-id", type=argtypes.token_id, required=True, help="the token id")
        p.add_argument("--amount", type=argtypes.amount, required=True, metavar="MINOR",
                       help="minor units (1250 = 12.50)")
        p.add_argument("--reason", type=_NAME, required=name == "debit", default="credit" if name == "credit" else None,
                       help="why, 1-200 characters: kept in the history and the audit log"
                       + (" (default: credit)" if name == "credit" else ""))
        _common(p)
        p.set_defaults(func=fn)
    p = acs.add_parser("history", help="credits, debits, payments and refunds, oldest first")
    p.add_argument("--token-id", type=argtypes.token_id, required=True, help="the token id")
    _time_args(p)
    _page_args(p)
    _common(p)
    p.set_defaults(func=do_account_history)

    pm = sub.add_parser("payment", help="payments: list, show, refund, export a day")
    pms = pm.add_subparsers(dest="payment_command", metavar="ACTION", required=True)
    p = pms.add_parser("list", help="payments oldest first, filtered, a page at a time")
    p.add_argument("--token-id", type=argtypes.token_id, default=None, help="the token id")
    p.add_argument("--merchant", type=_NAME, default=None, metavar="NAME", help="the merchant's name (or #ID)")
    _time_args(p)
    p.add_argument("--status", default=None, choices=("succeeded", "refused", "refunded"),
                   help="only payments in this status")
    _page_args(p)
    _common(p)
    p.set_defaults(func=do_payment_list)
    p = pms.add_parser("show", help="one payment with its refunds")
    p.add_argument("payment_id", type=_TEXT, help="the payment id (pay_...)")
    _common(p)
    p.set_defaults(func=do_payment_show)
    p = pms.add_parser("refund", help="refund all (default) or part of a payment")
    p.add_argument("payment_id", type=_TEXT, help="the payment id (pay_...)")
    p.add_argument("--amount", type=argtypes.amount, default=None, metavar="MINOR", help="default: all that remains")
    p.add_argument("--idempotency-key", type=_TEXT, required=True, metavar="KEY",
                   help="yours, unique per refund: a retry with the same key is the same refund")
    _common(p)
    p.set_defaults(func=do_payment_refund)
    p = pms.add_parser("export", help="one UTC day's payments and refunds, for reconciliation")
    p.add_argument("--day", type=argtypes.text(10, ascii_only=True, what="a date"), required=True, metavar="YYYY-MM-DD", help="a UTC date")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="CSV with a header row, or JSON lines")
    p.add_argument("--merchant", type=_NAME, default=None, metavar="NAME", help="only this merchant's (name or #ID)")
    p.add_argument("--output", type=argtypes.out_file, default=None, metavar="FILE", help="write here (atomically), not to stdout")
    _common(p, as_json=False)
    p.set_defaults(func=do_payment_export)

    rf = sub.add_parser("refund", help="refunds: list")
    rfs = rf.add_subparsers(dest="refund_command", metavar="ACTION", required=True)
    p = rfs.add_parser("list", help="refunds oldest first, filtered, a page at a time")
    p.add_argument("--merchant", type=_NAME, default=None, metavar="NAME", help="only this merchant's (name or #ID)")
    p.add_argument("--token-id", type=argtypes.token_id, default=None, help="the token id")
    p.add_argument("--payment-id", type=_TEXT, default=None, help="only this payment's")
    _time_args(p)
    _page_args(p)
    _common(p)
    p.set_defaults(func=do_refund_list)
