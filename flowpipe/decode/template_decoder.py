"""NetFlow v9 / IPFIX decoding with per-exporter template state: the entry the service calls.

One datagram ends up in exactly one bucket:

- **invalid**: :class:`DecodeError` (bad header, lying lengths, a first set that overruns);
- **held** (``Decoded.held == 1``): at least one of its data sets waits for a template and none
  of its data records (flow or options) could be decoded yet. Later it is either *released* by
  the datagram that brings a template for it (``Decoded.released`` of that datagram; its flows
  are appended there), or given up on: :meth:`TemplateDecoder.expire` returns the held
  datagrams past ``hold_timeout`` plus those the hold caps dropped since its last call;
- **decoded**: everything else. Sets of a decoded datagram that wait for a template are held
  as uncounted *parts* (``hold.stats.parts_dropped`` when they are given up on). When data
  cannot be held at all (holding off, or too big) its sets are listed in ``skipped`` as
  ``no_template`` and the datagram counts as decoded. At most ``HOLD_MAX_SETS`` sets of one
  datagram are held; the others are skipped as ``no_template`` too.

Held data is indexed by template id: a datagram that brings templates looks only at the held
entries waiting for those, and decodes their sets of those templates (see
:mod:`flowpipe.decode.templates` for what holding costs and how it is bounded).

A data set whose template comes later in the same datagram is decoded at the end of it.
``Decoded.skipped`` holds one entry per skipped part: ``reserved_set_id``, ``bad_set_length``,
``set_overrun``, ``trailing_bytes``, ``bad_template``, ``template_cap``, ``record_overrun``,
``no_template``. ``SequenceObs.units`` is 1 for v9; for IPFIX the data records (flow and options)
of this message decoded on arrival (sets held for a template are not counted).

Exporter identity (``Decoded.exporter`` and the flows' ``exporter``): the UDP source address, or
with ``in_band`` what the export itself says, first found of:

1. exporterIPv4Address / exporterIPv6Address (130/131) in the records: an options record (any
   scope, e.g. exporter-scoped) or a flow record. It is remembered per domain (UDP source, port,
   version, source id / observation domain), so the domain's later datagrams carry it too; a
   datagram that first reveals it has all its flows attributed to it. Flow records that carry a
   non-zero 130/131 keep their own value (an IPFIX mediator may relay several exporters);
2. ``exporters``: the header's v9 source id / IPFIX observation domain -> address or name;
3. the UDP source address.

Template state is kept per *owner* (the ``exporters`` name of the domain's source id, else the UDP
source) and domain, see :mod:`flowpipe.decode.templates`: a domain's templates are known before
its first 130/131 record can be read, so they cannot be keyed by it.
"""
from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flowpipe.decode import derived, ipfix, netflow9, nsel, walk
from flowpipe.decode import reverse as biflow
from flowpipe.decode.base import Decoded, DecodeError, Plain, SequenceObs, Source
from flowpipe.decode.columns import Chunk, PackedChunk, flows_of
from flowpipe.decode.config import DecoderConfig, MappingConfig
from flowpipe.decode.elements import (
    Field,
    Mapping,
    RecordDecoder,
    RecordOverrun,
    compile_records,
    option_exporter,
    option_rate,
    option_values,
)
from flowpipe.decode.stats import DecoderStats
from flowpipe.decode.templates import (
    HOLD_MAX_SETS,
    WITHDRAW_ALL_DATA,
    WITHDRAW_ALL_OPTIONS,
    Domain,
    DomainKey,
    DomainView,
    Held,
    HoldQueue,
    Layout,
    Registry,
    Template,
    TemplateRecord,
    check,
)
from flowpipe.flow import EXPORTER

_HH = struct.Struct("!HH")
COMPILED_MAX = 4096  # compiled record decoders kept (~4-5 KB each), shared by the layouts that use them
SNAPSHOT_FORMAT = 1


