"""The per-address limiter: counting, expiry and bounded memory."""

import pytest

from app.errors import RateLimited
from app.services.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_hit_past_the_limit_is_refused_until_the_window_moves_on() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(3):
        limiter.hit("lookup", "192.0.2.1", limit=3, window_seconds=60)
    with pytest.raises(RateLimited) as refused:
        limiter.hit("lookup", "192.0.2.1", limit=3, window_seconds=60)
    assert 0 < refused.value.retry_after <= 61
    clock.now += 61
    limiter.hit("lookup", "192.0.2.1", limit=3, window_seconds=60)


def test_addresses_whose_window_has_passed_are_forgotten_as_others_arrive() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for n in range(1000):
        limiter.hit("lookup", f"198.51.100.{n}", limit=5, window_seconds=60)
    assert len(limiter) == 1000
    clock.now += 30
    limiter.hit("lookup", "203.0.113.1", limit=5, window_seconds=60)
    assert len(limiter) == 1001  # none expired yet
    clock.now += 31
    limiter.hit("lookup", "203.0.113.2", limit=5, window_seconds=60)
    assert len(limiter) == 2  # the thousand expired; the two recent ones are kept


def test_a_longer_window_in_another_bucket_does_not_hold_expired_entries_back() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limiter.hit("submit", "192.0.2.1", limit=1, window_seconds=3600)
    for n in range(100):
        limiter.hit("lookup", f"198.51.100.{n}", limit=5, window_seconds=60)
    clock.now += 61
    limiter.hit("lookup", "203.0.113.1", limit=5, window_seconds=60)
    assert len(limiter) == 2
    # The long window still counts.
    with pytest.raises(RateLimited):
        limiter.hit("submit", "192.0.2.1", limit=1, window_seconds=3600)


def test_a_flood_of_addresses_keeps_the_table_bounded() -> None:
    limiter = RateLimiter(max_tracked=500, clock=Clock())
    for n in range(5000):
        limiter.hit("lookup", f"10.0.{n // 256}.{n % 256}", limit=5, window_seconds=600)
        assert len(limiter) <= 500
    # The most recent addresses are the ones still counted.
    for _ in range(4):
        limiter.hit("lookup", "10.0.19.135", limit=5, window_seconds=600)
    with pytest.raises(RateLimited):
        limiter.hit("lookup", "10.0.19.135", limit=5, window_seconds=600)


def test_an_address_still_limited_is_not_forgotten_while_it_keeps_trying() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(2):
        limiter.hit("lookup", "192.0.2.1", limit=2, window_seconds=600)
    for n in range(200):
        clock.now += 1
        limiter.hit("lookup", f"198.51.100.{n}", limit=2, window_seconds=600)
    with pytest.raises(RateLimited):
        limiter.hit("lookup", "192.0.2.1", limit=2, window_seconds=600)


def test_a_refunded_hit_is_not_counted() -> None:
    limiter = RateLimiter(clock=Clock())
    for _ in range(10):
        limiter.hit("login", "192.0.2.1", limit=2, window_seconds=600)
        limiter.refund("login", "192.0.2.1")
    limiter.hit("login", "192.0.2.1", limit=2, window_seconds=600)
    limiter.hit("login", "192.0.2.1", limit=2, window_seconds=600)
    with pytest.raises(RateLimited):
        limiter.hit("login", "192.0.2.1", limit=2, window_seconds=600)
