"""The token's frozen release image for the RP2040: build it, cache it, read it back.

Usage::

    img = build_image("pico")              # -> Image(path=build/firmware/paytoken-pico.uf2, ...)
    python -m paytoken.rp2image [--board pico]   # what `make firmware` runs

The image is MicroPython v1.28.0's rp2 port (RPI_PICO) built from the sources in the
materials folder (``$PAYTOKEN_RP2_DIR``, default ``../shared/micropython-rp2`` from the
repo root), with ``image/manifest.py`` as its ``FROZEN_MANIFEST``: the boot path of
``image/`` (``_boot.py``, ``boot.py``), and the files ``paytoken deploy`` would copy to
the board (``deploy.sources``: ``main.py``, ``board.py``, the firmware, ``paycode/``,
the board's family code) plus ``fwimage.py``, the image's id (``INFO`` says
``image=<id>``). Builds are cached by a content hash of all of these and of the source
tarballs, so a rebuild with nothing changed copies nothing and compiles nothing.

Everything the build makes lives under ``build/`` (not committed): ``build/rp2/`` the
unpacked sources, picotool and mpy-cross (built once), ``build/rp2/build-image`` the
port's CMake build (shared by the boards), ``build/firmware/`` the images (``cache/<key>/`` by content hash).
On Debian the ARM toolchain is installed with apt-get when it is missing (as root).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from paytoken import upy
from paytoken.station import deploy

MATERIALS_ENV = "PAYTOKEN_RP2_DIR"
MP_TARBALL = "micropython-1.28.0-rp2-src.tar.xz"
PICOTOOL_TARBALL = "picotool-2.2.0-src.tar.xz"
PORT_BOARD = "RPI_PICO"  # MicroPython's board: the Pico's flash and pins
MP_VERSION, MP_HASH = "v1.28.0", "e0e9fbb17ed6"  # the tarball's release (materials README)
APT_PACKAGES = (
    "gcc-arm-none-eabi",
    "libnewlib-arm-none-eabi",
    "libstdc++-arm-none-eabi-newlib",
    "build-essential",
    "cmake",
)
IMAGE_DIR = upy.REPO / "image"
MANIFEST = IMAGE_DIR / "manifest.py"
# the boot path the image freezes from image/ (manifest.py names them)
BOOT_FILES = ("_boot.py", "boot.py")
# Bump when the build itself changes in a way the hashed inputs do not show.
RECIPE = "paytoken-rp2image-2"

UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
UF2_FAMILY_RP2040 = 0xE48BFF56
UF2_FLAG_FAMILY = 0x00002000
FLASH_BASE = 0x10000000

Log = Callable[[str], None]


class ImageError(Exception):
    """The image could not be built or read; the message says why."""


class MaterialsMissing(ImageError):
    """The MicroPython sources are not there; the message says what and how to get them."""


@dataclass
class Image:
    """A built image: its file, id, content key and what is frozen in it."""

    board: str
    path: Path
    image_id: str
    key: str
    frozen: list[str] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0

    @property
    def meta_path(self) -> Path:
        return self.path.with_suffix(".json")


def _out(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_root() -> Path:
    return Path(os.environ.get("PAYTOKEN_BUILD", upy.REPO / "build"))


def materials_dir() -> Path:
    """The materials folder: ``$PAYTOKEN_RP2_DIR``, else ``../shared/micropython-rp2``."""
    env = os.environ.get(MATERIALS_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (upy.REPO / ".." / "shared" / "micropython-rp2").resolve()


def check_materials(mdir: Path | None = None) -> Path:
    """The materials folder, or MaterialsMissing saying what is missing and how to get it."""
    mdir = mdir or materials_dir()
    missing = [n for n in (MP_TARBALL, PICOTOOL_TARBALL) if not (mdir / n).is_file()]
    if missing:
        raise MaterialsMissing(
            f"no {' and no '.join(missing)} in {mdir}: the RP2040 image is built from "
            "MicroPython v1.28.0 with its rp2 submodules (lib/pico-sdk, lib/tinyusb, "
            "lib/mbedtls, lib/micropython-lib) and picotool 2.2.0; make those two tarballs "
            "(git clone --branch v1.28.0 https://github.com/micropython/micropython, "
            "make -C ports/rp2 submodules; git clone --branch 2.2.0 "
            "https://github.com/raspberrypi/picotool) and point "
            f"{MATERIALS_ENV} at their folder"
        )
    return mdir


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- what goes into the image ----------------------------------------------------------

def tree_files(board: deploy.Board) -> dict[str, bytes]:
    """Module path in the image (``app.py``, ``paycode/aes.py``, ``board.py``) -> source.

    The very files ``paytoken deploy`` copies to this board, as source (the image
    compiles them itself), without ``fwimage.py``, which the build adds.
    """
    out: dict[str, bytes] = {}
    for dev_path, src in deploy.sources(board).items():
        name = dev_path[1:]
        if name.endswith(".mpy"):
            name = name[:-4] + ".py"
        out[name] = src.read_bytes()
    return out


def image_key(board: deploy.Board, mdir: Path) -> str:
    """The content hash of everything the image is made of (sources, manifest, tarballs)."""
    h = hashlib.sha256()
    parts: list[tuple[str, bytes]] = [("recipe", RECIPE.encode()), ("board", board.name.encode())]
    parts += [(f"tree/{k}", v) for k, v in sorted(tree_files(board).items())]
    # image/: what the build reads (the manifest and the frozen boot path; prove_emu.py not)
    parts += [(f"image/{n}", (IMAGE_DIR / n).read_bytes()) for n in ("manifest.py", *BOOT_FILES)]
    for tb in (MP_TARBALL, PICOTOOL_TARBALL):
        parts.append((f"tarball/{tb}", _sha256_file(mdir / tb).encode()))
    for name, data in parts:
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def image_id(board: str, key: str) -> str:
    """The id INFO reports for an image: its board and the first 16 digits of its key."""
    return f"{board}-{key[:16]}"


def fwimage_source(board: str, key: str) -> bytes:
    return (
        '"""The frozen image this token runs (generated by paytoken.rp2image). Usage: import fwimage; fwimage.ID"""\n'
        f"ID = {image_id(board, key)!r}\n"
        f"BOARD = {board!r}\n"
        f"KEY = {key!r}\n"
    ).encode()


def stage_tree(board: deploy.Board, key: str, dest: Path) -> list[str]:
    """Write the image's firmware tree (what the manifest freezes) to ``dest``; its names."""
    files = tree_files(board)
    files["fwimage.py"] = fwimage_source(board.name, key)
    if dest.exists():
        shutil.rmtree(dest)
    for name, data in files.items():
        p = dest / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return sorted(files)


