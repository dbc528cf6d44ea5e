"""Reverse-DNS enrichment against a real DNS server on 127.0.0.1 (tests/support/dns_server.py)."""
from __future__ import annotations

import ipaddress
import socket
from typing import Any

import dns.asyncbackend
import dns.nameserver
import pytest
import trio

from flowpipe.config import ReverseDnsConfig
from flowpipe.enrich import ReverseDnsEnricher, qualifies
from flowpipe.enrich.rdns import make_resolver
from flowpipe.flow import FlushBatch, make_flow
from flowpipe.metrics import Metrics
from tests.support.dns_server import DnsTestServer


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


@pytest.fixture
def srv(dns_srv: DnsTestServer) -> DnsTestServer:
    s = dns_srv  # negative answers cached 60 s (the default)
    s.add_ptr("10.0.0.1", "db-1.example.internal", ttl=300)
    s.add_ptr("10.0.0.2", "web-2.example.internal.", ttl=5)
    s.add_ptr("fd00::1", "v6.example.internal")
    s.add_ptr("192.0.2.10", "public.example.com")
    s.set_rcode("10.0.0.3", "SERVFAIL")
    s.set_rcode("10.0.0.4", "REFUSED")
    s.set_silent("10.0.0.5")
    s.add_ptr("10.0.0.6", "slow.example.internal")
    s.set_delay("10.0.0.6", 0.4)
    return s


def enricher(srv: DnsTestServer, **kw: Any) -> ReverseDnsEnricher:
    kw.setdefault("timeout", 1.0)
    cfg = ReverseDnsConfig(enabled=True, nameservers=[srv.nameserver], **kw)
    return ReverseDnsEnricher(cfg, Metrics())


def count(e: ReverseDnsEnricher, result: str) -> float:
    v = e.metrics.registry.get_sample_value("flowpipe_rdns_lookups_total", {"result": result})
    return v or 0.0


@pytest.mark.parametrize(("addr", "private", "any_"), [
    ("10.1.2.3", True, True), ("172.16.0.1", True, True), ("172.31.255.255", True, True),
    ("172.32.0.1", False, True), ("192.168.1.1", True, True), ("100.64.0.1", True, True),
    ("100.127.255.255", True, True), ("100.128.0.1", False, True), ("169.254.1.1", True, True),
    ("8.8.8.8", False, True), ("127.0.0.1", False, True), ("0.0.0.0", False, False),
    ("fd12:3456::1", True, True), ("fc00::1", True, True), ("fe80::1", True, True),
    ("febf::1", True, True), ("fec0::1", False, True), ("2001:db8::1", False, True),
    ("::ffff:10.0.0.1", True, True), ("::ffff:8.8.8.8", False, True), ("::", False, False),
])
def test_which_addresses_qualify(addr: str, private: bool, any_: bool) -> None:
    assert qualifies(ip(addr), True) is private
    assert qualifies(ip(addr), False) is any_


def test_bad_lengths_never_qualify() -> None:
    assert not qualifies(b"", False) and not qualifies(b"\x0a\x00\x00", False)


def test_resolver_uses_configured_ports_and_system_default() -> None:
    cfg = ReverseDnsConfig(nameservers=["127.0.0.1:5353", "[::1]:5354", "192.0.2.1"], timeout=0.5)
    res = make_resolver(cfg)
    servers = [(ns.address, ns.port) for ns in res.nameservers if isinstance(ns, dns.nameserver.Do53Nameserver)]
    assert servers == [("127.0.0.1", 5353), ("::1", 5354), ("192.0.2.1", 53)]
    assert res.timeout == 0.5 and res.lifetime == pytest.approx(1.5) and res.cache is None
    make_resolver(ReverseDnsConfig())   # the system resolver (/etc/resolv.conf) does not raise


async def test_dnspython_runs_on_trio(srv: DnsTestServer) -> None:
    assert dns.asyncbackend.sniff() == "trio"
    assert dns.asyncbackend.get_default_backend().name() == "trio"
    e = enricher(srv)
    assert e._backend.name() == "trio"
    assert await e.lookup_many({ip("10.0.0.1")}, 1.0) == {ip("10.0.0.1"): "db-1.example.internal"}


