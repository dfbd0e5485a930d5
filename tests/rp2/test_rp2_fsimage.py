"""The tests' reader of the emulated Pico's flash finds its littlefs in every state a cut
can leave, as the token's own littlefs does (no emulator: an image built here)."""

from __future__ import annotations

from pathlib import Path

from littlefs import LittleFS
from paytoken.vdev import rp2
from rp2kit import BLOCK, _lfs, fs_offset

FLASH = 2 * 1024 * 1024
COUNT = 352  # the rp2 port's Pico: 1408 KiB of littlefs at the end of 2 MiB


def _revision(buf: bytes, block: int) -> int:
    return int.from_bytes(buf[block * BLOCK : block * BLOCK + 4], "little")


def _image_mid_compaction() -> tuple[bytearray, list[str]]:
    # Files go into the root (the superblock pair) until block 1 holds the newer revision;
    # the next compaction erases block 0 first, which a cut can leave erased.
    fs = LittleFS(block_size=BLOCK, block_count=COUNT, read_size=32, prog_size=256,
                  cache_size=1024, lookahead_size=32)
    names: list[str] = []
    while not _revision(fs.context.buffer, 1) > _revision(fs.context.buffer, 0):
        name = f"/f{len(names)}.mpy"
        with fs.open(name, "wb") as f:
            f.write(bytes(300 + 37 * len(names)))
        names.append(name)
        assert len(names) < 2000, "the superblock pair never moved to block 1"
    part = bytearray(fs.context.buffer)
    part[:BLOCK] = b"\xff" * BLOCK  # erased, not yet programmed: the cut came here
    img = bytearray(b"\xff" * FLASH)
    img[FLASH - len(part):] = part
    return img, names


def test_whole_superblock_pair_found_at_the_end_of_flash() -> None:
    fs = LittleFS(block_size=BLOCK, block_count=COUNT, read_size=32, prog_size=256,
                  cache_size=1024, lookahead_size=32)
    img = bytearray(b"\xff" * FLASH)
    img[FLASH - COUNT * BLOCK:] = fs.context.buffer
    assert fs_offset(bytes(img)) == FLASH - COUNT * BLOCK


def test_block_zero_erased_by_a_cut_still_mounts(tmp_path: Path) -> None:
    img, names = _image_mid_compaction()
    assert img[FLASH - COUNT * BLOCK + 8 : FLASH - COUNT * BLOCK + 16] != b"littlefs"
    assert fs_offset(bytes(img)) == FLASH - COUNT * BLOCK  # not block 1's offset
    (tmp_path / rp2.FLASH_IMAGE).write_bytes(img)
    fs, off, _ = _lfs(tmp_path)
    assert off == FLASH - COUNT * BLOCK
    assert sorted("/" + n for n in fs.listdir("/")) == sorted(names)


def test_no_superblock_is_a_clear_error() -> None:
    try:
        fs_offset(b"\xff" * FLASH)
    except AssertionError as e:
        assert "no littlefs superblock" in str(e)
    else:
        raise AssertionError("an erased flash was taken for a littlefs")
