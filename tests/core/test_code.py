"""The 18-digit payment code v1 and the input checks: precise errors, error detection."""

from __future__ import annotations

import itertools
import random

import paycode
import pytest
from hypothesis import given
from hypothesis import strategies as st

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
SECRET = paycode.decode_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
T = 1_700_000_000


def test_layout() -> None:
    code = paycode.payment_code(SECRET, 12345678, T, KEY)
    assert len(code) == 18 and code.isdigit() and code[:2] == "81"
    assert paycode.damm(code) == 0
    prefix, tid, residue, otp = paycode.parse_code(code, KEY)
    assert (prefix, tid, residue, otp) == ("81", 12345678, (T // 30) % 10, paycode.totp(SECRET, T))
    # C is FF1 of token id || residue || otp under tweak = the prefix's ASCII digits.
    inner = "%08d%d%s" % (12345678, (T // 30) % 10, paycode.totp(SECRET, T))
    assert code[2:17] == paycode.ff1_encrypt(KEY, b"81", inner)
    assert paycode.group4(code) == " ".join(
        [code[0:4], code[4:8], code[8:12], code[12:16], code[16:]]
    )
    assert paycode.parse_code(paycode.group4(code), KEY) == (prefix, tid, residue, otp)


@given(
    st.binary(min_size=16, max_size=40),
    st.integers(0, 99_999_999),
    st.integers(0, 2**34),
    st.binary(min_size=16, max_size=16),
    st.sampled_from(["81", "80", "89", "16", "24", "31", "61", "63", "99"]),
)
def test_round_trip(secret: bytes, tid: int, t: int, key: bytes, prefix: str) -> None:
    code = paycode.payment_code(secret, tid, t, key, prefix)
    assert paycode.parse_code(code, key) == (prefix, tid, (t // 30) % 10, paycode.totp(secret, t))
    assert paycode.parse_code(code, {prefix: key}) == paycode.parse_code(code, key)


def test_codes_unlinkable_without_key() -> None:
    # Same token, consecutive steps: the encrypted part shares no positional pattern
    # beyond chance (at most a few equal digits of 15).
    codes = [paycode.payment_code(SECRET, 42, T + 30 * i, KEY) for i in range(50)]
    same = [
        sum(a == b for a, b in zip(c1[2:17], c2[2:17], strict=True))
        for c1, c2 in itertools.pairwise(codes)
    ]
    assert len(set(codes)) == 50
    assert sum(same) / len(same) < 3.5  # 1.5 expected for independent digits


def test_every_single_digit_error_and_adjacent_transposition_caught() -> None:
    rng = random.Random(7)
    for _ in range(40):
        code = paycode.payment_code(SECRET, rng.randrange(10**8), rng.randrange(2**32), KEY)
        for i in range(18):
            for d in "0123456789":
                if d != code[i]:
                    bad = code[:i] + d + code[i + 1 :]
                    with pytest.raises(ValueError, match="check digit is wrong"):
                        paycode.parse_code(bad, KEY)
        for i in range(17):
            if code[i] != code[i + 1]:
                bad = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
                with pytest.raises(ValueError, match="check digit is wrong"):
                    paycode.parse_code(bad, KEY)


def _with_check(body17: str) -> str:
    return body17 + str(paycode.damm(body17))


@pytest.mark.parametrize(
    "code,match",
    [
        ("81234", "5 digits, not 18"),
        ("8" * 19, "19 digits, not 18"),
        ("", "0 digits, not 18"),
        ("81234567890123456x", "non-digit"),
        ("８１２３４５６７８９０１２３４５６７", "non-digit"),  # full-width digits
        ("81-2345678901234567", "non-digit"),
    ],
)
def test_parse_errors(code: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paycode.parse_code(code, KEY)


@pytest.mark.parametrize("prefix", ["10", "12", "15", "25", "28", "30", "62", "05", "00"])
def test_reserved_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="unknown prefix " + prefix):
        paycode.parse_code(_with_check(prefix + "0" * 15), KEY)
    with pytest.raises(ValueError, match="prefix"):
        paycode.payment_code(SECRET, 1, T, KEY, prefix)


def test_prefix_not_in_key_table() -> None:
    code = paycode.payment_code(SECRET, 1, T, KEY, "82")
    with pytest.raises(ValueError, match="unknown prefix 82"):
        paycode.parse_code(code, {"81": KEY})


@pytest.mark.parametrize("bad", ["8", "811", "8a", 81])
def test_prefix_shape(bad: object) -> None:
    with pytest.raises(ValueError, match="two digits"):
        paycode.check_prefix(bad)


@pytest.mark.parametrize("tid", [-1, 100_000_000])
def test_token_id_range(tid: int) -> None:
    with pytest.raises(ValueError, match="token id"):
        paycode.payment_code(SECRET, tid, T, KEY)


def test_bad_scheme_key_length() -> None:
    with pytest.raises(ValueError, match="key must be 16 bytes"):
        paycode.payment_code(SECRET, 1, T, KEY[:15])


def test_resolve_step_window() -> None:
    now = T // 30
    for d in range(-4, 5):
        assert paycode.resolve_step((now + d) % 10, T) == now + d
    assert paycode.resolve_step((now + 5) % 10, T) == -1
    # A verifier's view: the step from the residue, one HOTP, a constant-time compare.
    code = paycode.payment_code(SECRET, 7, T - 90, KEY)
    _, tid, residue, otp = paycode.parse_code(code, KEY)
    step = paycode.resolve_step(residue, T)
    assert step == (T - 90) // 30 and paycode.equal(paycode.hotp(SECRET, step), otp)


@pytest.mark.parametrize(
    "text,match",
    [
        ("JBSWY3DPEHPK3PXP!BSWY3DPEHPK3PXP", "character 17 is not in the base32 alphabet"),
        ("JBSWY3DPEHPK3PX0", "character 16 is not in the base32 alphabet"),
        ("JBSWY3DP", "secret is 40 bits; RFC 4226 requires at least 128"),
        ("JBSWY3DPEHPK3PXPJ", "impossible length"),
        ("", "empty"),
        ("  ==== ", "empty"),
        ("otpauth://totp/x?issuer=y", "no secret parameter"),
        ("otpauth://totp/x", "no query"),
        ("otpauth://totp/x?secret=JBSW%zz", "bad %-escape"),
    ],
)
def test_decode_secret_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        paycode.decode_secret(text)
    # The message never repeats the secret.
    assert "JBSW" not in str(info.value)


def test_decode_secret_accepts_padding_and_percent() -> None:
    want = paycode.decode_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert paycode.decode_secret("jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp") == want
    assert (
        paycode.decode_secret("otpauth://totp/a:b?SECRET=JBSWY3DPEHPK3PXP%20JBSWY3DPEHPK3PXP")
        == want
    )
    assert paycode.decode_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") == b"12345678901234567890"
    assert paycode.decode_secret("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE===") == b"abcdefghijklmnopqr"


@pytest.mark.parametrize(
    "args,match",
    [
        ((2200, 1, 1), "year 2200"),
        ((1969, 12, 31), "year 1969"),
        ((2100, 2, 29), "day 29 outside 1..28"),
        ((2000, 13, 1), "month 13"),
        ((2000, 1, 1, 24, 0, 0), "time of day"),
    ],
)
def test_civil_errors(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paycode.unix_from_civil(*args)


def test_civil_from_unix_range() -> None:
    with pytest.raises(ValueError, match="before 1970"):
        paycode.civil_from_unix(-1)
    with pytest.raises(ValueError, match="after 2199"):
        paycode.civil_from_unix(7258118400)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: paycode.hotp(SECRET, 0, digits=5), "digits must be 6..10"),
        (lambda: paycode.hotp(SECRET, -1), "counter"),
        (lambda: paycode.totp(SECRET, -1), "unix_time"),
        (lambda: paycode.totp(SECRET, 0, period=0), "period"),
        (lambda: paycode.hotp(SECRET, 0, algorithm="md5"), "sha1, sha256 or sha512"),
        (lambda: paycode.damm("12a"), "non-digit"),
        (lambda: paycode.ff1_encrypt(KEY, b"", "12345"), "too short: 5 numerals"),
        (lambda: paycode.ff1_encrypt(KEY, b"", "12345a"), "outside radix 10"),
        (lambda: paycode.ff1_encrypt(KEY, b"", "123456", 37), "radix must be 2..36"),
        (lambda: paycode.ff1_encrypt(KEY, bytes(256), "123456"), "tweak"),
    ],
)
def test_other_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_codes_made_in_many_threads_at_once_are_each_right() -> None:
    # The host imports paycode too: a station makes the expected codes of eight tokens in
    # eight threads, the issuer online codes in its request threads, all under one scheme
    # key. FF1's cached context (its scratch blocks) must never be shared mid-code. A
    # tiny switch interval makes the threads interleave inside every code.
    import threading

    from threadrace import race

    jobs = [(bytes([i]) * 20, 10_000_000 + i, T + 30 * i) for i in range(16)]
    want = [paycode.payment_code(s, tid, t, KEY) for s, tid, t in jobs]
    got: dict[int, list[str]] = {}
    start = threading.Barrier(8)  # all at once: none may finish before the others begin

    def run(k: int) -> None:
        start.wait()
        rounds = [[paycode.payment_code(s, tid, t, KEY) for s, tid, t in jobs] for _ in range(10)]
        got[k] = want if all(r == want for r in rounds) else next(r for r in rounds if r != want)

    race(run, 8)
    assert all(got[k] == want for k in range(8)), [sum(a != b for a, b in zip(got[k], want, strict=True)) for k in got]
