"""Deploy the firmware to a token: compile with mpy-cross, copy only what changed.

Usage::

    with Device(port) as dev:
        result = deploy(dev, "sim")      # -> DeployResult(copied=[...], unchanged=[...])

``firmware/**/*.py`` is compiled for the board's ``ARCH``; ``main.py`` and ``boot.py``
stay source, and the board file goes to ``/board.py``. A chip family's code goes only
to boards whose ``FAMILY`` names it: ``firmware/fam_<family>.py`` and a folder
``firmware/<family>/`` of a family some board declares (``firmware/sim/``, the chip
models, for ``FAMILY = "sim"``). The device keeps a manifest ``/.deploy.json`` of what
was deployed (path -> SHA-256). Before copying, the station hashes the device's files and compares
them with the manifest and with the build: only files whose hash differs are copied,
each atomically (``Device.put``: temp file, hash check, rename). Files of an older
deploy that are no longer part of it are removed, and so are leftover temp files of
a cut copy and any ``.py`` that would shadow a deployed ``.mpy``.

A token that runs a frozen release image (``make firmware``; it has a ``fwimage``
module) already holds the firmware: deploy copies nothing there, checks that the image
is for this board, and removes the files of an older deploy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from paytoken import literal, upy
from paytoken.station.transport import Device, DeviceError

MANIFEST = "/.deploy.json"
SOURCE_KEPT = ("main.py", "boot.py")  # a board runs these as source
# A firmware tree without these is refused before anything reaches a token: a deploy
# of an empty or wrong folder would remove the token's firmware.
REQUIRED = ("main.py", "app.py", "config.py", "proto.py", "lease.py", "fwversion.py",
            "hostapi.py", "paycode/__init__.py")

UNIX_PLATFORMS = ("linux", "darwin", "freebsd")  # sys.platform of the unix port

# sys.implementation._mpy >> 10 on the device, by mpy-cross -march name
ARCH_BITS = {
    "x86": 1,
    "x64": 2,
    "armv6": 3,
    "armv6m": 4,
    "armv7m": 5,
    "armv7em": 6,
    "armv7emsp": 7,
    "armv7emdp": 8,
    "xtensa": 9,
    "xtensawin": 10,
    "rv32imc": 11,
    "rv64imc": 12,
}


class DeployError(Exception):
    """The deploy was refused or failed; the message says why."""


@dataclass
class Board:
    """A board definition: its name, file, mpy-cross arch, whether it is simulated, its family."""

    name: str
    path: Path
    arch: str
    platform: str | None
    sim: bool
    family: str = ""


@dataclass
class DeployResult:
    """What a deploy did, by device path."""

    port: str
    board: str
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    manifest_ok: bool = True
    seconds: float = 0.0
    image: str = "files"  # the frozen image's id when the token runs one (nothing copied)


def _board_consts(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    # The literal values of top-level NAME = value lines (the file is not run).
    return literal.top_level_literals(path, names)


def load_board(name: str, boards_dir: Path | None = None) -> Board:
    """Read ``boards/<name>.py`` (without running it): ``ARCH``, ``FAMILY``, optional ``PLATFORM``."""
    bdir = boards_dir or upy.BOARDS_DIR
    if not name or "/" in name or name.startswith("."):
        raise DeployError(f"bad board name {name!r}")
    path = bdir / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in bdir.glob("*.py")) if bdir.is_dir() else []
        raise DeployError(f"no board {name!r} (known: {', '.join(known) or 'none'})")
    consts = _board_consts(path, ("ARCH", "PLATFORM", "FAMILY"))
    arch = consts.get("ARCH")
    if not isinstance(arch, str) or arch not in ARCH_BITS:
        raise DeployError(
            f"board {name}: ARCH must be an mpy-cross arch ({', '.join(ARCH_BITS)}), got {arch!r}"
        )
    family = consts.get("FAMILY")
    if not isinstance(family, str) or not family.isidentifier():
        raise DeployError(
            f"board {name}: FAMILY must name its chip family (firmware/fam_<family>.py), got {family!r}"
        )
    plat = consts.get("PLATFORM")
    return Board(name, path, arch, plat if isinstance(plat, str) else None, family == "sim", family)


def families(boards_dir: Path) -> set[str]:
    """The chip families the board files in ``boards_dir`` declare (``FAMILY``)."""
    out = set()
    for p in boards_dir.glob("*.py"):
        fam = _board_consts(p, ("FAMILY",)).get("FAMILY")
        if isinstance(fam, str):
            out.add(fam)
    return out


def family_of(rel: Path, known: set[str]) -> str | None:
    """The family a firmware file (path relative to ``firmware/``) belongs to, or None: all boards'."""
    top = rel.parts[0]
    if len(rel.parts) == 1:
        stem = top[:-3] if top.endswith(".py") else top
        return stem[4:] if stem.startswith("fam_") else None
    return top if top in known else None


