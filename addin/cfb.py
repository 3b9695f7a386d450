"""An MS-CFB compound file writer: version 3, 512-byte sectors.

`vbaProject.bin` is a compound file (a small FAT file system in one file). olefile can
read one and overwrite a stream in place with bytes of the same length, but it cannot
create a file or add a stream, so this module writes one whole, from a mapping of
stream paths to bytes. Layout, in sector order: the FAT, the directory, the mini FAT,
the mini stream (which holds every stream shorter than 4096 bytes, in 64-byte mini
sectors), then the large streams. Every timestamp is zero and the order of everything
is fixed, so the same streams always give the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from costloop.errors import AddinError

SECTOR = 512
MINI_SECTOR = 64
MINI_STREAM_CUTOFF = 4096
DIR_ENTRY = 128
MAX_NAME = 31  # UTF-16 code units, the terminating NUL not counted

FREESECT = 0xFFFFFFFF
ENDOFCHAIN = 0xFFFFFFFE
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF

_SIGNATURE = bytes.fromhex("D0CF11E0A1B11AE1")
_HEADER_DIFAT = 109  # FAT sector locations kept in the header itself
_STORAGE, _STREAM, _ROOT = 1, 2, 5
_BLACK = 1


class CompoundFileError(AddinError, ValueError):
    """The streams cannot be written as a compound file (bad name, too large)."""


@dataclass
class _Node:
    name: str
    kind: int
    data: bytes = b""
    children: dict[str, _Node] = field(default_factory=dict)
    sid: int = 0
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM
    start: int = ENDOFCHAIN
    size: int = 0


def _sort_key(name: str) -> tuple[int, str]:
    # MS-CFB 2.6.4: shorter names first, then by upper-cased code units.
    return (len(name.encode("utf-16-le")) // 2, name.upper())


def _check_name(name: str) -> None:
    if not name or len(name.encode("utf-16-le")) // 2 > MAX_NAME:
        raise CompoundFileError(f"stream or storage name {name!r} must be 1 to 31 characters")
    if any(ch in name for ch in "/\\:!"):
        raise CompoundFileError(f"stream or storage name {name!r} may not contain / \\ : !")


def _build_tree(streams: Mapping[str, bytes]) -> _Node:
    root = _Node("Root Entry", _ROOT)
    for path, data in streams.items():
        parts = path.split("/")
        node = root
        for part in parts[:-1]:
            _check_name(part)
            existing = node.children.get(part.upper())
            if existing is None:
                # A storage's starting sector and size are zero (MS-CFB 2.6.3).
                existing = node.children[part.upper()] = _Node(part, _STORAGE, start=0)
            elif existing.kind != _STORAGE:
                raise CompoundFileError(f"{path}: {part} is a stream, not a storage")
            node = existing
        _check_name(parts[-1])
        if parts[-1].upper() in node.children:
            raise CompoundFileError(f"{path}: given twice (names are case-insensitive)")
        node.children[parts[-1].upper()] = _Node(parts[-1], _STREAM, data=bytes(data))
    return root


def _number(root: _Node) -> list[_Node]:
    """Give every entry its directory index, breadth-first from the root."""
    order = [root]
    for node in order:
        order.extend(sorted(node.children.values(), key=lambda n: _sort_key(n.name)))
    for sid, node in enumerate(order):
        node.sid = sid
    return order


def _link_siblings(siblings: list[_Node]) -> int:
    """Link sorted siblings into a balanced binary search tree; return the root's index.

    Every node is black: MS-CFB allows it, and a balanced tree keeps lookups short.
    """
    if not siblings:
        return NOSTREAM
    middle = len(siblings) // 2
    node = siblings[middle]
    node.left = _link_siblings(siblings[:middle])
    node.right = _link_siblings(siblings[middle + 1 :])
    return node.sid


def _sectors(nbytes: int, size: int) -> int:
    return (nbytes + size - 1) // size


def _pad(data: bytes, size: int) -> bytes:
    return data + b"\x00" * (-len(data) % size)


def _directory_entry(node: _Node | None) -> bytes:
    if node is None:  # an unused slot
        return b"\x00" * 64 + struct.pack(
            "<HBBIII16sIQQIQ", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM, b"\x00" * 16, 0, 0, 0, 0, 0
        )
    name = (node.name + "\x00").encode("utf-16-le")
    return name.ljust(64, b"\x00") + struct.pack(
        "<HBBIII16sIQQIQ",
        len(name),
        node.kind,
        _BLACK,
        node.left,
        node.right,
        node.child,
        b"\x00" * 16,  # CLSID: none
        0,  # state bits
        0,  # creation time: zero keeps the build reproducible
        0,  # modified time
        node.start,
        node.size,
    )


def write_compound_file(streams: Mapping[str, bytes]) -> bytes:
    """Return a compound file holding `streams`, keyed by path such as ``"VBA/dir"``."""
    root = _build_tree(streams)
    entries = _number(root)
    for node in entries:
        kids = sorted(node.children.values(), key=lambda n: _sort_key(n.name))
        node.child = _link_siblings(kids)

    stream_nodes = [n for n in entries if n.kind == _STREAM]
    small = [n for n in stream_nodes if len(n.data) < MINI_STREAM_CUTOFF]
    large = [n for n in stream_nodes if len(n.data) >= MINI_STREAM_CUTOFF]

    # The mini stream and its FAT.
    mini_stream = bytearray()
    mini_fat: list[int] = []
    for node in small:
        node.size = len(node.data)
        if not node.data:
            continue
        count = _sectors(len(node.data), MINI_SECTOR)
        first = len(mini_fat)
        node.start = first
        mini_fat.extend(range(first + 1, first + count))
        mini_fat.append(ENDOFCHAIN)
        mini_stream += _pad(node.data, MINI_SECTOR)

    dir_sectors = _sectors(len(entries) * DIR_ENTRY, SECTOR)
    minifat_sectors = _sectors(len(mini_fat) * 4, SECTOR)
    ministream_sectors = _sectors(len(mini_stream), SECTOR)
    large_sectors = [_sectors(len(n.data), SECTOR) for n in large]
    content = dir_sectors + minifat_sectors + ministream_sectors + sum(large_sectors)
    fat_sectors = 1
    while fat_sectors * (SECTOR // 4) < content + fat_sectors:
        fat_sectors += 1
    if fat_sectors > _HEADER_DIFAT:
        raise CompoundFileError("the streams are too large for a compound file without DIFAT")

    fat: list[int] = [FATSECT] * fat_sectors
    body = bytearray()

    def allocate(data: bytes, count: int) -> int:
        first = len(fat)
        fat.extend(range(first + 1, first + count))
        fat.append(ENDOFCHAIN)
        body.extend(_pad(data, SECTOR))
        return first

    dir_start = len(fat)  # the directory is written once every start is known
    fat.extend(range(dir_start + 1, dir_start + dir_sectors))
    fat.append(ENDOFCHAIN)
    minifat_start = ENDOFCHAIN
    if mini_fat:
        minifat_bytes = b"".join(struct.pack("<I", v) for v in mini_fat)
        minifat_bytes += struct.pack("<I", FREESECT) * (-len(mini_fat) % (SECTOR // 4))
        minifat_start = allocate(minifat_bytes, minifat_sectors)
    if mini_stream:
        root.start = allocate(bytes(mini_stream), ministream_sectors)
        root.size = len(mini_stream)
    for node, count in zip(large, large_sectors, strict=True):
        node.size = len(node.data)
        node.start = allocate(node.data, count)
    fat.extend([FREESECT] * (fat_sectors * (SECTOR // 4) - len(fat)))

    directory = b"".join(_directory_entry(n) for n in entries)
    directory += _directory_entry(None) * (dir_sectors * (SECTOR // DIR_ENTRY) - len(entries))

    difat = list(range(fat_sectors)) + [FREESECT] * (_HEADER_DIFAT - fat_sectors)
    header = (
        _SIGNATURE
        + b"\x00" * 16  # header CLSID
        + struct.pack(
            "<HHHHH6sIIIIIIIII",
            0x003E,  # minor version
            0x0003,  # major version 3: 512-byte sectors
            0xFFFE,  # little-endian byte order mark
            9,  # sector shift: 2**9 = 512
            6,  # mini sector shift: 2**6 = 64
            b"\x00" * 6,
            0,  # directory sector count: must be 0 in version 3
            fat_sectors,
            dir_start,
            0,  # transaction signature
            MINI_STREAM_CUTOFF,
            minifat_start,
            minifat_sectors,
            ENDOFCHAIN,  # first DIFAT sector: none needed
            0,  # DIFAT sector count
        )
        + b"".join(struct.pack("<I", v) for v in difat)
    )
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    return header + fat_bytes + directory + bytes(body)
