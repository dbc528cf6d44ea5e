"""sFlow v5 datagrams: flow samples become flow tuples, counter samples become counter records.

``decode(data, src)`` is pure. One flow tuple per flow sample (compact format 1 and expanded
format 3): packets 1, bytes = the sampled frame's length, sampling rate of the sample, exporter =
the agent address carried in the datagram (``udp_identity=True``: the UDP source address instead,
for the flows and for ``Decoded.exporter``, which keys sequence tracking), start = end = the
receive second.

Where a sample's fields come from, first present wins:

- addresses, ports, protocol, TCP flags, ToS, MACs: the raw packet header record (1, parsed by
  :mod:`flowpipe.decode.packet`), else the sampled IPv4/IPv6 record (3/4); MACs and ether type
  also from the sampled Ethernet record (2).
- bytes: the raw header's frame length, else the Ethernet record's length, else the IP record's.
- next hop: extended router (1002), else extended gateway (1003); masks from 1002. A gateway
  record adds ``extras`` ``{"src_as": .., "dst_as": ..}`` (dst_as: the last AS of the path, else
  the router's own AS).
- interfaces: the low 30 bits of the input/output words (expanded samples: the whole value
  words), whatever their format, as the Datadog Agent (goflow2) and tshark report them. A non-zero output
  format is noted in ``extras["egress_format"]``: "discarded" (format 1: the value is the discard
  reason) or "multiple" (format 2: the value is the number of interfaces, 0 = unknown).

Counter samples (2, expanded 4) give :class:`InterfaceCounters` (generic record 1) and
:class:`EthernetCounters` (record 2); other counter records are ignored.

Samples or records that cannot be used are skipped by their length and named in
``Decoded.skipped``: ``sample_enterprise``, ``sample_unknown_format``, ``discard_sample`` (format
5, not decoded), ``sample_truncated`` (runs past the datagram; ends the datagram),
``sample_short``, ``record_truncated``/``record_overrun`` (ends the sample's records),
``record_short``, ``header_overrun`` (header length beyond its record: the bytes present are
parsed) and the header problems of :mod:`flowpipe.decode.packet`. Flow records of formats not
listed above (extended switch, user, URL...) are ignored silently. DecodeError is raised only
for a datagram that is unusable as a whole: ``short``, ``bad_version``, ``bad_address_type``.
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from flowpipe.cache import bounded_put
from flowpipe.decode import packet, walk
from flowpipe.decode.base import Decoded, DecodeError, Plain, SequenceObs, Source
from flowpipe.decode.columns import NOTHING_SKIPPED, Chunk
from flowpipe.flow import builder

FLOW_TYPE = "sflow5"

_HDR4 = struct.Struct(">II4sIIII")   # version, address type, agent, sub-agent, sequence, uptime, samples
_HDR6 = struct.Struct(">II16sIIII")
_II = struct.Struct(">II")
_U32 = struct.Struct(">I")
_FLOW = struct.Struct(">IIIIIIII")       # seq, source, rate, pool, drops, input, output, records
_FLOW_X = struct.Struct(">IIIIIIIIIII")  # seq, src type, src index, rate, pool, drops,
#                                          in format, in value, out format, out value, records
_SPAN = struct.Struct("=qqq")            # a flow sample's start, end, expanded (SampleChunk.spans)
_CTR = struct.Struct(">III")             # seq, source, records
_CTR_X = struct.Struct(">IIII")          # seq, src type, src index, records
_RAW = struct.Struct(">IIII")            # header protocol, frame length, stripped, header length
_ETH_REC = struct.Struct(">IHIxxHIxxI")  # length, src MAC hi/lo, dst MAC hi/lo, type
_IP4_REC = struct.Struct(">II4s4sIIII")  # length, protocol, src, dst, sport, dport, flags, tos
_IP6_REC = struct.Struct(">II16s16sIIII")
_MASKS = struct.Struct(">II")
_GW = struct.Struct(">IIII")             # as, src as, src peer as, path segments
_GENERIC = struct.Struct(">IIQIIQIIIIIIQIIIIII")
_ETHCTR = struct.Struct(">13I")

_MASK30 = 0x3FFFFFFF
_ethernet = packet.ethernet
_EGRESS_FORMAT = {1: "discarded", 2: "multiple"}
_AGENTS: dict[bytes, str] = {}  # agent address text, bounded: MAX_AGENTS
MAX_AGENTS = 4096


@attrs.define(slots=True, frozen=True)
class InterfaceCounters:
    """Generic interface counters (counter record 1), as the agent sent them."""

    if_index: int
    if_type: int
    speed: int            # bits per second
    direction: int        # 0 unknown, 1 full duplex, 2 half, 3 in, 4 out
    status: int           # bit 0 admin up, bit 1 oper up
    in_octets: int
    in_ucast_pkts: int
    in_mcast_pkts: int
    in_bcast_pkts: int
    in_discards: int
    in_errors: int
    in_unknown_protos: int
    out_octets: int
    out_ucast_pkts: int
    out_mcast_pkts: int
    out_bcast_pkts: int
    out_discards: int
    out_errors: int
    promiscuous: int

    @property
    def admin_up(self) -> bool:
        return bool(self.status & 1)

    @property
    def oper_up(self) -> bool:
        return bool(self.status & 2)

    @property
    def in_packets(self) -> int:
        return self.in_ucast_pkts + self.in_mcast_pkts + self.in_bcast_pkts

    @property
    def out_packets(self) -> int:
        return self.out_ucast_pkts + self.out_mcast_pkts + self.out_bcast_pkts


@attrs.define(slots=True, frozen=True)
class EthernetCounters:
    """Ethernet counters (counter record 2); ``if_index`` is the sample's source id index."""

    if_index: int
    alignment_errors: int
    fcs_errors: int
    single_collision_frames: int
    multiple_collision_frames: int
    sqe_test_errors: int
    deferred_transmissions: int
    late_collisions: int
    excessive_collisions: int
    internal_mac_transmit_errors: int
    carrier_sense_errors: int
    frame_too_longs: int
    internal_mac_receive_errors: int
    symbol_errors: int


