"""tshark, an independent decoder, reads every kind of datagram the exporter sends with the values sent.

Datagrams go into a pcap (tests/support/pcapwrite.py); ``tshark -T json`` decodes them as cflow or sflow;
every record is compared field by field, and the headers' sequence numbers, uptime and ids too.
"""
from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flowpipe.export import DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, Exporter, InterfaceCounters, TrafficModel
from tests.support.pcapwrite import write_pcap

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

T0 = 1_700_000_000.25
BOOT = T0 - 7200.5
PORTS = {"netflow5": 2055, "netflow9": 2055, "ipfix": 4739, "sflow5": 6343}


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        self.t += 0.0005  # time moves a little with every datagram
        return self.t


def tshark(datagrams: list[bytes], protocol: str, tmp: Path) -> tuple[list[Node], str]:
    """Each frame's dissected export layer, and tshark's expert summary."""
    port = PORTS[protocol]
    pcap = write_pcap(tmp / f"{protocol}.pcap", datagrams, dport=port)
    decode_as = f"udp.port=={port},{'sflow' if protocol == 'sflow5' else 'cflow'}"
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", decode_as, "-T", "json"],
                         capture_output=True, text=True, check=True).stdout
    expert = subprocess.run(["tshark", "-r", str(pcap), "-d", decode_as, "-q", "-z", "expert"],
                            capture_output=True, text=True, check=True).stdout
    assert "_ws.malformed" not in out
    layer = "sflow" if protocol == "sflow5" else "cflow"
    frames = [f["_source"]["layers"][layer] for f in json.loads(out, object_pairs_hook=Node)]
    assert len(frames) == len(datagrams)
    return frames, expert


class Node(list):
    """A JSON object as its (key, value) pairs: tshark repeats keys ("Flow sample, seq 1" of two
    sources), and their order is the packet's order."""

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if not isinstance(key, str):
            return super().__getitem__(key)
        for k, v in self:
            if k == key:
                return v
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def items(self) -> list[tuple[str, Any]]:
        return list(self)


def items(d: Node, prefix: str) -> list[Any]:
    """Values under keys starting with ``prefix``, in order."""
    return [v for k, v in d.items() if k.startswith(prefix)]


def cflow_records(frame: Node) -> list[Node]:
    if frame["cflow.version"] == "5":
        return items(frame, "pdu ")
    sets = items(frame, "FlowSet ") + items(frame, "Set ")
    return [r for s in sets if s.get("cflow.flowset_id") != "65535" for r in items(s, "Flow ")]  # not options


def ip(b: bytes) -> str:
    return str(ipaddress.ip_address(b))


def secs(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}000000"


def expected_cflow(r: tuple) -> dict[str, str]:
    v6 = len(r[0]) == 16
    e = {"cflow.srcaddrv6" if v6 else "cflow.srcaddr": ip(r[0]), "cflow.dstaddrv6" if v6 else "cflow.dstaddr": ip(r[1]),
         "cflow.nexthopv6" if v6 else "cflow.nexthop": ip(r[2]), "cflow.inputint": str(r[3]),
         "cflow.outputint": str(r[4]), "cflow.packets": str(r[5]), "cflow.octets": str(r[6]),
         "cflow.srcport": str(r[9]), "cflow.dstport": str(r[10]), "cflow.tcpflags": f"0x{r[11]:02x}",
         "cflow.protocol": str(r[12]), "cflow.tos": f"0x{r[13]:02x}", "cflow.srcas": str(r[14]),
         "cflow.dstas": str(r[15]), "cflow.srcmaskv6" if v6 else "cflow.srcmask": str(r[16]),
         "cflow.dstmaskv6" if v6 else "cflow.dstmask": str(r[17])}
    return e


def got_cflow(rec: Node) -> dict[str, str]:
    flat = {k: v for k, v in rec.items() if isinstance(v, str)}
    return {k: flat[k] for k in flat if k not in ("cflow.timedelta",)}


