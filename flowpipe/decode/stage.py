"""The decoder stage: datagram batches in, flow batches out, every outcome counted.

One task per listener (its decoder holds that listener's template state). A malformed datagram
is counted in ``flowpipe_datagrams_invalid_total{reason}`` and logged (rate-limited); no
exception from one datagram stops the stage or touches another exporter's state.
"""
from __future__ import annotations

import logging
import operator
import time
from collections import Counter as Tally
from typing import Any

import trio

from flowpipe.decode.base import DecodeError, Source
from flowpipe.decode.columns import Chunk
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.exporters import Allowlist, SamplingPolicy, with_tags
from flowpipe.decode.facts import SamplingSeen
from flowpipe.decode.policy import Policy
from flowpipe.decode.rows import Rows
from flowpipe.decode.stats import HoldStats
from flowpipe.flow import SAMPLING_RATE
from flowpipe.listen_config import ListenerConfig
from flowpipe.logs import RateLimited
from flowpipe.metrics import Metrics
from flowpipe.pipeline import Datagram, FlowBatch, FlowQueue, SequenceNote
from flowpipe.telemetry.sflow_counters import InterfaceCounterMetrics

_rate = operator.itemgetter(SAMPLING_RATE)
MERGE_DATAGRAMS = 1024  # queued listener batches are decoded together up to this many datagrams (listen.BATCH)

# Distinct exporter label values one stage gives a per-exporter metric; the rest go under "other".
MAX_EXPORTER_LABELS = 10_000


