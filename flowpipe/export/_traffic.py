"""A synthetic traffic model: realistic-looking flows for ``flowpipe generate`` and load tests.

Clients in a private network talk to internal and external servers over a weighted mix of
services; each connection yields a request and a response flow with ephemeral client ports,
heavy-tailed (Pareto) packet counts, per-service packet sizes, plausible TCP flags, interfaces,
next hops, AS numbers and masks. Seeded: the same seed gives the same flows.
"""
from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from itertools import chain
from typing import NamedTuple

# name, protocol, server port, weight, request packet size, response packet size (bytes); a data table,
# one service a row: its rows share a shape because they are data, not repeated logic.
SERVICES = [
    ("https", 6, 443, 34, 180, 1150),
    ("http", 6, 80, 7, 320, 980),
    ("quic", 17, 443, 8, 260, 1200),
    ("dns", 17, 53, 18, 72, 160),
    ("ntp", 17, 123, 3, 76, 76),
    ("ssh", 6, 22, 3, 110, 190),
    ("postgres", 6, 5432, 6, 160, 640),
    ("mysql", 6, 3306, 3, 150, 560),
    ("redis", 6, 6379, 5, 80, 120),
    ("smtp", 6, 25, 2, 420, 90),
    ("kafka", 6, 9092, 3, 900, 180),
    ("icmp", 1, 0, 3, 84, 84),
    ("icmpv6", 58, 0, 3, 104, 104),  # ICMP echo in IPv4 only, ICMPv6 echo in IPv6 only
]
EPHEMERAL = (32768, 60999)
ACCESS_IFS = (1, 2, 3, 4)
UPLINK_IFS = (10, 11)
EXTERNAL_AS = tuple(range(64496, 64512))  # documentation AS numbers
MTU_FRAME = 1518


class Batch(NamedTuple):
    """Records from the model, split by address family (tuples laid out as DefaultRecord)."""

    ipv4: list[tuple]
    ipv6: list[tuple]


class _Host(NamedTuple):
    addr: bytes
    mask: int
    asn: int
    external: bool


