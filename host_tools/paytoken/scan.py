"""Read a QR code from a picture with zxing-cpp, the way a phone at the till would.

Usage: ``read_qr("screen.png")`` returns the text of the one QR code in the picture.
"""

from __future__ import annotations

import os

import zxingcpp
from PIL import Image, UnidentifiedImageError


class ScanError(Exception):
    """No QR code could be decoded (or the picture could not be read)."""


def read_qr(image: str | os.PathLike[str] | Image.Image, *, allow_inverted: bool = False) -> str:
    """Decode the QR code in ``image`` (a path or a PIL image) and return its text.

    By default only normal polarity (dark modules on a light ground) is accepted,
    as many scanners read nothing else; ``allow_inverted`` also tries light-on-dark.
    Raises :class:`ScanError` when nothing decodes or several different codes do.
    """
    if isinstance(image, Image.Image):
        img = image
        name = "image"
    else:
        name = os.fspath(image)
        try:
            with Image.open(name) as opened:
                img = opened.convert("L")
        except (OSError, UnidentifiedImageError) as exc:
            raise ScanError(f"cannot read picture {name}: {exc}") from None
    found = zxingcpp.read_barcodes(
        img,
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
        try_invert=allow_inverted,
    )
    texts = sorted({b.text for b in found if b.valid})
    if not texts:
        raise ScanError(f"no QR code decoded in {name}")
    if len(texts) > 1:
        raise ScanError(f"{len(texts)} different QR codes in {name}")
    return texts[0]
