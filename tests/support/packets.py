"""Packet headers (Ethernet, VLAN, MPLS, IPv4/IPv6, TCP/UDP/ICMP) built with struct, for the sampled
header parser tests and the sFlow tests."""
from __future__ import annotations

import struct

SMAC, DMAC = 0x0200_0000_0001, 0x0200_0000_0002
A4, B4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
A6, B6 = bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "02")


def eth(payload: bytes, ether_type: int = 0x0800, vlans: tuple[int, ...] = (), smac: int = SMAC,
        dmac: int = DMAC, tpid: int = 0x8100) -> bytes:
    tags = b""
    types = [tpid] * len(vlans) + [ether_type]
    for i, v in enumerate(vlans):
        tags += struct.pack(">HH", v, types[i + 1])
    return dmac.to_bytes(6, "big") + smac.to_bytes(6, "big") + struct.pack(">H", types[0]) + tags + payload


def ipv4(payload: bytes, proto: int = 6, src: bytes = A4, dst: bytes = B4, tos: int = 0, frag: int = 0,
         options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    return struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, tos, 20 + len(options) + len(payload), 1, frag, 64,
                       proto, 0, src, dst) + options + payload


def ipv6(payload: bytes, nxt: int = 6, src: bytes = A6, dst: bytes = B6, tclass: int = 0) -> bytes:
    return struct.pack(">IHBB16s16s", (6 << 28) | (tclass << 20), len(payload), nxt, 64, src, dst) + payload


def ext(nxt: int, size: int = 8) -> bytes:
    """An IPv6 hop-by-hop/destination/routing extension header of ``size`` bytes."""
    return bytes([nxt, size // 8 - 1]) + bytes(size - 2)


def tcp(sport: int = 1234, dport: int = 443, flags: int = 0x18) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 2, 0x50, flags, 1024, 0, 0)


def udp(sport: int = 5353, dport: int = 53, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(itype: int = 8, code: int = 0) -> bytes:
    return struct.pack(">BBHI", itype, code, 0, 0)


def mpls(payload: bytes, labels: int = 2) -> bytes:
    stack = b"".join(struct.pack(">I", (100 + i) << 12 | (0x100 if i == labels - 1 else 0) | 64)
                     for i in range(labels))
    return stack + payload
