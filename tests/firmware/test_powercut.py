"""Power cut during config writes: SIGKILL the real interpreter at random instants.

Each trial starts MicroPython saving config after config (each a different size)
and kills it after a random delay. The file left behind must load, be exactly one
of the configs written (old or new, never a mix or a fragment), and never go back
in the sequence. CI runs a sample; `make soak` (PAYTOKEN_SOAK=1) runs 250 trials.
"""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest
from fwkit import fwconfig
from paytoken import upy

_EXPECTED = """
def expected(i):
    return {'token_id': i % 100000000, 'last_step': i, 'locked': bool(i & 1),
            'secret': bytes([(i * 7 + k) & 255 for k in range(16 + i % 41)]),
            'scheme_key': bytes([i & 255]) * 16, 'prefix': '81', 'format': 1 + i % 2,
            'ppm': (i % 200) / 8 - 10, 'ref_time': 1767225600 + i, 'last_sync': i,
            'sync_key': b''}
"""
ns: dict = {}
exec(_EXPECTED, ns)
expected = ns["expected"]


def _child(path: str, start: int) -> str:
    return (
        "import config, sys\n" + _EXPECTED + f"i = {start}\n"
        "sys.stdout.write('ready\\n')\n"
        "while True:\n"
        f"    config.save(expected(i), {path!r})\n"
        "    sys.stdout.write('.')\n"  # committed: save() returned
        "    i += 1\n"
    )


@pytest.mark.slow
def test_power_cut_never_leaves_a_broken_config(tmp_path):
    trials = 250 if os.environ.get("PAYTOKEN_SOAK") else 40
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    path = str(tmp_path / "paytoken.cfg")
    tmp = path + ".tmp"
    fwconfig.save(expected(0), path)
    env = dict(os.environ, MICROPYPATH=upy.micropypath())
    committed = 0
    stats = {"trials": 0, "temp_left": 0, "advanced": 0, "unchanged": 0, "writes": 0}
    for _ in range(trials):
        proc = subprocess.Popen(
            [upy.micropython(), "-c", _child(path, committed + 1)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        # Wait until the interpreter is up and writing (a loaded CI box starts it
        # slowly) and has committed 0-2 writes (a busy disk makes one slow: counted,
        # not timed), then cut the power at a random instant of the write loop.
        assert proc.stdout.readline() == b"ready\n"
        done = rng.randrange(3)
        assert proc.stdout.read(done) == b"." * done
        time.sleep(rng.uniform(0.0, 0.03))
        proc.kill()
        _, err = proc.communicate()
        assert b"Traceback" not in err, err.decode()[-500:]
        stats["trials"] += 1
        stats["temp_left"] += os.path.exists(tmp)
        cfg = fwconfig.load(path)  # raises on a broken config
        assert cfg is not None, "the config vanished"
        i = cfg["last_step"]
        assert cfg == expected(i), f"config is not one of the written ones (step {i})"
        assert i >= committed + done, f"config went back from {committed} (+{done} done) to {i}"
        assert not os.path.exists(tmp), "load() left the stale temp behind"
        stats["advanced" if i > committed else "unchanged"] += 1
        stats["writes"] += i - committed
        committed = i
    print(f"power-cut campaign: {stats}")
    # The kills must land inside writes, not only around them.
    assert stats["advanced"] > trials // 4
    assert stats["temp_left"] > 0 or trials < 40
