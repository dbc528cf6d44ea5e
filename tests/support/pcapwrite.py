"""A tiny pcap writer: wraps UDP payloads in Ethernet/IPv4|IPv6/UDP frames so tshark can read them."""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from pathlib import Path


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(payload: bytes, src: str, sport: int, dst: str, dport: int) -> bytes:
    """One Ethernet frame carrying ``payload`` in UDP from src:sport to dst:dport (checksums valid)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    udp_len = 8 + len(payload)
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack(">BBH", 0, 17, udp_len)
    else:
        pseudo = s.packed + d.packed + struct.pack(">IxxxB", udp_len, 17)
    udp = struct.pack(">HHHH", sport, dport, udp_len, 0) + payload
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack(">H", csum) + udp[8:]
    if s.version == 4:
        head = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, s.packed, d.packed)
        ip = head[:10] + struct.pack(">H", _checksum(head)) + head[12:]
        ether_type = 0x0800
    else:
        ip = struct.pack(">IHBB", 6 << 28, udp_len, 17, 64) + s.packed + d.packed
        ether_type = 0x86DD
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", ether_type)
    return eth + ip + udp


def write_pcap(path: str | Path, payloads: Iterable[bytes], *, src: str = "192.0.2.1", sport: int = 50000,
               dst: str = "192.0.2.2", dport: int = 2055, start: float = 1_700_000_000.0) -> Path:
    """Write ``payloads`` as consecutive UDP datagrams (1 ms apart) to a pcap file; returns the path."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, payload in enumerate(payloads):
        frame = udp_frame(payload, src, sport, dst, dport)
        t = start + i / 1000
        out.append(struct.pack("<IIII", int(t), int(round(t % 1 * 1e6)), len(frame), len(frame)) + frame)
    p = Path(path)
    p.write_bytes(b"".join(out))
    return p
