"""Payload rendering follows the contract's flow object."""
from __future__ import annotations

import json

from flowpipe.flow import ROLLED_UP, FlushBatch, make_flow
from flowpipe.render import mask_text, render_batch


def test_flow_object_has_the_contract_shape() -> None:
    f = list(make_flow(type="netflow9", exporter="192.0.2.1", sampling_rate=100, direction=1, start=10, end=20,
                       bytes=1500, packets=3, ip_protocol=6, src_ip=bytes([10, 0, 0, 1]),
                       dst_ip=bytes([10, 0, 0, 2]), src_port=443, dst_port=ROLLED_UP, src_mac=0x0011223344AA,
                       src_mask=24, in_if=1, out_if=2, tcp_flags=0x12, next_hop=bytes([10, 0, 0, 254]),
                       extras={"vlan": 12}))
    (o,) = render_batch(FlushBatch(1700000000.1234, [f], {bytes([10, 0, 0, 2]): "db-2.example.internal"}), "node-1")
    assert o == {
        "flush_timestamp": 1700000000123, "type": "netflow9", "sampling_rate": 100, "direction": "egress",
        "start": 10, "end": 20, "bytes": 1500, "packets": 3, "ether_type": "IPv4", "ip_protocol": "TCP",
        "device": {"namespace": "default"}, "exporter": {"ip": "192.0.2.1"},
        "source": {"ip": "10.0.0.1", "port": "443", "mac": "00:11:22:33:44:aa", "mask": "10.0.0.0/24"},
        "destination": {"ip": "10.0.0.2", "port": "*", "mac": "00:00:00:00:00:00", "mask": "0.0.0.0/0",
                        "reverse_dns_hostname": "db-2.example.internal"},
        "ingress": {"interface": {"index": 1}}, "egress": {"interface": {"index": 2}}, "host": "node-1",
        "tcp_flags": ["SYN", "ACK"], "next_hop": {"ip": "10.0.0.254"}, "additional_fields": {"vlan": 12}}
    json.dumps(o)


def test_ipv6_unknown_protocol_and_mapped_addresses() -> None:
    v6 = bytes.fromhex("20010db8000000000000000000000001")
    mapped = bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 7])
    (o,) = render_batch(FlushBatch(0, [list(make_flow(ether_type=0x86DD, ip_protocol=253, src_ip=v6, dst_ip=mapped,
                                                      src_mask=32))]), "h")
    assert o["ether_type"] == "IPv6" and o["ip_protocol"] == "253"
    assert o["source"] == {"ip": "2001:db8::1", "port": "0", "mac": "00:00:00:00:00:00", "mask": "2001:db8::/32"}
    assert o["destination"]["ip"] == "192.0.2.7"
    assert o["next_hop"] == {"ip": ""} and "tcp_flags" in o and o["tcp_flags"] == []
    assert "additional_fields" not in o


def test_mask_rendering_edge_cases() -> None:
    assert mask_text(bytes([130, 240, 103, 204]), 20) == "130.240.96.0/20"
    assert mask_text(b"", 8) == "/8"
    assert mask_text(bytes(4), 40) == "/40"


def test_counters_past_64_bits_saturate() -> None:
    (o,) = render_batch(FlushBatch(0, [list(make_flow(bytes=2**65, packets=3))]), "h")
    assert o["bytes"] == 2**64 - 1 and o["packets"] == 3
