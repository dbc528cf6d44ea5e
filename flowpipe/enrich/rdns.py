"""Reverse-DNS (PTR) enrichment of flow endpoints, with dnspython's async resolver on trio."""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import trio

from flowpipe.enrich.cache import TtlLruCache
from flowpipe.enrich.config import ReverseDnsConfig
from flowpipe.enrich.ratelimit import TokenBucket
from flowpipe.flow import DST_IP, SRC_IP, FlushBatch
from flowpipe.metrics import Metrics
from flowpipe.sections import split_host_port

log = logging.getLogger("flowpipe.enrich.rdns")

# Values of flowpipe_rdns_lookups_total{result}; see ReverseDnsEnricher.
QUERY_RESULTS = ("success", "nxdomain", "no_answer", "servfail", "refused", "timeout", "error")
REQUEST_RESULTS = ("cache_hit", "cache_negative_hit", "coalesced", "skipped_pending_full")
RESULTS = QUERY_RESULTS + REQUEST_RESULTS

_MIN_CACHE_TTL = 1.0  # a record TTL of 0 must not turn every flush into a query
_V4_MAPPED = bytes(10) + b"\xff\xff"
_V4_ZERO = bytes(4)
_V6_ZERO = bytes(16)


def qualifies(addr: bytes, private_only: bool) -> bool:
    """Whether an endpoint address (raw 4/16 bytes) is to be looked up.

    With ``private_only``: RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 (100.64/10),
    IPv4 link-local 169.254/16, RFC 4193 (fc00::/7) and IPv6 link-local fe80::/10; IPv4-mapped
    IPv6 addresses count as their IPv4 address. Otherwise every address but the unspecified one.
    Empty and wrong-length values never qualify.
    """
    n = len(addr)
    if n == 16 and addr[:12] == _V4_MAPPED:
        addr, n = addr[12:], 4
    if n == 4:
        if addr == _V4_ZERO:
            return False
        if not private_only:
            return True
        a, b = addr[0], addr[1]
        return (a == 10 or (a == 172 and 16 <= b < 32) or (a == 192 and b == 168)
                or (a == 100 and 64 <= b < 128) or (a == 169 and b == 254))
    if n == 16:
        if addr == _V6_ZERO:
            return False
        if not private_only:
            return True
        return (addr[0] & 0xFE) == 0xFC or (addr[0] == 0xFE and (addr[1] & 0xC0) == 0x80)
    return False


def address_text(addr: bytes) -> str:
    """Raw 4/16 address bytes as text (an IPv4-mapped IPv6 address as its IPv4 address)."""
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def make_resolver(cfg: ReverseDnsConfig) -> dns.asyncresolver.Resolver:
    """A dnspython async resolver on ``cfg.nameservers`` ("host:port"), or on /etc/resolv.conf's."""
    if cfg.nameservers:
        res = dns.asyncresolver.Resolver(configure=False)
        servers: list[str | dns.nameserver.Nameserver] = []
        for ns in cfg.nameservers:
            host, port = split_host_port(ns, 53)
            servers.append(dns.nameserver.Do53Nameserver(host, port))
        res.nameservers = servers
    else:
        try:
            res = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration as e:
            log.warning("rdns_no_system_resolver", extra={"fields": {"reason": str(e)}})
            res = dns.asyncresolver.Resolver(configure=False)
            res.nameservers = []
    res.cache = None  # our own cache decides what is asked again
    res.timeout = cfg.timeout
    res.lifetime = cfg.timeout * max(1, len(res.nameservers))
    return res


class _Lookup:
    """One address being looked up: waiters wait on ``done``; ``name`` is "" without a name."""

    __slots__ = ("done", "name")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.name = ""


