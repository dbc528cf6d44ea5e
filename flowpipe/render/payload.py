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
from collections.abc import Callable, Sequence
from typing import Any

from flowpipe.cache import bounded_put
from flowpipe.flow import (
    FlushBatch,
)
from flowpipe.protocols import PROTOCOL_KEYWORDS
from flowpipe.render.fields import FORMATS, PAYLOAD, Member

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


def _member_code(k: int, m: Member) -> tuple[list[str], str, list[str]]:
    """The generated loop's code for one payload member: statements before the object, its entry in
    the object's literal ("" for none), statements after it."""
    name, fields = m.name, m.fields
    got = f"flow[{fields[0]}]" if fields else ""
    v = f"v{k}"
    fmt = m.format
    if fmt == "flush":
        return [], f"{name!r}: flush_ms", []
    if fmt == "host":
        return [], f"{name!r}: host", []
    if fmt in ("text", "int"):
        return [], f"{name!r}: {got}", []
    if fmt == "direction":
        return [], f"{name!r}: 'egress' if {got} == 1 else 'ingress'", []
    if fmt == "counter":  # sums of 64-bit counters saturate rather than overflow what a uint64 intake holds
        return [f"{v} = {got}"], f"{name!r}: u64 if {v} > u64 else {v}", []
    if fmt == "ether":
        return [f"{v} = {got}", f"{v}s = ethers.get({v}) or bounded_put(ethers, limit, {v}, ETHER_TYPES.get({v}) or "
                f"str({v}))"], f"{name!r}: {v}s", []
    if fmt == "protocol":
        return [f"{v} = {got}"], f"{name!r}: proto_text.get({v}) or PROTOCOLS.get({v}) or str({v})", []
    if fmt in ("device", "exporter"):  # {sub: value}, shared by every flow with that value
        cache, sub = ("namespaces" if fmt == "device" else "exporters"), FORMATS[fmt][0]
        return [f"{v} = {got}"], f"{name!r}: {cache}.get({v}) or bounded_put({cache}, limit, {v}, {{{sub!r}: {v}}})", []
    if fmt == "next_hop":
        return ([f"{v} = {got}"], f"{name!r}: next_hops.get({v}) or bounded_put(next_hops, limit, {v}, "
                f"{{{FORMATS[fmt][0]!r}: ip_text({v})}})", [])
    if fmt == "endpoint":  # (address, mask bits, MAC, port)
        return [], f"{name!r}: endpoint({', '.join(f'flow[{i}]' for i in fields)}, name_of)", []
    if fmt == "interface":
        return [], f"{name!r}: interfaces.get({got}) or interface({got})", []
    if fmt == "flags":
        return [], f"{name!r}: flag_lists[{got} & 0xFF]", []
    if fmt == "extras":  # present only when the flow has some, or there are tags
        return [], "", [f"{v} = {got}",
                        f"if {v}:",
                        f"    o[{name!r}] = {{**tags, **{v}}} if tags else {v}",
                        "elif tags_only is not None:",
                        f"    o[{name!r}] = tags_only"]
    raise ValueError(f"payload member {name}: unknown format {fmt}")


def compile_loop(layout: Sequence[Member] = PAYLOAD) -> tuple[Callable[..., list[dict[str, Any]]], str]:
    """The renderer's loop, generated from a payload layout (:data:`flowpipe.render.fields.PAYLOAD`;
    one dict literal per flow, the shared sub-objects' cache hits inlined: this runs for every flow
    the collector emits), and its source."""
    pre: list[str] = []
    items: list[str] = []
    post: list[str] = []
    for k, m in enumerate(layout):
        before, item, after = _member_code(k, m)
        pre += before
        post += after
        if item:
            items.append(item)
    body = ["for flow in flows:", *(f"    {line}" for line in pre),
            "    o = {" + ", ".join(items) + "}", *(f"    {line}" for line in post), "    append(o)"]
    src = ("def render_flows(flows, flush_ms, host, hostnames, tags):\n"
           "    name_of = hostnames.get if hostnames else None\n"
           "    u64, limit, endpoint, interface = U64_MAX, CACHE_LIMIT, _endpoint, _interface\n"
           "    flag_lists, proto_text = _FLAG_LISTS, _PROTO_TEXT\n"
           "    ethers, namespaces, exporters, interfaces, next_hops = _ETHERS, _NAMESPACES, _EXPORTERS, _INTERFACES, "
           "_NEXT_HOPS\n"
           "    tags_only = dict(tags) if tags else None\n"
           "    out = []\n"
           "    append = out.append\n"
           + "".join(f"    {line}\n" for line in body) + "    return out\n")
    ns: dict[str, Any] = {}
    exec(compile(src, "<flowpipe.render.payload loop>", "exec"), globals(), ns)  # noqa: S102 - ours, from PAYLOAD
    return ns["render_flows"], src


_render_flows, LOOP_SOURCE = compile_loop()