def _agent_text(raw: bytes) -> str:
    text = _AGENTS.get(raw)
    if text is None:
        text = bounded_put(_AGENTS, MAX_AGENTS, raw, str(ipaddress.ip_address(raw)))
    return text


def _header(data: bytes) -> tuple[int, bytes, int, int, int]:
    """(header length, agent address, sub-agent id, sequence number, samples) of an sFlow v5
    datagram; DecodeError ``short``, ``bad_version`` or ``bad_address_type``."""
    n = len(data)
    if n < 8:
        raise DecodeError("short", f"{n}-byte datagram is shorter than an sFlow header")
    version, atype = _II.unpack_from(data)
    if version != 5:
        raise DecodeError("bad_version", f"version {version}, not 5")
    if atype == 1:
        hdr = _HDR4
    elif atype == 2:
        hdr = _HDR6
    else:
        raise DecodeError("bad_address_type", f"agent address type {atype}")
    if n < hdr.size:
        raise DecodeError("short", f"{n}-byte datagram is shorter than its {hdr.size}-byte header")
    _, _, raw_agent, sub_agent, seq, _uptime, nsamples = hdr.unpack_from(data)
    return hdr.size, raw_agent, sub_agent, seq, nsamples


def decode(data: bytes, src: Source, udp_identity: bool = False, columnar: bool = False) -> Decoded:
    """Decode one sFlow v5 datagram (see the module docstring for what comes out).

    ``columnar``: the flow samples are not decoded here but left in one :class:`SampleChunk` in
    ``Decoded.chunks`` (decoded with numpy in the accumulator, :mod:`flowpipe.decode.sflow_columns`);
    samples with a short header are still skipped here."""
    n = len(data)
    off, raw_agent, sub_agent, seq, nsamples = _header(data)
    agent = src.exporter if udp_identity else _agent_text(raw_agent)
    out = Decoded(FLOW_TYPE, agent, sequence=SequenceObs(sub_agent, seq, 1))
    flows, counters, skipped = out.flows, out.counters, out.skipped
    now = int(src.received)
    ns = src.namespace
    if columnar:
        spans, rate, unrated, rest = walk.flow_samples(data, off, nsamples)
        if rest is not None:  # counter samples and skipped ones, in order
            for e in rest:
                if type(e) is str:
                    skipped.append(e)
                else:
                    _counter_sample(data, e[1], e[2], e[0] == 4, counters, skipped)
        if spans:
            out.chunks.append(SampleChunk(data, spans, agent, ns, now, rate, unrated))
        return out
    # The same walk as a sample's records (_flow_sample, _counter_sample), kept inline: as one shared
    # generator of (format, start, end) it cost the service's columnar decode 11-13% (764-816 -> 847-919
    # ns a flow sample; bench_decode_sflow's datagrams, A/B best of 40).
    for _ in range(nsamples):
        if n - off < 8:
            skipped.append("sample_truncated")
            break
        fmt, length = _II.unpack_from(data, off)
        start = off + 8
        end = start + length
        if end > n:
            skipped.append("sample_truncated")
            break
        off = end
        if fmt >> 12:
            skipped.append("sample_enterprise")
        elif fmt == 1 or fmt == 3:
            flow = _flow_sample(data, start, end, fmt == 3, agent, ns, now, skipped)
            if flow is not None:
                flows.append(flow)
        elif fmt == 2 or fmt == 4:
            _counter_sample(data, start, end, fmt == 4, counters, skipped)
        elif fmt == 5:
            skipped.append("discard_sample")
        else:
            skipped.append("sample_unknown_format")
    return out


