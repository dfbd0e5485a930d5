"""The hot path's code parser: NIST SP 800-38G FF1 samples and agreement with paycode."""

from __future__ import annotations

import os
import random

import paycode
import pytest
from paytoken.backend import codes

# NIST SP 800-38G FF1 samples 1 and 2 (AES-128, radix 10): independent oracle.
NIST_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")


@pytest.mark.parametrize("tweak, plain, cipher", [
    (b"", "0123456789", "2433477484"),
    (bytes.fromhex("39383736353433323130"), "0123456789", "6124200773"),
])
def test_ff1_decrypt_nist_samples(tweak, plain, cipher):
    assert codes.ff1_decrypt(NIST_KEY, tweak, cipher) == plain


def test_parse_agrees_with_paycode_on_random_codes():
    rng = random.Random(4)
    for _ in range(300):
        key, prefix = os.urandom(16), rng.choice(["81", "82", "17"])
        tid, t = rng.randrange(10**8), rng.randrange(1_700_000_000, 2_000_000_000)
        code = paycode.payment_code(os.urandom(20), tid, t, key, prefix)
        got = codes.parse_code(code, {prefix: key})
        assert got == paycode.parse_code(code, {prefix: key})
        assert got[1] == tid and got[2] == (t // 30) % 10
        spaced = " ".join(code[i:i + 4] for i in range(0, 18, 4))
        assert codes.parse_code(spaced, {prefix: key}) == got


def test_parse_refuses_as_paycode_does():
    key = os.urandom(16)
    good = paycode.payment_code(bytes(20), 42, 1_767_225_600, key, "81")
    bad = ["", "8" * 17, good + "0", good[:5] + "x" + good[6:], "١" * 18,
           good[:17] + str((int(good[17]) + 1) % 10), "12" + good[2:]]
    for code in bad + [good]:
        for keys in ({"81": key}, {}):
            try:
                want = paycode.parse_code(code, keys)
            except ValueError as exc:
                with pytest.raises(ValueError) as e:
                    codes.parse_code(code, keys)
                assert str(e.value) == str(exc), code
            else:
                assert codes.parse_code(code, keys) == want


def test_hotp_rfc4226_vectors_and_paycode():
    # RFC 4226 Appendix D: secret "12345678901234567890", counters 0..9.
    rfc = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
    assert [codes.hotp(b"12345678901234567890", c) for c in range(10)] == rfc
    rng = random.Random(9)
    for _ in range(300):
        key, counter = os.urandom(rng.choice([16, 20, 32, 70])), rng.randrange(1 << 40)
        assert codes.hotp(key, counter) == paycode.hotp(key, counter)
