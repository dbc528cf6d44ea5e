"""The socket-free encoders, read back with small independent parsers (also used by the other export tests)."""
from __future__ import annotations

import ipaddress
import struct

import pytest

from flowpipe.export import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATE_V6,
    ConfigError,
    Exporter,
    ExportError,
    InterfaceCounters,
    IpfixEncoder,
    Netflow9Encoder,
    RecordError,
    SflowEncoder,
    Template,
    counter_sample,
    encode_sflow,
    encode_v5,
    extended_router,
    interface_counters_record,
    packet_header,
)
from tests.support.exportparse import (
    NH,
    REC,
    REC6,
    V6A,
    V6B,
    A,
    B,
    parse_ipfix,
    parse_sflow,
    parse_v5,
    parse_v9,
    raw_header,
)

# --- NetFlow v5 -----------------------------------------------------------------------------------

def test_v5_packet_layout() -> None:
    d = encode_v5([REC] * 3, 123456, 1_700_000_000, 42, unix_nsecs=5, engine_type=1, engine_id=2,
                  sampling_interval=100, sampling_mode=1)
    p = parse_v5(d)
    assert (p["version"], p["count"], p["uptime"], p["secs"], p["nsecs"], p["sequence"]) == (
        5, 3, 123456, 1_700_000_000, 5, 42)
    assert (p["engine_type"], p["engine_id"], p["sampling"]) == (1, 2, 1 << 14 | 100)
    assert p["records"][0] == (A, B, NH, 3, 4, 10, 1500, 1000, 2000, 40000, 443, 0x1B, 6, 0x28, 64500, 64501, 24, 16)


def test_v5_limits() -> None:
    with pytest.raises(ExportError, match="1..30"):
        encode_v5([REC] * 31, 0, 0, 0)
    with pytest.raises(ExportError, match="1..30"):
        encode_v5([], 0, 0, 0)
    with pytest.raises(ExportError, match="sampling"):
        encode_v5([REC], 0, 0, 0, sampling_interval=1 << 14)
    with pytest.raises(RecordError, match="ingressInterface"):
        encode_v5([REC._replace(in_if=70000)], 0, 0, 0)


# --- NetFlow v9 -----------------------------------------------------------------------------------

def test_v9_template_and_data_packets() -> None:
    enc = Netflow9Encoder(source_id=77, sequence=5)
    templates: dict = {}
    t = parse_v9(enc.template_packet([DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6], 1000, 1_700_000_000), templates)
    assert (t["version"], t["count"], t["sequence"], t["source_id"], t["templates"]) == (9, 2, 5, 77, [256, 257])
    assert templates[256] == [(f.id, f.length) for f in DEFAULT_TEMPLATE.fields]
    d = enc.data_packet(DEFAULT_TEMPLATE, [REC] * 3, 2000, 1_700_000_001)
    p = parse_v9(d, templates)
    assert (p["count"], p["sequence"], p["uptime"], p["secs"]) == (3, 6, 2000, 1_700_000_001)
    assert p["records"] == [tuple(REC)] * 3
    assert (len(d) - 20) % 4 == 0  # FlowSet padded to 4 bytes
    assert enc.sequence == 7


def test_v9_refuses_enterprise_fields() -> None:
    with pytest.raises(ExportError, match="enterprise"):
        Netflow9Encoder().template_packet([Template([(1, 4), (5, 4, 9)])], 0, 0)


# --- IPFIX ----------------------------------------------------------------------------------------

def test_ipfix_sequence_counts_data_records() -> None:
    enc = IpfixEncoder(observation_domain_id=9)
    templates: dict = {}
    m = parse_ipfix(enc.template_message([DEFAULT_TEMPLATE], 1_700_000_000, system_init_ms=1_699_000_000_000),
                    templates)
    assert (m["version"], m["sequence"], m["domain"], m["templates"]) == (10, 0, 9, [256, 0xFFFF])
    assert m["options"] == [(9, 1_699_000_000_000)]
    d1 = parse_ipfix(enc.data_message(DEFAULT_TEMPLATE, [REC] * 4, 1_700_000_001), templates)
    d2 = parse_ipfix(enc.data_message(DEFAULT_TEMPLATE, [REC] * 2, 1_700_000_001), templates)
    assert (d1["sequence"], d2["sequence"], enc.sequence) == (1, 5, 7)  # the options record counts too
    assert d1["records"] == [tuple(REC)] * 4
    assert parse_ipfix(enc.template_message([DEFAULT_TEMPLATE], 0), templates)["sequence"] == 7
    assert enc.sequence == 7  # templates alone do not count