# ---- the toolchain and the sources -----------------------------------------------------

def _newlib_ok() -> bool:
    gcc = shutil.which("arm-none-eabi-gcc")
    if not gcc:
        return False
    for lib in ("libc.a", "libstdc++.a"):
        r = subprocess.run([gcc, f"-print-file-name={lib}"], capture_output=True, text=True)
        if not os.path.isabs(r.stdout.strip()):
            return False
    return True


def toolchain_missing() -> list[str]:
    """What of the build's tools is not installed (empty: all there)."""
    missing = [t for t in ("arm-none-eabi-gcc", "cmake", "make", "gcc", "g++") if not shutil.which(t)]
    if "arm-none-eabi-gcc" not in missing and not _newlib_ok():
        missing.append("newlib/libstdc++ for arm-none-eabi")
    return missing


def ensure_toolchain(log: Log = _out) -> None:
    """Install the ARM toolchain with apt-get when it is missing (Debian, as root)."""
    missing = toolchain_missing()
    if not missing:
        return
    fix = "apt-get install -y --no-install-recommends " + " ".join(APT_PACKAGES)
    if not shutil.which("apt-get") or os.geteuid() != 0:
        raise ImageError(f"missing {', '.join(missing)}: install them (Debian: `{fix}`, as root)")
    log(f"installing the ARM toolchain ({', '.join(missing)} missing): {fix}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends",
           *APT_PACKAGES]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        # the package lists may be missing (a fresh container)
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], env=env,
                       capture_output=True, text=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0 or toolchain_missing():
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
        raise ImageError(f"apt-get could not install the ARM toolchain: {tail[0]}")


