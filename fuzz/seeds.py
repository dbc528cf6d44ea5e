"""Seed datagrams: made here with :mod:`flowpipe.export` encoders, plus the real captures read in
place from ``../shared/captures`` (``$FLOWPIPE_CAPTURES``) at run time -- never copied.

Template-based seeds (NetFlow v9, IPFIX) are *sequences* of datagrams from one exporter: the
template decoder keeps state, so what matters is the order (templates, data, data before its
template, options, withdrawals, redefinitions).
"""
from __future__ import annotations

import json
import os
import random
import struct
from collections.abc import Iterator
from pathlib import Path

from flowpipe.export import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATE_V6,
    DefaultRecord,
    InterfaceCounters,
    IpfixEncoder,
    Netflow9Encoder,
    SflowEncoder,
    Template,
    TrafficModel,
    encode_sflow,
    encode_v5,
    extended_gateway,
    extended_router,
    extended_switch,
    flow_sample,
    packet_header,
    raw_header_record,
    v9_data_flowset,
    v9_template_flowset,
)

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = Path(os.environ.get("FLOWPIPE_CAPTURES", ROOT.parent / "shared" / "captures"))
EXPORT_TIME = 1_700_000_000
UPTIME = 3_600_000

# A few templates beyond the default record: 8-byte counters and ms times, sampler ids, MACs,
# direction, one-field and one-byte records (the smallest a record can be).
EXTRA_TEMPLATES = [
    Template([(1, 8), (2, 8), (8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (152, 8), (153, 8), (48, 1),
              (61, 1), (56, 6), (80, 6), (10, 4), (14, 4)], template_id=300),
    Template([(4, 1)], template_id=301),
    Template([(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (85, 8), (86, 8), (150, 4), (151, 4), (60, 1)],
             template_id=302),
]
V9_OPTIONS_ID, IPFIX_OPTIONS_ID = 400, 401


def _records(seed: int, n: int, v6: bool = False) -> list[tuple]:
    batch = TrafficModel(seed, ipv6_share=1.0 if v6 else 0.0).flows(n, UPTIME)
    return (batch.ipv6 if v6 else batch.ipv4)[:n]


def _extra_rows(t: Template, rng: random.Random, n: int) -> list[tuple]:
    rows = []
    for _ in range(n):
        row: list[object] = []
        for f in t.fields:
            kind = f.spec.kind
            if kind == "addr4":
                row.append(bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)]))
            elif kind == "addr6":
                row.append(bytes([0x20, 0x01, 0x0d, 0xb8]) + rng.randbytes(12))
            elif kind == "mac":
                row.append(rng.randrange(1 << 48))
            elif f.id == 61:
                row.append(rng.randrange(2))
            elif f.id in (152, 153):
                row.append(EXPORT_TIME * 1000 - rng.randrange(60_000))
            elif f.id in (150, 151):
                row.append(EXPORT_TIME - rng.randrange(60))
            else:
                row.append(rng.randrange(1 << min(8 * f.length, 32)))
        rows.append(tuple(row))
    return rows


def v5_seeds() -> list[bytes]:
    """NetFlow v5 datagrams: 1 and 30 records, sampling set, engine ids, an uptime wrap."""
    recs = _records(1, 30)
    out = [encode_v5(recs[:1], UPTIME, EXPORT_TIME, 0),
           encode_v5(recs, UPTIME, EXPORT_TIME, 1, engine_type=1, engine_id=3, sampling_interval=100,
                     sampling_mode=1),
           encode_v5(recs[:7], 1000, EXPORT_TIME, 31, unix_nsecs=999_999_999)]
    wrapped = [DefaultRecord(*r)._replace(first=0xFFFFF000, last=0xFFFFFF00) for r in recs[:3]]
    out.append(encode_v5(wrapped, 500, EXPORT_TIME, 38))
    return out


def _v9_options_template(tid: int) -> bytes:
    """A v9 options template flowset: scope System (1, 4 bytes); sampler id, interval, algorithm."""
    body = struct.pack("!HHH", tid, 4, 12) + struct.pack("!HH", 1, 4)
    body += struct.pack("!HHHHHH", 48, 1, 34, 4, 35, 1)
    pad = bytes(-len(body) % 4)
    return struct.pack("!HH", 1, 4 + len(body) + len(pad)) + body + pad