def sources(board: Board, firmware_dir: Path | None = None) -> dict[str, Path]:
    """Device path -> source file for this board (board file included)."""
    fw = firmware_dir or upy.FIRMWARE_DIR
    known = families(board.path.parent) | {board.family}
    out: dict[str, Path] = {}
    for p in sorted(fw.rglob("*.py")):
        rel = p.relative_to(fw)
        if "__pycache__" in rel.parts or any(part.startswith(".") for part in rel.parts):
            continue
        fam = family_of(rel, known)
        if fam is not None and fam != board.family:
            continue  # another chip family's code
        name = rel.as_posix()
        if name in SOURCE_KEPT:
            out["/" + name] = p
        else:
            out["/" + name[:-3] + ".mpy"] = p
    out["/board.py"] = board.path
    return out


def _mpy_cross_version() -> str:
    proc = subprocess.run([upy.mpy_cross(), "--version"], capture_output=True, text=True)
    return proc.stdout.strip()


def _cache_dir() -> Path:
    d = Path(os.environ.get("PAYTOKEN_BUILD") or upy.BUILD_DIR) / "mpy"
    try:
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:
        # a folder of this user's own: a shared /tmp/paytoken-mpy would let another user
        # plant the .mpy files that get deployed, or make this one fail on their folder
        d = Path(tempfile.gettempdir()) / f"paytoken-mpy-{os.getuid()}"
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.lstat()
        if not d.is_dir() or d.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise DeployError(f"compile cache {d} is not a private folder of this user") from None
        return d


def check_tree(firmware_dir: Path | None = None) -> Path:
    """Refuse a firmware tree that is not one (missing folder, missing modules)."""
    fw = firmware_dir or upy.FIRMWARE_DIR
    if not fw.is_dir():
        raise DeployError(f"firmware tree {fw}: not a folder")
    missing = [n for n in REQUIRED if not (fw / n).is_file()]
    if missing:
        raise DeployError(f"firmware tree {fw}: missing {', '.join(missing)}")
    return fw


def build(board: Board, firmware_dir: Path | None = None) -> dict[str, bytes]:
    """Device path -> bytes to deploy; compiled ``.mpy`` are cached by source hash.
    The tree is checked first (``check_tree``) and every file compiles, or nothing
    is returned: call it before the token is touched."""
    check_tree(firmware_dir)
    srcs = sources(board, firmware_dir)
    version = _mpy_cross_version()
    cache = _cache_dir()
    out: dict[str, bytes] = {}
    todo: list[tuple[str, Path, Path]] = []
    for dev_path, src in srcs.items():
        data = src.read_bytes()
        if not dev_path.endswith(".mpy"):
            out[dev_path] = data
            continue
        key = hashlib.sha256(f"{version}|{board.arch}|{dev_path}|".encode() + data).hexdigest()
        cached = cache / f"{key}.mpy"
        if cached.exists():
            out[dev_path] = cached.read_bytes()
        else:
            todo.append((dev_path, src, cached))

    def compile_one(item: tuple[str, Path, Path]) -> tuple[str, bytes]:
        dev_path, src, cached = item
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "out.mpy"
            proc = subprocess.run(
                [upy.mpy_cross(), f"-march={board.arch}", "-s", dev_path[1:-4] + ".py",
                 "-o", str(target), str(src)],
                capture_output=True, text=True, timeout=120,
            )
            if proc.returncode != 0:
                raise DeployError(f"mpy-cross failed on {src}: {proc.stderr.strip()[-500:]}")
            data = target.read_bytes()
        # A unique temp name in the cache folder: two deploys (threads of one process, or
        # processes) may compile the same file at once; each renames its own copy over.
        fd, tmpc = tempfile.mkstemp(dir=cached.parent, prefix=cached.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmpc, cached)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmpc)
            raise
        return dev_path, data

    if todo:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for dev_path, data in pool.map(compile_one, todo):
                out[dev_path] = data
    return out


