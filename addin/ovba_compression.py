"""MS-OVBA compression (section 2.4.1): the LZ77 variant VBA uses for source and `dir`.

A compressed container is the signature byte 0x01 followed by chunks, each holding
at most 4096 bytes of decompressed data. A chunk is either a run of token sequences
(one flag byte, then eight tokens: a literal byte or a two-byte copy token) or, when
that would not be smaller, the 4096 raw bytes.

The compressor follows the spec's algorithm exactly (longest match, nearest on ties),
so its output is deterministic; it only finds candidates faster, through a table of
positions by their first three bytes, since a match shorter than three is never used.
"""

from __future__ import annotations

from costloop.errors import AddinError

CHUNK = 4096
_SIGNATURE = 0x01
_MAX_CHUNK_BYTES = 4098  # a compressed chunk, header included, may not exceed this


class CompressionError(AddinError, ValueError):
    """A compressed container is malformed."""


def _copy_token_split(difference: int) -> int:
    """Bits of a copy token given to the offset, at `difference` bytes into the chunk."""
    bit_count = 4
    while (1 << bit_count) < difference:
        bit_count += 1
    return bit_count


def _compress_chunk(data: bytes, start: int, end: int) -> bytes:
    """Compress data[start:end] (at most 4096 bytes) into one chunk, header included."""
    out = bytearray(b"\x00\x00")
    heads: dict[bytes, list[int]] = {}
    pos = start
    while pos < end:
        flag_index = len(out)
        out.append(0)
        flags = 0
        for bit in range(8):
            if pos >= end:
                break
            offset, length = 0, 0
            bit_count = _copy_token_split(pos - start)
            max_length = (0xFFFF >> bit_count) + 3
            limit = min(max_length, end - pos)
            if limit >= 3:
                key = data[pos : pos + 3]
                for candidate in reversed(heads.get(key, ())):
                    # Only a longer match replaces the best one, so the nearest wins ties.
                    if length and data[candidate + length] != data[pos + length]:
                        continue
                    n = 3
                    while n < limit and data[candidate + n] == data[pos + n]:
                        n += 1
                    if n > length:
                        offset, length = pos - candidate, n
                    if length == limit:  # nothing can be longer
                        break
            if length >= 3:
                token = ((offset - 1) << (16 - bit_count)) | (length - 3)
                out += token.to_bytes(2, "little")
                flags |= 1 << bit
                step = length
            else:
                out.append(data[pos])
                step = 1
            for p in range(pos, pos + step):
                if p + 3 <= end:
                    heads.setdefault(data[p : p + 3], []).append(p)
            pos += step
        out[flag_index] = flags
    if len(out) > _MAX_CHUNK_BYTES:
        # Not worth compressing: a raw chunk carries exactly 4096 bytes, zero padded.
        raw = data[start:end].ljust(CHUNK, b"\x00")
        header = 0x3000 | (CHUNK + 2 - 3)
        return header.to_bytes(2, "little") + raw
    header = 0x8000 | 0x3000 | (len(out) - 3)
    out[0:2] = header.to_bytes(2, "little")
    return bytes(out)


def compress(data: bytes) -> bytes:
    """Compress `data` into an MS-OVBA compressed container."""
    out = bytearray([_SIGNATURE])
    for start in range(0, len(data), CHUNK):
        out += _compress_chunk(data, start, min(start + CHUNK, len(data)))
    return bytes(out)


def decompress(container: bytes) -> bytes:
    """Decompress an MS-OVBA compressed container; malformed input raises CompressionError."""
    if not container or container[0] != _SIGNATURE:
        raise CompressionError("not an MS-OVBA compressed container (signature byte is not 0x01)")
    out = bytearray()
    pos = 1
    while pos < len(container):
        if pos + 2 > len(container):
            raise CompressionError(f"truncated chunk header at byte {pos}")
        header = int.from_bytes(container[pos : pos + 2], "little")
        if (header >> 12) & 0x7 != 0b011:
            raise CompressionError(f"bad chunk signature at byte {pos}")
        chunk_end = min(pos + (header & 0x0FFF) + 3, len(container))
        chunk_start_out = len(out)
        pos += 2
        if not header & 0x8000:
            out += container[pos : pos + CHUNK]
            pos += CHUNK
            continue
        while pos < chunk_end:
            flags = container[pos]
            pos += 1
            for bit in range(8):
                if pos >= chunk_end:
                    break
                if not flags & (1 << bit):
                    out.append(container[pos])
                    pos += 1
                    continue
                if pos + 2 > chunk_end:
                    raise CompressionError(f"truncated copy token at byte {pos}")
                token = int.from_bytes(container[pos : pos + 2], "little")
                pos += 2
                bit_count = _copy_token_split(len(out) - chunk_start_out)
                length = (token & (0xFFFF >> bit_count)) + 3
                offset = (token >> (16 - bit_count)) + 1
                source = len(out) - offset
                if source < chunk_start_out:
                    raise CompressionError(f"copy token reaches before its chunk at byte {pos - 2}")
                for i in range(length):  # byte by byte: a copy may overlap its own output
                    out.append(out[source + i])
    return bytes(out)
