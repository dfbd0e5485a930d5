"""``paytoken sim``: the fixed snapshot interface and a short live run."""

from __future__ import annotations

import subprocess
import sys

import paycode
from fwkit import SCHEME_KEY, SECRET, SECRET_B32, TOKEN_ID
from paytoken import scan

ARGS = ["--secret", SECRET_B32.lower(), "--token-id", str(TOKEN_ID), "--scheme-key", SCHEME_KEY.hex()]


def _paytoken(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paytoken", "sim", *ARGS, *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_snapshot_is_the_code_at_that_time(tmp_path):
    png = tmp_path / "s.png"
    p = _paytoken("--at", "1790000017", "--snapshot", str(png))
    assert p.returncode == 0, p.stderr
    from PIL import Image

    img = Image.open(png)
    small = img.reduce(2)
    assert scan.read_qr(small) == paycode.payment_code(SECRET, TOKEN_ID, 1790000017, SCHEME_KEY)
    assert SECRET_B32 not in p.stdout + p.stderr


def test_snapshot_128x32(tmp_path):
    png = tmp_path / "s.png"
    p = _paytoken("--at", "1790000017", "--board", "sim-128x32", "--snapshot", str(png))
    assert p.returncode == 0, p.stderr
    from PIL import Image

    assert Image.open(png).size[0] > Image.open(png).size[1] * 3


def test_bad_arguments_are_named():
    p = _paytoken("--prefix", "62", "--snapshot", "x.png")
    assert p.returncode == 1 and "--prefix" in p.stderr and "another wallet" in p.stderr


def test_live_mode_draws_the_panel():
    p = _paytoken("--frames", "3")
    assert p.returncode == 0, p.stderr
    assert "█" in p.stdout and "press the button" in p.stdout
