"""Known answers from the standards: RFC 4226, RFC 6238, FIPS 197, NIST SP 800-38G, Damm."""

from __future__ import annotations

import base64
import hashlib
import hmac

import paycode
import pyotp
import pytest
from paycode import aes, aeshost, aespure

# RFC 4226 appendix D: secret "12345678901234567890", counters 0..9.
RFC4226_KEY = b"12345678901234567890"
RFC4226_HOTP = [
    "755224", "287082", "359152", "969429", "338314",
    "254676", "287922", "162583", "399871", "520489",
]  # fmt: skip
RFC4226_HMAC = [
    "cc93cf18508d94934c64b65d8ba7667fb7cde4b0",
    "75a48a19d4cbe100644e8ac1397eea747a2d33ab",
    "0bacb7fa082fef30782211938bc1c5e70416ff44",
    "66c28227d03a2d5529262ff016a1e6ef76557ece",
    "a904c900a64b35909874b33e61c5938a8e15ed1c",
    "a37e783d7b7233c083d4f62926c7a25f238d0316",
    "bc9cd28561042c83f219324d3c607256c03272ae",
    "a4fb960c0bc06e1eabb804e5b397cdc4b45596fa",
    "1b3c89f65e6c9e883012052823443f048b4332db",
    "1637409809a679dc698207310c8c7fc07290d9e5",
]

# RFC 6238 appendix B (8 digits); keys are the ASCII seeds of the reference code.
RFC6238_KEYS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
}
RFC6238 = [
    (59, "94287082", "46119246"),
    (1111111109, "07081804", "68084774"),
    (1111111111, "14050471", "67062674"),
    (1234567890, "89005924", "91819424"),
    (2000000000, "69279037", "90698825"),
    (20000000000, "65353130", "77737706"),
]

# NIST SP 800-38G FF1 samples 1-3 (AES-128); sample 3 is radix 36.
NIST_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
NIST_FF1 = [
    (b"", "0123456789", 10, "2433477484"),
    (bytes.fromhex("39383736353433323130"), "0123456789", 10, "6124200773"),
    (bytes.fromhex("3737373770717273373737"), "0123456789abcdefghi", 36, "a9tv40mll9kdu509eum"),
]


@pytest.mark.parametrize("counter", range(10))
def test_rfc4226_hmac_and_hotp(counter: int) -> None:
    mac = paycode.hmac_sha1(RFC4226_KEY, counter.to_bytes(8, "big"))
    assert mac.hex() == RFC4226_HMAC[counter]
    assert paycode.hotp(RFC4226_KEY, counter) == RFC4226_HOTP[counter]