class ReverseDnsEnricher:
    """Fills :attr:`FlushBatch.hostnames` with PTR names of flow endpoints, never holding a flush long.

    Addresses that qualify (see :func:`qualifies`) are answered from a TTL+LRU cache; misses go to
    a queue of at most ``max_pending`` addresses that ``concurrency`` workers drain at no more than
    ``rate_limit`` queries a second (the rate limiter paces, it never drops). A flush waits at most
    ``max_wait`` for its misses; answers arriving later fill the cache for the next flush. One query
    per address is outstanding at a time; further requests join it.

    Names are cached for min(``cache_ttl``, record TTL); NXDOMAIN and empty answers for
    min(``negative_cache_ttl``, the zone's negative TTL); failed lookups for ``failure_cache_ttl``;
    never for less than a second. An address with several PTR records gets the smallest name.

    ``flowpipe_rdns_lookups_total{result}`` counts each query sent by its outcome --
    ``success``, ``nxdomain``, ``no_answer`` (NOERROR without PTR), ``servfail``, ``refused``,
    ``timeout``, ``error`` (anything else: unreachable server, malformed answer, ...) -- and each
    address a flush asked for without sending a query: ``cache_hit`` (a name), ``cache_negative_hit``
    (cached as nameless or failed), ``coalesced`` (joined a lookup already queued or running) and
    ``skipped_pending_full`` (queue full: not looked up; a later flush asks again).
    """

    def __init__(self, cfg: ReverseDnsConfig, metrics: Metrics, *,
                 resolver: dns.asyncresolver.Resolver | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.cache: TtlLruCache[bytes, str] = TtlLruCache(cfg.cache_size, clock=lambda: trio.current_time())
        self.resolver = resolver if resolver is not None else make_resolver(cfg)
        self._lifetime = float(self.resolver.lifetime)
        self._backend = dns.asyncbackend.get_backend("trio")
        self._limiter = TokenBucket(cfg.rate_limit)
        self._inflight: dict[bytes, _Lookup] = {}
        self._queue: trio.MemorySendChannel[bytes] | None = None
        self._counters = {r: metrics.rdns_lookups.labels(r) for r in RESULTS}

    # ---- background lookups ------------------------------------------------------------
    @asynccontextmanager
    async def started(self) -> AsyncIterator[None]:
        """Run the lookup workers for the duration of the block; on leaving, cancel what is left."""
        if self._queue is not None:
            raise RuntimeError("ReverseDnsEnricher already started")
        send, receive = trio.open_memory_channel[bytes](self.cfg.max_pending)
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.cfg.concurrency):
                    nursery.start_soon(self._worker, receive)
                self._queue = send
                try:
                    yield
                finally:
                    self._queue = None
                    nursery.cancel_scope.cancel()
        finally:
            send.close()
            receive.close()
            for lk in self._inflight.values():
                lk.done.set()
            self._inflight.clear()
            self.metrics.rdns_pending.set(0)

    async def _worker(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        async for addr in receive:
            await self._limiter.acquire()
            name, ttl, result = await self._query(addr)
            self._counters[result].inc()
            self.cache.put(addr, name, max(ttl, _MIN_CACHE_TTL))
            self.metrics.rdns_cache_size.set(len(self.cache))
            lk = self._inflight.pop(addr, None)
            self.metrics.rdns_pending.set(len(self._inflight))
            if lk is not None:
                lk.name = name
                lk.done.set()

    async def _query(self, addr: bytes) -> tuple[str, float, str]:
        """(name or "", seconds to cache it, result label) for one address."""
        cfg = self.cfg
        try:
            qname = dns.reversename.from_address(address_text(addr))
            with trio.fail_after(self._lifetime + 0.5):  # backstop; dnspython's lifetime comes first
                answer = await self.resolver.resolve(qname, dns.rdatatype.PTR, raise_on_no_answer=False,
                                                     lifetime=self._lifetime, backend=self._backend)
        except dns.resolver.NXDOMAIN as e:
            return "", _negative_ttl(e.responses().values(), cfg.negative_cache_ttl), "nxdomain"
        except (dns.exception.Timeout, trio.TooSlowError):
            return "", cfg.failure_cache_ttl, "timeout"
        except dns.resolver.NoNameservers as e:
            return "", cfg.failure_cache_ttl, _failure_kind(e)
        except Exception as e:  # a lookup never takes the stage down
            log.debug("rdns_lookup_error", extra={"fields": {"address": addr.hex(), "error": repr(e)}})
            return "", cfg.failure_cache_ttl, "error"
        rrset = answer.rrset
        if rrset is None or len(rrset) == 0:
            return "", _negative_ttl([answer.response], cfg.negative_cache_ttl), "no_answer"
        # several PTRs: the smallest name, so that server-side rotation does not flip names
        name = min(str(rd.target.to_text(omit_final_dot=True)) for rd in rrset)
        if not name or name == "@":
            return "", cfg.negative_cache_ttl, "no_answer"
        return name, min(cfg.cache_ttl, float(rrset.ttl)), "success"

    # ---- per flush -----------------------------------------------------------------------
    async def lookup_many(self, addrs: set[bytes], max_wait: float) -> dict[bytes, str]:
        """Names of the qualifying ``addrs`` known from the cache or answered within ``max_wait`` s.

        Addresses without a name (yet) are left out. Lookups still running at the deadline go on
        filling the cache while the workers run (inside :meth:`run` or :meth:`started`); called
        outside both, workers are started for this call only and what is unfinished is dropped.
        """
        if self._queue is None:
            async with self.started():
                return await self._lookup_many(addrs, max_wait)
        return await self._lookup_many(addrs, max_wait)

    async def _lookup_many(self, addrs: Iterable[bytes], max_wait: float) -> dict[bytes, str]:
        assert self._queue is not None
        private_only = self.cfg.private_only
        get = self.cache.get
        inflight = self._inflight
        queue = self._queue
        names: dict[bytes, str] = {}
        waits: list[tuple[bytes, _Lookup]] = []
        hit = neg = joined = full = 0
        for addr in addrs:
            if not qualifies(addr, private_only):
                continue
            name = get(addr)
            if name is not None:
                if name:
                    names[addr] = name
                    hit += 1
                else:
                    neg += 1
                continue
            lk = inflight.get(addr)
            if lk is not None:
                joined += 1
            else:
                try:
                    queue.send_nowait(addr)
                except (trio.WouldBlock, trio.ClosedResourceError):
                    full += 1
                    continue
                lk = inflight[addr] = _Lookup()
            waits.append((addr, lk))
        for label, n in (("cache_hit", hit), ("cache_negative_hit", neg), ("coalesced", joined),
                         ("skipped_pending_full", full)):
            if n:
                self._counters[label].inc(n)
        self.metrics.rdns_pending.set(len(inflight))
        self.metrics.rdns_cache_size.set(len(self.cache))
        if not waits:
            await trio.lowlevel.checkpoint()
            return names
        started = trio.current_time()
        with trio.move_on_after(max_wait):
            for _, lk in waits:
                await lk.done.wait()
        self.metrics.rdns_wait.observe(trio.current_time() - started)
        for addr, lk in waits:
            if lk.name:
                names[addr] = lk.name
        return names

    async def run(self, receive: trio.MemoryReceiveChannel[FlushBatch],
                  send: trio.MemorySendChannel[FlushBatch]) -> None:
        """Enrich each batch from ``receive`` and pass it on to ``send``, in order.

        Returns when ``receive`` is closed (closing ``send`` and cancelling outstanding lookups)
        or when ``send``'s receiver is gone. With ``enabled`` false, batches pass through as they are.
        """
        async with receive, send, self.started():
            async for batch in receive:
                if self.cfg.enabled and len(batch):
                    addrs = set(batch.columns.column(SRC_IP))
                    addrs.update(batch.columns.column(DST_IP))
                    batch.hostnames.update(await self.lookup_many(addrs, self.cfg.max_wait))
                try:
                    await send.send(batch)
                except trio.BrokenResourceError:
                    log.warning("rdns_downstream_closed", extra={"fields": {}})
                    return


def _negative_ttl(responses: Iterable[Any], ceiling: float) -> float:
    """min(ceiling, the SOA's negative TTL: min(SOA record TTL, SOA minimum)) over ``responses``."""
    ttl = ceiling
    for resp in responses:
        for rrset in getattr(resp, "authority", ()):
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                ttl = min(ttl, float(rrset.ttl), float(next(iter(rrset)).minimum))
    return ttl


def _failure_kind(e: dns.resolver.NoNameservers) -> str:
    """servfail / refused when some server answered so, else error (unreachable, malformed...)."""
    rcodes = set()
    for err in e.kwargs.get("errors", ()):
        resp = err[4] if len(err) > 4 else None
        if resp is not None:
            rcodes.add(resp.rcode())
    if dns.rcode.SERVFAIL in rcodes:
        return "servfail"
    if dns.rcode.REFUSED in rcodes:
        return "refused"
    return "error"