def test_ipfix_enterprise_field_specifier() -> None:
    t = Template([(8, 4), (100, 4, 29305)], 300)
    msg = IpfixEncoder().template_message([t], 0)
    # set header, template header, field 8, then 0x8000|100, length 4, PEN 29305
    assert msg[16 + 4 + 4 + 4:] == struct.pack(">HHI", 0x8000 | 100, 4, 29305)


# --- sFlow ----------------------------------------------------------------------------------------

def _ip4_checksum_ok(ip: bytes) -> bool:
    total = sum(struct.unpack(">10H", ip[:20]))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_packet_header_ipv4_tcp() -> None:
    h = packet_header(A, B, 6, 40000, 443, 0x12, 0x28, 1000, b"\x02" * 6, b"\x04" * 6)
    assert h[:12] == b"\x04" * 6 + b"\x02" * 6 and h[12:14] == b"\x08\x00"
    ip = h[14:34]
    assert ip[1] == 0x28 and struct.unpack(">H", ip[2:4])[0] == 1000 - 4 - 14 and ip[9] == 6
    assert ip[12:16] == A and ip[16:20] == B and _ip4_checksum_ok(ip)
    sport, dport, _, _, off_flags = struct.unpack(">HHIIH", h[34:48])
    assert (sport, dport, off_flags & 0x1FF, off_flags >> 12) == (40000, 443, 0x12, 5)
    assert len(h) == 54


def test_packet_header_ipv6_udp_vlan_icmp() -> None:
    h = packet_header(V6A, V6B, 17, 5353, 53, 0, 0xB8, 200, b"\x02" * 6, b"\x04" * 6, vlan=12)
    assert h[12:16] == b"\x81\x00\x00\x0c" and h[16:18] == b"\x86\xdd"
    first_word, plen, nxt = struct.unpack(">IHB", h[18:25])
    assert first_word >> 28 == 6 and (first_word >> 20) & 0xFF == 0xB8 and nxt == 17
    assert plen == 200 - 4 - 18 - 40
    assert struct.unpack(">HHH", h[58:64]) == (5353, 53, plen)
    icmp = packet_header(A, B, 1, 0, 8 << 8 | 3, 0, 0, 98, b"\x02" * 6, b"\x04" * 6)
    assert icmp[34:36] == b"\x08\x03"
    with pytest.raises(RecordError, match="too short"):
        packet_header(A, B, 6, 1, 2, 0, 0, 57, b"\x02" * 6, b"\x04" * 6)


def test_sflow_encoder_sequences_and_records() -> None:
    enc = SflowEncoder("192.0.2.9", sub_agent_id=3, sampling_rate=100)
    samples = enc.flow_samples(DEFAULT_TEMPLATE, [REC, REC._replace(in_if=5), REC])
    d = parse_sflow(enc.datagram(samples, 777))
    assert (d["version"], d["agent"], d["sub_agent"], d["sequence"], d["uptime"]) == (
        5, ipaddress.IPv4Address("192.0.2.9").packed, 3, 1, 777)
    s = d["samples"]
    assert [(x["source"], x["sequence"], x["pool"]) for x in s] == [(3, 1, 100), (5, 1, 100), (3, 2, 200)]
    assert all(x["rate"] == 100 and x["output"] == 4 for x in s)
    proto, frame, stripped, header = raw_header(s[0]["records"][1])
    assert (proto, frame, stripped) == (1, 1500, 4) and header[26:34] == A + B
    assert s[0]["records"][1002] == struct.pack(">I4sII", 1, NH, 24, 16)
    gw = s[0]["records"][1003]
    assert struct.unpack_from(">I4sIIIIIII", gw) == (1, NH, 0, 64500, 64500, 1, 2, 1, 64501)
    assert parse_sflow(enc.datagram(samples, 778))["sequence"] == 2


