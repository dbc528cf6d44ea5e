"""Exporter identity behind NAT: ``exporter_address = "udp" | "in-band"`` and ``[listeners.exporters]``.

The service tests send real datagrams over UDP from one source address *and* one source port (what
several routers behind one NAT address look like at worst), with the same template id meaning
different layouts, and check what reaches the backend.
"""
from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
import trio

from flowpipe.config import ConfigError, DecoderConfig, ListenerConfig, dump, load
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.export import DefaultRecord, encode_sflow, encode_v5, flow_sample, packet_header, raw_header_record
from flowpipe.flow import Flow
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp

NAT = "127.0.30.1"  # the one address every exporter seems to come from
D = {"namespace": "default"}  # the listeners' namespace, a label of the sequence metrics
NAT_PORT = 41000
A4, B4 = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
B6 = bytes.fromhex("20010db8000000000000000000000002")


# ---- IPFIX / v9 built by hand ------------------------------------------------------------------

def ipfix(*sets: bytes, domain: int, seq: int = 0, secs: int | None = None) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), secs or int(time.time()), seq, domain) + body


def v9(*sets: bytes, source_id: int, seq: int = 0, count: int = 1) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIIII", 9, count, 100_000, int(time.time()), seq, source_id) + body


def fset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def spec(eid: int, ln: int, pen: int = 0) -> bytes:
    return struct.pack("!HHI", eid | 0x8000, ln, pen) if pen else struct.pack("!HH", eid, ln)


def template(tid: int, fields: list[tuple[int, int]], sid: int = 2) -> bytes:
    return fset(sid, struct.pack("!HH", tid, len(fields)) + b"".join(spec(*f) for f in fields))


def options_template(tid: int, scope: list[tuple[int, int]], fields: list[tuple[int, int]]) -> bytes:
    body = struct.pack("!HHH", tid, len(scope) + len(fields), len(scope))
    return fset(3, body + b"".join(spec(*f) for f in scope + fields))


# Router A: template 256 = bytes(4) packets(4) src(4) dst(4); announces 130 in exporter-scoped options.
A_LAYOUT = [(1, 4), (2, 4), (8, 4), (12, 4)]
# Router B: template 256 = exporterIPv4Address(4) dst(4) src(4) packets(8) bytes(8): same id, other layout.
B_LAYOUT = [(130, 4), (12, 4), (8, 4), (2, 8), (1, 8)]


def a_record(nbytes: int) -> bytes:
    return struct.pack("!II4s4s", nbytes, 1, bytes([10, 1, 0, 1]), bytes([10, 1, 0, 2]))


def b_record(nbytes: int) -> bytes:
    return struct.pack("!4s4s4sQQ", B4, bytes([10, 2, 0, 2]), bytes([10, 2, 0, 1]), 2, nbytes)


def a_announce() -> list[bytes]:
    """Templates plus the exporter-scoped options record naming A's address (as exporters send them)."""
    return [template(256, A_LAYOUT), options_template(400, [(130, 4)], [(34, 4)]),
            fset(400, struct.pack("!4sI", A4, 1))]


def exporters_of(flows: list[dict]) -> dict[str, int]:
    """exporter.ip -> bytes over the flows (one exporter's flows may be flushed in several parts)."""
    out: dict[str, int] = {}
    for f in flows:
        out[f["exporter"]["ip"]] = out.get(f["exporter"]["ip"], 0) + f["bytes"]
    return out


async def wait_bytes(be: Backend, total: int, timeout: float = 10) -> None:
    with trio.move_on_after(timeout):
        while sum(f["bytes"] for f in be.flows) < total:
            await trio.sleep(0.05)
    await trio.sleep(0.3)


