"""Payment-code core: codes per second on CPython and on the MicroPython unix port
(cryptolib and pure-AES paths), .mpy bytes per target, the smallest working heap."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import paycode
import pyotp
from paytoken import upy

TITLE = "Payment-code core (paycode)"

SECRET = b"12345678901234567890"
B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
KEY = bytes(range(16))
T = 1_700_000_000
ARCHS = ("armv6m", "xtensawin")
TOKEN_PATH = ("__init__", "aes", "check", "code", "ff1", "otp")  # what a token loads


def _rate(fn, min_seconds: float = 0.5) -> float:
    n = 0
    t0 = time.perf_counter()
    while True:
        for i in range(200):
            fn(i)
        n += 200
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n / dt


def _cpython_rows() -> list[dict]:
    code = paycode.payment_code(SECRET, 12345678, T, KEY)
    pt = pyotp.TOTP(B32)
    how = "CPython %s, loop of calls for >= 0.5 s, one process" % (
        ".".join(map(str, __import__("sys").version_info[:3]))
    )
    return [
        {"name": "CPython paycode.totp", "value": _rate(lambda i: paycode.totp(SECRET, T + 30 * i)),
         "unit": "codes/s", "how": how},
        {"name": "CPython pyotp.TOTP.at (reference)", "value": _rate(lambda i: pt.at(T + 30 * i)),
         "unit": "codes/s", "how": how},
        {"name": "CPython paycode.payment_code", "unit": "codes/s", "how": how + ", cryptography AES",
         "value": _rate(lambda i: paycode.payment_code(SECRET, i, T + 30 * i, KEY))},
        {"name": "CPython paycode.parse_code", "unit": "codes/s", "how": how + ", cryptography AES",
         "value": _rate(lambda i: paycode.parse_code(code, KEY))},
    ]  # fmt: skip


_UPY_BENCH = """
import time
{pre}
import paycode
S = {secret!r}
K = {key!r}
T = {t}
def rate(fn, n):
    t0 = time.ticks_us()
    for i in range(n):
        fn(i)
    return n * 1000000 / time.ticks_diff(time.ticks_us(), t0)
code = paycode.payment_code(S, 1, T, K)
print(repr((paycode.AES_BACKEND,
    rate(lambda i: paycode.totp(S, T + 30 * i), 2000),
    rate(lambda i: paycode.payment_code(S, i, T + 30 * i, K), {n}),
    rate(lambda i: paycode.parse_code(code, K), {n}))))
"""


def _upy_rows() -> list[dict]:
    rows = []
    for label, pre, n in (
        ("cryptolib", "", 2000),
        ("pure", "import sys\nsys.modules['cryptolib'] = None", 300),
    ):
        script = _UPY_BENCH.format(pre=pre, secret=SECRET, key=KEY, t=T, n=n)
        backend, totp_r, pay_r, parse_r = upy.eval_repr(script)
        assert backend == label
        how = f"MicroPython unix port (x86-64), {n} calls timed with ticks_us, AES via {label}"
        rows += [
            {
                "name": f"MicroPython totp (run with {label} AES)",
                "value": totp_r,
                "unit": "codes/s",
                "how": "MicroPython unix port (x86-64), 2000 calls timed with ticks_us; no AES in TOTP",
            },
            {
                "name": f"MicroPython payment_code ({label} AES)",
                "value": pay_r,
                "unit": "codes/s",
                "how": how,
            },
            {
                "name": f"MicroPython parse_code ({label} AES)",
                "value": parse_r,
                "unit": "codes/s",
                "how": how,
            },
        ]
    return rows


def _compile(dst: Path, arch: str) -> dict[str, int]:
    sizes = {}
    (dst / "paycode").mkdir(parents=True, exist_ok=True)
    for py in sorted((upy.FIRMWARE_DIR / "paycode").glob("*.py")):
        out = dst / "paycode" / (py.stem + ".mpy")
        subprocess.run([upy.mpy_cross(), f"-march={arch}", "-o", str(out), str(py)], check=True)
        sizes[py.stem] = out.stat().st_size
    return sizes


_HEAP_PROBE = (
    f"from paycode import payment_code\nprint(payment_code({SECRET!r}, 12345678, {T}, {KEY!r}))"
)


def _works(heap: int, path: Path | None) -> bool:
    env = {"MICROPYPATH": str(path)} if path else None
    proc = upy.run(_HEAP_PROBE, heapsize=str(heap), env=env, check=False, timeout=60)
    return proc.returncode == 0 and proc.stdout.strip() == paycode.payment_code(
        SECRET, 12345678, T, KEY
    )


def _min_heap(path: Path | None) -> int:
    # Bisect to 64 bytes. Allocation is deterministic, so one run per size.
    lo, hi = 1024, 65536
    if not _works(hi, path):
        raise RuntimeError("no code even with a 64K heap")
    while hi - lo > 64:
        mid = (lo + hi) // 2 // 64 * 64
        if _works(mid, path):
            hi = mid
        else:
            lo = mid
    return hi


def _memory_rows() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            sizes = _compile(Path(tmp) / arch, arch)
            rows.append(
                {
                    "name": f".mpy bytes, whole paycode package ({arch})",
                    "value": sum(sizes.values()),
                    "unit": "bytes",
                    "how": f"mpy-cross -march={arch}, sum of {len(sizes)} files",
                }
            )
            rows.append(
                {
                    "name": f".mpy bytes, token's payment path ({arch})",
                    "value": sum(sizes[m] for m in TOKEN_PATH),
                    "unit": "bytes",
                    "how": "the modules `from paycode import payment_code` loads: "
                    + ", ".join(TOKEN_PATH),
                }
            )
        heap_mpy = _min_heap(Path(tmp) / "armv6m")
        heap_src = _min_heap(None)
    rows.append(
        {
            "name": "smallest -X heapsize for a payment code, from .mpy",
            "value": heap_mpy,
            "unit": "bytes",
            "target": "<= 16384",
            "met": heap_mpy <= 16384,
            "how": "bisection to 64 B: fresh unix-port process imports paycode from the armv6m .mpy "
            "files only and computes one code (64-bit port: pointers 2x a target's)",
        }
    )
    rows.append(
        {
            "name": "smallest -X heapsize for a payment code, from .py source",
            "value": heap_src,
            "unit": "bytes",
            "how": "same bisection, compiling the sources on the heap",
        }
    )
    return rows  # fmt: skip


def run() -> list[dict]:
    return _cpython_rows() + _upy_rows() + _memory_rows()


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:60s} {row['value']:>12,.0f} {row['unit']}")
