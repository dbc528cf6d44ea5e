"""Datadog Agent parity through the running service (real UDP in, real HTTP payload out): NetFlow v5
times, IP protocol names, the default type of a [[listeners.mapping]] entry."""
from __future__ import annotations

import json
import socket
import struct

import trio

from flowpipe.config import MappingConfig
from flowpipe.protocols import PROTOCOL_KEYWORDS
from tests.support.backend import Backend
from tests.support.netflow9 import fset, ip4, tpl, v9
from tests.support.service_helpers import http_get, make_config, metric, running, send_udp

SECS, UPTIME = 1_700_000_000, 50_000_000


def v5(records: list[bytes], secs: int = SECS, nsecs: int = 0, uptime: int = UPTIME, seq: int = 1) -> bytes:
    return struct.pack("!HHIIIIBBH", 5, len(records), uptime, secs, nsecs, seq, 0, 0, 0) + b"".join(records)


def v5rec(first: int, last: int, proto: int = 6, sport: int = 1000, nbytes: int = 100) -> bytes:
    return struct.pack("!4s4s4sHHIIIIHHxBBBHHBBxx", ip4("10.0.0.1"), ip4("10.0.0.2"), bytes(4), 1, 2, 1, nbytes,
                       first, last, sport, 80, 0, proto, 0, 0, 0, 24, 24)


async def test_v5_times_follow_the_agents_arithmetic() -> None:
    # (first, last) ms of uptime before the header; nanoseconds near a whole second must not matter
    cases = {1001: (UPTIME - 1500, UPTIME - 1),      # 1.5 s and 1 ms before: start secs-1, end secs
             1002: (UPTIME - 2999, UPTIME - 1000),   # 2.999 s -> 2 s; exactly 1 s -> 1 s
             1003: (UPTIME - 999, UPTIME),           # under a second: secs; the header time itself: secs
             1004: (UPTIME + 1500, UPTIME + 2500)}   # after the header (clock skew): toward zero, +1 s, +2 s
    want = {1001: (SECS - 1, SECS), 1002: (SECS - 2, SECS - 1), 1003: (SECS, SECS), 1004: (SECS + 1, SECS + 2)}
    with Backend() as be:
        async with running(make_config(be.url)) as svc:
            port = svc.listeners[0].cfg.port
            recs = [v5rec(f, last, sport=sp) for sp, (f, last) in cases.items()]
            send_udp(port, [v5(recs, nsecs=999_999_999)], "127.0.18.1")
            # the same flows again in one datagram per record (a different exporter): same times
            send_udp(port, [v5([r], nsecs=999_999_999) for r in recs], "127.0.18.2")
            assert await be.wait_flows_async(8, 10)
    got = {(f["exporter"]["ip"], int(f["source"]["port"])): (f["start"], f["end"]) for f in be.flows}
    assert got == {(ip, sp): t for ip in ("127.0.18.1", "127.0.18.2") for sp, t in want.items()}


async def test_every_ip_protocol_number_is_named_like_the_agent() -> None:
    with Backend() as be:
        async with running(make_config(be.url)) as svc:
            recs = [v5rec(UPTIME - 10, UPTIME - 5, proto=n, sport=2000 + n) for n in range(256)]
            send_udp(svc.listeners[0].cfg.port, [v5(recs[:128]), v5(recs[128:])], "127.0.18.3")
            assert await be.wait_flows_async(256, 10)
    got = {int(f["source"]["port"]) - 2000: f["ip_protocol"] for f in be.flows}
    assert len(got) == 256
    spot = {0: "HOPOPT", 1: "ICMP", 3: "GGP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 78: "WB-MON", 84: "IPTM",
            93: "AX.25", 94: "IPIP", 107: "A/N", 124: "ISIS over IPv4", 135: "Mobility Header", 136: "UDPLite",
            137: "MPLS-in-IP", 138: "manet", 143: "Ethernet", 255: "Reserved"}
    assert {n: got[n] for n in spot} == spot
    unnamed = [61, 63, 68, 99, 114] + list(range(144, 255))  # no IANA keyword, unassigned, experimental
    assert all(got[n] == str(n) for n in unnamed)
    assert sum(1 for n in range(256) if got[n] != str(n)) == len(PROTOCOL_KEYWORDS) == 140
    assert got == {n: PROTOCOL_KEYWORDS.get(n, str(n)) for n in range(256)}


async def test_mapping_without_type_is_the_agents_hex() -> None:
    mapping = [MappingConfig(field=58, destination="vlan_hex"),
               MappingConfig(field=58, destination="vlan_int", type="integer"),
               MappingConfig(field=59, destination="source.port")]  # a built-in integer destination
    layout = [(1, 4), (2, 4), (8, 4), (12, 4), (58, 2), (59, 2)]
    rec = struct.pack("!II", 100, 1) + ip4("10.1.0.1") + ip4("10.1.0.2") + struct.pack("!HH", 0x2D0C, 4242)
    with Backend() as be:
        async with running(make_config(be.url, [{"flow_type": "netflow9", "mapping": mapping}])) as svc:
            send_udp(svc.listeners[0].cfg.port, [v9(tpl(256, layout), fset(256, rec))], "127.0.18.4")
            assert await be.wait_flows_async(1, 10)
    (f,) = be.flows
    assert f["additional_fields"] == {"vlan_hex": "2d0c", "vlan_int": 0x2D0C}
    assert f["source"]["port"] == "4242"


