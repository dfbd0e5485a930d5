"""The locked line protocol (firmware/proto.py) over a real pipe into MicroPython.

The token side runs in the unix port reading its stdin with select.poll, as on the
USB serial; the host side speaks the protocol and computes MACs with paycode.
"""

from __future__ import annotations

import os
import subprocess

import paycode
import pytest
from fwkit import SECRET, SECRET_B32, SYNC_KEY, TOKEN_ID, fwconfig, token_config
from paytoken import upy

_TOKEN = """
import config, proto, sys
class Ctx:
    config = config
    cfg_path = {path!r}
    board = "test"
    def set_clock(self, utc):
        sys.stdout.write("#clock %d\\n" % utc)
    def clock_state(self):
        return "ok"
p = proto.Proto(Ctx())
while not p.serve(50):
    if p._eof:
        break
sys.stdout.write("#end unlocked=%d\\n" % p.unlocked)
"""


class Token:
    def __init__(self, path: str) -> None:
        env = dict(os.environ, MICROPYPATH=upy.micropypath())
        self.proc = subprocess.Popen(
            [upy.micropython(), "-c", _TOKEN.format(path=path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self.lines: list[str] = []

    def ask(self, line: bytes | str) -> str:
        if isinstance(line, str):
            line = line.encode()
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()
        while True:
            out = self.proc.stdout.readline().decode()
            assert out, self.proc.stderr.read().decode()
            self.lines.append(out)
            if not out.startswith("#"):
                return out.rstrip("\n")

    def close(self) -> str:
        # Through the buffered readers, not communicate(): that reads the raw pipe
        # and would skip lines ask()'s readline already buffered. The token stops
        # at the end of its input.
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        err = self.proc.stderr.read()
        self.proc.wait(timeout=20)
        assert not err, err.decode()
        text = out.decode()
        self.lines.append(text)
        return text


@pytest.fixture
def cfg_path(tmp_path):
    p = str(tmp_path / "paytoken.cfg")
    fwconfig.save(token_config(locked=True, last_step=59100000), p)
    return p


def _mac(verb: str, nonce: str, value: int) -> str:
    return paycode.sync_mac(SYNC_KEY, verb, nonce, value)


def test_settime_with_a_good_mac_sets_the_clock_once(cfg_path):
    tok = Token(cfg_path)
    info = tok.ask("INFO")
    assert info.startswith(f"OK id={TOKEN_ID:08d} fw=1.0.0 board=test code=1 clock=ok")
    nonce = tok.ask("CHALLENGE")[3:]
    assert len(nonce) == 16 and int(nonce, 16) >= 0
    t = 1790000000
    good = f"SETTIME {t} {_mac('SETTIME', nonce, t)}"
    assert tok.ask(good) == f"OK time set {t}"
    cfg = fwconfig.load(cfg_path)
    assert (cfg["ref_time"], cfg["last_sync"], cfg["last_step"]) == (t, t, t // 30)
    # the nonce is spent: the very same line is refused
    assert tok.ask(good) == "ERR no challenge: send CHALLENGE first"
    # a fresh nonce does not revive an old MAC
    n2 = tok.ask("CHALLENGE")[3:]
    assert n2 != nonce
    assert tok.ask(good) == "ERR bad mac"
    text = tok.close()
    assert text.count("#clock") == 0 and "".join(tok.lines).count(f"#clock {t}") == 1


def test_bad_macs_and_bad_lines_are_refused_without_secrets(cfg_path):
    tok = Token(cfg_path)
    before = open(cfg_path, "rb").read()
    nonce = tok.ask("CHALLENGE")[3:]
    t = 1790000000
    # a MAC under another key, for another time, for another verb, or malformed
    other = paycode.sync_mac(b"k" * 20, "SETTIME", nonce, t)
    assert tok.ask(f"SETTIME {t} {other}") == "ERR bad mac"
    for line in (
        f"SETTIME {t + 1} {_mac('SETTIME', nonce, t)}",
        f"UNLOCK {_mac('SETTIME', nonce, TOKEN_ID)}",
        f"SETTIME {t} xyz",
    ):
        tok.ask("CHALLENGE")
        assert tok.ask(line) == "ERR bad mac"
    assert tok.ask("SETTIME 12 " + "0" * 40) == "ERR time out of range"
    assert tok.ask("SETTIME soon " + "0" * 40) == "ERR time must be UTC seconds"
    assert tok.ask("HELLO") == "ERR unknown command"
    assert tok.ask("INFO extra") == "ERR wrong arguments for INFO"
    assert tok.ask("A" * 500) == "ERR line too long"
    assert tok.ask(b"\xff\xfe") == "ERR not ASCII"
    # Ctrl-C, Ctrl-D and the raw-REPL entry (Ctrl-A) are just bytes of a bad line
    assert tok.ask(b"\x03\x03\x01") == "ERR unknown command"
    assert tok.ask(b"\x01\x04import config; print(config.load())") == "ERR unknown command"
    assert tok.ask("INFO").startswith("OK id=")
    tok.close()
    assert open(cfg_path, "rb").read() == before
    everything = "".join(tok.lines)
    for secret in (SECRET.hex(), SECRET_B32, SYNC_KEY.hex(), SECRET.decode()):
        assert secret not in everything
    assert ">>>" not in everything and "raw REPL" not in everything


def test_unlock_is_in_ram_only_the_config_stays_locked(cfg_path):
    # An UNLOCK opens this session only: nothing is written, so the next boot (a reset,
    # the lease's watchdog, a power cut) is a locked one.
    before = open(cfg_path, "rb").read()
    tok = Token(cfg_path)
    nonce = tok.ask("CHALLENGE")[3:]
    assert tok.ask(f"UNLOCK {_mac('UNLOCK', nonce, TOKEN_ID + 1)}") == "ERR bad mac"
    nonce = tok.ask("CHALLENGE")[3:]
    assert tok.ask(f"UNLOCK {_mac('UNLOCK', nonce, TOKEN_ID)}") == "OK unlocked"
    assert "#end unlocked=1" in tok.close()
    assert open(cfg_path, "rb").read() == before
    assert fwconfig.load(cfg_path) == token_config(locked=True, last_step=59100000)


def test_settime_needs_a_provisioned_token(tmp_path):
    p = str(tmp_path / "paytoken.cfg")
    tok = Token(p)
    assert tok.ask("INFO").startswith("OK id=- ")
    nonce = tok.ask("CHALLENGE")[3:]
    assert tok.ask(f"SETTIME 1790000000 {_mac('SETTIME', nonce, 1790000000)}") == "ERR not provisioned"
    tok.close()
    assert not os.path.exists(p)
