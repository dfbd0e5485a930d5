"""otpauth:// URIs: digits, period and algorithm honoured, as pyotp reads them; the rest refused."""

from __future__ import annotations

import base64
import hashlib

import paycode
import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paytoken import otpauth
from paytoken.cli import main

RFC = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # b"12345678901234567890"
KEY_HEX = "000102030405060708090a0b0c0d0e0f"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_the_issue_vector(capsys) -> None:
    uri = f"otpauth://totp/Shop:ann?secret={RFC}&digits=8&period=60&algorithm=SHA256"
    want = pyotp.parse_uri(uri).at(1700000000)
    assert want == "34855935"
    assert run(capsys, "code", uri, "--at", "1700000000") == (0, "34855935\n", "")


@settings(max_examples=150, deadline=None)
@given(key=st.binary(min_size=16, max_size=64), t=st.integers(0, 253_402_300_799),
       digits=st.integers(6, 10), period=st.integers(1, 120),
       algorithm=st.sampled_from(["SHA1", "SHA256", "SHA512"]), upper=st.booleans())
def test_any_uri_pyotp_writes_gives_pyotp_s_code(key, t, digits, period, algorithm, upper) -> None:
    b32 = base64.b32encode(key).decode()
    digest = getattr(hashlib, algorithm.lower())
    uri = pyotp.TOTP(b32, digits=digits, interval=period, digest=digest).provisioning_uri(
        name="ann@example.com", issuer_name="Shop Ltd")
    if "algorithm" not in uri:  # pyotp leaves the SHA-1 default out
        uri += "&algorithm=" + (algorithm if upper else algorithm.lower())
    p = otpauth.parse_uri(uri)
    assert (p.secret, p.digits, p.period, p.algorithm) == (key, digits, period, algorithm.lower())
    want = pyotp.TOTP(b32, digits=digits, interval=period, digest=digest).at(t)
    assert paycode.totp(p.secret, t, p.period, p.digits, p.algorithm) == want
    if digits <= 8 and upper:  # what pyotp's own URI parser takes
        assert pyotp.parse_uri(uri).at(t) == want


def test_cli_options_agree_with_pyotp_without_a_uri(capsys) -> None:
    for alg in ("sha1", "sha256", "sha512"):
        want = pyotp.TOTP(RFC, digits=7, interval=45, digest=getattr(hashlib, alg)).at(2**33)
        rc, out, _ = run(capsys, "code", RFC, "--at", str(2**33), "--digits", "7", "--period", "45",
                         "--algorithm", alg)
        assert (rc, out) == (0, want + "\n")


@pytest.mark.parametrize(("query", "message"), [
    ("", None),  # the plain URI: fine
    ("&digits=abc", "digits='abc' is not a whole number"),
    ("&digits=5", "digits=5 is not supported (6 to 10)"),
    ("&digits=11", "digits=11 is not supported"),
    ("&period=0", "period=0 is not supported"),
    ("&period=121", "period=121 is not supported (1 to 120)"),
    ("&period=-30", "period='-30' is not a whole number"),
    ("&period=1e3", "is not a whole number"),
    ("&algorithm=MD5", "algorithm='MD5' is not supported (SHA1, SHA256 or SHA512)"),
    ("&digits=8&digits=6", "gives digits twice"),
])  # fmt: skip
def test_unsupported_parameters_are_refused(capsys, query: str, message: str | None) -> None:
    rc, out, err = run(capsys, "code", f"otpauth://totp/x?secret={RFC}{query}", "--at", "0")
    if message is None:
        assert (rc, out) == (0, pyotp.TOTP(RFC).at(0) + "\n")
        return
    assert rc == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("paytoken: bad secret: otpauth URI") and message in err
    assert RFC not in err


@pytest.mark.parametrize("uri", [f"otpauth://hotp/x?secret={RFC}&counter=0",
                                 f"otpauth://HOTP/x?secret={RFC}", f"otpauth://motp/x?secret={RFC}",
                                 "otpauth://totp/x?issuer=Shop"])
def test_other_uri_types_are_refused(capsys, uri: str) -> None:
    rc, out, err = run(capsys, "code", uri)
    assert rc == 1 and out == "" and err.startswith("paytoken: bad secret: otpauth URI")
    assert "HOTP" in err or "unknown" in err or "no secret" in err


def test_options_that_contradict_the_uri_are_refused(capsys) -> None:
    uri = f"otpauth://totp/x?secret={RFC}&digits=8"
    rc, _, err = run(capsys, "code", uri, "--digits", "6", "--at", "0")
    assert rc == 1 and "--digits 6 contradicts the otpauth URI's digits=8" in err
    rc, out, _ = run(capsys, "code", uri, "--digits", "8", "--at", "0")  # agreeing is fine
    assert (rc, out) == (0, pyotp.TOTP(RFC, digits=8).at(0) + "\n")


def test_payment_codes_refuse_a_uri_with_other_parameters(capsys) -> None:
    for q in ("&digits=8", "&period=60", "&algorithm=SHA256"):
        rc, _, err = run(capsys, "code", f"otpauth://totp/x?secret={RFC}{q}", "--payment",
                         "--token-id", "1", "--scheme-key", KEY_HEX)
        assert rc == 1 and "format 1 fixes SHA-1, 6 digits and 30 s" in err
        with pytest.raises(ValueError, match="payment codes"):
            otpauth.payment_secret(f"otpauth://totp/x?secret={RFC}{q}")
    rc, out, _ = run(capsys, "code", f"otpauth://totp/x?secret={RFC}&algorithm=SHA1&digits=6",
                     "--payment", "--token-id", "1", "--scheme-key", KEY_HEX, "--at", "0")
    key = base64.b32decode(RFC)
    assert (rc, out) == (0, paycode.payment_code(key, 1, 0, bytes.fromhex(KEY_HEX)) + "\n")


# RFC 6238 appendix B, the SHA-512 column (64-byte seed), through an otpauth URI.
SEED512 = base64.b32encode(b"1234567890" * 6 + b"1234").decode()
RFC6238_SHA512 = [(59, "90693936"), (1111111109, "25091201"), (1111111111, "99943326"),
                  (1234567890, "93441116"), (2000000000, "38618901"), (20000000000, "47863826")]


@pytest.mark.parametrize(("t", "want"), RFC6238_SHA512)
def test_rfc6238_sha512_vectors(capsys, t: int, want: str) -> None:
    uri = f"otpauth://totp/RFC?secret={SEED512}&digits=8&algorithm=SHA512"
    assert run(capsys, "code", uri, "--at", str(t)) == (0, want + "\n", "")
    assert pyotp.TOTP(SEED512, digits=8, digest=hashlib.sha512).at(t) == want


def test_sha512_hmac_matches_the_standard_library() -> None:
    import hmac

    from paycode import otp

    for n in (0, 1, 64, 127, 128, 129, 300):
        k = bytes(i % 256 for i in range(n))
        got = otp._hmac(hashlib.sha512, k, b"msg", 128)
        assert got == hmac.new(k, b"msg", hashlib.sha512).digest()
    with pytest.raises(ValueError, match="sha1, sha256 or sha512"):
        paycode.hotp(k, 0, algorithm="sha384")