async def test_two_ipfix_exporters_behind_one_address_told_apart_in_band() -> None:
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "ipfix", "exporter_address": "in-band"}])
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [
                ipfix(*a_announce(), domain=1, seq=0),                                  # A: 1 options record
                ipfix(template(256, B_LAYOUT), fset(256, b_record(5000)), domain=2, seq=0),
                ipfix(fset(256, a_record(1000)), domain=1, seq=1),                     # no 130 in A's data
                ipfix(fset(256, b_record(6000)), domain=2, seq=1),
                ipfix(fset(256, a_record(1100)), domain=1, seq=2),
            ], NAT, NAT_PORT)
            await wait_bytes(be, 13100)
            ex = exporters_of(be.flows)
            assert ex == {"192.0.2.1": 2100, "192.0.2.2": 11000}, ex
            # each exporter's flows decoded with its own template 256 (no collision)
            a = next(f for f in be.flows if f["exporter"]["ip"] == "192.0.2.1")
            b = next(f for f in be.flows if f["exporter"]["ip"] == "192.0.2.2")
            assert (a["source"]["ip"], a["destination"]["ip"]) == ("10.1.0.1", "10.1.0.2")
            assert (b["source"]["ip"], b["destination"]["ip"]) == ("10.2.0.1", "10.2.0.2")
            assert sum(f["packets"] for f in be.flows if f["exporter"]["ip"] == "192.0.2.1") == 2
            assert sum(f["packets"] for f in be.flows if f["exporter"]["ip"] == "192.0.2.2") == 4
            # sequence state follows the identity: progress per exporter, none under the NAT address
            assert metric(svc, "flowpipe_sequence_delta_total", **D, exporter="192.0.2.1", flow_type="ipfix") == 2
            assert metric(svc, "flowpipe_sequence_delta_total", **D, exporter="192.0.2.2", flow_type="ipfix") == 1
            for name in ("flowpipe_sequence_delta_total", "flowpipe_sequence_reset_total",
                         "flowpipe_flows_lost_estimate_total"):
                assert metric(svc, name, **D, exporter=NAT, flow_type="ipfix") == 0
            assert metric(svc, "flowpipe_flows_lost_estimate_total", **D, exporter="192.0.2.1", flow_type="ipfix") == 0


async def test_udp_identity_is_the_default_for_netflow_listeners() -> None:
    with Backend() as be:
        async with running(make_config(be.url, listeners=[{"flow_type": "ipfix"}])) as svc:
            send_udp(svc.listeners[0].cfg.port, [ipfix(*a_announce(), fset(256, a_record(700)), domain=1)],
                     NAT, NAT_PORT)
            assert await be.wait_flows_async(1, 10)
    assert [f["exporter"]["ip"] for f in be.flows] == [NAT]


V9_A = [(1, 4), (2, 4), (8, 4), (12, 4)]
V9_B = [(12, 4), (8, 4), (2, 4), (1, 4), (4, 1)]


async def test_two_v9_exporters_behind_one_address_mapped_by_source_id(tmp_path: Path) -> None:
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9", "exporter_address": "in-band",
                                              "exporters": {"2193": "10.0.0.1", "77": "edge-2"}}])
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [
                v9(template(256, V9_A, sid=0), source_id=2193, seq=0),
                v9(template(256, V9_B, sid=0), source_id=77, seq=0),
                v9(template(256, V9_A, sid=0), source_id=5, seq=0),    # not in the map: the UDP source
                v9(fset(256, a_record(1000)), source_id=2193, seq=1),
                v9(fset(256, struct.pack("!4s4sIIB", bytes([10, 2, 0, 2]), bytes([10, 2, 0, 1]), 3, 3000, 17)),
                   source_id=77, seq=1),
                v9(fset(256, a_record(500)), source_id=5, seq=1),
            ], NAT, NAT_PORT)
            await wait_bytes(be, 4500)
            assert exporters_of(be.flows) == {"10.0.0.1": 1000, "edge-2": 3000, NAT: 500}
            b = next(f for f in be.flows if f["exporter"]["ip"] == "edge-2")
            assert (b["source"]["ip"], b["packets"], b["ip_protocol"]) == ("10.2.0.1", 3, "UDP")
            assert metric(svc, "flowpipe_sequence_delta_total", **D, exporter="edge-2", flow_type="netflow9") == 1
            assert metric(svc, "flowpipe_sequence_delta_total", **D, exporter="10.0.0.1", flow_type="netflow9") == 1


def sflow_datagram(agent: bytes, seq: int, sport: int) -> bytes:
    hdr = packet_header(bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2]), 6, sport, 443, 0x18, 0, 100,
                        bytes.fromhex("020000000001"), bytes.fromhex("020000000002"))
    return encode_sflow(agent, 0, seq, 1000, [flow_sample(seq, 1, 100, 100 * seq, 0, 1, 2,
                                                          [raw_header_record(hdr, 1500)])])


@pytest.mark.parametrize("mode, expected", [(None, {"192.0.2.1", "192.0.2.2"}), ("udp", {NAT})])
async def test_sflow_agents_behind_one_address(mode: str | None, expected: set[str]) -> None:
    lst = {"flow_type": "sflow5", **({"exporter_address": mode} if mode else {})}
    with Backend() as be:
        async with running(make_config(be.url, listeners=[lst])) as svc:
            send_udp(svc.listeners[0].cfg.port, [sflow_datagram(A4, 1, 1000), sflow_datagram(B4, 1, 2000)],
                     NAT, NAT_PORT)
            assert await be.wait_flows_async(2, 10)
    assert {f["exporter"]["ip"] for f in be.flows} == expected


