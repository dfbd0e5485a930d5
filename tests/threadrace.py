"""Run threads so that they switch as often as CPython allows: for thread-safety tests.

Usage (tests/ is on sys.path through tests/conftest.py)::

    from threadrace import race
    race(work, 8)                    # work(k) for k in 0..7, all started before any joins
    race(work, 8, gc_threshold=20)   # and collections that often (finalizers then switch threads)
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable


def race(work: Callable[[int], None], n: int, gc_threshold: int | None = None) -> None:
    """Run ``work(k)`` in ``n`` threads with a 1 µs switch interval; restore it after."""
    old_interval, old_threshold = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    if gc_threshold is not None:
        gc.set_threshold(gc_threshold, 1, 1)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
        gc.set_threshold(*old_threshold)
