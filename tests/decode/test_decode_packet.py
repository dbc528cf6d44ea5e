"""Sampled packet header parsing: layers, truncation, malformed stacks and chains."""
from __future__ import annotations

import struct

import pytest

from flowpipe.decode import packet
from flowpipe.decode.packet import Header
from tests.support.packets import A4, A6, B4, B6, DMAC, SMAC, eth, ext, icmp, ipv4, ipv6, mpls, tcp, udp


def parse(frame: bytes, proto: int = packet.ETHERNET) -> Header:
    return Header._make(packet.parse(frame, 0, len(frame), proto))


# ---- tests ----

def test_ethernet_ipv4_tcp() -> None:
    h = parse(eth(ipv4(tcp(40000, 443, 0x12), tos=0x28)))
    assert h == Header(0x0800, 6, A4, B4, 40000, 443, SMAC, DMAC, 0x12, 0x28, 0, "")


def test_ipv4_options_are_skipped_by_ihl() -> None:
    h = parse(eth(ipv4(udp(1, 2), proto=17, options=b"\x01" * 8)))
    assert (h.src_port, h.dst_port, h.ip_protocol) == (1, 2, 17)


def test_ipv4_later_fragment_has_no_ports_first_fragment_has() -> None:
    assert parse(eth(ipv4(udp(1, 2), proto=17, frag=0x0010))).src_port == 0
    first = parse(eth(ipv4(udp(1, 2), proto=17, frag=0x2000)))  # MF, offset 0
    assert (first.src_port, first.dst_port) == (1, 2)


def test_icmp_ports_are_zero() -> None:
    h = parse(eth(ipv4(icmp(8, 0), proto=1)))
    assert (h.ip_protocol, h.src_port, h.dst_port, h.tcp_flags) == (1, 0, 0, 0)


def test_vlan_and_qinq() -> None:
    h = parse(eth(ipv4(tcp()), vlans=(809,)))
    assert (h.vlan, h.ether_type, h.src_ip, h.dst_port) == (809, 0x0800, A4, 443)
    q = parse(eth(ipv4(tcp()), vlans=(1062, 1493), tpid=0x88A8))
    assert (q.vlan, q.src_ip, q.src_port) == (1062, A4, 1234)


def test_vlan_stack_too_deep_is_a_problem_not_a_crash() -> None:
    h = parse(eth(ipv4(tcp()), vlans=tuple(range(1, 101))))
    assert h.problem == "vlan_depth"
    assert (h.src_mac, h.vlan, h.src_ip) == (SMAC, 1, b"")


def test_ipv6_tcp_and_traffic_class() -> None:
    h = parse(eth(ipv6(tcp(22, 50000, 0x10), tclass=0xB8), ether_type=0x86DD))
    assert h == Header(0x86DD, 6, A6, B6, 22, 50000, SMAC, DMAC, 0x10, 0xB8, 0, "")


def test_ipv6_hop_by_hop_keeps_first_next_header_and_finds_transport() -> None:
    h = parse(eth(ipv6(ext(17) + udp(546, 547), nxt=0), ether_type=0x86DD))
    assert (h.ip_protocol, h.src_port, h.dst_port) == (0, 546, 547)
    mld = parse(eth(ipv6(ext(58) + icmp(143), nxt=0), ether_type=0x86DD))
    assert (mld.ip_protocol, mld.src_port, mld.dst_port, mld.problem) == (0, 0, 0, "")


def test_ipv6_routing_destination_ah_chain() -> None:
    dest = bytes([43, 1]) + bytes(14)           # destination options, 16 bytes -> routing
    routing = bytes([51, 0]) + bytes(6)         # routing, 8 bytes -> AH
    ah = bytes([6, 4]) + bytes(22)              # AH: (4 + 2) * 4 = 24 bytes -> TCP
    h = parse(eth(ipv6(dest + routing + ah + tcp(7, 8), nxt=60), ether_type=0x86DD))
    assert (h.ip_protocol, h.src_port, h.dst_port) == (60, 7, 8)


def test_ipv6_fragments() -> None:
    first = struct.pack(">BBHI", 17, 0, 0x0001, 99)  # offset 0, M set
    later = struct.pack(">BBHI", 17, 0, 0x0101, 99)  # offset 32
    assert parse(eth(ipv6(first + udp(1, 2), nxt=44), ether_type=0x86DD)).src_port == 1
    assert parse(eth(ipv6(later + udp(1, 2), nxt=44), ether_type=0x86DD)).src_port == 0


def test_ipv6_endless_extension_chain_is_bounded() -> None:
    chain = ext(0) * 500 + udp(1, 2)
    h = parse(eth(ipv6(chain, nxt=0), ether_type=0x86DD))
    assert (h.problem, h.src_ip, h.src_port) == ("ipv6_ext_chain", A6, 0)