# ---- the decoder, directly ---------------------------------------------------------------------

SRC = Source(NAT, NAT_PORT)


def flows(dec: TemplateDecoder, data: bytes) -> list[Flow]:
    return [Flow._make(t) for t in dec.decode(data, SRC).flows]


def test_identity_revealed_late_in_a_datagram_applies_to_all_of_it() -> None:
    dec = TemplateDecoder(DecoderConfig(), in_band=True)
    d = dec.decode(ipfix(template(256, A_LAYOUT), fset(256, a_record(1)), options_template(400, [(130, 4)], [(34, 4)]),
                         fset(400, struct.pack("!4sI", A4, 1)), domain=1), SRC)
    assert d.exporter == "192.0.2.1" and [f[1] for f in d.flows] == ["192.0.2.1"]
    assert dec.stats.identities_learned == 1


def test_ipv6_exporter_address_and_per_record_values() -> None:
    dec = TemplateDecoder(DecoderConfig(), in_band=True)
    layout = [(131, 16), (1, 4)]
    recs = struct.pack("!16sI", B6, 1) + struct.pack("!16sI", bytes(16), 2)
    got = flows(dec, ipfix(template(256, layout), fset(256, recs), domain=4))
    # a zero address in a record means "not stated": that record gets the domain's identity
    assert [(f.exporter, f.bytes) for f in got] == [("2001:db8::2", 1), ("2001:db8::2", 2)]


def test_held_data_released_with_the_identity() -> None:
    dec = TemplateDecoder(DecoderConfig(), in_band=True)
    d = dec.decode(ipfix(fset(256, a_record(42)), domain=1), SRC)
    assert d.held == 1 and d.exporter == NAT
    d = dec.decode(ipfix(*a_announce(), domain=1), SRC)
    assert d.released == 1 and d.exporter == "192.0.2.1"
    assert [(f[1], f[7]) for f in d.flows] == [("192.0.2.1", 42)]


def test_udp_mode_ignores_in_band_addresses() -> None:
    dec = TemplateDecoder(DecoderConfig())
    d = dec.decode(ipfix(template(256, B_LAYOUT), fset(256, b_record(9)), domain=2), SRC)
    assert d.exporter == NAT and [f[1] for f in d.flows] == [NAT]


def test_in_band_falls_back_to_the_map_then_the_udp_source() -> None:
    dec = TemplateDecoder(DecoderConfig(), in_band=True, exporters={7: "core-1"})
    assert flows(dec, ipfix(template(256, A_LAYOUT), fset(256, a_record(1)), domain=7))[0].exporter == "core-1"
    assert flows(dec, ipfix(template(256, A_LAYOUT), fset(256, a_record(1)), domain=8))[0].exporter == NAT
    # an address the exporter announces wins over the map
    d = dec.decode(ipfix(*a_announce(), fset(256, a_record(1)), domain=7), SRC)
    assert d.exporter == "192.0.2.1"


def test_mapped_exporters_have_their_own_template_caps() -> None:
    # one template per exporter allowed: two routers behind one address, each mapped, both fit
    dec = TemplateDecoder(DecoderConfig(max_templates_per_exporter=1), in_band=True,
                          exporters={1: "r1", 2: "r2"})
    for did in (1, 2):
        dec.decode(v9(template(256, V9_A, sid=0), source_id=did), SRC)
    assert dec.registry.stats.templates == 2 and dec.registry.stats.refused_cap == 0
    udp = TemplateDecoder(DecoderConfig(max_templates_per_exporter=1))
    for did in (1, 2):
        udp.decode(v9(template(256, V9_A, sid=0), source_id=did), SRC)
    assert udp.registry.stats.templates == 1 and udp.registry.stats.refused_cap == 1


def test_identity_survives_a_snapshot() -> None:
    dec = TemplateDecoder(DecoderConfig(), in_band=True)
    dec.decode(ipfix(*a_announce(), domain=1), SRC)
    again = TemplateDecoder(DecoderConfig(), in_band=True)
    again.restore(dec.snapshot())
    assert [f.exporter for f in flows(again, ipfix(fset(256, a_record(5)), domain=1))] == ["192.0.2.1"]
    # a snapshot of a domain with no in-band identity keeps the earlier format (10 entries)
    udp = TemplateDecoder(DecoderConfig())
    udp.decode(ipfix(template(256, A_LAYOUT), domain=1), SRC)
    assert [len(e) for e in udp.snapshot()["domains"]] == [10]


