"""A real issuer site for the browser tests and the screenshots: a migrated SQLite
database with tokens, a merchant, an admin and a drift history, served by a real
``paytoken serve``; and Debian's Chromium driven by Playwright.

Usage (tests/ is on sys.path)::

    site = Site.build(tmp_path, master_hex)      # site.server.url, site.merchant_key, ...
    with browser(tmp_path / "profile") as ctx:
        page = ctx.new_page()
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paycode
from backend.conftest import Server
from paytoken.backend.crypto import Keyring
from paytoken.backend.service import Backend
from paytoken.backend.store.db import make_engine, migrate

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = bytes(range(1, 21))
TILL_TOKEN = 7  # pays at the till (no history: its clock is right)
DRIFT_TOKEN = 42  # 60 days of daily payments at +25 ppm: the console's drift chart
SPARE_TOKEN = 43  # the console revokes it
WALLET_TOKEN = 1002  # its holder's wallet shows online codes
WALLET_TTL = 30  # s: the wallet page's codes (PAYTOKEN_WALLET_CODE_TTL)
PPM = 25e-6
DAY = 86_400


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Site:
    url: str
    backend: Backend
    scheme_key: bytes
    merchant_key: str
    admin_key: str
    server: Server
    history_from: int
    master_hex: str
    wallet_key: str

    @classmethod
    def build(cls, folder: Path, master_hex: str) -> Site:
        db = folder / "site.db"
        url = f"sqlite:///{db}"
        engine = make_engine(url)
        migrate(engine)
        ring = Keyring([bytes.fromhex(master_hex)])
        now = int(time.time())
        t0 = now - 60 * DAY
        clock = _Clock(t0 - DAY)
        past = Backend(engine, ring, clock=clock)
        key = past.add_scheme("81")
        past.add_scheme("71", online=True)  # the wallet's online codes
        for tid in (TILL_TOKEN, DRIFT_TOKEN, SPARE_TOKEN, 1001, 1002):
            past.add_token(tid, SECRET)
            past.credit(tid, 250_000)
        past.set_token(DRIFT_TOKEN, "cli", limit_per_payment=50_000, limit_per_day=200_000)
        mid, merchant_key = past.add_merchant("Corner shop")
        past.add_merchant("Night market stall")
        admin_key = past.add_admin("ops")
        wallet_key = past.issue_wallet_key(WALLET_TOKEN)
        # 60 days of a token gaining 25 ppm, paid once a day at varying hours.
        for day in range(60):
            t = t0 + day * DAY + random.Random(day).randrange(36_000)  # an hour of the day
            clock.t = t
            code = paycode.payment_code(SECRET, DRIFT_TOKEN, int(t + (t - t0 + DAY) * PPM), key)
            r = past.pay(mid, code, 1_000 + (day * 37) % 4_000, "CNY", f"hist-{day}")
            assert r["status"] == "succeeded", r
            if day % 9 == 4:
                other = paycode.payment_code(SECRET, 1001, int(t), key)
                past.pay(mid, other, 2_350, "CNY", f"hist-o-{day}")
        engine.dispose()
        server = Server(url, master_hex, folder / "server.log", env={"PAYTOKEN_WALLET_CODE_TTL": str(WALLET_TTL)})
        return cls(server.url, Backend(make_engine(url), ring), key, merchant_key, admin_key, server, t0,
                   master_hex, wallet_key)

    def fresh_code(self, token_id: int = TILL_TOKEN, skew: float = 0.0) -> str:
        """A code the token shows now (``skew``: its clock's offset), for a step not yet used."""
        last = self.backend.token_info(token_id)["last_step"]
        last = -1 if last is None else last
        while int(time.time() + skew) // 30 <= last:
            time.sleep(0.2)
        return paycode.payment_code(SECRET, token_id, int(time.time() + skew), self.scheme_key)

    def drift_skew(self) -> float:
        return (time.time() - self.history_from + DAY) * PPM

    def stop(self) -> None:
        self.server.stop()
        self.backend.engine.dispose()


def have_chromium() -> bool:
    return os.access(CHROMIUM, os.X_OK) and shutil.which(CHROMIUM) is not None


@contextlib.contextmanager
def browser(profile: Path, width: int = 1280, height: int = 860, **kw) -> Iterator:
    """A fresh headless Chromium (a new user-data-dir) as a Playwright browser context."""
    from playwright.sync_api import sync_playwright

    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": width, "height": height}, accept_downloads=True, **kw)
        ctx.set_default_timeout(60_000)
        try:
            yield ctx
        finally:
            ctx.close()