async def test_names_nxdomain_and_public_addresses(srv: DnsTestServer) -> None:
    e = enricher(srv)
    addrs = {ip(a) for a in ("10.0.0.1", "10.0.0.2", "fd00::1", "10.9.9.9", "192.0.2.10", "::ffff:10.0.0.1")}
    names = await e.lookup_many(addrs | {b""}, 1.0)
    assert names == {ip("10.0.0.1"): "db-1.example.internal", ip("10.0.0.2"): "web-2.example.internal",
                     ip("fd00::1"): "v6.example.internal", ip("::ffff:10.0.0.1"): "db-1.example.internal"}
    assert srv.query_count("192.0.2.10") == 0       # public: not looked up with private_only
    assert srv.query_count("10.0.0.1") == 2         # itself and the v4-mapped form (separate keys)
    assert (count(e, "success"), count(e, "nxdomain")) == (4, 1)

    e_all = enricher(srv, private_only=False)
    assert await e_all.lookup_many({ip("192.0.2.10")}, 1.0) == {ip("192.0.2.10"): "public.example.com"}


async def test_smallest_name_of_several(srv: DnsTestServer) -> None:
    srv.add_ptr("10.0.1.1", ["b.example.internal", "a.example.internal", "c.example.internal"])
    e = enricher(srv)
    assert await e.lookup_many({ip("10.0.1.1")}, 1.0) == {ip("10.0.1.1"): "a.example.internal"}


async def test_cache_answers_without_querying(srv: DnsTestServer) -> None:
    e = enricher(srv)
    addrs = {ip("10.0.0.1"), ip("10.9.9.9"), ip("10.0.0.3")}
    async with e.started():
        first = await e.lookup_many(addrs, 1.0)
        second = await e.lookup_many(addrs, 1.0)
    assert first == second == {ip("10.0.0.1"): "db-1.example.internal"}
    assert [srv.query_count(a) for a in ("10.0.0.1", "10.9.9.9", "10.0.0.3")] == [1, 1, 1]
    assert (count(e, "cache_hit"), count(e, "cache_negative_hit")) == (1, 2)
    assert e.metrics.registry.get_sample_value("flowpipe_rdns_cache_entries") == 3


async def test_cache_durations_follow_config_and_record_ttls(srv: DnsTestServer) -> None:
    e = enricher(srv, cache_ttl=100, negative_cache_ttl=300, failure_cache_ttl=20)
    await e.lookup_many({ip(a) for a in ("10.0.0.1", "10.0.0.2", "10.9.9.9", "10.0.0.3")}, 1.0)

    def left(a: str) -> float:
        entry = e.cache.peek(ip(a))
        assert entry is not None
        return entry[1]

    assert 99 < left("10.0.0.1") <= 100        # record TTL 300 > cache_ttl 100
    assert 4 < left("10.0.0.2") <= 5           # record TTL 5 < cache_ttl
    assert 59 < left("10.9.9.9") <= 60         # NXDOMAIN: the zone's negative TTL (60) < 300
    assert 19 < left("10.0.0.3") <= 20         # SERVFAIL: failure_cache_ttl


async def test_expired_entry_is_looked_up_again(srv: DnsTestServer) -> None:
    e = enricher(srv)
    offset = 0.0
    e.cache.clock = lambda: trio.current_time() + offset
    async with e.started():
        await e.lookup_many({ip("10.0.0.2")}, 1.0)
        offset = 4.0
        await e.lookup_many({ip("10.0.0.2")}, 1.0)
        assert srv.query_count("10.0.0.2") == 1
        offset = 5.5                                # past the record's 5 s TTL
        assert await e.lookup_many({ip("10.0.0.2")}, 1.0) == {ip("10.0.0.2"): "web-2.example.internal"}
    assert srv.query_count("10.0.0.2") == 2


