"""argparse ``type=`` functions shared by the sub-commands: bad input is refused while the
command line is parsed, with one line naming what is wrong, before anything starts or is
written.

Usage::

    p.add_argument("--timeout", type=argtypes.seconds, default=10.0)
    p.add_argument("--port", type=argtypes.tcp_port, default=8080)

Numbers are plain ASCII (``int()`` would also take ``'١٢٣'`` and ``'1_000'``) and finite
(``float()`` takes ``nan`` and ``inf``). Path types look only at what exists already (a file
where a folder is wanted, a folder that is missing); a command checks the rest when it runs.
"""

from __future__ import annotations

import math
import re
from argparse import ArgumentTypeError
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from paycode import FORMATS

from paytoken.backend import rules

# The latest time any command takes: 9999-12-31T23:59:59Z (a four-digit year).
MAX_UTC = 253_402_300_799
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HEAP = re.compile(r"([0-9]+)([KkMm]?)")
_BOARD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_HOST = re.compile(r"[A-Za-z0-9.:_-]+|\[[0-9A-Fa-f:.]+\]")


def _shown(text: str) -> str:
    # Long or odd input is shown shortened and escaped, so the message stays one line.
    return repr(text if len(text) <= 40 else text[:37] + "...")


def integer(lo: int | None = None, hi: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """A type for a plain decimal integer in ``lo..hi`` (either end open when None)."""

    def parse(text: str) -> int:
        t = text.strip()
        if not t.isascii() or not _INT.fullmatch(t):
            raise ArgumentTypeError(f"{_shown(text)} is not {what}")
        if len(t) > 30:
            raise ArgumentTypeError(f"{_shown(text)} is out of range")
        v = int(t)
        if lo is not None and v < lo or hi is not None and v > hi:
            raise ArgumentTypeError(f"{v} is out of range ({_range(lo, hi)})")
        return v

    parse.__name__ = what.replace(" ", "_")
    parse.int_bounds = (lo, hi)  # type: ignore[attr-defined]  # what tests/core/test_cli_fuzz.py probes
    return parse


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           what: str = "a number") -> Callable[[str], float]:
    """A type for a finite decimal number in ``lo..hi`` (``lo_open``: ``lo`` itself excluded)."""

    def parse(text: str) -> float:
        t = text.strip()
        if t.isascii() and t.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise ArgumentTypeError(f"{_shown(text)} is not a finite number")
        if not t.isascii() or not _FLOAT.fullmatch(t):
            raise ArgumentTypeError(f"{_shown(text)} is not {what}")
        v = float(t)
        if not math.isfinite(v):  # e.g. 1e999
            raise ArgumentTypeError(f"{_shown(text)} is not a finite number")
        if (lo is not None and (v < lo or lo_open and v == lo)) or (hi is not None and v > hi):
            raise ArgumentTypeError(f"{t} is out of range ({_range(lo, hi, lo_open)})")
        return v

    parse.__name__ = what.replace(" ", "_")
    parse.num_bounds = (lo, hi, lo_open)  # type: ignore[attr-defined]
    return parse


