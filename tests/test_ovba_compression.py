"""MS-OVBA compression (section 2.4.1): the spec's own examples, round trips, and
oletools' independent decompressor reading what we compress."""

from __future__ import annotations

import importlib.util
import random
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # oletools uses pyparsing names that now warn on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from oletools.olevba import decompress_stream

from costloop.addin.ovba_compression import CHUNK, CompressionError, compress, decompress

# MS-OVBA 3.2.1, 3.2.2 and 3.2.3: uncompressed text and the compressed container.
SPEC_EXAMPLES = [
    (
        b"abcdefghijklmnopqrstuv.",
        "01 19 B0 00 61 62 63 64 65 66 67 68 00 69 6A 6B 6C 6D 6E 6F 70 00 71 72 73 74 75 76 2E",
    ),
    (
        b"#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa",
        "01 2F B0 00 23 61 61 61 62 63 64 65 82 66 00 70 61 67 68 69 6A 01 38 08 61 6B 6C 00 "
        "20 6D 6E 6F 70 06 71 02 70 04 00 72 73 74 75 76 10 77 78 79 7A 00 2C",
    ),
    (b"a" * 73, "01 03 B0 02 61 45 00"),
]


@pytest.mark.parametrize(("plain", "packed"), SPEC_EXAMPLES, ids=["none", "normal", "maximum"])
def test_spec_examples_compress_to_the_spec_bytes(plain, packed):
    assert compress(plain) == bytes.fromhex(packed)


@pytest.mark.parametrize(("plain", "packed"), SPEC_EXAMPLES, ids=["none", "normal", "maximum"])
def test_spec_examples_decompress_to_the_spec_text(plain, packed):
    assert decompress(bytes.fromhex(packed)) == plain


def test_empty_input_is_the_signature_alone():
    assert compress(b"") == b"\x01"
    assert decompress(b"\x01") == b""


def _xlwings_vba() -> bytes:
    spec = importlib.util.find_spec("xlwings")
    assert spec is not None and spec.submodule_search_locations
    return (Path(next(iter(spec.submodule_search_locations))) / "xlwings.bas").read_bytes()


def test_real_vba_module_round_trips_and_oletools_reads_it():
    source = _xlwings_vba()
    packed = compress(source)
    assert len(packed) < len(source) // 2  # VBA source compresses well
    assert decompress(packed) == source
    assert bytes(decompress_stream(bytearray(packed))) == source


@pytest.mark.parametrize("size", [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 3])
def test_chunk_boundaries(size):
    text = (b"Public Sub Bill(ByVal dept As String)\r\n" * 400)[:size]
    packed = compress(text)
    assert decompress(packed) == text
    assert bytes(decompress_stream(bytearray(packed))) == text


def test_incompressible_full_chunks_are_stored_raw():
    noise = random.Random(8).randbytes(2 * CHUNK)
    packed = compress(noise)
    assert packed[1:3] == (0x3000 | 4095).to_bytes(2, "little")  # raw chunk header
    assert len(packed) == 1 + 2 * (2 + CHUNK)
    assert decompress(packed) == noise
    assert bytes(decompress_stream(bytearray(packed))) == noise


def test_a_short_incompressible_last_chunk_is_padded_as_the_spec_says():
    # A raw chunk always holds 4096 bytes; VBA source never gets here, but the
    # behaviour is the spec's, and oletools agrees.
    noise = random.Random(8).randbytes(CHUNK - 5)
    restored = decompress(compress(noise))
    assert restored == noise + b"\x00" * 5
    assert bytes(decompress_stream(bytearray(compress(noise)))) == restored


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab \r\nSubEnd()'\"&.", max_size=3 * CHUNK))
def test_round_trip_text(text):
    data = text.encode("ascii")
    packed = compress(data)
    assert decompress(packed) == data
    assert bytes(decompress_stream(bytearray(packed))) == data


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_round_trip_short_binary(data):
    # Short chunks are always smaller compressed than the 4098-byte limit.
    assert decompress(compress(data)) == data


def test_compression_is_deterministic():
    source = _xlwings_vba()
    assert compress(source) == compress(source)


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (b"", "signature"),
        (b"\x02\x19\xb0", "signature"),
        (b"\x01\x19", "truncated"),
        (b"\x01\x19\xa0" + b"x" * 30, "chunk signature"),
        (b"\x01\x03\xb0\x01\x45\x00", "before its chunk"),  # a copy with nothing to copy
    ],
)
def test_malformed_containers_are_refused(container, message):
    with pytest.raises(CompressionError, match=message):
        decompress(container)
