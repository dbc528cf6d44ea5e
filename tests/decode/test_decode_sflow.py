"""sFlow v5 datagram decoding with hand-built datagrams, plus mutation fuzzing of real ones."""
from __future__ import annotations

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpipe.decode import sflow
from flowpipe.decode.base import DecodeError, Source
from flowpipe.flow import Flow
from tests.support import captures
from tests.support.packets import A4, A6, B4, B6, DMAC, SMAC, eth, icmp, ipv4, ipv6, tcp, udp
from tests.support.sflow import (
    AGENT6,
    counter_sample,
    datagram,
    ethernet_counters,
    expanded_flow_sample,
    ext_gateway,
    ext_router,
    ext_switch,
    flow_sample,
    generic_counters,
    raw_header,
    record,
)

SRC = Source("198.51.100.1", 6343, namespace="lab", received=1_700_000_000.7)


def flows(data: bytes) -> list[Flow]:
    return [Flow._make(f) for f in sflow.decode(data, SRC).flows]


# ---- datagram level ----

def test_ipv4_agent_tcp_sample_all_fields() -> None:
    frame = eth(ipv4(tcp(40000, 443, 0x12), tos=0x20))
    d = sflow.decode(datagram([flow_sample([raw_header(frame, frame_len=1500), ext_switch()])]), SRC)
    assert (d.flow_type, d.exporter, d.skipped, d.counters) == ("sflow5", "192.0.2.9", [], [])
    assert d.sequence is not None
    assert (d.sequence.domain, d.sequence.sequence, d.sequence.units) == (2, 77, 1)
    assert len(d.flows) == 1 and len(d.flows[0]) == len(Flow._fields) and type(d.flows[0]) is tuple
    f = Flow._make(d.flows[0])
    assert f == Flow("sflow5", "192.0.2.9", "lab", 512, 0, 1_700_000_000, 1_700_000_000, 1500, 1, 0x0800, 6,
                     A4, B4, 40000, 443, SMAC, DMAC, 0, 0, 3, 4, 0x12, b"", 0x20, None)


def test_ipv6_agent() -> None:
    d = sflow.decode(datagram([flow_sample([raw_header(eth(ipv6(udp(1, 2), nxt=17), ether_type=0x86DD))])],
                              agent=AGENT6), SRC)
    assert d.exporter == "2001:db8::9"
    f = Flow._make(d.flows[0])
    assert (f.exporter, f.ether_type, f.src_ip, f.dst_ip, f.ip_protocol, f.src_port) == (
        "2001:db8::9", 0x86DD, A6, B6, 17, 1)


