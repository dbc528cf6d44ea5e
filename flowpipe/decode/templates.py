"""Per-exporter NetFlow v9 / IPFIX template state: templates, sampling rates, caps, expiry.

State is keyed by exporter, then by *domain* = (UDP source port, version, source id /
observation domain), then by template id. The exporter key (``owner`` in the decoder) is the UDP
source address, or, with in-band exporter identity, the address or name ``[listeners.exporters]``
gives the domain's source id (two routers behind one NAT address with different source ids /
domains are then two exporters, each with its own caps; with the same source id they would differ
by their NAT source port, which is part of the domain). A domain also remembers the exporter
address it announced in-band (130/131), ``Domain.identity``. ``max_templates_per_exporter`` counts an exporter's
templates over all its domains (and bounds its domains); ``max_exporters`` bounds the exporters
with state. A refused template is counted in ``stats`` and leaves other state untouched.
``max_templates`` bounds the templates of all exporters together. A template expires
``template_timeout`` seconds after it was last (re)sent; a domain's sampling state expires the same
way once it has no templates left.

Memory follows the templates alive: templates of one version with the same fields share one
:class:`Layout` (the fields tuple, and a pointer to the record decoder compiled for it, which the
decoder's bounded cache owns), which goes with the last template using it. Fields of distinct
layouts are bounded by ``MAX_LAYOUT_FIELDS``.

Data that waits for its template is held in a :class:`HoldQueue`, bounded in datagrams per
exporter and in bytes, where a held datagram is counted at what it costs in memory (its sets plus
per-datagram, per-set and per-template-id bookkeeping), so ``hold_max_bytes`` bounds the memory it
takes. Held data is indexed by (exporter, domain, template id): a template releases only what
waits for it.
"""
from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from flowpipe.decode.config import DecoderConfig
from flowpipe.decode.elements import VARLEN, Field, RecordDecoder
from flowpipe.decode.stats import HoldStats, TemplateStats

MAX_FIELDS = 512              # fields in one template; more is refused as bad_template
MAX_TOTAL_FIELDS = 8_000_000  # fields over all templates (a bound on the work their fields take)
MAX_LAYOUT_FIELDS = 1_000_000  # fields of distinct layouts (the memory they take: ~100-150 bytes each)
MAX_SAMPLERS = 256            # sampler ids remembered per domain

DomainKey = tuple[int, int, int]  # (UDP source port, version, source id / observation domain)

WITHDRAW_ALL_DATA = -2
WITHDRAW_ALL_OPTIONS = -3


class TemplateRecord(NamedTuple):
    """A template as sent: ``fields`` empty means a withdrawal (IPFIX); ``scope`` > 0 = options."""

    tid: int
    fields: tuple[Field, ...]
    scope: int
    options: bool


class MessageHeader(NamedTuple):
    """What the decoder needs of a v9 or IPFIX message header."""

    secs: int      # export time, UNIX seconds
    uptime: int    # v9: the exporter's uptime in ms; IPFIX: 0
    sequence: int
    domain: int    # v9 source id, IPFIX observation domain
    end: int       # where the message ends in the datagram


def new_header(values: tuple[int, int, int, int, int]) -> MessageHeader:
    """A :class:`MessageHeader` of (secs, uptime, sequence, domain, end), made in C: once a datagram,
    where the class's own constructor (a Python function) costs ~110 ns more (260 vs 150 ns)."""
    return tuple.__new__(MessageHeader, values)  # type: ignore[type-var,no-any-return]


def check(rec: TemplateRecord, version: int) -> str | None:
    """Why a template record is unusable (a skip reason), or None.

    Vendor quirks accepted: zero-length fields (type 0 length 0 ending a template, as some v9
    exporters send) take no bytes and are skipped; variable-length fields (length 65535 with the
    RFC 7011 §7 length prefix) are read in NetFlow v9 templates too (H3C NetStream sends IE 236,
    the VRF name, so), bounded as in IPFIX. A template whose records would take no bytes at all
    stays refused.
    """
    if rec.tid < 256:
        return "bad_template"
    if not rec.fields or len(rec.fields) > MAX_FIELDS:
        return "bad_template"
    total = 0
    for _, _, ln in rec.fields:
        total += 1 if ln == VARLEN else ln
    if total == 0 or (rec.options and rec.scope > len(rec.fields)):
        return "bad_template"
    return None


