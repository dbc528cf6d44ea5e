"""Sequence tracking per exporter: progress, gaps (estimated loss) and resets.

Tracked at decode time, in arrival order, per (namespace, exporter, flow type, domain) where the
domain is the v5 engine, v9 source id, IPFIX observation domain or sFlow sub-agent — so an
exporter with several domains does not produce garbage, and staggered flushes cannot fake a
reset (both are known weaknesses of tracking at flush time). Units are the protocol's own:
v5 flows, v9 export packets, IPFIX data records, sFlow datagrams. Sequence numbers wrap at 2^32.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flowpipe.pipeline import ExporterSeen, SequenceObs

DomainKey = tuple[str, str, str, Any]  # (namespace, exporter, flow type, domain): one tracked stream

WRAP = 1 << 32
# A jump back by more than this is an exporter restart, not reordering (Datadog's thresholds).
RESET_BACK = {"netflow5": 1000, "sflow5": 1000, "netflow9": 100, "ipfix": 100}
# A jump forward by more than this is a restart with a new starting point, not loss.
RESET_FORWARD = 1 << 24


class _State:
    __slots__ = ("expected", "late_next", "units_per_flow", "delta", "last", "last_seq", "pending", "datagrams",
                 "flows", "resets", "first_seen", "last_seen")

    def __init__(self, expected: int, delta: Any, last: Any) -> None:
        self.expected = expected
        self.delta = delta  # its flowpipe_sequence_delta_total child
        self.last = last    # its flowpipe_sequence_last child
        self.last_seq = -1  # the sequence number of the latest datagram, to set on it
        self.datagrams = self.flows = self.resets = 0  # for the exporter inventory (flowpipe/inventory.py)
        self.first_seen = self.last_seen = 0.0
        self.pending = 0    # units not added to it yet (see SequenceTracker.observe_all)
        self.late_next = -1  # where a stream continuing from the last late datagram would be next
        self.units_per_flow = 1.0  # for v9/sFlow: flows carried per counted unit (running mean)


class SequenceTracker:
    """Feeds ``flowpipe_sequence_delta_total``, ``_reset_total`` and ``flows_lost_estimate_total``."""

    def __init__(self, metrics: Any, max_keys: int = 100_000) -> None:
        self.metrics = metrics
        self.max_keys = max_keys
        self.states: dict[DomainKey, _State] = {}
        self.refused = 0

    def domains(self) -> dict[DomainKey, _State]:
        """A copy of the state of every exporter domain tracked, by (namespace, exporter, flow type,
        domain), for the exporter inventory (:mod:`flowpipe.inventory`); read its states, do not change them."""
        return dict(self.states)

    def seen(self) -> list[ExporterSeen]:
        """(namespace, exporter, flow type, last seen) of every exporter domain tracked (an exporter
        with several domains appears once for each): what exporter metadata reports."""
        return [(ns, exporter, flow_type, st.last_seen) for (ns, exporter, flow_type, _), st in
                list(self.states.items())]

    def observe_all(self, notes: Iterable[tuple[str, str, str, SequenceObs, int]]) -> None:
        """:meth:`observe` each (namespace, exporter, flow type, observation, flows); the delta
        counter is added to once per exporter domain."""
        changed: dict[int, _State] = {}
        observe, advance, states = self._observe, self._advance, self.states
        now = time.time()
        for ns, exporter, flow_type, obs, flows in notes:
            st = states.get((ns, exporter, flow_type, obs[0]))
            seq = obs[1] % WRAP
            if st is not None and seq == st.expected:  # in order, the common case: what _observe does then
                st.last_seq, st.late_next = seq, -1
                advance(st, seq, obs[2], obs[2], flow_type, flows)
            else:
                st = observe(ns, exporter, flow_type, obs, flows)
            if st is not None:
                changed[id(st)] = st
                st.datagrams += 1
                st.flows += flows
                st.last_seen = now
                if not st.first_seen:
                    st.first_seen = now
        for st in changed.values():
            if st.pending:
                st.delta.inc(st.pending)
                st.pending = 0
            st.last.set(st.last_seq)

    def observe(self, namespace: str, exporter: str, flow_type: str, obs: SequenceObs, flows: int) -> None:
        """One datagram's sequence number and units, in arrival order."""
        self.observe_all(((namespace, exporter, flow_type, obs, flows),))

    def _observe(self, namespace: str, exporter: str, flow_type: str, obs: SequenceObs,
                 flows: int) -> _State | None:
        key = (namespace, exporter, flow_type, obs.domain)
        seq, units = obs.sequence % WRAP, obs.units
        st = self.states.get(key)
        if st is None:
            if len(self.states) >= self.max_keys:
                self.refused += 1
                self.metrics.limits_hit.labels("sequence_trackers").inc()
                return None
            labels = (namespace, exporter, flow_type)
            st = _State((seq + units) % WRAP, self.metrics.sequence_delta.labels(*labels),
                        self.metrics.sequence_last.labels(*labels))
            self.states[key] = st
            if flows and units:
                st.units_per_flow = flows / units
            st.last_seq = seq
            return st  # the first sighting sets the baseline; no delta is counted
        gap = (seq - st.expected) % WRAP
        if gap >= WRAP // 2:
            gap -= WRAP  # behind what we expected
        m = self.metrics
        labels = (namespace, exporter, flow_type)
        st.last_seq = seq  # every datagram's, late ones included (what the Agent's sequence.last shows)
        restarted_small = gap < 0 and seq == st.late_next  # a second datagram continuing a "late" one
        st.late_next = -1
        if gap == 0:
            delta = units
        elif 0 < gap <= RESET_FORWARD:
            delta = gap + units
            lost = gap if flow_type in ("netflow5", "ipfix") else round(gap * st.units_per_flow)
            m.flows_lost_estimate.labels(*labels).inc(lost)
        elif gap < 0 and -gap <= RESET_BACK.get(flow_type, 0) and not restarted_small:
            # Late or duplicate datagram (already counted as lost when it was skipped) — unless the
            # next one continues from it, which means the exporter restarted recently.
            st.late_next = (seq + units) % WRAP
            return st
        else:
            m.sequence_reset.labels(*labels).inc()
            st.resets += 1
            delta = units
        self._advance(st, seq, units, delta, flow_type, flows)
        return st

    @staticmethod
    def _advance(st: _State, seq: int, units: int, delta: int, flow_type: str, flows: int) -> None:
        """A datagram taken as the stream's next: expected after it, ``delta`` units to count."""
        st.expected = (seq + units) % WRAP
        if flow_type in ("netflow9", "sflow5") and units:  # flows carried per unit: a running mean
            st.units_per_flow += (flows / units - st.units_per_flow) * 0.1
        st.pending += delta