def check_device(dev: Device, board: Board, built: dict[str, bytes]) -> dict[str, object]:
    """Refuse a device that cannot load this board's build; return what it reported."""
    info = dev.eval(
        "(__import__('sys').platform, getattr(__import__('sys').implementation, '_mpy', None))"
    )
    plat, mpy = info
    if board.platform and plat != board.platform:
        raise DeployError(
            f"wrong board: {board.name} is for platform {board.platform}, "
            f"the device on {dev.port} is {plat}"
        )
    unix = plat in UNIX_PLATFORMS
    if board.sim != unix:
        kind = "a sim board (the unix port)" if board.sim else "a real board"
        raise DeployError(
            f"wrong board: {board.name} is {kind}, the device on {dev.port} is {plat}"
        )
    if isinstance(mpy, int):
        dev_arch = mpy >> 10
        names = [k for k, v in ARCH_BITS.items() if v == dev_arch]
        if dev_arch and dev_arch != ARCH_BITS[board.arch]:
            raise DeployError(
                f"wrong board: {board.name} is built for {board.arch}, the device on "
                f"{dev.port} runs {names[0] if names else dev_arch} ({plat})"
            )
        have = (mpy & 0xFF, (mpy >> 8) & 3)
        for data in built.values():
            if data[:1] != b"M":
                continue  # source
            # the sub-version matters only for native code (byte 2 non-zero)
            native = data[2] != 0
            if data[1] != have[0] or (native and data[2] & 3 != have[1]):
                raise DeployError(
                    f"mpy-cross emits mpy v{data[1]}.{data[2] & 3}, the device on {dev.port} "
                    f"loads v{have[0]}.{have[1]}: install a matching mpy-cross"
                )
            break
    return {"platform": plat, "mpy": mpy}


_IMAGE = (
    "try:\n"
    " import fwimage as _m\n"
    " print(repr((_m.ID, _m.BOARD)))\n"
    " del _m\n"
    "except ImportError:\n"
    " print('None')\n"
)


def frozen_image(dev: Device) -> tuple[str, str] | None:
    """``(id, board)`` of the frozen image the device runs (its ``fwimage``), or None."""
    out = dev.exec(_IMAGE).strip()
    try:
        got = literal.literal_eval(out)
    except (ValueError, SyntaxError):
        raise DeployError(f"{dev.port}: unexpected answer to the image probe") from None
    if got is None:
        return None
    if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(x, str) for x in got)):
        raise DeployError(f"{dev.port}: unexpected answer to the image probe")
    return got


def _on_frozen(dev: Device, board: Board, image: tuple[str, str],
               result: DeployResult) -> DeployResult:
    # The firmware is in the image (its modules come before any file): nothing is
    # copied. The files of an older deploy would only lie about what runs: they go.
    ident, img_board = image
    if img_board != board.name:
        raise DeployError(
            f"{dev.port} runs the frozen image {ident} for board {img_board}, not {board.name}: "
            f"flash build/firmware/paytoken-{board.name}.uf2 (make firmware "
            f"FIRMWARE_BOARD={board.name})"
        )
    result.image = ident
    old = sorted(set(_read_manifest(dev)) | {MANIFEST})
    out = dev.exec(
        "import os\n"
        "_r=[]\n"
        f"for _p in {old!r}:\n"
        " try:\n  os.remove(_p)\n  _r.append(_p)\n except OSError:\n  pass\n"
        "print(repr(_r))\n"
        "del _r\n"
    )
    result.removed = literal.literal_eval(out.strip() or "[]")
    return result