def _run(cmd: list[str], step: str, log_file: Path, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> None:
    with log_file.open("a") as lf:
        lf.write(f"\n$ {' '.join(cmd)}\n")
        lf.flush()
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=lf, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        lines = log_file.read_text(errors="replace").strip().splitlines()
        raise ImageError(f"{step} failed (exit {r.returncode}; log {log_file}): "
                         f"{lines[-1][:300] if lines else '?'}")


def _jobs() -> str:
    return str(min(2, os.cpu_count() or 1))


def ensure_sources(mdir: Path, root: Path, log: Log = _out) -> Path:
    """Unpack the tarballs into ``root`` and build picotool and mpy-cross, once each."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = root / ".sources.json"
    want = {tb: _sha256_file(mdir / tb) for tb in (MP_TARBALL, PICOTOOL_TARBALL)}
    have = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if have.get("tarballs") != want:
        log(f"unpacking the MicroPython and picotool sources into {root}")
        for d in ("micropython", "picotool", "picotool-install"):
            shutil.rmtree(root / d, ignore_errors=True)
        for d in root.glob("build-*"):
            shutil.rmtree(d, ignore_errors=True)
        for tb in (MP_TARBALL, PICOTOOL_TARBALL):
            with tarfile.open(mdir / tb) as t:
                if hasattr(tarfile, "tar_filter"):  # no links or paths out of root
                    t.extractall(root, filter="tar")
                else:
                    t.extractall(root)  # noqa: S202  (a Python without extraction filters)
        have = {"tarballs": want}
        stamp.write_text(json.dumps(have))
    log_file = root / "tools.log"
    sdk = root / "micropython" / "lib" / "pico-sdk"
    if not have.get("picotool"):
        log("building picotool (once)")
        _run(["cmake", "-S", str(root / "picotool"), "-B", str(root / "picotool" / "build"),
              f"-DPICO_SDK_PATH={sdk}", "-DPICOTOOL_NO_LIBUSB=1", "-DPICOTOOL_FLAT_INSTALL=1",
              f"-DCMAKE_INSTALL_PREFIX={root / 'picotool-install'}"], "picotool cmake", log_file)
        _run(["make", "-C", str(root / "picotool" / "build"), "-j", _jobs()], "picotool", log_file)
        _run(["make", "-C", str(root / "picotool" / "build"), "install"], "picotool install",
             log_file)
        have["picotool"] = True
        stamp.write_text(json.dumps(have))
    if not have.get("mpy-cross"):
        log("building mpy-cross (once)")
        _run(["make", "-C", str(root / "micropython" / "mpy-cross"), "-j", _jobs()], "mpy-cross",
             log_file)
        have["mpy-cross"] = True
        stamp.write_text(json.dumps(have))
    return root


# ---- the build -------------------------------------------------------------------------

@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # One build at a time (two test workers, or make and a test, may ask at once).
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def frozen_names(build_dir: Path) -> list[str]:
    """The frozen module names of a port build (its ``frozen_content.c``)."""
    src = (build_dir / "frozen_content.c").read_text()
    m = re.search(r"mp_frozen_names\[\]\s*=\s*\{(.*?)\};", src, re.S)
    if not m:
        raise ImageError(f"{build_dir}/frozen_content.c has no mp_frozen_names")
    names = re.findall(r'"((?:[^"\\]|\\.)*?)\\0"', m.group(1))
    return [n for n in names if n]


def _current(out: Path, key: str) -> Image | None:
    # The image at ``out`` if it is the one for ``key`` and intact.
    meta = out.with_suffix(".json")
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("key") != key or not out.is_file() or _sha256_file(out) != doc.get("sha256"):
        return None
    return Image(doc["board"], out, doc["id"], key, list(doc["frozen"]), cached=True)


def _publish(src_dir: Path, out: Path) -> None:
    # Copy a cached image (uf2 + json) to its published name, each atomically.
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".uf2", ".json"):
        tmp = out.with_suffix(suffix + ".tmp")
        shutil.copyfile(src_dir / ("image" + suffix), tmp)
        os.replace(tmp, out.with_suffix(suffix))


def build_image(board_name: str = "pico", *, log: Log = _out, out: Path | None = None) -> Image:
    """Build (or take from the cache) ``build/firmware/paytoken-<board>.uf2``."""
    t0 = time.perf_counter()
    board = deploy.load_board(board_name)
    if board.family != "rp2040":
        raise ImageError(f"board {board.name} is of family {board.family}: the image is for rp2040 boards")
    mdir = check_materials()
    key = image_key(board, mdir)
    fw = build_root() / "firmware"
    out = out or fw / f"paytoken-{board.name}.uf2"
    img = _current(out, key)
    if img:
        img.seconds = time.perf_counter() - t0
        return img
    with _locked(fw / ".lock"):
        img = _current(out, key)  # another process may have built it meanwhile
        if img is None:
            cached = fw / "cache" / key
            if not (cached / "image.json").is_file():
                _build(board, key, mdir, cached, log)
            _publish(cached, out)
            img = _current(out, key)
            if img is None:
                raise ImageError(f"{out}: the published image does not match its record")
            img.cached = False
    img.seconds = time.perf_counter() - t0
    return img


def _drop_moved_build(bdir: Path) -> None:
    """Remove a CMake build folder made in another place (a copied ``build/``): its cache
    names the other folder, so make would regenerate the frozen modules there and link a
    stale image here."""
    cache = bdir / "CMakeCache.txt"
    try:
        text = cache.read_text(errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        if line.startswith("CMAKE_CACHEFILE_DIR:"):
            if Path(line.split("=", 1)[1]).resolve() != bdir.resolve():
                shutil.rmtree(bdir, ignore_errors=True)
            return


def _build(board: deploy.Board, key: str, mdir: Path, cached: Path, log: Log) -> None:
    ensure_toolchain(log)
    root = ensure_sources(mdir, build_root() / "rp2", log)
    tree = build_root() / "firmware" / "tree" / board.name
    names = stage_tree(board, key, tree)
    # One port build for every board: only the frozen content differs between boards, so
    # another board (or a changed firmware) recompiles that and relinks (builds are
    # serialised by the lock; the image id checked below catches a stale link).
    bdir = root / "build-image"
    _drop_moved_build(bdir)
    log_file = root / f"build-{board.name}.log"
    log(f"building the {board.name} image {image_id(board.name, key)} (about 2 minutes; log {log_file})")
    # The version banner from the release, not from the git repository the sources sit
    # in (ours), and a build date from the sources: the same inputs, the same image.
    env = dict(os.environ, PAYTOKEN_IMAGE_TREE=str(tree),
               CMAKE_ARGS=f"-Dpicotool_DIR={root / 'picotool-install' / 'picotool'}",
               MICROPY_GIT_TAG=MP_VERSION, MICROPY_GIT_HASH=MP_HASH,
               SOURCE_DATE_EPOCH=str(int((root / "micropython" / "py" / "mpconfig.h").stat().st_mtime)))
    _run(["make", "-C", str(root / "micropython" / "ports" / "rp2"), f"BOARD={PORT_BOARD}",
          f"BUILD={bdir}", f"FROZEN_MANIFEST={MANIFEST}", "-j", _jobs()],
         f"the {board.name} image build", log_file, env=env)
    frozen = frozen_names(bdir)
    want = [*names, *BOOT_FILES, "rp2.py"]
    lost = sorted(set(want) - set(frozen))
    if lost:
        raise ImageError(f"the build froze no {', '.join(lost)} (see {log_file})")
    uf2 = bdir / "firmware.uf2"
    flash = read_uf2(uf2)
    if image_id(board.name, key).encode() not in flash:
        raise ImageError(f"{uf2} does not hold the image id: a stale build?")
    tmp = cached.with_name(cached.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(uf2, tmp / "image.uf2")
    doc = {
        "board": board.name,
        "id": image_id(board.name, key),
        "key": key,
        "sha256": _sha256_file(tmp / "image.uf2"),
        "size": (tmp / "image.uf2").stat().st_size,
        "micropython": MP_TARBALL,
        "port_board": PORT_BOARD,
        "frozen": frozen,
        "firmware": names,
    }
    (tmp / "image.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(cached, ignore_errors=True)
    os.replace(tmp, cached)


# ---- reading an image back -------------------------------------------------------------

def read_uf2(path: Path, family: int = UF2_FAMILY_RP2040) -> bytes:
    """The flash contents a UF2 file writes (from ``FLASH_BASE``, gaps as 0xFF).

    Checks every block (the three magic numbers, 256-byte payloads, the family id and
    the block count), as the RP2040 boot ROM would; ImageError names the first bad one.
    """
    data = path.read_bytes()
    if not data or len(data) % 512:
        raise ImageError(f"{path}: not a UF2 file (size {len(data)} is not a multiple of 512)")
    blocks: dict[int, bytes] = {}
    total = None
    for i in range(len(data) // 512):
        blk = data[i * 512:(i + 1) * 512]
        m0, m1, flags, addr, size, no, count, fam = struct.unpack_from("<8I", blk)
        (m_end,) = struct.unpack_from("<I", blk, 508)
        if (m0, m1, m_end) != UF2_MAGIC:
            raise ImageError(f"{path}: block {i} has bad UF2 magic")
        if not flags & UF2_FLAG_FAMILY or fam != family:
            raise ImageError(f"{path}: block {i} is not for family {family:#x}")
        if size != 256 or no != i or (total is not None and count != total):
            raise ImageError(f"{path}: block {i} is out of sequence")
        total = count
        if addr < FLASH_BASE or addr % 256:
            raise ImageError(f"{path}: block {i} writes {addr:#x}, outside the flash")
        blocks[addr - FLASH_BASE] = blk[32:32 + 256]
    if total != len(data) // 512:
        raise ImageError(f"{path}: {len(data) // 512} blocks, the header says {total}")
    end = max(blocks) + 256
    flash = bytearray(b"\xff" * end)
    for off, payload in blocks.items():
        flash[off:off + 256] = payload
    return bytes(flash)


def frozen_names_in_flash(flash: bytes) -> list[str]:
    """The frozen module names stored in a flash image: MicroPython's ``mp_frozen_names``,
    a run of NUL-terminated ``.py`` names ended by an empty one, the run that holds
    ``_boot.py``."""
    for m in re.finditer(rb"((?:[A-Za-z0-9_][A-Za-z0-9_./-]*\.py\x00){3,})\x00", flash):
        names = [n.decode() for n in m.group(1).split(b"\0") if n]
        if "_boot.py" in names:
            return names
    raise ImageError("no frozen module table (with _boot.py) in the image")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paytoken.rp2image",
                                 description="Build the token's frozen RP2040 image (make firmware).")
    ap.add_argument("--board", default="pico", help="an rp2040 board of boards/ (default pico)")
    args = ap.parse_args(argv)
    try:
        img = build_image(args.board)
    except MaterialsMissing as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            print(f"paytoken: {e}", file=sys.stderr)
            return 1
        print(f"paytoken: firmware not built: {e}", file=sys.stderr)
        return 0
    except (ImageError, deploy.DeployError) as e:
        print(f"paytoken: {e}", file=sys.stderr)
        return 1
    how = "unchanged (cached)" if img.cached else "built"
    print(f"{img.path.relative_to(upy.REPO) if img.path.is_relative_to(upy.REPO) else img.path}: "
          f"image {img.image_id}, {len(img.frozen)} frozen modules, {how} in {img.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