def test_dispatch_applies_the_listener_options() -> None:
    lc = ListenerConfig(flow_type="sflow5", exporter_address="udp")
    d = DatagramDecoder("sflow5", DecoderConfig(), [], lc).decode(sflow_datagram(A4, 1, 1), SRC)
    assert d.exporter == NAT and d.flows[0][1] == NAT
    assert DatagramDecoder("sflow5", DecoderConfig(), []).decode(sflow_datagram(A4, 1, 1), SRC).exporter == "192.0.2.1"
    lc = ListenerConfig(flow_type="netflow9", exporter_address="in-band", exporters={"9": "r9"})
    dec = DatagramDecoder("netflow9", DecoderConfig(), [], lc)
    assert dec.decode(v9(template(256, V9_A, sid=0), source_id=9), SRC).exporter == "r9"
    # NetFlow v5 has no in-band identity: the UDP source, whatever the listener says
    rec = DefaultRecord(bytes([10, 3, 0, 1]), bytes([10, 3, 0, 2]), bytes(4), 1, 2, 3, 300, 900, 1000, 1, 2, 0, 6,
                        0, 0, 0, 24, 24)
    assert dec.decode(encode_v5([rec], 2000, int(time.time()), 0), SRC).exporter == NAT


# ---- config ------------------------------------------------------------------------------------

def test_defaults_per_flow_type() -> None:
    assert ListenerConfig(flow_type="sflow5").exporter_address == "in-band"
    for ft in ("netflow5", "netflow9", "ipfix"):
        assert ListenerConfig(flow_type=ft).exporter_address == "udp"


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return str(p)


def test_config_file_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listeners]]\nflow_type = "netflow9"\nexporter_address = "in-band"\n'
                           '[listeners.exporters]\n2193 = "10.0.0.1"\n"77" = "edge-2"\n')
    cfg = load(path)
    assert cfg.listeners[0].exporter_ids() == {2193: "10.0.0.1", 77: "edge-2"}
    text = dump(cfg)
    assert 'exporter_address = "in-band"' in text and 'exporters = {"2193" = "10.0.0.1", "77" = "edge-2"}' in text
    assert load(write(tmp_path, text)).listeners[0].exporters == cfg.listeners[0].exporters


@pytest.mark.parametrize("body, key, words", [
    ('exporter_address = "nat"', "listeners[0].exporter_address", "must be one of"),
    ('exporter_address = "in-band"\nexporters = {"x1" = "a"}', "listeners[0].exporters", "not a source id"),
    ('exporter_address = "in-band"\nexporters = {"1" = ""}', "listeners[0].exporters", "1..255 characters"),
    ('exporters = {"1" = "a"}', "listeners[0].exporters", "in-band"),
])
def test_bad_identity_config(tmp_path: Path, body: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, f'[[listeners]]\nflow_type = "netflow9"\n{body}\n'))
    assert e.value.key == key and words in e.value.reason


def test_sflow_listener_has_no_source_id_map(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, '[[listeners]]\nflow_type = "sflow5"\nexporters = {"1" = "a"}\n'))
    assert e.value.key == "listeners[0].exporters" and "agent address" in e.value.reason


def test_v9_options_record_with_the_exporter_address() -> None:
    dec = TemplateDecoder(DecoderConfig(), in_band=True, exporters={3: "mapped-3"})
    # options template 300: scope System (type 1, 4 bytes), option exporterIPv4Address (130)
    opt = fset(1, struct.pack("!HHH", 300, 4, 4) + struct.pack("!HHHH", 1, 4, 130, 4))
    d = dec.decode(v9(template(256, V9_A, sid=0), opt, fset(300, struct.pack("!I4s", 0, A4)),
                      fset(256, a_record(1)), source_id=3), SRC)
    assert d.exporter == "192.0.2.1" and [f[1] for f in d.flows] == ["192.0.2.1"]
    # a v9 scope field of type 130 is not an exporter address (v9 scope types are their own space)
    dec2 = TemplateDecoder(DecoderConfig(), in_band=True)
    opt2 = fset(1, struct.pack("!HHH", 300, 4, 4) + struct.pack("!HHHH", 130, 4, 34, 4))
    d = dec2.decode(v9(opt2, fset(300, struct.pack("!4sI", A4, 1)), source_id=3), SRC)
    assert d.exporter == NAT
