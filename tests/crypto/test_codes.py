import math
import re

import pytest

from app import crypto


def test_alphabet() -> None:
    assert len(crypto.ALPHABET) == 32
    assert len(set(crypto.ALPHABET)) == 32
    assert not set("01OI") & set(crypto.ALPHABET)
    assert crypto.ALPHABET == crypto.ALPHABET.upper()


def test_tracking_code_shape_and_entropy() -> None:
    code = crypto.new_tracking_code()
    assert re.fullmatch(r"([2-9A-HJ-NP-Z]{4}-){6}[2-9A-HJ-NP-Z]{4}", code)
    normalised = crypto.normalise_tracking_code(code)
    assert normalised is not None
    assert len(normalised) == crypto.TRACKING_CODE_LENGTH
    assert crypto.TRACKING_CODE_LENGTH * math.log2(len(crypto.ALPHABET)) >= 128
    assert len({crypto.new_tracking_code() for _ in range(100)}) == 100


def test_recovery_key_shape_and_entropy() -> None:
    key = crypto.new_recovery_key()
    groups = key.split("-")
    assert len(groups) == 13
    assert all(len(group) == 4 for group in groups)
    normalised = crypto.normalise_recovery_key(key)
    assert normalised is not None
    assert crypto.RECOVERY_KEY_LENGTH * math.log2(len(crypto.ALPHABET)) >= 256
    assert crypto.normalise_tracking_code(key) is None
    assert crypto.normalise_recovery_key(crypto.new_tracking_code()) is None


def test_symbols_are_spread_over_the_alphabet() -> None:
    symbols = "".join(crypto.new_recovery_key().replace("-", "") for _ in range(200))
    assert set(symbols) == set(crypto.ALPHABET)


def test_normalise_forgives_case_spaces_hyphens() -> None:
    code = crypto.new_tracking_code()
    plain = code.replace("-", "")
    variants = [
        code,
        code.lower(),
        plain,
        plain.lower(),
        "  " + code.replace("-", " ") + "\n",
        code.replace("-", " - "),
        "-".join(plain[i : i + 2] for i in range(0, len(plain), 2)),
    ]
    for variant in variants:
        assert crypto.normalise_tracking_code(variant) == plain


def test_normalise_rejects_bad_input() -> None:
    plain = crypto.new_tracking_code().replace("-", "")
    bad = [
        "",
        plain[:-1],
        plain + "A",
        "0" + plain[1:],
        "O" + plain[1:],
        "1" + plain[1:],
        "I" + plain[1:],
        "i" + plain[1:],
        "!" + plain[1:],
        "ſ" + plain[1:],  # uppercases to "S"
        "Ａ" + plain[1:],  # full-width A
        plain[:4] + "_" + plain[4:],
    ]
    for text in bad:
        assert crypto.normalise_tracking_code(text) is None
    assert crypto.normalise_code("abcd", 4) == "ABCD"
    assert crypto.normalise_code("abcd", 5) is None


def test_format_code() -> None:
    assert crypto.format_code("ABCDEFGH") == "ABCD-EFGH"
    assert crypto.format_code("ABCDEF") == "ABCD-EF"
    code = crypto.new_tracking_code()
    normalised = crypto.normalise_tracking_code(code)
    assert normalised is not None
    assert crypto.format_code(normalised) == code


def test_code_key_and_lookup_hash() -> None:
    code = crypto.normalise_tracking_code(crypto.new_tracking_code())
    other = crypto.normalise_tracking_code(crypto.new_tracking_code())
    assert code is not None
    assert other is not None
    key = crypto.code_key(code, "tracking")
    assert len(key) == 32
    assert key == crypto.code_key(code, "tracking")
    assert key != crypto.code_key(code, "tracking-other")
    assert key != crypto.code_key(other, "tracking")
    server = bytes(32)
    digest = crypto.lookup_hash(server, code)
    assert len(digest) == 32
    assert digest == crypto.lookup_hash(server, code)
    assert digest != crypto.lookup_hash(bytes([1]) * 32, code)
    assert digest != crypto.lookup_hash(server, other)
    assert digest != key


def test_code_functions_reject_unnormalised() -> None:
    for bad in ("", "abcd-efgh", "ABCD-EFGH"):
        with pytest.raises(ValueError, match="normalised"):
            crypto.code_key(bad, "tracking")
        with pytest.raises(ValueError, match="normalised"):
            crypto.lookup_hash(bytes(32), bad)
