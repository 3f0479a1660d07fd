"""Checked-in vectors: a failure here means a ciphertext or key format changed. Bump VERSION.

Version 1 vectors stay: ciphertexts written before version 2 must keep opening.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from app import crypto
from app.crypto.aead import seal_with_nonce

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors.json").read_text(encoding="utf-8")
)


def _hex(value: str) -> bytes:
    return bytes.fromhex(value)


def test_seal_vector() -> None:
    v = VECTORS["seal"]
    ciphertext = _hex(v["ciphertext"])
    assert ciphertext[0] == 1
    assert crypto.open_sealed(_hex(v["key"]), ciphertext, _hex(v["aad"])) == _hex(v["plaintext"])


def test_seal_to_vector() -> None:
    v = VECTORS["seal_to"]
    ciphertext = _hex(v["ciphertext"])
    assert ciphertext[0] == 1
    assert crypto.public_key_of(_hex(v["private"])) == _hex(v["public"])
    assert crypto.open_with(_hex(v["private"]), ciphertext, _hex(v["aad"])) == _hex(v["plaintext"])


def test_seal_vector_of_version_2() -> None:
    v = VECTORS["seal_v2"]
    ciphertext = _hex(v["ciphertext"])
    assert ciphertext[0] == crypto.VERSION == 2
    key, nonce, plaintext, aad = (_hex(v[name]) for name in ("key", "nonce", "plaintext", "aad"))
    assert seal_with_nonce(key, nonce, plaintext, aad) == ciphertext
    assert crypto.open_sealed(key, ciphertext, aad) == plaintext


def test_seal_to_vector_of_version_2() -> None:
    v, keys = VECTORS["seal_to_v2"], VECTORS["seal_to"]
    ciphertext = _hex(v["ciphertext"])
    assert ciphertext[0] == 2
    plaintext = crypto.open_with(_hex(keys["private"]), ciphertext, _hex(v["aad"]))
    assert plaintext == _hex(v["plaintext"])


def test_stream_vector_of_version_2() -> None:
    v = VECTORS["stream_v2"]
    chunks = [_hex(chunk) for chunk in v["chunks"]]
    assert [chunk[0] for chunk in chunks] == [2, 2, 2]
    plain = list(crypto.decrypt_stream(_hex(v["key"]), chunks, _hex(v["aad"])))
    assert [len(chunk) for chunk in plain] == [16, 16, 8]
    assert b"".join(plain) == _hex(v["plaintext"])


@pytest.mark.parametrize("name", ["seal", "seal_v2"])
def test_a_changed_version_byte_does_not_open(name: str) -> None:
    v = VECTORS[name]
    ciphertext = _hex(v["ciphertext"])
    other = 2 if ciphertext[0] == 1 else 1
    # Both versions are readable: the tag, not the version check, refuses it.
    with pytest.raises(crypto.CryptoError, match="decryption failed"):
        crypto.open_sealed(_hex(v["key"]), bytes([other]) + ciphertext[1:], _hex(v["aad"]))


@pytest.mark.parametrize("name", ["seal_to", "seal_to_v2"])
def test_a_changed_version_byte_of_a_key_seal_does_not_open(name: str) -> None:
    v = VECTORS[name]
    ciphertext = _hex(v["ciphertext"])
    other = 2 if ciphertext[0] == 1 else 1
    with pytest.raises(crypto.CryptoError, match="decryption failed"):
        crypto.open_with(
            _hex(VECTORS["seal_to"]["private"]), bytes([other]) + ciphertext[1:], _hex(v["aad"])
        )


@pytest.mark.parametrize("name", ["stream", "stream_v2"])
def test_a_changed_version_byte_of_a_file_chunk_does_not_open(name: str) -> None:
    v = VECTORS[name]
    chunks = [_hex(chunk) for chunk in v["chunks"]]
    other = 2 if chunks[0][0] == 1 else 1
    chunks[1] = bytes([other]) + chunks[1][1:]
    with pytest.raises(crypto.CryptoError, match="authentication failed"):
        list(crypto.decrypt_stream(_hex(v["key"]), chunks, _hex(v["aad"])))


def test_stream_vector() -> None:
    v = VECTORS["stream"]
    chunks = [_hex(chunk) for chunk in v["chunks"]]
    assert len(chunks) == 3
    assert all(chunk[0] == 1 for chunk in chunks)
    plain = list(crypto.decrypt_stream(_hex(v["key"]), chunks, _hex(v["aad"])))
    assert [len(chunk) for chunk in plain] == [16, 16, 8]
    assert b"".join(plain) == _hex(v["plaintext"])


def test_derive_key_vectors() -> None:
    for v in VECTORS["derive_key"]:
        key = crypto.derive_key(_hex(v["secret"]), v["purpose"], _hex(v["salt"]))
        assert key == _hex(v["key"])


def test_derive_password_keys_vector() -> None:
    v = VECTORS["derive_password_keys"]
    params = crypto.Argon2Params.decode(v["params"])
    keys = crypto.derive_password_keys(v["password"], _hex(v["salt"]), params)
    assert keys.wrap_key == _hex(v["wrap_key"])
    assert keys.verifier == _hex(v["verifier"])


def test_code_vectors() -> None:
    v = VECTORS["codes"]
    assert crypto.code_key(v["code"], v["purpose"]) == _hex(v["code_key"])
    assert crypto.lookup_hash(_hex(v["lookup_key"]), v["code"]) == _hex(v["lookup_hash"])