def plain(data: bytes, src: Source, udp_identity: bool = False,
          runs: dict[Any, SampleChunk] | None = None) -> Plain | None:
    """A datagram of flow samples only, as :func:`decode` (``columnar``) would leave it: (its
    :class:`SampleChunk`, none without samples; the exporter; the flow type; the sequence
    observation; samples),
    without a :class:`Decoded` to make; None for any other datagram (:func:`decode` it): counter
    samples, anything skipped, a bad header.

    ``runs`` (one per batch of datagrams, kept by the caller: each exporter's latest chunk, by
    :func:`_identity`): a datagram joins its exporter's latest chunk (:meth:`SampleChunk.add`) when
    that one came from the same agent in the same second, and then gives no chunk of its own, so a
    batch makes a chunk per run of an exporter's datagrams, not per datagram, whichever UDP sources
    and sub-agents they come from. A datagram this does not take ends its exporter's run: an
    exporter's samples stay in arrival order. (Across exporters a batch's samples are aggregated as
    if each run's datagrams had arrived together, which UDP allows.)"""
    head = plain_samples(data)
    if head is None:
        if runs is not None:
            _end_run(runs, data, src, udp_identity)
        return None
    raw_agent, sub_agent, seq, spans, rate, unrated = head
    obs: SequenceObs = tuple.__new__(SequenceObs, (sub_agent, seq, 1))  # type: ignore[type-var]
    n = len(spans) // 24
    now = int(src.received)
    run = runs.get(_identity(src, raw_agent, udp_identity)) if runs is not None and n else None
    if run is not None and run.secs == now and run.raw_agent == raw_agent:
        run.add(data, spans, rate, unrated)
        return [], run.exporter, FLOW_TYPE, obs, n
    agent = src.exporter if udp_identity else _agent_text(raw_agent)
    if not n:
        return [], agent, FLOW_TYPE, obs, 0
    chunk = SampleChunk(data, spans, agent, src.namespace, now, rate, unrated, raw_agent)
    if runs is not None:
        runs[_identity(src, raw_agent, udp_identity)] = chunk
    return [chunk], agent, FLOW_TYPE, obs, n


def _identity(src: Source, raw_agent: bytes, udp_identity: bool) -> Any:
    """What tells a datagram's exporter in ``runs``: its UDP source address, or its agent address
    as sent (the exporter's text is made of it one to one)."""
    return src.exporter if udp_identity else raw_agent


def _end_run(runs: dict[Any, SampleChunk], data: bytes, src: Source, udp_identity: bool) -> None:
    """A datagram :func:`plain` refuses (decoded the full way) ends its exporter's run: what comes
    after it is not put before it."""
    try:
        raw_agent = b"" if udp_identity else _header(data)[1]
    except DecodeError:
        return  # (invalid as a whole: no records to keep in order)
    runs.pop(_identity(src, raw_agent, udp_identity), None)