def _v9_options_data(tid: int, sampler: int, interval: int) -> bytes:
    body = struct.pack("!IBIB", 0, sampler, interval, 2)
    pad = bytes(-len(body) % 4)
    return struct.pack("!HH", tid, 4 + len(body) + len(pad)) + body + pad


def _v9_header(enc: Netflow9Encoder, count: int) -> bytes:
    return enc.packet([], count, UPTIME, EXPORT_TIME)


def template_sequences() -> list[list[bytes]]:
    """Datagram sequences of one exporter each: NetFlow v9 and IPFIX in the usual and unusual orders."""
    rng = random.Random(7)
    v4, v6 = _records(2, 20), _records(3, 10, v6=True)
    all_t = [DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, *EXTRA_TEMPLATES]
    rows = {t.template_id: _extra_rows(t, rng, 5) for t in EXTRA_TEMPLATES}
    rows[DEFAULT_TEMPLATE.template_id], rows[DEFAULT_TEMPLATE_V6.template_id] = v4, v6
    seqs: list[list[bytes]] = []

    # NetFlow v9
    enc = Netflow9Encoder(source_id=7)
    seqs.append([enc.template_packet(all_t, UPTIME, EXPORT_TIME)]
                + [enc.data_packet(t, rows[t.template_id], UPTIME, EXPORT_TIME) for t in all_t])
    enc = Netflow9Encoder(source_id=8)
    data_first = enc.data_packet(DEFAULT_TEMPLATE, v4[:5], UPTIME, EXPORT_TIME)
    seqs.append([data_first, enc.template_packet([DEFAULT_TEMPLATE], UPTIME, EXPORT_TIME),
                 enc.data_packet(DEFAULT_TEMPLATE, v4[5:], UPTIME, EXPORT_TIME)])
    # one datagram: options template + options data + template + data (data before its template too)
    t300 = EXTRA_TEMPLATES[0]
    sets = [v9_data_flowset(t300, t300.pack(rows[300])), _v9_options_template(V9_OPTIONS_ID),
            _v9_options_data(V9_OPTIONS_ID, 1, 100), v9_template_flowset([t300])]
    enc = Netflow9Encoder(source_id=9)
    seqs.append([enc.packet(sets, 8, UPTIME, EXPORT_TIME)])
    # redefinition of a template id with another layout
    enc = Netflow9Encoder(source_id=10)
    redefined = Template([(f.id, f.length) for f in EXTRA_TEMPLATES[2].fields], template_id=256)
    seqs.append([enc.template_packet([DEFAULT_TEMPLATE], UPTIME, EXPORT_TIME),
                 enc.data_packet(DEFAULT_TEMPLATE, v4[:3], UPTIME, EXPORT_TIME),
                 enc.template_packet([redefined], UPTIME, EXPORT_TIME),
                 enc.data_packet(redefined, rows[302][:3], UPTIME, EXPORT_TIME)])

    # IPFIX
    ienc = IpfixEncoder(observation_domain_id=7)
    seqs.append([ienc.template_message(all_t, EXPORT_TIME, system_init_ms=EXPORT_TIME * 1000 - UPTIME)]
                + [ienc.data_message(t, rows[t.template_id], EXPORT_TIME) for t in all_t])
    ienc = IpfixEncoder(observation_domain_id=8)
    seqs.append([ienc.data_message(DEFAULT_TEMPLATE_V6, v6, EXPORT_TIME),
                 ienc.template_message([DEFAULT_TEMPLATE_V6], EXPORT_TIME)])
    # withdrawal (field count 0), then data for the withdrawn template, then all-templates withdrawal
    ienc = IpfixEncoder(observation_domain_id=9)
    withdraw_one = struct.pack("!HHHH", 2, 8, DEFAULT_TEMPLATE.template_id, 0)
    withdraw_all = struct.pack("!HHHH", 2, 8, 2, 0)
    seqs.append([ienc.template_message([DEFAULT_TEMPLATE, t300], EXPORT_TIME),
                 ienc.message([withdraw_one], 0, EXPORT_TIME),
                 ienc.data_message(DEFAULT_TEMPLATE, v4[:2], EXPORT_TIME),
                 ienc.data_message(t300, rows[300][:2], EXPORT_TIME),
                 ienc.message([withdraw_all], 0, EXPORT_TIME)])
    # sampling options (IPFIX): scope sampler id, samplingInterval + selector fields
    ienc = IpfixEncoder(observation_domain_id=10)
    opt = struct.pack("!HHH", IPFIX_OPTIONS_ID, 3, 1) + struct.pack("!HHHHHH", 302, 4, 305, 4, 306, 4)
    opt_set = struct.pack("!HH", 3, 4 + len(opt)) + opt
    opt_data = struct.pack("!HHIII", IPFIX_OPTIONS_ID, 16, 1, 1, 99)
    seqs.append([ienc.message([opt_set, opt_data], 1, EXPORT_TIME),
                 ienc.template_message([t300], EXPORT_TIME),
                 ienc.data_message(t300, rows[300], EXPORT_TIME)])
    # variable-length fields (IPFIX only): an enterprise string and a 255-escaped long value
    varlen_tpl = struct.pack("!HH", 500, 4) + struct.pack("!HH", 8, 4) + struct.pack("!HH", 12, 4)
    varlen_tpl += struct.pack("!HHI", 0x8000 | 100, 0xFFFF, 5951) + struct.pack("!HH", 95, 0xFFFF)
    vrec = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + bytes([5]) + b"hello" + bytes([255, 1, 4]) + bytes(260)
    ienc = IpfixEncoder(observation_domain_id=11)
    seqs.append([ienc.message([struct.pack("!HH", 2, 4 + len(varlen_tpl)) + varlen_tpl,
                               struct.pack("!HH", 500, 4 + 2 * len(vrec)) + vrec + vrec], 2, EXPORT_TIME)])
    return seqs


