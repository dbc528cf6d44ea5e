"""Payload objects: aggregated flows -> Datadog NetFlow flow objects (plain dicts).

See ``docs/payload.md``. Additional fields are a nested ``additional_fields`` object (the
contract's choice), present only when the flow has some.

Rendered objects share sub-objects with one another, also across calls: ``device``,
``exporter``, ``ingress``/``egress``, ``next_hop`` and ``tcp_flags`` come from bounded caches, a
tags-only ``additional_fields`` is shared within a call, and a flow's extras dict is used as it
is. They are only ever serialized: never mutate a rendered object.
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from flowpipe.cache import bounded_put
from flowpipe.flow import (
    BYTES,
    DIRECTION,
    DST_IP,
    DST_MAC,
    DST_MASK,
    DST_PORT,
    END,
    ETHER_TYPE,
    EXPORTER,
    EXTRAS,
    IN_IF,
    IP_PROTOCOL,
    NAMESPACE,
    NEXT_HOP,
    OUT_IF,
    PACKETS,
    SAMPLING_RATE,
    SRC_IP,
    SRC_MAC,
    SRC_MASK,
    SRC_PORT,
    START,
    TCP_FLAGS,
    TYPE,
    FlushBatch,
)
from flowpipe.protocols import PROTOCOL_KEYWORDS

# IANA keywords of every assigned protocol number the Agent names; any other number is rendered as digits.
PROTOCOLS = PROTOCOL_KEYWORDS
ETHER_TYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q", 0x8847: "MPLS",
               0x8848: "MPLS-multicast", 0x88A8: "802.1ad"}
U64_MAX = 2**64 - 1
TCP_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"),
                  (0x40, "ECE"), (0x80, "CWR"))

_AF_INET, _AF_INET6, _ntop = socket.AF_INET, socket.AF_INET6, socket.inet_ntop
_V4_MASKS = tuple(((1 << bits) - 1) << (32 - bits) for bits in range(33))


def ip_text(raw: bytes) -> str:
    """Raw 4/16-byte address -> text; IPv4-mapped IPv6 as dotted IPv4; "" when absent."""
    n = len(raw)
    if n == 4:
        return _ntop(_AF_INET, raw)
    if n == 16:
        if raw[:12] == b"\x00" * 10 + b"\xff\xff":
            return _ntop(_AF_INET, raw[12:])
        return _ntop(_AF_INET6, raw)
    return "" if n == 0 else "?" + raw.hex()


def mask_text(raw: bytes, bits: int) -> str:
    """The network prefix of ``raw`` with ``bits`` in CIDR form ("10.0.0.0/24", "0.0.0.0/0")."""
    width = len(raw) * 8
    if width not in (32, 128) or bits > width:
        return f"/{bits}"
    value = int.from_bytes(raw, "big") & (((1 << bits) - 1) << (width - bits))
    return f"{ip_text(value.to_bytes(width // 8, 'big'))}/{bits}"


def mac_text(value: int) -> str:
    """A 48-bit MAC as colon-separated hex ("00:11:22:33:44:aa")."""
    h = f"{value & 0xFFFFFFFFFFFF:012x}"
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


_FLAG_LISTS = tuple([name for bit, name in TCP_FLAG_NAMES if bits & bit] for bits in range(256))


def tcp_flag_names(bits: int) -> list[str]:
    """Names of the flags set in the low 8 bits of ``bits`` (a shared list: do not mutate)."""
    return _FLAG_LISTS[bits & 0xFF]


_OCTETS = tuple(str(i) for i in range(256))
# Per prefix length, the mask of each of the four octets.
_OCTET_MASKS = tuple(tuple((m >> shift) & 0xFF for shift in (24, 16, 8, 0)) for m in _V4_MASKS)


def _address(raw: bytes, bits: int) -> tuple[str, int, str]:
    """(ip_text(raw), bits, mask_text(raw, bits)); IPv4 from a table of octet strings (half the time
    of ``inet_ntop``: on real traffic most addresses are new to the cache)."""
    if len(raw) == 4 and 0 <= bits <= 32:
        t = _OCTETS
        a, b, c, d = raw
        p, q, r, s = _OCTET_MASKS[bits]
        return f"{t[a]}.{t[b]}.{t[c]}.{t[d]}", bits, f"{t[a & p]}.{t[b & q]}.{t[c & r]}.{t[d & s]}/{bits}"
    return ip_text(raw), bits, mask_text(raw, bits)


# Bounded caches of rendered pieces keyed by the flow fields they are made of (flowpipe.cache:
# a hit is one dict lookup, a miss goes through bounded_put). Dict values are shared by every flow
# with those fields.
ADDRESS_CACHE_LIMIT = 65536  # addresses: as many as the lru_caches this replaces held
CACHE_LIMIT = 4096           # MACs, ether types, namespaces, exporters, interfaces, next hops
_PROTO_TEXT = {n: PROTOCOLS.get(n) or str(n) for n in range(256)}
_ADDRESSES: dict[bytes, tuple[str, int, str]] = {}   # raw -> (text, mask bits, mask text)
_MACS: dict[int, str] = {}
_ETHERS: dict[int, str] = {}
_NAMESPACES: dict[str, dict[str, str]] = {}
_EXPORTERS: dict[str, dict[str, str]] = {}
_INTERFACES: dict[int, dict[str, dict[str, int]]] = {}
_NEXT_HOPS: dict[bytes, dict[str, str]] = {}
_CACHES: tuple[dict[Any, Any], ...] = (_ADDRESSES, _MACS, _ETHERS, _NAMESPACES, _EXPORTERS, _INTERFACES, _NEXT_HOPS)


def clear_caches() -> None:
    """Empty the payload objects' caches (benchmarks, tests)."""
    for cache in _CACHES:
        cache.clear()