def py_plain_samples(data: bytes) -> tuple[bytes, int, int, bytes, int, int] | None:
    """(agent address, sub-agent id, sequence number, and of :func:`flowpipe.decode.walk.flow_samples`
    the spans, rate and unrated) of a datagram :func:`plain` takes, None for any other: one step,
    compiled as ``walk.plain_samples`` (the header alone cost a fifth of :func:`plain`)."""
    try:
        off, raw_agent, sub_agent, seq, nsamples = _header(data)
    except DecodeError:
        return None
    spans, rate, unrated, rest = walk.flow_samples(data, off, nsamples)
    if rest is not None:
        return None
    return raw_agent, sub_agent, seq, spans, rate, unrated


plain_samples: Callable[[bytes], tuple[bytes, int, int, bytes, int, int] | None] = (
    walk.plain_samples or py_plain_samples)


class _SampleDecoder:
    """The ``Chunk.dec`` of sFlow sample chunks: their records as columns (numpy) or as flow tuples."""

    __slots__ = ()
    plan = None  # no fixed record layout: columns.group hands the chunks to columns()

    def columns(self, chunks: list[Any]) -> list[Any]:
        from flowpipe.decode import sflow_columns
        return sflow_columns.columns(chunks)


SAMPLES = _SampleDecoder()


def padded(body: bytes) -> bytes:
    """``body`` padded to a multiple of 4 bytes (so sFlow's words stay aligned when bodies lie end to end)."""
    pad = -len(body) & 3
    return body + bytes(pad) if pad else body


def laid_out(parts: list[tuple[bytes, bytes]]) -> tuple[list[bytes], Any]:
    """The datagrams of ``parts`` ((datagram, its spans) each), each :func:`padded`, and their sample
    spans as an (n, 3) int64 array of (start, end, expanded) placed where the datagrams lie when
    those are laid end to end."""
    bodies = [b for b, _ in parts]
    lens = np.fromiter(map(len, bodies), np.int64, len(bodies))
    for k in np.flatnonzero(lens & 3).tolist():  # (rare: XDR makes sFlow datagrams whole words)
        bodies[k] = padded(bodies[k])
    lens += -lens & 3
    spans = [sp for _, sp in parts]
    counts = np.fromiter(map(len, spans), np.int64, len(spans)) // 24
    a = np.frombuffer(b"".join(spans), np.int64).reshape(-1, 3).copy()
    a[:, :2] += np.repeat(np.cumsum(lens) - lens, counts)[:, None]
    return bodies, a


class SampleChunk(Chunk):
    """The flow samples of one datagram, or of a run of several (one exporter and agent, received
    in the same second: :func:`plain`), left undecoded: ``parts`` (datagram, spans) of each, the
    spans holding (start, end, expanded) of each sample in its datagram as native int64
    (:func:`flowpipe.decode.walk.flow_samples`). ``body`` and ``spans`` are the whole run's once
    :meth:`seal` laid its datagrams end to end (:meth:`row` does). Decoding a sample (:meth:`row`)
    notes what it skipped in ``skipped``."""

    __slots__ = ("spans", "_decoded", "raw_agent", "parts")
    flow_type = FLOW_TYPE

    def __init__(self, data: bytes, spans: bytes, agent: str, ns: str, now: int, rate: int, unrated: int,
                 raw_agent: bytes = b"") -> None:
        """``rate``: the last sample's sampling rate (each record has its own)."""
        # Chunk's fields set here, not through its __init__: one chunk a datagram, ~40% of its cost
        self.dec, self.body, self.count, self.exporter, self.namespace = SAMPLES, data, len(spans) // 24, agent, ns
        self.rate, self.samplers, self.secs, self.uptime, self.init = rate, _NO_SAMPLERS, now, 0, None
        self.error = self.policy = None
        self.spans = spans
        self.unrated = unrated
        self.skipped = NOTHING_SKIPPED  # (a list of its own when a sample is first decoded)
        self._decoded: dict[int, tuple | None] | None = None  # made when a sample is first decoded
        self.raw_agent = raw_agent
        self.parts = [(data, spans)]

    def add(self, data: bytes, spans: bytes, rate: int, unrated: int) -> None:
        """Another datagram of the run (``spans`` in it), its ``rate`` the last sample's."""
        self.parts.append((data, spans))
        self.count += len(spans) // 24
        self.rate = rate
        self.unrated += unrated

    def seal(self) -> None:
        """``body`` and ``spans`` made the whole run's (after :meth:`add`)."""
        if len(self.parts) != 1:  # (a run of several datagrams, not laid out yet)
            bodies, spans = laid_out(self.parts)
            self.body, self.spans = b"".join(bodies), spans.tobytes()
            self.parts = [(self.body, self.spans)]

    def row(self, k: int) -> tuple | None:
        """The flow tuple of sample ``k`` (decoded once); None when the decoder raised (kept in
        :attr:`error`)."""
        if self._decoded is None:
            self.seal()
            self._decoded = {}
            self.skipped = []
        got = self._decoded.get(k, _MISSING)
        if got is _MISSING:
            start, end, expanded = _SPAN.unpack_from(self.spans, 24 * k)
            try:
                got = _flow_sample(self.body, start, end, bool(expanded), self.exporter, self.namespace,
                                   self.secs, self.skipped)
            except Exception as e:  # noqa: BLE001 - any decoder bug: this sample is lost, counted
                self.error = e
                got = None
            self._decoded[k] = got
        return got  # type: ignore[return-value]

    def rows(self) -> list[tuple | None]:
        return [self.row(k) for k in range(self.count)]