def sflow_seeds() -> list[bytes]:
    """sFlow v5 datagrams: flow samples (raw header, router, gateway), counters, IPv6 agent."""
    out = []
    for agent, v6, rate in (("192.0.2.9", False, 1), ("2001:db8::9", True, 512)):
        enc = SflowEncoder(agent, sub_agent_id=3, sampling_rate=rate)
        t = (DEFAULT_TEMPLATE_V6 if v6 else DEFAULT_TEMPLATE)
        batch = TrafficModel(4, ipv6_share=1.0 if v6 else 0.0).samples(6, UPTIME)
        recs = batch.ipv6 if v6 else batch.ipv4
        samples = enc.flow_samples(t, recs)
        out.append(enc.datagram(samples, UPTIME))
        out.append(enc.datagram(samples[:1], UPTIME))
        counters = enc.counter_samples([InterfaceCounters(1, in_octets=10**12, out_octets=7),
                                        InterfaceCounters(2)])
        out.append(enc.datagram(counters + samples[:2], UPTIME))
    # hand-assembled samples with the record kinds the stateful encoder does not emit
    ip = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    hdr = packet_header(ip[0], ip[1], 6, 40000, 443, 0x18, 0, 1500, b"\x02" * 6, b"\x04" * 6, vlan=12)
    flow_recs = [raw_header_record(hdr, 1500), extended_switch(12, 13),
            extended_router(bytes([10, 0, 0, 254]), 24, 16),
            extended_gateway(bytes([10, 0, 0, 254]), 64500, 64501, 64502)]
    out.append(encode_sflow("192.0.2.10", 0, 1, UPTIME, [flow_sample(1, 5, 10, 10, 0, 5, 6, flow_recs)]))
    return out


def all_v9_ipfix_datagrams() -> list[bytes]:
    return [d for s in template_sequences() for d in s]


# ---- real captures (read in place) ----------------------------------------------------------------

def capture_payloads(prefix: str) -> Iterator[tuple[str, list[bytes]]]:
    """(capture name, export datagrams in file order) for each capture ``prefix*``; none when absent."""
    if not CAPTURES.is_dir():
        return
    from flowpipe.pcap import udp_datagrams

    for pcap in sorted(CAPTURES.glob(f"{prefix}*.pcap")):
        name = pcap.name[:-len(".pcap")]
        port = None
        exp = pcap.with_name(name + ".expected.json")
        if exp.exists():
            port = json.loads(exp.read_text()).get("udp_dst_port")
        grams = [g.payload for g in udp_datagrams(str(pcap)) if port is None or g.dport == port]
        if grams:
            yield name, grams
