import pytest

from app import crypto
from app.crypto.aead import seal_with_nonce

KEY = bytes(range(32))
AAD = b"report|1"


def test_round_trip() -> None:
    for plaintext in (b"", b"x", b"hello" * 1000):
        blob = crypto.seal(KEY, plaintext, AAD)
        assert blob[0] == crypto.VERSION == 2
        assert len(blob) == len(plaintext) + 29
        assert crypto.open_sealed(KEY, blob, AAD) == plaintext


def test_random_key_and_nonce() -> None:
    assert len(crypto.random_key()) == 32
    assert crypto.random_key() != crypto.random_key()
    assert crypto.seal(KEY, b"same", AAD) != crypto.seal(KEY, b"same", AAD)


def test_wrong_key_fails() -> None:
    blob = crypto.seal(KEY, b"secret", AAD)
    with pytest.raises(crypto.CryptoError):
        crypto.open_sealed(crypto.random_key(), blob, AAD)


def test_wrong_aad_fails() -> None:
    blob = crypto.seal(KEY, b"secret", AAD)
    with pytest.raises(crypto.CryptoError):
        crypto.open_sealed(KEY, blob, b"report|2")


def test_flipped_bit_anywhere_fails() -> None:
    blob = crypto.seal(KEY, b"secret message", AAD)
    # Every byte: version (0), nonce (1..12), body, tag (last 16).
    for position in range(len(blob)):
        for bit in (0, 7):
            tampered = bytearray(blob)
            tampered[position] ^= 1 << bit
            with pytest.raises(crypto.CryptoError):
                crypto.open_sealed(KEY, bytes(tampered), AAD)


def test_unknown_version_fails() -> None:
    blob = crypto.seal(KEY, b"secret", AAD)
    for version in (0, 3, 255):
        with pytest.raises(crypto.CryptoError, match="version"):
            crypto.open_sealed(KEY, bytes([version]) + blob[1:], AAD)


def test_truncated_and_extended_fail() -> None:
    blob = crypto.seal(KEY, b"secret", AAD)
    for bad in (b"", blob[:1], blob[:28], blob[:-1], blob + b"\x00"):
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(KEY, bad, AAD)


def test_wrong_key_length_is_value_error() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.seal(b"short", b"x", AAD)
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.open_sealed(b"short", crypto.seal(KEY, b"x", AAD), AAD)


def test_error_message_carries_no_material() -> None:
    plaintext = b"very secret plaintext"
    blob = crypto.seal(KEY, plaintext, AAD)
    with pytest.raises(crypto.CryptoError) as caught:
        crypto.open_sealed(crypto.random_key(), blob, AAD)
    message = str(caught.value)
    assert "secret" not in message
    assert KEY.hex() not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_fixed_nonce_is_deterministic() -> None:
    nonce = bytes(12)
    assert seal_with_nonce(KEY, nonce, b"x", AAD) == seal_with_nonce(KEY, nonce, b"x", AAD)
    with pytest.raises(ValueError, match="nonce"):
        seal_with_nonce(KEY, bytes(8), b"x", AAD)
