"""Real sFlow v5 captures decoded and compared with tshark's expected values.

Per (src, dst, protocol, sport, dport): bytes/packets summed must equal exactly; the ingress
interface set must be equal, egress within the expected set, TCP flags OR'd equal and the
sampling-rate set equal (the rules of the acceptance check); exporter = the sFlow agent.
"""
from __future__ import annotations

import ipaddress
from collections import defaultdict
from pathlib import Path

import pytest

from flowpipe.decode import sflow
from flowpipe.decode.base import Decoded, DecodeError, Source
from flowpipe.flow import Flow
from tests.support import captures


def _ip(b: bytes) -> str:
    return ipaddress.ip_address(b).compressed if b else ""


def _key(f: Flow) -> tuple:
    return (_ip(f.src_ip), _ip(f.dst_ip), f.ip_protocol, f.src_port, f.dst_port)


def _expected_key(r: dict) -> tuple:
    return (ipaddress.ip_address(r["src_addr"]).compressed if r.get("src_addr") else "",
            ipaddress.ip_address(r["dst_addr"]).compressed if r.get("dst_addr") else "",
            int(r.get("ip_protocol") or 0), int(r.get("src_port") or 0), int(r.get("dst_port") or 0))


def _decode_all(name: str) -> list[Decoded]:
    """Every sFlow datagram of a capture decoded; non-sFlow payloads (bad_version) left out."""
    out = []
    for g in captures.datagrams(name):
        try:
            out.append(sflow.decode(g.payload, Source(g.src, g.sport, received=g.time)))
        except DecodeError as e:
            assert e.reason == "bad_version", f"{name}: datagram from {g.src}: {e.reason} {e}"
    return out


def _check(name: str) -> None:
    exp = captures.expected(name)
    decoded = _decode_all(name)
    assert len(decoded) == exp["datagrams"]
    flows = [Flow._make(f) for d in decoded for f in d.flows]
    for d in decoded:
        assert all(Flow._make(f).exporter == d.exporter and f[0] == "sflow5" for f in d.flows)
    assert len(flows) == len(exp["records"])

    got: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for f in flows:
        got[_key(f)][0] += f.bytes
        got[_key(f)][1] += f.packets
    assert dict(got) == captures.expected_sums(name)

    want: dict[tuple, dict] = defaultdict(lambda: {"in": set(), "out": set(), "flags": 0, "rate": set(),
                                                   "agent": set()})
    for r in exp["records"]:
        w = want[_expected_key(r)]
        w["agent"].add(ipaddress.ip_address(r["agent"]).compressed)
        if r.get("input_interface") is not None:
            w["in"].add(int(r["input_interface"]))
        if r.get("output_interface") is not None:
            w["out"].add(int(r["output_interface"]))
        w["flags"] |= int(r.get("tcp_flags") or 0)
        if r.get("sampling_rate") is not None:
            w["rate"].add(int(r["sampling_rate"]))
    have: dict[tuple, dict] = defaultdict(lambda: {"in": set(), "out": set(), "flags": 0, "rate": set(),
                                                   "agent": set()})
    for f in flows:
        h = have[_key(f)]
        h["in"].add(f.in_if)
        h["out"].add(f.out_if)
        h["flags"] |= f.tcp_flags
        h["rate"].add(f.sampling_rate)
        h["agent"].add(ipaddress.ip_address(f.exporter).compressed)
    for k, w in want.items():
        h = have[k]
        assert h["agent"] <= w["agent"], k
        assert not w["in"] or h["in"] == w["in"], k
        assert not w["out"] or h["out"] <= w["out"], k
        assert h["flags"] == w["flags"], k
        assert not w["rate"] or h["rate"] == w["rate"], k


@pytest.mark.parametrize("name", captures.cases(captures.names("sflow5_")))
def test_capture_matches_tshark(name: str) -> None:
    _check(name)


@pytest.mark.parametrize("name", captures.own_names("sflow5_"))
def test_own_fixture_matches_tshark(name: str) -> None:
    _check(name)


def _mac(value: int) -> str:
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


@pytest.mark.parametrize("name", captures.cases([n for n in captures.names("sflow5_")
                                                 if captures.expected(n)["records"]]))
def test_records_match_tshark_one_by_one(name: str) -> None:
    """Record i of tshark's listing and flow i agree on what both show (both are in capture order)."""
    recs = captures.expected(name)["records"]
    flows = [Flow._make(f) for d in _decode_all(name) for f in d.flows]
    assert len(flows) == len(recs)
    for i, (r, f) in enumerate(zip(recs, flows, strict=True)):
        sp = r.get("sampled_packet") or {}
        want = {"key": _expected_key(r), "bytes": r["bytes"] or 0, "in": r["input_interface"],
                "out": r["output_interface"], "rate": r["sampling_rate"], "flags": r.get("tcp_flags") or 0,
                "next_hop": r.get("next_hop"), "src_mac": sp.get("src_mac"), "dst_mac": sp.get("dst_mac"),
                "tos": sp.get("ip_tos"), "exporter": ipaddress.ip_address(r["agent"]).compressed}
        have = {"key": _key(f), "bytes": f.bytes, "in": f.in_if, "out": f.out_if, "rate": f.sampling_rate,
                "flags": f.tcp_flags, "next_hop": _ip(f.next_hop) or None,
                "src_mac": _mac(f.src_mac) if "src_mac" in sp else None,
                "dst_mac": _mac(f.dst_mac) if "dst_mac" in sp else None,
                "tos": f.tos if "ip_tos" in sp else None, "exporter": ipaddress.ip_address(f.exporter).compressed}
        assert have == want, f"record {i} (frame {r['frame']})"