@pytest.mark.parametrize("t,sha1,sha256", RFC6238)
def test_format2_totp_is_rfc6238_sha256_six_digits(t: int, sha1: str, sha256: str) -> None:
    # Format 2's TOTP: RFC 6238's SHA-256 variant, dynamic truncation on the 32-byte MAC
    # (offset = low nibble of byte 31), 6 digits = the truncation mod 10^6, i.e. the last
    # six digits of the RFC's 8-digit values; pyotp (digest=sha256) agrees.
    key = RFC6238_KEYS["sha256"]
    mac = hmac.new(key, (t // 30).to_bytes(8, "big"), hashlib.sha256).digest()
    o = mac[31] & 0x0F
    six = "%06d" % ((int.from_bytes(mac[o:o + 4], "big") & 0x7FFFFFFF) % 10**6)
    assert six == sha256[2:]
    assert paycode.totp(key, t, paycode.PERIOD, 6, paycode.format_hash(2)) == six
    assert pyotp.TOTP(base64.b32encode(key).decode(), digest=hashlib.sha256).at(t) == six
    from paytoken.backend import codes

    assert codes.hotp(key, t // paycode.PERIOD, 2) == six
    assert codes.hotp(RFC6238_KEYS["sha1"], t // paycode.PERIOD, 1) == sha1[2:]
    # in a code: format 2 carries it where format 1 carries the SHA-1 TOTP
    code = paycode.payment_code(key, 42, t, NIST_KEY, "82", 2)
    assert paycode.parse_code(code, NIST_KEY) == ("82", 42, (t // 30) % 10, six)


def test_unknown_format_is_refused() -> None:
    for bad in (0, 3, -1):
        with pytest.raises(ValueError, match="unknown code format"):
            paycode.payment_code(b"k" * 20, 1, 1700000000, NIST_KEY, "81", bad)
        with pytest.raises(ValueError, match="unknown code format"):
            paycode.format_hash(bad)


@pytest.mark.parametrize("t,sha1,sha256", RFC6238)
def test_rfc6238(t: int, sha1: str, sha256: str) -> None:
    assert paycode.totp(RFC6238_KEYS["sha1"], t, digits=8) == sha1
    assert paycode.totp(RFC6238_KEYS["sha256"], t, digits=8, algorithm="sha256") == sha256
    # The 6-digit code is the low six digits of the same truncation.
    assert paycode.totp(RFC6238_KEYS["sha1"], t) == sha1[2:]


@pytest.mark.parametrize("keylen", [0, 1, 20, 63, 64, 65, 200])
def test_hmac_key_lengths_match_stdlib(keylen: int) -> None:
    key = bytes(range(keylen % 256)) * (keylen // 256 + 1)
    key = key[:keylen]
    for msg in (b"", b"abc", bytes(300)):
        assert paycode.hmac_sha1(key, msg) == hmac.new(key, msg, hashlib.sha1).digest()
        assert paycode.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_fips197_appendix_c1_all_backends() -> None:
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    want = "69c4e0d86a7b0430d8cdb78070b4c55a"
    for impl in (aespure.new, aeshost.new, aes.new):
        block = bytearray.fromhex("00112233445566778899aabbccddeeff")
        out = bytearray(16)
        impl(key).encrypt(block, out)
        assert out.hex() == want
        impl(key).encrypt(block, block)  # in place, as FF1 uses it
        assert block.hex() == want
    assert aes.BACKEND == "cryptography"  # CPython: the fast path is the real library


@pytest.mark.parametrize("tweak,x,radix,y", NIST_FF1)
def test_nist_ff1_samples(tweak: bytes, x: str, radix: int, y: str) -> None:
    assert paycode.ff1_encrypt(NIST_KEY, tweak, x, radix) == y
    assert paycode.ff1_decrypt(NIST_KEY, tweak, y, radix) == x


def test_damm_examples() -> None:
    # Damm's worked example: 572 -> 4, and a number with its check digit -> 0.
    assert paycode.damm("572") == 4
    assert paycode.damm("5724") == 0
    assert paycode.damm("") == 0


def test_sync_mac_contract() -> None:
    # docs/ARCHITECTURE.md: hex HMAC-SHA1 over "paytoken-sync-v1|VERB|NONCE|VALUE".
    key = bytes(range(20))
    got = paycode.sync_mac(key, "SETTIME", "n0nce", 1700000000)
    want = hmac.new(key, b"paytoken-sync-v1|SETTIME|n0nce|1700000000", hashlib.sha1).hexdigest()
    assert got == want and len(got) == 40 and got == got.lower()
    assert (
        paycode.sync_mac(key, "UNLOCK", "n0nce", 42)
        == hmac.new(key, b"paytoken-sync-v1|UNLOCK|n0nce|42", hashlib.sha1).hexdigest()
    )


@pytest.mark.parametrize(
    "civil,t",
    [
        ((1970, 1, 1, 0, 0, 0), 0),
        ((2004, 1, 10, 13, 37, 4), 2**30),
        ((2038, 1, 19, 3, 14, 7), 2**31 - 1),
        ((2038, 1, 19, 3, 14, 8), 2**31),
        ((2106, 2, 7, 6, 28, 15), 2**32 - 1),
        ((2099, 12, 31, 23, 59, 59), 4102444799),
        ((2100, 3, 1, 0, 0, 0), 4107542400),
        ((2106, 2, 7, 6, 28, 16), 2**32),
        ((2000, 2, 29, 12, 0, 0), 951825600),
        ((2199, 12, 31, 23, 59, 59), 7258118399),
    ],
)
def test_civil_edges(civil: tuple, t: int) -> None:
    assert paycode.unix_from_civil(*civil) == t
    assert paycode.civil_from_unix(t) == civil


API = (
    "decode_secret hmac_sha1 hotp totp unix_from_civil civil_from_unix ff1_encrypt "
    "ff1_decrypt damm payment_code parse_code equal sync_mac"
).split()


def test_fixed_api_on_both_interpreters() -> None:
    from paytoken import upy

    for name in API:
        assert callable(getattr(paycode, name)), name
    got = upy.eval_repr(
        "import paycode\n"
        f"print(repr([callable(getattr(paycode, n)) for n in {API!r}] + [paycode.damm('572')]))"
    )
    assert got == [True] * len(API) + [4]
    with pytest.raises(AttributeError):
        paycode.no_such_name  # noqa: B018