def test_ipv6_esp_has_no_ports() -> None:
    h = parse(eth(ipv6(struct.pack(">II", 1, 1) + tcp(), nxt=50), ether_type=0x86DD))
    assert (h.ip_protocol, h.src_port) == (50, 0)


def test_mpls_stack_to_ipv4_and_ipv6() -> None:
    h = parse(eth(mpls(ipv4(udp(10, 20), proto=17), labels=3), ether_type=0x8847))
    assert (h.ether_type, h.src_ip, h.src_port, h.dst_port) == (0x0800, A4, 10, 20)
    h6 = parse(eth(mpls(ipv6(tcp(), nxt=6)), ether_type=0x8847))
    assert (h6.ether_type, h6.dst_ip, h6.dst_port) == (0x86DD, B6, 443)
    raw = parse(mpls(ipv4(tcp())), packet.MPLS)
    assert raw.src_ip == A4


def test_mpls_without_bottom_of_stack_is_bounded() -> None:
    stack = struct.pack(">I", 100 << 12) * 200
    h = parse(eth(stack, ether_type=0x8847))
    assert (h.problem, h.ether_type) == ("mpls_depth", 0x8847)


def test_pppoe_session() -> None:
    h = parse(eth(struct.pack(">BBHHH", 0x11, 0, 1, 40, 0x0021) + ipv4(tcp()), ether_type=0x8864))
    assert (h.ether_type, h.src_ip, h.dst_port) == (0x0800, A4, 443)


def test_vxlan_is_not_opened() -> None:
    inner = eth(ipv6(icmp(128), nxt=58), ether_type=0x86DD)
    h = parse(eth(ipv4(udp(45833, 4789, struct.pack(">II", 0x08000000, 100 << 8) + inner), proto=17)))
    assert (h.src_ip, h.ip_protocol, h.src_port, h.dst_port) == (A4, 17, 45833, 4789)


def test_raw_ip_header_protocols() -> None:
    h = parse(ipv4(icmp(0), proto=1, tos=8), packet.IPV4)
    assert (h.src_mac, h.ip_protocol, h.tos, h.src_ip) == (0, 1, 8, A4)
    h6 = parse(ipv6(udp(1, 2), nxt=17), packet.IPV6)
    assert (h6.ether_type, h6.src_port) == (0x86DD, 1)


def test_unknown_header_protocol_and_non_ip_ether_type() -> None:
    assert parse(b"\x00" * 64, 7) == Header._make(packet.EMPTY)
    arp = parse(eth(b"\x00" * 28, ether_type=0x0806))
    assert (arp.ether_type, arp.src_mac, arp.src_ip) == (0x0806, SMAC, b"")


def test_bad_ip_version_and_header_length() -> None:
    bad = bytearray(ipv4(tcp()))
    bad[0] = 0x55
    assert parse(eth(bytes(bad))).problem == "bad_ip_header"
    bad[0] = 0x43
    assert parse(eth(bytes(bad))).problem == "bad_ip_header"
    assert parse(ipv4(tcp())[:39], packet.IPV6).problem == ""  # too short to tell: nothing
    assert parse(ipv4(tcp()) + bytes(40), packet.IPV6).problem == "bad_ip_header"


@pytest.mark.parametrize("frame", [
    eth(ipv4(tcp(40000, 443, 0x12))),
    eth(ipv6(ext(6) + tcp(), nxt=0), ether_type=0x86DD, vlans=(5, 6)),
    eth(mpls(ipv4(udp(1, 2), proto=17)), ether_type=0x8847),
])
def test_every_truncation_gives_a_prefix_of_the_answer(frame: bytes) -> None:
    full = parse(frame)
    for cut in range(len(frame) + 1):
        h = parse(frame[:cut])
        assert h.problem == ""
        if h.src_ip:
            assert (h.src_ip, h.dst_ip, h.ip_protocol) == (full.src_ip, full.dst_ip, full.ip_protocol)
        if h.src_port:
            assert (h.src_port, h.dst_port) == (full.src_port, full.dst_port)
        if h.tcp_flags:
            assert h.tcp_flags == full.tcp_flags


def test_truncated_tcp_gives_ports_without_flags() -> None:
    frame = eth(ipv4(tcp(1, 2, 0x02)))
    h = parse(frame[:14 + 20 + 8])
    assert (h.src_port, h.dst_port, h.tcp_flags) == (1, 2, 0)


def test_never_reads_past_end_or_buffer() -> None:
    frame = eth(ipv4(tcp()))
    assert parse(frame).src_port == 1234
    # end beyond the buffer is clamped; a window inside a larger buffer is honoured
    assert packet.parse(frame, 0, len(frame) + 100)[4] == 1234
    assert packet.parse(b"xx" + frame, 2, 2 + 34)[4] == 0
