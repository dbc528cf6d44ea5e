"""sFlow flow samples read with numpy, the samples of many datagrams at once (the service's path).

The decoder stage leaves each datagram's flow samples undecoded (:class:`flowpipe.decode.sflow.SampleChunk`);
:func:`columns` reads every sample of a batch's chunks together: the sample header, a walk over
the flow records (one step for all samples per record position), then the sampled Ethernet
frame: one VLAN tag, IPv4 (options skipped by IHL) or IPv6, TCP/UDP ports and flags, MACs, the
extended router (1002) and gateway (1003) records. What it reads equals, field for field, the
flow tuple :func:`flowpipe.decode.sflow._flow_sample` makes of the same sample.

A sample of any other shape, or one the per-sample decoder would report something skipped for,
is *not read* here (``ok`` False): it is decoded by ``_flow_sample`` (which notes the skipped
parts on its chunk) and takes the accumulator's exact per-record path. That covers: records of
formats 2, 3, 4 (sampled Ethernet/IPv4/IPv6 instead of a raw header), two router or gateway
records in one sample, no raw header, a header protocol other than Ethernet, frames shorter than
Ethernet + IP, QinQ, MPLS, PPPoE, IPv6 extension headers, and every truncated or short record.

The samples come out as one :class:`SampleColumns` per address family (IPv4, IPv6, none): records
of two families share no context and no rollup address pair, so splitting them keeps every
order that matters (docs/performance.md *Order*).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from flowpipe.cache import room
from flowpipe.decode import walk
from flowpipe.decode.columns import PROBE, Intern, mostly_distinct, objects, per_distinct, unique_rows
from flowpipe.decode.sflow import _EGRESS_FORMAT, FLOW_TYPE, SampleChunk, laid_out
from flowpipe.flow import (
    BYTES,
    DST_IP,
    DST_PORT,
    EXTRAS,
    IN_IF,
    IP_PROTOCOL,
    SRC_IP,
    SRC_PORT,
    TCP_FLAGS,
    TOS,
    kept_fields,
)

_MASK30 = 0x3FFFFFFF
_VLAN = np.array([0x8100, 0x88A8, 0x9100, 0x9200])
_V6_EXT = np.array([0, 43, 44, 51, 60, 135, 139, 140])
_SPREAD = {w: np.arange(w, dtype=np.int64) for w in (2, 4, 6, 16)}
_PAD = bytes(64)
# The additional fields a sample can have, in groups that come together (see SampleColumns.extra_bits).
EXTRA_GROUPS: tuple[tuple[str, ...], ...] = (("src_as", "dst_as"), ("egress_format",))

# Equal additional fields are one dict shared by every record and window that has them (AS numbers
# repeat: a context costs a pointer, not a dict); shared, so never changed (the accumulator copies a
# window's dict before adding a field to it).
_EXTRAS: dict[tuple[int, int, int, int], dict[str, Any]] = {}
_HOPS: dict[bytes, bytes] = {}  # likewise the next hops, kept by every window
MAX_SHARED_EXTRAS = 1 << 16


class _Reader:
    """Big-endian reads at many offsets of one buffer, for offsets aligned to the width (XDR keeps
    sFlow's words at multiples of 4 and a sampled frame's 16-bit fields at even offsets); an offset
    past the end reads garbage, never faults (the caller has marked such samples not ok)."""

    __slots__ = ("buf", "w16", "w32", "top")

    def __init__(self, parts: list[bytes]) -> None:
        """Over ``parts`` end to end (joined once, with the padding)."""
        body = b"".join([*parts, _PAD])
        self.buf = np.frombuffer(body, dtype=np.uint8)
        self.w16 = np.frombuffer(body, dtype=">u2")
        self.w32 = np.frombuffer(body, dtype=">u4")
        self.top = len(self.buf) - 16

    def u8(self, at: Any) -> Any:
        return self.buf[np.minimum(at, self.top)].astype(np.int64)

    def u16(self, at: Any) -> Any:
        """At even offsets."""
        return self.w16[np.minimum(at, self.top) >> 1].astype(np.int64)

    def u32(self, at: Any) -> Any:
        """At offsets that are multiples of 4."""
        return self.w32[np.minimum(at, self.top) >> 2].astype(np.int64)

    def raw(self, at: Any, width: int) -> Any:
        """``width`` bytes at offsets ``at``, as a numpy ``V<width>`` array."""
        at = np.minimum(at, self.top)
        return np.ascontiguousarray(self.buf[at[:, None] + _SPREAD[width]]).view(f"V{width}").ravel()

    def mac(self, at: Any) -> Any:
        """48-bit MACs at even offsets."""
        return (self.u16(at) << 32) | (self.u16(at + 2) << 16) | self.u16(at + 4)

    def addresses(self, at: Any, size: Any) -> list[bytes]:
        """The address of ``size`` bytes (4, 16, else none: ``b""``) at each of ``at``."""
        out = [b""] * len(at)
        for w in (4, 16):
            sel = np.flatnonzero(size == w)
            if len(sel):
                for k, v in zip(sel.tolist(), self.raw(at[sel], w).tolist(), strict=True):
                    out[k] = v
        return out


def columns(chunks: list[SampleChunk]) -> list[SampleColumns]:
    """The flow samples of ``chunks`` (in order) as columns, one :class:`SampleColumns` per address family."""
    counts = [c.count for c in chunks]
    bodies, a = laid_out([p for c in chunks for p in c.parts])  # (a datagram each, or a run sealed already)
    r = _Reader(bodies)  # (joined once, there)
    s = _Samples(r, a[:, 0], a[:, 1], a[:, 2].astype(bool))
    chunk_of = np.repeat(np.arange(len(chunks)), counts)
    first = np.cumsum(counts) - counts  # each chunk's first sample
    return s.split(chunks, chunk_of, first)


class _Samples:
    """Every value of the flow tuples of the samples at ``start``..``end`` (expanded or not), read
    with numpy; ``ok`` False where a sample is not read here (see the module doc)."""

    def __init__(self, r: _Reader, start: Any, end: Any, expanded: Any, compiled: bool | None = None) -> None:
        """``compiled``: read by :mod:`flowpipe.decode.walk`'s compiled ``read_samples`` (the same
        values, at a fraction of the cost), by numpy here, or (None) the first when it is built."""
        n = len(start)
        self.n = n
        self.r = r
        if compiled or (compiled is None and walk.COMPILED):
            self._compiled(r, start, end, expanded)
            return
        u32 = r.u32
        x = expanded
        self.rate = u32(start + np.where(x, 12, 8))
        word = u32(start + np.where(x, 28, 20))
        self.in_if = np.where(x, word, word & _MASK30)
        word = u32(start + np.where(x, 36, 24))
        self.out_fmt = np.where(x, u32(start + 32), word >> 30)
        self.out_if = np.where(x, word, word & _MASK30)
        nrec = u32(start + np.where(x, 40, 28))
        cur = start + np.where(x, 44, 32)
        # more records than bytes for them: some record is cut (reported there); an odd offset: the
        # words are not where XDR puts them
        ok = (nrec <= (end - cur) // 8) & (start & 3 == 0)
        hdr, hdr_end = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        router, router_end = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        gw, gw_end = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        live = np.flatnonzero(ok & (nrec > 0))
        k = 0
        while len(live):  # the k-th record of every sample that has one
            c, e = cur[live], end[live]
            fmt, length = u32(c), u32(c + 4)
            p = c + 8
            nxt = p + length
            bad = (e - c < 8) | (nxt > e) | (length & 3 != 0) | (fmt == 2) | (fmt == 3) | (fmt == 4)
            raw = (fmt == 1) & (hdr[live] < 0)  # the first raw header counts, later ones are ignored
            bad |= raw & (length < 16)
            hdr[live[raw]], hdr_end[live[raw]] = p[raw], nxt[raw]
            for kind, at, at_end in ((1002, router, router_end), (1003, gw, gw_end)):
                this = fmt == kind
                bad |= this & (at[live] >= 0)
                at[live[this]], at_end[live[this]] = p[this], nxt[this]
            ok[live[bad]] = False
            cur[live] = nxt
            k += 1
            live = live[~bad & (nrec[live] > k)]
        ok &= hdr >= 0
        self._router(r, router, router_end, ok)
        self._gateway(r, gw, gw_end, ok)
        self.frame_len = u32(hdr + 4)
        hlen = u32(hdr + 12)
        hp = hdr + 16
        ok &= (u32(hdr) == 1) & (hlen <= hdr_end - hp) & (hlen >= 14)  # Ethernet, whole, long enough
        self._ethernet(r, hp, hp + hlen, ok)
        self.ok = ok

    def _compiled(self, r: _Reader, start: Any, end: Any, expanded: Any) -> None:
        """What the numpy reading below gives, from one C loop over the samples (values of samples
        that are not ok may differ: nothing reads them)."""
        n = self.n
        out = np.zeros((walk.SAMPLE_COLUMNS, n), dtype=np.int64)
        walk.read_samples(r.buf, np.ascontiguousarray(start, dtype=np.int64), np.ascontiguousarray(end, dtype=np.int64),
                          np.ascontiguousarray(expanded, dtype=np.int64), out)
        (self.rate, self.in_if, self.out_fmt, self.out_if, ok, self.router_at, self.router_size, self.src_mask,
         self.dst_mask, self.gw_at, self.gw_size, has_as, self.src_as, self.dst_as, self.frame_len, self.dst_mac,
         self.src_mac, self.ether_type, self.proto, self.tos, self.sport, self.dport, self.flags, family, l3) = out
        self.ok, self.has_as = ok.astype(bool), has_as.astype(bool)
        self.v4, self.v6 = np.flatnonzero(family == 4), np.flatnonzero(family == 6)
        self.src4, self.dst4 = r.raw(l3[self.v4] + 12, 4), r.raw(l3[self.v4] + 16, 4)
        self.src6, self.dst6 = r.raw(l3[self.v6] + 8, 16), r.raw(l3[self.v6] + 24, 16)

    def _router(self, r: _Reader, at: Any, at_end: Any, ok: Any) -> None:
        """Extended router: next hop (type word, 4 or 16 bytes), then the two masks."""
        n = self.n
        self.src_mask, self.dst_mask = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self.router_at, self.router_size = at, np.zeros(n, np.int64)  # the next hop: offset, bytes
        has = np.flatnonzero(ok & (at >= 0))
        if not len(has):
            return
        p, e = at[has], at_end[has]
        size = _address_size(r.u32(p))
        ok[has[e - p < 4 + size + 8]] = False
        self.src_mask[has], self.dst_mask[has] = r.u32(p + 4 + size), r.u32(p + 8 + size)
        self.router_size[has] = size

    def _gateway(self, r: _Reader, at: Any, at_end: Any, ok: Any) -> None:
        """Extended gateway: next hop, own/source/peer AS, then the AS path segments (the
        destination AS is the last AS of the path, else the router's own)."""
        n = self.n
        self.gw_at, self.gw_size = at, np.zeros(n, np.int64)  # the next hop: offset, bytes
        self.has_as = np.zeros(n, dtype=bool)
        self.src_as, self.dst_as = np.zeros(n, np.int64), np.zeros(n, np.int64)
        has = np.flatnonzero(ok & (at >= 0))
        if not len(has):
            return
        p, e = at[has], at_end[has]
        size = _address_size(r.u32(p))
        p = p + 4 + size
        bad = e - p < 16
        src_as, dst_as, nseg = r.u32(p + 4), r.u32(p), r.u32(p + 12)
        p = p + 16
        bad |= nseg > (e - p) // 8
        live = np.flatnonzero(~bad & (nseg > 0))
        k = 0
        while len(live):
            q, qe = p[live], e[live]
            count = r.u32(q + 4)
            q = q + 8
            cut = (qe - q < 0) | (count > (qe - q) >> 2)
            bad[live[cut]] = True
            last = ~cut & (count > 0)
            dst_as[live[last]] = r.u32(q[last] + 4 * (count[last] - 1))
            p[live] = q + 4 * count
            k += 1
            live = live[~cut & (nseg[live] > k)]
        ok[has[bad]] = False
        self.gw_size[has] = size
        self.has_as[has] = True
        self.src_as[has], self.dst_as[has] = src_as, dst_as

    def _ethernet(self, r: _Reader, hp: Any, hend: Any, ok: Any) -> None:
        """The sampled frame: MACs, one VLAN tag, IPv4/IPv6 and their TCP/UDP header."""
        u8, u16 = r.u8, r.u16
        n = self.n
        self.dst_mac, self.src_mac = r.mac(hp), r.mac(hp + 6)
        et = u16(hp + 12)
        l3 = hp + 14
        tagged = np.isin(et, _VLAN)
        inner = u16(l3 + 2)
        ok &= ~(tagged & ((hend - l3 < 4) | np.isin(inner, _VLAN)))
        et = np.where(tagged, inner, et)
        l3 = np.where(tagged, l3 + 4, l3)
        ok &= (et != 0x8847) & (et != 0x8848) & (et != 0x8864)
        self.ether_type = et
        z = np.zeros(n, np.int64)
        self.proto, self.tos, self.sport, self.dport, self.flags = z, z.copy(), z.copy(), z.copy(), z.copy()
        empty = np.zeros(0, dtype="V4")
        self.src4 = self.dst4 = empty
        self.src6 = self.dst6 = empty.astype("V16")
        self.v4 = np.flatnonzero(ok & (et == 0x0800))
        self.v6 = np.flatnonzero(ok & (et == 0x86DD))
        if len(self.v4):
            at, e = l3[self.v4], hend[self.v4]
            vihl = u8(at)
            ok[self.v4[(e - at < 20) | (vihl >> 4 != 4) | ((vihl & 15) < 5)]] = False
            first = u16(at + 6) & 0x1FFF == 0
            self._transport(r, self.v4, at + ((vihl & 15) << 2), e, u8(at + 9), u8(at + 1), first)
            self.src4, self.dst4 = r.raw(at + 12, 4), r.raw(at + 16, 4)
        if len(self.v6):
            at, e = l3[self.v6], hend[self.v6]
            vcl = (u16(at) << 16) | u16(at + 2)
            first = u8(at + 6)
            ok[self.v6[(e - at < 40) | (vcl >> 28 != 6) | np.isin(first, _V6_EXT)]] = False
            self._transport(r, self.v6, at + 40, e, first, (vcl >> 20) & 0xFF, np.ones(len(at), bool))
            self.src6, self.dst6 = r.raw(at + 8, 16), r.raw(at + 24, 16)

    def _transport(self, r: _Reader, lanes: Any, l4: Any, e: Any, proto: Any, tos: Any, first: Any) -> None:
        """Protocol and ToS of IP lanes; ports (first fragment, TCP/UDP, 4 bytes there) and TCP flags (14)."""
        self.proto[lanes], self.tos[lanes] = proto, tos
        tcp = proto == 6
        ported = first & (e - l4 >= 4) & (tcp | (proto == 17))
        self.sport[lanes] = np.where(ported, r.u16(l4), 0)
        self.dport[lanes] = np.where(ported, r.u16(l4 + 2), 0)
        self.flags[lanes] = np.where(ported & tcp & (e - l4 >= 14), r.u8(l4 + 13), 0)

    def kept_columns(self, g: Any) -> list[Any]:
        """What the kept and additional fields of the samples ``g`` are made of, as integer columns
        (the next hop as its size and four words): equal rows, equal fields."""
        _, size, hop = self._hop(g)
        return [self.rate[g], self.ether_type[g], self.src_mac[g], self.dst_mac[g], self.src_mask[g],
                self.dst_mask[g], self.out_if[g], size, *hop, self.has_as[g], self.src_as[g], self.dst_as[g],
                self.out_fmt[g]]

    def _hop(self, g: Any) -> tuple[Any, Any, list[Any]]:
        """Where the next hop of each of the samples ``g`` is, its size and its four words (0 past its
        size): the router's (1002), else the gateway's (1003), else size 0 (none)."""
        rs, gs = self.router_size[g], self.gw_size[g]
        router = (rs == 4) | (rs == 16)
        size = np.where(router, rs, np.where((gs == 4) | (gs == 16), gs, 0))
        at = np.where(router, self.router_at[g], self.gw_at[g]) + 4
        u32 = self.r.u32
        words = [np.where(size != 0, u32(at), 0)] + [np.where(size == 16, u32(at + 4 * k), 0) for k in (1, 2, 3)]
        return at, size, words

    def hops(self, g: Any) -> Any:
        """The next hop of the samples ``g`` (``b""`` for none), a numpy object array; equal ones are
        one bytes object."""
        at, size, words = self._hop(g)
        r = self.r
        same = room(_HOPS, MAX_SHARED_EXTRAS).setdefault  # a handful of next hops: one bytes object each

        def make(rows: Any) -> list[bytes]:
            hop = r.addresses(at[rows], size[rows])
            return list(map(same, hop, hop))

        return per_distinct([size, *words], make)

    def extras(self, g: Any) -> Any:
        """The additional fields of the samples ``g`` (AS numbers, egress format), None for none, as
        a numpy object array; equal ones are one dict."""
        out = np.full(len(g), None, dtype=object)
        has_as, out_fmt = self.has_as[g], self.out_fmt[g]
        some = np.flatnonzero(has_as | (out_fmt != 0))
        if not len(some):
            return out
        h = g[some]
        cols = [has_as[some], self.src_as[h], self.dst_as[h], out_fmt[some]]
        memo = room(_EXTRAS, MAX_SHARED_EXTRAS)

        def make(rows: Any) -> list[dict[str, Any]]:
            made = []
            for key in zip(*(c[rows].tolist() for c in cols), strict=True):
                d = memo.get(key)
                if d is None:
                    a, src, dst, fmt = key
                    if not fmt:
                        d = {"src_as": src, "dst_as": dst}
                    elif a:
                        d = {"src_as": src, "dst_as": dst, "egress_format": _EGRESS_FORMAT.get(fmt, str(fmt))}
                    else:
                        d = {"egress_format": _EGRESS_FORMAT.get(fmt, str(fmt))}
                    memo[key] = d
                made.append(d)
            return made

        out[some] = per_distinct(cols, make)
        return out

    def split(self, chunks: list[SampleChunk], chunk_of: Any, first: Any) -> list[SampleColumns]:
        """The samples as one :class:`SampleColumns` per address family, each in sample order; the
        samples not read here are decoded one by one and join the family their addresses have."""
        ok = self.ok
        families: dict[tuple[int, int], list[Any]] = {}
        ip = np.zeros(self.n, dtype=bool)
        for lanes, width in ((self.v4, 4), (self.v6, 16)):
            ip[lanes] = True
            families[(width, width)] = [lanes[ok[lanes]]]
        families[(0, 0)] = [np.flatnonzero(ok & ~ip)]
        rows: dict[int, tuple | None] = {}
        others = np.flatnonzero(~ok).tolist()
        if others:
            by_family: dict[tuple[int, int], list[int]] = {}
            for g in others:
                c = int(chunk_of[g])
                f = rows[g] = chunks[c].row(g - int(first[c]))
                by_family.setdefault((0, 0) if f is None else (len(f[SRC_IP]), len(f[DST_IP])), []).append(g)
            for fam, lanes_l in by_family.items():
                families.setdefault(fam, []).append(np.array(lanes_l, dtype=np.int64))
        out = []
        for fam, parts in families.items():
            lanes = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))
            if len(lanes):
                out.append(SampleColumns(self, chunks, chunk_of, first, lanes, fam, rows))
        return out