def _hosts(rng: random.Random, v6: bool, n_clients: int, n_servers: int) -> tuple[list[_Host], list[_Host]]:
    if v6:
        clients = [_Host(ipaddress.IPv6Address(0x20010DB8000100000000000000000000 + rng.randrange(1, 1 << 16)).packed,
                         64, 0, False) for _ in range(n_clients)]
        servers = [_Host(ipaddress.IPv6Address((0x20010DB8000200000000000000000000 if i % 3 else
                                                0x20010DB8FF0000000000000000000000) + i + 1).packed,
                         64 if i % 3 else 48, 0 if i % 3 else rng.choice(EXTERNAL_AS), not i % 3)
                   for i in range(n_servers)]
        return clients, servers
    clients = [_Host(bytes((10, 1, rng.randrange(0, 8), rng.randrange(1, 255))), 24, 0, False)
               for _ in range(n_clients)]
    servers = []
    for i in range(n_servers):
        if i % 3:
            servers.append(_Host(bytes((10, 2, i // 250, i % 250 + 1)), 24, 0, False))
        else:
            net = rng.choice(((198, 51, 100), (203, 0, 113)))
            servers.append(_Host(bytes((*net, rng.randrange(1, 255))), rng.choice((16, 20, 24)),
                                 rng.choice(EXTERNAL_AS), True))
    return clients, servers


class TrafficModel:
    """Synthetic flows (``flows``) or sampled packets (``samples``) for an exporter.

    ``ipv6_share`` is the fraction of IPv6 connections (0 for NetFlow v5, which cannot carry them).
    Times are the exporter's sysUptime in ms: give ``uptime_ms`` "now" and flows end up to a
    second before it, having started a heavy-tailed duration earlier (never before 0).

    With ``pool=N`` the first N records are drawn fresh and later ones replay them in turn with
    their times moved to "now" (N distinct flows, several times faster than drawing each).
    """

    #: The service mix drawn from: (name, protocol, server port, weight, request size, response size).
    SERVICES = SERVICES
    #: The client (ephemeral) port range, inclusive.
    EPHEMERAL = EPHEMERAL

    def __init__(self, seed: int | None = None, *, ipv6_share: float = 0.0, clients: int = 250,
                 servers: int = 60, pool: int = 0) -> None:
        self.rng = rng = random.Random(seed)
        self.ipv6_share = ipv6_share
        self.pool = pool
        self._pools: dict[str, list[tuple]] = {"flows": [], "samples": []}
        self._cursor = {"flows": 0, "samples": 0}
        self._hosts = {False: _hosts(rng, False, clients, servers), True: _hosts(rng, True, clients, servers)}
        self._services = {v6: [s for s in SERVICES if s[1] != (1 if v6 else 58)] for v6 in (False, True)}
        self._weights = {v6: [s[3] for s in self._services[v6]] for v6 in (False, True)}
        self._next_hop = {False: (bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2))),
                          True: (ipaddress.IPv6Address("2001:db8::1").packed,
                                 ipaddress.IPv6Address("2001:db8::2").packed)}

    def _connection(self) -> tuple[bool, _Host, _Host, tuple, int]:
        rng = self.rng
        v6 = rng.random() < self.ipv6_share
        clients, servers = self._hosts[v6]
        service = rng.choices(self._services[v6], self._weights[v6])[0]
        return v6, rng.choice(clients), rng.choice(servers), service, rng.randint(*EPHEMERAL)

    def flows(self, n: int, uptime_ms: int) -> Batch:
        """``n`` flow records: connections as request/response pairs."""
        return self._draw("flows", self._fresh_flows, n, uptime_ms)

    def samples(self, n: int, uptime_ms: int) -> Batch:
        """``n`` sampled packets (packets 1, bytes = frame length incl. FCS), for sFlow."""
        return self._draw("samples", self._fresh_samples, n, uptime_ms)

    def _draw(self, kind: str, fresh: Callable[[int, int], Batch], n: int, uptime_ms: int) -> Batch:
        pool = self._pools[kind]
        if len(pool) >= self.pool:
            return fresh(n, uptime_ms) if not self.pool else self._replay(kind, n, uptime_ms)
        new = fresh(min(n, self.pool - len(pool)), uptime_ms)
        # Kept as (is IPv6, fields before first, ms before now of first/last, fields after last).
        pool += [(len(r[0]) == 16, r[:7], uptime_ms - r[7], uptime_ms - r[8], r[9:]) for r in chain(*new)]
        rest = n - len(new.ipv4) - len(new.ipv6)
        if rest:
            more = self._replay(kind, rest, uptime_ms)
            new.ipv4.extend(more.ipv4)
            new.ipv6.extend(more.ipv6)
        return new

    def _replay(self, kind: str, n: int, uptime_ms: int) -> Batch:
        pool, start = self._pools[kind], self._cursor[kind]
        out = Batch([], [])
        v4, v6 = out.ipv4.append, out.ipv6.append
        for i in range(start, start + n):
            is_v6, head, a, b, tail = pool[i % len(pool)]
            (v6 if is_v6 else v4)(head + (max(0, uptime_ms - a), max(0, uptime_ms - b)) + tail)
        self._cursor[kind] = (start + n) % len(pool)
        return out

    def _fresh_flows(self, n: int, uptime_ms: int) -> Batch:
        rng = self.rng
        out = Batch([], [])
        while len(out.ipv4) + len(out.ipv6) < n:
            v6, client, server, (_, proto, port, _, req_size, resp_size), cport = self._connection()
            target = out.ipv6 if v6 else out.ipv4
            nh_out, nh_in = self._next_hop[v6]
            access, uplink = rng.choice(ACCESS_IFS), rng.choice(UPLINK_IFS)
            req_pkts = min(int(rng.paretovariate(1.2)), 200_000)
            resp_pkts = max(1, int(req_pkts * rng.uniform(0.6, 1.6))) if proto == 6 else req_pkts
            duration = self._duration(proto, req_pkts)
            last = max(0, uptime_ms - rng.randrange(0, 1000))
            first = max(0, last - duration)
            flags = self._flags(proto, req_pkts)
            tos = 0x28 if rng.random() < 0.05 else (0xB8 if port == 123 else 0)
            icmp = proto in (1, 58)
            sport, dport = (0, (128 if proto == 58 else 8) << 8) if icmp else (cport, port)
            target.append((client.addr, server.addr, nh_out, access, uplink, req_pkts,
                           self._size(req_pkts, req_size), first, last, sport, dport, flags, proto, tos,
                           client.asn, server.asn, client.mask, server.mask))
            if len(out.ipv4) + len(out.ipv6) >= n:
                break
            rsport, rdport = (0, (129 if proto == 58 else 0) << 8) if icmp else (port, cport)
            target.append((server.addr, client.addr, nh_in, uplink, access, resp_pkts,
                           self._size(resp_pkts, resp_size), min(last, first + rng.randrange(5)), last, rsport, rdport,
                           flags | 0x12 if flags & 0x02 else flags, proto, tos,
                           server.asn, client.asn, server.mask, client.mask))
        return out

    def _fresh_samples(self, n: int, uptime_ms: int) -> Batch:
        rng = self.rng
        out = Batch([], [])
        for _ in range(n):
            v6, client, server, (_, proto, port, _, req_size, resp_size), cport = self._connection()
            nh_out, nh_in = self._next_hop[v6]
            access, uplink = rng.choice(ACCESS_IFS), rng.choice(UPLINK_IFS)
            response = rng.random() < 0.55
            size = resp_size if response else req_size
            if proto == 6 and rng.random() < 0.4:
                size = 66  # bare ACKs
            low = 90 if v6 else 64
            frame = max(low, min(MTU_FRAME, int(rng.gauss(size, size * 0.15)) + 18))
            flags = rng.choices((0x10, 0x18, 0x02, 0x12, 0x11, 0x04), (50, 30, 6, 5, 6, 3))[0] if proto == 6 else 0
            icmp = proto in (1, 58)
            if icmp:
                ports = (0, ((129 if proto == 58 else 0) if response else (128 if proto == 58 else 8)) << 8)
            else:
                ports = (port, cport) if response else (cport, port)
            a, b = (server, client) if response else (client, server)
            rec = (a.addr, b.addr, nh_in if response else nh_out, uplink if response else access,
                   access if response else uplink, 1, frame, uptime_ms, uptime_ms, *ports, flags, proto, 0,
                   a.asn, b.asn, a.mask, b.mask)
            (out.ipv6 if v6 else out.ipv4).append(rec)
        return out

    def _duration(self, proto: int, packets: int) -> int:
        rng = self.rng
        if packets == 1:
            return 0
        if proto == 17 or proto in (1, 58):
            return min(int(rng.expovariate(1 / 40) * packets), 120_000)
        return min(int(rng.expovariate(1 / 3000) + packets * rng.uniform(1, 20)), 120_000)

    def _flags(self, proto: int, packets: int) -> int:
        if proto != 6:
            return 0
        if packets == 1:
            return 0x02  # a lone SYN (scan, unanswered)
        r = self.rng.random()
        if r < 0.7:
            return 0x1B  # FIN PSH SYN ACK: a whole short session
        if r < 0.9:
            return 0x18  # PSH ACK: a long-lived session's middle
        return 0x16  # RST: reset

    def _size(self, packets: int, mean: int) -> int:
        return max(packets * 40, int(packets * mean * self.rng.uniform(0.7, 1.3)))