class Layout:
    """Fields shared by the templates of one version that have them, and their record decoder
    (while the decoder's cache of compiled ones keeps it; None before first use or after).

    ``refs`` counts those templates; the layout goes with the last one.
    """

    __slots__ = ("fields", "version", "refs", "decoder")

    def __init__(self, fields: tuple[Field, ...], version: int) -> None:
        self.fields = fields
        self.version = version
        self.refs = 0
        self.decoder: RecordDecoder | None = None  # compiled on use (data templates)


class Template:
    __slots__ = ("tid", "fields", "scope", "options", "seen", "layout")

    def __init__(self, rec: TemplateRecord, layout: Layout, now: float) -> None:
        self.tid = rec.tid
        self.fields = layout.fields  # the layout's tuple: one per distinct layout
        self.scope = rec.scope
        self.options = rec.options
        self.seen = now
        self.layout = layout

    @property
    def decoder(self) -> RecordDecoder | None:
        return self.layout.decoder


class Domain:
    """One export stream's templates and sampling state."""

    __slots__ = ("templates", "samplers", "system_rate", "last_rate", "init_ms", "touched", "identity", "version",
                 "conns")

    def __init__(self, now: float, version: int = 9) -> None:
        self.version = version  # 9 or 10, from the domain key
        self.templates: dict[int, Template] = {}
        self.samplers: dict[int, int] = {}
        self.system_rate = 0   # from options records naming no sampler
        self.last_rate = 0     # the latest rate learned from any options record
        self.init_ms: int | None = None  # IPFIX systemInitTimeMilliseconds
        self.touched = now
        self.identity: str | None = None  # exporter address announced in-band (130/131), in-band mode
        self.conns: Any = None  # Cisco ASA NSEL connection state (flowpipe.decode.nsel.ConnTable), once used

    @property
    def rate(self) -> int:
        """The default sampling rate of records naming no (known) sampler; 0 when unknown."""
        return self.system_rate or self.last_rate


class DomainView(NamedTuple):
    """What :meth:`Registry.view` tells about one domain. ``exporter`` is the address its flows carry
    (the in-band identity when the domain announced one), ``owner`` the key its state is kept under."""

    exporter: str
    owner: str
    source_port: int
    version: int
    domain: int
    data_ids: tuple[int, ...]
    option_ids: tuple[int, ...]
    sampling_rate: int
    refreshed: float  # when the most recently (re)sent template of the domain came; 0 without templates


class Exporter:
    __slots__ = ("domains", "ntemplates")

    def __init__(self) -> None:
        self.domains: dict[DomainKey, Domain] = {}
        self.ntemplates = 0