def render(flow: list[Any], flush_ms: int, host: str, hostnames: dict[bytes, str],
           tags: dict[str, str] | None = None) -> dict[str, Any]:
    """One aggregated flow as a payload object."""
    return _render_flows([flow], flush_ms, host, hostnames, tags)[0]


def render_batch(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Payload objects for a flushed batch; ``tags`` (the top-level [tags]) go into additional_fields."""
    return _render_flows(batch.flows, int(batch.flush_time * 1000), host, batch.hostnames, tags)


def _endpoint(raw: bytes, bits: int, mac: int, port: int,
              name_of: Callable[[bytes], str | None] | None) -> dict[str, Any]:
    """A flow's ``source`` or ``destination`` object (address and network texts, MAC text cached)."""
    a = _ADDRESSES.get(raw)
    if a is None or a[1] != bits:
        a = bounded_put(_ADDRESSES, ADDRESS_CACHE_LIMIT, raw, _address(raw, bits))
    mac_str = _MACS.get(mac) or bounded_put(_MACS, CACHE_LIMIT, mac, mac_text(mac))
    end = {"ip": a[0], "port": "*" if port < 0 else str(port), "mac": mac_str, "mask": a[2]}
    if name_of is not None and (name := name_of(raw)):
        end["reverse_dns_hostname"] = name
    return end


def _interface(index: int) -> dict[str, dict[str, int]]:
    """``ingress`` / ``egress`` of interface ``index``: a new entry of the interfaces cache."""
    return bounded_put(_INTERFACES, CACHE_LIMIT, index, {"interface": {"index": index}})


def _render_flows(flows: list[list[Any]], flush_ms: int, host: str, hostnames: dict[bytes, str],
                  tags: dict[str, str] | None) -> list[dict[str, Any]]:
    # One loop, the shared sub-objects' cache hits inlined: this runs for every flow the collector emits.
    # (Source and destination share _endpoint: ~0.15 µs a flow more than two inlined copies, ~5%.)
    name_of = hostnames.get if hostnames else None
    u64, limit, endpoint, interface = U64_MAX, CACHE_LIMIT, _endpoint, _interface
    flag_lists, proto_text = _FLAG_LISTS, _PROTO_TEXT
    ethers, namespaces, exporters, interfaces, next_hops = _ETHERS, _NAMESPACES, _EXPORTERS, _INTERFACES, _NEXT_HOPS
    tags_only = dict(tags) if tags else None
    out: list[dict[str, Any]] = []
    append = out.append
    for flow in flows:
        src = endpoint(flow[SRC_IP], flow[SRC_MASK], flow[SRC_MAC], flow[SRC_PORT], name_of)
        dst = endpoint(flow[DST_IP], flow[DST_MASK], flow[DST_MAC], flow[DST_PORT], name_of)
        # shared sub-objects (every cached value is truthy: a hit is the dict.get alone)
        ether = flow[ETHER_TYPE]
        ether_str = ethers.get(ether) or bounded_put(ethers, limit, ether, ETHER_TYPES.get(ether) or str(ether))
        proto = flow[IP_PROTOCOL]
        proto_str = proto_text.get(proto) or PROTOCOLS.get(proto) or str(proto)
        ns = flow[NAMESPACE]
        device = namespaces.get(ns) or bounded_put(namespaces, limit, ns, {"namespace": ns})
        exp = flow[EXPORTER]
        exporter = exporters.get(exp) or bounded_put(exporters, limit, exp, {"ip": exp})
        ingress = interfaces.get(flow[IN_IF]) or interface(flow[IN_IF])
        egress = interfaces.get(flow[OUT_IF]) or interface(flow[OUT_IF])
        raw = flow[NEXT_HOP]
        next_hop = next_hops.get(raw) or bounded_put(next_hops, limit, raw, {"ip": ip_text(raw)})
        nbytes, npackets = flow[BYTES], flow[PACKETS]
        o: dict[str, Any] = {
            "flush_timestamp": flush_ms,
            "type": flow[TYPE],
            "sampling_rate": flow[SAMPLING_RATE],
            "direction": "egress" if flow[DIRECTION] == 1 else "ingress",
            "start": flow[START],
            "end": flow[END],
            "bytes": u64 if nbytes > u64 else nbytes,        # sums of 64-bit counters saturate rather than
            "packets": u64 if npackets > u64 else npackets,  # overflow what a uint64 intake (and msgpack) holds
            "ether_type": ether_str,
            "ip_protocol": proto_str,
            "device": device,
            "exporter": exporter,
            "source": src,
            "destination": dst,
            "ingress": ingress,
            "egress": egress,
            "host": host,
            "tcp_flags": flag_lists[flow[TCP_FLAGS] & 0xFF],
            "next_hop": next_hop,
        }
        extras = flow[EXTRAS]
        if extras:
            o["additional_fields"] = {**tags, **extras} if tags else extras
        elif tags_only is not None:
            o["additional_fields"] = tags_only
        append(o)
    return out
