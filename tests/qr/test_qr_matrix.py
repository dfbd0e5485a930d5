"""The device QR encoder against segno (module for module), ISO known answers, and bad input."""

from __future__ import annotations

import os

import pytest
import qr
import segno
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qrcases import (
    CAPACITY,
    byte_aligned_after_terminator,
    matrix_of,
    segno_matrix,
)
from segno import encoder

EXAMPLES = 400 if os.environ.get("PAYTOKEN_SOAK") else 25
COMBOS = [(v, e) for v in (1, 2) for e in "LMQH"]


def _digits(version: int, ecc: str):
    return st.text(alphabet="0123456789", min_size=1, max_size=CAPACITY[(version, ecc)])


@pytest.mark.parametrize("version,ecc", COMBOS)
@pytest.mark.parametrize("mask", [*range(8), None])
def test_matrix_equals_segno(version, ecc, mask, segno_iso):
    # Every version x ECC level x mask (None = automatic choice) on random digits.
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(_digits(version, ecc))
    def check(digits):
        ours = qr.encode(digits, version, ecc, mask)
        ref = segno_iso.make_qr(
            digits, version=version, error=ecc, mask=mask, mode="numeric", boost_error=False
        )
        assert ours.size == 17 + 4 * version
        assert ours.mask == ref.mask  # the automatic choice too
        assert matrix_of(ours) == segno_matrix(ref)

    check()


@pytest.mark.parametrize("version,ecc", COMBOS)
def test_unpatched_segno_agrees_except_its_known_padding_bug(version, ecc):
    # Without the patch, segno must agree on every length it pads per ISO; on the
    # byte-aligned lengths (heuer/segno#148) it may differ, and there ours is checked
    # by the patched oracle above and by zxing-cpp in test_qr_scan.py.
    agreed = 0
    for n in range(1, CAPACITY[(version, ecc)] + 1):
        digits = "".join(str((7 * i + n) % 10) for i in range(n))
        ours = qr.encode(digits, version, ecc)
        if byte_aligned_after_terminator(n, version, ecc):
            continue
        ref = segno.make_qr(digits, version=version, error=ecc, mode="numeric", boost_error=False)
        assert (ours.mask, matrix_of(ours)) == (ref.mask, segno_matrix(ref)), n
        agreed += 1
    assert agreed >= CAPACITY[(version, ecc)] // 2


def test_payment_code_length_is_not_a_segno_quirk_case():
    # The token shows 18 digits at 1-M: plain segno is a valid oracle for it.
    assert not byte_aligned_after_terminator(18, 1, "M")
    for digits in ("000000000000000000", "999999999999999999", "123456789012345678"):
        ours = qr.encode(digits, 1, "M")
        ref = segno.make_qr(digits, version=1, error="M", mode="numeric", boost_error=False)
        assert (ours.mask, matrix_of(ours)) == (ref.mask, segno_matrix(ref))


def test_iso_18004_annex_example_codewords():
    # ISO/IEC 18004 annex "01234567" as 1-M: the data and ECC codewords.
    # 0001 | 0000001000 | 012->0000001100 | 345->0101011001 | 67->1000011 | 0000, pad
    q = qr.encode("01234567", 1, "M", 0)
    assert bytes(q.cw[:16]) == bytes.fromhex("10200C566180EC11EC11EC11EC11EC11")
    assert bytes(q.cw[16:26]) == bytes.fromhex("A524D4C1ED36C7872C55")


def test_format_information_table_c1():
    # Format bits read back from the symbol equal ISO/IEC 18004 table C.1 values.
    table = {("M", 0): 0x5412, ("L", 0): 0x77C4, ("H", 0): 0x1689, ("Q", 0): 0x355F,
             ("M", 5): 0x40CE, ("L", 7): 0x6976, ("H", 7): 0x083B, ("Q", 3): 0x3A06}  # fmt: skip
    for (ecc, mask), want in table.items():
        q = qr.encode("1", 1, ecc, mask)
        # second copy: row 8 from the right edge holds bits 0..7, column 8 bits 8..14
        got = 0
        for i in range(8):
            got |= q.module(q.size - 1 - i, 8) << i
        for i in range(8, 15):
            got |= q.module(8, q.size - 15 + i) << i
        assert got == want, (ecc, mask)
        assert q.module(8, q.size - 8)  # the dark module


@pytest.mark.parametrize("version,ecc", COMBOS)
def test_capacity_limits(version, ecc):
    cap = CAPACITY[(version, ecc)]
    assert qr.encode("7" * cap, version, ecc).size == 17 + 4 * version
    with pytest.raises(ValueError, match="do not fit"):
        qr.encode("7" * (cap + 1), version, ecc)


