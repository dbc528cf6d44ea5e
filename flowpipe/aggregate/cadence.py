"""When contexts are emitted and dropped: the aggregator section as both accumulators read it."""
from __future__ import annotations

import attrs

from flowpipe.aggregate.config import AggregatorConfig


@attrs.frozen
class Cadence:
    """Windows are emitted every ``interval``; a context whose window stays empty for ``ttl`` after
    its last emission is dropped (``flow_context_ttl``, by default the interval). A new context is
    first due at the next tick, or, with the top-N cap, at a random time within ``jitter`` (one
    interval: the Datadog Agent spreads new conversations over the ticks the cap is counted on)."""

    interval: float
    ttl: float
    jitter: float

    @classmethod
    def of(cls, cfg: AggregatorConfig) -> Cadence:
        ttl = cfg.flow_context_ttl if cfg.flow_context_ttl is not None else cfg.flush_interval
        return cls(cfg.flush_interval, ttl, cfg.flush_interval if cfg.max_flows_per_flush_interval > 0 else 0.0)
