"""Vendor quirks (issue #21), each through the running service: exports built with flowpipe.export
in the vendor's layout, sent over UDP, the flows read back from a real HTTP backend."""
from __future__ import annotations

import time
from typing import Any

from flowpipe.config import MappingConfig
from flowpipe.export.ipfix import IpfixEncoder
from flowpipe.export.netflow9 import Netflow9Encoder, Template
from tests.backend import Backend
from tests.service_helpers import make_config, metric, running, send_udp, sums

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
