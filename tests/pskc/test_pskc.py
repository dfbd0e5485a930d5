"""The PSKC module against RFC 6030's own figures and python-pskc, the independent parser."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pskc as pypskc  # python-pskc (PyPI), the independent oracle
import pytest
from paytoken import pskc
from paytoken.pskc import HOTP, TOTP, KeyPackage, PskcError

DATA = Path(__file__).resolve().parent / "data"
RFC_PSK = bytes.fromhex("12345678901234567890123456789012")  # RFC 6030 §6.1


def fig(n: int) -> bytes:
    return (DATA / f"rfc6030-figure{n}.pskcxml").read_bytes()


# ---- RFC 6030's examples ---------------------------------------------------------------------


def test_rfc_figure6_pre_shared_key_aes128_cbc_hmac_sha1() -> None:
    (p,) = pskc.loads(fig(6), RFC_PSK)
    assert p.serial == "987654321" and p.key_id == "12345678"
    assert p.algorithm == HOTP and p.digits == 8 and p.encoding == "DECIMAL"
    assert p.secret == bytes.fromhex("3132333435363738393031323334353637383930")
    assert p.counter == 0 and p.manufacturer == "Manufacturer" and p.issuer == "Issuer"
    # python-pskc reads the same figure to the same values
    theirs = pypskc.PSKC(str(DATA / "rfc6030-figure6.pskcxml"))
    theirs.encryption.key = RFC_PSK
    assert theirs.keys[0].secret == p.secret and theirs.keys[0].check()


def test_rfc_figure6_refuses_a_wrong_key_and_a_flipped_bit() -> None:
    with pytest.raises(PskcError, match="wrong pre-shared key|MAC does not match"):
        pskc.loads(fig(6), bytes(16))
    data = fig(6).replace(b"Su+NvtQfmvfJzF6bmQiJqoLRExc=", b"Su+OvtQfmvfJzF6bmQiJqoLRExc=")
    with pytest.raises(PskcError, match="MAC does not match"):
        pskc.loads(data, RFC_PSK)
    with pytest.raises(PskcError, match="give the pre-shared key"):
        pskc.loads(fig(6))


def test_rfc_figure7_pbkdf2() -> None:
    (p,) = pskc.loads(fig(7), password="qwerty")
    assert p.secret == b"12345678901234567890" and p.serial == "987654321" and p.key_id == "123456"
    with pytest.raises(PskcError):
        pskc.loads(fig(7), password="azerty")


@pytest.mark.parametrize("n", [2, 3, 4, 10])
def test_rfc_plain_figures_parse_as_python_pskc_does(n: int) -> None:
    ours = pskc.loads(fig(n))
    theirs = pypskc.PSKC(str(DATA / f"rfc6030-figure{n}.pskcxml")).keys
    assert [p.serial or None for p in ours] == [k.serial for k in theirs]
    assert [p.secret or None for p in ours] == [k.secret for k in theirs]
    assert [p.key_id for p in ours] == [k.id for k in theirs]
    assert [p.counter for p in ours] == [k.counter for k in theirs]
    assert [p.digits or None for p in ours] == [k.response_length for k in theirs]


def test_rfc_figure10_is_bulk() -> None:
    ps = pskc.loads(fig(10))
    assert [p.serial for p in ps] == ["654321", "123456", "9999999", "9999999"]
    assert all(p.secret == b"12345678901234567890" for p in ps)


# ---- ours, read by python-pskc, and theirs, read by us -------------------------------------------


def test_written_here_read_by_python_pskc(tmp_path: Path) -> None:
    psk = os.urandom(16)
    mine = [KeyPackage(serial=f"{i:08d}", secret=os.urandom(20), drift=d)
            for i, d in ((12345678, 0), (42, -1), (99999999, None))]
    f = tmp_path / "out.pskcxml"
    f.write_bytes(pskc.dumps(mine, psk))
    theirs = pypskc.PSKC(str(f))
    assert theirs.encryption.algorithm.endswith("#aes128-cbc")
    assert theirs.mac.algorithm.endswith("#hmac-sha1")
    assert theirs.encryption.key_name == pskc.key_name(psk)
    theirs.encryption.key = psk
    assert len(theirs.keys) == 3
    for p, k in zip(mine, theirs.keys, strict=True):
        assert k.check()  # every ValueMAC verified by python-pskc
        assert (k.serial, k.id, k.secret) == (p.serial, p.serial, p.secret)
        assert k.algorithm == TOTP
        assert (k.response_length, k.response_encoding, k.time_interval) == (6, "DECIMAL", 30)
        assert k.time_drift == p.drift
    # a wrong key fails in python-pskc too
    other = pypskc.PSKC(str(f))
    other.encryption.key = os.urandom(16)
    with pytest.raises(pypskc.exceptions.DecryptionError):
        other.keys[0].secret  # noqa: B018


def test_written_by_python_pskc_read_here(tmp_path: Path) -> None:
    psk = os.urandom(16)
    theirs = pypskc.PSKC()
    want = {}
    for i in (7, 8, 12345678):
        secret = os.urandom(20)
        theirs.add_key(serial=f"{i:08d}", secret=secret, algorithm=TOTP, response_length=6,
                       response_encoding="DECIMAL", time_interval=30, time_drift=i % 3 - 1,
                       manufacturer="Feitian")
        want[f"{i:08d}"] = (secret, i % 3 - 1)
    theirs.encryption.setup_preshared_key(key=psk, key_name="Pre-shared-key")  # + HMAC-SHA1 MAC
    f = tmp_path / "theirs.pskcxml"
    theirs.write(str(f))
    got = pskc.loads(f.read_bytes(), psk)
    assert {p.serial: (p.secret, p.drift) for p in got} == want
    assert all(p.is_totp and p.digits == 6 and p.interval == 30 for p in got)
    assert b"<EncryptedValue" in f.read_bytes() or b":EncryptedValue" in f.read_bytes()
    with pytest.raises(PskcError):
        pskc.loads(f.read_bytes(), os.urandom(16))


# ---- refusals and file handling -------------------------------------------------------------------


def test_tampered_cipher_value_is_refused() -> None:
    psk = os.urandom(16)
    data = pskc.dumps([KeyPackage(serial="00000001", secret=b"s" * 20)], psk).decode()
    start = data.index("<xenc:CipherValue>", data.index("<KeyPackage>")) + len("<xenc:CipherValue>")
    raw = bytearray(base64.b64decode(data[start:data.index("<", start)]))
    raw[20] ^= 1
    bad = data[:start] + base64.b64encode(bytes(raw)).decode() + data[data.index("<", start):]
    with pytest.raises(PskcError, match="MAC does not match"):
        pskc.loads(bad.encode(), psk)


def test_our_key_name_says_wrong_key() -> None:
    data = pskc.dumps([KeyPackage(serial="00000001", secret=b"s" * 20)], os.urandom(16))
    with pytest.raises(PskcError, match="^wrong pre-shared key: the container was encrypted under"):
        pskc.loads(data, os.urandom(16))


def test_no_doctype_no_garbage() -> None:
    with pytest.raises(PskcError, match="DOCTYPE"):
        pskc.loads(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>')
    with pytest.raises(PskcError, match="not XML"):
        pskc.loads(b"hello")
    with pytest.raises(PskcError, match="not a PSKC file"):
        pskc.loads(b"<KeyContainer Version='1.0'/>")


def test_secrets_never_in_repr_or_errors() -> None:
    p = KeyPackage(serial="00000001", secret=b"\x01" * 20)
    assert "\\x01" not in repr(p) and "0101" not in repr(p)


def test_psk_file_created_private_and_checked(tmp_path: Path) -> None:
    f = tmp_path / "k.psk"
    psk = pskc.new_psk_file(f)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600 and len(psk) == 16
    assert pskc.read_psk_file(f) == psk
    with pytest.raises(PskcError, match="refusing to overwrite"):
        pskc.new_psk_file(f)
    f.chmod(0o640)
    with pytest.raises(PskcError, match="readable by others"):
        pskc.read_psk_file(f)
    (tmp_path / "short").write_text("abcd\n")
    (tmp_path / "short").chmod(0o600)
    with pytest.raises(PskcError, match="16 bytes"):
        pskc.read_psk_file(tmp_path / "short")


def test_append_in_parallel_keeps_every_package(tmp_path: Path) -> None:
    psk = os.urandom(16)
    out = tmp_path / "tokens.pskcxml"
    secrets_ = {f"{i:08d}": os.urandom(20) for i in range(1, 13)}

    def add(serial: str) -> None:
        pskc.append_file(out, [KeyPackage(serial=serial, secret=secrets_[serial], drift=0)], psk)

    threads = [threading.Thread(target=add, args=(s,)) for s in secrets_]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    got = {p.serial: p.secret for p in pskc.read_file(out, psk)}
    assert got == secrets_
    with pytest.raises(PskcError, match="already holds serial 00000001"):
        add("00000001")
    with pytest.raises(PskcError, match="wrong pre-shared key"):
        pskc.append_file(out, [KeyPackage(serial="00000099", secret=b"x" * 20)], os.urandom(16))
    assert not list(tmp_path.glob("*.tmp"))
