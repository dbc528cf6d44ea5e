"""Small independent parsers of what flowpipe.export sends (NetFlow v5/v9, IPFIX, sFlow), and the records
the export tests send."""
from __future__ import annotations

import ipaddress
import struct
from typing import Any

from flowpipe.export import DefaultRecord

A = ipaddress.IPv4Address("10.0.0.1").packed
B = ipaddress.IPv4Address("192.0.2.7").packed
NH = ipaddress.IPv4Address("10.0.0.254").packed
REC = DefaultRecord(A, B, NH, 3, 4, 10, 1500, 1000, 2000, 40000, 443, 0x1B, 6, 0x28, 64500, 64501, 24, 16)
V6A = ipaddress.IPv6Address("2001:db8::1").packed
V6B = ipaddress.IPv6Address("2001:db8:ff::2").packed
REC6 = DefaultRecord(V6A, V6B, bytes(16), *REC[3:16], 64, 48)


def parse_v5(d: bytes) -> dict[str, Any]:
    v, count, up, secs, nsecs, seq, etype, eid, sampling = struct.unpack_from(">HHIIIIBBH", d)
    recs = [struct.unpack_from(">4s4s4sHHIIIIHHxBBBHHBBxx", d, 24 + 48 * i) for i in range(count)]
    assert len(d) == 24 + 48 * count
    return {"version": v, "count": count, "uptime": up, "secs": secs, "nsecs": nsecs, "sequence": seq,
            "engine_type": etype, "engine_id": eid, "sampling": sampling, "records": recs}


ADDRESS_FIELDS = {8, 12, 15, 18, 27, 28, 62, 63, 225, 226}


def _fmt(fields: list[tuple[int, int]]) -> str:
    return ">" + "".join(f"{n}s" if fid in ADDRESS_FIELDS else {1: "B", 2: "H", 4: "I", 8: "Q"}.get(n, f"{n}s")
                         for fid, n in fields)


def parse_v9(d: bytes, templates: dict[int, list[tuple[int, int]]]) -> dict[str, Any]:
    """Header, template ids and data records (as tuples) of a v9 packet; learns templates."""
    v, count, up, secs, seq, sid = struct.unpack_from(">HHIIII", d)
    out: dict[str, Any] = {"version": v, "count": count, "uptime": up, "secs": secs, "sequence": seq,
                           "source_id": sid, "templates": [], "records": []}
    off, n = 20, 0
    while off < len(d):
        fsid, length = struct.unpack_from(">HH", d, off)
        assert length >= 4 and off + length <= len(d)
        body = d[off + 4:off + length]
        if fsid == 0:
            p = 0
            while p + 4 <= len(body):
                tid, fc = struct.unpack_from(">HH", body, p)
                fields = [struct.unpack_from(">HH", body, p + 4 + 4 * i) for i in range(fc)]
                templates[tid] = fields
                out["templates"].append(tid)
                p += 4 + 4 * fc
                n += 1
        else:
            fields = templates[fsid]
            rec_len = sum(n_ for _, n_ in fields)
            for i in range(len(body) // rec_len):
                out["records"].append(struct.unpack_from(_fmt(fields), body, i * rec_len))
                n += 1
            assert len(body) % rec_len < 4  # padding only
        off += length
    assert n == count
    return out


def parse_ipfix(d: bytes, templates: dict[int, list[tuple[int, int]]]) -> dict[str, Any]:
    """Header, template ids, options records and data records of an IPFIX message; learns templates."""
    v, length, etime, seq, od = struct.unpack_from(">HHIII", d)
    assert length == len(d)
    out: dict[str, Any] = {"version": v, "export_time": etime, "sequence": seq, "domain": od, "templates": [],
                           "records": [], "data_records": 0, "options": []}
    off = 16
    while off < len(d):
        sid, slen = struct.unpack_from(">HH", d, off)
        body = d[off + 4:off + slen]
        if sid in (2, 3):
            p = 0
            while p + 4 <= len(body):
                tid, fc = struct.unpack_from(">HH", body, p)
                p += 6 if sid == 3 else 4
                fields = []
                for _ in range(fc):
                    fid, flen = struct.unpack_from(">HH", body, p)
                    p += 8 if fid & 0x8000 else 4
                    fields.append((fid & 0x7FFF, flen))
                templates[tid] = fields
                out["templates"].append(tid)
        else:
            fields = templates[sid]
            rec_len = sum(n for _, n in fields)
            assert len(body) % rec_len == 0  # no padding from us
            for i in range(len(body) // rec_len):
                rec = struct.unpack_from(_fmt(fields), body, i * rec_len)
                (out["options"] if sid == 0xFFFF else out["records"]).append(rec)
                out["data_records"] += 1
        off += slen
    return out


def parse_sflow(d: bytes) -> dict[str, Any]:
    """Header and samples (flow samples with their records, counter samples) of an sFlow datagram."""
    v, atype = struct.unpack_from(">II", d)
    alen = 4 if atype == 1 else 16
    agent = d[8:8 + alen]
    sub, seq, up, n = struct.unpack_from(">IIII", d, 8 + alen)
    off = 24 + alen
    samples = []
    for _ in range(n):
        fmt, slen = struct.unpack_from(">II", d, off)
        body = d[off + 8:off + 8 + slen]
        if fmt == 1:
            sseq, source, rate, pool, drops, i_if, o_if, nrec = struct.unpack_from(">IIIIIIII", body)
            recs, p = {}, 32
            for _ in range(nrec):
                rfmt, rlen = struct.unpack_from(">II", body, p)
                recs[rfmt] = body[p + 8:p + 8 + rlen]
                p += 8 + rlen
            assert p == len(body)
            samples.append({"kind": "flow", "sequence": sseq, "source": source, "rate": rate, "pool": pool,
                            "drops": drops, "input": i_if, "output": o_if, "records": recs})
        else:
            sseq, source, nrec = struct.unpack_from(">III", body)
            samples.append({"kind": "counters", "sequence": sseq, "source": source, "body": body[12:]})
        off += 8 + slen
    assert off == len(d)
    return {"version": v, "agent": agent, "sub_agent": sub, "sequence": seq, "uptime": up, "samples": samples}


def raw_header(rec: bytes) -> tuple[int, int, int, bytes]:
    proto, frame, stripped, hlen = struct.unpack_from(">IIII", rec)
    assert len(rec) == 16 + hlen + (-hlen % 4)
    return proto, frame, stripped, rec[16:16 + hlen]
