"""``paytoken demo`` end to end: the product's main job, as ``make demo`` runs it.

The demo checks each of its own steps; this test checks what it leaves behind against
independent oracles: zxing-cpp reads the panel PNGs, python-stdnum checks the Damm
digit, the payments are read from the SQLite file with the stdlib ``sqlite3``, the
audit chain verifies, and no secret appears in the output, the logs or the reports.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import zxingcpp
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import Backend
from paytoken.story.demo import MARKER
from PIL import Image
from stdnum import damm


def _demo(out: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paytoken", "demo", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    return out, _demo(out)


def test_demo_runs_all_nine_steps(demo_run) -> None:
    out, p = demo_run
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for n in range(1, 10):
        assert f"{n}/9 " in p.stdout
    assert "All 9 steps behaved as narrated" in p.stdout
    for reason in ("CODE_REPLAYED", "CODE_INVALID", "TOKEN_REVOKED", "CODE_EXPIRED"):
        assert f"refused {reason}" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr


def test_demo_ends_by_telling_where_the_pages_are(demo_run) -> None:
    out, p = demo_run
    end = p.stdout[p.stdout.index("All 9 steps behaved"):]
    for page, key in (("till", "merchant.key"), ("console", "admin.key"), ("wallet", "wallet.key")):
        assert f"http://127.0.0.1:8080/{page}" in end
        assert str(out / key) in end
    assert f"paytoken serve --db {out}/paytoken.db --master-key-file {out}/master.key" in end
    # the printed command runs as it is: its paytoken is on PATH or a path to the venv's
    cmd = next(ln.split()[0] for ln in end.splitlines() if " serve --db " in ln)
    assert shutil.which(cmd) or os.access(cmd, os.X_OK), cmd
    assert "docs/screens/web-till.png" in end
    # the keys the pages' logins take: a merchant's, an admin's, and an active token's wallet key
    backend = Backend.open(f"sqlite:///{out / 'paytoken.db'}", Keyring.load(out / "master.key"))
    try:
        assert backend.auth_merchant((out / "merchant.key").read_text().strip()) is not None
        assert backend.auth_admin((out / "admin.key").read_text().strip()) == "demo desk"
        holder = backend.wallet_token((out / "wallet.key").read_text().strip())
        assert holder is not None and backend.token_info(holder)["status"] == "active"
    finally:
        backend.engine.dispose()


def test_demo_leaves_database_images_and_reports(demo_run) -> None:
    out, _ = demo_run
    assert (out / MARKER).is_file()
    for name in ("paytoken.db", "master.key", "token-A.png", "token-B.png", "token-A-revoked.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "reports").glob("*.json"))) >= 2
    for png in ("token-A.png", "token-B.png"):
        res = zxingcpp.read_barcodes(Image.open(out / png))
        assert len(res) == 1 and res[0].format == zxingcpp.BarcodeFormat.QRCode
        code = res[0].text
        assert len(code) == 18 and code.isdigit() and damm.is_valid(code)


def test_the_database_holds_what_was_narrated(demo_run) -> None:
    out, _ = demo_run
    db = sqlite3.connect(out / "paytoken.db")
    rows = db.execute("SELECT status, reason, amount, token_id FROM payments ORDER BY created_at").fetchall()
    statuses = [(s, r) for s, r, _, _ in rows]
    assert statuses.count(("succeeded", None)) == 2
    assert ("refused", "CODE_REPLAYED") in statuses
    assert ("refused", "TOKEN_REVOKED") in statuses
    assert ("refused", "CODE_EXPIRED") in statuses
    # the mistyped code names no token: refused without a row (stateless, repeatable)
    assert all(a == 1250 for _, _, a, _ in rows)
    tokens = dict(db.execute("SELECT id, status FROM tokens").fetchall())
    assert sorted(tokens.values()) == ["active", "revoked"]
    balances = sorted(b for (b,) in db.execute("SELECT balance FROM accounts"))
    assert balances == [20000 - 1250, 20000 - 1250]
    db.close()
    ring = Keyring.load(out / "master.key")
    backend = Backend.open(f"sqlite:///{out / 'paytoken.db'}", ring)
    assert backend.verify_audit().ok
    backend.engine.dispose()


def test_no_secret_leaks(demo_run) -> None:
    out, p = demo_run
    from sqlalchemy import create_engine, text

    ring = Keyring.load(out / "master.key")
    eng = create_engine(f"sqlite:///{out / 'paytoken.db'}")
    with eng.connect() as c:
        rows = c.execute(text("SELECT id, secret_enc, sync_key_enc FROM tokens")).all()
        scheme = c.execute(text("SELECT key_enc FROM schemes WHERE prefix = '81'")).scalar()
    eng.dispose()
    secrets_ = [ring.open(scheme, "scheme:81")]
    for tid, s, k in rows:
        secrets_ += [ring.open(s, f"token:{tid}:secret"), ring.open(k, f"token:{tid}:sync")]
    master = (out / "master.key").read_text().strip()
    forms = [master]
    for name in ("merchant.key", "admin.key", "wallet.key"):  # the pages' logins: in files (0600), never printed
        assert (out / name).stat().st_mode & 0o777 == 0o600
        forms.append((out / name).read_text().strip())
    for s in secrets_:
        forms += [s.hex(), s.hex().upper(), base64.b32encode(s).decode().rstrip("=")]
    texts = [p.stdout, p.stderr]
    for f in list((out / "logs").rglob("*")) + list((out / "reports").rglob("*")):
        if f.is_file():
            texts.append(f.read_text(errors="replace"))
    for form in forms:
        for t in texts:
            assert form not in t


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    p = _demo(precious, timeout=60)
    assert p.returncode == 1
    assert "not a demo folder" in p.stderr
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_live_mode_is_kept(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "paytoken", "demo", "--live", "--seconds", "1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "issuer accepted" in p.stdout
