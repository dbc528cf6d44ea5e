"""What happens to a flush's flows after the accumulator emits them, before they leave the stage:
de-duplication across exporters (:mod:`flowpipe.aggregate.dedup`), then the top-N cap
(:mod:`flowpipe.aggregate.topn`). Both see the whole flush, which the accumulator emits in parts.
Every flow either leaves or is dropped and counted in ``flowpipe_flows_dropped_total{stage="aggregator"}``
(reason ``duplicate`` or ``top_n``), so ``flowpipe_flows_flushed_total`` counts what leaves.
"""
from __future__ import annotations

from typing import Any

from flowpipe.aggregate.config import AggregatorConfig
from flowpipe.aggregate.dedup import Deduplicator
from flowpipe.aggregate.topn import TopN
from flowpipe.metrics import Metrics


class FlushFilter:
    """:meth:`start` a flush, :meth:`take` each part (returns what may leave now), :meth:`finish` (the rest)."""

    def __init__(self, cfg: AggregatorConfig, metrics: Metrics) -> None:
        self.dedup = Deduplicator(cfg.dedup_groups) if cfg.dedup_groups else None
        tick = cfg.flush_tick or min(10.0, cfg.flush_interval)
        self.topn = TopN(cfg.max_flows_per_flush_interval, cfg.flush_interval, tick) \
            if cfg.max_flows_per_flush_interval else None
        m = metrics
        self._dropped_dup = m.flows_dropped.labels("aggregator", "duplicate")
        self._dropped_top = m.flows_dropped.labels("aggregator", "top_n")
        self._top_bytes, self._top_packets = m.top_n_dropped_bytes, m.top_n_dropped_packets

    @classmethod
    def of(cls, cfg: AggregatorConfig, metrics: Metrics) -> FlushFilter | None:
        """A filter when the config asks for one, else None."""
        return cls(cfg, metrics) if cfg.dedup_groups or cfg.max_flows_per_flush_interval else None

    def start(self, flush_time: float) -> None:
        if self.dedup is not None:
            self.dedup.start()
        if self.topn is not None:
            self.topn.start(flush_time)

    def take(self, flows: list[list[Any]]) -> list[list[Any]]:
        if self.dedup is not None:
            flows = self.dedup.take(flows)
        if self.topn is not None:
            self.topn.take(flows)
            return []
        return flows

    def finish(self) -> list[list[Any]]:
        rest: list[list[Any]] = []
        if self.dedup is not None:
            rest = self.dedup.finish()
            if self.dedup.dropped:
                self._dropped_dup.inc(self.dedup.dropped)
        if self.topn is not None:
            top = self.topn
            top.take(rest)
            rest = top.finish()
            if top.dropped:
                self._dropped_top.inc(top.dropped)
                self._top_bytes.inc(top.dropped_bytes)
                self._top_packets.inc(top.dropped_packets)
        return rest

    def whole(self, flush_time: float, flows: list[list[Any]]) -> list[list[Any]]:
        """One flush given at once (the drain at shutdown)."""
        self.start(flush_time)
        out = self.take(flows)
        return out + self.finish()
