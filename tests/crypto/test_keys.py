import pytest

from app import crypto

AAD = b"grant|org|member"


def test_keypair_sizes_and_repr() -> None:
    pair = crypto.generate_keypair()
    assert len(pair.private) == crypto.PRIVATE_KEY_SIZE == 96
    assert len(pair.public) == crypto.PUBLIC_KEY_SIZE == 1216
    assert "private" not in repr(pair)
    assert pair.private.hex() not in repr(pair)
    assert crypto.public_key_of(pair.private) == pair.public
    assert crypto.generate_keypair().private != pair.private


@pytest.mark.parametrize("size", [0, 32, 2048])
def test_round_trip(size: int) -> None:
    pair = crypto.generate_keypair()
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    blob = crypto.seal_to(pair.public, plaintext, AAD)
    assert blob[0] == crypto.VERSION
    assert crypto.open_with(pair.private, blob, AAD) == plaintext


def test_each_seal_differs() -> None:
    pair = crypto.generate_keypair()
    assert crypto.seal_to(pair.public, b"k", AAD) != crypto.seal_to(pair.public, b"k", AAD)


def test_wrong_private_key_fails() -> None:
    pair, other = crypto.generate_keypair(), crypto.generate_keypair()
    blob = crypto.seal_to(pair.public, b"report key", AAD)
    with pytest.raises(crypto.CryptoError):
        crypto.open_with(other.private, blob, AAD)


def test_wrong_aad_fails() -> None:
    pair = crypto.generate_keypair()
    blob = crypto.seal_to(pair.public, b"report key", AAD)
    with pytest.raises(crypto.CryptoError):
        crypto.open_with(pair.private, blob, b"grant|org|other")


def test_flipped_bits_fail() -> None:
    pair = crypto.generate_keypair()
    blob = crypto.seal_to(pair.public, b"report key", AAD)
    # Version, start/middle/end of the encapsulated key, the body and the tag.
    for position in (0, 1, 500, 1120, 1121, len(blob) - 20, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(crypto.CryptoError):
            crypto.open_with(pair.private, bytes(tampered), AAD)


def test_unknown_version_and_short_input_fail() -> None:
    pair = crypto.generate_keypair()
    blob = crypto.seal_to(pair.public, b"report key", AAD)
    with pytest.raises(crypto.CryptoError, match="version"):
        crypto.open_with(pair.private, b"\x03" + blob[1:], AAD)
    for bad in (b"", b"\x01", blob[:100], blob[:-1]):
        with pytest.raises(crypto.CryptoError):
            crypto.open_with(pair.private, bad, AAD)


def test_wrong_key_lengths_are_value_errors() -> None:
    pair = crypto.generate_keypair()
    with pytest.raises(ValueError, match="public key"):
        crypto.seal_to(pair.public[:-1], b"x", AAD)
    with pytest.raises(ValueError, match="private key"):
        crypto.open_with(pair.private + b"\x00", crypto.seal_to(pair.public, b"x", AAD), AAD)
