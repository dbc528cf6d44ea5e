"""The default record, :class:`DefaultRecord` (NetFlow v5's record order), and its two templates."""
from __future__ import annotations

from typing import Any, NamedTuple

from flowpipe.export._template import Template


class DefaultRecord(NamedTuple):
    """A flow in NetFlow v5's record order: the default record type of :mod:`flowpipe.export`.

    Addresses are 4 bytes (16 with ``DEFAULT_TEMPLATE_V6``); text or ipaddress objects are accepted
    too, at some cost. ``first``/``last`` are the exporter's sysUptime in milliseconds when the
    flow's first/last packet was seen (``Exporter.uptime_ms(unix_time)`` converts).
    """

    src_addr: Any
    dst_addr: Any
    next_hop: Any
    in_if: int
    out_if: int
    packets: int
    bytes: int
    first: int
    last: int
    src_port: int
    dst_port: int
    tcp_flags: int
    protocol: int
    tos: int
    src_as: int
    dst_as: int
    src_mask: int
    dst_mask: int


#: NetFlow v5's record fields as a v9/IPFIX template (IPv4), in :class:`DefaultRecord` order, with v5's lengths.
DEFAULT_TEMPLATE = Template(
    [(8, 4), (12, 4), (15, 4), (10, 2), (14, 2), (2, 4), (1, 4), (22, 4), (21, 4), (7, 2), (11, 2),
     (6, 1), (4, 1), (5, 1), (16, 2), (17, 2), (9, 1), (13, 1)],
    template_id=256, names=DefaultRecord._fields)
#: The same for IPv6 flows: 16-byte addresses and next hop, IPv6 prefix lengths.
DEFAULT_TEMPLATE_V6 = Template(
    [(27, 16), (28, 16), (62, 16)] + [(f.id, f.length) for f in DEFAULT_TEMPLATE.fields[3:16]]
    + [(29, 1), (30, 1)], 257, DefaultRecord._fields)
