"""The frozen release image for the Pico (``make firmware``, paytoken.rp2image): what the
build alone can show. The UF2 is a valid RP2040 image (every block checked as the boot
ROM would); the flash it writes holds MicroPython's frozen-module table with the boot
path, every firmware file the Pico gets from ``paytoken deploy`` and the image's id, and
nothing of another chip family; a rebuild with nothing changed is a cache hit that runs
no build; the cache key follows every input; missing materials are named.

Booting the image in the emulated Pico, and the proof that a locked frozen token never
reaches a REPL, need the emulator tier (image/prove_emu.py runs them by hand).
"""

from __future__ import annotations

import ast
import json
import shutil
import struct
from pathlib import Path

import pytest
from paytoken import rp2image, upy
from paytoken.station import deploy

# the first test to ask for the image may build it (toolchain, sources, ~3-7 min on a
# loaded machine); the others wait for that build and take it from the cache
pytestmark = pytest.mark.timeout(1800)


def test_the_uf2_is_an_rp2040_image(image):
    flash = rp2image.read_uf2(image.path)
    data = image.path.read_bytes()
    assert len(data) // 512 == len(flash) // 256  # one 256-byte payload per block, no gaps
    assert struct.unpack_from("<I", data, 28)[0] == rp2image.UF2_FAMILY_RP2040
    # the image starts with the second-stage boot loader, then the vector table: its
    # reset vector points into the flash (thumb bit set)
    sp, reset = struct.unpack_from("<II", flash, 0x100)
    assert 0x20000000 <= sp <= 0x20042000 and 0x10000000 < reset < 0x10000000 + len(flash) and reset & 1
    assert b"MicroPython v1.28.0" in flash  # the release banner, not our git's


def test_the_frozen_modules_are_the_boot_path_and_the_deployed_firmware(image):
    flash = rp2image.read_uf2(image.path)
    frozen = rp2image.frozen_names_in_flash(flash)
    assert frozen == image.frozen  # the build's own list (frozen_content.c) is what is in flash
    board = deploy.load_board("pico")
    want = {p[1:-4] + ".py" if p.endswith(".mpy") else p[1:] for p in deploy.sources(board)}
    assert want <= set(frozen), sorted(want - set(frozen))
    assert {"_boot.py", "boot.py", "main.py", "board.py", "fwimage.py", "rp2.py"} <= set(frozen)
    assert "hostapi.py" in frozen  # the host's calls: the station needs nothing else
    assert set(frozen) == want | {"_boot.py", "boot.py", "fwimage.py", "rp2.py"}
    # nothing of the other families: no ESP32 code, no chip models
    assert not [n for n in frozen if n.startswith(("sim/", "fam_esp32"))]
    assert len(frozen) == len(set(frozen))


def test_the_image_carries_its_id_and_the_boards_file(image):
    flash = rp2image.read_uf2(image.path)
    meta = json.loads(image.meta_path.read_text())
    assert meta["id"] == image.image_id == rp2image.image_id("pico", image.key)
    assert meta["key"] == rp2image.image_key(deploy.load_board("pico"), rp2image.materials_dir())
    assert image.image_id.encode() in flash
    # the frozen board is boards/pico.py: its name string is in the frozen code
    assert b"pico" in flash and meta["board"] == "pico" and meta["port_board"] == "RPI_PICO"


def test_a_rebuild_with_nothing_changed_is_a_cache_hit(image, monkeypatch):
    before = image.path.stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(rp2image, "_build", lambda *a, **k: calls.append(a))
    again = rp2image.build_image("pico")
    assert again.cached and again.key == image.key and calls == []
    assert image.path.stat().st_mtime_ns == before  # not even copied
    # a damaged published image is noticed and restored from the content-addressed cache
    image.path.write_bytes(b"\0" * 512)
    restored = rp2image.build_image("pico")
    assert calls == [] and rp2image.read_uf2(restored.path)
    assert json.loads(image.meta_path.read_text())["sha256"] == rp2image._sha256_file(image.path)


