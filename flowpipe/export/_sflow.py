"""sFlow version 5 encoding: datagrams of flow samples (with a synthesized packet header) and counter samples.

sFlow samples packets rather than summarizing flows, so a flow record becomes one flow sample:
one sampled packet whose frame length is the record's byte count (FCS included, 4 bytes
"stripped"), with a raw Ethernet/IPv4|IPv6/TCP|UDP|ICMP header built from the record, the
interfaces, the sampling rate, and extended router/gateway data when the template has next hop,
masks or AS numbers. Packet counts and first/last times have no place in sFlow and are not sent.
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import attrs

from flowpipe.cache import bounded_put
from flowpipe.export._errors import ConfigError, RecordError, TemplateError
from flowpipe.export._template import Template
from flowpipe.export._values import to_address

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_HDR = struct.Struct(">II")  # data format, length
FLOW_SAMPLE, COUNTER_SAMPLE = 1, 2
RAW_HEADER, EXT_SWITCH, EXT_ROUTER, EXT_GATEWAY = 1, 1001, 1002, 1003
GENERIC_INTERFACE = 1
FCS = 4
CACHE_SIZE = 1 << 16  # encoded flow records remembered per template (see SflowEncoder._cached_records)
_FLOW_SAMPLE = struct.Struct(">IIIIIIII")  # seq, source id, rate, pool, drops, input, output, record count
_RAW = struct.Struct(">IIII")  # header protocol, frame length, stripped, header length


def _xdr_opaque(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _address(addr: bytes) -> bytes:
    """An XDR address: type (1 IPv4, 2 IPv6) then the bytes; RecordError for any other length."""
    if len(addr) == 4:
        return _U32.pack(1) + addr
    if len(addr) == 16:
        return _U32.pack(2) + addr
    raise RecordError(f"address of {len(addr)} bytes (IPv4: 4, IPv6: 16)", field="next_hop")


def _agent(address: Any) -> bytes:
    """An agent address as 4 or 16 bytes (bytes, text, ``ipaddress`` object or int); ConfigError when
    it cannot be one."""
    try:
        return to_address(address, 16 if _is_v6(address) else 4)
    except ValueError as e:
        raise ConfigError(f"sFlow agent address: {e}") from None


def _record(fmt: int, body: bytes) -> bytes:
    return _HDR.pack(fmt, len(body)) + body


def encode_sflow(agent_address: Any, sub_agent_id: int, sequence: int, uptime_ms: int,
                 samples: Sequence[bytes]) -> bytes:
    """One sFlow v5 datagram holding already encoded ``samples`` (see :func:`flow_sample`,
    :func:`counter_sample`). ``sequence`` counts datagrams from this sub-agent. ConfigError when
    ``agent_address`` is not an IPv4 or IPv6 address."""
    agent = _agent(agent_address)
    head = _U32.pack(5) + _address(agent) + struct.pack(">IIII", sub_agent_id & 0xFFFFFFFF, sequence & 0xFFFFFFFF,
                                                        uptime_ms & 0xFFFFFFFF, len(samples))
    return head + b"".join(samples)


def _is_v6(addr: Any) -> bool:
    if isinstance(addr, (bytes, bytearray)):
        return len(addr) == 16
    if isinstance(addr, str):
        return ":" in addr
    return isinstance(addr, ipaddress.IPv6Address)


def flow_sample(sequence: int, source_id: int, sampling_rate: int, sample_pool: int, drops: int,
                input_if: int, output_if: int, records: Sequence[bytes]) -> bytes:
    """A flow sample (format 1) around encoded flow records. Interfaces are ifIndex values (< 2**30)."""
    body = _FLOW_SAMPLE.pack(sequence & 0xFFFFFFFF, source_id, sampling_rate, sample_pool & 0xFFFFFFFF,
                             drops, input_if, output_if, len(records))
    return _record(FLOW_SAMPLE, body + b"".join(records))


def raw_header_record(header: bytes, frame_length: int, stripped: int = FCS, protocol: int = 1) -> bytes:
    """A raw packet header flow record (protocol 1 = Ethernet)."""
    return _record(RAW_HEADER, _RAW.pack(protocol, frame_length, stripped, len(header)) + _xdr_opaque(header))


def extended_switch(src_vlan: int, dst_vlan: int, src_priority: int = 0, dst_priority: int = 0) -> bytes:
    """Extended switch data (VLANs and 802.1p priorities)."""
    return _record(EXT_SWITCH, struct.pack(">IIII", src_vlan, src_priority, dst_vlan, dst_priority))


def extended_router(next_hop: bytes, src_mask: int, dst_mask: int) -> bytes:
    """Extended router data: next hop and prefix lengths."""
    return _record(EXT_ROUTER, _address(next_hop) + struct.pack(">II", src_mask, dst_mask))


def extended_gateway(next_hop: bytes, src_as: int, dst_as: int, router_as: int = 0, src_peer_as: int = 0) -> bytes:
    """Extended gateway data: BGP next hop, AS numbers, a one-AS destination path when ``dst_as``."""
    path = struct.pack(">IIII", 1, 2, 1, dst_as) if dst_as else _U32.pack(0)  # one AS_SEQUENCE segment
    body = (_address(next_hop) + struct.pack(">III", router_as, src_as, src_peer_as or src_as) + path
            + struct.pack(">II", 0, 0))  # no communities, local pref 0
    return _record(EXT_GATEWAY, body)


# --- synthesized packet headers -------------------------------------------------------------------

_ETH_IP4 = struct.Struct(">6s6sHBBHHHBBH4s4s")  # Ethernet, then the IPv4 header
_ETH_VLAN = struct.Struct(">6s6sHHH")           # Ethernet with an 802.1Q tag, up to the ether type
_IP4 = struct.Struct(">BBHHHBBH4s4s")
_IP6 = struct.Struct(">IHBB16s16s")
_TCP = struct.Struct(">HHIIHHHH")
_UDP = struct.Struct(">HHHH")
_ICMP = struct.Struct(">BBHI")
_L4_LENGTH = {6: _TCP.size, 17: _UDP.size, 1: _ICMP.size, 58: _ICMP.size}  # by IP protocol; others: none


def _ip4_checksum(tos: int, length: int, protocol: int, src: bytes, dst: bytes) -> int:
    """The header checksum of the IPv4 header :func:`packet_header` writes (DF set, TTL 64, id 0)."""
    s, d = int.from_bytes(src, "big"), int.from_bytes(dst, "big")
    total = (0x4500 | tos) + length + 0x4000 + (0x4000 | protocol) + (s >> 16) + (s & 0xFFFF) + (d >> 16) + (d & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _l4_header(protocol: int, src_port: int, dst_port: int, tcp_flags: int, l4_length: int) -> bytes:
    if protocol == 6:
        ack = 1 if tcp_flags & 0x10 else 0
        return _TCP.pack(src_port, dst_port, 1, ack, 5 << 12 | (tcp_flags & 0x1FF), 65535, 0, 0)
    if protocol == 17:
        return _UDP.pack(src_port, dst_port, l4_length, 0)
    if protocol in (1, 58):  # ICMP/ICMPv6: type and code from the NetFlow convention type*256+code
        return _ICMP.pack(dst_port >> 8 & 0xFF, dst_port & 0xFF, 0, 0)
    return b""


def packet_header(src: bytes, dst: bytes, protocol: int, src_port: int, dst_port: int, tcp_flags: int,
                  tos: int, frame_length: int, src_mac: bytes, dst_mac: bytes, vlan: int = 0) -> bytes:
    """The Ethernet (optionally 802.1Q), IPv4/IPv6 and TCP/UDP/ICMP headers of a packet of
    ``frame_length`` bytes (FCS included); RecordError (field ``frame_length``) when the frame is too
    short to hold them, or longer than the IP length field can say (IPv4's total length, IPv6's
    payload length: 16 bits)."""
    v6 = len(dst) == 16
    eth_length = 18 if vlan else 14
    ip_length = frame_length - FCS - eth_length
    ip_header_length = 40 if v6 else 20
    l4_length = _L4_LENGTH.get(protocol, 0)
    if ip_length < ip_header_length + l4_length:
        raise RecordError(f"frame length {frame_length} is too short for its headers "
                          f"({eth_length + ip_header_length + l4_length + FCS} bytes)", field="frame_length")
    if ip_length - (ip_header_length if v6 else 0) > 0xFFFF:
        raise RecordError(f"frame length {frame_length} is too long for IPv{6 if v6 else 4}", field="frame_length")
    l4 = _l4_header(protocol, src_port, dst_port, tcp_flags, ip_length - ip_header_length)
    ether_type = 0x86DD if v6 else 0x0800
    if not v6 and not vlan:
        return _ETH_IP4.pack(dst_mac, src_mac, ether_type, 0x45, tos, ip_length, 0, 0x4000, 64, protocol,
                             _ip4_checksum(tos, ip_length, protocol, src, dst), src, dst) + l4
    eth = (_ETH_VLAN.pack(dst_mac, src_mac, 0x8100, vlan & 0xFFF, ether_type) if vlan
           else dst_mac + src_mac + _U16.pack(ether_type))
    if v6:
        ip = _IP6.pack(6 << 28 | (tos & 0xFF) << 20, ip_length - 40, protocol, 64, src, dst)
    else:
        ip = _IP4.pack(0x45, tos, ip_length, 0, 0x4000, 64, protocol,
                       _ip4_checksum(tos, ip_length, protocol, src, dst), src, dst)
    return eth + ip + l4


def _default_mac(addr: bytes) -> bytes:
    """A stable locally administered MAC derived from an address (02:00 + its last 4 bytes)."""
    return b"\x02\x00" + addr[-4:]


# --- counters -------------------------------------------------------------------------------------

@attrs.define
class InterfaceCounters:
    """Generic interface counters (sFlow counter record 1) for one ifIndex."""

    if_index: int
    if_type: int = 6  # ethernetCsmacd
    speed: int = 10_000_000_000
    direction: int = 1  # full duplex
    status: int = 3  # admin up, oper up
    in_octets: int = 0
    in_ucast_pkts: int = 0
    in_multicast_pkts: int = 0
    in_broadcast_pkts: int = 0
    in_discards: int = 0
    in_errors: int = 0
    in_unknown_protos: int = 0
    out_octets: int = 0
    out_ucast_pkts: int = 0
    out_multicast_pkts: int = 0
    out_broadcast_pkts: int = 0
    out_discards: int = 0
    out_errors: int = 0
    promiscuous: int = 0


_GENERIC = struct.Struct(">IIQIIQIIIIIIQIIIIII")


def interface_counters_record(c: InterfaceCounters) -> bytes:
    """A generic interface counters record (88 bytes of data); 32-bit counters wrap."""
    m = 0xFFFFFFFF
    body = _GENERIC.pack(c.if_index, c.if_type, c.speed, c.direction, c.status, c.in_octets & (1 << 64) - 1,
                         c.in_ucast_pkts & m, c.in_multicast_pkts & m, c.in_broadcast_pkts & m, c.in_discards & m,
                         c.in_errors & m, c.in_unknown_protos & m, c.out_octets & (1 << 64) - 1,
                         c.out_ucast_pkts & m, c.out_multicast_pkts & m, c.out_broadcast_pkts & m,
                         c.out_discards & m, c.out_errors & m, c.promiscuous)
    return _record(GENERIC_INTERFACE, body)


def counter_sample(sequence: int, source_id: int, records: Sequence[bytes]) -> bytes:
    """A counter sample (format 2) around encoded counter records."""
    body = struct.pack(">III", sequence & 0xFFFFFFFF, source_id, len(records)) + b"".join(records)
    return _record(COUNTER_SAMPLE, body)


# --- stateful encoder -----------------------------------------------------------------------------

class _Layout:
    """How to pick what a flow sample needs out of a template's row in one call.

    ``pick(row + pad)`` gives (src, dst, next hop, in, out, frame length, protocol, src port, dst
    port, TCP flags, ToS, src mask, dst mask, src AS, dst AS, VLAN, src MAC, dst MAC); fields the
    template lacks come from ``pad``: 0, the zero address, or None for a MAC (derived instead).
    """

    def __init__(self, t: Template) -> None:
        v6 = t.index(27) >= 0
        src, dst = (t.index(27), t.index(28)) if v6 else (t.index(8), t.index(12))
        if src < 0 or dst < 0:
            raise TemplateError(f"template {t.template_id}: sFlow needs source and destination addresses "
                                "(fields 8/12 or 27/28)")
        if t.index(1) < 0:
            raise TemplateError(f"template {t.template_id}: sFlow needs octetDeltaCount (1) for the frame length")
        n = len(t.fields)
        zero, zero_addr, none = n, n + 1, n + 2
        self.pad = (0, bytes(16 if v6 else 4), None)

        def at(fid: int, missing: int = zero) -> int:
            i = t.index(fid)
            return i if i >= 0 else missing

        masks = (29, 30) if v6 else (9, 13)
        self.pick = itemgetter(src, dst, at(62 if v6 else 15, zero_addr), at(10), at(14), t.index(1), at(4), at(7),
                               at(11), at(6), at(5), at(masks[0]), at(masks[1]), at(16), at(17), at(58),
                               at(56, none), at(80, none))
        self.router = any(t.index(f) >= 0 for f in (62 if v6 else 15, *masks))
        self.cache: dict[tuple, tuple[int, int, list[bytes]]] = {}
        self.gateway = t.index(16) >= 0 or t.index(17) >= 0


class SflowEncoder:
    """Builds sFlow v5 datagrams for one agent/sub-agent, keeping every sequence number.

    The datagram sequence counts datagrams (the first is 1); each data source (``0:ifIndex`` of the
    input interface for flow samples, of the interface for counters) has its own sample sequence,
    and its sample pool grows by the sampling rate with every flow sample. ConfigError when the agent
    address is not an IPv4 or IPv6 address or the sampling rate is below 1.
    """

    def __init__(self, agent_address: Any, sub_agent_id: int = 0, sampling_rate: int = 1) -> None:
        if sampling_rate < 1:
            raise ConfigError(f"sampling rate must be at least 1, not {sampling_rate}")
        self.agent = _agent(agent_address)
        self.sub_agent_id = sub_agent_id
        self.sampling_rate = sampling_rate
        self.sequence = 0
        self._flow_seq: dict[int, int] = {}
        self._pool: dict[int, int] = {}
        self._counter_seq: dict[int, int] = {}
        self._layouts: dict[Template, _Layout] = {}

    @property
    def header_length(self) -> int:
        """Bytes of datagram header before the samples."""
        return 4 + 4 + len(self.agent) + 16

    def datagram(self, samples: Sequence[bytes], uptime_ms: int) -> bytes:
        """The next datagram holding ``samples``."""
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        return encode_sflow(self.agent, self.sub_agent_id, self.sequence, uptime_ms, samples)

    def flow_samples(self, template: Template, records: Sequence[Any], checked: bool = False) -> list[bytes]:
        """One encoded flow sample per record (records as ``Template.rows`` accepts them; with
        ``checked``, rows it already returned). A bad record raises before any sequence advances."""
        lay = self._layouts.get(template)
        if lay is None:
            lay = self._layouts[template] = _Layout(template)
        rows = records if checked else template.rows(records)
        parts = [self._cached_records(lay, row, i) for i, row in enumerate(rows)]
        out = []
        for in_if, out_if, recs in parts:
            seq = self._flow_seq[in_if] = self._flow_seq.get(in_if, 0) + 1
            pool = self._pool[in_if] = self._pool.get(in_if, 0) + self.sampling_rate
            out.append(flow_sample(seq, in_if, self.sampling_rate, pool, 0, in_if, out_if, recs))
        return out

    def _cached_records(self, lay: _Layout, row: Sequence[Any], index: int) -> tuple[int, int, list[bytes]]:
        """What :meth:`_flow_records` gives, remembered per sample-relevant values: a repeated
        record (a replayed traffic pool) costs a lookup. Sequence numbers and pools are not part of it."""
        picked = lay.pick(tuple(row) + lay.pad)
        try:
            hit = lay.cache.get(picked)
        except TypeError:  # an unhashable value (bytearray...): nothing to remember
            return self._flow_records(lay, picked, index)
        if hit is None:
            hit = bounded_put(lay.cache, CACHE_SIZE, picked, self._flow_records(lay, picked, index))
        return hit

    def _flow_records(self, lay: _Layout, picked: tuple, index: int) -> tuple[int, int, list[bytes]]:
        (src, dst, next_hop, in_if, out_if, frame, proto, sport, dport, flags, tos, src_mask, dst_mask, src_as,
         dst_as, vlan, src_mac, dst_mac) = picked
        if in_if >= 1 << 24 or out_if >= 1 << 30:
            raise RecordError("sFlow needs the input ifIndex below 2**24 (it names the "
                              "data source) and the output below 2**30", index, "interface")
        try:
            header = packet_header(src, dst, proto, sport, dport, flags, tos, frame, src_mac or _default_mac(src),
                                   dst_mac or _default_mac(dst), vlan)
        except RecordError as e:  # the frame length is the record's byte count
            raise RecordError(e.detail, index, "octetDeltaCount") from None
        recs = [raw_header_record(header, frame)]
        if lay.router:
            recs.append(extended_router(next_hop, src_mask, dst_mask))
        if lay.gateway:
            recs.append(extended_gateway(next_hop, src_as, dst_as))
        return in_if, out_if, recs

    def counter_samples(self, counters: Sequence[InterfaceCounters]) -> list[bytes]:
        """One counter sample per interface, each with its own sequence."""
        out = []
        for c in counters:
            seq = self._counter_seq[c.if_index] = self._counter_seq.get(c.if_index, 0) + 1
            out.append(counter_sample(seq, c.if_index, [interface_counters_record(c)]))
        return out
