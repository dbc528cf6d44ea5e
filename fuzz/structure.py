"""Structure-aware mutation: where the lengths, counts and ids of a datagram are, and lies to tell there.

``locate(data)`` walks a (valid or already mutated) NetFlow v5 / v9 / IPFIX / sFlow v5 datagram
as far as it makes sense and returns the structural fields it passed: ``Spot(offset, width,
kind)`` with kind ``version``, ``count``, ``length``, ``id`` or ``value``. ``mutate`` then rewrites
one of them (or truncates, flips a bit, duplicates a region) with a value chosen to break
assumptions: 0, 1, off by one or four, the maximum, half of it, the value of another spot.
The walkers never raise, whatever the bytes; they only read inside ``data``.
"""
from __future__ import annotations

import random
import struct
from typing import NamedTuple

MAX_SPOTS = 4096


class Spot(NamedTuple):
    offset: int
    width: int  # bytes: 1, 2 or 4
    kind: str


def _u16(d: bytes, o: int) -> int:
    return (d[o] << 8) | d[o + 1]


def _u32(d: bytes, o: int) -> int:
    return int.from_bytes(d[o:o + 4], "big")


def locate(data: bytes) -> list[Spot]:
    """The structural fields of ``data``, by the version in its first bytes ([] when unknown)."""
    if len(data) >= 4 and data[:4] == b"\x00\x00\x00\x05":
        return locate_sflow(data)
    if len(data) >= 2:
        v = _u16(data, 0)
        if v == 5:
            return locate_v5(data)
        if v in (9, 10):
            return locate_template(data)
    return []


def locate_v5(d: bytes) -> list[Spot]:
    out = [Spot(0, 2, "version")]
    if len(d) >= 24:
        out += [Spot(2, 2, "count"), Spot(4, 4, "value"), Spot(16, 4, "value"), Spot(20, 1, "id"),
                Spot(21, 1, "id"), Spot(22, 2, "value")]
    off = 24
    while off + 48 <= len(d) and len(out) < MAX_SPOTS:  # record: first/last switched, ports, masks
        out += [Spot(off + 24, 4, "value"), Spot(off + 28, 4, "value"), Spot(off + 38, 1, "id")]
        off += 48
    return out


def locate_template(d: bytes) -> list[Spot]:
    """NetFlow v9 or IPFIX: header count/length, every set id/length, template records and fields."""
    n = len(d)
    v9 = _u16(d, 0) == 9
    out = [Spot(0, 2, "version")]
    if v9:
        if n < 20:
            return out
        out += [Spot(2, 2, "count"), Spot(4, 4, "value"), Spot(16, 4, "id")]
        off, end = 20, n
    else:
        if n < 16:
            return out
        out += [Spot(2, 2, "length"), Spot(12, 4, "id")]
        off, end = 16, min(n, _u16(d, 2))
    while off + 4 <= end and len(out) < MAX_SPOTS:
        sid, ln = _u16(d, off), _u16(d, off + 2)
        out += [Spot(off, 2, "id"), Spot(off + 2, 2, "length")]
        if ln < 4:
            break
        body, bend = off + 4, min(off + ln, end)
        if (v9 and sid == 0) or (not v9 and sid in (2, 3)):
            _template_records(d, body, bend, v9, not v9 and sid == 3, out)
        elif v9 and sid == 1:
            _v9_options(d, body, bend, out)
        off += ln
    return out


def _template_records(d: bytes, p: int, end: int, v9: bool, options: bool, out: list[Spot]) -> None:
    while p + 4 <= end and len(out) < MAX_SPOTS:
        count = _u16(d, p + 2)
        out += [Spot(p, 2, "id"), Spot(p + 2, 2, "count")]
        p += 4
        if options:
            if p + 2 > end:
                return
            out.append(Spot(p, 2, "count"))
            p += 2
        for _ in range(count):
            if p + 4 > end or len(out) >= MAX_SPOTS:
                return
            eid = _u16(d, p)
            out += [Spot(p, 2, "id"), Spot(p + 2, 2, "length")]
            p += 4
            if not v9 and eid & 0x8000:
                if p + 4 > end:
                    return
                out.append(Spot(p, 4, "id"))
                p += 4