def test_make_firmware_is_a_no_op_when_cached(image):
    import subprocess

    p = subprocess.run(["make", "-s", "firmware"], cwd=upy.REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "unchanged (cached)" in p.stdout and image.image_id in p.stdout


def _key_with(tmp_path, monkeypatch, edit) -> str:
    # The key after ``edit(firmware_dir, boards_dir, image_dir, materials_dir)`` on copies.
    fw, bd, im, md = (tmp_path / n for n in ("firmware", "boards", "image", "materials"))
    shutil.copytree(upy.FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(upy.BOARDS_DIR, bd)
    shutil.copytree(rp2image.IMAGE_DIR, im)
    md.mkdir()
    for tb in (rp2image.MP_TARBALL, rp2image.PICOTOOL_TARBALL):
        (md / tb).write_bytes(tb.encode())  # stand-ins: only their hashes enter the key
    edit(fw, bd, im, md)
    monkeypatch.setattr(upy, "FIRMWARE_DIR", fw)
    monkeypatch.setattr(upy, "BOARDS_DIR", bd)
    monkeypatch.setattr(rp2image, "IMAGE_DIR", im)
    return rp2image.image_key(deploy.load_board("pico", bd), md)


@pytest.mark.parametrize("what", ["app", "paycode", "board", "manifest", "boot", "tarball",
                                  "other family"])
def test_the_key_follows_every_input(tmp_path, monkeypatch, what):
    base = _key_with(tmp_path / "a", monkeypatch, lambda *d: None)
    assert _key_with(tmp_path / "b", monkeypatch, lambda *d: None) == base  # deterministic

    def edit(fw, bd, im, md):
        if what == "app":
            (fw / "app.py").write_text((fw / "app.py").read_text() + "\n# changed\n")
        elif what == "paycode":
            (fw / "paycode" / "ct.py").write_text((fw / "paycode" / "ct.py").read_text() + "#\n")
        elif what == "board":
            (bd / "pico.py").write_text((bd / "pico.py").read_text().replace("FREQ = 400000", "FREQ = 100000"))
        elif what == "manifest":
            (im / "manifest.py").write_text((im / "manifest.py").read_text() + "\n")
        elif what == "boot":
            (im / "_boot.py").write_text((im / "_boot.py").read_text() + "\n")
        elif what == "tarball":
            (md / rp2image.MP_TARBALL).write_bytes(b"another release")
        else:
            (fw / "fam_esp32.py").write_text((fw / "fam_esp32.py").read_text() + "#\n")

    changed = _key_with(tmp_path / "c", monkeypatch, edit)
    if what == "other family":
        assert changed == base  # the ESP32's code is not in the Pico's image
    else:
        assert changed != base


def test_missing_materials_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(rp2image.MATERIALS_ENV, str(tmp_path))
    monkeypatch.setenv("CI", "true")
    assert rp2image.main(["--board", "pico"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("paytoken: no micropython-1.28.0-rp2-src.tar.xz and no picotool-2.2.0-src.tar.xz")
    assert rp2image.MATERIALS_ENV in err and "git clone" in err
    monkeypatch.delenv("CI")
    assert rp2image.main(["--board", "pico"]) == 0  # outside CI: said, and skipped
    assert "firmware not built" in capsys.readouterr().err


def test_only_rp2040_boards_and_bad_uf2s(tmp_path):
    with pytest.raises(rp2image.ImageError, match="family esp32"):
        rp2image.build_image("esp32-devkitc")
    bad = tmp_path / "x.uf2"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(rp2image.ImageError, match="not a UF2"):
        rp2image.read_uf2(bad)
    blk = bytearray(512)
    struct.pack_into("<8I", blk, 0, *rp2image.UF2_MAGIC[:2], rp2image.UF2_FLAG_FAMILY,
                     0x10000000, 256, 0, 1, 0x1234)
    struct.pack_into("<I", blk, 508, rp2image.UF2_MAGIC[2])
    bad.write_bytes(bytes(blk))
    with pytest.raises(rp2image.ImageError, match="not for family"):
        rp2image.read_uf2(bad)


def _first_statements(path: Path) -> list[ast.stmt]:
    # the module's statements, its docstring left out (MicroPython compiles it to nothing)
    body = ast.parse(path.read_text()).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return body


def test_the_boot_path_turns_ctrl_c_off_first():
    # _boot.py (run with Ctrl-C off, before USB exists): kbd_intr(-1) is its first call.
    body = _first_statements(rp2image.IMAGE_DIR / "_boot.py")
    assert isinstance(body[0], ast.Import) and body[0].names[0].name == "micropython"
    call = body[1].value
    assert ast.unparse(call) == "micropython.kbd_intr(-1)"
    # main.py (frozen from firmware/): its first statement is a try whose body turns
    # Ctrl-C off and then jumps once, so a Ctrl-C queued before is raised inside it and
    # caught (KeyboardInterrupt), never reaching the REPL
    body = _first_statements(upy.FIRMWARE_DIR / "main.py")
    first = body[0]
    assert isinstance(first, ast.Try)
    src = ast.unparse(first)
    assert "micropython.kbd_intr(-1)" in ast.unparse(first.body[1])
    assert isinstance(first.body[2], ast.For)
    assert any(ast.unparse(h.type) == "KeyboardInterrupt" for h in first.handlers), src
    # only the image's own modules are on sys.path: no file replaces them
    text = (rp2image.IMAGE_DIR / "_boot.py").read_text()
    assert 'sys.path.clear()\nsys.path.append(".frozen")\n' in text


def test_a_build_folder_copied_from_elsewhere_is_started_over(tmp_path):
    # A copied build/ keeps CMake's cache of the other checkout: make would regenerate
    # the frozen modules there and link a stale image here, so the folder goes.
    moved = tmp_path / "here" / "build-image"
    moved.mkdir(parents=True)
    (moved / "CMakeCache.txt").write_text(f"CMAKE_CACHEFILE_DIR:INTERNAL={tmp_path / 'there' / 'build-image'}\n")
    rp2image._drop_moved_build(moved)
    assert not moved.exists()
    own = tmp_path / "own" / "build-image"
    own.mkdir(parents=True)
    (own / "CMakeCache.txt").write_text(f"CMAKE_CACHEFILE_DIR:INTERNAL={own}\n")
    rp2image._drop_moved_build(own)
    assert (own / "CMakeCache.txt").exists()
    rp2image._drop_moved_build(tmp_path / "none")  # no folder yet: nothing to do
