"""Vendor quirks (issue #21), each through the running service: exports built with flowpipe.export
in the vendor's layout, sent over UDP, the flows read back from a real HTTP backend."""
from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from flowpipe.config import MappingConfig
from flowpipe.export import IpfixEncoder, Netflow9Encoder, Template
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp, sums
from tests.support.vendor import (
    ASA_CREATE,
    ASA_DENY,
    ASA_TEARDOWN,
    BIFLOW,
    CREATE,
    IXIA,
    TEARDOWN,
    UPDATE,
    asa,
    asa_deny,
    biflow_records,
    ixia_records,
)

UPTIME = 3_600_000  # ms


def v9(templates: list[Template], data: list[tuple[Template, list[Any]]], source_id: int = 1) -> list[bytes]:
    """A template packet, then one data packet per (template, records)."""
    enc, now = Netflow9Encoder(source_id), int(time.time())
    return [enc.template_packet(templates, UPTIME, now)] + [enc.data_packet(t, recs, UPTIME, now) for t, recs in data]


def ipfix(templates: list[Template], data: list[tuple[Template, list[Any]]], domain: int = 1) -> list[bytes]:
    enc, now = IpfixEncoder(domain), int(time.time())
    return [enc.template_message(templates, now)] + [enc.data_message(t, recs, now) for t, recs in data]


