from collections.abc import Iterator

import pytest

from app import crypto

KEY = bytes(range(32))
AAD = b"report-1|file-1"
SIZE = 16


def _data(length: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(length))


def _pieces(data: bytes, piece: int) -> Iterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def _seal(data: bytes, aad: bytes = AAD, piece: int = 5) -> list[bytes]:
    return list(crypto.encrypt_stream(KEY, _pieces(data, piece), aad, chunk_size=SIZE))


def _open(chunks: list[bytes], aad: bytes = AAD) -> bytes:
    return b"".join(crypto.decrypt_stream(KEY, chunks, aad))


@pytest.mark.parametrize(
    ("length", "count"),
    [(0, 1), (1, 1), (SIZE - 1, 1), (SIZE, 1), (SIZE + 1, 2), (3 * SIZE, 3), (3 * SIZE + 2, 4)],
)
@pytest.mark.parametrize("piece", [1, 5, SIZE, 100, 10_000])
def test_round_trip(length: int, count: int, piece: int) -> None:
    data = _data(length)
    chunks = _seal(data, piece=piece)
    assert len(chunks) == count
    assert all(len(chunk) == crypto.sealed_chunk_size(SIZE) for chunk in chunks[:-1])
    assert len(chunks[-1]) == length - (count - 1) * SIZE + 29
    assert all(chunk[0] == crypto.VERSION for chunk in chunks)
    plain = list(crypto.decrypt_stream(KEY, chunks, AAD))
    assert len(plain) == count
    assert b"".join(plain) == data


def test_empty_pieces_and_empty_input() -> None:
    data = _data(2 * SIZE)
    pieces = [b"", data[:3], b"", data[3:], b""]
    chunks = list(crypto.encrypt_stream(KEY, pieces, AAD, chunk_size=SIZE))
    assert len(chunks) == 2
    assert _open(chunks) == data
    assert len(list(crypto.encrypt_stream(KEY, [], AAD, chunk_size=SIZE))) == 1


def test_real_chunk_size_one_megabyte() -> None:
    data = _data(1_000_003)
    chunks = list(crypto.encrypt_stream(KEY, _pieces(data, 10_000), AAD))
    assert len(chunks) == 16  # 15 full 64 KiB chunks and a shorter final one
    assert crypto.sealed_chunk_size() == crypto.CHUNK_SIZE + 29 == len(chunks[0])
    assert b"".join(crypto.decrypt_stream(KEY, iter(chunks), AAD)) == data


def test_flipped_bit_fails() -> None:
    chunks = _seal(_data(3 * SIZE))
    for index in range(len(chunks)):
        for position in (0, 1, 13, 20, len(chunks[index]) - 1):
            tampered = list(chunks)
            flipped = bytearray(tampered[index])
            flipped[position] ^= 0x80
            tampered[index] = bytes(flipped)
            with pytest.raises(crypto.CryptoError):
                _open(tampered)


def test_swapped_chunks_fail() -> None:
    chunks = _seal(_data(3 * SIZE))
    with pytest.raises(crypto.CryptoError):
        _open([chunks[1], chunks[0], chunks[2]])
    with pytest.raises(crypto.CryptoError):
        _open([chunks[0], chunks[2], chunks[1]])


def test_dropped_last_chunk_fails() -> None:
    chunks = _seal(_data(3 * SIZE))
    with pytest.raises(crypto.CryptoError):
        _open(chunks[:-1])
    with pytest.raises(crypto.CryptoError):
        _open(chunks[:1])


def test_dropped_middle_chunk_fails() -> None:
    chunks = _seal(_data(3 * SIZE))
    with pytest.raises(crypto.CryptoError):
        _open([chunks[0], chunks[2]])


def test_dropped_first_chunk_fails() -> None:
    chunks = _seal(_data(3 * SIZE))
    with pytest.raises(crypto.CryptoError):
        _open(chunks[1:])


def test_no_chunks_fails() -> None:
    with pytest.raises(crypto.CryptoError):
        _open([])


def test_chunk_from_another_file_fails() -> None:
    data = _data(3 * SIZE)
    chunks = _seal(data)
    other = _seal(data, aad=b"report-1|file-2")
    with pytest.raises(crypto.CryptoError):
        _open([chunks[0], other[1], chunks[2]])
    with pytest.raises(crypto.CryptoError):
        _open(other)


def test_extra_chunk_appended_fails() -> None:
    chunks = _seal(_data(3 * SIZE))
    other = _seal(_data(5 * SIZE))
    for extra in (chunks[0], chunks[-1], other[3], other[-1]):
        with pytest.raises(crypto.CryptoError):
            _open([*chunks, extra])


def test_final_chunk_of_longer_stream_cannot_truncate() -> None:
    # Splicing the (final) tail of a longer stream onto a prefix: index mismatch.
    long = _seal(_data(5 * SIZE))
    with pytest.raises(crypto.CryptoError):
        _open([*long[:2], long[-1]])


def test_wrong_key_fails() -> None:
    chunks = _seal(_data(SIZE))
    with pytest.raises(crypto.CryptoError):
        b"".join(crypto.decrypt_stream(crypto.random_key(), chunks, AAD))


def test_unknown_version_and_short_chunk_fail() -> None:
    chunks = _seal(_data(SIZE))
    with pytest.raises(crypto.CryptoError, match="version"):
        _open([b"\x03" + chunks[0][1:]])
    with pytest.raises(crypto.CryptoError):
        _open([chunks[0][:28]])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        list(crypto.encrypt_stream(KEY, [b"x"], AAD, chunk_size=0))
    with pytest.raises(ValueError, match="32 bytes"):
        list(crypto.encrypt_stream(b"short", [b"x"], AAD))


def test_open_chunk_by_index_with_the_known_chunk_count() -> None:
    key = crypto.random_key()
    data = bytes(range(256)) * 2
    sealed = list(crypto.encrypt_stream(key, [data], b"file", chunk_size=100))
    last = len(sealed) - 1
    opened = b"".join(
        crypto.open_chunk(key, chunk, b"file", i, i == last) for i, chunk in enumerate(sealed)
    )
    assert opened == data
    # A stream cut short: its new last chunk was not sealed as final.
    with pytest.raises(crypto.CryptoError):
        crypto.open_chunk(key, sealed[last - 1], b"file", last - 1, True)