def traffic(protocol: str) -> tuple[list[tuple], list[tuple]]:
    model = TrafficModel(11, ipv6_share=0.0 if protocol == "netflow5" else 0.3)
    uptime = int((T0 - BOOT) * 1000)
    batch = model.samples(120, uptime) if protocol == "sflow5" else model.flows(150, uptime)
    return batch.ipv4, batch.ipv6


def export(protocol: str, **kw: Any) -> tuple[Exporter, list[bytes], list[tuple]]:
    e = Exporter("127.0.0.1:9", protocol=protocol, source_id=0x0A0B, boot_time=BOOT, clock=Clock(),
                 sampling_rate=kw.pop("sampling_rate", 1), **kw)
    v4, v6 = traffic(protocol)
    datagrams = e.encode(DEFAULT_TEMPLATE, v4) + (e.encode(DEFAULT_TEMPLATE_V6, v6) if v6 else [])
    return e, datagrams, v4 + v6


def sequence_warnings(expert: str) -> list[str]:
    return re.findall(r"Unexpected flow sequence.*", expert)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["netflow5", "netflow9", "ipfix"])
def test_tshark_decodes_netflow_and_ipfix_records_as_sent(protocol: str, tmp_path: Path) -> None:
    e, datagrams, records = export(protocol)
    frames, expert = tshark(datagrams, protocol, tmp_path)
    got = [rec for f in frames for rec in cflow_records(f)]
    assert len(got) == len(records) == 150
    for sent, rec in zip(records, got, strict=True):
        g = got_cflow(rec)
        for key, value in expected_cflow(sent).items():
            assert g.get(key) == value, (key, sent, g)
        # First/last switched: sysUptime seconds (v5, v9; and IPFIX, given the system init time option).
        times = rec["cflow.timedelta_tree"]
        assert (times["cflow.timestart"], times["cflow.timeend"]) == (secs(sent[7]), secs(sent[8]))
    assert sequence_warnings(expert) == []  # tshark tracks v9/IPFIX sequences: none unexpected
    n_before = 0
    for i, f in enumerate(frames):
        n = len(cflow_records(f))
        version = f["cflow.version"]
        assert version == {"netflow5": "5", "netflow9": "9", "ipfix": "10"}[protocol]
        if version == "5":
            assert (f["cflow.sequence"], f["cflow.engine_type"], f["cflow.engine_id"]) == (str(n_before), "10", "11")
        elif version == "9":
            assert (f["cflow.sequence"], f["cflow.source_id"], f["cflow.count"]) == (str(i), "2571", str(
                n or len(items(items(f, "FlowSet ")[0], "Template (")) ))
        else:
            assert f["cflow.od_id"] == "2571" and f["cflow.len"] == str(len(datagrams[i]))
        if version != "10":
            uptime = float(f["cflow.sysuptime"])
            assert uptime == pytest.approx(7200.5 + 0.0005 * (i + 1), abs=0.0025)
        n_before += n
    if protocol == "ipfix":
        options = [r for f in frames for s in items(f, "Set ") if s.get("cflow.flowset_id") == "65535"
                   for r in items(s, "Flow ")]
        assert options and all(o["cflow.sys_init_time"].startswith("Nov 14, 2023 20:13:19.750") for o in options)


@pytest.mark.slow
def test_tshark_sees_the_skipped_datagrams_as_sequence_gaps(tmp_path: Path) -> None:
    for protocol in ("netflow9", "ipfix"):
        e, datagrams, _ = export(protocol, drop_every=4)
        _, expert = tshark(datagrams, protocol, tmp_path)
        assert len(sequence_warnings(expert)) == e.stats.datagrams_skipped > 0


def header_tree(sample: Node) -> Node:
    return items(sample, "Raw packet header")[0]