async def deliver(listener: dict[str, Any], packets: list[bytes], source: str, flows: int,
                  **sections: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Send ``packets`` from ``source`` to a service with ``listener``; the flows the backend received
    (at least ``flows`` of them) and the decode_parts_skipped metric by reason."""
    with Backend() as be:
        async with running(make_config(be.url, listeners=[listener], **sections)) as svc:
            send_udp(svc.listeners[0].cfg.port, packets, source)
            assert await be.wait_flows_async(flows, 10), be.flows
            skipped = {r: metric(svc, "flowpipe_decode_parts_skipped_total", flow_type=listener["flow_type"],
                                 reason=r) for r in ("bad_template", "record_overrun", "no_template")}
    return be.flows, skipped


# ---- 1. zero-length fields ending a data template ---------------------------------------------

ZERO_TAIL = [8, 12, 7, 11, 4, (1, 4), (2, 4), (0, 0)]  # addresses, ports, protocol, counters, type 0 length 0


async def test_zero_length_field_ending_a_v9_template_is_skipped() -> None:
    t = Template(ZERO_TAIL, 260)
    recs = [(f"10.21.0.{i}", "10.21.1.1", 1000 + i, 53, 17, 100 * i, i, b"") for i in range(1, 11)]
    flows, skipped = await deliver({"flow_type": "netflow9"}, v9([t], [(t, recs)]), "127.0.21.1", 10)
    assert len(flows) == 10  # was 0: the template was refused and its data held until it expired
    assert sums(flows)[("10.21.0.3", "10.21.1.1", 17, 1003, 53)] == [300, 3]
    assert skipped["bad_template"] == 0


async def test_zero_length_field_in_an_ipfix_template_is_skipped() -> None:
    t = Template([(0, 0)] + ZERO_TAIL[:-1], 261)
    recs = [(b"", "10.21.2.1", "10.21.3.1", 40000, 443, 6, 1500, 2)]
    flows, skipped = await deliver({"flow_type": "ipfix"}, ipfix([t], [(t, recs)]), "127.0.21.2", 1)
    assert sums(flows) == {("10.21.2.1", "10.21.3.1", 6, 40000, 443): [1500, 2]}
    assert skipped["bad_template"] == 0


# ---- 2. variable-length fields in NetFlow v9 (H3C NetStream: IE 236 VRF name) ----------------

H3C = [(2, 8), (1, 8), (22, 4), (21, 4), (10, 4), (14, 4), 8, 12, 15, 7, 11, 60, 6, 4, 5, 61, (236, 0xFFFF)]


def h3c_record(i: int, vrf: str) -> tuple:
    return (i, 100 * i, UPTIME - 5000, UPTIME - 1000, 3, 4, f"10.22.0.{i}", "10.22.1.1", "10.22.1.254",
            2000 + i, 80, 4, 0x18, 6, 0, 0, vrf)


async def test_variable_length_vrf_name_in_v9_is_read() -> None:
    t = Template(H3C, 3281)
    long_name = "vrf-" + "x" * 296  # 300 bytes: the 255 + 2-byte length form
    recs = [h3c_record(1, "vrf-blue"), h3c_record(2, ""), h3c_record(3, long_name)]
    listener = {"flow_type": "netflow9", "mapping": [MappingConfig(field=236, destination="vrf", type="string")]}
    flows, skipped = await deliver(listener, v9([t], [(t, recs)]), "127.0.22.1", 3)
    by_src = {f["source"]["ip"]: f for f in flows}
    assert by_src["10.22.0.1"]["additional_fields"] == {"vrf": "vrf-blue"}
    assert by_src["10.22.0.3"]["additional_fields"] == {"vrf": long_name}
    assert [by_src[f"10.22.0.{i}"]["bytes"] for i in (1, 2, 3)] == [100, 200, 300]
    assert by_src["10.22.0.1"]["ingress"] == {"interface": {"index": 3}}
    assert skipped["bad_template"] == skipped["record_overrun"] == 0


async def test_a_v9_variable_length_record_that_overruns_its_set_is_counted() -> None:
    t = Template(H3C, 3282)
    good = v9([t], [(t, [h3c_record(1, "vrf-a"), h3c_record(2, "vrf-name-two")])])
    # The flowset ends 8 bytes early: the second record's name prefix says more than is left.
    set_len = int.from_bytes(good[1][22:24], "big") - 8
    cut = good[1][:22] + set_len.to_bytes(2, "big") + good[1][24:20 + set_len]
    flows, skipped = await deliver({"flow_type": "netflow9"}, [good[0], cut], "127.0.22.2", 1)
    assert [f["source"]["ip"] for f in flows] == ["10.22.0.1"] and skipped["record_overrun"] == 1


# ---- 4. Cisco WLC: no address fields, the wireless client in 365/366 -------------------------

# AireOS client template: staMacAddress, staIPv4Address, applicationId, wlanSSID, flowDirection,
# bytes, packets, post-DSCP, DSCP, wtpMacAddress (the AP)
WLC = [365, 366, 95, 147, 61, (1, 8), (2, 8), (98, 1), (195, 1), 367]


def wlc_record(client: int, direction: int, nbytes: int) -> tuple:
    return (f"00:11:22:33:44:{client:02x}", f"10.24.0.{client}", bytes(4), "corp-wifi", direction,
            nbytes, nbytes // 100, 0, 0, "58:bf:ea:01:5b:40")


async def test_wlc_station_address_fills_the_side_its_direction_names() -> None:
    t = Template(WLC, 261)
    recs = [wlc_record(c, d, 1000 * c + 100 * d) for c in (1, 2, 3) for d in (0, 1)]
    flows, _ = await deliver({"flow_type": "netflow9"}, v9([t], [(t, recs)]), "127.0.24.1", 6)
    assert len(flows) == 6  # one context per client and direction, not one for all
    got = {(f["source"]["ip"], f["destination"]["ip"], f["direction"]): (f["bytes"], f["source"]["mac"],
                                                                          f["destination"]["mac"]) for f in flows}
    # direction 0 (ingress): the client sent it, it is the source; 1 (egress): toward the client
    assert got[("10.24.0.2", "", "ingress")] == (2000, "00:11:22:33:44:02", "00:00:00:00:00:00")
    assert got[("", "10.24.0.2", "egress")] == (2100, "00:00:00:00:00:00", "00:11:22:33:44:02")
    assert {f["ether_type"] for f in flows} == {"IPv4"}


# ---- 3. Cisco ASA NSEL: events, initiator/responder counters, counted once per connection ----


def asa_sequence() -> tuple[list[Template], list[tuple[Template, list[Any]]]]:
    """A realistic ASA stream: a long connection (create, two timer updates, the update at teardown,
    the teardown with totals), a short one (create, teardown only), a denied one, and a connection
    whose update at teardown arrives after its teardown."""
    c, t, d = Template(ASA_CREATE, 256), Template(ASA_TEARDOWN, 257), Template(ASA_DENY, 258)
    long_, short, late = ("10.25.0.10", 50000, "192.0.2.80", 443), ("10.25.0.11", 50001, "192.0.2.53", 53), \
        ("10.25.0.12", 50002, "192.0.2.81", 8443)
    data = [
        (c, [asa(1001, *long_, CREATE), asa(1002, *short, CREATE, proto=6), asa(1003, *late, CREATE)]),
        (t, [asa(1001, *long_, UPDATE, counts=(1000, 50000)), asa(1003, *late, UPDATE, counts=(200, 800))]),
        (t, [asa(1001, *long_, UPDATE, counts=(500, 20000))]),
        (d, [asa_deny("10.25.0.66", 40000, "192.0.2.25", 22)]),
        (t, [asa(1001, *long_, UPDATE, counts=(100, 3000)),                 # the update at teardown
             asa(1001, *long_, TEARDOWN, 2030, counts=(1600, 73000)),       # totals
             asa(1002, *short, TEARDOWN, 2030, counts=(300, 900)),
             asa(1003, *late, TEARDOWN, 2030, counts=(250, 1000))]),
        (t, [asa(1003, *late, UPDATE, counts=(50, 200))]),                  # late: inside the totals
    ]
    return [c, t, d], data


async def nsel_run(listener: dict[str, Any], packets: list[bytes], source: str,
                   **sections: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Deliver ``packets``; every flow (the service is stopped, so all are flushed) and the NSEL metrics."""
    with Backend() as be:
        async with running(make_config(be.url, listeners=[listener], **sections)) as svc:
            send_udp(svc.listeners[0].cfg.port, packets, source)
            assert await be.wait_flows_async(1, 10)
            for _ in range(50):  # decoder statistics reach the metrics every 2 s
                if metric(svc, "flowpipe_nsel_records_total", outcome="create"):
                    break
                await trio.sleep(0.1)
            got = {o: metric(svc, "flowpipe_nsel_records_total", outcome=o)
                   for o in ("flow", "create", "counted_before")}
    return be.flows, got


@pytest.mark.slow
async def test_asa_connection_counted_once_across_updates_and_teardown() -> None:
    templates, data = asa_sequence()
    flows, outcomes = await nsel_run({"flow_type": "netflow9"}, v9(templates, data), "127.0.25.1")
    got = sums(flows)
    # bytes = initiator + responder; the long connection's updates (deltas) add up to its teardown's
    # totals: counted once (74600, not 149200); the short one only has its teardown
    assert got[("10.25.0.10", "192.0.2.80", 6, 50000, 443)][0] == 1600 + 73000
    assert got[("10.25.0.11", "192.0.2.53", 6, 50001, 53)][0] == 300 + 900
    assert got[("10.25.0.12", "192.0.2.81", 6, 50002, 8443)][0] == 250 + 1000  # the late update adds nothing
    assert got[("10.25.0.66", "192.0.2.25", 6, 40000, 22)] == [0, 0]  # the denied connection is shown
    assert len(got) == 4  # no 0-byte flow of a create event
    events = {(f["source"]["ip"], f["additional_fields"]["fw_event"]) for f in flows}
    assert ("10.25.0.66", "deny") in events and ("10.25.0.11", "teardown") in events
    assert {f["additional_fields"]["fw_ext_event"] for f in flows if f["source"]["ip"] == "10.25.0.66"} == {1001}
    assert outcomes == {"create": 3, "counted_before": 2, "flow": 7}


@pytest.mark.slow
async def test_asa_responder_bytes_as_their_own_flow_with_reverse_flows() -> None:
    templates, data = asa_sequence()
    flows, _ = await nsel_run({"flow_type": "netflow9", "reverse_flows": True}, v9(templates, data), "127.0.25.2")
    got = sums(flows)
    assert got[("10.25.0.11", "192.0.2.53", 6, 50001, 53)] == [300, 0]   # initiator -> responder
    assert got[("192.0.2.53", "10.25.0.11", 6, 53, 50001)] == [900, 0]   # responder -> initiator
    assert got[("192.0.2.80", "10.25.0.10", 6, 443, 50000)] == [73000, 0]
    assert sum(b for b, _ in got.values()) == 1600 + 73000 + 300 + 900 + 250 + 1000


async def test_asa_state_is_per_exporter() -> None:
    """Two ASAs reuse connection ids: one's updates never discount the other's teardown."""
    t = Template(ASA_TEARDOWN, 257)
    conn = ("10.25.1.1", 50000, "192.0.2.1", 443)
    a = v9([t], [(t, [asa(7, *conn, UPDATE, counts=(1000, 0))])])
    b = v9([t], [(t, [asa(7, *conn, TEARDOWN, counts=(5000, 0))])])
    with Backend() as be:
        async with running(make_config(be.url, listeners=[{"flow_type": "netflow9"}])) as svc:
            send_udp(svc.listeners[0].cfg.port, a, "127.0.25.3")
            send_udp(svc.listeners[0].cfg.port, b, "127.0.25.4")
            assert await be.wait_flows_async(2, 10)
    by_exporter = {f["exporter"]["ip"]: f["bytes"] for f in be.flows}
    assert by_exporter == {"127.0.25.3": 1000, "127.0.25.4": 5000}


# ---- 5. reverse counters: RFC 5103 biflows and IXIA reverse deltas ---------------------------


async def test_rfc5103_reverse_direction_as_its_own_flow() -> None:
    t = Template(BIFLOW, 300)
    packets = ipfix([t], [(t, biflow_records())])
    flows, _ = await deliver({"flow_type": "ipfix", "reverse_flows": True}, packets, "127.0.27.1", 3)
    assert sums(flows) == {("10.27.0.1", "192.0.2.10", 6, 40000, 443): [1200, 10],
                           ("192.0.2.10", "10.27.0.1", 6, 443, 40000): [64000, 50],   # swapped, reverse counters
                           ("10.27.0.2", "192.0.2.11", 17, 40001, 53): [80, 1]}       # nothing came back
    back = next(f for f in flows if f["source"]["ip"] == "192.0.2.10")
    assert back["tcp_flags"] == ["SYN", "ACK"]  # reverseTcpControlBits


async def test_reverse_counters_dropped_by_default_and_ixia_reverse_deltas() -> None:
    t, x = Template(BIFLOW, 300), Template(IXIA, 301)
    flows, _ = await deliver({"flow_type": "ipfix"}, ipfix([t], [(t, biflow_records())]), "127.0.27.2", 2)
    assert sorted(f["source"]["ip"] for f in flows) == ["10.27.0.1", "10.27.0.2"]  # off: as before
    flows, _ = await deliver({"flow_type": "ipfix", "reverse_flows": True}, ipfix([x], [(x, ixia_records())]),
                             "127.0.27.3", 2)
    assert sums(flows) == {("10.27.1.1", "192.0.2.20", 6, 40000, 80): [360, 4],
                           ("192.0.2.20", "10.27.1.1", 6, 80, 40000): [9000, 8]}


def test_vendor_rules_derive_columns_per_record_templates_stay_flow_tuples() -> None:
    """NSEL and (with reverse_flows) biflow and IXIA sets go to the accumulator's columnar path as
    chunks of the flows their rules derive (the NSEL record's responder share and the biflow's
    reverse direction included), as an ordinary template's do; WLC's (a client address on the side
    its direction says: no plan reads it) are decoded record by record."""
    from flowpipe.config import DecoderConfig
    from flowpipe.decode.base import Source
    from flowpipe.decode.template_decoder import TemplateDecoder

    dec = TemplateDecoder(DecoderConfig(), columnar=True, reverse=True)
    ordinary = Template(BIFLOW[:8], 310)
    cases = [(v9, Template(ASA_TEARDOWN, 311), [asa(1, "10.28.0.1", 1, "10.28.0.2", 2, TEARDOWN, counts=(5, 6))]),
             (v9, Template(WLC, 312), [wlc_record(1, 0, 100)]),
             (ipfix, Template(BIFLOW, 313), biflow_records()),
             (ipfix, Template(IXIA, 314), ixia_records()),
             (ipfix, ordinary, [("10.28.1.1", "10.28.1.2", 1, 2, 6, 100, 1, 0)])]
    got = []
    for make, t, recs in cases:
        tpl, data = make([t], [(t, recs)], 9)
        dec.decode(tpl, Source("127.0.28.1"))
        d = dec.decode(data, Source("127.0.28.1"))
        got.append((len(d.flows), sum(c.count for c in d.chunks)))
    assert got == [(0, 2), (1, 0), (0, 3), (0, 2), (0, 1)]


def test_payload_doc_lists_the_vendor_rules() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "payload.md").read_text()
    rules = doc.split("## Vendor rules", 1)[1].split("\n## ", 1)[0]
    for word in ("zero-length", "variable-length", "NSEL", "flow-update", "teardown", "flow-create", "denied",
                 "fw_event", "fw_ext_event", "WLC", "staIPv4Address", "RFC 5103", "IXIA", "reverse_flows",
                 "nsel_max_connections_per_exporter", "flowpipe_nsel_connections_dropped_total"):
        assert word in rules, word
