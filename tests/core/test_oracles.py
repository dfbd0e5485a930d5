"""Independent oracles on random inputs: pyotp, python-stdnum, cryptography, datetime, base64."""

from __future__ import annotations

import base64
import datetime as dt

import paycode
import pyotp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from paycode import aes, aespure
from stdnum import damm as stdnum_damm

UTC = dt.timezone.utc
T_2200 = 7258118400  # 2200-01-01T00:00:00Z, the end of the civil range

secrets = st.binary(min_size=16, max_size=80)
times = st.integers(min_value=0, max_value=2**37)  # pyotp stops at year 9999


@given(secrets, st.integers(min_value=0, max_value=2**64 - 1), st.integers(6, 10))
def test_hotp_matches_pyotp(key: bytes, counter: int, digits: int) -> None:
    b32 = base64.b32encode(key).decode()
    assert paycode.hotp(key, counter, digits) == pyotp.HOTP(b32, digits=digits).at(counter)


@given(secrets, times, st.sampled_from([15, 30, 60]), st.integers(6, 8))
def test_totp_matches_pyotp(key: bytes, t: int, period: int, digits: int) -> None:
    b32 = base64.b32encode(key).decode()
    want = pyotp.TOTP(b32, digits=digits, interval=period).at(t)
    assert paycode.totp(key, t, period, digits) == want


@given(secrets, times)
def test_totp_sha256_matches_pyotp(key: bytes, t: int) -> None:
    import hashlib

    b32 = base64.b32encode(key).decode()
    assert paycode.totp(key, t, algorithm="sha256") == pyotp.TOTP(b32, digest=hashlib.sha256).at(t)


@given(st.text(alphabet="0123456789", max_size=40))
def test_damm_matches_stdnum(digits: str) -> None:
    check = paycode.damm(digits)
    assert str(check) == stdnum_damm.calc_check_digit(digits)
    assert stdnum_damm.is_valid(digits + str(check))


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_pure_aes_matches_cryptography(key: bytes, block: bytes) -> None:
    want = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)
    for impl in (aespure.new, aes.new):
        buf = bytearray(block)
        impl(key).encrypt(buf, buf)
        assert bytes(buf) == want


@given(st.integers(min_value=0, max_value=T_2200 - 1))
def test_civil_matches_datetime(t: int) -> None:
    d = dt.datetime.fromtimestamp(t, UTC)
    civil = (d.year, d.month, d.day, d.hour, d.minute, d.second)
    assert paycode.civil_from_unix(t) == civil
    assert paycode.unix_from_civil(*civil) == t


@given(st.binary(min_size=16, max_size=64), st.data())
def test_decode_secret_matches_base64(key: bytes, data: st.DataObject) -> None:
    text = base64.b32encode(key).decode()
    if data.draw(st.booleans()):
        text = text.rstrip("=")
    if data.draw(st.booleans()):
        text = text.lower()
    if data.draw(st.booleans()):
        text = " ".join(text[i : i + 4] for i in range(0, len(text), 4))
    assert paycode.decode_secret(text) == key
    uri = pyotp.TOTP(base64.b32encode(key).decode().rstrip("=")).provisioning_uri(
        name="alice@example.com", issuer_name="Pay Token"
    )
    assert paycode.decode_secret(uri) == key


@settings(max_examples=200)
@given(
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=20),
    st.integers(2, 36),
    st.data(),
)
def test_ff1_round_trip_any_radix(
    key: bytes, tweak: bytes, radix: int, data: st.DataObject
) -> None:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"[:radix]
    n_min = 2
    while radix**n_min < 1_000_000:
        n_min += 1
    # Up to 70 numerals: long enough that d > 16 takes the extra PRF blocks.
    x = data.draw(st.text(alphabet=alphabet, min_size=n_min, max_size=70))
    y = paycode.ff1_encrypt(key, tweak, x, radix)
    assert len(y) == len(x) and all(c in alphabet for c in y)
    assert paycode.ff1_decrypt(key, tweak, y, radix) == x


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_equal_is_equality(a: bytes, b: bytes) -> None:
    assert paycode.equal(a, b) is (a == b)
    assert paycode.equal(a, a) is True
    assert paycode.equal(a.hex(), b.hex()) is (a == b)
