"""``paytoken deploy`` onto a token that runs a frozen release image: nothing is copied
(the firmware is in the image), an image for another board is refused, and the files of
an older deploy go. The station knows a frozen image by its ``fwimage`` module, as on an
RP2040 running ``make firmware``'s image; on the unix port the module is a file in the
flash, the rest is the same code path. ``INFO`` and the REPL probe say which image runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paytoken import simrun
from paytoken.station import deploy as dp
from paytoken.station import ops
from paytoken.station.transport import Device
from vdevkit import paytoken
from waits import STEP, bound

pytestmark = pytest.mark.timeout(180)


def _fwimage(flash: Path, board: str, ident: str, dev: Device | None = None) -> None:
    # "flash" an image with this id; a running token learns it at its next boot
    (flash / "fwimage.py").write_text(f"ID = {ident!r}\nBOARD = {board!r}\nKEY = 'k'\n")
    if dev is not None:
        dev.reboot()


def test_deploy_onto_a_frozen_image_copies_nothing(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    with Device(t.port, timeout=bound(STEP)) as dev:
        r = dp.deploy(dev, "sim")
        assert r.image == "files" and r.copied
        assert ops.probe(dev).image == "files"
        old = set(json.loads((t.flash / ".deploy.json").read_text())["files"])
        # an image for another board: refused, nothing touched
        _fwimage(t.flash, "pico", "pico-0123456789abcdef", dev)
        with pytest.raises(dp.DeployError, match="frozen image pico-0123456789abcdef for board pico"):
            dp.deploy(dev, "sim")
        assert (t.flash / ".deploy.json").exists()
        # this board's image: nothing copied, the old deploy's files removed
        _fwimage(t.flash, "sim", "sim-0123456789abcdef", dev)
        assert ops.probe(dev).image == "sim-0123456789abcdef"
        r = dp.deploy(dev, "sim")
    assert r.image == "sim-0123456789abcdef" and r.copied == []
    assert set(r.removed) == old | {dp.MANIFEST}
    assert not (t.flash / ".deploy.json").exists() and (t.flash / "fwimage.py").exists()
    assert not [p for p in old if (t.flash / p.lstrip("/")).exists()]


def test_the_cli_says_frozen_and_info_names_the_image(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    p = paytoken("deploy", "--port", t.port, "--board", "sim")
    assert p.returncode == 0 and "deployed sim" in p.stdout, p.stderr
    cfg = simrun.token_config(b"12345678901234567890", 12345678, bytes(range(16)),
                              at=1790000000, sync_key=bytes(20))
    with Device(t.port, timeout=bound(STEP)) as dev:
        ops.write_config(dev, cfg)
        _fwimage(t.flash, "sim", "sim-fedcba9876543210")  # beside the files: it says so
        st = ops.lock(dev, 12345678)
        assert st.image == "sim-fedcba9876543210"
        # lock's REPL-refused check sent bytes the token answers ERR to, maybe after a
        # starved pause: those late replies are skipped, as ops.info skips them
        assert dev.line("INFO", want=lambda r: r.startswith("OK id=")).endswith(" image=sim-fedcba9876543210")
    p = paytoken("info", "--port", t.port)
    assert p.returncode == 0 and "locked=True" in p.stdout, p.stderr
    assert "image=sim-fedcba9876543210" in p.stdout


def test_cli_deploy_onto_a_frozen_image(vdevs, tmp_path: Path) -> None:
    t = vdevs(tmp_path / "tok")
    _fwimage(t.flash, "sim", "sim-00112233445566ff")
    p = paytoken("deploy", "--port", t.port, "--board", "sim")
    assert p.returncode == 0, p.stderr
    assert "runs the frozen image sim-00112233445566ff (sim): nothing to copy" in p.stdout
