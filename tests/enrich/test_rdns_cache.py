"""The rDNS building blocks: the TTL+LRU cache and the trio token bucket."""
from __future__ import annotations

import pytest
import trio

from flowpipe.enrich.cache import TtlLruCache
from flowpipe.enrich.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_own_ttl() -> None:
    clock = FakeClock()
    c: TtlLruCache[str, str] = TtlLruCache(10, clock=clock)
    c.put("a", "x", 5)
    c.put("b", "", 1)
    assert c.get("a") == "x" and c.get("b") == ""
    clock.now += 1
    assert c.get("b") is None and len(c) == 1   # expired and dropped on read
    clock.now += 3.9
    assert c.get("a") == "x"
    clock.now += 0.2
    assert c.get("a") is None and len(c) == 0


def test_least_recently_used_goes_first() -> None:
    c: TtlLruCache[int, str] = TtlLruCache(3, clock=FakeClock())
    for k in (1, 2, 3):
        c.put(k, str(k), 60)
    assert c.get(1) == "1"          # 1 is now the most recently used
    c.put(4, "4", 60)               # evicts 2
    assert c.get(2) is None and [c.get(k) for k in (1, 3, 4)] == ["1", "3", "4"]
    c.put(3, "3b", 60)              # update in place, no eviction
    assert len(c) == 3 and c.get(3) == "3b"


def test_peek_purge_and_zero_ttl() -> None:
    clock = FakeClock()
    c: TtlLruCache[str, str] = TtlLruCache(10, clock=clock)
    c.put("a", "x", 10)
    c.put("b", "y", 2)
    peeked = c.peek("a")
    assert peeked is not None and peeked[0] == "x" and peeked[1] == pytest.approx(10)
    c.put("a", "z", 0)              # ttl 0 removes and stores nothing
    assert c.get("a") is None
    clock.now += 3
    assert c.purge_expired() == 1 and len(c) == 0
    with pytest.raises(ValueError):
        TtlLruCache(0)


async def test_token_bucket_paces_to_the_rate(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket(rate=10, burst=1)
    start = trio.current_time()
    for _ in range(21):
        await bucket.acquire()
    # the first token is there at once, the next 20 come at 10/s
    assert trio.current_time() - start == pytest.approx(2.0, abs=1e-6)


async def test_token_bucket_burst_then_rate(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket(rate=5, burst=5)
    start = trio.current_time()
    for _ in range(5):
        assert bucket.try_acquire()
    assert not bucket.try_acquire()
    assert trio.current_time() == start
    await trio.sleep(0.2)
    assert bucket.try_acquire() and not bucket.try_acquire()
    await trio.sleep(10)            # refills up to the burst, no more
    assert sum(bucket.try_acquire() for _ in range(10)) == 5


async def test_token_bucket_shared_by_concurrent_waiters(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket(rate=100)
    times: list[float] = []

    async def take() -> None:
        await bucket.acquire()
        times.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as n:
        for _ in range(50):
            n.start_soon(take)
    assert len(times) == 50
    assert max(times) - start == pytest.approx(0.49, abs=1e-6)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.01 - 1e-9


async def test_cancelled_waiter_takes_no_token(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket(rate=1)
    await bucket.acquire()
    with trio.move_on_after(0.5):
        await bucket.acquire()      # cancelled half way
    start = trio.current_time()
    await bucket.acquire()          # the token due at t=1 is still there
    assert trio.current_time() - start == pytest.approx(0.5, abs=1e-6)