class Registry:
    """Templates and sampling state of all exporters, within the configured caps."""

    def __init__(self, cfg: DecoderConfig) -> None:
        self.cfg = cfg
        self.stats = TemplateStats()
        self.exporters: dict[str, Exporter] = {}
        self.ntemplates = 0           # templates of all exporters (max_templates)
        self.fields_stored = 0        # fields of all templates (MAX_TOTAL_FIELDS)
        self.layouts: dict[tuple[int, tuple[Field, ...]], Layout] = {}
        self.layout_fields = 0        # fields of all distinct layouts (MAX_LAYOUT_FIELDS)

    # ---- lookups ------------------------------------------------------------------------------

    def domain(self, exporter: str, key: DomainKey) -> Domain | None:
        ex = self.exporters.get(exporter)
        return ex.domains.get(key) if ex is not None else None

    def domain_for_update(self, exporter: str, key: DomainKey, now: float) -> Domain | None:
        """The domain's state, created if the caps allow (None, counted, when they do not)."""
        ex = self.exporters.get(exporter)
        if ex is None:
            if len(self.exporters) >= self.cfg.max_exporters:
                self.stats.refused_exporters += 1
                return None
            ex = self.exporters[exporter] = Exporter()
            self.stats.exporters = len(self.exporters)
        dom = ex.domains.get(key)
        if dom is None:
            if len(ex.domains) >= self.cfg.max_templates_per_exporter:
                self.stats.refused_cap += 1
                return None
            dom = ex.domains[key] = Domain(now, key[1])
        return dom

    # ---- changes ------------------------------------------------------------------------------

    def add(self, exporter: str, dom: Domain, rec: TemplateRecord, now: float) -> str | None:
        """Store (or refresh, or replace) a template; a skip reason when it is refused."""
        ex = self.exporters[exporter]
        old = dom.templates.get(rec.tid)
        if old is not None:
            if old.fields == rec.fields and old.scope == rec.scope and old.options == rec.options:
                old.seen = now
                return None
            self.stats.redefined += 1
            self._drop(ex, dom, rec.tid)
        elif ex.ntemplates >= self.cfg.max_templates_per_exporter:
            self.stats.refused_cap += 1
            return "template_cap"
        elif self.ntemplates >= self.cfg.max_templates:
            self.stats.refused_total_cap += 1
            return "template_cap"
        if self.fields_stored + len(rec.fields) > MAX_TOTAL_FIELDS:
            self.stats.refused_memory += 1
            return "template_cap"
        lk = (dom.version, rec.fields)
        layout = self.layouts.get(lk)
        if layout is None:
            if self.layout_fields + len(rec.fields) > MAX_LAYOUT_FIELDS:
                self.stats.refused_memory += 1
                return "template_cap"
            layout = self.layouts[lk] = Layout(rec.fields, dom.version)
            self.layout_fields += len(rec.fields)
        layout.refs += 1
        dom.templates[rec.tid] = Template(rec, layout, now)
        dom.touched = now
        ex.ntemplates += 1
        self.ntemplates += 1
        self.fields_stored += len(rec.fields)
        self.stats.templates += 1
        self.stats.learned += 1
        return None

    def withdraw(self, exporter: str, dom: Domain, tid: int) -> None:
        """Remove a template (or all data / all options templates of the domain)."""
        ex = self.exporters[exporter]
        if tid in (WITHDRAW_ALL_DATA, WITHDRAW_ALL_OPTIONS):
            opts = tid == WITHDRAW_ALL_OPTIONS
            for t in [t.tid for t in dom.templates.values() if t.options == opts]:
                self._drop(ex, dom, t)
                self.stats.withdrawn += 1
        elif tid in dom.templates:
            self._drop(ex, dom, tid)
            self.stats.withdrawn += 1

    def _drop(self, ex: Exporter, dom: Domain, tid: int) -> None:
        t = dom.templates.pop(tid)
        ex.ntemplates -= 1
        self.ntemplates -= 1
        self.fields_stored -= len(t.fields)
        layout = t.layout
        layout.refs -= 1
        if layout.refs == 0:
            del self.layouts[(layout.version, layout.fields)]
            self.layout_fields -= len(layout.fields)
        self.stats.templates -= 1

    def learn(self, dom: Domain, sampler: int | None, rate: int, init_ms: int | None, now: float) -> None:
        """Remember what an options record says: a sampler's (or the system's) rate, the init time."""
        if rate > 0:
            if sampler is None:
                dom.system_rate = rate
            elif dom.samplers.get(sampler) != rate and (sampler in dom.samplers or len(dom.samplers) < MAX_SAMPLERS):
                # a new dict, never changed in place: data sets of earlier records hold the old one
                # (flowpipe.decode.columns.Chunk), to be read with the rates of their time
                dom.samplers = {**dom.samplers, sampler: rate}
            dom.last_rate = rate
            self.stats.sampling_rates_learned += 1
        if init_ms is not None:
            dom.init_ms = init_ms
        dom.touched = now

    # ---- expiry -------------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Drop templates not refreshed for template_timeout (and empty, stale state); how many."""
        cutoff = now - self.cfg.template_timeout
        n = 0
        for addr in list(self.exporters):
            ex = self.exporters[addr]
            for key in list(ex.domains):
                dom = ex.domains[key]
                for tid in [t.tid for t in dom.templates.values() if t.seen < cutoff]:
                    self._drop(ex, dom, tid)
                    n += 1
                if not dom.templates and dom.touched < cutoff:
                    del ex.domains[key]
            if not ex.domains:
                del self.exporters[addr]
        self.stats.expired += n
        self.stats.exporters = len(self.exporters)
        return n

    def is_live(self, t: Template, now: float) -> bool:
        return now - t.seen <= self.cfg.template_timeout

    # ---- read-only view (the exporter inventory) ------------------------------------------------

    def view(self) -> Iterator[DomainView]:
        """Every domain's templates and sampling state as plain values; changes nothing."""
        for owner, ex in self.exporters.items():
            for (port, version, did), dom in ex.domains.items():
                data = tuple(sorted(t.tid for t in dom.templates.values() if not t.options))
                opts = tuple(sorted(t.tid for t in dom.templates.values() if t.options))
                newest = max((t.seen for t in dom.templates.values()), default=0.0)
                yield DomainView(dom.identity or owner, owner, port, version, did, data, opts, dom.rate, newest)

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> list[list[Any]]:
        """Every domain as [exporter, port, version, domain, templates, samplers, system, last, init,
        touched], plus its in-band identity when it has one."""
        out: list[list[Any]] = []
        for addr, ex in self.exporters.items():
            for (port, version, did), dom in ex.domains.items():
                tpls = [[t.tid, [list(f) for f in t.fields], t.scope, t.options, t.seen]
                        for t in dom.templates.values()]
                entry = [addr, port, version, did, tpls, [[k, v] for k, v in dom.samplers.items()],
                         dom.system_rate, dom.last_rate, dom.init_ms, dom.touched]
                if dom.identity is not None:
                    entry.append(dom.identity)
                out.append(entry)
        return out

    def restore(self, domains: Any) -> int:
        """Load domains saved by :meth:`snapshot` (within the caps); returns templates restored.

        Malformed entries are skipped; raises nothing for any input shape.
        """
        n = 0
        for entry in domains if isinstance(domains, list) else ():
            try:
                n += self._restore_one(entry)
            except (TypeError, ValueError, KeyError, IndexError, OverflowError):
                continue
        return n

    def _restore_one(self, entry: Any) -> int:
        addr, port, version, did, tpls, samplers, system, last, init, touched, *rest = entry
        if not isinstance(addr, str) or version not in (9, 10):
            raise ValueError("bad domain")
        identity = rest[0] if rest else None
        touched = float(touched)
        dom = self.domain_for_update(addr, (int(port), int(version), int(did)), touched)
        if dom is None:
            return 0
        n = 0
        for tid, fields, scope, options, seen in tpls:
            rec = TemplateRecord(int(tid), tuple((int(p), int(e), int(ln)) for p, e, ln in fields),
                                 int(scope), bool(options))
            if check(rec, version) is None and self.add(addr, dom, rec, float(seen)) is None:
                n += 1
        for k, v in samplers:
            self.learn(dom, int(k), int(v), None, touched)
        dom.system_rate, dom.last_rate = int(system), int(last)
        dom.init_ms = None if init is None else int(init)
        dom.touched = touched
        if isinstance(identity, str) and 0 < len(identity) <= 255:
            dom.identity = identity
        return n