def _n(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo_open:
        low = f"more than {_n(lo)}"
        return low if hi is None else f"{low}, at most {_n(hi)}"
    if lo is not None and hi is not None:
        return f"{_n(lo)} to {_n(hi)}"
    return f"at least {_n(lo)}" if lo is not None else f"at most {_n(hi)}"


positive_int = integer(1, None, "a positive integer")
nonneg_int = integer(0, None, "a non-negative integer")
token_id = integer(0, rules.MAX_TOKEN_ID, "a token id (0 to 99999999)")
amount = integer(1, rules.MAX_AMOUNT, "an amount in minor units")


def amount_or_none(text: str) -> int | None:
    """A limit in minor units, or ``none`` (no limit)."""
    return None if text.strip().lower() == "none" else amount(text)


amount_or_none.int_bounds = amount.int_bounds  # type: ignore[attr-defined]
utc_seconds = integer(0, MAX_UTC, "UTC seconds")
seconds = number(0, 86400, lo_open=True, what="a number of seconds")  # timeouts
tcp_port = integer(1, 65535, "a TCP port")


def heapsize(text: str) -> str:
    """A MicroPython heap size as ``-X heapsize=`` takes it: bytes, or with K/M, 4K to 256M."""
    m = _HEAP.fullmatch(text.strip()) if text.isascii() else None
    if not m or len(m.group(1)) > 12:
        raise ArgumentTypeError(f"{_shown(text)} is not a heap size (bytes, or e.g. 96K, 2M)")
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if not 4 * 1024 <= n <= 256 * 1024 * 1024:
        raise ArgumentTypeError(f"{text.strip()} is out of range (4K to 256M)")
    return text.strip().upper()


def text(max_len: int = 100, *, ascii_only: bool = False, what: str = "text") -> Callable[[str], str]:
    """A type for a non-empty line of printable text (no control characters)."""

    def parse(value: str) -> str:
        if not value.strip():
            raise ArgumentTypeError(f"{what} must not be empty")
        if len(value) > max_len:
            raise ArgumentTypeError(f"{what} is longer than {max_len} characters")
        if ascii_only and not value.isascii():
            raise ArgumentTypeError(f"{what} must be ASCII")
        if not value.isprintable():
            raise ArgumentTypeError(f"{what} holds a control character")
        return value

    parse.__name__ = what.replace(" ", "_")
    parse.text = (max_len, ascii_only)  # type: ignore[attr-defined]
    return parse


def secret_key(value: str) -> str:
    """An API key as sent in an ``Authorization`` header: printable ASCII, never echoed."""
    if not value.strip():
        raise ArgumentTypeError("the key is empty")
    if len(value) > 200 or not value.isascii() or not value.isprintable() or " " in value.strip():
        raise ArgumentTypeError("the key must be printable ASCII without spaces, as issued")
    return value.strip()


def currency(value: str) -> str:
    """An ISO 4217 code, three capital letters."""
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ArgumentTypeError(f"{_shown(value)} is not a currency code (three capitals, e.g. CNY)")
    return value


# A payment-code format number (paycode.FORMATS: 1 or 2).
code_format = integer(1, len(FORMATS), "a code format")


def prefix(value: str) -> str:
    """A code prefix: two ASCII digits (scheme and version)."""
    if not re.fullmatch(r"[0-9]{2}", value):
        raise ArgumentTypeError(f"{_shown(value)} is not a prefix (two digits, e.g. 81)")
    return value


def http_url(value: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (and a port in range, if given)."""
    v = value.strip()
    if not v.isascii() or not v.isprintable():
        raise ArgumentTypeError(f"{_shown(value)} is not an http(s) URL (ASCII only)")
    try:
        parts = urlsplit(v)
        port = parts.port
    except ValueError:
        raise ArgumentTypeError(f"{_shown(value)} is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ArgumentTypeError(f"{_shown(value)} is not an http(s) URL (e.g. http://127.0.0.1:8080)")
    if port == 0:
        raise ArgumentTypeError(f"{_shown(value)}: port 0 is not a server's port")
    return v


def host(value: str) -> str:
    """A host name or IP address to listen on."""
    if not _HOST.fullmatch(value) or len(value) > 253:
        raise ArgumentTypeError(f"{_shown(value)} is not a host name or IP address")
    return value


def board(value: str) -> str:
    """A board name as in ``boards/<name>.py`` (a name, never a path)."""
    if not _BOARD.fullmatch(value) or len(value) > 64:
        raise ArgumentTypeError(f"{_shown(value)} is not a board name (e.g. pico, sim)")
    return value


def sim_board(value: str) -> str:
    """A board of the sim family, which virtual tokens run (``boards/<name>.py``)."""
    from paytoken.station import deploy

    name = board(value)
    try:
        found = deploy.load_board(name)
    except deploy.DeployError as e:
        raise ArgumentTypeError(str(e)) from None
    if not found.sim:
        raise ArgumentTypeError(f"{name} is not a sim board (a virtual token needs one)")
    return name


def db_url(value: str) -> str:
    """A database URL (``sqlite:///FILE``, ``postgresql://...``) or an SQLite file path."""
    v = value.strip()
    if not v:
        raise ArgumentTypeError("the database URL is empty")
    if "\x00" in v or not v.isprintable():
        raise ArgumentTypeError("the database URL holds a control character")
    if "://" in v:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        scheme = v.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ArgumentTypeError(f"unsupported database {scheme!r}: use sqlite or postgresql")
        try:
            make_url(v if scheme != "postgres" else "postgresql" + v[8:])
        except (ArgumentError, ValueError):
            raise ArgumentTypeError("the database URL is not valid") from None
    else:
        _not_a_folder(Path(v), "the SQLite file")
    return v


# ---- paths ---------------------------------------------------------------------------------


def _path(value: str, what: str) -> Path:
    if not value.strip():
        raise ArgumentTypeError(f"{what} is empty")
    if "\x00" in value:
        raise ArgumentTypeError(f"{what} holds a NUL character")
    return Path(value)


def _not_a_folder(p: Path, what: str) -> None:
    if p.is_dir():
        raise ArgumentTypeError(f"{what} {p} is a folder")


def _parent_is_folder(p: Path, what: str) -> None:
    parent = p.parent
    if not parent.exists():
        raise ArgumentTypeError(f"{what} {p}: folder {parent} does not exist")
    if not parent.is_dir():
        raise ArgumentTypeError(f"{what} {p}: {parent} is not a folder")


def out_file(value: str) -> Path:
    """A file to write: not a folder, in a folder that exists."""
    p = _path(value, "the output file")
    _not_a_folder(p, "the output file")
    _parent_is_folder(p, "the output file")
    return p


def in_file(value: str) -> Path:
    """A file to read: not a folder (whether it exists is checked when it is read)."""
    p = _path(value, "the file")
    _not_a_folder(p, "the file")
    return p


def out_dir(value: str) -> Path:
    """A folder to write into: a folder, or a new one in a folder that exists."""
    p = _path(value, "the folder")
    if p.exists():
        if not p.is_dir():
            raise ArgumentTypeError(f"{p} is not a folder")
        return p
    _parent_is_folder(p, "the folder")
    return p


def flash_dir(value: str) -> Path:
    """A virtual token's flash folder: a folder, or one ``vdev start`` may create."""
    p = _path(value, "the flash folder")
    if p.exists() and not p.is_dir():
        raise ArgumentTypeError(f"{p} is not a folder")
    for a in p.parents:  # a file on the way would make the folder impossible
        if a.exists():
            if not a.is_dir():
                raise ArgumentTypeError(f"{p}: {a} is not a folder")
            break
    return p


def existing_dir(value: str) -> Path:
    """A folder to read that must exist."""
    p = _path(value, "the folder")
    if not p.is_dir():
        raise ArgumentTypeError(f"{p} is not a folder" if p.exists() else f"{p} does not exist")
    return p


def serial_port(value: str) -> str:
    """A serial port or virtual token device path (opened when the command runs)."""
    p = _path(value, "the port")
    if p.is_dir() and not str(p).startswith(("socket://", "rfc2217://")):
        raise ArgumentTypeError(f"{p} is a folder, not a serial port")
    return value
