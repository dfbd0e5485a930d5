"""Sub-commands (being built; see docs/ARCHITECTURE.md for the owner)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands (none yet)."""