# ---- data waiting for its template -----------------------------------------------------------

# What a held datagram is counted at in ``hold_max_bytes``: its sets' bodies plus these, measured
# with tracemalloc (tests/test_templates.py checks that the count covers what it takes).
HELD_ENTRY_COST = 448  # per held datagram: its objects (entry, buffers, times) and index slots
HELD_SET_COST = 32     # per held set: its header (4 bytes) and its share of the walk / index
HELD_TID_COST = 160    # per distinct template id of a held datagram: its slot in the template index
HOLD_MAX_SETS = 256    # sets of one datagram held at most (the decoder skips the others as no_template)

_HH = struct.Struct("!HH")


class Held:
    """Data sets of one datagram that wait for their templates.

    The sets are kept as they came, header and body, one after the other in one bytes object
    (``blob``), and the distinct template ids they wait for in ``tids`` (native u16s): a few
    objects per datagram whatever its sets.

    ``counted`` is True while the datagram as a whole is held (nothing of it decoded yet); once
    part of it decodes it counts as released and what is left waits as uncounted parts.
    """

    __slots__ = ("exporter", "key", "namespace", "secs", "uptime", "blob", "tids", "nsets", "arrived", "counted",
                 "size")

    def __init__(self, exporter: str, key: DomainKey, namespace: str, secs: int, uptime: int,
                 sets: Iterable[tuple[int, bytes]], arrived: float, counted: bool) -> None:
        self.exporter, self.key, self.namespace = exporter, key, namespace
        self.secs, self.uptime = secs, uptime
        self.arrived = arrived
        self.counted = counted
        self.set_blob(b"".join(_HH.pack(tid, 4 + len(body)) + body for tid, body in sets))

    @classmethod
    def of_spans(cls, exporter: str, key: DomainKey, namespace: str, secs: int, uptime: int, data: bytes,
                 spans: list[tuple[int, int, int]], arrived: float, counted: bool) -> Held:
        """Held sets of a datagram given as (set id, body start, body end); the 4-byte set header
        precedes each body in ``data`` and is kept with it."""
        mv = memoryview(data)
        h = cls(exporter, key, namespace, secs, uptime, (), arrived, counted)
        h.set_blob(b"".join([mv[a - 4:b] for _, a, b in spans]))
        return h

    def set_blob(self, blob: bytes) -> None:
        """Hold exactly the sets of ``blob`` (headers and bodies); sets ``tids``, ``nsets``, ``size``."""
        tids: dict[int, None] = {}
        n = off = 0
        end = len(blob)
        while off < end:
            tid, ln = _HH.unpack_from(blob, off)
            tids[tid] = None
            off += ln
            n += 1
        self.blob = blob
        self.tids = array("H", tids).tobytes()
        self.nsets = n
        self.size = HELD_ENTRY_COST + HELD_SET_COST * n + HELD_TID_COST * len(tids) + end - 4 * n

    def spans(self) -> Iterator[tuple[int, int, int]]:
        """(template id, body start, body end) of every set in ``blob``, in arrival order."""
        blob, off, end = self.blob, 0, len(self.blob)
        while off < end:
            tid, ln = _HH.unpack_from(blob, off)
            yield tid, off + 4, off + ln
            off += ln

    def template_ids(self) -> list[int]:
        """The distinct template ids the sets wait for."""
        return array("H", self.tids).tolist()

    @property
    def sets(self) -> list[tuple[int, bytes]]:
        """The sets as (template id, body) pairs (a copy, for inspection)."""
        blob = self.blob
        return [(tid, blob[a:b]) for tid, a, b in self.spans()]