_MISSING: Any = object()
_NO_SAMPLERS: dict[int, int] = {}  # sFlow records carry their own rate: no sampler table (never changed)


def _flow_sample(data: bytes, off: int, end: int, expanded: bool, agent: str, ns: str, now: int,
                 skipped: list[str]) -> tuple | None:
    """The flow tuple of one flow sample in ``data[off:end]``; None when its header is short."""
    if expanded:
        if end - off < 44:
            skipped.append("sample_short")
            return None
        _seq, _st, _si, rate, _pool, _drops, _inf, in_if, out_fmt, out_if, nrec = _FLOW_X.unpack_from(data, off)
        off += 44
    else:
        if end - off < 32:
            skipped.append("sample_short")
            return None
        _seq, _src, rate, _pool, _drops, in_if, out_if, nrec = _FLOW.unpack_from(data, off)
        in_if &= _MASK30
        out_fmt = out_if >> 30
        out_if &= _MASK30
        off += 32
    hdr: tuple | None = None
    ip: tuple | None = None
    eth: tuple | None = None
    frame_len = 0
    next_hop = b""
    gw_next_hop = b""
    src_mask = dst_mask = 0
    extras: dict[str, Any] | None = None
    # The sample head and record walk are _counter_sample's, written again on purpose: shared (a
    # generator of (format, start, end) and a head helper) they cost 10% here (2,830 -> 3,060 ns a
    # flow sample for the walk, +70 ns for the head; bench_decode_sflow's datagrams, A/B best of 40).
    for _ in range(nrec):
        if end - off < 8:
            skipped.append("record_truncated")
            break
        rfmt, rlen = _II.unpack_from(data, off)
        p = off + 8
        off = p + rlen
        if off > end:
            skipped.append("record_overrun")
            break
        if rfmt == 1:
            if hdr is not None:
                continue
            if rlen < 16:
                skipped.append("record_short")
                continue
            proto, flen, _stripped, hlen = _RAW.unpack_from(data, p)
            p += 16
            if hlen > off - p:
                skipped.append("header_overrun")
                hlen = off - p
            hdr = _ethernet(data, p, p + hlen) if proto == 1 else packet.parse(data, p, p + hlen, proto)
            frame_len = flen
            if hdr[packet.PROBLEM]:
                skipped.append(hdr[packet.PROBLEM])
        elif rfmt == 1002:
            nh, p = _address(data, p, off)
            if p < 0 or off - p < 8:
                skipped.append("record_short")
                continue
            next_hop = nh
            src_mask, dst_mask = _MASKS.unpack_from(data, p)
        elif rfmt == 1003:
            gw = _gateway(data, p, off)
            if gw is None:
                skipped.append("record_short")
                continue
            gw_next_hop = gw[0]
            extras = {"src_as": gw[1], "dst_as": gw[2]}
        elif rfmt == 3:
            if rlen < 32:
                skipped.append("record_short")
            elif ip is None:
                ip = _IP4_REC.unpack_from(data, p)
        elif rfmt == 4:
            if rlen < 56:
                skipped.append("record_short")
            elif ip is None:
                ip = _IP6_REC.unpack_from(data, p)
        elif rfmt == 2:
            if rlen < 24:
                skipped.append("record_short")
            elif eth is None:
                eth = _ETH_REC.unpack_from(data, p)
    if out_fmt:
        fmt_name = _EGRESS_FORMAT.get(out_fmt, str(out_fmt))
        if extras is None:
            extras = {"egress_format": fmt_name}
        else:
            extras["egress_format"] = fmt_name
    if not next_hop:
        next_hop = gw_next_hop
    et, proto, s_ip, d_ip, sport, dport, smac, dmac, flags, tos, _vlan, _problem = (
        hdr if hdr is not None else packet.EMPTY)
    if not s_ip and ip is not None:
        ilen, proto, s_ip, d_ip, sport, dport, flags, tos = ip
        sport &= 0xFFFF
        dport &= 0xFFFF
        flags &= 0xFF
        tos &= 0xFF
        et = 0x0800 if len(s_ip) == 4 else 0x86DD
    if eth is not None:
        if not smac and not dmac:
            smac, dmac = (eth[1] << 32) | eth[2], (eth[3] << 32) | eth[4]
            et = et or eth[5]
        if hdr is None:
            frame_len = eth[0]
    if not frame_len and hdr is None and ip is not None:
        frame_len = ip[0]
    return _flow(agent, ns, rate, now, now, frame_len, et, proto, s_ip, d_ip, sport, dport, smac, dmac, src_mask,
                 dst_mask, in_if, out_if, flags, next_hop, tos, extras)


