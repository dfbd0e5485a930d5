# atexit for a port without sys.atexit: the runner calls the registered functions
# in a last top-level call (the sim board flushes its I2C counters there).
_fns = []


def register(f):
    _fns.append(f)
    return f