async def test_failures_are_counted_by_kind(srv: DnsTestServer) -> None:
    e = enricher(srv, timeout=0.2)
    names = await e.lookup_many({ip(a) for a in ("10.0.0.3", "10.0.0.4", "10.0.0.5")}, 2.0)
    assert names == {}
    assert [count(e, r) for r in ("servfail", "refused", "timeout")] == [1, 1, 1]

    # nothing listening: the kernel refuses the datagram, dnspython gives up on the server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ReverseDnsConfig(enabled=True, nameservers=[f"127.0.0.1:{port}"], timeout=0.2)
    e2 = ReverseDnsEnricher(cfg, Metrics())
    assert await e2.lookup_many({ip("10.0.0.1")}, 2.0) == {}
    assert count(e2, "error") + count(e2, "timeout") == 1


async def test_concurrent_requests_share_one_query(srv: DnsTestServer) -> None:
    e = enricher(srv)
    results: list[dict[bytes, str]] = []

    async def flush() -> None:
        results.append(await e.lookup_many({ip("10.0.0.6")}, 1.0))

    async with e.started():
        async with trio.open_nursery() as n:
            n.start_soon(flush)
            n.start_soon(flush)
    assert results == [{ip("10.0.0.6"): "slow.example.internal"}] * 2
    assert srv.query_count("10.0.0.6") == 1 and count(e, "coalesced") == 1


async def test_concurrency_limit(srv: DnsTestServer) -> None:
    addrs = [f"10.0.2.{i}" for i in range(12)]
    for a in addrs:
        srv.add_ptr(a, f"h{a.rsplit('.', 1)[1]}.example.internal")
        srv.set_delay(a, 0.15)
    e = enricher(srv, concurrency=3)
    start = trio.current_time()
    names = await e.lookup_many({ip(a) for a in addrs}, 3.0)
    elapsed = trio.current_time() - start
    assert len(names) == 12
    assert srv.max_outstanding == 3               # the server never saw more than 3 at once
    assert elapsed >= 4 * 0.15                    # 12 lookups, 3 at a time


@pytest.mark.slow
async def test_rate_limit(srv: DnsTestServer) -> None:
    addrs = [f"10.0.3.{i}" for i in range(30)]
    for a in addrs:
        srv.add_ptr(a, "x.example.internal")
    e = enricher(srv, rate_limit=20)
    async with e.started():
        names = await e.lookup_many({ip(a) for a in addrs}, 0.5)
        sent = srv.total_queries
        assert 8 <= sent <= 12 and len(names) <= sent   # 1 at once + 20/s for 0.5 s
        assert e.metrics.registry.get_sample_value("flowpipe_rdns_pending") == 30 - len(names)
        await trio.sleep(1.2)                           # the rest arrive in the background
        names = await e.lookup_many({ip(a) for a in addrs}, 0)
    assert len(names) == 30 and srv.total_queries == 30


async def test_pending_queue_bound(srv: DnsTestServer) -> None:
    addrs = [ip(f"10.0.4.{i}") for i in range(20)]
    e = enricher(srv, max_pending=4, concurrency=1)
    async with e.started():
        await e.lookup_many(set(addrs), 0.5)
        skipped = count(e, "skipped_pending_full")
        assert 15 <= skipped <= 16
        await e.lookup_many(set(addrs), 1.0)            # the skipped ones get their turn later
    assert count(e, "skipped_pending_full") < 2 * skipped
    assert count(e, "nxdomain") > 20 - skipped


async def test_lookups_are_cancelled_when_started_block_ends(srv: DnsTestServer) -> None:
    e = enricher(srv, timeout=5)
    srv.drop_all = True
    start = trio.current_time()
    assert await e.lookup_many({ip("10.0.5.1")}, 0.1) == {}
    assert trio.current_time() - start < 0.5
    assert e._inflight == {} and e.metrics.registry.get_sample_value("flowpipe_rdns_pending") == 0


# ---- the stage ---------------------------------------------------------------------------

