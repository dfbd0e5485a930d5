"""The `paytoken code`, `decode` and `demo` commands: known answers, time zones, errors."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time

import paycode
import pyotp
import pytest
from freezegun import freeze_time
from paytoken.cli import main
from paytoken.commands import story

RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # b"12345678901234567890"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY_HEX = "000102030405060708090a0b0c0d0e0f"
KEY = bytes.fromhex(KEY_HEX)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize(
    "at",
    [
        "1111111109",
        "2005-03-18T01:58:29Z",
        "2005-03-18T09:58:29+08:00",
        "2005-03-17T17:58:29-08:00",
    ],
)
@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/Los_Angeles", "UTC"])
def test_code_known_answer_in_any_time_zone(capsys, monkeypatch, at: str, tz: str) -> None:
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        rc, out, _ = run(capsys, "code", RFC_SECRET, "--at", at, "--digits", "8")
        assert (rc, out) == (0, "07081804\n")  # RFC 6238 appendix B
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/Los_Angeles"])
def test_subprocess_time_zone_never_changes_a_result(tz: str) -> None:
    # A separate interpreter started in that zone, so nothing cached survives.
    env = dict(os.environ, TZ=tz)
    argv = [sys.executable, "-m", "paytoken", "code", SECRET, "--payment", "--token-id", "7",
            "--scheme-key", KEY_HEX, "--at", "2038-01-19T03:14:08Z", "--json"]  # fmt: skip
    data = json.loads(
        subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    )
    assert data["at"] == 2**31 and data["at_iso"] == "2038-01-19T03:14:08Z"
    assert data["code"] == paycode.payment_code(paycode.decode_secret(SECRET), 7, 2**31, KEY)


def test_code_now_reads_frozen_clock(capsys) -> None:
    with freeze_time("2106-02-07T06:28:16Z"):
        rc, out, _ = run(capsys, "code", SECRET, "--json")
    data = json.loads(out)
    assert rc == 0 and data["at"] == 2**32 and data["valid_for"] == 30 - 2**32 % 30
    assert data["totp"] == pyotp.TOTP(SECRET).at(2**32)


def test_code_options_match_pyotp(capsys) -> None:
    rc, out, _ = run(capsys, "code", SECRET.lower(), "--at", "2000000000", "--digits", "7",
                     "--period", "60", "--algorithm", "sha256")  # fmt: skip
    import hashlib

    want = pyotp.TOTP(SECRET, digits=7, interval=60, digest=hashlib.sha256).at(2000000000)
    assert (rc, out.strip()) == (0, want)


def test_secret_from_stdin_and_uri(capsys, monkeypatch) -> None:
    import io

    uri = pyotp.TOTP(SECRET).provisioning_uri(name="a@b.c", issuer_name="Demo")
    monkeypatch.setattr(sys, "stdin", io.StringIO(uri + "\n"))
    rc, out, _ = run(capsys, "code", "-", "--at", "59")
    assert (rc, out.strip()) == (0, pyotp.TOTP(SECRET).at(59))


def test_payment_and_decode_round_trip(capsys) -> None:
    t = 4107542400  # 2100-03-01T00:00:00Z
    rc, out, _ = run(capsys, "code", SECRET, "--payment", "--token-id", "99999999",
                     "--scheme-key", KEY_HEX, "--prefix", "89", "--at", str(t), "--json")  # fmt: skip
    data = json.loads(out)
    code = data["code"]
    assert rc == 0 and len(code) == 18 and code.startswith("89") and paycode.damm(code) == 0
    assert data["grouped"] == paycode.group4(code)
    rc, out, _ = run(capsys, "decode", data["grouped"], "--scheme-key", KEY_HEX, "--json",
                     "--at", str(t + 60))  # fmt: skip
    got = json.loads(out)
    assert rc == 0
    assert got["token_id"] == 99999999 and got["prefix"] == "89"
    assert got["otp"] == pyotp.TOTP(SECRET).at(t) and got["step"] == t // 30
    rc, out, _ = run(capsys, "decode", code, "--scheme-key", KEY_HEX)
    assert rc == 0 and "token id      99999999" in out and f"otp           {got['otp']}" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["code", "JBSWY3DP"], "bad secret: secret is 40 bits"),
        (["code", SECRET + "1"], "bad secret: secret character 33 is not in the base32 alphabet"),
        (["code", SECRET, "--at", "2024-01-01T00:00:00"], "needs a UTC offset"),
        (["code", SECRET, "--at", "2024-01-01"], "needs a UTC offset"),
        (["code", SECRET, "--at", "yesterday"], "needs a UTC offset"),
        (["code", SECRET, "--at", "-5"], "before 1970"),
        (["code", SECRET, "--at", "2024-13-01T00:00:00Z"], "not Unix seconds or an ISO-8601 time"),
        (["code", SECRET, "--digits", "5", "--at", "0"], "argument --digits: 5 is out of range (6 to 10)"),
        (["code", SECRET, "--payment", "--token-id", "1"], "needs --token-id and --scheme-key"),
        (["code", SECRET, "--payment", "--token-id", "1", "--scheme-key", "00ff"],
         "32 hex digits (16 bytes), got 4"),
        (["code", SECRET, "--payment", "--token-id", "100000000", "--scheme-key", KEY_HEX],
         "argument --token-id: 100000000 is out of range (0 to 99999999)"),
        (["code", SECRET, "--payment", "--token-id", "1", "--scheme-key", KEY_HEX, "--prefix", "62"],
         "prefix 62 belongs to another wallet"),
        (["code", SECRET, "--payment", "--token-id", "1", "--scheme-key", KEY_HEX, "--digits", "8"],
         "do not apply to --payment"),
        (["code", SECRET, "--token-id", "1"], "need --payment"),
        (["decode", "81234", "--scheme-key", KEY_HEX], "bad payment code: code has 5 digits, not 18"),
        (["decode", "8123456789012345x7", "--scheme-key", KEY_HEX], "bad payment code: code has a non-digit"),
        (["decode", "812345678901234567", "--scheme-key", KEY_HEX], "check digit is wrong"),
    ],
)  # fmt: skip
def test_errors_are_precise_and_never_echo_secrets(capsys, argv: list[str], message: str) -> None:
    rc, out, err = run(capsys, *argv)
    assert rc == 1 and out == ""
    assert err.startswith("paytoken: ") and message in err
    assert "Traceback" not in err
    assert SECRET not in err and KEY_HEX not in err and "JBSWY3DP" not in err


def test_unknown_prefix_error(capsys) -> None:
    body = "28" + "0" * 15
    code = body + str(paycode.damm(body))
    rc, _, err = run(capsys, "decode", code, "--scheme-key", KEY_HEX)
    assert rc == 1 and "unknown prefix 28" in err


def test_demo_frame_is_checked_like_the_issuer() -> None:
    for t in (0, 2**31 - 1, 2**32, 4102444799):
        f = story.demo_frame(t)
        assert f["issuer_ok"] and f["step"] == t // 30 and f["valid_for"] == 30 - t % 30
        b32 = base64.b32encode(story.DEMO_SECRET).decode()
        assert f["totp"] == pyotp.TOTP(b32).at(t)
        assert paycode.parse_code(f["code"], story.DEMO_SCHEME_KEY)[1] == story.DEMO_TOKEN_ID


def test_demo_runs_briefly_with_countdown(capsys, monkeypatch) -> None:
    # A real run of the command on a clock that moves only when the loop sleeps (each
    # sleep advances it by the time asked), so a slow start on a busy machine moves
    # nothing: the clock starts 2 s before a step boundary, the run lasts 3 s of it, and
    # the code changes once within it, at 03:14:30.
    with freeze_time("2038-01-19T03:14:28Z") as clock:
        monkeypatch.setattr(story.time, "sleep", lambda s: clock.tick(datetime.timedelta(seconds=s)))
        with pytest.raises(SystemExit) as info:
            main(["demo", "--seconds", "3"])
    out, err = capsys.readouterr()
    assert info.value.code == 0, err
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["2038-01-19T03:14:28Z", "2038-01-19T03:14:30Z"], out
    b32 = base64.b32encode(story.DEMO_SECRET).decode()
    for line in lines:
        f = line.split()
        t = paycode.unix_from_civil(
            *(int(x) for x in f[0][:-1].replace("T", "-").replace(":", "-").split("-"))
        )
        assert f[-1] == "accepted" and f[8] == pyotp.TOTP(b32).at(t)
        code = "".join(f[2:7])
        assert code == paycode.payment_code(
            story.DEMO_SECRET, story.DEMO_TOKEN_ID, t, story.DEMO_SCHEME_KEY
        )
    assert len({line.split()[8] for line in lines}) >= 2  # the TOTP refreshed


def test_an_interrupt_wrapped_by_an_import_is_still_an_interrupt(monkeypatch, capsys) -> None:
    """Ctrl-C inside an import can come back as another exception (Python wraps errors of
    ``__set_name__`` in a RuntimeError): the tool still exits 130 with one line."""
    import pytest as _pytest
    from paytoken import cli

    def boom(_args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__ on 'cached_property'") from e

    def other(_args):
        raise ValueError("a plain bug")

    for func, want in ((boom, 130), (other, None)):
        monkeypatch.setattr(cli, "build_parser", lambda f=func: _Parser(f))
        if want is None:
            with _pytest.raises(ValueError):
                cli.main([])
            continue
        with _pytest.raises(SystemExit) as ex:
            cli.main([])
        assert ex.value.code == want
        assert capsys.readouterr().err == "paytoken: interrupted\n"


class _Parser:
    def __init__(self, func) -> None:
        self.func = func

    def parse_args(self, argv):
        import argparse

        return argparse.Namespace(func=self.func)
@pytest.mark.parametrize("t", [59, 1111111109, 1700000000, 2000000000])
def test_payment_code_of_format_2(capsys, t: int) -> None:
    # paytoken code SECRET --payment --token-id N --scheme-key HEX --prefix PV --format 2 --at T:
    # format 1's layout with the SHA-256 TOTP, which pyotp computes independently.
    rc, out, _ = run(capsys, "code", RFC_SECRET, "--payment", "--token-id", "42", "--scheme-key", KEY_HEX,
                     "--prefix", "82", "--format", "2", "--at", str(t))
    code = out.strip()
    assert rc == 0 and len(code) == 18 and code.startswith("82")
    otp = pyotp.TOTP(RFC_SECRET, digest=hashlib.sha256).at(t)
    assert paycode.parse_code(code, KEY) == ("82", 42, (t // 30) % 10, otp)
    rc, out, _ = run(capsys, "code", RFC_SECRET, "--payment", "--token-id", "42", "--scheme-key", KEY_HEX,
                     "--prefix", "82", "--at", str(t), "--json")
    v1 = json.loads(out)
    assert v1["format"] == 1 and v1["code"] != code  # the same layout, another TOTP
    assert paycode.parse_code(v1["code"], KEY)[3] == pyotp.TOTP(RFC_SECRET).at(t)
    rc, _, err = run(capsys, "code", RFC_SECRET, "--payment", "--token-id", "42", "--scheme-key", KEY_HEX,
                     "--format", "3")
    assert rc == 1 and "--format" in err and len(err.strip().splitlines()) == 1
    uri = f"otpauth://totp/x?secret={RFC_SECRET}&algorithm=SHA256"
    rc, out, _ = run(capsys, "code", uri, "--payment", "--token-id", "42", "--scheme-key", KEY_HEX,
                     "--prefix", "82", "--format", "2", "--at", str(t))
    assert rc == 0 and out.strip() == code  # a SHA-256 URI fits format 2
    rc, _, err = run(capsys, "code", uri, "--payment", "--token-id", "42", "--scheme-key", KEY_HEX,
                     "--at", str(t))
    assert rc == 1 and "format 1 fixes SHA-1" in err
