"""The firmware's modules under CPython, under a private package name.

Usage::

    ui = fwload.module("ui")                 # firmware/ui.py, as paytoken._fw.ui
    I2CBus = fwload.module("sim.bus").I2CBus

The firmware's modules import each other by top-level names (``import config``), as
they must on the token. Loaded here, each runs with its own ``__import__``, which
resolves those names, and the ``sim`` package's relative imports, to
``paytoken._fw.<name>`` loaded from ``upy.FIRMWARE_DIR``; anything else (the standard
library, Adafruit's drivers, ``paycode``, which is the installed package itself) is
imported as usual. Neither ``sys.path`` nor a top-level name in ``sys.modules``
changes: a host process never holds a module called ``config``, ``app`` or ``ui``.
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from paytoken import upy

PACKAGE = "paytoken._fw"
SHARED = frozenset({"paycode"})  # the portable core: the host package of the same files
_lock = threading.RLock()


@functools.cache
def names(firmware_dir: Path | None = None) -> frozenset[str]:
    """The top-level module names the firmware tree defines (``app``, ``config``, ``sim``, ...)."""
    fw = firmware_dir or upy.FIRMWARE_DIR
    return frozenset({p.stem for p in fw.glob("*.py")} | {p.parent.name for p in fw.glob("*/__init__.py")})


def _source(name: str) -> tuple[Path, bool] | None:
    base = upy.FIRMWARE_DIR.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    f = base.parent / (base.name + ".py")
    return (f, False) if f.is_file() else None


def module(name: str) -> ModuleType:
    """The firmware module ``name`` (dotted for the ``sim`` package's), loaded once."""
    full = f"{PACKAGE}.{name}"
    with _lock:
        m = sys.modules.get(full)
        if m is not None:
            return m
        head, _, tail = name.rpartition(".")
        parent = module(head) if head else None
        m = sys.modules.get(full)  # the parent's own imports may have loaded it
        if m is not None:
            return m
        src = _source(name)
        if src is None or name.partition(".")[0] in SHARED:
            raise ModuleNotFoundError(f"no firmware module {name!r} in {upy.FIRMWARE_DIR}", name=name)
        path, is_pkg = src
        spec = importlib.util.spec_from_file_location(
            full, path, submodule_search_locations=[str(path.parent)] if is_pkg else None)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError(f"cannot load the firmware module {name!r}", name=name)
        m = importlib.util.module_from_spec(spec)
        m.__dict__["__builtins__"] = _BUILTINS  # exec keeps it: our __import__ inside
        sys.modules[full] = m
        try:
            spec.loader.exec_module(m)
        except BaseException:
            del sys.modules[full]
            raise
        if parent is not None:
            setattr(parent, tail, m)
        return m


def _import(name: str, globals: dict[str, Any] | None = None, locals: Any = None,
            fromlist: Any = (), level: int = 0) -> ModuleType:
    # The firmware modules' __import__: firmware names here, anything else as usual.
    if level:
        pkg = (globals or {}).get("__package__") or ""
        if not pkg.startswith(PACKAGE + "."):
            return builtins.__import__(name, globals, locals, fromlist, level)
        bits = pkg[len(PACKAGE) + 1:].split(".")
        if level - 1 >= len(bits):
            raise ImportError("attempted relative import beyond the firmware tree")
        base = ".".join(bits[:len(bits) - (level - 1)])
        target = f"{base}.{name}" if name else base
    else:
        top = name.partition(".")[0]
        if top in SHARED or top not in names():
            return builtins.__import__(name, globals, locals, fromlist, level)
        target = name
    m = module(target)
    if fromlist:
        for attr in fromlist:
            if attr != "*" and not hasattr(m, attr) and _source(f"{target}.{attr}"):
                module(f"{target}.{attr}")  # a submodule named in a from-import
        return m
    return m if level else module(target.partition(".")[0])  # `import a.b` binds a


_BUILTINS = dict(vars(builtins))
_BUILTINS["__import__"] = _import
