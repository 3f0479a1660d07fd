"""Rate limits keyed by a hashed client address, under a key that lives only in memory.

The key is random per process and replaced every day, so no stored or logged value can be tied
back to an address. Limits are therefore per process: several instances each count their own.
"""

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from app.errors import RateLimited
from app.i18n import N_

ROTATE_SECONDS = 24 * 3600
MAX_TRACKED = 100_000


@dataclass
class RateLimiter:
    max_tracked: int = MAX_TRACKED
    clock: Callable[[], float] = time.monotonic
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _key_born: float | None = None
    # Per bucket, the hashed addresses in order of their last hit. A bucket has one window, so
    # that order is also the order in which they expire: expired ones are taken off the front.
    _buckets: dict[str, OrderedDict[bytes, deque[float]]] = field(default_factory=dict, repr=False)
    _tracked: int = 0

    def __len__(self) -> int:
        return self._tracked

    def _bucket_key(self, bucket: str, address: str, now: float) -> bytes:
        if self._key_born is None:
            self._key_born = now
        elif now - self._key_born > ROTATE_SECONDS:
            self._key, self._key_born = secrets.token_bytes(32), now
            self._buckets, self._tracked = {}, 0
        return hmac.new(self._key, f"{bucket}|{address}".encode(), hashlib.sha256).digest()

    def hit(self, bucket: str, address: str, *, limit: int, window_seconds: int) -> None:
        """Count one hit; raise RateLimited when the window already holds `limit` of them."""
        now = self.clock()
        key = self._bucket_key(bucket, address, now)
        entries = self._buckets.setdefault(bucket, OrderedDict())
        self._evict_expired(entries, now - window_seconds)
        hits = entries.get(key)
        if hits is None:
            hits = entries[key] = deque()
            self._tracked += 1
            self._evict_over_limit()
        else:
            entries.move_to_end(key)
        while hits and hits[0] <= now - window_seconds:
            hits.popleft()
        if len(hits) >= limit:
            raise RateLimited(
                N_("Too many attempts from your connection. Wait a while and try again."),
                retry_after=int(hits[0] + window_seconds - now) + 1,
            )
        hits.append(now)

    def refund(self, bucket: str, address: str) -> None:
        """Take back the latest hit: an attempt that turned out to be no abuse."""
        entries = self._buckets.get(bucket)
        hits = entries.get(self._bucket_key(bucket, address, self.clock())) if entries else None
        if hits:
            hits.pop()

    def _evict_expired(self, entries: OrderedDict[bytes, deque[float]], horizon: float) -> None:
        # Each entry is removed at most once after it was added: constant work per hit, amortised.
        while entries:
            oldest = next(iter(entries.values()))
            if oldest and oldest[-1] > horizon:
                return
            entries.popitem(last=False)
            self._tracked -= 1

    def _evict_over_limit(self) -> None:
        # Bounded memory under a flood of addresses: the least recently seen go first. Whoever
        # controls that many addresses gets past per-address limits anyway.
        while self._tracked > self.max_tracked:
            largest = max(self._buckets.values(), key=len)
            largest.popitem(last=False)
            self._tracked -= 1
