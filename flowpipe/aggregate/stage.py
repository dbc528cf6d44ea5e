"""The accumulator stage: takes flow batches, emits due contexts every tick, drains at the end."""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import trio

from flowpipe import runtime
from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.config import AggregatorConfig
from flowpipe.aggregate.flushfilter import FlushFilter
from flowpipe.aggregate.sequence import DomainKey, SequenceTracker
from flowpipe.flow import FlowColumns, FlushBatch
from flowpipe.logs import RateLimited
from flowpipe.metrics import Metrics
from flowpipe.pipeline import ExporterSeen, FlowBatch, FlowQueue

DRAIN_FLOWS = 20_000  # flows taken at most before yielding to the other tasks
FLUSH_PART = 4096     # contexts a flush looks at before yielding (~6 ms when all are due)


class AccumulatorStage:
    def __init__(self, cfg: AggregatorConfig, metrics: Metrics, *, queue: FlowQueue, max_sequence_keys: int) -> None:
        """``queue``: the one the decoders feed (told what is taken); ``max_sequence_keys``: exporter
        domains whose sequence state is kept."""
        self.cfg = cfg
        self.metrics = metrics
        self.queue = queue
        self.acc = Accumulator(cfg)
        self.sequences = SequenceTracker(metrics, max_sequence_keys)
        self.post = FlushFilter.of(cfg, metrics)  # de-duplication and top-N cap of each flush (None: off)
        self._log = RateLimited(metrics.log_suppressed)
        self._dropped_full = metrics.flows_dropped.labels("aggregator", "max_contexts")
        self._dropped_undecodable = metrics.flows_dropped.labels("aggregator", "decoder_error")
        self._reported_full = 0
        self._reported_undecodable = 0
        self._reported_rollup = 0

    def exporter_domains(self) -> dict[DomainKey, Any]:
        """The sequence state of each exporter domain seen (:meth:`SequenceTracker.domains`), for the
        exporter inventory."""
        return self.sequences.domains()

    def exporters_seen(self) -> list[ExporterSeen]:
        """(namespace, exporter, flow type, last seen) of each exporter domain seen, for exporter metadata."""
        return self.sequences.seen()

    def take(self, batch: FlowBatch, now: float) -> None:
        """Aggregate one batch (its records and sequence notes)."""
        if batch.sequences:
            self.sequences.observe_all(batch.sequences)
        if batch.chunks:
            self.acc.add(batch.chunks, now)
        size = batch.size
        self.metrics.aggregator_flows_received.inc(size)
        full = self.acc.dropped_full - self._reported_full
        if full:
            self._dropped_full.inc(full)
            self._reported_full = self.acc.dropped_full
            self._log(logging.WARNING, "max_contexts_reached", max_contexts=self.cfg.max_contexts, dropped=full)
        if self.acc.decode_errors:
            self._report_undecodable()
        if self.acc.skipped:
            for (flow_type, reason), n in self.acc.skipped.items():
                self.metrics.parts_skipped.labels(flow_type, reason).inc(n)
            self.acc.skipped.clear()
        self.queue.taken(size)

    def _report_undecodable(self) -> None:
        """Records of data sets whose record decoder raised in here (a decoder bug): counted, logged."""
        acc = self.acc
        lost = acc.dropped_undecodable - self._reported_undecodable
        self._dropped_undecodable.inc(lost)
        self._reported_undecodable = acc.dropped_undecodable
        for chunk, error in acc.decode_errors:
            self._log(logging.ERROR, "decoder_bug", exc_info=error, exporter=chunk.exporter, error=repr(error),
                      records=chunk.count, dropped=lost)
        acc.decode_errors.clear()

    def tick(self, now: float) -> FlowColumns:
        with self.metrics.flush_duration.time():
            out = self.acc.flush(now)
        self._gauges()
        return out

    async def tick_in_parts(self, now: float) -> FlowColumns:
        """:meth:`tick`, letting the other tasks run every FLUSH_PART contexts (see :meth:`flush_parts`)."""
        return FlowColumns.join([part async for part in self.flush_parts(now)])

    async def flush_parts(self, now: float) -> AsyncIterator[FlowColumns]:
        """The flows of a tick, FLUSH_PART contexts at a time, the other tasks running in between: a
        flush of many contexts would otherwise hold up the listeners long enough for the kernel to
        drop, and hold every emitted flow in memory at once."""
        busy = 0.0  # the flush's own time, not the other tasks'
        parts = self.acc.flush_parts(now, FLUSH_PART)
        while True:
            t = time.perf_counter()
            part = next(parts, None)
            busy += time.perf_counter() - t
            if part is None:
                break
            if part:
                yield part
            await trio.lowlevel.checkpoint()
        self.metrics.flush_duration.observe(busy)
        self._gauges()

    def _gauges(self) -> None:
        m = self.metrics
        m.aggregator_contexts.set(len(self.acc.contexts))
        r = self.acc.rollup
        m.rollup_entries.labels("current").set(r.entries(0) if r else 0)
        m.rollup_entries.labels("new").set(r.entries(1) if r else 0)
        if r is not None and r.refused > self._reported_rollup:
            m.limits_hit.labels("rollup_entries").inc(r.refused - self._reported_rollup)
            self._reported_rollup = r.refused

    async def run(self, receive: trio.MemoryReceiveChannel[FlowBatch],
                  send: trio.MemorySendChannel[FlushBatch]) -> None:
        """Aggregate until ``receive`` closes; then emit everything held and close ``send``."""
        async with send:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ticker, send)
                nursery.start_soon(self._rotator)
                with runtime.tuned():
                    await self._consume(receive)
                nursery.cancel_scope.cancel()
            now = time.time()
            if self.post is not None:  # de-duplication and the cap need the whole of it
                parts: Iterable[Any] = [self.post.whole(now, self.acc.drain().rows())]
            else:
                parts = self.acc.drain_parts(FLUSH_PART)
            for part in parts:
                await self._emit(send, now, part)
            self._gauges()

    async def _consume(self, receive: trio.MemoryReceiveChannel[FlowBatch]) -> None:
        async with receive:
            async for batch in receive:
                now = time.time()
                self.take(batch, now)
                # Take what else is queued now, without a trip through the scheduler for each batch;
                # bounded, so the listeners still get their turn.
                taken = batch.size
                while taken < DRAIN_FLOWS:
                    try:
                        batch = receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    self.take(batch, now)
                    taken += batch.size

    async def _ticker(self, send: trio.MemorySendChannel[FlushBatch]) -> None:
        tick = self.cfg.flush_tick or 10.0
        next_at = trio.current_time() + tick
        while True:
            await trio.sleep_until(next_at)
            next_at += tick
            now = time.time()
            with trio.CancelScope(shield=True):  # flows taken out of contexts must not be lost
                post = self.post
                if post is not None:
                    post.start(now)
                async for part in self.flush_parts(now):  # each part on its way as soon as it is made
                    await self._emit(send, now, part if post is None else post.take(part.rows()))
                if post is not None:  # what de-duplication and the cap kept: they needed the whole flush
                    rest = post.finish()
                    for i in range(0, len(rest), FLUSH_PART):
                        await self._emit(send, now, rest[i:i + FLUSH_PART])

    async def _emit(self, send: trio.MemorySendChannel[FlushBatch], now: float,
                    flows: FlowColumns | list[list[Any]]) -> None:
        if flows:
            self.metrics.flows_flushed.inc(len(flows))
            await send.send(FlushBatch(now, flows))

    async def _rotator(self) -> None:
        while True:
            await trio.sleep(self.cfg.rollup_tracker_refresh_interval)
            self.acc.rotate_rollup()
