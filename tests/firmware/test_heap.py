"""The real firmware, compiled to .mpy, under a small MicroPython heap on the sim boards.

The boot, its first code frame and the next step's new code must fit ``HEAP_K`` KB
(``-X heapsize``), the sim chip models included. bench_firmware.py reports the
smallest heap that works and the firmware's own share; this test makes a regression
fail CI. A run far below the limit must fail with MemoryError, so the limit binds.
"""

from __future__ import annotations

from pathlib import Path

import paycode
import pytest
from fwkit import SCHEME_KEY, SECRET, TOKEN_ID, mpy_tree, token_config
from paytoken import panel, scan, simrun, upy, vhw

# The smallest heap measured for boot + first frame + the next step's code is
# 62 KB on sim (128x64; 61 KB before the faster QR mask tables and the format seam of
# 2026-12-01, a deliberate trade: 340 -> 137 ms of emulated QR time on the rp2 port,
# whose own budgets are ≤ 32 KB deployed and ≤ 16 KB frozen, bench_rp2.py) and 57 KB on
# sim-128x32, of which the chip models hold about 25 KB (make bench, each trial from a
# fresh state); 1 KB of margin for the longer temp paths of a pytest run.
HEAP_K = 63
T_EDGE = 1790000039  # the last second of a step: frame 2 is the next step's code


@pytest.fixture(scope="module")
def mpy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mpy")
    mpy_tree(out)  # firmware, paycode and the sim models as .mpy, as deployed
    return out


def _boot(mpy: Path, flash: Path, hw: Path, heap: str | None, frames: int):
    code = simrun.boot_code(flash, frames)
    return upy.run(code, path=[mpy, hw.parent / "board"], heapsize=heap, env=vhw.env(hw), check=False)


@pytest.mark.parametrize("board", ["sim", "sim-128x32"])
def test_first_frame_and_next_code_fit_the_heap(tmp_path, mpy, board):
    small = simrun.prepare(tmp_path / "small", config=token_config(), at=T_EDGE, board=board)
    p = _boot(mpy, *small, f"{HEAP_K}K", 2)
    assert p.returncode == 0 and "Traceback" not in p.stdout + p.stderr, p.stderr[-800:] + p.stdout[-800:]
    # The same pixels as an unconstrained run: the heap limit changed nothing.
    big = simrun.prepare(tmp_path / "big", config=token_config(), at=T_EDGE, board=board)
    q = _boot(mpy, *big, None, 2)
    assert q.returncode == 0, q.stderr[-800:]
    got, w, h, on, _inv = vhw.panel(small[1])
    want = vhw.panel(big[1])[0]
    assert on and got == want
    # The step moved on during the run, so the new code was stored as the tamper floor.
    assert simrun._fwconfig().load(str(small[0] / "paytoken.cfg"))["last_step"] == T_EDGE // 30
    if h == 64:
        png = tmp_path / "frame.png"
        panel.panel_png(got, w, h, png, scale=4)
        digits = scan.read_qr(png)
        # The second frame shows the code of the next step (T_EDGE + 1).
        assert digits == paycode.payment_code(SECRET, TOKEN_ID, T_EDGE + 1, SCHEME_KEY, "81")
    else:
        assert any(got), "the 128x32 panel is blank"


def test_heap_limit_binds(tmp_path, mpy):
    # Far below the limit the boot runs out of memory: -X heapsize really applies.
    flash, hw = simrun.prepare(tmp_path / "t", config=token_config(), at=T_EDGE)
    p = _boot(mpy, flash, hw, "24K", 1)
    assert p.returncode != 0 and "MemoryError" in p.stdout + p.stderr
