"""Rate limits keyed by a hashed client address, under a key that lives only in memory.

The key is random per process and replaced every day, so no stored or logged value can be tied
back to an address. Limits are therefore per process: several instances each count their own.
"""

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from app.errors import RateLimited
from app.i18n import N_

ROTATE_SECONDS = 24 * 3600
MAX_TRACKED = 100_000


@dataclass
class RateLimiter:
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _key_born: float = field(default_factory=time.monotonic)
    _hits: dict[bytes, deque[float]] = field(default_factory=dict, repr=False)

    def _bucket_key(self, bucket: str, address: str) -> bytes:
        now = time.monotonic()
        if now - self._key_born > ROTATE_SECONDS:
            self._key, self._key_born, self._hits = secrets.token_bytes(32), now, {}
        return hmac.new(self._key, f"{bucket}|{address}".encode(), hashlib.sha256).digest()

    def hit(self, bucket: str, address: str, *, limit: int, window_seconds: int) -> None:
        """Count one hit; raise RateLimited when the window already holds `limit` of them."""
        key = self._bucket_key(bucket, address)
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window_seconds:
            hits.popleft()
        if len(hits) >= limit:
            raise RateLimited(
                N_("Too many attempts from your connection. Wait a while and try again."),
                retry_after=int(hits[0] + window_seconds - now) + 1,
            )
        hits.append(now)
        if len(self._hits) > MAX_TRACKED:  # bounded memory under a flood of addresses
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - 3600}
