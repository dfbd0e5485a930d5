"""Helpers for the emulated-Pico tests: the materials check, the token, its littlefs.

The token's flash is an image file (``DIR/flash.img``, 2 MiB); its littlefs (MicroPython's
rp2 filesystem, at the end of the flash, as long as its superblock says) is read
and written here with littlefs-python, an independent implementation, while the
emulator is powered off or between its writes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paytoken import rp2image, upy, vhw
from paytoken.vdev import rp2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vdev"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "station"))

from vdevkit import MPREMOTE, VTok, start_vdev  # noqa: E402

__all__ = ("MPREMOTE", "VTok", "require", "start_pico", "read_file", "write_file", "token_config",
           "fwconfig", "wait_for", "cli", "serve", "ready", "panel_code", "release_image",
           "provisioned_pico", "offline_config")

_spec = importlib.util.spec_from_file_location("fwconfig_rp2", upy.FIRMWARE_DIR / "config.py")
fwconfig = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fwconfig)

BLOCK = 4096


def require() -> None:
    """Skip without the materials, naming what is missing; in CI (CI=true) fail instead."""
    gone = rp2.missing()
    if gone:
        msg = "emulated Pico: missing " + "; ".join(gone)
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def start_pico(flash: Path, *args: str, board: str = "pico") -> VTok:
    require()
    return start_vdev(flash, "--board", board, *args)


def release_image() -> rp2image.Image:
    """The frozen release image (``make firmware``; cached by content, so built at most
    once a run). Without the materials: skip, naming them; in CI (CI=true) fail."""
    require()
    try:
        return rp2image.build_image("pico", log=lambda m: print(m, flush=True))
    except rp2image.MaterialsMissing as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {e}")
        pytest.skip(str(e))


def fs_offset(img: bytes) -> int:
    """Where the littlefs starts in a flash image. The rp2 port puts it at the end of the
    flash; its superblock (a metadata pair, blocks 0 and 1) gives its size. The first
    block holding the magic is not always block 0: a cut while the pair is compacted
    leaves block 0 erased and the filesystem whole in block 1, which a littlefs mounts."""
    for o in range(0, len(img) - BLOCK + 1, BLOCK):
        if img[o + 8 : o + 16] != b"littlefs":
            continue
        # a compacted block opens with the superblock: revision, name tag, "littlefs",
        # struct tag, then version, block_size, block_count (little-endian)
        size = int.from_bytes(img[o + 24 : o + 28], "little")
        count = int.from_bytes(img[o + 28 : o + 32], "little")
        off = len(img) - size * count
        if size == BLOCK and o - off in (0, BLOCK):
            return off
    raise AssertionError("no littlefs superblock in the flash image")


def _lfs(flash: Path):
    from littlefs import LittleFS

    img = (flash / rp2.FLASH_IMAGE).read_bytes()
    off = fs_offset(img)
    # as the rp2 port's _boot.py mounts it: VfsLfs2(bdev, progsize=256), readsize and
    # lookahead 32, and extmod/vfs_lfsx.c's cache_size = min(block, 4 * max(read, prog)):
    # 1024. The cache size sets the largest inline file (min(cache, 512)), so a reader with
    # a smaller cache finds the token's inline config of 257-512 bytes "corrupt".
    fs = LittleFS(block_size=BLOCK, block_count=(len(img) - off) // BLOCK, read_size=32,
                  prog_size=256, cache_size=min(BLOCK, 4 * 256), lookahead_size=32, mount=False)
    fs.context.buffer = bytearray(img[off:])
    fs.mount()
    return fs, off, img


def read_file(flash: Path, path: str) -> bytes | None:
    """A file on the token's littlefs, or None. A running token may be writing the image
    (a wake records its step): a snapshot caught mid-write is read again, and a file is
    missing only if four snapshots a quarter second apart miss it."""
    missing = 0
    for _ in range(20):
        try:
            fs, _, _ = _lfs(flash)
        except Exception:  # a torn snapshot: littlefs-python cannot mount it
            time.sleep(0.2)
            continue
        try:
            with fs.open(path, "rb") as f:
                return f.read()
        except Exception:  # littlefs-python raises LittlefsError (ENOENT) for a missing file
            # a snapshot torn in another way can miss a file the token is rewriting
            missing += 1
            if missing >= 4:
                return None
            time.sleep(0.25)
    raise AssertionError("the flash image's littlefs does not mount")


def listdir(flash: Path, path: str = "/") -> list[str]:
    fs, _, _ = _lfs(flash)
    return sorted(fs.listdir(path))


def write_file(flash: Path, path: str, data: bytes) -> None:
    """Write a file into the image (only while the token is powered off)."""
    fs, off, img = _lfs(flash)
    with fs.open(path, "wb") as f:
        f.write(data)
    out = bytearray(img)
    out[off:] = fs.context.buffer
    (flash / rp2.FLASH_IMAGE).write_bytes(out)


def token_config(flash: Path) -> dict | None:
    """The config on the token, read by the firmware's own config module."""
    data = read_file(flash, "/paytoken.cfg")
    if data is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "paytoken.cfg"
        p.write_bytes(data)
        return fwconfig.load(str(p))