def test_captures_present(shared_captures: Path) -> None:
    assert captures.names("sflow5_"), "no sflow5_* captures in the shared folder"


_GENERIC = {  # tshark field -> InterfaceCounters attribute
    "ifindex": "if_index", "iftype": "if_type", "ifspeed": "speed", "ifdirection": "direction",
    "ifinoct": "in_octets", "ifinpkt": "in_ucast_pkts", "ifinmcast": "in_mcast_pkts",
    "ifinbcast": "in_bcast_pkts", "ifindisc": "in_discards", "ifinerr": "in_errors",
    "ifinunk": "in_unknown_protos", "ifoutoct": "out_octets", "ifoutpkt": "out_ucast_pkts",
    "ifoutmcast": "out_mcast_pkts", "ifoutbcast": "out_bcast_pkts", "ifoutdisc": "out_discards",
    "ifouterr": "out_errors", "ifpromisc": "promiscuous",
}
_ETHERNET = {
    "dot3StatsAlignmentErrors": "alignment_errors", "dot3StatsFCSErrors": "fcs_errors",
    "dot3StatsSingleCollisionFrames": "single_collision_frames",
    "dot3StatsMultipleCollisionFrames": "multiple_collision_frames",
    "dot3StatsSQETestErrors": "sqe_test_errors", "dot3StatsDeferredTransmissions": "deferred_transmissions",
    "dot3StatsLateCollisions": "late_collisions", "dot3StatsExcessiveCollisions": "excessive_collisions",
    "dot3StatsInternalMacTransmitErrors": "internal_mac_transmit_errors",
    "dot3StatsCarrierSenseErrors": "carrier_sense_errors", "dot3StatsFrameTooLongs": "frame_too_longs",
    "dot3StatsInternalMacReceiveErrors": "internal_mac_receive_errors",
    "dot3StatsSymbolErrors": "symbol_errors",
}


def _counter_tables(name: str) -> tuple[dict, dict, dict, dict]:
    """(expected generic, expected ethernet, decoded generic, decoded ethernet), each keyed by
    (agent, datagram sequence, ifindex); tshark's malformed frames are left out of the expected."""
    exp = captures.expected(name)
    bad = set(exp.get("malformed_frames") or [])
    want_g: dict[tuple, dict] = {}
    want_e: dict[tuple, dict] = {}
    for s in exp.get("counter_samples", []):
        if s["frame"] in bad:
            continue
        base = (ipaddress.ip_address(s["agent"]).compressed, s["datagram_sequence"])
        index = s["source_id_index"]
        for r in s["counter_records"].get("Generic interface counters", []):
            index = int(r["sflow_245.ifindex"]) if index is None else index
            want_g[base + (int(r["sflow_245.ifindex"]),)] = r
        for r in s["counter_records"].get("Ethernet interface counters", []):
            want_e[base + (index,)] = r
    got_g: dict[tuple, sflow.InterfaceCounters] = {}
    got_e: dict[tuple, sflow.EthernetCounters] = {}
    for d in _decode_all(name):
        assert d.sequence is not None
        base = (ipaddress.ip_address(d.exporter).compressed, d.sequence.sequence)
        for c in d.counters:
            if isinstance(c, sflow.InterfaceCounters):
                got_g[base + (c.if_index,)] = c
            elif isinstance(c, sflow.EthernetCounters):
                got_e[base + (c.if_index,)] = c
    return want_g, want_e, got_g, got_e


@pytest.mark.parametrize("name", captures.cases([n for n in captures.names("sflow5_")
                                                 if captures.expected(n)["totals"].get("counter_samples")]))
def test_counter_samples_match_tshark(name: str) -> None:
    want_g, want_e, got_g, got_e = _counter_tables(name)
    assert want_g and set(got_g) == set(want_g)
    assert set(got_e) == set(want_e)
    for k, r in want_g.items():
        c = got_g[k]
        for field, attr in _GENERIC.items():
            assert getattr(c, attr) == int(r["sflow_245." + field]), (k, field)
        assert c.admin_up == (r["sflow_245.ifadmin_status"] == "1")
        assert c.oper_up == (r["sflow_245.ifoper_status"] == "1")
    for k, r in want_e.items():
        for field, attr in _ETHERNET.items():
            assert getattr(got_e[k], attr) == int(r["sflow_245." + field]), (k, field)


def test_tcpdump_counters_totals() -> None:
    """144 counter samples in tshark's listing; the two it misparses (frames 12 and 18) hold
    host-sFlow records only, so 142 generic + 142 Ethernet interface records remain."""
    exp = captures.expected("sflow5_tcpdump_counters")
    assert exp["totals"]["counter_samples"] == 144
    want_g, want_e, got_g, got_e = _counter_tables("sflow5_tcpdump_counters")
    assert len(got_g) == len(want_g) == 142
    assert len(got_e) == len(want_e) == 142
    c = got_g[("15.184.8.4", 204720, 55)]
    assert (c.speed, c.in_octets, c.out_octets, c.oper_up) == (1_000_000_000, 820721, 178785248, True)
    decoded = _decode_all("sflow5_tcpdump_counters")
    assert sum(1 for d in decoded for c in d.counters if isinstance(c, sflow.InterfaceCounters)) == 142