def test_sflow_ipv6_agent_and_template_checks() -> None:
    enc = SflowEncoder("2001:db8::9")
    d = parse_sflow(enc.datagram(enc.flow_samples(DEFAULT_TEMPLATE_V6, [REC6]), 1))
    assert d["agent"] == ipaddress.IPv6Address("2001:db8::9").packed
    _, _, _, header = raw_header(d["samples"][0]["records"][1])
    assert header[12:14] == b"\x86\xdd" and header[22:38] == V6A
    with pytest.raises(ExportError, match="addresses"):
        enc.flow_samples(Template([1, 2]), [(1, 2)])
    with pytest.raises(RecordError, match="too short"):
        enc.flow_samples(DEFAULT_TEMPLATE, [REC._replace(bytes=40)])
    before = dict(enc._flow_seq)
    with pytest.raises(RecordError):
        enc.flow_samples(DEFAULT_TEMPLATE, [REC, REC._replace(bytes=40)])
    assert enc._flow_seq == before  # nothing advanced for the batch that failed


def test_sflow_encoders_raise_the_librarys_own_errors() -> None:
    """What the sFlow encoders refuse is an ExportError of the kind that says why (docs/exporter.md,
    Errors), as for the rest of the library; none of it a bare ValueError."""
    with pytest.raises(RecordError, match=r"^record 0: frame length 57 is too short for its headers \(58 bytes\)$") \
            as short:
        packet_header(A, B, 6, 1, 2, 0, 0, 57, b"\x02" * 6, b"\x04" * 6)
    assert short.value.field == "frame_length"
    with pytest.raises(RecordError, match="frame length 70000 is too long for IPv4") as long:
        packet_header(A, B, 17, 1, 2, 0, 0, 70_000, b"\x02" * 6, b"\x04" * 6)
    assert long.value.field == "frame_length"
    with pytest.raises(RecordError, match="frame length 65594 is too long for IPv6"):
        packet_header(V6A, V6B, 17, 1, 2, 0, 0, 65_594, b"\x02" * 6, b"\x04" * 6)
    assert len(packet_header(V6A, V6B, 17, 1, 2, 0, 0, 65_593, b"\x02" * 6, b"\x04" * 6)) == 14 + 40 + 8
    with pytest.raises(RecordError, match=r"frame length 30 is too short for its headers \(46 bytes\)"):
        packet_header(A, B, 17, 1, 2, 0, 0, 30, b"\x02" * 6, b"\x04" * 6)  # before any header is packed
    with pytest.raises(ConfigError, match="sampling rate must be at least 1, not 0"):
        SflowEncoder("192.0.2.9", sampling_rate=0)
    with pytest.raises(ConfigError, match="sFlow agent address: address is 3 bytes, expected 4"):
        encode_sflow(b"\xc0\x00\x02", 0, 1, 0, [])
    with pytest.raises(ConfigError, match="sFlow agent address: 'agent-1' is not an IP address"):
        SflowEncoder("agent-1")
    with pytest.raises(RecordError, match="address of 3 bytes"):
        extended_router(b"\x0a\x00\x00", 24, 16)
    for kind in (RecordError, ConfigError):
        assert issubclass(kind, ExportError) and not issubclass(kind, ValueError)


def test_an_exporter_refuses_an_unusable_sflow_agent_and_frame_lengths_as_its_own_errors() -> None:
    with pytest.raises(ConfigError, match="sFlow agent address"):
        Exporter("127.0.0.1:6343", protocol="sflow5", agent="not-an-address")
    exp = Exporter("127.0.0.1:6343", protocol="sflow5", agent="192.0.2.9")
    with pytest.raises(RecordError, match=r"^record 1: frame length 70000 is too long for IPv4$") as e:
        exp.encode(DEFAULT_TEMPLATE, [REC._replace(protocol=17), REC._replace(protocol=17, bytes=70_000)])
    assert e.value.field == "octetDeltaCount"


def test_counter_samples() -> None:
    c = InterfaceCounters(7, in_octets=1 << 40, in_ucast_pkts=(1 << 32) + 5, out_octets=99)
    rec = interface_counters_record(c)
    assert struct.unpack_from(">II", rec) == (1, 88)
    fields = struct.unpack(">IIQIIQIIIIIIQIIIIII", rec[8:])
    assert fields[:7] == (7, 6, 10_000_000_000, 1, 3, 1 << 40, 5) and fields[12] == 99
    d = parse_sflow(encode_sflow("10.0.0.9", 0, 1, 0, [counter_sample(4, 7, [rec])]))
    s = d["samples"][0]
    assert (s["kind"], s["sequence"], s["source"], s["body"]) == ("counters", 4, 7, rec)
    enc = SflowEncoder("10.0.0.9")
    seqs = [parse_sflow(enc.datagram(enc.counter_samples([c]), 0))["samples"][0]["sequence"] for _ in range(3)]
    assert seqs == [1, 2, 3]
