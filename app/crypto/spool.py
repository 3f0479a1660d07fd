"""A temporary file whose bytes on disk are encrypted under a key that never leaves memory.

An upload is held in a temporary file while the request is read, before it is sealed under the
report key. This file keeps that copy unreadable on the disk (and in what a crash, a snapshot or a
stolen disk leaves of it): AES-256-CTR under a random key of the object's own, so any byte range
can be read back after a seek. It is not authenticated: only this process writes the file and
reads it back, while an attacker who can change it underneath could read the request anyway.
"""

import io
import os
import secrets
import tempfile
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16


class SealedSpool(io.RawIOBase):
    """A seekable, readable and writable binary temporary file, encrypted on disk."""

    def __init__(self, directory: str | None = None) -> None:
        super().__init__()
        self._key = secrets.token_bytes(32)
        self._counter = int.from_bytes(secrets.token_bytes(BLOCK), "big")
        self._file = tempfile.TemporaryFile(dir=directory)  # closed with the spool
        self._position = 0
        self._size = 0
        # The keystream of the last read or write, and the offset it has reached: sequential
        # reads and writes go on with it instead of starting a new one.
        self._keystream: Any = None
        self._keystream_offset = -1

    def __repr__(self) -> str:
        return f"<SealedSpool {self._size} bytes>"

    def _crypt_at(self, offset: int, data: bytes) -> bytes:
        """XOR `data` with the keystream from byte `offset` on (CTR: encrypts and decrypts)."""
        if offset != self._keystream_offset:
            block, skip = divmod(offset, BLOCK)
            initial = ((self._counter + block) % 2**128).to_bytes(BLOCK, "big")
            self._keystream = Cipher(algorithms.AES(self._key), modes.CTR(initial)).encryptor()
            self._keystream.update(bytes(skip))  # advance to the byte inside the block
        self._keystream_offset = offset + len(data)
        result: bytes = self._keystream.update(data)
        return result

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        bases = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}
        if whence not in bases:
            raise ValueError(f"invalid whence {whence}")
        position = bases[whence] + offset
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def write(self, data: Any) -> int:
        self._check_open()
        plaintext = bytes(data)
        if self._position > self._size:  # a hole after a seek past the end reads as zeros
            gap = self._position - self._size
            self._position = self._size
            self.write(bytes(gap))
        self._file.seek(self._position)
        self._file.write(self._crypt_at(self._position, plaintext))
        self._position += len(plaintext)
        self._size = max(self._size, self._position)
        return len(plaintext)

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        available = max(0, self._size - self._position)
        wanted = available if size is None or size < 0 else min(size, available)
        if wanted == 0:
            return b""
        self._file.seek(self._position)
        ciphertext = self._file.read(wanted)
        plaintext = self._crypt_at(self._position, ciphertext)
        self._position += len(plaintext)
        return plaintext

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self._key = b""
            self._keystream = None
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed file")
