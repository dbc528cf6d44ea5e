"""The UDP listener's readers on real sockets: many datagrams per system call (recvmmsg, flowpipe/_udp.c)
and one per call (the fallback) hand on the same datagrams: every one once, its bytes as sent, its
source address and port, in order per source, empty ones counted, batches never past BATCH."""
from __future__ import annotations

import socket

import pytest
import trio

from flowpipe import listen
from flowpipe.listen import BATCH, Datagram, UdpListener
from flowpipe.listen_config import ListenerConfig
from flowpipe.metrics import Metrics

READERS = [pytest.param("many", marks=pytest.mark.skipif(not listen.RECV_MANY, reason="flowpipe/_udp.c not built")),
           "one"]


async def receive_all(bind_host: str, family: int, loopback: str, sends: list[tuple[int, bytes]],
                      n_sources: int) -> tuple[list[list[Datagram]], list[tuple[str, int]], Metrics]:
    """Send ``sends`` (source index, payload) from ``n_sources`` sockets to a listener; what it hands on."""
    m = Metrics()
    lst = UdpListener(ListenerConfig(flow_type="netflow9", bind_host=bind_host), m)
    lst.cfg.port = 0
    lst.open()
    send, receive = trio.open_memory_channel[list[Datagram]](1000)
    batches: list[list[Datagram]] = []
    want = sum(1 for _, p in sends if p)
    sources = []
    try:
        async with trio.open_nursery() as nursery:
            socks = [trio.socket.socket(family, trio.socket.SOCK_DGRAM) for _ in range(n_sources)]
            for s in socks:
                await s.bind((loopback, 0))
                sources.append(s.getsockname()[:2])
            for k, (src, payload) in enumerate(sends):  # queued before the listener reads: full calls
                await socks[src].sendto(payload, (loopback, lst.cfg.port))
                if k % 100 == 99:
                    await trio.sleep(0.01)
            nursery.start_soon(lst.run, send)
            with trio.fail_after(10):
                while sum(map(len, batches)) < want:
                    batches.append(await receive.receive())
            nursery.cancel_scope.cancel()
            for s in socks:
                s.close()
    finally:
        lst.close()
    return batches, sources, m


@pytest.mark.parametrize("reader", READERS)
async def test_every_datagram_once_with_its_source_in_order(reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if reader == "one":
        monkeypatch.setattr(listen, "Receiver", None)
    sends = [(k % 3, b"" if k % 97 == 5 else k.to_bytes(4, "big") * (1 + k % 50)) for k in range(700)]
    sends.append((1, (bytes(range(256)) * 256)[:65507]))  # the largest UDP payload over IPv4
    batches, sources, m = await receive_all("127.0.0.1", socket.AF_INET, "127.0.0.1", sends, 3)
    assert all(0 < len(b) <= BATCH for b in batches)
    got = [d for b in batches for d in b]
    for src in range(3):
        mine = [(data, host, port) for data, host, port, _ in got if port == sources[src][1]]
        assert mine == [(p, "127.0.0.1", sources[src][1]) for s, p in sends if s == src and p]
    empties = sum(1 for _, p in sends if not p)
    assert m.datagrams_invalid.labels("netflow9", "empty")._value.get() == empties
    assert m.datagrams_received.labels("netflow9")._value.get() == len(sends)


@pytest.mark.parametrize("reader", READERS)
async def test_ipv6_sources_are_their_text(reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if reader == "one":
        monkeypatch.setattr(listen, "Receiver", None)
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        batches, sources, _ = await receive_all("::", socket.AF_INET6, "::1", [(0, b"v6 %d" % k) for k in range(5)], 1)
    except OSError as e:
        pytest.skip(f"IPv6 loopback not usable here: {e}")
    got = [d for b in batches for d in b]
    assert [(d[0], d[1], d[2]) for d in got] == [(b"v6 %d" % k, "::1", sources[0][1]) for k in range(5)]


def test_the_wait_after_a_short_batch_fits_the_rate_and_the_buffer() -> None:
    """About a full batch's worth of arrivals, at most COALESCE_MAX, and never long enough for the
    arrivals (or a burst) to fill half the socket buffer."""
    from flowpipe.listen import BURST_RATE, COALESCE_MAX, COALESCE_MIN, QUEUED_OVERHEAD, coalesce_wait  # noqa: PLC0415

    big = 64 << 20
    assert coalesce_wait(0, 1400, big) == COALESCE_MAX  # idle: the longest wait
    assert coalesce_wait(100, 1400, big) == COALESCE_MAX
    at = coalesce_wait(30_000, 1400, big)
    assert at == pytest.approx(0.9 * BATCH / 30_000) and at < COALESCE_MAX  # a full batch's worth
    assert coalesce_wait(60_000, 1400, big) < at  # faster arrivals: shorter
    small = 416 * 1024  # the kernel's default buffer
    wait = coalesce_wait(1_000, 1400, small)
    assert wait * BURST_RATE * (1400 + QUEUED_OVERHEAD) <= small / 2 + 1  # even a burst fills half of it at most
    assert coalesce_wait(10**9, 1400, small) == COALESCE_MIN
