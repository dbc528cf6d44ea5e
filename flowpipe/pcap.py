"""Read the UDP datagrams out of a pcap or pcapng file (no dependencies, no I/O beyond the file).

Used by ``flowpipe decode`` and by the tests that replay real captures. Handles Ethernet (with
802.1Q/QinQ tags), Linux cooked (SLL, SLL2), raw IP and BSD loopback link types, IPv4 (with
fragment reassembly) and IPv6 (with extension headers).
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from typing import NamedTuple


class UdpDatagram(NamedTuple):
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


class PcapError(Exception):
    """The file is not a pcap/pcapng file or is cut short."""


def _frames(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    """(time, link type, frame bytes) for every packet."""
    if len(data) < 24 and data[:4] != b"\x0a\x0d\x0d\x0a":
        raise PcapError("file too short for a pcap header")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xD4, 0x4D) else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack_from(e + "I", data, 20)[0] & 0xFFFF
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, _ = struct.unpack_from(e + "IIII", data, off)
            off += 16
            if off + incl > len(data):
                break  # truncated last packet
            yield sec + frac / (1e9 if nano else 1e6), linktype, data[off:off + incl]
            off += incl
        return
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng(data)
        return
    raise PcapError("not a pcap or pcapng file")


def _pcapng(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    off, e = 0, "<"
    links: list[tuple[int, float]] = []  # (link type, seconds per tick)
    while off + 12 <= len(data):
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        btype, blen = struct.unpack_from(e + "II", data, off)
        if blen < 12 or off + blen > len(data):
            break
        body = data[off + 8:off + blen - 4]
        if btype == 1 and len(body) >= 8:  # interface description
            lt = struct.unpack_from(e + "H", body, 0)[0]
            tick = 1e-6
            o = 8
            while o + 4 <= len(body):
                code, ln = struct.unpack_from(e + "HH", body, o)
                if code == 0:
                    break
                if code == 9 and ln >= 1:  # if_tsresol
                    v = body[o + 4]
                    tick = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
                o += 4 + ((ln + 3) & ~3)
            links.append((lt, tick))
        elif btype == 6 and len(body) >= 20:  # enhanced packet
            iface, hi, lo, caplen = struct.unpack_from(e + "IIII", body, 0)
            if iface < len(links):
                lt, tick = links[iface]
                yield ((hi << 32) | lo) * tick, lt, body[20:20 + caplen]
        elif btype == 3 and len(body) >= 4 and links:  # simple packet
            yield 0.0, links[0][0], body[4:]
        off += blen


def _network(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype, L3 bytes) of a frame, or None for what is not IP."""
    if linktype == 1:  # Ethernet
        if len(frame) < 14:
            return None
        et, o = struct.unpack_from("!H", frame, 12)[0], 14
        depth = 0
        while et in (0x8100, 0x88A8, 0x9100) and len(frame) >= o + 4 and depth < 8:
            et, o, depth = struct.unpack_from("!H", frame, o + 2)[0], o + 4, depth + 1
        return et, frame[o:]
    if linktype == 113 and len(frame) >= 16:  # Linux SLL
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if linktype == 276 and len(frame) >= 20:  # Linux SLL2
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if linktype in (101, 12, 14, 228, 229) and frame:  # raw IP
        return (0x86DD if frame[0] >> 4 == 6 else 0x0800), frame
    if linktype in (0, 108) and len(frame) >= 4:  # BSD null/loop: AF in host order
        af = struct.unpack_from("<I", frame, 0)[0]
        if af > 0xFFFF:
            af = struct.unpack_from(">I", frame, 0)[0]
        return (0x0800 if af == 2 else 0x86DD), frame[4:]
    return None


def udp_datagrams(path: str) -> list[UdpDatagram]:
    """Every UDP datagram in the capture at ``path``, in file order (IPv4 fragments reassembled)."""
    with open(path, "rb") as f:
        data = f.read()
    out: list[UdpDatagram] = []
    frags: dict[tuple, dict[int, bytes]] = {}
    frag_last: dict[tuple, int] = {}
    for t, lt, frame in _frames(data):
        net = _network(lt, frame)
        if net is None:
            continue
        et, l3 = net
        if et == 0x0800 and len(l3) >= 20 and l3[0] >> 4 == 4:
            ihl = (l3[0] & 0x0F) * 4
            total = struct.unpack_from("!H", l3, 2)[0]
            ident, fl = struct.unpack_from("!HH", l3, 4)
            proto = l3[9]
            src, dst = str(ipaddress.IPv4Address(l3[12:16])), str(ipaddress.IPv4Address(l3[16:20]))
            body = l3[ihl:total] if total >= ihl else l3[ihl:]
            more, offset = fl & 0x2000, (fl & 0x1FFF) * 8
            if more or offset:
                key = (src, dst, ident, proto)
                frags.setdefault(key, {})[offset] = body
                if not more:
                    frag_last[key] = offset + len(body)
                if key not in frag_last:
                    continue
                parts, pos, whole = frags[key], 0, bytearray()
                while pos in parts:
                    whole += parts[pos]
                    pos += len(parts[pos])
                if pos != frag_last[key]:
                    continue
                del frags[key], frag_last[key]
                body = bytes(whole)
        elif et == 0x86DD and len(l3) >= 40:
            proto, src = l3[6], str(ipaddress.IPv6Address(l3[8:24]))
            dst = str(ipaddress.IPv6Address(l3[24:40]))
            body, hops = l3[40:40 + struct.unpack_from("!H", l3, 4)[0]], 0
            while proto in (0, 43, 60) and len(body) >= 8 and hops < 16:
                proto, body, hops = body[0], body[(body[1] + 1) * 8:], hops + 1
            if proto == 44:
                continue  # IPv6 fragments: not seen in flow exports over loopback; skipped
        else:
            continue
        if proto != 17 or len(body) < 8:
            continue
        sport, dport, ulen = struct.unpack_from("!HHH", body, 0)
        payload = body[8:ulen] if 8 <= ulen <= len(body) else body[8:]
        out.append(UdpDatagram(t, src, sport, dst, dport, payload))
    return out
