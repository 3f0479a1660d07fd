"""Checked-in vectors: a failure here means a ciphertext or key format changed. Bump VERSION."""

import json
from pathlib import Path
from typing import Any

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
    key, nonce, plaintext, aad = (_hex(v[name]) for name in ("key", "nonce", "plaintext", "aad"))
    assert seal_with_nonce(key, nonce, plaintext, aad) == ciphertext
    assert crypto.open_sealed(_hex(v["key"]), ciphertext, _hex(v["aad"])) == _hex(v["plaintext"])


def test_seal_to_vector() -> None:
    v = VECTORS["seal_to"]
    ciphertext = _hex(v["ciphertext"])
    assert ciphertext[0] == 1
    assert crypto.public_key_of(_hex(v["private"])) == _hex(v["public"])
    assert crypto.open_with(_hex(v["private"]), ciphertext, _hex(v["aad"])) == _hex(v["plaintext"])


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
