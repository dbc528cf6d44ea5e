"""NetFlow v9 / IPFIX decoder against real captures: every capture through ONE TemplateDecoder.

The rules are those of ../shared/acceptance/e2e.py (compare() and field_disagreements()): bytes
and packets summed per (src, dst, proto, sport, dport) equal tshark's exactly, no extra keys; per
key the ingress interface set is the same, egress interfaces are within tshark's, and the OR of
the TCP flags is the same.
"""
from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpipe.config import DecoderConfig
from flowpipe.decode.base import Decoded, DecodeError, Source
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.flow import Flow
from tests.support import captures

NAMES = captures.names("nf9_") + captures.names("ipfix_")
OWN = captures.own_names("nf9_") + captures.own_names("ipfix_")


def ip(raw: bytes) -> str:
    return ipaddress.ip_address(raw).compressed if raw else ""


def norm(v: Any) -> str:
    return ipaddress.ip_address(v).compressed if v else ""


def decode_all(name: str, dec: TemplateDecoder | None = None) -> tuple[list[Flow], list[Decoded]]:
    dec = dec or TemplateDecoder(DecoderConfig())
    flows, results = [], []
    for g in captures.datagrams(name):
        d = dec.decode(g.payload, Source(g.src, g.sport, "default", g.time))
        results.append(d)
        flows.extend(Flow._make(t) for t in d.flows)
    return flows, results


def key(f: Flow) -> tuple:
    return (ip(f.src_ip), ip(f.dst_ip), f.ip_protocol, f.src_port, f.dst_port)


def rec_key(r: dict) -> tuple:
    return (norm(r.get("src_addr")), norm(r.get("dst_addr")), int(r.get("ip_protocol") or 0),
            int(r.get("src_port") or 0), int(r.get("dst_port") or 0))


def disagreements(name: str, flows: list[Flow]) -> list[str]:
    """field_disagreements() of the acceptance harness, on flow tuples."""
    want: dict[tuple, dict] = defaultdict(lambda: {"in": set(), "out": set(), "flags": 0, "has_flags": False})
    for r in captures.expected(name)["records"]:
        w = want[rec_key(r)]
        if r.get("input_interface") is not None:
            w["in"].add(int(r["input_interface"]))
        if r.get("output_interface") is not None:
            w["out"].add(int(r["output_interface"]))
        if r.get("tcp_flags") is not None:
            w["flags"] |= int(r["tcp_flags"])
            w["has_flags"] = True
    got: dict[tuple, dict] = defaultdict(lambda: {"in": set(), "out": set(), "flags": 0})
    for f in flows:
        g = got[key(f)]
        g["in"].add(f.in_if)
        g["out"].add(f.out_if)
        g["flags"] |= f.tcp_flags
    out = []
    for k, w in want.items():
        g = got[k]
        if w["in"] and g["in"] != w["in"]:
            out.append(f"{k}: ingress {g['in']} != {w['in']}")
        if w["out"] and not g["out"] <= w["out"]:
            out.append(f"{k}: egress {g['out']} not within {w['out']}")
        if w["has_flags"] and g["flags"] != w["flags"]:
            out.append(f"{k}: tcp flags {g['flags']:#x} != {w['flags']:#x}")
    return out


def sums(flows: list[Flow]) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for f in flows:
        out[key(f)][0] += f.bytes
        out[key(f)][1] += f.packets
    return dict(out)


@pytest.mark.parametrize("name", NAMES + OWN or ["(no captures)"])
def test_capture_matches_tshark(name: str) -> None:
    if name == "(no captures)":
        captures.require()
    exp = captures.expected(name)
    flows, results = decode_all(name)
    assert sums(flows) == captures.expected_sums(name)
    assert disagreements(name, flows) == []
    types = {"netflow9" if exp["flow_type"] == "netflow9" else "ipfix"}
    assert {f.type for f in flows} <= types
    assert {d.flow_type for d in results} <= types
    exporters = set(exp.get("exporters") or [])
    assert {norm(f.exporter) for f in flows} <= {norm(e) for e in exporters}
    assert all(f.namespace == "default" for f in flows)


