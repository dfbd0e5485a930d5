"""The ``code`` and ``decode`` sub-commands: TOTPs and 18-digit payment codes.

``paytoken code SECRET [--at UNIX|ISO-8601] [--digits N] [--period S] [--json]``
prints the TOTP; with ``--payment --token-id N --scheme-key HEX [--prefix PV]`` it
prints the payment code. ``paytoken decode CODE --scheme-key HEX [--json]`` prints
the fields inside a code. Times are UTC: an ISO-8601 time must carry ``Z`` or an
offset, so the host's time zone never changes a result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time

import paycode

from paytoken import otpauth
from paytoken.commands import argtypes
from paytoken.errors import CommandError

_ISO_OFFSET = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)


def now_utc() -> int:
    """The host clock as UTC seconds: the one place these commands read it."""
    return int(time.time())


def parse_time(text: str | None) -> int:
    """``--at``: Unix seconds, or ISO-8601 with ``Z`` or an offset; ``None`` is now."""
    if text is None:
        return now_utc()
    s = text.strip()
    if re.fullmatch(r"[0-9]+", s):
        if len(s) > 12 or int(s) > argtypes.MAX_UTC:
            raise CommandError(f"--at {s[:20]}: after 9999-12-31T23:59:59Z, which is the latest supported")
        return int(s)
    if re.fullmatch(r"-[0-9]+", s):
        raise CommandError(f"--at {s}: time before 1970 is not supported")
    if not _ISO_OFFSET.search(s):
        raise CommandError(
            f"--at {s!r}: an ISO-8601 time needs a UTC offset (Z or +hh:mm); "
            "local time is never assumed"
        )
    try:
        when = dt.datetime.fromisoformat(s[:-1] + "+00:00" if s[-1] in "zZ" else s)
    except ValueError:
        raise CommandError(f"--at {s[:40]!r}: not Unix seconds or an ISO-8601 time") from None
    if when.tzinfo is None:  # e.g. a date only: fromisoformat dropped the offset
        raise CommandError(f"--at {s!r}: an ISO-8601 time needs a UTC offset (Z or +hh:mm)")
    try:
        t = int(when.timestamp())
    except (OverflowError, ValueError):
        raise CommandError(f"--at {s!r}: outside the years 1970 to 9999") from None
    if t < 0:
        raise CommandError(f"--at {s}: time before 1970 is not supported")
    if t > argtypes.MAX_UTC:
        raise CommandError(f"--at {s}: after 9999-12-31T23:59:59Z, which is the latest supported")
    return t


def iso(t: int) -> str:
    """UTC seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (through paycode's own calendar)."""
    try:
        y, mo, d, h, mi, s = paycode.civil_from_unix(t)
    except ValueError:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, mo, d, h, mi, s)


def read_secret_text(text: str) -> str:
    """``text``, or for ``-`` the first line of stdin (so a secret stays out of ``ps``)."""
    if text != "-":
        return text
    try:
        line = sys.stdin.readline()
    except (OSError, UnicodeDecodeError, ValueError):
        raise CommandError("cannot read the secret from stdin") from None
    if not line.strip():
        raise CommandError("no secret on stdin (give it on the first line)")
    return line


def read_otp(text: str) -> otpauth.OtpParams:
    """A base32 secret or otpauth URI with its parameters; ``-`` reads it from stdin."""
    try:
        return otpauth.parse_secret(read_secret_text(text))
    except ValueError as exc:
        # The messages name positions, lengths and parameters, never the secret itself.
        raise CommandError(f"bad secret: {exc}") from None


def read_secret(text: str) -> bytes:
    """The secret alone (base32 or otpauth URI); ``-`` reads it from stdin."""
    return read_otp(text).secret


def read_scheme_key(text: str) -> bytes:
    """The 16-byte scheme key as 32 hex digits (never echoed in an error)."""
    s = text.strip()
    if len(s) != 32 or not re.fullmatch(r"[0-9a-fA-F]*", s):
        raise CommandError(
            f"--scheme-key must be 32 hex digits (16 bytes), got {len(s)} characters"
        )
    return bytes.fromhex(s)


def _emit(args: argparse.Namespace, data: dict, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else text)


