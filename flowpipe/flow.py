"""The one flow record every decoder produces and every later stage consumes.

A flow is a plain ``tuple`` laid out as :class:`Flow` (hot paths build plain tuples in this
order; tests and tools may use ``Flow(...)`` or ``Flow._make(t)`` for names). Conventions:

- addresses (``src_ip``, ``dst_ip``, ``next_hop``) are raw bytes, 4 (IPv4) or 16 (IPv6) long,
  or ``b""`` when the exporter did not send one;
- ``exporter`` is the exporter's address as text (UDP source, or the sFlow agent address);
- ports are ints; ``ROLLED_UP`` (-1) marks a port collapsed by port rollup (payload ``"*"``);
- MACs are 48-bit ints (0 when unknown), masks are prefix lengths;
- ``direction`` is 0 (ingress) or 1 (egress); ``ether_type``/``ip_protocol`` are numbers;
- ``start``/``end`` are Unix seconds (int); ``bytes``/``packets`` as the exporter counted them;
- ``extras`` is ``None`` or a dict of additional fields (str -> int | str).
"""
from __future__ import annotations

import builtins
import operator
from typing import Any, NamedTuple

ROLLED_UP = -1


class Flow(NamedTuple):
    type: str
    exporter: str
    namespace: str
    sampling_rate: int
    direction: int
    start: int
    end: int
    bytes: int
    packets: int
    ether_type: int
    ip_protocol: int
    src_ip: builtins.bytes
    dst_ip: builtins.bytes
    src_port: int
    dst_port: int
    src_mac: int
    dst_mac: int
    src_mask: int
    dst_mask: int
    in_if: int
    out_if: int
    tcp_flags: int
    next_hop: builtins.bytes
    tos: int
    extras: dict[str, Any] | None


# Field positions, for code that indexes plain tuples on the hot path.
(TYPE, EXPORTER, NAMESPACE, SAMPLING_RATE, DIRECTION, START, END, BYTES, PACKETS, ETHER_TYPE,
 IP_PROTOCOL, SRC_IP, DST_IP, SRC_PORT, DST_PORT, SRC_MAC, DST_MAC, SRC_MASK, DST_MASK, IN_IF,
 OUT_IF, TCP_FLAGS, NEXT_HOP, TOS, EXTRAS) = range(len(Flow._fields))

FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(Flow._fields)}

# What aggregation keeps from the first flow of a window: the fields neither in the context key
# nor merged (as a tuple in this order).
kept_fields = operator.itemgetter(TYPE, SAMPLING_RATE, DIRECTION, ETHER_TYPE, SRC_MAC, DST_MAC, SRC_MASK, DST_MASK,
                                  OUT_IF, NEXT_HOP)

ETHER_IPV4 = 0x0800
ETHER_IPV6 = 0x86DD


def make_flow(**fields: Any) -> tuple:
    """A flow tuple from keyword fields, every field not given being zero/empty (tests, tools)."""
    base: dict[str, Any] = {
        "type": "netflow5", "exporter": "", "namespace": "default", "sampling_rate": 0,
        "direction": 0, "start": 0, "end": 0, "bytes": 0, "packets": 0, "ether_type": ETHER_IPV4,
        "ip_protocol": 0, "src_ip": b"", "dst_ip": b"", "src_port": 0, "dst_port": 0,
        "src_mac": 0, "dst_mac": 0, "src_mask": 0, "dst_mask": 0, "in_if": 0, "out_if": 0,
        "tcp_flags": 0, "next_hop": b"", "tos": 0, "extras": None,
    }
    unknown = set(fields) - set(base)
    if unknown:
        raise TypeError(f"unknown flow fields: {sorted(unknown)}")
    base.update(fields)
    return tuple(Flow(**base))


class FlushBatch:
    """What one flush tick emits: aggregated flows and, once enriched, their endpoints' names.

    ``flows`` are lists laid out as :class:`Flow`; ``hostnames`` maps raw address bytes to a
    reverse-DNS name (filled by the enrichment stage; empty when it is off).
    """

    __slots__ = ("flush_time", "flows", "hostnames")

    def __init__(self, flush_time: float, flows: list[list[Any]], hostnames: dict[bytes, str] | None = None):
        self.flush_time = flush_time
        self.flows = flows
        self.hostnames = hostnames if hostnames is not None else {}
