"""Helpers for the station tests: the issuer database, the token's flash, leak checks."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from paytoken import fwload, upy
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine, migrate
from paytoken.backend.store.models import ACTIVE, PENDING, Token
from paytoken.station import deploy as deploy_mod
from paytoken.station import hostcalls
from paytoken.station.ops import secret_forms
from paytoken.station.transport import Device
from sqlalchemy import select
from waits import STEP, bound, cli_args

_spec = importlib.util.spec_from_file_location("fwconfig", upy.FIRMWARE_DIR / "config.py")
fwconfig = importlib.util.module_from_spec(_spec)  # the firmware's own config module
_spec.loader.exec_module(fwconfig)


@dataclass
class Issuer:
    """An issuer database: its URL, master key (hex), admin key and a Backend on it."""

    url: str
    master_hex: str
    admin_key: str
    backend: Backend
    keyring: Keyring

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PAYTOKEN_MASTER_KEY"] = self.master_hex
        env["PAYTOKEN_DB"] = self.url
        env.update(extra)
        return env

    def rows(self) -> list[dict]:
        t = Token.__table__
        with self.backend.engine.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(select(t.c.id, t.c.status, t.c.secret_enc,
                                                                  t.c.sync_key_enc))]

    def secret_of(self, token_id: int) -> bytes:
        row = next(r for r in self.rows() if r["id"] == token_id)
        return self.keyring.open(row["secret_enc"], f"token:{token_id}:secret")


def new_issuer(url: str, tmp: Path) -> Issuer:
    engine = make_engine(url)
    migrate(engine)
    ring, master_hex = Keyring.generate()
    backend = Backend(engine, ring)
    backend.add_scheme("81")
    admin = backend.add_admin("desk")
    return Issuer(url, master_hex, admin, backend, ring)


def deploy_to(port: str, board: str = "sim", firmware_dir: Path | None = None) -> None:
    with Device(port, timeout=bound(STEP)) as dev:
        deploy_mod.deploy(dev, board, firmware_dir=firmware_dir)


def token_config(flash: Path) -> dict | None:
    """The config on the token's flash, decoded by the firmware's own config module.

    Read only: ``fwconfig.load`` would also run the boot-time clean-up, which deletes a
    ``paytoken.cfg.tmp`` that the running token may be writing at that very moment.
    """
    try:
        data = (flash / "paytoken.cfg").read_bytes()
    except FileNotFoundError:
        return None
    return fwconfig.decode(data)


def paytoken(*args: str, env: dict[str, str] | None = None, timeout: float = 180
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paytoken", *cli_args(args)], capture_output=True,
                          text=True, timeout=bound(timeout), env=env)


def assert_consistent(issuer: Issuer, flashes: list[Path]) -> list[int]:
    """One active record per token, the token's config id = its record, no pending left,
    and every stored secret is the one on its token. Returns the token ids."""
    rows = issuer.rows()
    pending = [r["id"] for r in rows if r["status"] == PENDING]
    assert not pending, f"pending records left over: {pending}"
    active = {r["id"] for r in rows if r["status"] == ACTIVE}
    ids = []
    for f in flashes:
        cfg = token_config(f)
        assert cfg is not None, f"{f}: no config"
        assert cfg["locked"] is True
        tid = cfg["token_id"]
        assert tid in active, f"{f}: token {tid} is not active in the database"
        assert issuer.secret_of(tid) == cfg["secret"]
        ids.append(tid)
    assert len(set(ids)) == len(ids)
    return ids


def assert_no_secret(secrets_: list[bytes], *texts: str, paths: list[Path] = ()) -> None:
    """No form of any secret (hex, base32, repr) in the texts or the files under paths."""
    forms = secret_forms(*secrets_)
    blobs = list(texts)
    for p in paths:
        files = [p] if p.is_file() else [q for q in p.rglob("*") if q.is_file()]
        for q in files:
            if q.name == "paytoken.cfg" or q.suffix in (".db", ".mpy") or "-wal" in q.name:
                continue
            blobs.append(q.read_bytes().decode(errors="replace"))
    for form in forms:
        for b in blobs:
            assert form not in b, "a secret leaked"


def reports(report_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(report_dir.glob("token-*.json"))]


# ---- what host code may run on a token ----------------------------------------------------

HOST = Path(hostcalls.__file__).resolve().parents[1]  # host_tools/paytoken
SEAM = HOST / "station" / "transport.py"  # Device.exec/eval pass their caller's code on
WRAPPER = HOST / "station" / "hostcalls.py"  # the one place that builds hostapi calls
# A snippet may use MicroPython's own modules, nothing of the firmware but hostapi through
# the wrapper. (fwimage is the frozen image's identity, which the image build generates:
# deploy must read it on a token with any firmware or none.)
FIRMWARE_NAMES = (set(fwload.names()) | {"board"}) - {"hostapi"}
# a call of hostapi (not a file of it being copied, '/hostapi.mpy')
HOSTCALL = re.compile(r"\bimport\s+hostapi\b|(?<![\w.'\"/])hostapi\.\w+\(")


def firmware_use(code: str) -> set[str]:
    """The firmware modules a snippet imports or reaches into (hostapi not counted)."""
    used = set()
    for m in re.finditer(r"\bimport\s+([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)", code):
        used |= {x.strip().split(".")[0] for x in m.group(1).split(",")}
    used |= {m.group(1).split(".")[0] for m in re.finditer(r"\bfrom\s+([A-Za-z_][\w.]*)\s+import", code)}
    used |= {m.group(1).split(".")[0] for m in re.finditer(r"__import__\(\s*['\"]([\w.]+)", code)}
    used |= {m.group(1) for m in re.finditer(r"(?<![\w.'\"/])([A-Za-z_]\w*)\.[A-Za-z_]", code)}
    return used & FIRMWARE_NAMES
