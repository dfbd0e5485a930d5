# The hardware folder: atomic JSON/bytes files and the world clock.
# World time = the host's UTC clock + an offset from world.json, or a frozen
# instant. Only sim boards read it; a real port's epoch is never assumed.
import json
import os
import time


def hw_folder():
    # The hardware folder named by PAYTOKEN_HW (os.getenv works on both interpreters).
    f = os.getenv("PAYTOKEN_HW")
    if not f:
        raise OSError("PAYTOKEN_HW is not set: the sim board needs a hardware folder")
    return f


def _path(folder, name):
    return folder + "/" + name


def _tmp(p):
    # A unique temp name, so the host and the device never share one.
    return p + ".%08x.tmp" % int.from_bytes(os.urandom(4), "big")


def load(folder, name, default=None):
    try:
        f = open(_path(folder, name))
    except OSError:
        return default
    try:
        return json.load(f)
    except ValueError:
        raise OSError("corrupt %s in the hardware folder %s" % (name, folder))
    finally:
        f.close()


def save(folder, name, obj):
    # Write a temp file, then rename over the old one: readers see old or new.
    p = _path(folder, name)
    t = _tmp(p)
    with open(t, "w") as f:
        f.write(json.dumps(obj))
    os.rename(t, p)


def save_bytes(folder, name, data):
    p = _path(folder, name)
    t = _tmp(p)
    with open(t, "wb") as f:
        f.write(data)
    os.rename(t, p)


def size(folder, name):
    try:
        return os.stat(_path(folder, name))[6]
    except OSError:
        return 0


def host_utc():
    # UTC seconds since 1970 on the unix port and on CPython (never on a real port).
    try:
        return time.time_ns() / 1e9
    except AttributeError:
        return float(time.time())


def world_time(folder):
    # world.json: {"offset": s} (host UTC + s), {"frozen": t} (time stands still)
    # or {"virtual": t} (time moves only while the board naps or sleeps: advance()).
    w = load(folder, "world.json", None) if folder else None
    if w:
        if w.get("frozen") is not None:
            return float(w["frozen"])
        if w.get("virtual") is not None:
            return float(w["virtual"])
        return host_utc() + w.get("offset", 0.0)
    return host_utc()


def advance(folder, s):
    # Move a virtual world on by s seconds; False (unchanged) for any other world.
    w = load(folder, "world.json", None)
    if not w or w.get("virtual") is None:
        return False
    w["virtual"] = float(w["virtual"]) + s
    save(folder, "world.json", w)
    return True
