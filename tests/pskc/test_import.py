"""`paytoken token import`: all or none, a re-import is a no-op, and the refusals
(a tampered MAC, a wrong key, an id outside the batch), each a clear one-line error.
The files here are written by python-pskc, the independent writer."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pskc as pypskc
import pytest
from paytoken import pskc
from paytoken.backend.store.models import ACTIVE, PENDING

TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paytoken", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def their_file(path: Path, psk: bytes, tokens: dict[int, bytes], **kw) -> Path:
    """A PSKC file written by python-pskc with its pre-shared key encryption and MAC."""
    p = pypskc.PSKC()
    for tid, secret in tokens.items():
        p.add_key(serial=f"{tid:08d}", secret=secret, algorithm=TOTP, response_length=6,
                  response_encoding="DECIMAL", time_interval=30, **kw)
    p.encryption.setup_preshared_key(key=psk, key_name="Pre-shared-key")
    p.write(str(path))
    return path


@pytest.fixture
def batch(issuer, tmp_path: Path):
    psk_file = tmp_path / "k.psk"
    r = run("batch", "create", "--count", "3", "--prefix", "81", "--psk-file", str(psk_file),
            "--out", str(tmp_path / "b.json"), "--json", env=issuer.env())
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    return psk_file, pskc.read_psk_file(psk_file), list(range(b["first_id"], b["last_id"] + 1))


def statuses(issuer, ids: list[int]) -> list[str]:
    have = {r["id"]: r["status"] for r in issuer.rows()}
    return [have.get(i) for i in ids]


def one_line_error(r: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paytoken: "), r.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_python_pskc_file_imports_all_or_none_and_again_is_a_no_op(issuer, batch, tmp_path) -> None:
    psk_file, psk, ids = batch
    secrets_ = {i: os.urandom(20) for i in ids[:2]}
    f = their_file(tmp_path / "t.pskc", psk, secrets_, time_drift=0)
    r = run("token", "import", "--pskc", str(f), "--psk-file", str(psk_file), env=issuer.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2 tokens imported and active"
    assert statuses(issuer, ids) == [ACTIVE, ACTIVE, PENDING]
    for i, s in secrets_.items():
        assert issuer.secret_of(i) == s
    r = run("token", "import", "--pskc", str(f), "--psk-file", str(psk_file), env=issuer.env())
    assert r.returncode == 0 and "0 tokens imported" in r.stdout and "2 were already active" in r.stdout
    # the same id with another secret is refused, and the other, new token is not imported either
    g = their_file(tmp_path / "u.pskc", psk, {ids[0]: os.urandom(20), ids[2]: os.urandom(20)})
    r = run("token", "import", "--pskc", str(g), "--psk-file", str(psk_file), env=issuer.env())
    one_line_error(r, rf"nothing imported: token {ids[0]:08d} is already active with another secret")
    assert statuses(issuer, ids) == [ACTIVE, ACTIVE, PENDING]
    for s in (*secrets_.values(), psk):
        assert s.hex() not in r.stderr + r.stdout and base64.b64encode(s).decode() not in r.stderr


def test_id_outside_the_batch_refused_and_nothing_imported(issuer, batch, tmp_path) -> None:
    psk_file, psk, ids = batch
    outside = ids[0] - 1 if ids[0] > 1 else ids[-1] + 1
    f = their_file(tmp_path / "t.pskc", psk, {ids[0]: os.urandom(20), outside: os.urandom(20)})
    r = run("token", "import", "--pskc", str(f), "--psk-file", str(psk_file), env=issuer.env())
    one_line_error(r, rf"token {outside:08d} is outside every batch this issuer handed out")
    assert statuses(issuer, ids) == [PENDING] * 3


def test_tampered_mac_refused(issuer, batch, tmp_path) -> None:
    psk_file, psk, ids = batch
    f = their_file(tmp_path / "t.pskc", psk, {ids[0]: os.urandom(20), ids[1]: os.urandom(20)})
    text = f.read_text()
    macs = re.findall(r"<pskc:ValueMAC>([^<]+)</pskc:ValueMAC>", text)
    assert len(macs) == 2
    raw = bytearray(base64.b64decode(macs[1]))
    raw[0] ^= 0x80
    f.write_text(text.replace(macs[1], base64.b64encode(bytes(raw)).decode()))
    r = run("token", "import", "--pskc", str(f), "--psk-file", str(psk_file), env=issuer.env())
    one_line_error(r, r"key package 2 \(serial \d{8}\): the secret: the MAC does not match: the file was altered")
    assert statuses(issuer, ids) == [PENDING] * 3


def test_wrong_key_refused(issuer, batch, tmp_path) -> None:
    psk_file, psk, ids = batch
    other = tmp_path / "other.psk"
    pskc.new_psk_file(other)
    # our own file names its key: the error says so
    mine = tmp_path / "mine.pskc"
    mine.write_bytes(pskc.dumps([pskc.KeyPackage(serial=f"{ids[0]:08d}", secret=os.urandom(20))], psk))
    r = run("token", "import", "--pskc", str(mine), "--psk-file", str(other), env=issuer.env())
    one_line_error(r, r"wrong pre-shared key: the container was encrypted under paytoken-psk-")
    # python-pskc's file is named "Pre-shared-key": the MAC key does not decrypt (or its MACs fail)
    f = their_file(tmp_path / "t.pskc", psk, {ids[0]: os.urandom(20)})
    r = run("token", "import", "--pskc", str(f), "--psk-file", str(other), env=issuer.env())
    one_line_error(r, r"wrong pre-shared key|the MAC does not match")
    # a file that opens under another key, for this batch's ids, is still refused by the issuer
    g = their_file(tmp_path / "g.pskc", pskc.read_psk_file(other), {ids[0]: os.urandom(20)})
    r = run("token", "import", "--pskc", str(g), "--psk-file", str(other), env=issuer.env())
    one_line_error(r, rf"token {ids[0]:08d} belongs to batch b[0-9a-f]+, which was handed out under "
                      r"another pre-shared key")
    assert statuses(issuer, ids) == [PENDING] * 3


def test_not_our_scheme_refused(issuer, batch, tmp_path) -> None:
    psk_file, psk, ids = batch
    p = pypskc.PSKC()
    p.add_key(serial=f"{ids[0]:08d}", secret=os.urandom(20),
              algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp", response_length=8,
              response_encoding="DECIMAL", counter=0)
    p.encryption.setup_preshared_key(key=psk)
    p.write(str(tmp_path / "h.pskc"))
    r = run("token", "import", "--pskc", str(tmp_path / "h.pskc"), "--psk-file", str(psk_file),
            env=issuer.env())
    one_line_error(r, r"this issuer's tokens are TOTP, 6 decimal digits, 30 s; the package is hotp")
    assert statuses(issuer, ids) == [PENDING] * 3


def test_time_drift_starts_the_drift_model(issuer, batch, tmp_path) -> None:
    psk_file, psk, ids = batch
    f = their_file(tmp_path / "t.pskc", psk, {ids[0]: os.urandom(20)}, time_drift=-2)
    r = run("token", "import", "--pskc", str(f), "--psk-file", str(psk_file), env=issuer.env())
    assert r.returncode == 0, r.stderr
    info = issuer.backend.token_info(ids[0])
    assert (info["status"], info["drift_steps"], info["drift_seconds"]) == (ACTIVE, -2, -60)
    g = their_file(tmp_path / "g.pskc", psk, {ids[1]: os.urandom(20)}, time_drift=99999)
    r = run("token", "import", "--pskc", str(g), "--psk-file", str(psk_file), env=issuer.env())
    one_line_error(r, r"a time drift of 99999 steps is beyond")
