"""Every firmware file compiles with mpy-cross for the targets, and the core computes a
payment code from its .mpy files under `micropython -X heapsize=16K`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paycode
import pytest
from paytoken import upy

ARCHS = ("armv6m", "xtensawin")  # RP2040, ESP32
SECRET = b"12345678901234567890"
KEY = bytes(range(16))
T = 1_700_000_000


def compile_tree(src: Path, dst: Path, arch: str) -> list[Path]:
    """Compile every ``*.py`` under ``src`` into ``dst`` (same layout) for ``arch``.

    Each file is named by its path on the token (``-s paycode/ff1.py``), as deploy
    names it: a token's heap holds that name, never the checkout's path."""
    out = []
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src)
        mpy = dst / rel.with_suffix(".mpy")
        mpy.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [upy.mpy_cross(), f"-march={arch}", "-s", rel.as_posix(), "-o", str(mpy), str(py)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, f"mpy-cross -march={arch} {py}: {proc.stderr}"
        out.append(mpy)
    return out


@pytest.fixture(scope="module", params=ARCHS)
def compiled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    arch = request.param
    dst = tmp_path_factory.mktemp(f"mpy-{arch}")
    files = compile_tree(upy.FIRMWARE_DIR, dst, arch)
    return arch, dst, files


def test_every_firmware_file_compiles(compiled) -> None:
    arch, dst, files = compiled
    sources = sorted(upy.FIRMWARE_DIR.rglob("*.py"))
    assert len(files) == len(sources) and len(sources) >= 10
    for mpy in files:
        head = mpy.read_bytes()[:4]
        assert head[0] == ord("M") and head[1] == 6  # .mpy format v6 (MicroPython 1.22+)
    assert (dst / "paycode" / "code.mpy").exists()


def test_payment_code_from_mpy_in_16k_heap(compiled) -> None:
    arch, dst, _ = compiled
    # Only the compiled tree on the path, as "." from inside it, so the heap holds the
    # short module paths a token has and the figure does not depend on where the
    # checkout or pytest's temporary folder is (a longer one failed CI by 300 bytes).
    proc = upy.run(
        "import sys\n"
        "from paycode import payment_code, totp\n"
        f"c = payment_code({SECRET!r}, 12345678, {T}, {KEY!r})\n"
        f"print(repr((c, totp({SECRET!r}, {T}),"
        " [m for m in sys.modules if m.startswith('paycode')])))",
        heapsize="16K",
        env={"MICROPYPATH": "."},
        cwd=dst,
    )
    code, otp, loaded = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307
    assert code == paycode.payment_code(SECRET, 12345678, T, KEY)
    assert paycode.parse_code(code, KEY) == ("81", 12345678, (T // 30) % 10, otp)
    assert otp == paycode.totp(SECRET, T)
    # The lazy package loads only the payment path on the token.
    assert sorted(loaded) == [
        "paycode", "paycode.aes", "paycode.check", "paycode.code", "paycode.ff1", "paycode.otp",
    ]  # fmt: skip
    assert not (dst / "paycode" / "code.py").exists()


def test_16k_is_a_real_limit(compiled) -> None:
    # The same run in a heap far too small fails: the heap size is really applied.
    arch, dst, _ = compiled
    proc = upy.run(
        f"from paycode import payment_code\nprint(payment_code({SECRET!r}, 1, {T}, {KEY!r}))",
        heapsize="4K",
        env={"MICROPYPATH": str(dst)},
        check=False,
    )
    assert "MemoryError" in proc.stdout + proc.stderr