def _read_manifest(dev: Device) -> dict[str, str]:
    raw = dev.exec(
        "try:\n"
        f" _f=open({MANIFEST!r})\n"
        " print(_f.read())\n"
        " _f.close()\n"
        "except OSError:\n"
        " print('{}')\n"
    )
    try:
        files = json.loads(raw.strip() or "{}").get("files", {})
    except (ValueError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def deploy(
    dev: Device,
    board: Board | str,
    *,
    firmware_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    built: dict[str, bytes] | None = None,
) -> DeployResult:
    """Deploy the firmware for ``board`` to ``dev``; copy only what changed.

    ``built``: the output of ``build`` made beforehand (the service desk builds before
    it unlocks). Changed files are staged as ``path.tmp`` (each hash-checked), then
    renamed in one call, with the stale files removed after: a cut copy leaves the old
    firmware whole."""
    t0 = time.perf_counter()
    if isinstance(board, str):
        board = load_board(board)
    if built is None:
        built = build(board, firmware_dir)
    dev.enter_raw()
    check_device(dev, board, built)
    result = DeployResult(port=dev.port, board=board.name)
    image = frozen_image(dev)
    if image is not None:
        _on_frozen(dev, board, image, result)
        if progress:
            progress("", 0, 0)
        result.seconds = time.perf_counter() - t0
        return result
    manifest = _read_manifest(dev)
    want = {p: hashlib.sha256(d).hexdigest() for p, d in built.items()}
    on_dev = dev.sha256(sorted(want))
    result.manifest_ok = all(manifest.get(p) == h for p, h in on_dev.items() if h is not None)
    changed = [p for p in sorted(want) if on_dev.get(p) != want[p]]
    result.unchanged = [p for p in sorted(want) if p not in changed]

    # what goes: files of an older deploy, temp files of a cut copy, shadowing twins
    stale = {p for p in manifest if p not in want and p != MANIFEST}
    for p in want:
        stale.add(p + ".tmp")
        if p.endswith(".mpy"):
            stale.add(p[:-4] + ".py")
        elif p.endswith(".py") and p != "/board.py":
            stale.add(p[:-3] + ".mpy")
    stale.add(MANIFEST + ".tmp")
    stale -= set(want)
    temps = sorted(p for p in stale if p.endswith(".tmp"))
    olds = sorted(p for p in stale if not p.endswith(".tmp"))
    dirs = sorted({str(Path(p).parent) for p in want} - {"/"}, key=len)
    ex = "import os\ndef _ex(p):\n try:\n  return os.stat(p)[0]\n except OSError:\n  return 0\n"
    # first: the folders, the temps of a cut copy go, and which stale files exist
    out = dev.exec(
        ex + f"for _d in {dirs!r}:\n if not _ex(_d) & 0x4000:\n  os.mkdir(_d)\n"
        f"for _p in {temps!r}:\n if _ex(_p) & 0x8000:\n  os.remove(_p)\n"
        f"print(repr([_p for _p in {olds!r} if _ex(_p) & 0x8000]))\ndel _ex\n"
    )
    old_files = literal.literal_eval(out.strip() or "[]")
    for i, p in enumerate(changed):
        if progress:
            progress(p, i, len(changed))
        dev.put(built[p], p, stage=True)
    if changed or old_files or manifest != want:
        doc = {"board": board.name, "arch": board.arch, "files": want}
        dev.put(json.dumps(doc, sort_keys=True).encode(), MANIFEST, stage=True)
        staged = changed + [MANIFEST]
        # one call: every staged file takes its place, then the stale ones go (a cut
        # before it leaves the old firmware whole; FAT renames onto no existing file)
        dev.exec(
            "import os\n"
            f"for _p in {staged!r}:\n try:\n  os.rename(_p + '.tmp', _p)\n"
            " except OSError:\n  os.remove(_p)\n  os.rename(_p + '.tmp', _p)\n"
            f"for _p in {old_files!r}:\n os.remove(_p)\n"
        )
        result.removed = list(old_files)
        result.copied = list(changed)
    if progress:
        progress("", len(changed), len(changed))
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["Board", "DeployError", "DeployResult", "DeviceError", "build", "check_tree", "deploy",
           "families", "family_of", "frozen_image", "load_board"]
