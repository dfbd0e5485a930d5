"""The token's named calls for the host (firmware/hostapi.py, paytoken.station.hostcalls).

Each call runs on the real unix-port MicroPython in a virtual token; the host's code is
scanned for exec'd snippets that reach into the firmware past that contract.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from pathlib import Path

import paycode
import pyotp
import pytest
from paytoken import fwload, upy, vhw
from paytoken.station import hostcalls, ops
from paytoken.station.transport import Device, DeviceError
from stationkit import HOST, HOSTCALL, SEAM, WRAPPER, deploy_to, firmware_use, token_config
from vdevkit import start_vdev
from waits import STEP, bound

HOSTAPI = upy.FIRMWARE_DIR / "hostapi.py"
REPO = Path(__file__).resolve().parents[2]

SECRET = b"12345678901234567890"  # RFC 6238's SHA-1 seed: pyotp checks the OTPs
SCHEME_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
TOKEN_ID = 12345678
CFG = {"token_id": TOKEN_ID, "secret": SECRET, "scheme_key": SCHEME_KEY, "prefix": "81",
       "sync_key": bytes(range(20)), "ppm": 0.0, "ref_time": 1767225600, "locked": False,
       "last_step": 0, "last_sync": 1767225600}


@pytest.fixture
def vdevs():
    """``vdevs(flash) -> VTok``: a virtual token without firmware, stopped at teardown."""
    started = []

    def make(flash: Path):
        started.append(start_vdev(flash))
        return started[-1]

    yield make
    for t in started:
        t.stop()


# ---- the contract itself ----------------------------------------------------------------


def _device_calls() -> list[str]:
    tree = ast.parse(HOSTAPI.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]


def test_the_host_and_the_device_list_the_same_calls() -> None:
    assert sorted(_device_calls()) == sorted(hostcalls.CALLS)
    src = HOSTAPI.read_text()
    for name in hostcalls.CALLS:  # each documented in the module's contract comment
        assert re.search(rf"^#   {name}\(", src, re.M), name
    arch = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    for name in hostcalls.CALLS:
        assert f"`{name}(" in arch, name


def test_hostapi_keeps_the_device_style() -> None:
    src = HOSTAPI.read_text()
    tree = ast.parse(src)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]  # opt=3 strips asserts
    consts = [t.id for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
              and getattr(n.value.func, "id", None) == "const" for t in n.targets]
    assert consts and all(c.startswith("_") for c in consts)
    assert len(src.splitlines()) < 200
    # importing it loads nothing of the firmware: each call imports what it needs
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert top == []


def test_a_call_is_one_line_of_reprd_literals() -> None:
    assert hostcalls.line("probe") == "import hostapi; hostapi.probe()\n"
    assert hostcalls.line("save_fields", locked=True, ppm=-1.5) == (
        "import hostapi; hostapi.save_fields(locked=True, ppm=-1.5)\n")
    tricky = "a'b\"c\n); import os; os.remove('/x') #"
    got = hostcalls.line("save_config", {"prefix": tricky, "secret": b"\x00'\n", "n": [1, (2,)]})
    assert got.count("\n") == 1  # one line whatever the strings hold
    call = ast.parse(got.split("; ", 1)[1]).body[0].value
    assert ast.literal_eval(call.args[0]) == {"prefix": tricky, "secret": b"\x00'\n", "n": [1, (2,)]}
    for bad in (math.inf, math.nan, object(), {1: 2}, {"x": {3.0, 4.0}}):
        with pytest.raises(ValueError):
            hostcalls.line("save_config", bad)
    with pytest.raises(ValueError, match="no host call"):
        hostcalls.line("devices")
    with pytest.raises(ValueError, match="bad keyword"):
        hostcalls.line("save_fields", **{"x=1, y": 2})


def _otp_ok(code: str, t: int) -> bool:
    prefix, tid, residue, otp = paycode.parse_code(code, SCHEME_KEY)
    return (prefix, tid, residue) == ("81", TOKEN_ID, (t // 30) % 10) and otp == pyotp.TOTP(
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").at(t)


def test_each_call_on_the_unix_port(vdevs, tmp_path: Path) -> None:
    tok = vdevs(tmp_path / "tok")
    deploy_to(tok.port)
    call = hostcalls.call
    with Device(tok.port, timeout=bound(STEP)) as dev:
        # probe: a factory token without config
        assert call(dev, "probe") == (ops.host_fw_version(), "sim", None, "files")
        assert call(dev, "wipe_config") is True  # nothing there: still gone
        with pytest.raises(DeviceError, match="ValueError: no config$"):
            call(dev, "codes", [1790000000])
        with pytest.raises(DeviceError, match="ValueError: no config to update$"):
            call(dev, "save_fields", locked=True)

        # save_config / save_fields: the file the token's own config module reads back
        assert call(dev, "save_config", CFG) is None
        assert token_config(tok.flash) == dict(CFG, format=1)  # config.py names the format (1 when absent)
        assert call(dev, "probe")[2] == (TOKEN_ID, False, True)
        assert call(dev, "save_fields", locked=True, ppm=-2.5, last_sync=1790000000) is None
        assert token_config(tok.flash) == dict(CFG, format=1, locked=True, ppm=-2.5, last_sync=1790000000)
        assert call(dev, "probe")[2] == (TOKEN_ID, True, True)
        with pytest.raises(DeviceError, match="unknown config field: colour"):
            call(dev, "save_fields", colour=3)
        with pytest.raises(DeviceError, match="the config is a dict"):
            call(dev, "save_config", [1])

        # codes: the token's own config, checked by CPython's paycode and pyotp
        times = list(ops.FIXED_TIMES)
        got = call(dev, "codes", times)
        assert got == ops.host_codes(SECRET, TOKEN_ID, times, SCHEME_KEY, "81")
        assert all(_otp_ok(c, t) for c, t in zip(got, times, strict=True))
        for bad in (["1"], [-1], (1,), [1.5]):
            with pytest.raises(DeviceError, match="UTC seconds"):
                call(dev, "codes", bad)

        # clocks: set, read back, and the chip model's registers agree
        n = int(time.time()) + 1000
        assert call(dev, "set_clock", n) is None
        utc, lost = call(dev, "read_clock")
        assert lost is False and n <= utc <= n + bound(5)
        assert abs(vhw.rtc_time(tok.hw) - utc) <= bound(5)
        t0 = time.monotonic()
        e, waited_us = call(dev, "edge", timeout=bound(5))
        took = time.monotonic() - t0
        assert utc < e <= utc + bound(5)
        assert 0 <= waited_us <= took * 1e6 + 1000 and waited_us <= 1.1e6  # within the call, <1 s
        with pytest.raises(DeviceError, match="UTC seconds"):
            call(dev, "set_clock", -5)
        with pytest.raises(DeviceError, match="UTC seconds"):
            call(dev, "set_clock", "1790000000")

        # a corrupt config is a state, never a secret
        data = (tok.flash / "paytoken.cfg").read_bytes()
        (tok.flash / "paytoken.cfg").write_bytes(data[:-3] + b"}}}")
        assert call(dev, "probe")[2] == "corrupt"

        # wipe: gone on the flash
        assert call(dev, "wipe_config") is True
        assert not (tok.flash / "paytoken.cfg").exists()
        assert call(dev, "probe")[2] is None

        # the lease: the board's watchdog runs with that length, until a hard reset
        ms = call(dev, "hold_lease")
        assert ms == json.loads((tok.hw / "wdt.json").read_text())["timeout_ms"] > 0
        assert call(dev, "hold_lease") == ms  # a feed
        dev.hard_reset()
        assert not (tok.hw / "wdt.json").exists()  # stopped
        assert call(dev, "probe")[2] is None


class _LateClockWrites(Device):
    """A host starved at the worst moment: every clock write goes out ``late`` seconds
    after the station meant to send it (the token itself is unchanged)."""

    late = 0.6

    def exec(self, code: str, *, timeout: float | None = None) -> str:
        if ".set_clock(" in code:
            time.sleep(self.late)
        return super().exec(code, timeout=timeout)


def test_a_clock_write_sent_late_is_sent_earlier_next_time(vdevs, tmp_path: Path) -> None:
    tok = vdevs(tmp_path / "tok")
    deploy_to(tok.port)
    with _LateClockWrites(tok.port, timeout=bound(STEP)) as dev:
        # one try at half a round trip's lead: the RTC starts 0.6 s behind, and says so
        with pytest.raises(ops.OpsError, match=r"the RTC is -\d+ ms off right after being set"):
            ops.set_clock_utc(dev, tries=1)
        # the next try's lead takes the measured lag: the token is set right
        cs = ops.set_clock_utc(dev)
        assert abs(cs.first.offset) <= 0.25 + cs.first.uncertainty, cs
        assert ops.read_edge(dev).device - cs.utc in range(0, 60)  # it keeps the time it was given


def test_a_token_without_hostapi_is_a_token_without_firmware(vdevs, tmp_path: Path) -> None:
    tok = vdevs(tmp_path / "tok")
    with Device(tok.port, timeout=bound(STEP)) as dev:  # the bare interpreter: no firmware
        st = ops.probe(dev, need_firmware=False)
        assert st.fw is None and st.mode == "repl"
        with pytest.raises(ops.OpsError, match="no paytoken firmware on the token"):
            ops.probe(dev)
        assert hostcalls.config_state_without_firmware(dev) is None
        (tok.flash / "paytoken.cfg").write_bytes(fwload.module("config").encode(CFG))
        assert hostcalls.config_state_without_firmware(dev) == (TOKEN_ID, False, True)


# ---- the host calls nothing else ----------------------------------------------------------

EXEC_CALLS = {"exec", "eval", "exec_raw", "exec_raw_no_follow"}
_PARAM = object()


def _assigned(scope: ast.AST, name: str) -> list[ast.expr]:
    out: list[ast.expr] = []
    for n in ast.walk(scope):
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets):
            out.append(n.value)
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)) and isinstance(n.target, ast.Name) \
                and n.target.id == name and n.value is not None:
            out.append(n.value)
    return out


def _text(node: ast.AST, scopes: list[ast.AST]) -> str | object | None:
    # The source text a snippet expression can hold (f-string data as {}); None when
    # it cannot be told, _PARAM for a parameter passed through.
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        return node.value.decode() if isinstance(node.value, bytes) else node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                inner = _text(v.value, scopes) if v.conversion == -1 else None
                parts.append(inner if isinstance(inner, str) else "{}")
            else:
                parts.append(_text(v, scopes))
        return "".join(p for p in parts if isinstance(p, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _text(node.left, scopes), _text(node.right, scopes)
        if a is None or b is None:
            return None
        if a is _PARAM or b is _PARAM:
            return _PARAM
        return a + b
    if isinstance(node, ast.IfExp):
        a, b = _text(node.body, scopes), _text(node.orelse, scopes)
        return a + "\n" + b if isinstance(a, str) and isinstance(b, str) else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "encode":
        return _text(node.func.value, scopes)
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "line":
        return "<hostcall>"
    if isinstance(node, ast.Name):
        for scope in scopes:
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = scope.args
                if node.id in [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]:
                    return _PARAM
            values = _assigned(scope, node.id)
            if values:
                texts = [_text(v, scopes) for v in values]
                if any(t is None or t is _PARAM for t in texts):
                    return None
                return "\n".join(texts)  # type: ignore[arg-type]
    return None


def snippets(source: str) -> list[tuple[int, str | object | None]]:
    """Each exec'd snippet in ``source``: (line, its text, _PARAM or None if unknown)."""
    tree = ast.parse(source)
    out = []

    def visit(node: ast.AST, scopes: list[ast.AST]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scopes = [node, *scopes]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in EXEC_CALLS and node.args:
            out.append((node.lineno, _text(node.args[0], scopes)))
        for child in ast.iter_child_nodes(node):
            visit(child, scopes)

    visit(tree, [tree])
    return out


def violations(path: Path, source: str) -> list[str]:
    bad = []
    for lineno, text in snippets(source):
        where = f"{path.name}:{lineno}"
        if text is _PARAM:
            if path != SEAM:
                bad.append(f"{where}: runs code it was handed (only the transport may)")
        elif text is None:
            bad.append(f"{where}: an exec'd snippet this test cannot read")
        elif "<hostcall>" in text or HOSTCALL.search(text):
            if path != WRAPPER:
                bad.append(f"{where}: a host call built outside station/hostcalls.py")
        elif firmware_use(text):
            bad.append(f"{where}: runs firmware internals {sorted(firmware_use(text))}")
    return bad


def test_host_code_runs_nothing_of_the_firmware_but_hostapi() -> None:
    found, bad = 0, []
    for path in sorted(HOST.rglob("*.py")):
        src = path.read_text()
        found += len(snippets(src))
        bad += violations(path, src)
    assert bad == []
    assert found >= 10  # the scan sees the transport's, deploy's and the wrapper's snippets
    # the wrapper's own snippet for a token without firmware uses MicroPython's modules only
    assert firmware_use(hostcalls._CONFIG_STATE) == set()


@pytest.mark.parametrize("src", [
    'def f(dev):\n    dev.exec("import app\\nprint(app.code_at(c, 1))")\n',
    'P = "import config\\n"\ndef f(dev):\n    dev.exec(P + "config.update(config.PATH, locked=True)")\n',
    'def f(dev, n):\n    code = "import os\\n"\n    code += f"_r = app.devices(board, {n!r})"\n    dev.exec(code)\n',
    "def f(dev):\n    dev.eval(\"__import__('lease').hold()\")\n",
    'def f(dev):\n    dev.exec("from paycode.civil import civil_from_unix")\n',
    'def f(dev):\n    dev.exec("import hostapi; hostapi.probe()")\n',
    'def f(dev, code):\n    dev.exec(code)\n',
    'def f(dev):\n    dev.exec(make())\n',
])
def test_the_scan_finds_a_snippet_that_reaches_in(src: str) -> None:
    assert violations(HOST / "x.py", src)


def test_the_scan_lets_micropythons_own_modules_through() -> None:
    src = ('def f(dev, p):\n    dev.exec(f"import os, json\\nos.remove({p!r})\\n'
           "print(json.dumps(__import__('sys').platform))\")\n")
    assert violations(HOST / "x.py", src) == []


def test_the_run_time_watch_sees_host_code_reach_in(host_runs_only_hostapi) -> None:
    # code compiled as if it were a host module's: its exec'd snippet is caught
    class Closed(Device):
        def __init__(self) -> None:
            self.port, self._t, self._raw = "nowhere", None, False

    planted = compile("dev.exec('import app\\nprint(app.code_at(c, 1))')", str(HOST / "x.py"), "exec")
    with pytest.raises(DeviceError, match="the port is closed"):
        exec(planted, {"dev": Closed()})
    assert host_runs_only_hostapi == ["x.py: ran ['app']"]
    host_runs_only_hostapi.clear()
    ok = compile("dev.exec('import os')", str(HOST / "x.py"), "exec")
    with pytest.raises(DeviceError):
        exec(ok, {"dev": Closed()})
    assert host_runs_only_hostapi == []
