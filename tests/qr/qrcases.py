"""Shared tables and helpers of the QR tests (ISO/IEC 18004 capacities, segno's quirk)."""

from __future__ import annotations

# Numeric capacity (digits) per version and ECC level, ISO/IEC 18004 table 7.
CAPACITY = {
    (1, "L"): 41, (1, "M"): 34, (1, "Q"): 27, (1, "H"): 17,
    (2, "L"): 77, (2, "M"): 63, (2, "Q"): 48, (2, "H"): 34,
}  # fmt: skip
DATA_CODEWORDS = {
    (1, "L"): 19, (1, "M"): 16, (1, "Q"): 13, (1, "H"): 9,
    (2, "L"): 34, (2, "M"): 28, (2, "Q"): 22, (2, "H"): 16,
}  # fmt: skip


def byte_aligned_after_terminator(n_digits: int, version: int, ecc: str) -> bool:
    """True where segno (issue heuer/segno#148) appends a spurious all-zero codeword.

    ISO/IEC 18004 7.4.10 adds padding bits only when the stream after the terminator
    is *not* on a codeword boundary; segno adds 8 zero bits when it is.
    """
    bits = 4 + 10 + 10 * (n_digits // 3) + (0, 4, 7)[n_digits % 3]
    cap = DATA_CODEWORDS[(version, ecc)] * 8
    bits += min(4, cap - bits)
    return bits % 8 == 0


def matrix_of(q) -> list[list[int]]:
    """The module matrix of our encoder's symbol, 1 = dark, without quiet zone."""
    return [[1 if q.module(x, y) else 0 for x in range(q.size)] for y in range(q.size)]


def segno_matrix(s) -> list[list[int]]:
    return [list(row) for row in s.matrix]
