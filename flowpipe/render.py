"""Payload rendering: aggregated flows -> Datadog NetFlow flow objects (plain dicts).

See ``docs/payload.md``. Additional fields are a nested ``additional_fields`` object (the
contract's choice), present only when the flow has some.
"""
from __future__ import annotations

import socket
from functools import lru_cache
from typing import Any

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

# IANA keywords of the protocols consumers commonly name; any other number is rendered as digits.
PROTOCOLS = {0: "HOPOPT", 1: "ICMP", 2: "IGMP", 4: "IPv4", 6: "TCP", 8: "EGP", 17: "UDP", 41: "IPv6", 46: "RSVP",
             47: "GRE", 50: "ESP", 51: "AH", 58: "IPv6-ICMP", 88: "EIGRP", 89: "OSPFIGP", 103: "PIM", 112: "VRRP",
             115: "L2TP", 132: "SCTP"}
ETHER_TYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q", 0x8847: "MPLS",
               0x8848: "MPLS-multicast", 0x88A8: "802.1ad"}
U64_MAX = 2**64 - 1
TCP_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"),
                  (0x40, "ECE"), (0x80, "CWR"))


@lru_cache(maxsize=65536)
def ip_text(raw: bytes) -> str:
    """Raw 4/16-byte address -> text; IPv4-mapped IPv6 as dotted IPv4; "" when absent."""
    n = len(raw)
    if n == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if n == 16:
        if raw[:12] == b"\x00" * 10 + b"\xff\xff":
            return socket.inet_ntop(socket.AF_INET, raw[12:])
        return socket.inet_ntop(socket.AF_INET6, raw)
    return "" if n == 0 else "?" + raw.hex()


@lru_cache(maxsize=65536)
def mask_text(raw: bytes, bits: int) -> str:
    """The network prefix of ``raw`` with ``bits`` in CIDR form ("10.0.0.0/24", "0.0.0.0/0")."""
    width = len(raw) * 8
    if width not in (32, 128) or bits > width:
        return f"/{bits}"
    value = int.from_bytes(raw, "big") & (((1 << bits) - 1) << (width - bits))
    return f"{ip_text(value.to_bytes(width // 8, 'big'))}/{bits}"


@lru_cache(maxsize=4096)
def mac_text(value: int) -> str:
    h = f"{value & 0xFFFFFFFFFFFF:012x}"
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


@lru_cache(maxsize=256)
def tcp_flag_names(bits: int) -> list[str]:
    return [name for bit, name in TCP_FLAG_NAMES if bits & bit]


def port_text(port: int) -> str:
    return "*" if port < 0 else str(port)


def render(flow: list[Any], flush_ms: int, host: str, hostnames: dict[bytes, str],
           tags: dict[str, str] | None = None) -> dict[str, Any]:
    """One aggregated flow as a payload object."""
    src_ip, dst_ip = flow[SRC_IP], flow[DST_IP]
    src: dict[str, Any] = {"ip": ip_text(src_ip), "port": port_text(flow[SRC_PORT]), "mac": mac_text(flow[SRC_MAC]),
                           "mask": mask_text(src_ip, flow[SRC_MASK])}
    dst: dict[str, Any] = {"ip": ip_text(dst_ip), "port": port_text(flow[DST_PORT]), "mac": mac_text(flow[DST_MAC]),
                           "mask": mask_text(dst_ip, flow[DST_MASK])}
    if hostnames:
        name = hostnames.get(src_ip)
        if name:
            src["reverse_dns_hostname"] = name
        name = hostnames.get(dst_ip)
        if name:
            dst["reverse_dns_hostname"] = name
    proto, ether = flow[IP_PROTOCOL], flow[ETHER_TYPE]
    out: dict[str, Any] = {
        "flush_timestamp": flush_ms,
        "type": flow[TYPE],
        "sampling_rate": flow[SAMPLING_RATE],
        "direction": "egress" if flow[DIRECTION] == 1 else "ingress",
        "start": flow[START],
        "end": flow[END],
        "bytes": min(flow[BYTES], U64_MAX),      # sums of 64-bit counters saturate rather than
        "packets": min(flow[PACKETS], U64_MAX),  # overflow what a uint64 intake (and msgpack) holds
        "ether_type": ETHER_TYPES.get(ether) or str(ether),
        "ip_protocol": PROTOCOLS.get(proto) or str(proto),
        "device": {"namespace": flow[NAMESPACE]},
        "exporter": {"ip": flow[EXPORTER]},
        "source": src,
        "destination": dst,
        "ingress": {"interface": {"index": flow[IN_IF]}},
        "egress": {"interface": {"index": flow[OUT_IF]}},
        "host": host,
        "tcp_flags": list(tcp_flag_names(flow[TCP_FLAGS] & 0xFF)),
        "next_hop": {"ip": ip_text(flow[NEXT_HOP])},
    }
    if flow[EXTRAS]:
        out["additional_fields"] = {**tags, **flow[EXTRAS]} if tags else flow[EXTRAS]
    elif tags:
        out["additional_fields"] = dict(tags)
    return out


def render_batch(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Payload objects for a flushed batch; ``tags`` (the top-level [tags]) go into additional_fields."""
    flush_ms = int(batch.flush_time * 1000)
    hostnames = batch.hostnames
    return [render(f, flush_ms, host, hostnames, tags) for f in batch.flows]
