"""Parse a sampled packet header (sFlow raw header, or any captured frame prefix).

``parse(data, off, end, header_protocol)`` reads the bytes ``data[off:end]`` and returns a plain
tuple laid out as :class:`Header`. It never raises and never reads past ``end``: a header cut short
gives what it holds (addresses without ports, MACs without addresses...). Layers handled:
Ethernet, 802.1Q/802.1ad/QinQ tags, MPLS label stacks, PPPoE sessions, IPv4 (with options),
IPv6 (walking extension headers), TCP, UDP; ICMP/ICMPv6 and other protocols give ports 0.

Conventions, matching what tshark shows for the outermost packet:

- ``ether_type`` is the type of the layer-3 header found after VLAN tags/MPLS/PPPoE (0x0800,
  0x86DD), else the last Ethernet type read; 0 when there is no Ethernet header and no IP.
- ``ip_protocol`` is the IPv4 protocol or the IPv6 *fixed header's* next header (0 for a packet
  that starts with hop-by-hop options); ports and TCP flags come from the transport header found
  after the extension headers.
- encapsulations carried over UDP (VXLAN, GRE-in-UDP...) are not opened: the outer packet counts.
- ports only for the first fragment (IPv4 fragment offset 0, IPv6 fragment header offset 0).
- ``problem`` is "" or a short reason when the header is malformed (not merely cut short):
  ``vlan_depth``, ``mpls_depth``, ``ipv6_ext_chain``, ``bad_ip_header``.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

ETHERNET, IPV4, IPV6, MPLS = 1, 11, 12, 13  # sFlow header_protocol values handled

MAX_VLAN_TAGS = 8
MAX_MPLS_LABELS = 16
MAX_IPV6_EXT = 16

_ETH = struct.Struct(">HIHIH")           # dst MAC hi/lo, src MAC hi/lo, ether type
_TAG = struct.Struct(">HH")              # TCI, next ether type (also: two ports)
_IPV4 = struct.Struct(">BBHHHBBH4s4s")   # ver/ihl, tos, length, id, frag, ttl, proto, csum, src, dst
_IPV6 = struct.Struct(">IHBB16s16s")     # ver/class/label, payload length, next, hops, src, dst
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
_IPV6_EXT = frozenset((0, 43, 44, 51, 60, 135, 139, 140))  # hop-by-hop, routing, fragment, AH, ...


class Header(NamedTuple):
    """Names for the tuple :func:`parse` returns (tests and tools; the hot path indexes)."""

    ether_type: int
    ip_protocol: int
    src_ip: bytes
    dst_ip: bytes
    src_port: int
    dst_port: int
    src_mac: int
    dst_mac: int
    tcp_flags: int
    tos: int
    vlan: int       # outermost VLAN id, 0 when untagged
    problem: str


EMPTY = (0, 0, b"", b"", 0, 0, 0, 0, 0, 0, 0, "")
PROBLEM = Header._fields.index("problem")  # (parse gives plain tuples laid out as Header)


def parse(data: bytes, off: int, end: int, header_protocol: int = ETHERNET) -> tuple:
    """The :class:`Header` tuple of the packet whose first bytes are ``data[off:end]``."""
    if end > len(data):
        end = len(data)
    if header_protocol == ETHERNET:
        return ethernet(data, off, end)
    if header_protocol == IPV4:
        return ipv4(data, off, end, 0, 0, 0)
    if header_protocol == IPV6:
        return ipv6(data, off, end, 0, 0, 0)
    if header_protocol == MPLS:
        return mpls(data, off, end, 0, 0, 0, 0x8847)
    return EMPTY


def ethernet(data: bytes, off: int, end: int) -> tuple:
    """An Ethernet II frame, its VLAN tags and what they carry."""
    if end - off < 14:
        return EMPTY
    dh, dl, sh, sl, et = _ETH.unpack_from(data, off)
    dmac = (dh << 32) | dl
    smac = (sh << 32) | sl
    off += 14
    vlan = 0
    if et in _VLAN_TYPES:
        tags = 0
        while et in _VLAN_TYPES:
            if tags == MAX_VLAN_TAGS:
                return (et, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "vlan_depth")
            if end - off < 4:
                return (et, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "")
            tci, et = _TAG.unpack_from(data, off)
            if not tags:
                vlan = tci & 0xFFF
            tags += 1
            off += 4
    if et == 0x0800:
        return ipv4(data, off, end, smac, dmac, vlan)
    if et == 0x86DD:
        return ipv6(data, off, end, smac, dmac, vlan)
    if et == 0x8847 or et == 0x8848:
        return mpls(data, off, end, smac, dmac, vlan, et)
    if et == 0x8864:
        return pppoe(data, off, end, smac, dmac, vlan)
    return (et, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "")


def mpls(data: bytes, off: int, end: int, smac: int, dmac: int, vlan: int, et: int) -> tuple:
    """An MPLS label stack, then IPv4/IPv6 told apart by the first nibble after it."""
    for _ in range(MAX_MPLS_LABELS):
        if end - off < 4:
            return (et, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "")
        entry = _U32.unpack_from(data, off)[0]
        off += 4
        if entry & 0x100:  # bottom of stack
            break
    else:
        return (et, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "mpls_depth")
    if off < end:
        nibble = data[off] >> 4
        if nibble == 4:
            return ipv4(data, off, end, smac, dmac, vlan)
        if nibble == 6:
            return ipv6(data, off, end, smac, dmac, vlan)
    return (et, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "")


def pppoe(data: bytes, off: int, end: int, smac: int, dmac: int, vlan: int) -> tuple:
    """A PPPoE session header and its PPP protocol (IPv4 0x0021, IPv6 0x0057)."""
    if end - off >= 8:
        ppp = _U16.unpack_from(data, off + 6)[0]
        if ppp == 0x0021:
            return ipv4(data, off + 8, end, smac, dmac, vlan)
        if ppp == 0x0057:
            return ipv6(data, off + 8, end, smac, dmac, vlan)
    return (0x8864, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "")


def ipv4(data: bytes, off: int, end: int, smac: int, dmac: int, vlan: int) -> tuple:
    """An IPv4 header (options skipped by IHL) and the transport header after it."""
    if end - off < 20:
        return (0x0800, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "")
    vihl, tos, _len, _id, frag, _ttl, proto, _sum, src, dst = _IPV4.unpack_from(data, off)
    ihl = (vihl & 15) << 2
    if vihl >> 4 != 4 or ihl < 20:
        return (0x0800, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "bad_ip_header")
    off += ihl
    if frag & 0x1FFF or end - off < 4 or (proto != 6 and proto != 17):
        return (0x0800, proto, src, dst, 0, 0, smac, dmac, 0, tos, vlan, "")
    sport, dport = _TAG.unpack_from(data, off)
    flags = data[off + 13] if proto == 6 and end - off >= 14 else 0
    return (0x0800, proto, src, dst, sport, dport, smac, dmac, flags, tos, vlan, "")


def ipv6(data: bytes, off: int, end: int, smac: int, dmac: int, vlan: int) -> tuple:
    """An IPv6 header, its extension headers (bounded) and the transport header after them."""
    if end - off < 40:
        return (0x86DD, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "")
    vcl, _plen, first, _hops, src, dst = _IPV6.unpack_from(data, off)
    if vcl >> 28 != 6:
        return (0x86DD, 0, b"", b"", 0, 0, smac, dmac, 0, 0, vlan, "bad_ip_header")
    tos = (vcl >> 20) & 0xFF
    off += 40
    nxt = first
    if nxt in _IPV6_EXT:
        for _ in range(MAX_IPV6_EXT):
            if end - off < 8:
                return (0x86DD, first, src, dst, 0, 0, smac, dmac, 0, tos, vlan, "")
            if nxt == 44:  # fragment header: a later fragment carries no transport header
                if _U16.unpack_from(data, off + 2)[0] & 0xFFF8:
                    return (0x86DD, first, src, dst, 0, 0, smac, dmac, 0, tos, vlan, "")
                size = 8
            elif nxt == 51:  # AH counts 4-byte words, minus 2
                size = (data[off + 1] + 2) << 2
            else:
                size = (data[off + 1] + 1) << 3
            nxt = data[off]
            off += size
            if nxt not in _IPV6_EXT:
                break
        else:
            return (0x86DD, first, src, dst, 0, 0, smac, dmac, 0, tos, vlan, "ipv6_ext_chain")
    if (nxt != 6 and nxt != 17) or end - off < 4:
        return (0x86DD, first, src, dst, 0, 0, smac, dmac, 0, tos, vlan, "")
    sport, dport = _TAG.unpack_from(data, off)
    flags = data[off + 13] if nxt == 6 and end - off >= 14 else 0
    return (0x86DD, first, src, dst, sport, dport, smac, dmac, flags, tos, vlan, "")