def _extra_bits_of(extras: dict[str, Any] | None, groups: tuple[tuple[str, ...], ...]) -> int:
    """Bit k set when ``extras`` has every field of ``groups[k]``; bit len(groups) when it has a
    field of no group."""
    if not extras:
        return 0
    bits = 0
    for k, names in enumerate(groups):
        if all(n in extras for n in names):
            bits |= 1 << k
    if any(not any(n in names for names in groups) for n in extras):
        bits |= 1 << len(groups)
    return bits


def _address_size(kind: Any) -> Any:
    """Bytes of an sFlow address of type ``kind`` (1 IPv4, 2 IPv6, else none)."""
    return np.where(kind == 1, 4, np.where(kind == 2, 16, 0))


class SampleColumns:
    """The samples of one address family as the accumulator reads columns
    (:class:`flowpipe.decode.columns.Columns`' interface): key parts, counters, times, ``ok``; the
    kept fields and additional fields of a record from the columns too (:meth:`kept_at`)."""

    __slots__ = ("s", "chunks", "chunk_of", "first", "lanes", "n", "family", "parts", "bytes", "packets", "start",
                 "end", "flags", "ok", "_rows")

    def __init__(self, s: _Samples, chunks: list[SampleChunk], chunk_of: Any, first: Any, lanes: Any,
                 family: tuple[int, int], rows: dict[int, tuple | None]) -> None:
        self.s, self.chunks, self.chunk_of, self.first, self.lanes = s, chunks, chunk_of, first, lanes
        self.n = n = len(lanes)
        self.family = family
        self._rows = rows
        self.ok = ok = s.ok[lanes]
        parts: list[Any] = [np.zeros(n, dtype=f"V{w}") if w else None for w in family]
        parts += [s.sport[lanes], s.dport[lanes], s.proto[lanes], s.tos[lanes], s.in_if[lanes]]
        if family[0] and family[0] == family[1]:
            read = np.flatnonzero(ok)
            if len(read):
                mine, src, dst = (s.v4, s.src4, s.dst4) if family[0] == 4 else (s.v6, s.src6, s.dst6)
                at = np.searchsorted(mine, lanes[read])
                parts[0][read], parts[1][read] = src[at], dst[at]
        self.parts = parts
        self.bytes = s.frame_len[lanes]
        self.packets = np.ones(n, dtype=np.int64)
        secs = np.array([c.secs for c in chunks], dtype=np.int64)[chunk_of[lanes]]
        self.start, self.end = secs, secs
        self.flags = s.flags[lanes]
        for p in np.flatnonzero(~ok).tolist():  # samples not read here: values from their tuples
            f = rows[int(lanes[p])]
            if f is not None:
                for k, slot in enumerate((SRC_IP, DST_IP, SRC_PORT, DST_PORT, IP_PROTOCOL, TOS, IN_IF)):
                    if parts[k] is not None:
                        parts[k][p] = f[slot]
                self.bytes[p], self.flags[p] = f[BYTES], f[TCP_FLAGS]

    def owner_ids(self, owner: Any) -> Any:
        """The owner id (``owner(namespace, exporter)``) of each record."""
        ids = np.fromiter((owner(c.namespace, c.exporter) for c in self.chunks), np.int64, len(self.chunks))
        return ids[self.chunk_of[self.lanes]]

    def rates(self) -> Any:
        """The sampling rate of every record (uint64; of those ``ok``)."""
        return self.s.rate[self.lanes].astype(np.uint64)

    def row(self, p: int) -> tuple | None:
        """The flow tuple of record ``p``, decoded by the per-sample decoder; None when it raised."""
        g = int(self.lanes[p])
        f = self._rows.get(g, _NOT_YET)
        if f is _NOT_YET:
            c = int(self.chunk_of[g])
            f = self._rows[g] = self.chunks[c].row(g - int(self.first[c]))
        return f  # type: ignore[no-any-return]

    def rows(self) -> list[tuple | None]:
        return [self.row(p) for p in range(self.n)]

    def rows_at(self, positions: Any) -> list[tuple | None]:
        return [self.row(p) for p in (positions.tolist() if hasattr(positions, "tolist") else positions)]

    def _failed_lanes(self) -> Any:
        """Positions of this family's records whose decoding by the per-sample decoder raised."""
        bad = np.fromiter((g for g, f in self._rows.items() if f is None), np.int64)
        at = np.searchsorted(self.lanes, bad)
        return at[(at < self.n) & (self.lanes[np.minimum(at, self.n - 1)] == bad)]

    def failed(self) -> list[SampleChunk]:
        """The chunks of records here whose decoding raised so far."""
        cs = np.unique(self.chunk_of[self.lanes[self._failed_lanes()]]).tolist()
        return [self.chunks[c] for c in cs]

    def failed_positions(self) -> Any:
        """A bool per record: its decoding raised (so far)."""
        bad = np.zeros(self.n, dtype=bool)
        bad[self._failed_lanes()] = True
        return bad

    def kept_at(self, positions: Any, intern: Intern | None = None) -> tuple[Any, Any]:
        """The kept fields (:data:`flowpipe.flow.kept_fields`) and the additional fields of the
        records at ``positions``, as numpy object arrays, from the columns (records not read here:
        from their flow tuples; None for one whose decoding failed); equal ones are one object, each
        kept tuple passed through ``intern`` when given, unless the batch's are mostly distinct (see
        :func:`flowpipe.decode.columns.unique_rows`)."""
        s = self.s
        at = np.asarray(positions, dtype=np.int64)
        g = self.lanes[at]
        if not len(g) or mostly_distinct(s.kept_columns(g[:PROBE + 1])):
            alike = None  # (a MAC pair per sample, say: not worth reading every row's to find none alike)
        else:
            alike = unique_rows(s.kept_columns(g))
        one = g if alike is None else g[alike[0]]  # a sample of each distinct kept and additional fields
        made = walk.column_tuples((_TYPE, s.rate[one], _ZERO, s.ether_type[one], s.src_mac[one], s.dst_mac[one],
                                   s.src_mask[one], s.dst_mask[one], s.out_if[one], s.hops(one).tolist()), len(one))
        if intern is not None and alike is not None:  # (mostly distinct: nothing to share)
            made = list(map(intern, made, made))
        kept, more = objects(made), s.extras(one)
        if alike is not None:
            kept, more = kept[alike[1]], more[alike[1]]
        if not self.ok.all():
            for k, p in enumerate(at.tolist()):
                if not self.ok[p]:
                    f = self.row(p)
                    if f is None:
                        kept[k] = more[k] = None
                        continue
                    t = kept_fields(f)
                    kept[k], more[k] = t if intern is None else intern(t, t), f[EXTRAS]
        return kept, more

    def extra_bits(self) -> tuple[Any, tuple[tuple[str, ...], ...]]:
        """Which additional fields each record has, as bits over :data:`EXTRA_GROUPS` (bit k: the
        fields of group k; the bit after the last: some other field), and the groups."""
        s, g = self.s, self.lanes
        bits = s.has_as[g].astype(np.int64) | ((s.out_fmt[g] != 0).astype(np.int64) << 1)
        if not self.ok.all():
            for p in np.flatnonzero(~self.ok).tolist():
                f = self.row(p)
                bits[p] = _extra_bits_of(f[EXTRAS] if f is not None else None, EXTRA_GROUPS)
        return bits, EXTRA_GROUPS

    def extras_at(self, positions: Any) -> list[dict[str, Any] | None]:
        """The additional fields of the records at ``positions`` (what :meth:`kept_at` gives with the
        kept fields)."""
        at = np.asarray(positions, dtype=np.int64)
        extras: list[dict[str, Any] | None] = self.s.extras(self.lanes[at]).tolist()
        if not self.ok.all():
            for k, p in enumerate(at.tolist()):
                if not self.ok[p]:
                    f = self.row(p)
                    extras[k] = None if f is None else f[EXTRAS]
        return extras


_NOT_YET: Any = object()
_TYPE, _ZERO = (FLOW_TYPE,), (0,)  # (walk.column_tuples' columns of one value)