def test_all_captures_through_one_decoder() -> None:
    """State of one exporter never disturbs another's: the whole corpus in one decoder."""
    if not NAMES:
        captures.require()
    dec = TemplateDecoder(DecoderConfig())
    for name in NAMES:
        flows, _ = decode_all(name, dec)
        assert sums(flows) == captures.expected_sums(name), name


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("ipfix_")] or ["(no captures)"])
def test_ipfix_sequence_counts_data_records(name: str) -> None:
    if name == "(no captures)":
        captures.require()
    exp = captures.expected(name)
    _, results = decode_all(name)
    heads = exp["datagram_headers"]
    assert len(heads) == len(results)
    for h, d in zip(heads, results, strict=True):
        assert d.sequence is not None
        assert (d.sequence.domain, d.sequence.sequence) == (h["observation_domain_id"], h["sequence"])
        if not h["undecodable"]:
            assert d.sequence.units == h["data_records"], h["frame"]


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("nf9_")] or ["(no captures)"])
def test_v9_sequence_counts_packets(name: str) -> None:
    if name == "(no captures)":
        captures.require()
    _, results = decode_all(name)
    for h, d in zip(captures.expected(name)["datagram_headers"], results, strict=True):
        assert d.sequence is not None
        assert (d.sequence.domain, d.sequence.sequence, d.sequence.units) == (h["source_id"], h["sequence"], 1)


def test_sampler_rates_per_record() -> None:
    """nf9_akvorado_multi_sampling_rates: each record takes the rate of the sampler it names."""
    exp = captures.expected("nf9_akvorado_multi_sampling_rates")
    rates = {int(o["fields"]["cflow.sampler_id"]): int(o["fields"]["cflow.sampling_interval"])
             for o in exp["options_records"]}
    flows, _ = decode_all("nf9_akvorado_multi_sampling_rates")
    assert [f.sampling_rate for f in flows] == [rates[r["sampler_id"]] for r in exp["records"]]
    assert set(rates.values()) == {2000, 4000}


@pytest.mark.parametrize("name, rate", [
    ("nf9_akvorado_sampler_options", 30000),        # v9 sampler table, records name sampler 1
    ("nf9_akvorado_data_before_template", 100),      # v9 system sampling interval (34)
    ("ipfix_akvorado_mpls_ipv6", 10),                # RFC 5477 interval 1 / space 9
    ("ipfix_pmacct_cisco_ipv6_sampling", 256),       # size 1 / population 256, records name selector 1
    ("ipfix_yaf", 0),                                # no sampling information
])
def test_sampling_rate_from_options(name: str, rate: int) -> None:
    flows, _ = decode_all(name)
    assert flows and {f.sampling_rate for f in flows} == {rate}


def test_data_before_template_in_one_datagram() -> None:
    flows, results = decode_all("nf9_akvorado_data_before_template")
    (d,) = results
    assert (d.held, d.released, d.skipped) == (0, 0, [])
    assert len(flows) == captures.expected("nf9_akvorado_data_before_template")["totals"]["records"]


def test_two_export_processes_from_one_address() -> None:
    """nf9_pmacct_cisco_reload: template state per (address, port, source id)."""
    dec = TemplateDecoder(DecoderConfig())
    decode_all("nf9_pmacct_cisco_reload", dec)
    domains = dec.snapshot()["domains"]
    assert sorted((d[1], d[3]) for d in domains) == [(6512, 2081), (24920, 2193)]
    assert all(sorted(t[0] for t in d[4]) == [260, 313] for d in domains)


def test_set_without_template_is_held_as_a_part() -> None:
    """ipfix_netscaler_varlen: set 280 never gets a template; the rest of its datagram decodes."""
    dec = TemplateDecoder(DecoderConfig(hold_timeout=60), clock=lambda: 1000.0)
    flows, results = decode_all("ipfix_netscaler_varlen", dec)
    assert [d.held for d in results] == [0, 0]
    assert len(flows) == 3 and dec.held == 0
    assert dec.expire(2000.0) == 0
    assert dec.hold.stats.parts_dropped == 1