@pytest.mark.parametrize("data,reason", [
    (b"", "short"),
    (b"\x00\x00\x00\x05\x00\x00\x00", "short"),
    (struct.pack(">II", 4, 1) + bytes(24), "bad_version"),
    (struct.pack(">II", 5, 3) + bytes(40), "bad_address_type"),
    (struct.pack(">II", 5, 2) + bytes(20), "short"),  # IPv6 agent needs 36 bytes
])
def test_unusable_datagrams_raise(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        sflow.decode(data, SRC)
    assert e.value.reason == reason


def test_empty_datagram_is_fine() -> None:
    d = sflow.decode(datagram([]), SRC)
    assert (d.flows, d.skipped, d.exporter) == ([], [], "192.0.2.9")


# ---- flow samples ----

def test_expanded_sample_full_interface_words() -> None:
    frame = eth(ipv4(tcp(22, 52237, 0x18), tos=8), vlans=(809,))
    f = flows(datagram([expanded_flow_sample([raw_header(frame, 126)], in_if=29001, out_if=1285816721)]))[0]
    assert (f.in_if, f.out_if, f.sampling_rate, f.bytes, f.src_port, f.tos) == (29001, 1285816721, 1000, 126,
                                                                                  22, 8)


def test_compact_sample_interface_format_bits() -> None:
    frame = eth(ipv4(tcp()))
    multiple = flows(datagram([flow_sample([raw_header(frame)], in_if=0x3FFFFFFF, out_if=10, out_fmt=2)]))[0]
    assert (multiple.in_if, multiple.out_if, multiple.extras) == (0x3FFFFFFF, 10, {"egress_format": "multiple"})
    dropped = flows(datagram([flow_sample([raw_header(frame)], out_if=258, out_fmt=1)]))[0]
    assert (dropped.out_if, dropped.extras) == (258, {"egress_format": "discarded"})


def test_router_and_gateway_records() -> None:
    recs = [raw_header(eth(ipv4(tcp()))), ext_gateway(bytes([9, 9, 9, 9]), 65000, 64512, [[65001, 65002], [65003]]),
            ext_router(bytes([54, 54, 54, 54]), 24, 16)]
    f = flows(datagram([flow_sample(recs)]))[0]
    assert (f.next_hop, f.src_mask, f.dst_mask) == (bytes([54, 54, 54, 54]), 24, 16)
    assert f.extras == {"src_as": 64512, "dst_as": 65003}
    gw_only = flows(datagram([flow_sample([raw_header(eth(ipv4(tcp()))), ext_gateway(A6, 65000, 0, [])])]))[0]
    assert (gw_only.next_hop, gw_only.extras) == (A6, {"src_as": 0, "dst_as": 65000})


def test_sampled_ipv4_and_ethernet_records_without_raw_header() -> None:
    ip4 = record(3, struct.pack(">II4s4sIIII", 1400, 17, A4, B4, 5000, 53, 0, 0x10))
    ether = record(2, struct.pack(">IHIxxHIxxI", 1418, SMAC >> 32, SMAC & 0xFFFFFFFF, DMAC >> 32,
                                  DMAC & 0xFFFFFFFF, 0x0800))
    f = flows(datagram([flow_sample([ip4, ether])]))[0]
    assert (f.bytes, f.src_ip, f.dst_ip, f.ip_protocol, f.src_port, f.dst_port, f.tos) == (
        1418, A4, B4, 17, 5000, 53, 0x10)
    assert (f.src_mac, f.dst_mac, f.ether_type) == (SMAC, DMAC, 0x0800)
    ip6 = record(4, struct.pack(">II16s16sIIII", 100, 6, A6, B6, 80, 9000, 0x11, 0))
    g = flows(datagram([flow_sample([ip6])]))[0]
    assert (g.bytes, g.ether_type, g.src_ip, g.tcp_flags, g.src_mac) == (100, 0x86DD, A6, 0x11, 0)


def test_raw_header_wins_over_sampled_ip_record() -> None:
    ip4 = record(3, struct.pack(">II4s4sIIII", 40, 17, B4, A4, 1, 2, 0, 0))
    f = flows(datagram([flow_sample([ip4, raw_header(eth(ipv4(tcp())), 60)])]))[0]
    assert (f.src_ip, f.bytes, f.ip_protocol) == (A4, 60, 6)


def test_sample_without_packet_records_still_counts() -> None:
    f = flows(datagram([flow_sample([ext_switch()])]))[0]
    assert (f.packets, f.bytes, f.src_ip, f.in_if) == (1, 0, b"", 3)


def test_raw_ipv4_header_protocol_and_icmp() -> None:
    f = flows(datagram([flow_sample([raw_header(ipv4(icmp(0), proto=1, tos=8), 50, proto=11)])]))[0]
    assert (f.src_mac, f.ip_protocol, f.src_port, f.dst_port, f.tos, f.bytes) == (0, 1, 0, 0, 8, 50)


def test_several_samples_and_counters_in_one_datagram() -> None:
    samples = [flow_sample([raw_header(eth(ipv4(tcp(i, 80))))], seq=i) for i in range(1, 6)]
    samples.insert(2, counter_sample([generic_counters(3)]))
    d = sflow.decode(datagram(samples), SRC)
    assert [Flow._make(f).src_port for f in d.flows] == [1, 2, 3, 4, 5]
    assert len(d.counters) == 1 and d.skipped == []


# ---- skipped parts ----

def test_unknown_enterprise_and_discard_samples_are_skipped_by_length() -> None:
    good = flow_sample([raw_header(eth(ipv4(tcp())))])
    vendor = struct.pack(">II", (4413 << 12) | 1, 12) + bytes(12)
    unknown = struct.pack(">II", 99, 4) + bytes(4)
    discard = struct.pack(">II", 5, 8) + bytes(8)
    d = sflow.decode(datagram([vendor, good, unknown, discard, good]), SRC)
    assert len(d.flows) == 2
    assert d.skipped == ["sample_enterprise", "sample_unknown_format", "discard_sample"]


def test_unknown_and_enterprise_records_are_ignored() -> None:
    recs = [record(1005, b"http://x"), record((9 << 12) | 1, bytes(16)), raw_header(eth(ipv4(tcp())))]
    d = sflow.decode(datagram([flow_sample(recs)]), SRC)
    assert (len(d.flows), d.skipped, Flow._make(d.flows[0]).src_ip) == (1, [], A4)


def test_sample_running_past_the_datagram() -> None:
    good = flow_sample([raw_header(eth(ipv4(tcp())))])
    d = sflow.decode(datagram([good, good[:-10]]), SRC)
    assert (len(d.flows), d.skipped) == (1, ["sample_truncated"])


def test_sample_count_larger_than_the_datagram() -> None:
    good = flow_sample([raw_header(eth(ipv4(tcp())))])
    start = time.perf_counter()
    d = sflow.decode(datagram([good], nsamples=0xFFFFFFFF), SRC)
    assert time.perf_counter() - start < 0.1
    assert (len(d.flows), d.skipped) == (1, ["sample_truncated"])


def test_sample_shorter_than_its_fixed_header() -> None:
    short = struct.pack(">II", 1, 8) + bytes(8)
    d = sflow.decode(datagram([short, flow_sample([raw_header(eth(ipv4(tcp())))])]), SRC)
    assert (len(d.flows), d.skipped) == (1, ["sample_short"])


def test_record_overrunning_its_sample() -> None:
    hdr = raw_header(eth(ipv4(tcp())))
    bad = struct.pack(">II", 1002, 1000) + bytes(8)
    sample = bytearray(flow_sample([hdr, bad]))
    d = sflow.decode(datagram([bytes(sample), flow_sample([hdr])]), SRC)
    assert len(d.flows) == 2 and d.skipped == ["record_overrun"]
    assert Flow._make(d.flows[0]).src_ip == A4  # records before the bad one still count


def test_record_count_larger_than_the_sample() -> None:
    body = struct.pack(">IIIIIIII", 1, 3, 10, 10, 0, 1, 2, 0xFFFFFFFF)
    sample = struct.pack(">II", 1, len(body) + len(raw_header(eth(ipv4(tcp()))))) + body + raw_header(
        eth(ipv4(tcp())))
    d = sflow.decode(datagram([sample]), SRC)
    assert (len(d.flows), d.skipped, Flow._make(d.flows[0]).src_port) == (1, ["record_truncated"], 1234)


def test_header_length_larger_than_its_record() -> None:
    frame = eth(ipv4(tcp(7, 8)))
    d = sflow.decode(datagram([flow_sample([raw_header(frame, header_len=4000)])]), SRC)
    assert d.skipped == ["header_overrun"]
    assert Flow._make(d.flows[0]).src_port == 7  # the bytes present are parsed


def test_short_known_records() -> None:
    recs = [record(1, bytes(8)), record(3, bytes(8)), record(1002, struct.pack(">I", 1)), raw_header(eth(ipv4(tcp())))]
    d = sflow.decode(datagram([flow_sample(recs)]), SRC)
    assert d.skipped == ["record_short"] * 3 and Flow._make(d.flows[0]).src_ip == A4


def test_deep_vlan_stack_and_endless_ipv6_chain_are_counted() -> None:
    deep = eth(ipv4(tcp()), vlans=tuple(range(1, 101)))
    chain = eth(ipv6(bytes([0, 0]) + bytes(6) + (bytes([0, 0]) + bytes(6)) * 300, nxt=0), ether_type=0x86DD)
    d = sflow.decode(datagram([flow_sample([raw_header(deep)]), flow_sample([raw_header(chain)])]), SRC)
    assert d.skipped == ["vlan_depth", "ipv6_ext_chain"]
    f, g = (Flow._make(x) for x in d.flows)
    assert (f.src_mac, f.src_ip, g.src_ip, g.src_port) == (SMAC, b"", A6, 0)


# ---- counter samples ----

def test_counter_samples_compact_and_expanded() -> None:
    unknown = record(2001, bytes(68))
    d = sflow.decode(datagram([
        counter_sample([unknown, generic_counters(7, in_octets=2**40), ethernet_counters()], index=7),
        counter_sample([generic_counters(8, status=1)], index=8, expanded=True),
    ]), SRC)
    assert d.skipped == [] and d.flows == []
    g7, e7, g8 = d.counters
    assert isinstance(g7, sflow.InterfaceCounters) and isinstance(g8, sflow.InterfaceCounters)
    assert isinstance(e7, sflow.EthernetCounters)
    assert (g7.if_index, g7.speed, g7.in_octets, g7.out_octets, g7.in_packets, g7.out_packets) == (
        7, 10**9, 2**40, 2000, 13, 25)
    assert (g7.in_discards, g7.in_errors, g7.out_discards, g7.out_errors, g7.admin_up, g7.oper_up) == (
        5, 6, 7, 8, True, True)
    assert (g8.if_index, g8.admin_up, g8.oper_up) == (8, True, False)
    assert (e7.if_index, e7.alignment_errors, e7.symbol_errors) == (7, 1, 13)


def test_counter_record_problems() -> None:
    short = record(1, bytes(40))
    over = struct.pack(">II", 2, 500)
    d = sflow.decode(datagram([counter_sample([short, generic_counters(1)]), counter_sample([over])]), SRC)
    assert d.skipped == ["record_short", "record_overrun"] and len(d.counters) == 1


# ---- fuzzing: only DecodeError escapes, and decoding stays fast ----

def _seeds() -> list[bytes]:
    out = [
        datagram([flow_sample([raw_header(eth(ipv4(tcp()), vlans=(3, 4))), ext_router(B4, 8, 9),
                               ext_gateway(A4, 1, 2, [[3, 4]])]),
                  expanded_flow_sample([raw_header(eth(ipv6(bytes([17, 0]) + bytes(6) + udp(), nxt=0),
                                                       ether_type=0x86DD))]),
                  counter_sample([generic_counters(1), ethernet_counters()])]),
        datagram([flow_sample([record(3, struct.pack(">II4s4sIIII", 1, 6, A4, B4, 1, 2, 3, 4))])], agent=AGENT6),
    ]
    for name in captures.names("sflow5_"):
        grams = [g.payload for g in captures.datagrams(name) if g.payload[:4] == b"\x00\x00\x00\x05"]
        out.extend(grams[:3])
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["truncate", "flip", "u32", "insert"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[pos:]
        elif kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "u32":
            pos &= ~3
            value = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 0x7FFFFFFF, 0xFFFFFFFF, 0x100, 8, 44, 0x8100]))
            data[pos:pos + 4] = struct.pack(">I", value)
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_datagrams_only_raise_decode_error_and_stay_fast(data: bytes) -> None:
    start = time.perf_counter()
    try:
        d = sflow.decode(data, SRC)
    except DecodeError:
        return
    finally:
        assert time.perf_counter() - start < 0.25
    for f in d.flows:
        assert len(f) == len(Flow._fields)
        assert all(isinstance(f[i], int) for i in (3, 7, 8, 9, 10, 13, 14, 15, 16, 19, 20, 21, 23))
        assert len(f[11]) in (0, 4, 16) and len(f[12]) in (0, 4, 16)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    try:
        sflow.decode(datagram([], nsamples=0xFFFF) + tail, SRC)
    except DecodeError:
        pytest.fail("a valid header must not raise")