def offline_config(tok: VTok) -> dict | None:
    """The token's config read off its flash with the chip off, then powered again: a
    locked token records each new 30 s step on its flash, and a snapshot taken during
    that write may be torn."""
    vhw.power_off(tok.hw)
    wait_for(lambda: tok.child_pid() is None, 20, "the emulator stops on power-off")
    cfg = token_config(tok.flash)
    vhw.power_on(tok.hw)
    return cfg


@contextlib.contextmanager
def provisioned_pico(d: Path, *, burn_in: int, image: rp2image.Image | None = None) -> Iterator[dict]:
    """The factory's path on one emulated Pico, through the CLI: the stock MicroPython
    (or ``image`` flashed, nothing to copy) gets ``paytoken deploy`` and ``paytoken
    provision --burn-in`` (locked), beside a served issuer database. Yields ``tok``,
    ``iss``, ``url``, ``deploy`` and ``report`` (the CLIs' JSON), ``out`` (provision's
    output), ``cfg`` (the token's config off its flash), ``dir``, ``image``; stops both."""
    from stationkit import new_issuer

    tok = start_pico(d / "tok", *(("--image", str(image.path)) if image else ()))
    iss = new_issuer(f"sqlite:///{d / 'issuer.db'}", d)
    srv = serve(iss, d)  # starts while the token is deployed
    try:
        r = cli("deploy", "--port", tok.port, "--board", "pico", "--json", "--timeout", "90")
        assert r.returncode == 0, r.stdout + r.stderr
        dep = json.loads(r.stdout)
        r = cli("provision", "--port", tok.port, "--board", "pico", "--burn-in", str(burn_in), "--json",
                "--report-dir", str(d / "reports"), "--timeout", "90", env=iss.env())
        assert r.returncode == 0, r.stdout + r.stderr
        cfg = offline_config(tok)
        srv.wait()
        yield {"tok": tok, "iss": iss, "url": srv.url, "deploy": dep, "report": json.loads(r.stdout)[0],
               "out": r.stdout + r.stderr, "cfg": cfg, "dir": d, "image": image}
    finally:
        srv.close()
        tok.stop()


def save_config(tok: VTok, cfg: dict) -> None:
    """Replace the token's config (power off, write the image, power on)."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "paytoken.cfg"
        fwconfig.save(cfg, str(p))
        data = p.read_bytes()
    vhw.power_off(tok.hw)
    wait_for(lambda: tok.child_pid() is None, 10, "the emulator stops on power-off")
    write_file(tok.flash, "/paytoken.cfg", data)
    vhw.power_on(tok.hw)


def wait_for(cond, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out ({timeout:g} s): {what}")
        time.sleep(every)


def cli(*args: str, env: dict | None = None, timeout: float = 300):
    """The real CLI in a subprocess."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "paytoken", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


class serve:
    """``paytoken serve`` on a free port for an issuer (stationkit.new_issuer); ``.url``."""

    def __init__(self, iss, folder: Path) -> None:
        import socket
        import subprocess

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log = open(folder / "server.log", "wb")  # noqa: SIM115 (closed in close)
        self.proc = subprocess.Popen([sys.executable, "-m", "paytoken", "serve", "--port", str(port),
                                      "--log-level", "warning"], env=iss.env(), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"

    def wait(self) -> None:
        import httpx

        def up() -> bool:
            try:
                return httpx.get(self.url + "/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "the issuer server starts")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def ready(tok) -> None:
    """Wait for INFO: a just-booted emulated token on a loaded machine takes many wall
    seconds to its first frame and the protocol, and some CLIs have short fixed timeouts."""
    from paytoken.station import ops
    from paytoken.station.transport import Device

    with Device(tok.port, timeout=180) as dev:
        ops.info(dev)


def panel_code(tok, tmp: Path, cfg: dict) -> str:
    """The panel's QR, read by zxing-cpp, once it shows a code of the last minute: the
    frame before a press may be old (on a loaded machine emulated time, which the
    countdown follows, runs far slower than the DS3231 model's UTC)."""
    import paycode
    from paytoken.scan import ScanError, read_qr

    png = tmp / "panel.png"

    def decoded() -> str | None:
        vhw.snapshot(tok.hw, png)
        try:
            code = read_qr(png)
        except ScanError:
            return None
        now = int(time.time())
        fresh = {paycode.payment_code(cfg["secret"], cfg["token_id"], t, cfg["scheme_key"], cfg["prefix"])
                 for t in range(now - 60, now + 31, 30)}
        return code if code in fresh else None

    return wait_for(decoded, 300, "a current code's QR on the panel", every=0.5)