def test_eighteen_digits_fit_version_1_m():
    q = qr.encode(b"123456789012345678", 1, "M")
    assert q.size == 21 and q.version == 1 and q.ecc == "M"


@pytest.mark.parametrize(
    "args,message",
    [
        (("12a4",), "not a digit at position 2"),
        (("12 4",), "not a digit"),
        (("١٢٣",), "not a digit"),  # Arabic-Indic digits are not ASCII digits
        (("",), "no digits"),
        (("123", 3), "version must be 1 or 2"),
        (("123", 0), "version must be 1 or 2"),
        (("123", 1, "X"), "ecc must be"),
        (("123", 1, "LM"), "ecc must be"),
        (("123", 1, "m"), "ecc must be"),
        (("123", 1, "M", 8), "mask must be"),
        (("123", 1, "M", -1), "mask must be"),
    ],
)
def test_bad_input_is_a_clear_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        qr.encode(*args)


def test_reuse_into_gives_the_same_symbol():
    q = qr.QR()
    first = qr.encode("99", 2, "H", None, q)
    assert first is q
    qr.encode("123456789012345678", 1, "M", None, q)
    fresh = qr.encode("123456789012345678", 1, "M")
    assert (q.size, q.mask, matrix_of(q)) == (fresh.size, fresh.mask, matrix_of(fresh))
    with pytest.raises(ValueError, match="outside"):
        q.module(21, 0)


@settings(max_examples=EXAMPLES * 8, deadline=None)
@given(st.sampled_from([21, 25]), st.sampled_from(["&&", "&", "", "|", "||"]), st.data())
def test_penalty_score_equals_segno_on_arbitrary_matrices(size, bias, data):
    # The four ISO penalty rules (N1 runs, N2 blocks, N3 finder-like, N4 balance),
    # scored on any matrix; AND/OR of random words biases it light or dark, so runs,
    # blocks and unbalanced symbols all occur.
    word = st.integers(0, (1 << size) - 1)
    words = []
    for _ in range(size):
        w = data.draw(word)
        for op in bias:
            w = w & data.draw(word) if op == "&" else w | data.draw(word)
        words.append(w)
    q = qr.QR()
    q.size = size
    q.version = (size - 17) // 4
    for y, w in enumerate(words):
        q._put_row(y, w)
    matrix = tuple(bytearray((w >> x) & 1 for x in range(size)) for w in words)
    assert q._penalty() == sum(encoder.mask_scores(matrix, size, size))


def _iso_mask(m: int, i: int, j: int) -> bool:
    # ISO/IEC 18004 table 10, data mask pattern conditions (i = row, j = column)
    return [(i + j) % 2 == 0, i % 2 == 0, j % 3 == 0, (i + j) % 3 == 0,
            (i // 2 + j // 3) % 2 == 0, (i * j) % 2 + (i * j) % 3 == 0,
            ((i * j) % 2 + (i * j) % 3) % 2 == 0, ((i + j) % 2 + (i * j) % 3) % 2 == 0][m]


def _iso_function(version: int, x: int, y: int) -> bool:
    # a function module of ISO/IEC 18004 (finders with separators, format information,
    # timing patterns, the dark module, version 2's alignment pattern at (18, 18))
    n = 17 + 4 * version
    if (x < 9 and y < 9) or (x >= n - 8 and y < 9) or (x < 9 and y >= n - 8):
        return True
    if x == 6 or y == 6:
        return True
    return version == 2 and abs(x - 18) <= 2 and abs(y - 18) <= 2


def test_the_encoders_tables_are_the_standards():
    # qr.py tabulates the masks; derive them again here from ISO/IEC 18004: the data
    # modules, and each mask along every row and down every column of version 2
    for version in (1, 2):
        n = 17 + 4 * version
        for y in range(n):
            assert qr._data_row(y, n, version) == sum(
                1 << x for x in range(n) if not _iso_function(version, x, y)), (version, y)
    for m in range(8):
        for k in range(25):
            assert qr._mrow(m, k) == sum(1 << j for j in range(25) if _iso_mask(m, k, j))
            assert qr._mcol(m, k) == sum(1 << i for i in range(25) if _iso_mask(m, i, k))


@pytest.mark.parametrize("version", [1, 2])
def test_each_masks_score_is_the_penalty_of_the_masked_symbol(version):
    # encode() scores each mask from the unmasked rows and columns: the same as
    # applying the mask and scoring the symbol
    q = qr.encode("818765432101234567"[: 10 + version * 4], version, "L", 0)
    q._apply_mask(0)  # back to unmasked
    for m in range(8):
        q._load()
        fast = q._score(m)
        q._apply_mask(m)
        assert q._penalty() == fast, m
        q._apply_mask(m)
