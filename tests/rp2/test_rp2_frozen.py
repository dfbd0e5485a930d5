"""The frozen release image (``make firmware``) on the emulated Pico, as a factory ships
it: flashed with ``vdev start --image``, nothing deployed; provisioned (burn-in
included) and locked through the CLI; ``paytoken info`` names the image; the panel's
QR, read by zxing-cpp, pays at a real issuer server; and the locked token's USB gives
no REPL to Ctrl-C or raw-REPL bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paytoken import vhw
from paytoken.station import ops
from paytoken.station.transport import Device
from rp2kit import cli, panel_code, provisioned_pico, release_image
from stationkit import assert_no_secret

# one emulated token for the module, on one xdist worker (--dist loadgroup)
pytestmark = [pytest.mark.xdist_group("rp2frozen"), pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """A Pico flashed with the release image, provisioned and locked, and a served issuer."""
    image = release_image()  # make firmware: cached
    with provisioned_pico(tmp_path_factory.mktemp("rp2frozen"), burn_in=2, image=image) as w:
        yield w


def test_nothing_deployed_provisioned_and_locked(frozen) -> None:
    rep, image = frozen["report"], frozen["image"]
    assert frozen["deploy"]["copied"] == [] and frozen["deploy"]["image"] == image.image_id
    assert rep["status"] == "provisioned", rep
    assert rep["burn_in_s"] == 2 and rep["ppm_measured"] is not None
    cfg = frozen["cfg"]  # the flash's littlefs, read by littlefs-python
    assert cfg is not None and cfg["locked"] is True and cfg["token_id"] == rep["token_id"]
    assert frozen["iss"].secret_of(rep["token_id"]) == cfg["secret"]
    assert_no_secret([cfg["secret"], cfg["sync_key"]], frozen["out"], paths=[frozen["dir"] / "reports"])


def test_info_reports_the_image(frozen) -> None:
    r = cli("info", "--port", frozen["tok"].port, "--json", "--timeout", "90")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["image"] == frozen["image"].image_id and d["image"].startswith("pico-")
    assert d["token_id"] == frozen["report"]["token_id"] and d["locked"] is True


def test_a_payment_with_the_panels_qr(frozen, tmp_path: Path) -> None:
    tok, iss = frozen["tok"], frozen["iss"]
    tid = frozen["report"]["token_id"]
    iss.backend.credit(tid, 5_000)
    _, api = iss.backend.add_merchant("rp2-frozen-shop")
    vhw.press(tok.hw)
    code = panel_code(tok, tmp_path, frozen["cfg"])
    r = cli("pay", code, "--amount", "700", "--url", frozen["url"], "--api-key", api, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "succeeded" and out["token_id"] == tid and out["amount"] == 700


def test_the_locked_image_gives_no_repl(frozen) -> None:
    # Ctrl-C, then the raw REPL's Ctrl-A (ops.repl_open): a locked frozen token answers
    # neither; its line protocol still does
    with Device(frozen["tok"].port, timeout=90) as dev:
        assert not ops.repl_open(dev)
        assert ops.info(dev).locked
