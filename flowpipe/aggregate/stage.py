"""The accumulator stage: takes flow batches, emits due contexts every tick, drains at the end."""
from __future__ import annotations

import logging
import time

import trio

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.sequence import SequenceTracker
from flowpipe.config import AggregatorConfig
from flowpipe.decode.stage import FlowBatch, FlowQueue
from flowpipe.flow import FlushBatch
from flowpipe.logs import RateLimited
from flowpipe.metrics import Metrics


class AccumulatorStage:
    def __init__(self, cfg: AggregatorConfig, metrics: Metrics, queue: FlowQueue, max_sequence_keys: int) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.queue = queue
        self.acc = Accumulator(cfg)
        self.sequences = SequenceTracker(metrics, max_sequence_keys)
        self._log = RateLimited(metrics.log_suppressed)
        self._dropped_full = metrics.flows_dropped.labels("aggregator", "max_contexts")
        self._reported_full = 0

    def take(self, batch: FlowBatch, now: float) -> None:
        """Aggregate one batch (flows and sequence notes)."""
        observe = self.sequences.observe
        for ns, exporter, flow_type, obs, nflows in batch.sequences:
            observe(ns, exporter, flow_type, obs, nflows)
        self.acc.add(batch.flows, now)
        self.metrics.aggregator_flows_received.inc(len(batch.flows))
        full = self.acc.dropped_full - self._reported_full
        if full:
            self._dropped_full.inc(full)
            self._reported_full = self.acc.dropped_full
            self._log(logging.WARNING, "max_contexts_reached", max_contexts=self.cfg.max_contexts, dropped=full)
        self.queue.taken(len(batch.flows))

    def tick(self, now: float) -> list[list]:
        with self.metrics.flush_duration.time():
            out = self.acc.flush(now)
        self._gauges()
        return out

    def _gauges(self) -> None:
        m = self.metrics
        m.aggregator_contexts.set(len(self.acc.contexts))
        r = self.acc.rollup
        m.rollup_entries.labels("current").set(len(r.cur) if r else 0)
        m.rollup_entries.labels("new").set(len(r.new) if r else 0)

    async def run(self, receive: trio.MemoryReceiveChannel[FlowBatch],
                  send: trio.MemorySendChannel[FlushBatch]) -> None:
        """Aggregate until ``receive`` closes; then emit everything held and close ``send``."""
        async with send:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ticker, send)
                nursery.start_soon(self._rotator)
                async with receive:
                    async for batch in receive:
                        self.take(batch, time.time())
                nursery.cancel_scope.cancel()
            rest = self.acc.drain()
            self._gauges()
            if rest:
                self.metrics.flows_flushed.inc(len(rest))
                await send.send(FlushBatch(time.time(), rest))

    async def _ticker(self, send: trio.MemorySendChannel[FlushBatch]) -> None:
        tick = self.cfg.flush_tick or 10.0
        next_at = trio.current_time() + tick
        while True:
            await trio.sleep_until(next_at)
            next_at += tick
            now = time.time()
            flows = self.tick(now)
            if flows:
                self.metrics.flows_flushed.inc(len(flows))
                with trio.CancelScope(shield=True):  # flows taken out of contexts must not be lost
                    await send.send(FlushBatch(now, flows))

    async def _rotator(self) -> None:
        while True:
            await trio.sleep(self.cfg.rollup_tracker_refresh_interval)
            self.acc.rotate_rollup()
