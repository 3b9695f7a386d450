"""The compound file writer, read back by olefile (an independent MS-CFB reader) in its
strictest mode, plus the directory tree's ordering and the layout rules of MS-CFB v3."""

from __future__ import annotations

import io
import random
import struct

import olefile
import pytest

from costloop.addin.cfb import (
    MINI_STREAM_CUTOFF,
    NOSTREAM,
    SECTOR,
    CompoundFileError,
    write_compound_file,
)


def _open(data: bytes) -> olefile.OleFileIO:
    # DEFECT_INCORRECT: olefile raises on anything that is not as MS-CFB says.
    return olefile.OleFileIO(io.BytesIO(data), raise_defects=olefile.DEFECT_INCORRECT)


def _blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


STREAMS = {
    "PROJECT": b'ID="{00000000-0000-0000-0000-000000000000}"\r\n',
    "PROJECTwm": b"",
    "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00",
    "VBA/dir": _blob(1, 900),
    "VBA/just_small": _blob(2, MINI_STREAM_CUTOFF - 1),
    "VBA/just_large": _blob(3, MINI_STREAM_CUTOFF),
    "VBA/big": _blob(4, 70_000),
    "VBA/Nested/deeper": _blob(5, 65),
}


def test_olefile_reads_back_every_stream():
    ole = _open(write_compound_file(STREAMS))
    assert sorted("/".join(p) for p in ole.listdir(streams=True, storages=False)) == sorted(STREAMS)
    for path, data in STREAMS.items():
        assert ole.openstream(path).read() == data, path
        assert ole.get_size(path) == len(data)
    assert ole.get_type("VBA") == olefile.STGTY_STORAGE
    assert ole.get_type("VBA/Nested") == olefile.STGTY_STORAGE


def test_header_is_version_3_with_512_byte_sectors():
    data = write_compound_file(STREAMS)
    assert data[:8] == bytes.fromhex("D0CF11E0A1B11AE1")
    minor, major, order, shift, mini_shift = struct.unpack("<HHHHH", data[24:34])
    assert (major, order, shift, mini_shift) == (3, 0xFFFE, 9, 6)
    assert minor == 0x3E
    assert struct.unpack("<I", data[56:60])[0] == MINI_STREAM_CUTOFF
    assert len(data) % SECTOR == 0
    ole = _open(data)
    assert ole.sectorsize == SECTOR and ole.minisectorsize == 64


def test_small_streams_live_in_the_mini_stream_large_ones_in_sectors():
    data = write_compound_file(STREAMS)
    small = [d for d in STREAMS.values() if len(d) < MINI_STREAM_CUTOFF]
    padded = sum(-(-len(d) // 64) * 64 for d in small)
    minifat_sectors = struct.unpack("<I", data[64:68])[0]
    mini_sectors = padded // 64  # one 4-byte mini FAT entry each
    assert minifat_sectors == (mini_sectors * 4 + SECTOR - 1) // SECTOR
    ole = _open(data)
    assert ole.root.size == padded  # the root entry's stream is the mini stream


def _cfb_key(name: str) -> tuple[int, str]:
    return (len(name), name.upper())


def _in_order(ole: olefile.OleFileIO, sid: int) -> list[str]:
    if sid == NOSTREAM:
        return []
    entry = ole.direntries[sid]
    return [*_in_order(ole, entry.sid_left), entry.name, *_in_order(ole, entry.sid_right)]


def test_every_storage_s_children_form_a_search_tree_in_cfb_order():
    many = {f"VBA/Module{i}": _blob(i, 10 + i) for i in range(40)}
    many.update({"VBA/a": b"1", "VBA/B": b"2", "VBA/zz": b"3", "PROJECT": b"p"})
    ole = _open(write_compound_file(many))
    for storage in (ole.root, ole.direntries[ole._find("VBA")]):
        names = _in_order(ole, storage.sid_child)
        assert names == sorted(names, key=_cfb_key)
        assert len(names) == len(storage.kids)
    for path, data in many.items():
        assert ole.openstream(path).read() == data


def test_a_file_needing_several_fat_sectors():
    # 128 FAT entries per sector: 400 kB of streams needs more than one FAT sector.
    streams = {f"S{i}": _blob(100 + i, 100_000) for i in range(4)}
    data = write_compound_file(streams)
    assert struct.unpack("<I", data[44:48])[0] >= 7  # FAT sector count
    ole = _open(data)
    for path, blob in streams.items():
        assert ole.openstream(path).read() == blob


def test_same_streams_give_the_same_bytes():
    assert write_compound_file(STREAMS) == write_compound_file(dict(STREAMS))


@pytest.mark.parametrize(
    ("streams", "message"),
    [
        ({"x" * 32: b""}, "1 to 31"),
        ({"VBA/": b""}, "1 to 31"),
        ({"a:b": b""}, "may not contain"),
        ({"VBA/dir": b"", "vba/DIR": b""}, "given twice"),
        ({"VBA": b"", "VBA/dir": b""}, "is a stream"),
    ],
)
def test_bad_names_are_refused(streams, message):
    with pytest.raises(CompoundFileError, match=message):
        write_compound_file(streams)
