"""``paytoken demo``: the whole product in one narrated run, on virtual tokens and SQLite.

Nine steps, each checking its own outcome (a ``DemoError`` names the first that did
not behave as narrated):

1. the issuer backend (``paytoken serve``) on loopback, a fresh SQLite database;
2. two virtual tokens (``paytoken vdev start``) on pseudo-terminals;
3. the firmware deployed (``station.deploy``) and the tokens provisioned through the
   factory station (``station.provision.Station``);
4. their accounts credited;
5. each token's panel, in the terminal and as a PNG;
6. a merchant till: the QR read from the PNG with zxing-cpp, a payment over HTTP;
7. the refusals a till sees: a replay, a mistyped code (Damm), a revoked token, an
   expired code;
8. a field clock sync (``station.desk.sync_clock``: nonce, issuer-signed time);
9. everything stopped.

Everything it makes stays in one folder (default ``demo-out/``): the database, the
master key, the panel PNGs, the station's reports and the logs.

Usage::

    summary = run(Path("demo-out"), console)
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = ".paytoken-demo"  # a folder holding this file is the demo's own to wipe
STEPS = 9
AMOUNT = 1250  # 12.50 CNY: a coffee and a croissant
CREDIT = 20000  # 200.00 CNY per token


class DemoError(Exception):
    """A step did not behave as narrated (the message says which and how)."""


@dataclass
class VToken:
    """One running virtual token."""

    name: str
    flash: Path
    port: str
    proc: subprocess.Popen
    token_id: int = 0

    @property
    def hw(self) -> Path:
        from paytoken import vhw

        return vhw.hw_folder(self.flash)


@dataclass
class Demo:
    """The demo's state, so that ``stop`` can clean up whatever was started."""

    out: Path
    say: Callable[[str], None]
    burn_in: float = 3.0
    server: subprocess.Popen | None = None
    url: str = ""
    admin_key: str = ""
    merchant_key: str = ""
    tokens: list[VToken] = field(default_factory=list)
    backend: Any = None
    results: dict = field(default_factory=dict)
    _order: int = 0

    # ---- helpers -------------------------------------------------------------------

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            raise DemoError(what)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PAYTOKEN_VDEV_REGISTRY"] = str(self.out / "vdev-registry")
        env.pop("PAYTOKEN_MASTER_KEY", None)
        return env

    def http(self, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
        import httpx

        try:
            r = httpx.request(method, self.url + path, json=body, timeout=15,
                              headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError as e:
            raise DemoError(f"the issuer at {self.url} did not answer {path}: {type(e).__name__}") from None
        try:
            return r.status_code, r.json()
        except ValueError:
            raise DemoError(f"{path} answered {r.status_code} without JSON") from None

    def pay(self, code: str, amount: int = AMOUNT) -> dict:
        """POST /v1/payments as the till does; returns the JSON answer."""
        self._order += 1
        status, data = self.http("POST", "/v1/payments", self.merchant_key, {
            "code": code, "amount": amount, "currency": "CNY",
            "merchant_order_id": f"demo-till-{self._order:04d}"})
        self.check(status == 200, f"POST /v1/payments answered {status}: {data}")
        return data

    def token_info(self, tok: VToken) -> dict:
        status, data = self.http("GET", f"/v1/tokens/{tok.token_id}", self.admin_key)
        self.check(status == 200, f"GET /v1/tokens/{tok.token_id} answered {status}: {data}")
        return data

    def screen(self, tok: VToken, png: Path, newer_than: str | None = None, timeout: float = 40) -> str:
        """Press the token's button, wait for a code on its panel (different from
        ``newer_than``), write the panel PNG and return the code zxing-cpp reads."""
        from paytoken import scan, vhw

        vhw.press(tok.hw)
        deadline = time.monotonic() + timeout
        last_err = "no picture yet"
        seen_on = False
        while time.monotonic() < deadline:
            _, _, _, on, _ = vhw.panel(tok.hw)
            if seen_on and not on:  # the display slept (20 s) before the code changed: press again
                vhw.press(tok.hw)
                seen_on = False
            seen_on = seen_on or on
            if on:
                vhw.snapshot(tok.hw, png)
                try:
                    code = scan.read_qr(png)
                except scan.ScanError as e:
                    last_err = str(e)
                else:
                    if code != newer_than:
                        return code
                    last_err = "the code has not changed yet"
            time.sleep(0.3)
        raise DemoError(f"token {tok.name}: no readable code on its panel within {timeout:g} s ({last_err})")


# 2x2 pixels per character: bit 1 top-left, 2 top-right, 4 bottom-left, 8 bottom-right
_QUAD = " ▘▝▀▖▌▞▛▗▚▐▜▄▙▟█"


def quadrants(px: list[list[int]]) -> str:
    """A panel picture (rows of 0/1) as quadrant blocks: 128x64 fits 64x32 characters."""
    h, w = len(px), len(px[0]) if px else 0
    lines = []
    for y in range(0, h, 2):
        row = []
        for x in range(0, w, 2):
            v = px[y][x] | (px[y][x + 1] << 1 if x + 1 < w else 0)
            if y + 1 < h:
                v |= px[y + 1][x] << 2 | (px[y + 1][x + 1] << 3 if x + 1 < w else 0)
            row.append(_QUAD[v])
        lines.append("".join(row))
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_out(out: Path) -> None:
    """Make ``out`` an empty demo folder; refuse to wipe a folder that is not the demo's."""
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"{out} exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DemoError(f"{out} is not empty and not a demo folder: pick another with --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by paytoken demo; the next run wipes this folder\n")


def _start_vdev(d: Demo, name: str) -> VToken:
    flash = d.out / "tokens" / name
    flash.mkdir(parents=True)
    log = open(d.out / "logs" / f"vdev-{name}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "paytoken", "vdev", "start", "--flash", str(flash)],
                            stdout=subprocess.PIPE, stderr=log, start_new_session=True, env=d.env())
    log.close()
    deadline = time.monotonic() + 30
    line = b""
    assert proc.stdout is not None
    while not line.endswith(b"\n"):
        r, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            proc.kill()
            raise DemoError(f"virtual token {name} printed no device path within 30 s")
        b = os.read(proc.stdout.fileno(), 1)
        if not b:
            raise DemoError(f"virtual token {name} exited ({proc.wait(5)}); see logs/vdev-{name}.log")
        line += b
    tok = VToken(name, flash, line.decode().strip(), proc)
    d.tokens.append(tok)
    return tok


def _stop_proc(p: subprocess.Popen, grace: float = 10) -> int | None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                p.kill()
            p.wait(5)
    if p.stdout is not None:
        p.stdout.close()
    return p.returncode


# ---- the steps -------------------------------------------------------------------------


def _write_key(path: Path, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")


def step_backend(d: Demo) -> None:
    from paytoken.backend.crypto import Keyring
    from paytoken.backend.service import Backend
    from paytoken.backend.store.db import make_engine, migrate

    db = d.out / "paytoken.db"
    key_file = d.out / "master.key"
    ring, master_hex = Keyring.generate()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(master_hex + "\n")
    engine = make_engine(str(db))
    head = migrate(engine)
    d.backend = Backend(engine, ring)
    d.backend.add_scheme("81")
    d.backend.add_scheme("71", online=True)  # online codes for wallets (docs/WALLET.md)
    d.admin_key = d.backend.add_admin("demo desk")
    _mid, d.merchant_key = d.backend.add_merchant("Corner Cafe")
    # The keys the web pages' logins take, for the closing note: files (0600), never printed.
    for name, key in (("merchant.key", d.merchant_key), ("admin.key", d.admin_key)):
        _write_key(d.out / name, key)
    port = free_port()
    d.url = f"http://127.0.0.1:{port}"
    log = open(d.out / "logs" / "server.log", "wb")
    d.server = subprocess.Popen(
        [sys.executable, "-m", "paytoken", "serve", "--db", str(db), "--master-key-file", str(key_file),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=d.env())
    log.close()
    import httpx

    deadline = time.monotonic() + 30
    while True:
        if d.server.poll() is not None:
            raise DemoError(f"the backend exited ({d.server.returncode}); see logs/server.log")
        try:
            if httpx.get(d.url + "/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise DemoError("the backend did not answer /v1/health within 30 s")
        time.sleep(0.2)
    d.say(f"SQLite database {db.name} (schema {head}, WAL), scheme 81 with a fresh key, "
          f"master key in {key_file.name} (mode 0600)")
    d.say(f"issuer API listening on {d.url} (paytoken serve, pid {d.server.pid}); "
          "a merchant 'Corner Cafe' and a service-desk admin have API keys")


def step_tokens(d: Demo) -> None:
    (d.out / "tokens").mkdir()
    for name in ("A", "B"):
        tok = _start_vdev(d, name)
        d.check(os.path.exists(tok.port), f"token {name}: {tok.port} does not exist")
        d.say(f"token {name}: real firmware on the MicroPython unix port behind {tok.port} "
              f"(flash {tok.flash.relative_to(d.out)})")


def step_provision(d: Demo) -> None:
    from paytoken.station import deploy as deploy_mod
    from paytoken.station.provision import Station
    from paytoken.station.transport import Device

    errors: list[str] = []

    def deploy(tok: VToken) -> None:
        try:
            with Device(tok.port, timeout=30) as dev:
                deploy_mod.deploy(dev, "sim")
        except Exception as e:  # noqa: BLE001 - reported as the step's failure
            errors.append(f"token {tok.name}: deploy failed: {e}")

    threads = [threading.Thread(target=deploy, args=(t,)) for t in d.tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d.check(not errors, "; ".join(errors))
    d.say("firmware compiled with mpy-cross and copied by hash to both tokens (paytoken deploy)")
    station = Station(d.backend, board="sim", burn_in=d.burn_in, report_dir=d.out / "reports")
    reports = station.run([t.port for t in d.tokens])
    for tok, rep in zip(d.tokens, reports, strict=True):
        d.check(rep.status == "provisioned",
                f"token {tok.name}: provisioning {rep.status} at step {rep.step}: {rep.error}")
        tok.token_id = int(rep.token_id or 0)
        info = d.backend.token_info(tok.token_id)
        d.check(info["status"] == "active", f"token {tok.name}: the database says {info['status']}")
        crystal = _crystal(rep)
        d.say(f"token {tok.name}: id {tok.token_id:08d}, clock set to UTC "
              f"({rep.offset_ms:+.0f} ms), {crystal}, "
              f"{len(rep.verified_times)} codes cross-checked against CPython, locked, active")
    d.check(d.tokens[0].token_id != d.tokens[1].token_id, "the two tokens got the same id")


def _crystal(rep: Any) -> str:
    # What the burn-in saw, and whether the token took it as its correction.
    if rep.ppm_measured is None:
        return "crystal not measured (no burn-in)"
    seen = (f"crystal {rep.ppm_measured:+.0f} ± {rep.ppm_resolution:.0f} ppm over a "
            f"{rep.burn_in_s:g} s burn-in")
    if rep.ppm:
        return f"{seen}, stored as its correction"
    return f"{seen}: too coarse to store, the issuer learns the drift"


def step_credit(d: Demo) -> None:
    for tok in d.tokens:
        bal = d.backend.credit(tok.token_id, CREDIT, actor="demo")
        info = d.token_info(tok)
        d.check(bal == CREDIT and info["balance"] == CREDIT,
                f"token {tok.name}: balance {info['balance']} after crediting {CREDIT}")
        d.say(f"token {tok.name}: account credited with {CREDIT / 100:.2f} CNY")
    # The last token (never revoked here) gets a wallet key for /wallet: a file (0600), never printed.
    holder = d.tokens[-1]
    _write_key(d.out / "wallet.key", d.backend.issue_wallet_key(holder.token_id, actor="demo"))


def step_panels(d: Demo, show: Callable[[str], None]) -> None:
    import paycode

    from paytoken import panel, vhw

    for tok in d.tokens:
        png = d.out / f"token-{tok.name}.png"
        code = d.screen(tok, png)
        d.check(len(code) == 18 and code.isdigit() and paycode.damm(code) == 0,
                f"token {tok.name}: the QR holds {code!r}, not an 18-digit code with its Damm digit")
        gddram, w, h, on, inv = vhw.panel(tok.hw)
        show(quadrants(panel.pixels(gddram, w, h, inverted=inv, display_on=on)))
        d.say(f"token {tok.name} shows {paycode.group4(code)}  ->  {png.name}")
        d.results[f"code_{tok.name}"] = code
        d.results[f"code_{tok.name}_at"] = time.time()


def step_merchant(d: Demo) -> None:
    from paytoken import scan

    a = d.tokens[0]
    png = d.out / f"token-{a.name}.png"
    code = scan.read_qr(png)
    d.say(f"the till scans {png.name} with zxing-cpp: {code}")
    res = d.pay(code)
    d.check(res["status"] == "succeeded" and res["token_id"] == a.token_id,
            f"payment with token {a.name}'s code: {res}")
    info = d.token_info(a)
    d.check(info["balance"] == CREDIT - AMOUNT, f"token {a.name}: balance {info['balance']}")
    d.say(f"POST /v1/payments 12.50 CNY -> {res['status']} ({res['payment_id']}); "
          f"token {a.name} balance {info['balance'] / 100:.2f} CNY")
    d.results["paid"] = res


def step_refusals(d: Demo, wait: Callable[[float, str], None]) -> None:
    import paycode

    a, b = d.tokens
    code_a = d.results["code_A"]
    # a replay: the same code again, as a new order
    res = d.pay(code_a)
    d.check(res["status"] == "refused" and res["reason"] == "CODE_REPLAYED", f"replay: {res}")
    d.say(f"the same code again             -> refused {res['reason']}")
    # a mistyped code: one digit wrong; the Damm digit catches it before any crypto
    i = 9
    typo = code_a[:i] + str((int(code_a[i]) + 3) % 10) + code_a[i + 1:]
    d.check(paycode.damm(typo) != 0, "the Damm check missed a single-digit error")
    res = d.pay(typo)
    d.check(res["status"] == "refused" and res["reason"] == "CODE_INVALID", f"mistyped: {res}")
    d.say(f"{paycode.group4(typo)} (digit {i + 1} mistyped) -> refused {res['reason']} (Damm)")
    # a revoked token: the desk revokes A; its next code is refused
    status, info = d.http("POST", f"/v1/tokens/{a.token_id}/revoke", d.admin_key, {})
    d.check(status == 200 and info["status"] == "revoked", f"revoke: {status} {info}")
    fresh = d.screen(a, d.out / "token-A-revoked.png", newer_than=code_a, timeout=45)
    res = d.pay(fresh)
    d.check(res["status"] == "refused" and res["reason"] == "TOKEN_REVOKED", f"revoked: {res}")
    d.say(f"token {a.name} revoked at the desk; its next code -> refused {res['reason']}")
    # an expired code: B's first code, photographed and shown two steps later
    code_b = d.results["code_B"]
    step_b = d.results["code_B_at"] // paycode.PERIOD
    left = (step_b + 2) * paycode.PERIOD + 1 - time.time()
    if left > 0:
        wait(left, f"token {b.name}'s first code grows stale (two 30 s steps)")
    res = d.pay(code_b)
    d.check(res["status"] == "refused" and res["reason"] == "CODE_EXPIRED", f"expired: {res}")
    d.say(f"token {b.name}'s code from {time.time() - d.results['code_B_at']:.0f} s ago -> refused {res['reason']}")
    # and the same token's fresh code pays
    fresh_b = d.screen(b, d.out / "token-B.png", newer_than=code_b)
    res = d.pay(fresh_b)
    d.check(res["status"] == "succeeded" and res["token_id"] == b.token_id, f"token B fresh code: {res}")
    d.say(f"token {b.name}'s fresh code                -> {res['status']}")


def step_sync(d: Demo) -> None:
    from paytoken.station.desk import IssuerAPI, sync_clock
    from paytoken.station.transport import Device

    b = d.tokens[1]
    with Device(b.port, timeout=30) as dev:
        r = sync_clock(dev, IssuerAPI(d.url, d.admin_key))
    now = time.time()
    d.check(r.token_id == b.token_id, f"clock sync answered for token {r.token_id}")
    d.check(abs(r.utc_set - now) < 10, f"the issuer signed {r.utc_set}, {r.utc_set - now:+.0f} s from now")
    d.check(r.time_after is not None and abs(r.time_after - now) <= 3,
            f"token {b.name} reads {r.time_after} after the sync, UTC is {now:.0f}")
    off = "unknown" if r.offset_s is None else f"{r.offset_s:+d} s"
    d.say(f"token {b.name}: CHALLENGE nonce -> issuer-signed SETTIME {r.utc_set} (HMAC under its "
          f"sync key) -> accepted; offset before {off}, now reads {r.time_after}")


def step_stop(d: Demo) -> None:
    codes = stop_all(d)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it (exit -15)
    bad = {k: v for k, v in codes.items() if v not in (0, -signal.SIGTERM)}
    d.check(not bad, f"some processes did not stop cleanly: {bad}")
    d.say("backend and both virtual tokens stopped cleanly (SIGTERM): " +
          ", ".join(f"{k} exit {v}" for k, v in codes.items()))


def stop_all(d: Demo) -> dict[str, int | None]:
    codes: dict[str, int | None] = {}
    for tok in d.tokens:
        codes[f"token {tok.name}"] = _stop_proc(tok.proc)
    d.tokens = []
    if d.server is not None:
        codes["backend"] = _stop_proc(d.server)
        d.server = None
    if d.backend is not None:
        d.backend.engine.dispose()
        d.backend = None
    return codes


# ---- the narration -----------------------------------------------------------------------

TITLES = (
    "Start the issuer backend on loopback with a fresh SQLite database",
    "Start two virtual tokens",
    "Deploy the firmware and provision both tokens through the factory station",
    "Credit the tokens' accounts",
    "Show each token's panel (terminal and PNG)",
    "Act as a merchant: scan the QR with zxing-cpp, pay over the HTTP API",
    "Refusals a real till sees: replay, mistyped code, revoked token, expired code",
    "Field clock sync through the issuer",
    "Stop everything",
)


def run(out: Path, console: Any, burn_in: float = 3.0) -> dict:
    """Run the nine steps; raises DemoError at the first that misbehaves (after cleanup)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    t_start = time.monotonic()
    prepare_out(out)
    (out / "logs").mkdir()
    d = Demo(out=out, say=lambda m: console.print(f"   [green]✓[/] {m}"), burn_in=burn_in)

    def show(text: str) -> None:
        console.print(text, style="bright_white on grey11", highlight=False)

    def wait(seconds: float, why: str) -> None:
        with Progress(TextColumn("   [yellow]⧗[/] {task.description}"), BarColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(why, total=seconds)
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(0.25, left))
                bar.update(task, completed=seconds - max(0.0, left))
        console.print(f"   [yellow]⧗[/] waited {seconds:.0f} s: {why}")

    actions: list[Callable[[], None]] = [
        lambda: step_backend(d), lambda: step_tokens(d), lambda: step_provision(d),
        lambda: step_credit(d), lambda: step_panels(d, show), lambda: step_merchant(d),
        lambda: step_refusals(d, wait), lambda: step_sync(d), lambda: step_stop(d),
    ]
    timings = []
    try:
        for n, (title, action) in enumerate(zip(TITLES, actions, strict=True), 1):
            console.rule(f"[bold]{n}/{STEPS}[/] {title}", align="left")
            t0 = time.monotonic()
            with _status(console, title):
                action()
            timings.append(round(time.monotonic() - t0, 2))
    except DemoError as e:
        console.print(f"   [red]✗ step {len(timings) + 1} failed:[/] {e}")
        stop_all(d)
        raise DemoError(f"step {len(timings) + 1} ({TITLES[len(timings)]}): {e}") from None
    except BaseException:
        stop_all(d)
        raise
    total = time.monotonic() - t_start
    console.rule("[bold green]done")
    console.print(f"All {STEPS} steps behaved as narrated in {total:.0f} s. Everything is in "
                  f"[bold]{out}/[/]: paytoken.db (the issuer database), master.key, token-*.png "
                  "(the panels), reports/ (the station's per-token reports), logs/.")
    for line in pages_note(out):
        console.print(line, highlight=False, soft_wrap=True)  # a command and paths to copy: unwrapped
    return {"out": str(out), "seconds": round(total, 1), "step_seconds": timings,
            "payment": d.results.get("paid")}


def pages_note(out: Path, port: int = 8080) -> list[str]:
    """Where to open the till, the console and the wallet on the demo's database."""
    url = f"http://127.0.0.1:{port}"
    return [
        "The web pages, on this demo's database: start the issuer again with",
        f"   {_paytoken_command()} serve --db {out}/paytoken.db --master-key-file {out}/master.key --port {port}",
        "and open",
        f"   the till     {url}/till      log in with the merchant key in {out}/merchant.key",
        f"   the console  {url}/console   log in with the admin key in {out}/admin.key",
        f"   the wallet   {url}/wallet    log in with a demo token's wallet key in {out}/wallet.key",
        "Screenshots: docs/screens/web-till.png, web-console-token.png, web-wallet.png (README.md).",
    ]


def _paytoken_command() -> str:
    """The ``paytoken`` to type: the one beside this interpreter (the venv's), relative to
    the working folder when inside it, so the printed command runs as it is."""
    exe = Path(sys.executable).with_name("paytoken")
    if not exe.exists() or shutil.which("paytoken") == str(exe):
        return "paytoken"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


@contextmanager
def _status(console: Any, title: str) -> Iterator[None]:
    if console.is_terminal:
        with console.status(f"[dim]{title}…[/]", spinner="dots"):
            yield
    else:
        yield
