import hashlib
import hmac
import threading

import pytest

from app import crypto
from app.crypto import Argon2Params, derive_password_keys

TINY = crypto.Argon2Params(memory_kib=64, iterations=1, lanes=1)
SALT = bytes(range(16))


def _hkdf_reference(secret: bytes, info: bytes, salt: bytes) -> bytes:
    """RFC 5869 by hand (one block of output) as an independent check."""
    prk = hmac.new(salt or bytes(32), secret, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_derive_key_matches_rfc5869() -> None:
    secret = b"\x0b" * 22
    assert crypto.derive_key(secret, "session") == _hkdf_reference(secret, b"session", b"")
    salt = bytes(range(13))
    assert crypto.derive_key(secret, "recovery", salt) == _hkdf_reference(secret, b"recovery", salt)


def test_derive_key_separates_purposes() -> None:
    secret = bytes(32)
    keys = {crypto.derive_key(secret, purpose) for purpose in ("a", "b", "session", "sessions")}
    assert len(keys) == 4
    assert all(len(key) == 32 for key in keys)
    assert crypto.derive_key(secret, "a", b"salt") != crypto.derive_key(secret, "a")


def test_derive_key_rejects_empty_purpose() -> None:
    with pytest.raises(ValueError, match="purpose"):
        crypto.derive_key(bytes(32), "")


def test_verify_equal() -> None:
    assert crypto.verify_equal(b"abc", b"abc")
    assert not crypto.verify_equal(b"abc", b"abd")
    assert not crypto.verify_equal(b"abc", b"abcd")


def test_new_salt() -> None:
    assert len(crypto.new_salt()) == 16
    assert crypto.new_salt() != crypto.new_salt()


def test_argon2_params_round_trip() -> None:
    default = crypto.Argon2Params()
    assert default.encode() == "argon2id$m=65536,t=3,p=4"
    for params in (default, TINY, crypto.Argon2Params(memory_kib=262144, iterations=2, lanes=8)):
        assert crypto.Argon2Params.decode(params.encode()) == params


@pytest.mark.parametrize(
    "text",
    [
        "",
        "argon2id",
        "argon2i$m=65536,t=3,p=4",
        "argon2id$m=65536,t=3",
        "argon2id$t=3,m=65536,p=4",
        "argon2id$m=65536,t=3,p=4,",
        " argon2id$m=65536,t=3,p=4",
        "argon2id$m=65536,t=3,p=4\n",
        "ARGON2ID$m=65536,t=3,p=4",
        "argon2id$m=065536,t=3,p=4",
        "argon2id$m=-1,t=3,p=4",
        "argon2id$m=65536,t=0,p=4",
        "argon2id$m=65536,t=3,p=0",
        "argon2id$m=16,t=3,p=4",  # less than 8 KiB per lane
        "argon2id$m=99999999999,t=3,p=4",
        "argon2id$m=65536,t=1000,p=4",
        "argon2id$m=６５５３６,t=3,p=4",  # full-width digits
    ],
)
def test_argon2_params_reject_garbage(text: str) -> None:
    with pytest.raises(crypto.CryptoError):
        crypto.Argon2Params.decode(text)


def test_argon2_params_constructor_validates() -> None:
    with pytest.raises(ValueError, match="lanes"):
        crypto.Argon2Params(lanes=0)


def test_password_keys_deterministic_and_distinct() -> None:
    first = crypto.derive_password_keys("correct horse", SALT, TINY)
    assert first == crypto.derive_password_keys("correct horse", SALT, TINY)
    assert len(first.wrap_key) == len(first.verifier) == 32
    assert first.wrap_key != first.verifier
    others = [
        crypto.derive_password_keys("correct horsE", SALT, TINY),
        crypto.derive_password_keys("correct horse", bytes(16), TINY),
        crypto.derive_password_keys("correct horse", SALT, crypto.Argon2Params(64, 2, 1)),
    ]
    for other in others:
        assert other.wrap_key != first.wrap_key
        assert other.verifier != first.verifier


def test_password_keys_nfc_normalised() -> None:
    composed = "P\u0159\u00edli\u0161"  # "Příliš" precomposed
    decomposed = "Pr\u030ci\u0301lis\u030c"
    assert composed != decomposed
    assert crypto.derive_password_keys(composed, SALT, TINY) == crypto.derive_password_keys(
        decomposed, SALT, TINY
    )


def test_password_keys_repr_hides_keys() -> None:
    keys = crypto.derive_password_keys("pw", SALT, TINY)
    assert keys.wrap_key.hex() not in repr(keys)
    assert "wrap_key" not in repr(keys)
    assert "verifier" not in repr(keys)


def test_password_keys_reject_short_salt() -> None:
    with pytest.raises(ValueError, match="salt"):
        crypto.derive_password_keys("pw", bytes(8), TINY)


def test_concurrent_derivations_finish() -> None:
    # cryptography's OpenSSL Argon2id deadlocked here with lanes > 1; logins run in threads.
    params = Argon2Params(memory_kib=1024, iterations=1, lanes=4)
    results: list[bytes] = []

    def derive() -> None:
        results.append(derive_password_keys("password", b"s" * 16, params).verifier)

    threads = [threading.Thread(target=derive, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert len(set(results)) == 1
    assert len(results) == 4
