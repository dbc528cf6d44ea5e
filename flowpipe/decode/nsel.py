"""Cisco ASA NSEL (NetFlow Secure Event Logging): firewall events turned into flows counted once.

An NSEL template is one with a firewall event: NF_F_FW_EVENT (233) or the ASA 8.4 NF_F_FW_EVENT_84
(40005): 0 ignore, 1 flow created, 2 flow deleted (teardown), 3 flow denied, 4 flow alert,
5 flow update. A record describes one connection in both directions: initiatorOctets (231,
NF_F_FWD_FLOW_DELTA_BYTES) from the initiator (the record's source) and responderOctets (232,
NF_F_REV_FLOW_DELTA_BYTES) back; newer ASAs add initiatorPackets / responderPackets (298/299),
older ones have no packet counter (or bytes in IE 85). The connection is NF_F_CONN_ID (148).

How the ASA counts (Cisco ASA NetFlow Implementation Guide, "Flow Update Events"; nfdump issue
#116, ntopng issue #1359): a flow-update event carries the bytes *since the previous update*
(a delta), and a teardown carries the connection's *totals*; an update "at teardown" with the last
interval's bytes goes with the teardown, and a connection shorter than the update timer gets no
update at all. Summing every event therefore counts a long connection twice. flowpipe counts:

- update: its deltas, remembered per connection;
- teardown: the totals minus what the connection's updates already counted (all of it when none
  were seen); an update arriving after its connection's teardown counts nothing;
- create: nothing (it carries no counters: no 0-byte flow); a create that does carry counters is
  counted like any record;
- deny, alert, ignore: one flow each, with whatever counters the record has (usually none: a
  denied connection is a 0-byte flow, shown rather than hidden);
- an update or teardown left with nothing to count makes no flow.

bytes = initiator + responder and packets likewise, in one flow from the initiator to the
responder: NSEL exports one record per connection and the Datadog schema has no reverse counters;
one flow keeps the connection one context and its total right. With ``listeners.reverse_flows``
the responder's share becomes its own flow, endpoints swapped (see :mod:`flowpipe.decode.reverse`).

Every flow keeps the event as the additional field ``fw_event`` ("create", "teardown", "deny",
"alert", "update", "ignore", else the number) and, when the template has it, ``fw_ext_event``
(33002, the extended event code). Connection state is kept per export stream
(:attr:`flowpipe.decode.templates.Domain.conns`), only for connections that had an update,
bounded per stream and in all (LRU eviction, counted) and dropped when idle; a connection whose
state was dropped and then torn down counts its totals again (``nsel_connections_dropped``
counts how often that can have happened).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from flowpipe.decode.derived import Derived, in_pairs, saturated_sum
from flowpipe.decode.elements import Field
from flowpipe.decode.reverse import FieldReader, first
from flowpipe.decode.stats import NselStats
from flowpipe.flow import BYTES, EXTRAS, PACKETS, swapped

FW_EVENT, FW_EVENT_84, FW_EXT_EVENT, CONN_ID = 233, 40005, 33002, 148
INITIATOR_OCTETS, RESPONDER_OCTETS, INITIATOR_PACKETS, RESPONDER_PACKETS = 231, 232, 298, 299
IGNORE, CREATE, TEARDOWN, DENY, ALERT, UPDATE = 0, 1, 2, 3, 4, 5
EVENT_NAMES = {IGNORE: "ignore", CREATE: "create", TEARDOWN: "teardown", DENY: "deny", ALERT: "alert",
               UPDATE: "update"}
IDLE_SECONDS = 3600.0   # an open connection with no event for this long is forgotten
CLOSED_SECONDS = 300.0  # a torn-down connection is remembered this long (a late update counts nothing)
U64_MAX = (1 << 64) - 1


class ConnTable:
    """Connections of one export stream that had an update: counted so far, in LRU order.

    ``open``: connection id -> [initiator bytes, responder bytes, initiator packets, responder
    packets, last event time]; ``closed``: torn-down connection id -> teardown time.
    """

    __slots__ = ("open", "closed")

    def __init__(self) -> None:
        self.open: OrderedDict[int, list[Any]] = OrderedDict()
        self.closed: OrderedDict[int, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self.open) + len(self.closed)


def event_name(ev: int) -> str:
    """The ``fw_event`` additional field of an event."""
    return EVENT_NAMES.get(ev, str(ev))


class NselFields:
    """Where a template's records keep the event, connection and directional counters."""

    __slots__ = ("reader", "has_ext", "extras", "mirror")

    def __init__(self, fields: Sequence[Field]) -> None:
        def at(eid: int) -> int | None:
            return first(fields, ((0, eid),))

        want = (first(fields, ((0, FW_EVENT), (0, FW_EVENT_84))), at(CONN_ID), at(FW_EXT_EVENT),
                at(INITIATOR_OCTETS), at(RESPONDER_OCTETS), at(INITIATOR_PACKETS), at(RESPONDER_PACKETS))
        self.has_ext = want[2] is not None
        self.reader = FieldReader(fields, want)
        # the additional fields each flow gets, as a template's plan reads them (name, field, how, converter)
        self.extras: list[tuple[str, int, str, Any]] = [("fw_event", want[0], "int", event_name)]  # type: ignore[list-item]
        if want[2] is not None:
            self.extras.append(("fw_ext_event", want[2], "int", None))
        self.mirror: list[tuple[str, str]] | None = []  # fields a flow seen the other way exchanges in its plan