# A sample's flow tuple: one packet, these fields from the sample.
_flow = builder("exporter", "namespace", "sampling_rate", "start", "end", "bytes", "ether_type", "ip_protocol",
                "src_ip", "dst_ip", "src_port", "dst_port", "src_mac", "dst_mac", "src_mask", "dst_mask", "in_if",
                "out_if", "tcp_flags", "next_hop", "tos", "extras", type=FLOW_TYPE, packets=1)


def _address(data: bytes, p: int, end: int) -> tuple[bytes, int]:
    """An sFlow address (type word + 4/16 bytes) at p: (bytes, offset after it); offset -1 if short."""
    if end - p < 4:
        return b"", -1
    atype = _U32.unpack_from(data, p)[0]
    size = 4 if atype == 1 else 16 if atype == 2 else 0
    if end - p < 4 + size:
        return b"", -1
    return data[p + 4:p + 4 + size], p + 4 + size


def _gateway(data: bytes, p: int, end: int) -> tuple[bytes, int, int] | None:
    """Extended gateway (1003): (next hop, source AS, destination AS), None when short."""
    nh, p = _address(data, p, end)
    if p < 0 or end - p < 16:
        return None
    own_as, src_as, _peer_as, nseg = _GW.unpack_from(data, p)
    p += 16
    dst_as = own_as
    for _ in range(nseg):
        if end - p < 8:
            return None
        _stype, count = _II.unpack_from(data, p)
        p += 8
        if count > (end - p) >> 2:
            return None
        if count:
            dst_as = _U32.unpack_from(data, p + 4 * (count - 1))[0]
        p += 4 * count
    return nh, src_as, dst_as


def _counter_sample(data: bytes, off: int, end: int, expanded: bool, counters: list[object],
                    skipped: list[str]) -> None:
    """Append the interface/Ethernet counter records of one counter sample in ``data[off:end]``."""
    if expanded:
        if end - off < 16:
            skipped.append("sample_short")
            return
        _seq, _stype, index, nrec = _CTR_X.unpack_from(data, off)
        off += 16
    else:
        if end - off < 12:
            skipped.append("sample_short")
            return
        _seq, source, nrec = _CTR.unpack_from(data, off)
        index = source & 0xFFFFFF
        off += 12
    for _ in range(nrec):  # the walk of _flow_sample, which keeps its own copy (measured there)
        if end - off < 8:
            skipped.append("record_truncated")
            return
        rfmt, rlen = _II.unpack_from(data, off)
        p = off + 8
        off = p + rlen
        if off > end:
            skipped.append("record_overrun")
            return
        if rfmt == 1:
            if rlen < _GENERIC.size:
                skipped.append("record_short")
            else:
                counters.append(InterfaceCounters(*_GENERIC.unpack_from(data, p)))
        elif rfmt == 2:
            if rlen < _ETHCTR.size:
                skipped.append("record_short")
            else:
                counters.append(EthernetCounters(index, *_ETHCTR.unpack_from(data, p)))