class DecoderStage:
    """Decodes one listener's datagrams."""

    def __init__(self, cfg: ListenerConfig, metrics: Metrics, *, decoder: DatagramDecoder, queue: FlowQueue,
                 sampling: SamplingPolicy | None = None, rates_seen: SamplingSeen | None = None) -> None:
        """``cfg``: the listener (flow type label, namespace, ``allowed_exporters``, ``tags``); ``decoder``:
        its datagram decoder (template state); ``queue``: toward the accumulator; ``sampling``: the
        [[sampling]] rules; ``rates_seen``: where the last sampling rate each exporter announced is noted
        (the inventory)."""
        flow_type = cfg.flow_type
        self.flow_type, self.namespace = flow_type, cfg.namespace
        self.rates_seen = rates_seen
        self.decoder, self.metrics, self.queue = decoder, metrics, queue
        allow = Allowlist(cfg.allowed_exporters)
        self.allow = allow if allow.nets else None
        self.sampling = sampling if sampling is not None and sampling.active else None
        self.tags = cfg.tags or None
        self._label_exporters: set[str] = set()  # exporter label values in use (bounded)
        self._policies: dict[tuple[int, int], Policy] = {}  # (default, override) -> policy (rules are few)
        self._log = RateLimited(metrics.log_suppressed)
        self._held = 0
        self._decoded = metrics.datagrams_decoded.labels(flow_type)
        self._flows = metrics.flows_decoded.labels(flow_type)
        self._counters: InterfaceCounterMetrics | None = None
        if flow_type == "sflow5":
            self._counters = InterfaceCounterMetrics(metrics.registry)

    def decode_batch(self, batch: list[Datagram]) -> FlowBatch:
        """Decode a batch of datagrams; never raises for bad input.

        Its records leave as one list of record sources in arrival order: data sets and sFlow
        samples left undecoded (chunks, each with its exporter's [[sampling]] rules, the listener's
        tags and counter scaling: :mod:`flowpipe.decode.policy`), and, as
        :class:`flowpipe.decode.rows.Rows`, the flow tuples of what was decoded one by one."""
        chunks: list[Any] = []
        records = 0
        notes: list[SequenceNote] = []
        invalid: Tally[str] = Tally()
        skipped: Tally[str] = Tally()
        decoded = held = released = refused = 0
        ns, decode, allow, sampling, tags = self.namespace, self.decoder.decode, self.allow, self.sampling, self.tags
        plain = self.decoder.plain_batch()
        unknown_rate: Tally[str] = Tally()
        sources: dict[tuple[str, int], Source] = {}  # a batch is mostly a few exporters, all with one time
        last_of: dict[tuple[str, str], Any] = {}  # (exporter, flow type) -> its last flow or data set
        for data, host, port, t in batch:
            if allow is not None and not allow.allowed(host):
                refused += 1
                continue
            src = sources.get((host, port))
            if src is None or src.received != t:
                src = sources[(host, port)] = Source(host, port, ns, t)
            try:
                # The common case first: data sets / flow samples only, all for the columnar path (no
                # Decoded to make).
                quick = plain(data, src) if plain is not None else None
                if quick is None:
                    d = decode(data, src)
            except DecodeError as e:
                invalid[e.reason] += 1
                self._log(logging.WARNING, "invalid_datagram", listener_type=self.flow_type, exporter=host,
                          reason=e.reason, detail=str(e))
                continue
            except Exception as e:  # a decoder bug must not take the stage down
                invalid["internal_error"] += 1
                self._log(logging.ERROR, "decoder_bug", exc_info=True, exporter=host, error=repr(e))
                continue
            if quick is not None:
                pchunks, exporter, ftype, obs, n = quick
                decoded += 1
                if pchunks:  # (none: no flows, or they joined a chunk given before, see plain_batch)
                    last_of[exporter, ftype] = pchunks[-1]
                    chunks += pchunks
                records += n
                notes.append((ns, exporter, ftype, obs, n))
                continue
            if d.held:
                held += 1
            else:
                decoded += 1
            released += d.released
            got = d.chunks
            if d.flows:  # (a datagram has flows or chunks, not both)
                flows = d.flows
                last_of[d.exporter, d.flow_type] = flows[-1]  # (its rate as announced, before the rules)
                if sampling is not None:
                    flows, unknown = sampling.apply(flows, d.exporter)
                else:
                    unknown = sum(map(operator.not_, map(_rate, flows)))
                if tags is not None:
                    flows = with_tags(flows, tags)
                got = [Rows(flows, d.exporter, ns, unknown)]
            elif got:
                last_of[d.exporter, d.flow_type] = got[-1]
            n = 0
            for c in got:
                n += c.count
            chunks += got
            records += n
            if d.skipped:
                skipped.update(d.skipped)
            if d.sequence is not None:
                notes.append((ns, d.exporter, d.flow_type, d.sequence, n))
            if d.counters and self._counters is not None:
                self._counters.update(d.exporter, d.counters)
        # Once the batch's chunks are whole: each exporter's rules, tags and scaling on its chunks (the
        # tuple lane's flows had them already), and the records whose rate is unknown still.
        police = sampling is not None or tags is not None
        known: dict[str, Policy | None] = {}
        for c in chunks:
            if police and not c.tuples:
                self._police(c, known)
            if c.unrated:
                unknown_rate[c.exporter] += c.unrated
        if self.rates_seen is not None:  # once per exporter and batch: its last datagram with flows
            for (exporter, flow_type), d in last_of.items():
                rate = _announced_rate(d)
                if rate:
                    self.rates_seen.note((ns, exporter, flow_type), rate)
        m = self.metrics
        if refused:
            m.datagrams_dropped.labels("not_allowed").inc(refused)
            self._log(logging.WARNING, "exporter_not_allowed", listener_type=self.flow_type, datagrams=refused)
        for exporter, n in unknown_rate.items():
            if exporter not in self._label_exporters:
                if len(self._label_exporters) >= MAX_EXPORTER_LABELS:
                    m.limits_hit.labels("exporter_labels").inc()
                    exporter = "other"
                else:
                    self._label_exporters.add(exporter)
            m.flows_unknown_sampling.labels(exporter).inc(n)
        if decoded or released:
            self._decoded.inc(decoded + released)
        for reason, n in invalid.items():
            m.datagrams_invalid.labels(self.flow_type, reason).inc(n)
        for reason, n in skipped.items():
            m.parts_skipped.labels(self.flow_type, reason).inc(n)
        if records:
            self._flows.inc(records)
        if held or released:
            self._set_held()
        return FlowBatch(chunks, notes, records)

    def _police(self, chunk: Any, known: dict[str, Policy | None]) -> None:
        """Give a chunk the listener's [[sampling]] rules for its exporter, its tags and scaling
        (nothing when they change nothing; equal ones are one object, chunks are grouped by it); with
        a rate from the rules, no record is of unknown rate any more. ``known``: the policies found
        so far in this batch, by exporter."""
        exporter = chunk.exporter
        pol = known.get(exporter, _UNSET)
        if pol is _UNSET:
            default, override = self.sampling.rule_for(exporter) if self.sampling is not None else (0, 0)
            scale = self.sampling is not None and self.sampling.scale
            pol = None
            if default or override or self.tags or scale:
                pol = self._policies.get((default, override))
                if pol is None:
                    pol = self._policies[default, override] = Policy(default, override, self.tags, scale)
            known[exporter] = pol
        if pol is not None:
            chunk.policy = pol
            if pol.default or pol.override:
                chunk.unrated = 0

    def _set_held(self) -> None:
        now = self.decoder.held
        self.metrics.datagrams_held.inc(now - self._held)
        self._held = now

    def expire(self, now: float) -> None:
        hold = self.decoder.templates.hold.stats if self.decoder.templates is not None else HoldStats()
        full_before = hold.dropped_full
        dropped = self.decoder.expire(now)
        if dropped:
            full = min(dropped, hold.dropped_full - full_before)
            if full:
                self.metrics.datagrams_dropped.labels("hold_full").inc(full)
            if dropped - full:
                self.metrics.datagrams_dropped.labels("template_never_came").inc(dropped - full)
            self._log(logging.WARNING, "held_data_dropped", listener_type=self.flow_type, datagrams=dropped,
                      hold_full=full)
        self._set_held()

    async def run(self, receive: trio.MemoryReceiveChannel[list[Datagram]],
                  send: trio.MemorySendChannel[FlowBatch]) -> None:
        """Decode until ``receive`` closes, then close ``send``."""
        async with receive, send, trio.open_nursery() as nursery:
            nursery.start_soon(self._expire_loop)
            carry: list[Datagram] | None = None
            while True:
                if carry is not None:
                    batch, carry = carry, None
                else:
                    try:
                        batch = await receive.receive()
                    except trio.EndOfChannel:
                        break
                # What else is queued is decoded with it (one batch, one hop onwards), never past
                # MERGE_DATAGRAMS, the most one listener batch holds.
                while len(batch) < MERGE_DATAGRAMS:
                    try:
                        more = receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    if len(batch) + len(more) > MERGE_DATAGRAMS:
                        carry = more
                        break
                    batch = batch + more
                out = self.decode_batch(batch)
                if out.chunks or out.sequences:
                    await self.queue.put(send, out)
            nursery.cancel_scope.cancel()

    async def _expire_loop(self) -> None:
        while True:
            await trio.sleep(1.0)
            self.expire(time.time())


_UNSET: Any = object()


def _announced_rate(last: tuple | Chunk) -> int:
    """The sampling rate a datagram's last flow tuple (or data set) carries, as announced; 0 if none."""
    if isinstance(last, tuple):
        return int(last[SAMPLING_RATE])
    return last.last_rate()

