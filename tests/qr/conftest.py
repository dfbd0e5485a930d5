"""Fixtures for the QR encoder tests: the device module ``qr`` importable on CPython,
and segno as the oracle, with its one known deviation from ISO/IEC 18004 patched."""

from __future__ import annotations

import sys

import pytest
from paytoken import upy

if str(upy.FIRMWARE_DIR) not in sys.path:
    sys.path.insert(0, str(upy.FIRMWARE_DIR))


def _iso_padding_bits(buff, version, length):  # noqa: ARG001 - segno's signature
    buff.extend([0] * (-length % 8))


@pytest.fixture
def segno_iso(monkeypatch):
    """segno with write_padding_bits fixed as proposed in heuer/segno#148."""
    import segno
    from segno import encoder

    monkeypatch.setattr(encoder, "write_padding_bits", _iso_padding_bits)
    return segno