def test_times_match_tshark_absolute_times() -> None:
    """ipfix_openbsd_pflow: flowStart/EndMilliseconds (152/153) as Unix seconds."""
    import datetime
    exp = captures.expected("ipfix_openbsd_pflow")["records"]
    flows, _ = decode_all("ipfix_openbsd_pflow")
    for f, r in zip(flows, exp, strict=True):
        s = datetime.datetime.strptime(r["fields"]["cflow.abstimestart"][:21], "%b %d, %Y %H:%M:%S")
        assert f.start == int(s.replace(tzinfo=datetime.UTC).timestamp())
        assert f.start <= f.end


def test_v9_switched_times_relative_to_uptime() -> None:
    exp = captures.expected("nf9_pmacct_cisco")
    flows, _ = decode_all("nf9_pmacct_cisco")
    heads = {h["frame"]: h for h in exp["datagram_headers"]}
    for f, r in zip(flows, exp["records"], strict=True):
        h = heads[r["frame"]]
        up = round(float(h["sysuptime"]) * 1000)
        first = round(float(r["fields"]["cflow.timestart"]) * 1000)
        assert f.start == h["unix_secs"] - int((up - first) / 1000)


def test_truncated_captures_raise_only_decode_error() -> None:
    """Every datagram of every capture cut at every 7th byte: DecodeError or a result, nothing else."""
    if not NAMES:
        captures.require()
    dec = TemplateDecoder(DecoderConfig(max_templates_per_exporter=64, max_exporters=8))
    for name in NAMES:
        for g in captures.datagrams(name):
            for cut in range(0, len(g.payload), 7):
                try:
                    dec.decode(g.payload[:cut], Source(g.src, g.sport))
                except DecodeError:
                    pass
    assert dec.registry.stats.exporters <= 8


ALL = [(n, g.src, g.sport, g.payload) for n in NAMES for g in captures.datagrams(n)] if NAMES else []
FUZZ_CFG = DecoderConfig(max_templates_per_exporter=20, max_exporters=3, hold_max_per_exporter=4,
                         hold_max_bytes=20_000)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for op, pos, val in ops:
        if not b:
            break
        p = pos % len(b)
        if op == "cut":
            del b[p:]
        elif op == "flip":
            b[p] ^= 1 << (val % 8)
        elif op == "u16":  # rewrite a 16-bit word: lengths, counts, ids
            b[p:p + 2] = (val & 0xFFFF).to_bytes(2, "big")
        elif op == "dup":  # repeat a stretch (more sets / records / templates)
            b[p:p] = b[p:p + val % 64]
        else:
            del b[p:p + 1 + val % 8]
    return bytes(b)


@pytest.mark.slow
@pytest.mark.skipif(not ALL, reason=f"real captures not available in {captures.CAPTURES} (../shared/captures, or set "
                                     "FLOWPIPE_CAPTURES)")
@given(st.lists(st.tuples(st.integers(0, max(len(ALL) - 1, 0)), st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "x"]),
                          st.lists(st.tuples(st.sampled_from(["cut", "flip", "u16", "dup", "del"]),
                                             st.integers(0, 1 << 16), st.integers(0, 1 << 16)), max_size=4)),
                min_size=1, max_size=25))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_captures_raise_only_decode_error_and_stay_within_caps(steps: list) -> None:
    """Real datagrams (templates first) then mutated ones: only DecodeError, state within the caps."""
    dec = TemplateDecoder(FUZZ_CFG)
    first = ALL[steps[0][0]][0]
    for name, src, sport, data in ALL:
        if name == first:
            dec.decode(data, Source(src, sport))
    for i, exporter, ops in steps:
        name, src, sport, data = ALL[i]
        try:
            d = dec.decode(_mutate(data, ops), Source(exporter if exporter != "x" else src, sport))
        except DecodeError:
            continue
        assert d.held in (0, 1) and d.released >= 0
        assert all(len(t) == 25 for t in d.flows)
    s = dec.registry.stats
    assert s.exporters <= 3 and len(dec.registry.exporters) <= 3
    assert all(e.ntemplates <= 20 for e in dec.registry.exporters.values())
    domains = [dm for e in dec.registry.exporters.values() for dm in e.domains.values()]
    assert s.templates == sum(len(dm.templates) for dm in domains)
    assert dec.hold.stats.bytes <= 20_000 and all(len(v) <= 4 for v in dec.hold.by_exporter.values())
    assert dec.held == sum(1 for h in dec.hold.entries.values() if h.counted)