@pytest.mark.slow
def test_tshark_decodes_sflow_samples_as_sent(tmp_path: Path) -> None:
    e, datagrams, records = export("sflow5", sampling_rate=256, agent="192.0.2.77")
    datagrams += e.encode_counters([InterfaceCounters(3, in_octets=12345, in_ucast_pkts=67, out_octets=89)])
    frames, _ = tshark(datagrams, "sflow5", tmp_path)
    samples = [s for f in frames for s in items(f, "Flow sample")]
    assert len(samples) == len(records) == 120
    seq: dict[int, int] = {}
    for sent, s in zip(records, samples, strict=True):
        seq[sent[3]] = seq.get(sent[3], 0) + 1
        assert (s["sflow.flow_sample.sampling_rate"], s["sflow.flow_sample.input_interface"],
                s["sflow.flow_sample.output_interface_tree"]["sflow.flow_sample.output_interface_value"],
                s["sflow.flow_sample.index"], s["sflow.flow_sample.sequence_number"],
                s["sflow.flow_sample.sample_pool"]) == (
            "256", str(sent[3]), str(sent[4]), str(sent[3]), str(seq[sent[3]]), str(256 * seq[sent[3]]))
        raw = header_tree(s)
        assert (raw["sflow_245.header_protocol"], raw["sflow_245.header.frame_length"],
                raw["sflow_245.header.payload_stripped"]) == ("1", str(sent[6]), "4")
        pkt = raw["sflow_245.header_tree"]
        v6 = len(sent[0]) == 16
        l3 = pkt["ipv6" if v6 else "ip"]
        if v6:
            assert (l3["ipv6.src"], l3["ipv6.dst"], l3["ipv6.nxt"], l3["ipv6.plen"]) == (
                ip(sent[0]), ip(sent[1]), str(sent[12]), str(sent[6] - 4 - 14 - 40))
        else:
            assert (l3["ip.src"], l3["ip.dst"], l3["ip.proto"], l3["ip.len"], l3["ip.dsfield"]) == (
                ip(sent[0]), ip(sent[1]), str(sent[12]), str(sent[6] - 4 - 14), f"0x{sent[13]:02x}")
            assert l3["ip.checksum.status"] != "0"  # not "bad"
        proto = sent[12]
        if proto == 6:
            assert (pkt["tcp"]["tcp.srcport"], pkt["tcp"]["tcp.dstport"], pkt["tcp"]["tcp.flags"]) == (
                str(sent[9]), str(sent[10]), f"0x{sent[11]:04x}")
        elif proto == 17:
            assert (pkt["udp"]["udp.srcport"], pkt["udp"]["udp.dstport"]) == (str(sent[9]), str(sent[10]))
        else:
            icmp = pkt["icmpv6" if proto == 58 else "icmp"]
            name = "icmpv6" if proto == 58 else "icmp"
            assert (icmp[f"{name}.type"], icmp[f"{name}.code"]) == (str(sent[10] >> 8), str(sent[10] & 0xFF))
        router = items(s, "Extended router data")[0]
        assert (router["sflow_245.nexthop.v6" if v6 else "sflow_245.nexthop"], router["sflow_245.nexthop.src_mask"],
                router["sflow_245.nexthop.dst_mask"]) == (ip(sent[2]), str(sent[16]), str(sent[17]))
        gateway = items(s, "Extended gateway data")[0]
        assert gateway["sflow_245.srcAS"] == str(sent[14])
    headers = [(f["sflow_245.agent"], f["sflow_245.sub_agent_id"], f["sflow_245.sequence_number"]) for f in frames]
    assert headers == [("192.0.2.77", "2571", str(i + 1)) for i in range(len(frames))]
    counters = items(items(frames[-1], "Counters sample")[0], "Generic interface counters")[0]
    assert (counters["sflow_245.ifindex"], counters["sflow_245.ifinoct"], counters["sflow_245.ifinpkt"],
            counters["sflow_245.ifoutoct"]) == ("3", "12345", "67", "89")