def _v9_options(d: bytes, p: int, end: int, out: list[Spot]) -> None:
    while p + 6 <= end and len(out) < MAX_SPOTS:
        scope, opt = _u16(d, p + 2), _u16(d, p + 4)
        out += [Spot(p, 2, "id"), Spot(p + 2, 2, "length"), Spot(p + 4, 2, "length")]
        p += 6
        for _ in range((scope + opt) // 4):
            if p + 4 > end or len(out) >= MAX_SPOTS:
                return
            out += [Spot(p, 2, "id"), Spot(p + 2, 2, "length")]
            p += 4


def locate_sflow(d: bytes) -> list[Spot]:
    """sFlow v5: agent type, sample count, each sample's format/length, record counts and lengths."""
    n = len(d)
    out = [Spot(0, 4, "version")]
    if n < 8:
        return out
    out.append(Spot(4, 4, "id"))
    alen = 16 if _u32(d, 4) == 2 else 4
    off = 8 + alen + 12
    if off + 4 > n:
        return out
    out.append(Spot(off, 4, "count"))
    nsamples = _u32(d, off)
    off += 4
    for _ in range(min(nsamples, MAX_SPOTS)):
        if off + 8 > n or len(out) >= MAX_SPOTS:
            break
        fmt, ln = _u32(d, off), _u32(d, off + 4)
        out += [Spot(off, 4, "id"), Spot(off + 4, 4, "length")]
        body, end = off + 8, min(off + 8 + ln, n)
        head = {1: 28, 3: 40, 2: 8, 4: 12}.get(fmt)
        if head is not None and body + head + 4 <= end:
            out.append(Spot(body + head, 4, "count"))
            if fmt in (1, 3):  # sampling rate, input/output interface words
                out += [Spot(body + (8 if fmt == 1 else 12), 4, "value"),
                        Spot(body + head - 8, 4, "value"), Spot(body + head - 4, 4, "value")]
            _sflow_records(d, body + head + 4, end, _u32(d, body + head), fmt in (1, 3), out)
        off = body + ln
    return out


def _sflow_records(d: bytes, p: int, end: int, nrec: int, flow: bool, out: list[Spot]) -> None:
    for _ in range(min(nrec, MAX_SPOTS)):
        if p + 8 > end or len(out) >= MAX_SPOTS:
            return
        fmt, ln = _u32(d, p), _u32(d, p + 4)
        out += [Spot(p, 4, "id"), Spot(p + 4, 4, "length")]
        body = p + 8
        if flow and fmt == 1 and body + 16 <= end:  # raw header: protocol, frame, stripped, header length
            out += [Spot(body, 4, "id"), Spot(body + 4, 4, "value"), Spot(body + 12, 4, "length")]
            _packet(d, body + 16, min(end, body + 16 + _u32(d, body + 12)), out)
        elif flow and fmt in (1002, 1003) and body + 4 <= end:
            out.append(Spot(body, 4, "id"))  # address type
            if fmt == 1003:
                alen = 16 if _u32(d, body) == 2 else 4
                q = body + 4 + alen + 12
                if q + 4 <= end:
                    out.append(Spot(q, 4, "count"))  # AS path segments
                    if q + 12 <= end:
                        out.append(Spot(q + 8, 4, "count"))  # ASes in the first segment
        p = body + ln


def _packet(d: bytes, p: int, end: int, out: list[Spot]) -> None:
    """Ethernet type, VLAN tag types, IP version/IHL, protocol, IPv6 next header (the header parser)."""
    if p + 14 > end:
        return
    out.append(Spot(p + 12, 2, "id"))
    q = p + 14
    for _ in range(3):
        if q + 4 <= end and _u16(d, q - 2) in (0x8100, 0x88A8, 0x9100):
            out.append(Spot(q + 2, 2, "id"))
            q += 4
    if q + 20 <= end:
        out += [Spot(q, 1, "length"), Spot(q + 6, 1, "id"), Spot(q + 9, 1, "id")]


# ---- mutation ---------------------------------------------------------------------------------------

def _lie(rng: random.Random, spot: Spot, orig: int, others: list[int], room: int) -> int:
    top = (1 << (8 * spot.width)) - 1
    choices = [0, 1, 2, 3, 4, 5, 7, 8, top, top - 1, top >> 1, (top >> 1) + 1, orig + 1, orig - 1, orig + 4,
               orig - 4, orig * 2, orig + room, orig + room + 1, rng.randrange(top + 1)]
    if spot.kind == "id":
        choices += [255, 256, 257, 0x8000 | (orig & 0x7FFF), 2, 3, 9, 10, 1001, 1002, 1003, 0x0800, 0x86DD,
                    0x8100, 0x8847, 0x8864, 6, 17, 44, 43, 60]
    if others:
        choices.append(rng.choice(others))
    return rng.choice(choices) & top


def mutate(data: bytes, rng: random.Random, rounds: int = 1) -> bytes:
    """``data`` with ``rounds`` structure-aware lies (plus the occasional byte-level damage)."""
    buf = bytearray(data)
    for _ in range(rounds):
        op = rng.randrange(12)
        spots = locate(bytes(buf)) if op < 8 else []
        if spots:
            s = rng.choice(spots)
            if s.offset + s.width > len(buf):
                continue
            orig = int.from_bytes(buf[s.offset:s.offset + s.width], "big")
            same = [int.from_bytes(buf[o.offset:o.offset + o.width], "big") for o in spots
                    if o.kind == s.kind and o.offset + o.width <= len(buf)]
            val = _lie(rng, s, orig, same, len(buf) - s.offset)
            buf[s.offset:s.offset + s.width] = val.to_bytes(s.width, "big")
        elif op == 8 and buf:
            del buf[rng.randrange(len(buf) + 1):]  # truncate
        elif op == 9 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)  # bit flip
        elif op == 10 and buf:
            a = rng.randrange(len(buf))
            b = min(len(buf), a + rng.randrange(1, 64))
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = buf[a:b] * rng.choice((1, 2, 16))  # duplicate a region
        elif op == 11:
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = rng.randbytes(rng.choice((1, 2, 4, 8, 48)))  # insert junk
    return bytes(buf)


def fix_lengths(data: bytes) -> bytes:
    """Make the header's own length/count agree with the bytes (so mutations get past the header)."""
    if len(data) >= 16 and _u16(data, 0) == 10:
        return data[:2] + struct.pack("!H", min(len(data), 0xFFFF)) + data[4:]
    return data
