"""The encrypted temporary file that holds an upload while the request is read."""

import io
import os
import random

import pytest

from app.crypto.spool import SealedSpool

PLAINTEXT = b"The treasurer moved the fund's money to his own company. " * 2000


def _on_disk(spool: SealedSpool) -> bytes:
    handle = spool._file  # the test looks under the object, at what the disk holds
    handle.seek(0)
    return handle.read()


def test_what_is_written_reads_back_and_the_disk_holds_no_plaintext() -> None:
    with SealedSpool() as spool:
        for start in range(0, len(PLAINTEXT), 4096):
            spool.write(PLAINTEXT[start : start + 4096])
        spool.seek(0)
        assert spool.read() == PLAINTEXT
        stored = _on_disk(spool)
    assert len(stored) == len(PLAINTEXT)
    assert b"treasurer" not in stored
    assert stored != PLAINTEXT


def test_each_spool_has_a_key_of_its_own() -> None:
    with SealedSpool() as first, SealedSpool() as second:
        first.write(PLAINTEXT)
        second.write(PLAINTEXT)
        assert _on_disk(first) != _on_disk(second)


def test_random_reads_writes_and_seeks_behave_as_a_file() -> None:
    rng = random.Random(171)
    model = io.BytesIO()
    with SealedSpool() as spool:
        for _ in range(500):
            action = rng.choice(("write", "read", "seek", "seek_end", "seek_cur"))
            if action == "write":
                data = rng.randbytes(rng.randrange(0, 70))
                assert spool.write(data) == model.write(data)
            elif action == "read":
                size = rng.choice((-1, rng.randrange(0, 90)))
                assert spool.read(size) == model.read(size)
            elif action == "seek":
                offset = rng.randrange(0, len(model.getvalue()) + 40)
                assert spool.seek(offset) == model.seek(offset)
            elif action == "seek_end":
                assert spool.seek(0, os.SEEK_END) == model.seek(0, os.SEEK_END)
            else:
                offset = rng.randrange(-min(10, model.tell()), 10)
                assert spool.seek(offset, os.SEEK_CUR) == model.seek(offset, os.SEEK_CUR)
            assert spool.tell() == model.tell()
        spool.seek(0)
        assert spool.read() == model.getvalue()


def test_a_closed_spool_refuses_io_and_bad_seeks_are_refused() -> None:
    spool = SealedSpool()
    with pytest.raises(ValueError, match="negative"):
        spool.seek(-1)
    with pytest.raises(ValueError, match="whence"):
        spool.seek(0, 7)
    spool.close()
    with pytest.raises(ValueError, match="closed"):
        spool.read()
    with pytest.raises(ValueError, match="closed"):
        spool.write(b"x")
