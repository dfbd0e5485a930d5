"""Every sub-command, every option, malformed values: one line ``paytoken: ...``, a non-zero
exit, no traceback, nothing written.

The argparse tree of ``paytoken.cli`` is walked, so a new command or option is fuzzed
without being listed here. Each option gets values that are wrong *for its type* (read from
its ``type=`` function in ``paytoken.commands.argtypes``, its ``choices``, or, for the few
free-text options, the table ``RUNTIME`` below): negative, huge, nan/inf, non-ASCII, empty,
a file where a folder is wanted and the reverse, paths in missing folders. The rest of the
command line is valid, in a world where the command then fails cleanly (no database, no
device, nothing listening), so the malformed value is what each case exercises. Long
commands (``serve``, ``vdev start``, ``demo``, ``simulate-year``) also carry a second bad
option after the fuzzed one, so a value wrongly accepted still cannot start anything.

Runs in-process: a few thousand cases in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path

import paycode
import pytest
from paytoken import cli
from paytoken.commands import argtypes

RFC = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
KEY = "000102030405060708090a0b0c0d0e0f"
URI = "otpauth://totp/Shop:ann?secret=" + RFC
BAD_CODE = "812345678901234567"  # 18 digits, wrong check digit

PARSER = cli.build_parser()
LEAVES = {
    " ".join(path): p
    for path, p in cli.iter_parsers(PARSER)
    if path and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
}

# The sandbox: cwd of every case. F is a file (not a database), D a folder.
F, D, M = "afile", "adir", "missing/x"

# Valid values for required arguments (and a few optional ones), per destination.
SANE = {
    "secret": RFC, "scheme_key": KEY, "token_id": "1", "id": "1", "amount": "100",
    "prefix": "81", "name": "alice", "code": BAD_CODE, "board": "sim", "port": "noport",
    "flash": "tok", "file": "out.png", "new_key_file": "new.key", "db": "nothere.db",
    "url": "http://127.0.0.1:9", "api_key": "k", "admin_key": "k", "ppm": "1",
    "psk_file": "k.psk", "pskc": "t.pskc", "count": "2", "out": "batch.json",
    "payment_id": "pay_x", "day": "2026-01-01", "reason": "r", "idempotency_key": "k",
    "format": "1",
}  # fmt: skip
# Per command: valid values that differ from SANE, and the world each fails in.
BASE = {
    "db new-master-key": {"file": F},  # exists: refused, never overwritten
    "decode": {"code": paycode.payment_code(bytes(range(16)), 1, 1700000000, bytes.fromhex(KEY))},
    "sim": {"snapshot": "s.png"},
}
# A second bad option for commands that would run long if the fuzzed value got through:
# (option, value) pairs; the first whose option is not the fuzzed one is appended.
GUARD = {
    "serve": [("--port", "0"), ("--window", "9")],
    "vdev start": [("--heapsize", "1"), ("--board", "pico")],
    "demo": [("--out", F), ("--burn-in", "601")],
    "simulate-year": [("--keep", F), ("--tokens", "0")],
    "code": [("--token-id", "1"), ("--prefix", "82")],  # "need --payment": after the checks
}
GUARD_AT_RUN = {"code"}  # its guard fails when the command runs, after every other check

# Untyped (checked when the command runs) options and positionals: their malformed values.
SECRETS = ["", " ", "é", "JBSWY3DP", "-", "otpauth://hotp/x?secret=" + RFC, "otpauth://totp/x",
           URI + "&digits=abc", URI + "&period=0", URI + "&algorithm=MD5", URI + "&digits=5",
           URI + "&secret=" + RFC, "otpauth://totp/x?secret=%zz"]  # fmt: skip
RUNTIME = {
    "secret": SECRETS,
    "scheme_key": ["", "é", "00ff", "zz" * 16, "0" * 33],
    "key": ["zz", "00ff", "é" * 16],
    "sync_key": ["zz", "é", "0"],
    "version": ["", "é", "123", "x"],
    "at": ["", "-1", "99999999999999999999", "253402300800", "nan", "é", "2024-01-01",
           "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2024-13-01T00:00:00Z"],
    "code": ["", "é", "81234", "8" * 30, BAD_CODE],
}  # fmt: skip
# For payment tokens a URI must say SHA-1, 6 digits, 30 s.
PAYMENT_SECRETS = SECRETS + [URI + "&digits=8", URI + "&algorithm=SHA256", URI + "&period=60"]


def _int_values(lo: int | None, hi: int | None) -> list[str]:
    v = ["", "abc", "1.5", "١٢", "1_0", "0x10", "nan", " "]
    v += [str(lo - 1)] if lo is not None else ["-99999999999999999999"]
    v += [str(hi + 1)] if hi is not None else ["99999999999999999999"]
    return v


def _num_values(lo: float | None, hi: float | None, lo_open: bool) -> list[str]:
    v = ["", "abc", "nan", "-nan", "inf", "-inf", "1e999", "0x1", "١"]
    if lo is not None:
        v.append(str(lo) if lo_open else str(lo - 1))
    if hi is not None:
        v.append(str(hi * 10 + 1))
    return v


# Values an argtypes function refuses while parsing; RUN_PATHS, values it lets through and
# the command refuses when it runs (a file that is missing or not a database).
RUN_PATHS = {
    argtypes.in_file: [M, F + "/x"],
    argtypes.serial_port: [M, F, F + "/x"],
    argtypes.flash_dir: [M],  # except for `vdev start`, which creates it
    argtypes.board: ["nosuchboard"],
    argtypes.db_url: [M + ".db", F, "sqlite:///" + D, "sqlite://", "sqlite:///:memory:",
                      "postgresql://u:pw@127.0.0.1:1/x", "postgresql://[bad", "é.db"],
}
PATHS = {
    argtypes.out_file: ["", D, M, F + "/x.png", "a\x00b"],
    argtypes.in_file: ["", D],
    argtypes.out_dir: ["", F, M, F + "/x"],
    argtypes.flash_dir: ["", F, F + "/x"],
    argtypes.existing_dir: ["", F, M],
    argtypes.serial_port: ["", D, "a\x00b"],
    argtypes.db_url: ["", D, "mysql://h/x", "a\x01b", "sqlite+pysqlite:///" + M.replace("/", "\n")],
    argtypes.http_url: ["", "é", "ftp://h/", "http://", "127.0.0.1:8080", "http://h:99999",
                        "http://h:0", "http://[bad"],
    argtypes.secret_key: ["", " ", "é", "a b", "\x01", "k" * 300],
    argtypes.currency: ["", "cny", "EURO", "é", "1"],
    argtypes.prefix: ["", "8", "812", "é", "ab", "٨١"],
    argtypes.host: ["", "é", "a b", "h" * 300],
    argtypes.board: ["", "../sim", "é", "a b", "-x"],
    argtypes.sim_board: ["", "../sim", "é", "pico", "nosuchboard"],
    argtypes.heapsize: ["", "abc", "1", "999G", "-1K", "nan", "1.5K", "9" * 20],
}  # fmt: skip


def bad_values(cmd: str, action: argparse.Action) -> list[tuple[str, str]]:
    """(value, "parse" or "run"): the malformed values of one option and when each must be
    refused. The test fails for an option it does not know how to fuzz."""
    t = action.type
    if action.choices is not None and t is None:
        return [(v, "parse") for v in ("", "bogus", "é", str(next(iter(action.choices))).upper() + "X")]
    if t in PATHS:
        run = RUN_PATHS.get(t, [])
        if cmd == "db init":
            run = [x for x in run if x != "é.db"]  # a new file's name: db init creates it
        if cmd == "vdev start":
            run = [x for x in run if x != M]  # vdev start creates a flash folder
        return [(v, "parse") for v in PATHS[t]] + [(v, "run") for v in run]
    if hasattr(t, "int_bounds"):
        return [(v, "parse") for v in _int_values(*t.int_bounds)]
    if hasattr(t, "num_bounds"):
        return [(v, "parse") for v in _num_values(*t.num_bounds)]
    if hasattr(t, "text"):
        max_len, ascii_only = t.text
        return [(v, "parse") for v in ["", " ", "\x01", "x" * (max_len + 1)] + (["é"] if ascii_only else [])]
    if t is None and action.dest in RUNTIME:
        if action.dest == "secret":  # `code` honours a URI's digits/period/algorithm; payments don't
            return [(v, "run") for v in (SECRETS if cmd == "code" else PAYMENT_SECRETS)]
        return [(v, "run") for v in RUNTIME[action.dest]]
    raise AssertionError(f"{cmd} {action.dest}: no malformed values known for type {t!r}")


def _value_actions(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions
            if a.nargs != 0 and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def _flag(a: argparse.Action) -> str:
    return max(a.option_strings, key=len)


def argv_for(cmd: str, fuzzed: argparse.Action, value: str, when: str = "parse") -> list[str]:
    """The fuzzed option first (as ``--opt=value``), the valid rest, the guard, positionals."""
    p = LEAVES[cmd]
    base = {**SANE, **BASE.get(cmd, {})}
    opts: list[str] = []
    pos: list[str] = []
    for a in _value_actions(p):
        if a is fuzzed:
            v = value
        elif a.required or not a.option_strings or a.dest in BASE.get(cmd, {}):
            v = base[a.dest]
        else:
            continue
        if a.option_strings:
            opts += [f"{_flag(a)}={v}"]
        else:
            pos.append(v)
    fuzzed_flag = _flag(fuzzed) if fuzzed.option_strings else None
    for flag, v in GUARD.get(cmd, []) if when == "parse" or cmd in GUARD_AT_RUN else []:
        if flag != fuzzed_flag:
            opts += [f"{flag}={v}"]
            break
    return [*cmd.split(), *opts, "--", *pos] if pos else [*cmd.split(), *opts]


def cases() -> list[tuple[str, str, str]]:
    out = []
    for cmd, p in LEAVES.items():
        for a in _value_actions(p):
            for v, _ in bad_values(cmd, a):
                out.append((cmd, _flag(a) if a.option_strings else a.dest, v))
    return out


CASES = cases()


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if "registry" not in p.parts}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("PAYTOKEN_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("PAYTOKEN_VDEV_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setenv("PAYTOKEN_BUILD", str(tmp_path / "registry" / "build"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / F).write_text("not a database, not a key\n")
    (tmp_path / D).mkdir()
    (tmp_path / "registry").mkdir()
    # One parser for all the cases of a test (built in this environment): 70 ms saved a case.
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    return tmp_path


def _run(argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO("")  # `--secret -` reads an empty stdin
    old_stdin = os.sys.stdin
    os.sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(argv)
                code: object = 0
            except SystemExit as e:
                code = e.code
            except BaseException as e:  # noqa: BLE001 - the very thing this test looks for
                import traceback

                code = f"uncaught {e.__class__.__name__}"
                err.write("Traceback (uncaught)\n" + traceback.format_exc())
    finally:
        os.sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def test_every_leaf_and_every_option_is_fuzzed() -> None:
    cmds = {c for c, _, _ in CASES}
    assert cmds == set(LEAVES), set(LEAVES) - cmds
    assert len(LEAVES) >= 30 and len(CASES) >= 900, (len(LEAVES), len(CASES))
    opts = {(c, o) for c, o, _ in CASES}
    assert ("serve", "--log-level") in opts and ("vdev snapshot", "--scale") in opts
    print(f"{len(CASES)} fuzz cases over {len(opts)} options of {len(LEAVES)} sub-commands")


@pytest.mark.parametrize("cmd", sorted(LEAVES))
def test_malformed_values_get_one_line_and_a_nonzero_exit(cmd: str, sandbox: Path) -> None:
    p = LEAVES[cmd]
    before = _tree(sandbox)
    bad = []
    for a in _value_actions(p):
        for v, when in bad_values(cmd, a):
            argv = argv_for(cmd, a, v, when)
            code, out, err = _run(argv)
            lines = [ln for ln in err.splitlines() if ln.strip()]
            ok = (code not in (0, None) and isinstance(code, int) and "Traceback" not in err
                  and len(lines) == 1 and lines[0].startswith("paytoken: ") and not out)
            if ok and when == "parse":
                # Refused while parsing, naming the option: not by luck further on.
                name = _flag(a) if a.option_strings else (a.metavar or a.dest)
                ok = f"argument {name}" in lines[0] or f"argument {name.split('/')[0]}" in lines[0]
            if not ok:
                bad.append(f"{argv!r}: exit {code!r}\n  stdout {out[-300:]!r}\n  stderr {err[-600:]!r}")
            after = _tree(sandbox)
            if after != before:
                bad.append(f"{argv!r} wrote {sorted(set(after) ^ set(before)) or 'into a file'}")
                before = after
    assert not bad, f"{len(bad)} bad cases:\n" + "\n".join(bad[:15])


def test_every_option_has_help_text() -> None:
    missing = [f"{' '.join(path)} {a.dest}" for path, p in cli.iter_parsers(PARSER)
               for a in p._actions if not (a.help or "").strip()
               and not isinstance(a, argparse._SubParsersAction)]
    assert not missing, missing


def test_defaults_are_shown_in_help() -> None:
    text = LEAVES["serve"].format_help()
    assert "(default: 8080)" in text and "(default: info)" in text
    assert "(default: 10.0)" in LEAVES["pay"].format_help()


def test_top_level_help_is_a_users_overview(capsys) -> None:
    from importlib.metadata import version

    text = PARSER.format_help()
    assert "paytoken demo" in text and "payment code" in text and "PAYTOKEN_DB" in text
    assert "dispatch" not in text and "register(" not in text
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"paytoken {version('paytoken')}\n"


ENV_CASES = [
    ("PAYTOKEN_DB", ["token", "list"], ["mysql://h/x", D, "a\x01b", "sqlite://", "é.db", F]),
    ("PAYTOKEN_DB", ["db", "init"], ["mysql://h/x", D, "a\x01b", "sqlite://", M + ".db", F]),
    ("PAYTOKEN_API_KEY", ["pay", BAD_CODE, "--amount", "1", "--url", "http://127.0.0.1:9"],
     ["é", "a b", "\x01"]),
    ("PAYTOKEN_ADMIN_KEY", ["sync-clock", "--port", "noport", "--url", "http://127.0.0.1:9"],
     ["é", "a b", "\x01"]),
    ("PAYTOKEN_URL", ["pay", BAD_CODE, "--amount", "1", "--api-key", "k"],
     ["é", "ftp://h/", "http://h:99999", "http://"]),
    ("PAYTOKEN_MASTER_KEY", ["scheme", "add", "--prefix", "81", "--db", F], ["0" * 63, "zz" * 32, "é"]),
]
BUILD_PARSER = cli.build_parser  # --url's default is read from the environment at each build


@pytest.mark.parametrize(("var", "argv", "values"), ENV_CASES)
def test_malformed_environment_values_get_one_line(var: str, argv: list[str], values: list[str],
                                                   sandbox: Path, monkeypatch) -> None:
    # The environment stands in for an option: it gets the option's checks.
    monkeypatch.setattr(cli, "build_parser", BUILD_PARSER)
    before = _tree(sandbox)
    for value in values:
        monkeypatch.setenv(var, value)
        code, out, err = _run(argv)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code not in (0, None) and "Traceback" not in err and not out, (var, value, err)
        assert len(lines) == 1 and lines[0].startswith("paytoken: "), (var, value, err)
        assert value not in err or var not in ("PAYTOKEN_MASTER_KEY",), err  # never echoed
    assert _tree(sandbox) == before
