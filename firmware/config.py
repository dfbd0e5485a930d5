"""The token's config: one file, written atomically, with a SHA-256 integrity tag.

Usage: cfg = config.load()  # dict, or None when never provisioned
       config.save({"token_id": 7, "secret": b"...", ...})  # from the station
"""

import binascii
import hashlib
import json
import os

PATH = "/paytoken.cfg"
_MAGIC = "PTCFG1 "

# field: (default, kind); bytes travel as hex in the file.
_FIELDS = {
    "token_id": (0, "int"),
    "secret": (b"", "bytes"),
    "scheme_key": (b"", "bytes"),
    "prefix": ("81", "str"),
    "format": (1, "int"),  # the code format (paycode.FORMATS); the scheme's
    "sync_key": (b"", "bytes"),
    "ppm": (0.0, "num"),
    "ref_time": (0, "int"),
    "locked": (False, "bool"),
    "last_step": (0, "int"),
    "last_sync": (0, "int"),
}
_MAX_FILE = 2048


def _tmp(path):
    return path + ".tmp"


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _split(path):
    i = path.rfind("/")
    if i < 0:
        return "", path
    return path[:i] or "/", path[i + 1:]


def _hexlify(b):
    return binascii.hexlify(b).decode()


def _unhex(s, name):
    try:
        return binascii.unhexlify(s)
    except ValueError:
        raise ValueError("config corrupt: field %s is not hex" % name) from None


def _tag(body):
    return _hexlify(hashlib.sha256(body).digest())


def _check(cfg):
    # Reject what the app could not use; messages name the field, never a value.
    for name in cfg:
        if name not in _FIELDS:
            raise ValueError("unknown config field: %s" % name)
    for name, (default, kind) in _FIELDS.items():
        v = cfg.get(name, default)
        if kind == "int" and (type(v) is not int or v < 0):
            raise ValueError("config field %s must be a non-negative int" % name)
        if kind == "bytes" and not isinstance(v, (bytes, bytearray)):
            raise ValueError("config field %s must be bytes" % name)
        if kind == "bool" and type(v) is not bool:
            raise ValueError("config field %s must be a bool" % name)
        if kind == "num" and (type(v) not in (int, float) or not -1000 <= v <= 1000):
            raise ValueError("config field %s must be a number within +-1000" % name)
    if cfg.get("token_id", 0) > 99999999:
        raise ValueError("config field token_id must have at most 8 digits")
    p = cfg.get("prefix", "81")
    if type(p) is not str or len(p) != 2 or not ("0" <= p[0] <= "9" and "0" <= p[1] <= "9"):
        raise ValueError("config field prefix must be two digits")
    if cfg.get("format", 1) < 1:
        raise ValueError("config field format must be a format number (1, 2, ...)")
    sk = cfg.get("scheme_key", b"")
    if len(sk) not in (0, 16):
        raise ValueError("config field scheme_key must be 16 bytes")
    s = cfg.get("secret", b"")
    if 0 < len(s) < 16:
        raise ValueError("config field secret must be at least 16 bytes")


def encode(cfg):
    # The file image of a config dict (bytes): header line with the tag, then JSON.
    _check(cfg)
    out = {}
    for name, (default, kind) in _FIELDS.items():
        v = cfg.get(name, default)
        out[name] = _hexlify(v) if kind == "bytes" else v
    body = json.dumps(out).encode()
    return (_MAGIC + _tag(body) + "\n").encode() + body


def decode(data):
    # File image -> config dict; ValueError("config corrupt: ...") on any damage.
    nl = data.find(b"\n")
    if nl != len(_MAGIC) + 64 or data[:len(_MAGIC)] != _MAGIC.encode():
        raise ValueError("config corrupt: bad header")
    body = data[nl + 1:]
    want = data[len(_MAGIC):nl]
    got = _tag(body).encode()
    diff = 0
    for i in range(64):
        diff |= want[i] ^ got[i]
    if diff:
        raise ValueError("config corrupt: integrity tag mismatch")
    try:
        raw = json.loads(body)
    except ValueError:
        raise ValueError("config corrupt: body is not JSON") from None
    if type(raw) is not dict:
        raise ValueError("config corrupt: body is not an object")
    cfg = {}
    for name, (default, kind) in _FIELDS.items():
        v = raw.get(name, default)
        if kind == "bytes":
            v = _unhex(v, name) if type(v) is str else v
        cfg[name] = v
    try:
        _check(cfg)
    except ValueError as e:
        raise ValueError("config corrupt: %s" % e) from None
    return cfg


def _read(path):
    n = os.stat(path)[6]
    if n > _MAX_FILE:
        raise ValueError("config corrupt: file too large")
    with open(path, "rb") as f:
        data = f.read(n)  # exactly the file: no spare contiguous block on a small heap
    return decode(data)


def _rename(src, dst):
    # Rename by base name from inside the folder: the unix port's VfsPosix mounted
    # with a root garbles a rename of two absolute paths, and on a device cwd is /.
    d, s = _split(src)
    dst_name = _split(dst)[1]
    here = os.getcwd()
    moved = d and d != here
    if moved:
        os.chdir(d)
    try:
        try:
            os.rename(s, dst_name)
        except OSError:
            # FAT refuses to rename onto an existing file: drop it, the temp survives.
            if not _exists(s) or not _exists(dst_name):
                raise
            os.remove(dst_name)
            os.rename(s, dst_name)
    finally:
        if moved:
            try:
                os.chdir(here)
            except OSError:
                # here lay outside the folder now mounted over it: stay in d
                pass


def recover(path=PATH):
    # Boot-time clean-up. A temp file beside a config is a write that never reached
    # its rename: drop it. A temp alone (FAT's remove-then-rename was cut) is promoted
    # if it is whole, else dropped.
    tmp = _tmp(path)
    if not _exists(tmp):
        return
    if _exists(path):
        _remove(tmp)
        return
    try:
        _read(tmp)
    except (OSError, ValueError):
        _remove(tmp)
        return
    _rename(tmp, path)


def load(path=PATH):
    # The config dict, or None if there is none. Raises ValueError if it is damaged.
    recover(path)
    if not _exists(path):
        return None
    return _read(path)


def save(cfg, path=PATH):
    # Atomic replace: write the temp, flush + fsync/sync, then rename over the old.
    data = encode(cfg)
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if hasattr(os, "fsync"):
            os.fsync(f.fileno())
    if hasattr(os, "sync"):
        os.sync()
    _rename(tmp, path)


def update(path=PATH, **changes):
    # Load, change some fields, save; returns the new config. Needs a config.
    cfg = load(path)
    if cfg is None:
        raise ValueError("no config to update")
    for k in changes:
        cfg[k] = changes[k]
    save(cfg, path)
    return cfg
