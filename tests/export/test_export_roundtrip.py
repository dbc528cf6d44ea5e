"""Round trips: whatever the exporter sends, flowpipe's own decoders read back as the same flows.

Each test skips while the decoder it needs does not exist (they are written alongside).
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpipe.export import DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, DefaultRecord, Exporter
from flowpipe.flow import ETHER_IPV4, ETHER_IPV6, Flow

T0 = 1_700_000_000.5
BOOT = T0 - 86_400.25
UPTIME = int((T0 - BOOT) * 1000)
SRC = "192.0.2.10"


def need(module: str) -> ModuleType:
    return pytest.importorskip(module, reason=f"{module} is not written yet")


def source() -> Any:
    base = need("flowpipe.decode.base")
    return base.Source(exporter=SRC, port=50000, received=T0)


def exporter(protocol: str, **kw: Any) -> Exporter:
    return Exporter("127.0.0.1:9", protocol=protocol, boot_time=BOOT, clock=lambda: T0, **kw)


def records(v6: bool, max_ifindex: int = 0xFFFF) -> st.SearchStrategy[list[DefaultRecord]]:
    n = 16 if v6 else 4
    addr = st.binary(min_size=n, max_size=n)
    u16, u8, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0xFFFFFFFF)
    times = st.tuples(st.integers(0, UPTIME), st.integers(0, UPTIME)).map(sorted)
    mask = st.integers(0, 128 if v6 else 32)
    rec = st.builds(lambda a, b, nh, i, o, p, by, t, sp, dp, fl, pr, tos, sa, da, sm, dm: DefaultRecord(
        a, b, nh, i, o, p, by, t[0], t[1], sp, dp, fl, pr, tos, sa, da, sm, dm),
        addr, addr, addr, st.integers(0, max_ifindex), st.integers(0, max_ifindex), u32, u32, times, u16, u16,
        u8, u8, u8, u16, u16, mask, mask)
    return st.lists(rec, min_size=1, max_size=75)


def check_flow(flow: tuple, r: DefaultRecord, flow_type: str, exact_time: bool = False) -> None:
    f = Flow._make(flow)
    assert (f.type, f.exporter, f.bytes, f.packets, f.ip_protocol) == (flow_type, SRC, r.bytes, r.packets, r.protocol)
    assert (f.src_ip, f.dst_ip, f.src_port, f.dst_port) == (r.src_addr, r.dst_addr, r.src_port, r.dst_port)
    assert (f.in_if, f.out_if, f.tcp_flags, f.tos) == (r.in_if, r.out_if, r.tcp_flags, r.tos)
    assert (f.src_mask, f.dst_mask) == (r.src_mask, r.dst_mask)
    assert f.next_hop in (r.next_hop, b"") and (f.next_hop or not any(r.next_hop))
    assert f.ether_type == (ETHER_IPV6 if len(r.src_addr) == 16 else ETHER_IPV4)
    boot_ms = int(BOOT * 1000)
    start, end = (boot_ms + r.first) // 1000, (boot_ms + r.last) // 1000
    tolerance = 0 if exact_time else 1  # decoders round sysUptime offsets their own way
    assert abs(f.start - start) <= tolerance and abs(f.end - end) <= tolerance, (f.start, f.end, start, end)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(records(v6=False), st.integers(0, 0xFFFF), st.integers(1, 0x3FFF))
def test_netflow5_round_trip(recs: list[DefaultRecord], source_id: int, rate: int) -> None:
    nf5 = need("flowpipe.decode.netflow5")
    e = exporter("netflow5", source_id=source_id, sampling_rate=rate)
    flows, flows_before = [], 0
    for d in e.encode(DEFAULT_TEMPLATE, recs):
        out = nf5.decode(d, source())
        assert out.sequence.domain == source_id and out.sequence.sequence == flows_before
        flows_before += out.sequence.units
        flows += out.flows
    assert len(flows) == len(recs)
    for f, r in zip(flows, recs, strict=True):
        check_flow(f, r, "netflow5")
        assert Flow._make(f).sampling_rate == (rate if rate > 1 else 0)


def template_decoder() -> Any:
    td = need("flowpipe.decode.template_decoder")
    config = need("flowpipe.config")
    return td.TemplateDecoder(config.DecoderConfig())


@pytest.mark.slow
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(records(v6=False), records(v6=True), st.sampled_from(["netflow9", "ipfix"]), st.integers(0, 0xFFFFFFFF))
def test_netflow9_and_ipfix_round_trip(v4: list[DefaultRecord], v6: list[DefaultRecord], protocol: str,
                                       source_id: int) -> None:
    dec = template_decoder()
    e = exporter(protocol, source_id=source_id, template_refresh_packets=2)
    datagrams = e.encode(DEFAULT_TEMPLATE, v4) + e.encode(DEFAULT_TEMPLATE_V6, v6)
    flows, expected_sequence = [], 0
    for d in datagrams:
        out = dec.decode(d, source())
        assert out.held == 0 and out.skipped == []
        assert out.sequence.domain == source_id and out.sequence.sequence == expected_sequence
        expected_sequence += out.sequence.units
        flows += out.flows
    assert len(flows) == len(v4) + len(v6)
    for f, r in zip(flows, v4 + v6, strict=True):
        check_flow(f, r, protocol, exact_time=protocol == "ipfix")


@pytest.mark.slow
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.booleans(), st.integers(1, 1 << 20), st.integers(0, 0xFFFFFFFF))
def test_sflow_round_trip(data: st.DataObject, v6: bool, rate: int, sub_agent: int) -> None:
    sflow = need("flowpipe.decode.sflow")
    recs = data.draw(records(v6))
    # sFlow samples packets: the frame must hold its headers, IPv4 lengths fit 16 bits.
    low = 18 + (40 if v6 else 20) + 20 + 4
    recs = [r._replace(bytes=low + r.bytes % (0xFFFF - low), protocol=data.draw(st.sampled_from([6, 17, 1, 58, 47])))
            for r in recs]
    e = exporter("sflow5", source_id=sub_agent, sampling_rate=rate, agent="198.51.100.1")
    flows = []
    for i, d in enumerate(e.encode(DEFAULT_TEMPLATE_V6 if v6 else DEFAULT_TEMPLATE, recs)):
        out = sflow.decode(d, source())
        assert out.sequence.domain == sub_agent and out.sequence.sequence == i + 1
        flows += out.flows
    assert len(flows) == len(recs)
    for flow, r in zip(flows, recs, strict=True):
        f = Flow._make(flow)
        icmp_or_other = r.protocol not in (6, 17)
        assert (f.type, f.exporter, f.sampling_rate, f.packets, f.bytes) == ("sflow5", "198.51.100.1", rate, 1, r.bytes)
        assert (f.src_ip, f.dst_ip, f.ip_protocol, f.tos) == (r.src_addr, r.dst_addr, r.protocol, r.tos)
        assert (f.src_port, f.dst_port) == ((0, 0) if icmp_or_other else (r.src_port, r.dst_port))
        assert f.tcp_flags == (r.tcp_flags if r.protocol == 6 else 0)
        assert (f.in_if, f.out_if, f.src_mask, f.dst_mask) == (r.in_if, r.out_if, r.src_mask, r.dst_mask)
        assert f.next_hop == r.next_hop
        assert f.ether_type == (ETHER_IPV6 if v6 else ETHER_IPV4)
        assert f.src_mac == int.from_bytes(b"\x02\x00" + r.src_addr[-4:], "big")
        assert f.extras is not None and f.extras.get("src_as") == r.src_as


def test_sflow_counters_round_trip() -> None:
    sflow = need("flowpipe.decode.sflow")
    from flowpipe.export import InterfaceCounters

    e = exporter("sflow5", agent="198.51.100.1")
    sent = InterfaceCounters(7, in_octets=1 << 40, in_ucast_pkts=12, out_octets=34, out_ucast_pkts=5)
    out = sflow.decode(e.encode_counters([sent])[0], source())
    assert len(out.counters) == 1
    got = out.counters[0]
    fields = {name: getattr(got, name) for name in ("if_index", "in_octets", "out_octets") if hasattr(got, name)}
    assert fields == {"if_index": 7, "in_octets": 1 << 40, "out_octets": 34}