def send_west(payloads: list[bytes], port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.18.6", 0))
        for p in payloads:
            s.sendto(p, ("127.0.0.2", port))


async def test_sequence_last_and_namespace_label_per_exporter() -> None:
    # one exporter address feeding two listeners of different namespaces: two series, not one
    listeners = [{"flow_type": "netflow5", "namespace": "east"},
                 {"flow_type": "netflow5", "namespace": "west", "bind_host": "127.0.0.2"}]
    rec = v5rec(UPTIME - 10, UPTIME - 5)
    east = {"namespace": "east", "exporter": "127.0.18.6", "flow_type": "netflow5"}
    west = {**east, "namespace": "west"}
    with Backend() as be:
        async with running(make_config(be.url, listeners)) as svc:
            pe, pw = (lc.cfg.port for lc in svc.listeners)
            send_udp(pe, [v5([rec], seq=100), v5([rec], seq=101), v5([rec], seq=105)], "127.0.18.6")
            send_west([v5([rec], seq=7_000), v5([rec], seq=7_001)], pw)
            with trio.move_on_after(10):
                while (metric(svc, "flowpipe_sequence_last", **east) != 105
                       or metric(svc, "flowpipe_sequence_last", **west) != 7_001):
                    await trio.sleep(0.05)
            assert metric(svc, "flowpipe_sequence_last", **east) == 105
            assert metric(svc, "flowpipe_sequence_last", **west) == 7_001
            # east: +1 (101), then 3 flows missing and +4 (105); west: +1; the first datagram is a baseline
            assert metric(svc, "flowpipe_sequence_delta_total", **east) == 5
            assert metric(svc, "flowpipe_flows_lost_estimate_total", **east) == 3
            assert metric(svc, "flowpipe_sequence_delta_total", **west) == 1
            # an exporter restart: a jump back of more than 1000 flows is a reset; delta adds the datagram's 1 flow
            send_west([v5([rec], seq=3)], pw)
            with trio.move_on_after(10):
                while metric(svc, "flowpipe_sequence_last", **west) != 3:
                    await trio.sleep(0.05)
            assert metric(svc, "flowpipe_sequence_reset_total", **west) == 1
            assert metric(svc, "flowpipe_sequence_delta_total", **west) == 2
            assert metric(svc, "flowpipe_sequence_reset_total", **east) == 0


async def test_exporters_endpoint_lists_the_exporters_a_test_sent_from() -> None:
    rec = v5rec(UPTIME - 10, UPTIME - 5)
    with Backend() as be:
        async with running(make_config(be.url)) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [v5([rec, rec], seq=10), v5([rec], seq=12)], "127.0.18.7")
            send_udp(port, [v5([rec], seq=500)], "127.0.18.8")
            url = f"http://127.0.0.1:{svc.metrics_server.port}/exporters"
            with trio.move_on_after(10):
                while len(json.loads((await trio.to_thread.run_sync(http_get, url))[1])) < 2:
                    await trio.sleep(0.05)
            status, body = await trio.to_thread.run_sync(http_get, url)
    assert status == 200
    got = {e["address"]: e for e in json.loads(body)}
    assert set(got) == {"127.0.18.7", "127.0.18.8"}
    a = got["127.0.18.7"]
    assert (a["namespace"], a["flow_type"], a["datagrams"], a["flows"]) == ("default", "netflow5", 2, 3)
    assert a["id"] == "default:127.0.18.7:netflow5" and a["first_seen"] <= a["last_seen"]
    assert a["domains"] == [{"domain": 0, "sequence_last": 12, "sequence_expected": 13, "resets": 0}]
    assert got["127.0.18.8"]["domains"][0]["sequence_last"] == 500


async def test_additional_fields_at_the_top_level_when_asked_and_collisions_stay_nested() -> None:
    mapping = [MappingConfig(field=58, destination="vlan", type="integer"),
               MappingConfig(field=95, destination="type"),   # collides with a payload field
               MappingConfig(field=82, destination="source", type="string")]  # collides with an object
    layout = [(1, 4), (2, 4), (8, 4), (12, 4), (58, 2), (95, 4), (82, 4)]
    rec = (struct.pack("!II", 100, 1) + ip4("10.1.0.1") + ip4("10.1.0.2") + struct.pack("!H", 12)
           + bytes.fromhex("0a0b0c0d") + b"eth0")
    got = {}
    for where in ("top_level", "nested"):
        with Backend() as be:
            cfg = make_config(be.url, [{"flow_type": "netflow9", "mapping": mapping}],
                              forwarder={"additional_fields": where})
            async with running(cfg) as svc:
                send_udp(svc.listeners[0].cfg.port, [v9(tpl(256, layout), fset(256, rec))], "127.0.18.9")
                assert await be.wait_flows_async(1, 10)
        (got[where],) = be.flows
    top, nested = got["top_level"], got["nested"]
    assert nested["additional_fields"] == {"vlan": 12, "type": "0a0b0c0d", "source": "eth0"}
    assert "vlan" not in nested
    assert top["vlan"] == 12
    assert top["type"] == "netflow9" and top["source"]["ip"] == "10.1.0.1"  # payload fields win
    assert top["additional_fields"] == {"type": "0a0b0c0d", "source": "eth0"}
    assert {k: v for k, v in top.items() if k not in ("vlan", "additional_fields", "flush_timestamp")} == \
        {k: v for k, v in nested.items() if k not in ("additional_fields", "flush_timestamp")}
