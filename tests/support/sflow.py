"""sFlow v5 datagrams, samples and records built with struct (the sFlow decoder and interface-counter
tests)."""
from __future__ import annotations

import struct

AGENT4 = bytes([192, 0, 2, 9])
AGENT6 = bytes.fromhex("20010db8000000000000000000000009")


def xdr(b: bytes) -> bytes:
    """Opaque data padded to 4 bytes."""
    return b + bytes(-len(b) % 4)


def record(fmt: int, body: bytes) -> bytes:
    return struct.pack(">II", fmt, len(body)) + body


def raw_header(frame: bytes, frame_len: int | None = None, proto: int = 1, stripped: int = 4,
               header_len: int | None = None) -> bytes:
    hl = len(frame) if header_len is None else header_len
    flen = len(frame) + stripped if frame_len is None else frame_len
    return record(1, struct.pack(">IIII", proto, flen, stripped, hl) + xdr(frame))


def address(raw: bytes) -> bytes:
    return struct.pack(">I", 1 if len(raw) == 4 else 2) + raw


def ext_router(next_hop: bytes, src_mask: int, dst_mask: int) -> bytes:
    return record(1002, address(next_hop) + struct.pack(">II", src_mask, dst_mask))


def ext_gateway(next_hop: bytes, own_as: int, src_as: int, path: list[list[int]]) -> bytes:
    body = address(next_hop) + struct.pack(">IIII", own_as, src_as, 0, len(path))
    for seg in path:
        body += struct.pack(">II", 2, len(seg)) + b"".join(struct.pack(">I", a) for a in seg)
    return record(1003, body + struct.pack(">II", 0, 100))


def ext_switch(vlan: int = 10) -> bytes:
    return record(1001, struct.pack(">IIII", vlan, 0, vlan, 0))


def flow_sample(records: list[bytes], rate: int = 512, in_if: int = 3, out_if: int = 4, out_fmt: int = 0,
                seq: int = 1) -> bytes:
    body = struct.pack(">IIIIIIII", seq, 3, rate, rate * seq, 0, in_if, (out_fmt << 30) | out_if, len(records))
    return struct.pack(">II", 1, len(body) + sum(map(len, records))) + body + b"".join(records)


def expanded_flow_sample(records: list[bytes], rate: int = 1000, in_if: int = 3, out_if: int = 4,
                         out_fmt: int = 0) -> bytes:
    body = struct.pack(">IIIIIIIIIII", 7, 0, in_if, rate, rate, 0, 0, in_if, out_fmt, out_if, len(records))
    return struct.pack(">II", 3, len(body) + sum(map(len, records))) + body + b"".join(records)


def generic_counters(if_index: int, in_octets: int = 1000, out_octets: int = 2000, status: int = 3,
                     speed: int = 10**9) -> bytes:
    return record(1, struct.pack(">IIQIIQIIIIIIQIIIIII", if_index, 6, speed, 1, status, in_octets, 10, 2, 1,
                                 5, 6, 0, out_octets, 20, 3, 2, 7, 8, 0))


def ethernet_counters(*values: int) -> bytes:
    return record(2, struct.pack(">13I", *(values or range(1, 14))))


def counter_sample(records: list[bytes], index: int = 3, expanded: bool = False) -> bytes:
    if expanded:
        body = struct.pack(">IIII", 9, 0, index, len(records))
        fmt = 4
    else:
        body = struct.pack(">III", 9, index, len(records))
        fmt = 2
    return struct.pack(">II", fmt, len(body) + sum(map(len, records))) + body + b"".join(records)


def datagram(samples: list[bytes], agent: bytes = AGENT4, sub_agent: int = 2, seq: int = 77,
             nsamples: int | None = None) -> bytes:
    n = len(samples) if nsamples is None else nsamples
    return (struct.pack(">II", 5, 1 if len(agent) == 4 else 2) + agent
            + struct.pack(">IIII", sub_agent, seq, 123456, n) + b"".join(samples))
