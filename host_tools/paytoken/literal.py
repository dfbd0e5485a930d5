"""Python literals read from text, safe in threads: the host's one use of ``ast``.

Usage: ``literal_eval("[1, 2]")``; ``top_level_literals(path, ("ARCH",))``.

CPython 3.11 keeps the AST converter's recursion depth in state that all threads
share (python/cpython#106905). A thread switch inside a parse, which a garbage
collection running a finalizer allows, lets another thread reset it, and the first
parse fails with ``SystemError: AST constructor recursion depth mismatch``. A station
deploys and provisions tokens in parallel threads, so every parse here holds one lock.
The parses are small, and the lock costs nothing measurable beside the serial I/O.
"""

from __future__ import annotations

import ast
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def literal_eval(text: str) -> Any:
    """``ast.literal_eval`` of ``text``, one thread at a time."""
    with _LOCK:
        return ast.literal_eval(text)


def top_level_literals(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The literal values of ``path``'s top-level ``NAME = value`` lines for ``names``.

    The file is read, not run. A name whose value is not a literal is left out."""
    with _LOCK:
        body = ast.parse(path.read_text(), str(path)).body
        found: dict[str, Any] = {}
        for node in body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                tgt = node.targets[0]
                if isinstance(tgt, ast.Name) and tgt.id in names:
                    try:
                        found[tgt.id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
    return found
