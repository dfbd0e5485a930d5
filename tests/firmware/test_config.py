"""firmware/config.py on both interpreters: round trip, integrity, recovery, validation."""

from __future__ import annotations

import pytest
from fwkit import SECRET, SYNC_KEY, fwconfig, token_config
from paytoken import upy


def _upy(code: str, folder) -> str:
    return upy.run(f"import config\nP = {str(folder / 'paytoken.cfg')!r}\n" + code).stdout


def test_round_trip_cpython(tmp_path):
    p = str(tmp_path / "paytoken.cfg")
    assert fwconfig.load(p) is None
    fwconfig.save(token_config(ppm=-12.5, last_step=59000000), p)
    got = fwconfig.load(p)
    assert got == token_config(ppm=-12.5, last_step=59000000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paytoken.cfg"]


def test_micropython_writes_cpython_reads_and_back(tmp_path):
    p = tmp_path / "paytoken.cfg"
    _upy(
        "config.save({'token_id': 42, 'secret': b'A' * 20, 'scheme_key': bytes(16),"
        " 'ppm': 3.25, 'ref_time': 1767225600, 'locked': True}, P)",
        tmp_path,
    )
    cfg = fwconfig.load(str(p))
    assert (cfg["token_id"], cfg["secret"], cfg["ppm"], cfg["locked"]) == (42, b"A" * 20, 3.25, True)
    fwconfig.update(str(p), last_step=7, sync_key=SYNC_KEY)
    out = _upy("c = config.load(P); print(c['last_step'], c['sync_key'] == bytes(range(20)), c['locked'])", tmp_path)
    assert out.split() == ["7", "True", "True"]


@pytest.mark.parametrize("where", [10, 80, -5])
def test_any_flipped_byte_is_detected(tmp_path, where):
    p = tmp_path / "paytoken.cfg"
    fwconfig.save(token_config(), str(p))
    data = bytearray(p.read_bytes())
    data[where] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="config corrupt"):
        fwconfig.load(str(p))
    # MicroPython agrees
    out = _upy("try:\n config.load(P)\nexcept ValueError as e:\n print('ERR', e)", tmp_path)
    assert out.startswith("ERR config corrupt")


def test_truncated_file_is_corrupt(tmp_path):
    p = tmp_path / "paytoken.cfg"
    fwconfig.save(token_config(), str(p))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(ValueError, match="integrity"):
        fwconfig.load(str(p))


def test_stale_temp_is_removed_at_load(tmp_path):
    p = tmp_path / "paytoken.cfg"
    fwconfig.save(token_config(last_step=5), str(p))
    (tmp_path / "paytoken.cfg.tmp").write_bytes(b"PTCFG1 half a wri")
    assert fwconfig.load(str(p))["last_step"] == 5
    assert not (tmp_path / "paytoken.cfg.tmp").exists()


def test_whole_temp_alone_is_promoted_broken_one_dropped(tmp_path):
    # FAT renames onto an existing file by removing it first: a cut between the two
    # leaves only the temp. A whole one is the new config; a broken one is dropped.
    p = tmp_path / "paytoken.cfg"
    (tmp_path / "paytoken.cfg.tmp").write_bytes(fwconfig.encode(token_config(last_step=9)))
    assert fwconfig.load(str(p))["last_step"] == 9
    assert p.exists() and not (tmp_path / "paytoken.cfg.tmp").exists()
    p.unlink()
    (tmp_path / "paytoken.cfg.tmp").write_bytes(fwconfig.encode(token_config())[:50])
    assert fwconfig.load(str(p)) is None
    assert not (tmp_path / "paytoken.cfg.tmp").exists()


@pytest.mark.parametrize(
    "over, msg",
    [
        ({"token_id": 100000000}, "token_id"),
        ({"token_id": -1}, "token_id"),
        ({"secret": "text"}, "secret must be bytes"),
        ({"secret": b"short"}, "at least 16 bytes"),
        ({"scheme_key": bytes(15)}, "scheme_key must be 16 bytes"),
        ({"prefix": "8a"}, "prefix"),
        ({"ppm": 5000}, "ppm"),
        ({"locked": 1}, "locked must be a bool"),
        ({"colour": "red"}, "unknown config field: colour"),
    ],
)
def test_bad_fields_are_refused_and_nothing_is_written(tmp_path, over, msg):
    p = tmp_path / "paytoken.cfg"
    fwconfig.save(token_config(last_step=3), str(p))
    before = p.read_bytes()
    with pytest.raises(ValueError, match=msg) as exc:
        fwconfig.save(token_config(**over), str(p))
    assert SECRET.decode() not in str(exc.value)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["paytoken.cfg"]


def test_mounted_flash_folder_rename_works(tmp_path):
    # The unix port's VfsPosix mounted at / (as the virtual tokens mount their flash):
    # config.save must still replace the file atomically.
    (tmp_path / "flash").mkdir()
    code = (
        "import os, config\n"
        f"os.mount(os.VfsPosix({str(tmp_path / 'flash')!r}), '/')\n"
        "os.chdir('/')\n"
        "for i in range(3):\n"
        "    config.save({'token_id': i, 'secret': b'S' * 20}, '/paytoken.cfg')\n"
        "print(sorted(os.listdir('/')), config.load()['token_id'])\n"
    )
    assert upy.run(code).stdout.split() == ["['paytoken.cfg']", "2"]
    assert fwconfig.load(str(tmp_path / "flash" / "paytoken.cfg"))["token_id"] == 2