def of(fields: Sequence[Field]) -> NselFields | None:
    """The NSEL fields of a data template with a firewall event, else None."""
    return NselFields(fields) if first(fields, ((0, FW_EVENT), (0, FW_EVENT_84))) is not None else None


class Nsel:
    """Counts NSEL records once per connection (see the module doc), for one decoder.

    ``stats`` (:class:`~flowpipe.decode.stats.NselStats`): records by outcome, connections tracked
    now, connections forgotten and why.
    """

    def __init__(self, per_stream: int, total: int) -> None:
        self.per_stream, self.total_max = per_stream, total
        self.stats = NselStats()
        self.total = 0

    def flows(self, table: ConnTable, f: NselFields, rows: list[tuple], body: bytes, now: float,
              split: bool) -> list[tuple]:
        """The flows of a data set's records (``rows``: the set ``body`` decoded as plain records);
        ``split``: the responder's counters as a flow of their own."""
        out: list[tuple] = []
        st = self.stats
        for row, (ev, conn, ext, ib, rb, ip, rp) in zip(rows, f.reader.read(body), strict=False):
            if ib is None and rb is None:
                ib, rb = row[BYTES], 0   # no directional counters: what the record counts (IE 1/85/23)
            if ip is None and rp is None:
                ip, rp = row[PACKETS], 0
            counts = [ib or 0, rb or 0, ip or 0, rp or 0]
            ev = IGNORE if ev is None else ev
            if ev == CREATE and not any(counts):
                st.create += 1
                continue
            if conn is not None and ev in (UPDATE, TEARDOWN):
                counts = self._once(table, conn, ev, counts, now)
                if not any(counts):
                    st.counted_before += 1
                    continue
            st.flow += 1
            extras = dict(row[EXTRAS]) if row[EXTRAS] else {}
            extras.setdefault("fw_event", event_name(ev))
            if f.has_ext and ext is not None:
                extras.setdefault("fw_ext_event", ext)
            ib, rb, ip, rp = counts
            head = row[:BYTES]
            mid = row[PACKETS + 1:EXTRAS]
            if split:
                if ib or ip or not (rb or rp):
                    out.append(head + (ib, ip) + mid + (extras,))
                if rb or rp:
                    out.append(swapped(row, rb, rp)[:EXTRAS] + (extras,))
            else:  # (two 8-byte counters may add up past 64 bits: held at the largest)
                out.append(head + (min(ib + rb, U64_MAX), min(ip + rp, U64_MAX)) + mid + (extras,))
        st.connections = self.total
        return out

    def derive(self, table: ConnTable, f: NselFields, body: bytes, count: int, base: tuple[Any, Any, Any],
               now: float, split: bool) -> Derived:
        """What :meth:`flows` makes of the first ``count`` records of ``body``, as columns (``base``:
        their bytes, packets and TCP flags, :func:`flowpipe.decode.derived.counters`): the same
        outcomes counted, the same connection state kept (record by record only for the updates and
        teardowns of a stream that tracks connections or has updates in this set)."""
        ev, conn, ext, ib, rb, ip, rp = f.reader.arrays(body, count)
        zero = np.zeros(count, dtype=np.uint64)
        if ib is None and rb is None:  # no directional counters: what the record counts (IE 1/85/23)
            ib, rb = base[0], zero
        if ip is None and rp is None:
            ip, rp = base[1], zero
        ib, rb, ip, rp = (zero if a is None else a for a in (ib, rb, ip, rp))
        ev = zero if ev is None else ev
        st = self.stats
        counted = (ib | rb | ip | rp) != 0
        create = (ev == CREATE) & ~counted
        st.create += int(np.count_nonzero(create))
        keep = ~create
        if conn is not None:
            tracked = (ev == UPDATE) | (ev == TEARDOWN)
            at = np.flatnonzero(tracked)
            if len(at) and (len(table) or (ev[at] == UPDATE).any()):
                ib, rb, ip, rp = ib.copy(), rb.copy(), ip.copy(), rp.copy()
                for k, e, c, *counts in zip(at.tolist(), ev[at].tolist(), conn[at].tolist(), ib[at].tolist(),
                                            rb[at].tolist(), ip[at].tolist(), rp[at].tolist(), strict=True):
                    ib[k], rb[k], ip[k], rp[k] = self._once(table, c, e, counts, now)
                counted = (ib | rb | ip | rp) != 0
            spent = tracked & ~counted
            st.counted_before += int(np.count_nonzero(spent))
            keep &= ~spent
        kept = np.flatnonzero(keep)
        st.flow += len(kept)
        st.connections = self.total
        ib, rb, ip, rp = ib[kept], rb[kept], ip[kept], rp[kept]
        if split:
            back = (rb | rp) != 0
            mine, swap = in_pairs(np.arange(len(kept)), ((ib | ip) != 0) | ~back, back)
            take = kept[mine]
            nbytes, npackets = np.where(swap, rb[mine], ib[mine]), np.where(swap, rp[mine], ip[mine])
            flags = np.where(swap, np.uint64(0), base[2][take])
        else:  # (two 8-byte counters may add up past 64 bits: held at the largest)
            take, swap = kept, np.zeros(len(kept), dtype=bool)
            nbytes, npackets, flags = saturated_sum(ib, rb), saturated_sum(ip, rp), base[2][kept]
        made: dict[tuple[int, int | None], dict[str, Any]] = {}

        def adds(k: int) -> dict[str, Any]:  # (for flow tuples only: the plan reads them from the records)
            key = (int(ev[k]), None if ext is None else int(ext[k]))
            got = made.get(key)
            if got is None:
                got = made[key] = {"fw_event": event_name(key[0])}
                if key[1] is not None:
                    got["fw_ext_event"] = key[1]
            return got

        return Derived(take, swap, nbytes, npackets, flags, adds)

    def _once(self, t: ConnTable, conn: int, ev: int, counts: list[int], now: float) -> list[int]:
        """What of an update's or teardown's counters was not counted before; remembers the rest."""
        if conn in t.closed:
            return [0, 0, 0, 0]  # a late update of a torn-down connection: inside its totals
        seen = t.open.get(conn)
        if ev == UPDATE:
            if seen is None:
                if not any(counts):
                    return counts  # nothing to remember (a quiet interval)
                if not self._room(t):
                    self.stats.untracked += 1
                    return counts
                t.open[conn] = [*counts, now]
                self.total += 1
            else:
                for i in range(4):
                    seen[i] += counts[i]
                seen[4] = now
                t.open.move_to_end(conn)
            return counts
        if seen is None:
            return counts  # no update seen: a short connection, its totals are all new
        del t.open[conn]
        t.closed[conn] = now
        return [max(0, c - s) for c, s in zip(counts, seen[:4], strict=True)]

    def _room(self, t: ConnTable) -> bool:
        """Make room for one more connection in ``t``: within the caps, evicting ``t``'s own oldest
        (never another stream's); False when ``t`` has nothing to give up."""
        while len(t) >= self.per_stream or self.total >= self.total_max:
            if t.closed:
                t.closed.popitem(last=False)
            elif t.open:
                t.open.popitem(last=False)
                self.stats.evicted += 1
            else:
                return False
            self.total -= 1
        return True

    def expire(self, tables: Iterable[ConnTable], now: float) -> None:
        """Forget idle open connections and old torn-down ones; recount the total over ``tables``
        (the streams that still exist)."""
        total = 0
        for t in tables:
            while t.closed:
                conn, at = next(iter(t.closed.items()))
                if at > now - CLOSED_SECONDS:
                    break
                del t.closed[conn]
            while t.open:
                conn, seen = next(iter(t.open.items()))
                if seen[4] > now - IDLE_SECONDS:
                    break
                del t.open[conn]
                self.stats.expired += 1
            total += len(t)
        self.total = total
        self.stats.connections = total