class _Msg:
    """What one datagram is decoding into (and what a release decodes with).

    ``exporter`` is the identity the flows get, ``owner`` the key of the template state.
    """

    __slots__ = ("exporter", "owner", "namespace", "key", "version", "secs", "uptime", "flows", "chunks",
                 "records", "skipped")

    def __init__(self, exporter: str, owner: str, namespace: str, key: DomainKey, version: int, secs: int,
                 uptime: int, flows: list[tuple], chunks: list[Chunk], skipped: list[str]) -> None:
        self.exporter, self.owner, self.namespace, self.key, self.version = exporter, owner, namespace, key, version
        self.secs, self.uptime = secs, uptime
        self.flows = flows
        self.chunks = chunks
        self.records = 0
        self.skipped = skipped


# Flow records decoded from one datagram at most (a 9000-byte jumbo datagram of 20-byte records is
# 450); the rest are skipped as too_many_records. Bounds what one listener batch (listen.BATCH
# datagrams) can decode to: ~1 M flows.
MAX_RECORDS_PER_DATAGRAM = 1024


class TemplateDecoder:
    """Decodes NetFlow v9 and IPFIX datagrams of any number of exporters (see the module doc).

    What it counts, for metrics (:mod:`flowpipe.decode.stats`): its own ``stats`` (malformed
    templates, options records, in-band exporter addresses learned), its ``registry``'s (templates
    and why some were refused), its ``hold``'s (data waiting for templates) and its ``nsel``'s
    (Cisco ASA NSEL records and connections).
    """

    def __init__(self, cfg: DecoderConfig, mapping: Sequence[MappingConfig] = (),
                 clock: Callable[[], float] = time.time, *, in_band: bool = False,
                 exporters: dict[int, str] | None = None, passthrough: bool = False,
                 sampler_rules: Any = None, columnar: bool = False, reverse: bool = False) -> None:
        """``in_band``: exporter identity from the export (see the module doc), ``exporters``: source
        id / observation domain -> address or name (in-band only); ``passthrough``: unknown elements
        into the flows' extras (see :mod:`flowpipe.decode.elements`); ``columnar``: data sets of
        templates that allow it go into ``Decoded.chunks`` undecoded (see
        :mod:`flowpipe.decode.columns`; not with in-band identity); ``reverse``: bidirectional
        records also yield their reverse direction as a flow (:mod:`flowpipe.decode.reverse`).
        Cisco ASA NSEL templates are counted once per connection (:mod:`flowpipe.decode.nsel`)."""
        self.columnar = columnar and not in_band
        self.cfg = cfg
        self.mapping = Mapping(mapping)
        self.clock = clock
        self.in_band = in_band
        self.exporters = dict(exporters or {}) if in_band else {}
        self.passthrough = passthrough
        self.sampler_rules = sampler_rules if sampler_rules else None  # flowpipe.decode.exporters.SamplerRules
        self.stats = DecoderStats()
        self.registry = Registry(cfg)
        self.hold = HoldQueue(cfg)
        self._compiled: dict[tuple[int, tuple[Field, ...]], RecordDecoder] = {}
        self.reverse = reverse
        self.nsel = nsel.Nsel(cfg.nsel_max_connections_per_exporter, cfg.nsel_max_connections)

    # ---- the interface --------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Datagrams currently held waiting for a template."""
        return self.hold.held

    def expire(self, now: float) -> int:
        """Drop expired templates, held data and idle NSEL connection state; held datagrams given up
        on (incl. cap drops)."""
        self.registry.expire(now)
        self.nsel.expire((d.conns for ex in self.registry.exporters.values() for d in ex.domains.values()
                          if d.conns is not None), now)
        return self.hold.expire(now) + self.hold.take_dropped()

    def domains(self) -> list[tuple[DomainView, list[int]]]:
        """Read-only: each domain's templates and sampling state, with the template ids its held data
        waits for, domains known only by held data included (the exporter inventory; nothing here
        changes decoder state)."""
        waiting = {(owner, key): tids for owner, key, tids in self.hold.waiting()}
        out = [(v, waiting.pop((v.owner, (v.source_port, v.version, v.domain)), [])) for v in self.registry.view()]
        out += [(DomainView(owner, owner, key[0], key[1], key[2], (), (), 0, 0.0), tids)
                for (owner, key), tids in waiting.items()]
        return out

    def snapshot(self) -> dict[str, Any]:
        """Templates and sampling state as msgpack-able plain data."""
        return {"format": SNAPSHOT_FORMAT, "domains": self.registry.snapshot()}

    def restore(self, d: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (malformed parts are ignored; caps apply)."""
        if isinstance(d, dict) and d.get("format") == SNAPSHOT_FORMAT:
            self.registry.restore(d.get("domains"))

    def decode(self, data: bytes, src: Source) -> Decoded:
        """Decode one v9 or IPFIX datagram; DecodeError when it is invalid as a whole."""
        if len(data) < 4:
            raise DecodeError("short", f"{len(data)}-byte datagram")
        version = (data[0] << 8) | data[1]
        if version == 9:
            secs, uptime, seq, did, end = netflow9.header(data)
            start, ftype = netflow9.HEADER_LEN, "netflow9"
        elif version == 10:
            secs, uptime, seq, did, end = ipfix.header(data)
            start, ftype = ipfix.HEADER_LEN, "ipfix"
        else:
            raise DecodeError("bad_version", f"version {version} is not NetFlow v9 or IPFIX")
        key = (src.port, version, did)
        owner = ident = src.exporter
        if self.in_band:
            mapped = self.exporters.get(did) if self.exporters else None
            if mapped is not None:
                owner = mapped
            dom = self.registry.domain(owner, key)
            ident = (dom.identity if dom is not None else None) or mapped or owner
        out = Decoded(ftype, ident)
        sets = _walk(data, start, end, out.skipped)
        if end < len(data) and any(data[end:]):
            out.skipped.append("trailing_bytes")
        now = self.clock()
        msg = _Msg(ident, owner, src.namespace, key, version, secs, uptime, out.flows, out.chunks, out.skipped)
        pending: list[tuple[int, int, int]] = []  # (template id, body start, body end)
        learned: set[int] = set()
        for sid, a, b in sets:
            if sid >= 256:
                t = self._template(owner, key, sid, now)
                if t is None:
                    pending.append((sid, a, b))
                else:
                    self._data(t, msg, data[a:b], now)
            elif (version == 9 and sid <= netflow9.OPTIONS_SET) or (version == 10 and not ipfix.is_reserved(sid)):
                self._templates(data, a, b, sid, msg, now, learned)
            else:
                out.skipped.append("reserved_set_id")
        records = msg.records
        if pending and learned:
            pending = self._retry(pending, data, msg, now)
            records = msg.records
        h: Held | None = None
        if pending:
            if len(pending) > HOLD_MAX_SETS:
                out.skipped.extend(["no_template"] * (len(pending) - HOLD_MAX_SETS))
                del pending[HOLD_MAX_SETS:]
            h = Held.of_spans(owner, key, src.namespace, secs, uptime, data, pending, now, counted=records == 0)
            if self.hold.add(h):
                out.held = 1 if h.counted else 0
            else:
                out.skipped.extend(["no_template"] * len(pending))
        if msg.exporter != ident:  # this datagram revealed the exporter's address: all of it is theirs
            new = msg.exporter
            out.exporter = new
            out.flows[:] = [f if f[EXPORTER] != ident else f[:EXPORTER] + (new,) + f[EXPORTER + 1:] for f in out.flows]
        if learned and self.hold.has_waiting(owner, key):
            out.released = self._release(msg, now, learned, h)
        out.sequence = SequenceObs(did, seq, 1 if version == 9 else records)
        return out

    def plain(self, data: bytes, src: Source) -> Plain | None:
        """A v9/IPFIX datagram of data sets only, each of a live template the columnar path takes,
        as (chunks, exporter, flow type, sequence observation, records) with no other effect; None for any
        other datagram (:meth:`decode` it). The service's common case, at a fraction of
        :meth:`decode`'s cost (no hold, identity or template work to do)."""
        if not self.columnar or self.sampler_rules is not None:
            return None
        got = walk.data_sets(data)
        if got is None:
            return None
        version, secs, uptime, seq, did, sets = got
        ex = self.registry.exporters.get(src.exporter)
        dom = ex.domains.get((src.port, version, did)) if ex is not None else None
        if dom is None:
            return None
        templates, oldest = dom.templates, self.clock() - self.cfg.template_timeout
        exporter, ns = src.exporter, src.namespace
        chunks: list[Chunk] = []
        records = 0
        for i in range(0, len(sets), 3):
            t = templates.get(sets[i])
            if t is None or t.seen < oldest or t.options:
                return None
            dec = t.layout.decoder or self._compile(t.layout)
            if dec.plan is None or not dec.size or dec.vendor is not None:  # (variable-length records: the full
                return None                                                # path packs them; vendor rules: state)
            a, b = sets[i + 1], sets[i + 2]
            count = (b - a) // dec.size
            if count:
                records += count
                if records > MAX_RECORDS_PER_DATAGRAM:
                    return None
                chunks.append(Chunk(dec, data[a:a + count * dec.size], count, exporter, ns, dom.rate, dom.samplers,
                                    secs, uptime, dom.init_ms))
        if version == 9:
            return chunks, exporter, "netflow9", tuple.__new__(SequenceObs, (did, seq, 1)), records
        return chunks, exporter, "ipfix", tuple.__new__(SequenceObs, (did, seq, records)), records

    # ---- sets ---------------------------------------------------------------------------------

    def _template(self, owner: str, key: DomainKey, tid: int, now: float) -> Template | None:
        dom = self.registry.domain(owner, key)
        t = dom.templates.get(tid) if dom is not None else None
        return t if t is not None and self.registry.is_live(t, now) else None

    def _templates(self, data: bytes, a: int, b: int, sid: int, msg: _Msg, now: float, learned: set[int]) -> None:
        """Learn a (options) template set; the ids of templates stored, refreshed or changed go
        into ``learned``."""
        skipped = msg.skipped
        if msg.version == 9:
            recs = (netflow9.templates(data, a, b, skipped) if sid == netflow9.TEMPLATE_SET
                    else netflow9.options_templates(data, a, b, skipped))
        else:
            recs = ipfix.templates(data, a, b, sid == ipfix.OPTIONS_SET, skipped)
        reg = self.registry
        dom: Domain | None = None
        refused = False
        for rec in recs:
            if not rec.fields:
                self._withdraw(rec, sid, msg)
                continue
            why = check(rec, msg.version)
            if why:
                self.stats.bad_templates += 1
                skipped.append(why)
                continue
            dom = dom or reg.domain_for_update(msg.owner, msg.key, now)
            if dom is None:
                refused = True
                continue
            why = reg.add(msg.owner, dom, rec, now)
            if why:
                refused = True
            else:
                learned.add(rec.tid)
        if refused:
            skipped.append("template_cap")

    def _withdraw(self, rec: TemplateRecord, sid: int, msg: _Msg) -> None:
        dom = self.registry.domain(msg.owner, msg.key)
        if dom is None:
            return
        if rec.tid == sid:
            tid = WITHDRAW_ALL_OPTIONS if rec.options else WITHDRAW_ALL_DATA
        elif rec.tid < 256:
            msg.skipped.append("bad_template")
            return
        else:
            tid = rec.tid
        self.registry.withdraw(msg.owner, dom, tid)

    def _data(self, t: Template, msg: _Msg, body: bytes, now: float) -> None:
        """Decode one data set with its template: flows into msg.flows, or options state."""
        dom = self.registry.domain(msg.owner, msg.key)
        assert dom is not None
        if t.options:
            recs, overran = option_values(t.fields, t.scope, body, msg.version)
            for rec in recs:
                rate, init = option_rate(rec), rec.get(160)
                if rate or init is not None:
                    sampler = rec.get(48, rec.get(302))
                    self.registry.learn(dom, sampler, rate, init, now)
                if self.in_band and (addr := option_exporter(rec)) is not None:
                    self._identify(dom, addr, msg)
            self.stats.options_records += len(recs)
            msg.records += len(recs)
        else:
            dec = t.layout.decoder or self._compile(t.layout)
            overran = False
            if self.sampler_rules is not None:
                dom.samplers = self.sampler_rules.apply(dom.samplers, msg.exporter)
            room = MAX_RECORDS_PER_DATAGRAM - msg.records
            if len(body) // dec.min_size > room:
                # More records than any real export carries (a 64 KB datagram of 1-byte records is
                # 65,000 flows, ~17 MB of tuples): decode the first ones, skip the rest.
                msg.skipped.append("too_many_records")
                if room <= 0:
                    return
                if dec.size:
                    body = body[:room * dec.size]
            if self.columnar and (dec.plan is not None or dec.picks is not None) and not msg.flows:
                if dec.size:
                    count = min(len(body) // dec.size, room)
                    whole = body if len(body) == count * dec.size else body[:count * dec.size]
                else:  # variable-length records: their fixed-length fields, packed (the whole records read)
                    whole, count, overran = walk.compact(body, dec.lens, dec.min_size, room)
                if dec.vendor is not None:  # (fixed-length records: see _compile)
                    self._derived(dec, dom, msg, whole, count, now)
                elif count:
                    parts = dec.picks.split(whole, count) if dec.picks is not None else ((dec, whole, count, None),)
                    for d, b, n, at in parts:  # (records of each pair of address lengths: their own plan)
                        msg.chunks.append(Chunk(d, b, n, msg.exporter, msg.namespace, dom.rate, dom.samplers, msg.secs,
                                                msg.uptime, dom.init_ms) if dec.size else
                                          PackedChunk(d, b, body, n, msg.exporter, msg.namespace, dom.rate,
                                                      dom.samplers, msg.secs, msg.uptime, dom.init_ms, at))
                    msg.records += count
                if overran:
                    msg.skipped.append("record_overrun")
                return
            try:
                rows = dec.decode(body, msg.exporter, msg.namespace, dom.rate, dom.samplers, msg.secs, msg.uptime,
                                  dom.init_ms)
            except RecordOverrun as e:
                rows, overran = e.rows, True
            if len(rows) > room:
                del rows[room:]
            records = len(rows)  # (data records, whatever flows the vendor rules make of them)
            if dec.vendor is not None and rows:
                rows = self._vendor(dec, dom, rows, body, now)
            if dec.identity and rows and rows[0][1] != msg.exporter:
                self._identify(dom, rows[0][1], msg)
            if msg.chunks:  # keep the datagram's order: its sets from here on are flow tuples
                msg.flows.extend(flows_of(msg.chunks))
                msg.chunks.clear()
            msg.flows.extend(rows)
            msg.records += records
        if overran:
            msg.skipped.append("record_overrun")

    def _derived(self, dec: RecordDecoder, dom: Domain, msg: _Msg, whole: bytes, count: int, now: float) -> None:
        """The ``count`` records of ``whole`` (a data set's) as a chunk of the flows its template's
        vendor rules derive from them (:mod:`flowpipe.decode.derived`)."""
        if not count:
            return
        rule, p = dec.vendor, dec.plan
        assert p is not None  # (see _compile)
        base = derived.counters(p, np.frombuffer(whole, p.dtype, count))
        if isinstance(rule, nsel.NselFields):
            if dom.conns is None:
                dom.conns = nsel.ConnTable()
            got = self.nsel.derive(dom.conns, rule, whole, count, base, now, self.reverse)
        else:
            got = rule.derive(whole, count, base)
        if len(got.take):
            msg.chunks.append(derived.VendorChunk(dec, whole, count, got, rule.mirror, msg.exporter, msg.namespace,
                                                  dom.rate, dom.samplers, msg.secs, msg.uptime, dom.init_ms))
        msg.records += count

    def _vendor(self, dec: RecordDecoder, dom: Domain, rows: list[tuple], body: bytes, now: float) -> list[tuple]:
        """Rows of a template with vendor rules: NSEL events counted once per connection, reverse
        counters as flows of their own."""
        rule = dec.vendor
        if isinstance(rule, nsel.NselFields):
            if dom.conns is None:
                dom.conns = nsel.ConnTable()
            return self.nsel.flows(dom.conns, rule, rows, body, now, self.reverse)
        return rule.flows(rows, body)  # type: ignore[no-any-return]

    def _identify(self, dom: Domain, addr: str, msg: _Msg) -> None:
        """The domain announced its exporter address in-band: remember it, use it from now on."""
        if dom.identity != addr:
            dom.identity = addr
            self.stats.identities_learned += 1
        msg.exporter = addr

    def _compile(self, layout: Layout) -> RecordDecoder:
        """The layout's record decoder, from the cache of compiled ones or compiled into it.

        The cache owns the decoders (``COMPILED_MAX`` at most, the oldest compiled goes first);
        a layout points at its decoder until the cache lets it go, so memory for decoders is
        bounded whatever the number of templates and layouts, and a layout in use again is
        simply compiled again."""
        k = (layout.version, layout.fields)
        dec = self._compiled.get(k)
        if dec is None:
            if len(self._compiled) >= COMPILED_MAX:
                gone = next(iter(self._compiled))
                del self._compiled[gone]
                holder = self.registry.layouts.get(gone)
                if holder is not None:
                    holder.decoder = None
            vendor = nsel.of(layout.fields) or (biflow.of(layout.fields) if self.reverse else None)
            dec = self._compiled[k] = compile_records(
                layout.fields, layout.version, self.mapping, in_band=self.in_band, passthrough=self.passthrough,
                vendor_extras=vendor.extras if isinstance(vendor, nsel.NselFields) else ())
            dec.vendor = vendor
            if vendor is not None:  # columns of the flows the rules derive, when a plan reads them all
                dec.picks = None
                swaps = self.reverse or isinstance(vendor, biflow.Reverse)
                vendor.mirror = derived.mirror_names(dec.plan) if dec.plan is not None and swaps else []
                if not dec.size or vendor.reader.dtype is None or vendor.mirror is None:
                    dec.plan = None
        layout.decoder = dec
        return dec

    # ---- data that waited for its template ----------------------------------------------------

    def _retry(self, sets: list[tuple[int, int, int]], data: bytes, msg: _Msg,
               now: float) -> list[tuple[int, int, int]]:
        """Decode the sets (template id, body start, body end in ``data``) whose template is now
        known; return the others."""
        left = []
        for span in sets:
            t = self._template(msg.owner, msg.key, span[0], now)
            if t is None:
                left.append(span)
            else:
                self._data(t, msg, data[span[1]:span[2]], now)
        return left

    def _release(self, msg: _Msg, now: float, learned: set[int], just_held: Held | None) -> int:
        """Decode the held sets of this domain that wait for the templates just learned: only the
        entries waiting for one of them are looked at."""
        live: dict[int, Template] = {}
        for tid in learned:
            t = self._template(msg.owner, msg.key, tid, now)
            if t is not None:
                live[tid] = t
        released = 0
        for hid, h in self.hold.waiting_for(msg.owner, msg.key, live) if live else ():
            if h is just_held:
                continue
            old = _Msg(msg.exporter, h.exporter, h.namespace, h.key, msg.version, h.secs, h.uptime, msg.flows,
                       msg.chunks, msg.skipped)
            blob = h.blob
            keep: list[bytes] = []
            for tid, a, b in h.spans():
                t = live.get(tid)
                if t is None:
                    keep.append(blob[a - 4:b])
                else:
                    self._data(t, old, blob[a:b], now)
            if len(keep) == h.nsets:
                continue
            if h.counted:
                released += 1
            if keep:
                self.hold.shrink(hid, b"".join(keep))
            else:
                if h.counted:
                    self.hold.stats.released += 1
                self.hold.remove(hid)
        return released


def _walk(data: bytes, off: int, end: int, skipped: list[str]) -> list[tuple[int, int, int]]:
    """(set id, body start, body end) of every set; DecodeError when the first one is malformed."""
    sets: list[tuple[int, int, int]] = []
    while off < end:
        if end - off < 4:
            if any(data[off:end]):
                skipped.append("trailing_bytes")
            break
        sid, ln = _HH.unpack_from(data, off)
        if ln < 4 or off + ln > end:
            if sid == 0 and ln == 0 and not any(data[off:end]):
                break  # zero padding to the end of the datagram
            why = "bad_set_length" if ln < 4 else "set_overrun"
            if not sets:
                raise DecodeError(why, f"set {sid} at offset {off}: length {ln}, {end - off} bytes left")
            skipped.append(why)
            break
        sets.append((sid, off + 4, off + ln))
        off += ln
    return sets