def do_code(args: argparse.Namespace) -> int:
    """``paytoken code``: a TOTP, or with ``--payment`` an 18-digit payment code."""
    otp_params = read_otp(args.secret)
    secret = otp_params.secret
    t = parse_time(args.at)
    if args.payment:
        fmt = args.format
        alg = paycode.format_hash(fmt)
        fixed = f"format {fmt} fixes {alg.upper().replace('SHA', 'SHA-')}, {paycode.DIGITS} digits and {paycode.PERIOD} s"
        if otp_params.from_uri and (otp_params.digits, otp_params.period, otp_params.algorithm) != (
                paycode.DIGITS, paycode.PERIOD, alg):
            raise CommandError(
                f"the secret's otpauth URI asks for other TOTP parameters than --payment's: {fixed}")
        if args.digits is not None or args.period is not None or args.algorithm is not None:
            raise CommandError(f"--digits, --period and --algorithm do not apply to --payment: {fixed}")
        if args.token_id is None or args.scheme_key is None:
            raise CommandError("--payment needs --token-id and --scheme-key")
        key = read_scheme_key(args.scheme_key)
        try:
            code = paycode.payment_code(secret, args.token_id, t, key, args.prefix, fmt)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        data = {
            "code": code,
            "grouped": paycode.group4(code),
            "prefix": args.prefix,
            "token_id": args.token_id,
            "at": t,
            "at_iso": iso(t),
            "step": t // paycode.PERIOD,
            "valid_for": paycode.PERIOD - t % paycode.PERIOD,
            "format": fmt,
        }
        _emit(args, data, code)
        return 0
    if args.token_id is not None or args.scheme_key is not None or args.prefix != "81" or args.format != 1:
        raise CommandError("--token-id, --scheme-key, --prefix and --format need --payment")
    digits, period, algorithm = otp_params.digits, otp_params.period, otp_params.algorithm
    for name, given, own in (("digits", args.digits, digits), ("period", args.period, period),
                             ("algorithm", args.algorithm, algorithm)):
        if given is not None and otp_params.from_uri and given != own:
            raise CommandError(f"--{name} {given} contradicts the otpauth URI's {name}={own}")
    digits = digits if args.digits is None else args.digits
    period = period if args.period is None else args.period
    algorithm = algorithm if args.algorithm is None else args.algorithm
    try:
        otp = paycode.totp(secret, t, period, digits, algorithm)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    data = {
        "totp": otp,
        "at": t,
        "at_iso": iso(t),
        "digits": digits,
        "period": period,
        "algorithm": algorithm,
        "step": t // period,
        "valid_for": period - t % period,
    }
    _emit(args, data, otp)
    return 0


def do_decode(args: argparse.Namespace) -> int:
    """``paytoken decode``: the prefix, token id, step residue and OTP inside a code."""
    key = read_scheme_key(args.scheme_key)
    try:
        prefix, token_id, residue, otp = paycode.parse_code(args.code, key)
    except ValueError as exc:
        raise CommandError(f"bad payment code: {exc}") from None
    data = {
        "prefix": prefix,
        "token_id": token_id,
        "step_residue": residue,
        "otp": otp,
    }
    text = "\n".join(
        [
            f"prefix        {prefix}",
            f"token id      {token_id:08d}",
            f"step residue  {residue}",
            f"otp           {otp}",
        ]
    )
    if args.at is not None:
        t = parse_time(args.at)
        step = paycode.resolve_step(residue, t)
        data["at"] = t
        data["step"] = step if step >= 0 else None
        text += (
            f"\nstep          {step} ({iso(step * paycode.PERIOD)})"
            if step >= 0
            else (f"\nstep          none within ±{paycode.WINDOW} steps of {iso(t)}")
        )
    _emit(args, data, text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``code`` and ``decode``."""
    p = sub.add_parser("code", help="print a TOTP, or with --payment an 18-digit payment code")
    p.add_argument(
        "secret", metavar="SECRET", help="base32 secret or otpauth:// URI ('-' reads it from stdin)"
    )
    p.add_argument(
        "--at",
        metavar="UNIX|ISO-8601",
        help="UTC time: Unix seconds or ISO-8601 with Z/offset (default now)",
    )
    p.add_argument("--digits", type=argtypes.integer(6, 10, "a digit count"), metavar="N",
                   help="TOTP digits, 6 to 10 (default 6, or the otpauth URI's)")
    p.add_argument("--period", type=argtypes.integer(1, otpauth.MAX_PERIOD, "a period in seconds"),
                   metavar="S", help=f"TOTP step in seconds (default {paycode.PERIOD}, or the otpauth URI's)")
    p.add_argument(
        "--algorithm",
        choices=otpauth.ALGORITHMS,
        default=None,
        help="TOTP HMAC hash (default sha1, or the otpauth URI's)",
    )
    p.add_argument("--payment", action="store_true", help="print the 18-digit payment code")
    p.add_argument("--token-id", type=argtypes.token_id, metavar="N", help="token id, up to 8 digits")
    p.add_argument("--scheme-key", metavar="HEX", help="the version's 16-byte scheme key, hex")
    p.add_argument(
        "--prefix", type=argtypes.prefix, default="81", metavar="PV",
        help="scheme and version digits (default 81)",
    )
    p.add_argument("--format", type=argtypes.code_format, default=1, metavar="N",
                   help="the code format, the scheme's: 1 (TOTP HMAC-SHA1) or 2 (HMAC-SHA256); default 1")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_code)

    p = sub.add_parser("decode", help="print the fields inside an 18-digit payment code")
    p.add_argument("code", metavar="CODE", help="the 18 digits (spaces allowed)")
    p.add_argument("--scheme-key", required=True, metavar="HEX", help="the 16-byte scheme key, hex")
    p.add_argument(
        "--at",
        metavar="UNIX|ISO-8601",
        help="also place the code in time: the step within ±4 of this UTC time",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=do_decode)
