"""NetFlow v5 decoder: real captures against tshark's values, and malformed input."""
from __future__ import annotations

import ipaddress
import struct
from collections import defaultdict

import pytest

from flowpipe.decode import netflow5
from flowpipe.decode.base import DecodeError, Source
from flowpipe.flow import Flow
from tests.support import captures

V5 = captures.names("nf5_") + captures.own_names("nf5_")


def ip(raw: bytes) -> str:
    return ipaddress.ip_address(raw).compressed if raw else ""


@pytest.mark.parametrize("name", V5 or ["(no captures)"])
def test_capture_matches_tshark(name: str) -> None:
    if not V5:
        captures.require()
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    flags: dict[tuple, int] = defaultdict(int)
    ins: dict[tuple, set[int]] = defaultdict(set)
    for g in captures.datagrams(name):
        d = netflow5.decode(g.payload, Source(g.src, g.sport, "default", g.time))
        assert d.flow_type == "netflow5" and d.exporter == g.src
        for t in d.flows:
            f = Flow._make(t)
            k = (ip(f.src_ip), ip(f.dst_ip), f.ip_protocol, f.src_port, f.dst_port)
            sums[k][0] += f.bytes
            sums[k][1] += f.packets
            flags[k] |= f.tcp_flags
            ins[k].add(f.in_if)
    assert dict(sums) == captures.expected_sums(name)
    for r in captures.expected(name)["records"]:
        k = (r["src_addr"], r["dst_addr"], r["ip_protocol"], r["src_port"], r["dst_port"])
        assert r["input_interface"] in ins[k]
        assert flags[k] & r["tcp_flags"] == r["tcp_flags"]


def test_juniper_sampling_interval_and_times() -> None:
    (g,) = captures.datagrams("nf5_juniper_mx80")
    d = netflow5.decode(g.payload, Source(g.src))
    exp = captures.expected("nf5_juniper_mx80")
    assert {Flow._make(t).sampling_rate for t in d.flows} == {exp["records"][0]["sampling_interval"] & 0x3FFF}
    _, _, uptime, secs, _nsecs = struct.unpack_from("!HHIII", g.payload)
    first = Flow._make(d.flows[0])
    rec = exp["records"][0]
    # tshark prints switched times as seconds of uptime; the Agent's arithmetic: whole seconds before the
    # header's unix_secs, the ms difference divided toward zero, unix_nsecs ignored
    before_ms = uptime - round(float(rec["fields"]["cflow.timestart"]) * 1000)
    assert before_ms >= 0
    assert first.start == secs - before_ms // 1000
    assert first.start <= first.end <= secs


def test_sequence_observation() -> None:
    (g,) = captures.datagrams("nf5_akvorado")
    d = netflow5.decode(g.payload, Source(g.src))
    count, seq, eng_type, eng_id = struct.unpack_from("!H", g.payload, 2)[0], *struct.unpack_from("!IBB", g.payload, 16)
    assert d.sequence is not None
    assert (d.sequence.sequence, d.sequence.units, d.sequence.domain) == (seq, count, eng_type << 8 | eng_id)


@pytest.fixture
def good() -> bytes:
    return captures.datagrams("nf5_akvorado")[0].payload


@pytest.mark.parametrize("mutate, reason", [
    (lambda b: b[:10], "short"),
    (lambda b: b"\x00\x07" + b[2:], "bad_version"),
    (lambda b: b[:2] + b"\x00\x00" + b[4:], "bad_count"),
    (lambda b: b[:-1], "bad_length"),
    (lambda b: b[:2] + b"\x00\x63" + b[4:], "bad_length"),
])
def test_malformed_datagrams_are_refused_with_a_reason(good: bytes, mutate, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        netflow5.decode(mutate(good), Source("192.0.2.1"))
    assert e.value.reason == reason


def test_trailing_bytes_decode_and_are_reported(good: bytes) -> None:
    d = netflow5.decode(good + b"\x00" * 7, Source("192.0.2.1"))
    assert len(d.flows) == struct.unpack_from("!H", good, 2)[0]
    assert d.skipped == ["trailing_bytes"]