class DomainHold:
    """The held entries of one (exporter, domain): how many, and per template id the ids of the
    entries that wait for it, ascending (oldest first)."""

    __slots__ = ("exporter", "key", "n", "tids")

    def __init__(self, exporter: str, key: DomainKey) -> None:
        self.exporter, self.key = exporter, key
        self.n = 0
        self.tids: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return self.n


def _unlist(index: dict[Any, list[int]], k: Any, hid: int) -> None:
    """Take ``hid`` out of the ascending list ``index[k]`` (and the list out when it empties)."""
    ids = index[k]
    i = bisect_left(ids, hid)
    assert ids[i] == hid
    del ids[i]
    if not ids:
        del index[k]


class HoldQueue:
    """Held data, bounded per exporter (entries) and in total (bytes); the oldest goes first.

    ``bytes`` is the sum of the entries' ``size`` (what they cost, see :class:`Held`).
    """

    def __init__(self, cfg: DecoderConfig) -> None:
        self.cfg = cfg
        self.stats = HoldStats()
        self.entries: dict[int, Held] = {}  # arrival order
        self.by_domain: dict[tuple[str, DomainKey], DomainHold] = {}
        self.by_exporter: dict[str, list[int]] = {}  # entry ids, ascending (arrival order)
        self.bytes = 0
        self.held = 0           # entries with counted=True: datagrams held
        self.dropped = 0        # counted entries dropped by a cap, not yet reported by take_dropped()
        self._next = 0

    @property
    def enabled(self) -> bool:
        c = self.cfg
        return c.hold_timeout > 0 and c.hold_max_per_exporter > 0 and c.hold_max_bytes > 0

    def add(self, h: Held) -> bool:
        """Hold ``h`` (dropping the oldest past the caps); False when it cannot be held at all."""
        if not self.enabled or h.size > self.cfg.hold_max_bytes:
            self.stats.refused += 1
            return False
        mine = self.by_exporter.get(h.exporter)
        while mine and len(mine) >= self.cfg.hold_max_per_exporter:
            self._drop(mine[0])
        while self.entries and self.bytes + h.size > self.cfg.hold_max_bytes:
            self._drop(next(iter(self.entries)))
        hid = self._next
        self._next += 1
        dk = (h.exporter, h.key)
        dh = self.by_domain.get(dk)
        if dh is None:
            dh = self.by_domain[dk] = DomainHold(h.exporter, h.key)
        h.exporter, h.key = dh.exporter, dh.key  # one copy of them per domain
        dh.n += 1
        for tid in h.template_ids():
            waiting = dh.tids.get(tid)
            if waiting is None:
                dh.tids[tid] = [hid]
            else:
                waiting.append(hid)
        self.entries[hid] = h
        self.by_exporter.setdefault(h.exporter, []).append(hid)
        self.bytes += h.size
        if h.counted:
            self.held += 1
        self._gauges()
        return True

    def waiting_for(self, exporter: str, key: DomainKey, tids: Iterable[int]) -> list[tuple[int, Held]]:
        """Entries of one domain that wait for any of ``tids``, oldest first."""
        dh = self.by_domain.get((exporter, key))
        if dh is None:
            return []
        hids: set[int] = set()
        for tid in tids:
            waiting = dh.tids.get(tid)
            if waiting:
                hids.update(waiting)
        entries = self.entries
        return [(hid, entries[hid]) for hid in sorted(hids)]

    def waiting(self) -> Iterator[tuple[str, DomainKey, list[int]]]:
        """Read-only: (exporter, domain, template ids its held data waits for, ascending) of each domain
        with held data."""
        for dh in self.by_domain.values():
            yield dh.exporter, dh.key, sorted(dh.tids)

    def has_waiting(self, exporter: str, key: DomainKey) -> bool:
        return (exporter, key) in self.by_domain

    def remove(self, hid: int) -> Held:
        h = self.entries.pop(hid)
        dk = (h.exporter, h.key)
        dh = self.by_domain[dk]
        for tid in h.template_ids():
            _unlist(dh.tids, tid, hid)
        dh.n -= 1
        if not dh.n:
            del self.by_domain[dk]
        _unlist(self.by_exporter, h.exporter, hid)
        self.bytes -= h.size
        if h.counted:
            self.held -= 1
        self._gauges()
        return h

    def shrink(self, hid: int, blob: bytes) -> None:
        """Entry ``hid`` now waits only for the sets of ``blob`` (a non-empty part of its sets);
        once partly decoded, it counts as released."""
        h = self.entries[hid]
        if h.counted:
            h.counted = False
            self.held -= 1
            self.stats.released += 1
        before = h.template_ids()
        old = h.size
        h.set_blob(blob)
        gone = set(before).difference(h.template_ids())
        if gone:
            tids = self.by_domain[(h.exporter, h.key)].tids
            for tid in gone:
                _unlist(tids, tid, hid)
        self.bytes += h.size - old
        self._gauges()

    def _drop(self, hid: int) -> None:
        h = self.remove(hid)
        if h.counted:
            self.dropped += 1
            self.stats.dropped_full += 1
        else:
            self.stats.parts_dropped += h.nsets

    def expire(self, now: float) -> int:
        """Drop entries older than hold_timeout; returns how many of them were whole datagrams.

        Entries are looked at oldest first up to the first one still in time (after the clock
        went back, a later entry may wait for the ones before it).
        """
        cutoff = now - self.cfg.hold_timeout
        old = []
        for hid, h in self.entries.items():
            if h.arrived >= cutoff:
                break
            old.append(hid)
        n = 0
        for hid in old:
            h = self.remove(hid)
            if h.counted:
                n += 1
            else:
                self.stats.parts_dropped += h.nsets
        self.stats.expired += n
        return n

    def take_dropped(self) -> int:
        n, self.dropped = self.dropped, 0
        return n

    def _gauges(self) -> None:
        self.stats.held = self.held
        self.stats.bytes = self.bytes
