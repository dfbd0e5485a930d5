"""paytoken.literal: parses that eight threads make at once all succeed.

The workload is the one that breaks a bare ``ast.parse`` on CPython 3.11
(python/cpython#106905): threads at different stack depths, garbage collections that
run finalizers (so threads switch inside a parse), and a tiny switch interval. With
``ast.parse`` in place of ``literal``, 5 of the 8 threads failed here on 3.11.7.
"""

from __future__ import annotations

import threading
from pathlib import Path

from paytoken import literal, upy
from threadrace import race

THREADS = 8
ROUNDS = 20


class _Cycle:
    # Garbage that only the collector frees, with a finalizer that runs bytecode:
    # the collector then lets another thread run in the middle of a parse.
    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        for _ in range(50):
            pass


def _deep(n: int, f):
    return f() if n == 0 else _deep(n - 1, f)


def test_parses_in_eight_threads_at_once_all_succeed() -> None:
    fwversion = upy.FIRMWARE_DIR / "fwversion.py"
    text = repr([{"file": f"/lib/m{i}.mpy", "sha": "ab" * 32, "n": (i, 2.5, b"x")} for i in range(40)])
    want_list = literal.literal_eval(text)
    want_version = literal.top_level_literals(fwversion, ("VERSION",))
    assert isinstance(want_version["VERSION"], str)
    errors: list[str] = []
    wrong: list[int] = []
    start = threading.Barrier(THREADS)

    def work(k: int) -> None:
        start.wait()
        for _ in range(ROUNDS):
            for _ in range(30):
                _Cycle()
            try:
                got = _deep(k * 7, lambda: (literal.literal_eval(text), literal.top_level_literals(fwversion, ("VERSION",))))
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(f"thread {k}: {e!r}")
                return
            if got != (want_list, want_version):
                wrong.append(k)

    race(work, THREADS, gc_threshold=20)
    assert errors == [] and wrong == []


def test_top_level_literals_reads_only_literal_assignments(tmp_path: Path) -> None:
    f = tmp_path / "board.py"
    f.write_text('ARCH = "armv6m"\nWIDTH = 128\nPIN = machine.Pin(5)\nif 1:\n    HEIGHT = 64\n')
    assert literal.top_level_literals(f, ("ARCH", "WIDTH", "PIN", "HEIGHT")) == {"ARCH": "armv6m", "WIDTH": 128}
