"""The ``[aggregator]`` section: flush cadence, TTL, port rollup, memory cap, top-N and de-duplication."""
from __future__ import annotations

import attrs

from flowpipe.sections import key, networks, non_negative, positive


@attrs.define(slots=True, kw_only=True)
class AggregatorConfig:
    """Flow contexts: flush cadence, TTL, port rollup, memory cap."""

    # One sections.key a line: a declaration table, alike in shape to every section's on purpose (not logic).
    flush_interval: float = key(300.0, positive, "seconds between two emissions of one flow context")
    flow_context_ttl: float | None = key(None, positive,
        "a flushed context with no new flow for this long is dropped; [flush_interval]")
    flush_tick: float | None = key(None, positive, "how often due contexts are emitted; [min(10, flush_interval)]")
    buffer_size: int = key(10000, positive, "flows the decoder may queue toward the accumulator")
    port_rollup_threshold: int = key(10, positive, "distinct peer ports on one side before that side becomes \"*\"")
    port_rollup_disabled: bool = key(False, None, "turn port rollup off")
    rollup_tracker_refresh_interval: float = key(300.0, positive,
        "seconds between two rotations of the port-rollup tracker")
    max_contexts: int = key(1_000_000, positive,
        "flow contexts kept at most; past it flows of new contexts are dropped and counted")
    max_rollup_entries: int = key(2_000_000, positive,
        "port-rollup tracker entries (both generations) at most; past it new pairs are not tracked")
    scale_by_sampling: bool = key(False, None,
        "multiply bytes and packets by the sampling rate before aggregation (payload sampling_rate is then 1)")
    max_flows_per_flush_interval: int = key(0, non_negative,
        "top-N cap, as the Datadog Agent's aggregator_max_flows_per_flush_interval: at most this many flows"
        " per flush_interval, spread over its ticks (flush_interval / flush_tick of them); each flush keeps its"
        " flows with the most bytes and drops the rest, counted as flowpipe_flows_dropped_total{stage="
        "\"aggregator\",reason=\"top_n\"}; with the cap on, a new conversation is first emitted at a random"
        " tick of its first flush_interval (as the Agent does); 0 = off")
    dedup_groups: list[list[str]] = key([], None,
        "groups of exporters (each a list of addresses or CIDRs) that report the same conversations: within"
        " one flush, flows of a group with the same source and destination address and port and IP protocol"
        " count once (the one with the most bytes is kept; the others are counted as flowpipe_flows_dropped_total"
        "{stage=\"aggregator\",reason=\"duplicate\"}); an exporter belongs to the first group it matches;"
        " [] = off")

    def __attrs_post_init__(self) -> None:
        if self.flow_context_ttl is None:
            self.flow_context_ttl = self.flush_interval
        if self.flush_tick is None:
            self.flush_tick = min(10.0, self.flush_interval)
        for i, group in enumerate(self.dedup_groups):
            if not group:
                raise ValueError(f"dedup_groups[{i}] is empty: list the exporters of the group")
            networks(f"dedup_groups[{i}]", group)