def batch(*pairs: tuple[str, str]) -> FlushBatch:
    flows = [list(make_flow(src_ip=ip(s) if s else b"", dst_ip=ip(d) if d else b"")) for s, d in pairs]
    return FlushBatch(0.0, flows)


async def test_run_fills_hostnames_and_closes_downstream(srv: DnsTestServer) -> None:
    e = enricher(srv)
    in_send, in_recv = trio.open_memory_channel[FlushBatch](4)
    out_send, out_recv = trio.open_memory_channel[FlushBatch](4)
    async with trio.open_nursery() as n:
        n.start_soon(e.run, in_recv, out_send)
        await in_send.send(batch(("10.0.0.1", "fd00::1"), ("10.9.9.9", "192.0.2.10"), ("10.0.0.1", "")))
        got = await out_recv.receive()
        assert got.hostnames == {ip("10.0.0.1"): "db-1.example.internal", ip("fd00::1"): "v6.example.internal"}
        await in_send.aclose()
        with trio.fail_after(1):
            with pytest.raises(trio.EndOfChannel):
                await out_recv.receive()


async def test_disabled_passes_batches_through(srv: DnsTestServer) -> None:
    e = ReverseDnsEnricher(ReverseDnsConfig(enabled=False, nameservers=[srv.nameserver]), Metrics())
    in_send, in_recv = trio.open_memory_channel[FlushBatch](1)
    out_send, out_recv = trio.open_memory_channel[FlushBatch](1)
    async with trio.open_nursery() as n:
        n.start_soon(e.run, in_recv, out_send)
        await in_send.send(batch(("10.0.0.1", "10.0.0.2")))
        assert (await out_recv.receive()).hostnames == {}
        await in_send.aclose()
    assert srv.total_queries == 0


async def test_late_answer_serves_the_next_flush(srv: DnsTestServer) -> None:
    e = enricher(srv, max_wait=0.1)
    in_send, in_recv = trio.open_memory_channel[FlushBatch](1)
    out_send, out_recv = trio.open_memory_channel[FlushBatch](1)
    async with trio.open_nursery() as n:
        n.start_soon(e.run, in_recv, out_send)
        start = trio.current_time()
        await in_send.send(batch(("10.0.0.6", "10.0.0.1")))
        first = await out_recv.receive()
        assert trio.current_time() - start < 0.3
        assert first.hostnames == {ip("10.0.0.1"): "db-1.example.internal"}   # 10.0.0.6 answers in 0.4 s
        await trio.sleep(0.5)
        await in_send.send(batch(("10.0.0.6", "10.0.0.1")))
        second = await out_recv.receive()
        assert second.hostnames[ip("10.0.0.6")] == "slow.example.internal"
        await in_send.aclose()
    assert srv.query_count("10.0.0.6") == 1


@pytest.mark.slow
async def test_dead_server_delays_no_flush_beyond_the_bound(srv: DnsTestServer) -> None:
    srv.drop_all = True
    bound = 0.3
    e = enricher(srv, timeout=5.0, max_wait=bound)
    in_send, in_recv = trio.open_memory_channel[FlushBatch](0)
    out_send, out_recv = trio.open_memory_channel[FlushBatch](0)
    delays = []
    async with trio.open_nursery() as n:
        n.start_soon(e.run, in_recv, out_send)
        for i in range(3):
            start = trio.current_time()
            await in_send.send(batch(*[(f"10.1.{i}.{j}", f"fd00::{i}:{j}") for j in range(50)]))
            got = await out_recv.receive()
            delays.append(trio.current_time() - start)
            assert got.hostnames == {} and len(got.flows) == 50
        assert e.metrics.registry.get_sample_value("flowpipe_rdns_pending") == 300
        start = trio.current_time()
        await in_send.aclose()
    assert trio.current_time() - start < 0.2        # outstanding 5 s lookups are cancelled
    assert all(bound - 0.01 <= d < bound + 0.15 for d in delays), delays
    assert srv.total_queries >= 32                  # the workers were busy querying
