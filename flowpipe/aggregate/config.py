"""The ``[aggregator]`` section: flush cadence, TTL, port rollup, memory cap, top-N and de-duplication."""
from __future__ import annotations

import attrs

from flowpipe.sections import doc, networks, non_negative, positive


@attrs.define(slots=True, kw_only=True)
class AggregatorConfig:
    """Flow contexts: flush cadence, TTL, port rollup, memory cap."""

    flush_interval: float = attrs.field(default=300.0, validator=positive, metadata=doc(
        "seconds between two emissions of one flow context"))
    flow_context_ttl: float | None = attrs.field(default=None, validator=positive, metadata=doc(
        "a flushed context with no new flow for this long is dropped; [flush_interval]"))
    flush_tick: float | None = attrs.field(default=None, validator=positive, metadata=doc(
        "how often due contexts are emitted; [min(10, flush_interval)]"))
    buffer_size: int = attrs.field(default=10000, validator=positive, metadata=doc(
        "flows the decoder may queue toward the accumulator"))
    port_rollup_threshold: int = attrs.field(default=10, validator=positive, metadata=doc(
        "distinct peer ports on one side before that side becomes \"*\""))
    port_rollup_disabled: bool = attrs.field(default=False, metadata=doc("turn port rollup off"))
    rollup_tracker_refresh_interval: float = attrs.field(default=300.0, validator=positive, metadata=doc(
        "seconds between two rotations of the port-rollup tracker"))
    max_contexts: int = attrs.field(default=1_000_000, validator=positive, metadata=doc(
        "flow contexts kept at most; past it flows of new contexts are dropped and counted"))
    max_rollup_entries: int = attrs.field(default=2_000_000, validator=positive, metadata=doc(
        "port-rollup tracker entries (both generations) at most; past it new pairs are not tracked"))
    scale_by_sampling: bool = attrs.field(default=False, metadata=doc(
        "multiply bytes and packets by the sampling rate before aggregation (payload sampling_rate is then 1)"))
    max_flows_per_flush_interval: int = attrs.field(default=0, validator=non_negative, metadata=doc(
        "top-N cap, as the Datadog Agent's aggregator_max_flows_per_flush_interval: at most this many flows"
        " per flush_interval, spread over its ticks (flush_interval / flush_tick of them); each flush keeps its"
        " flows with the most bytes and drops the rest, counted as flowpipe_flows_dropped_total{stage="
        "\"aggregator\",reason=\"top_n\"}; with the cap on, a new conversation is first emitted at a random"
        " tick of its first flush_interval (as the Agent does); 0 = off"))
    dedup_groups: list[list[str]] = attrs.field(factory=list, metadata=doc(
        "groups of exporters (each a list of addresses or CIDRs) that report the same conversations: within"
        " one flush, flows of a group with the same source and destination address and port and IP protocol"
        " count once (the one with the most bytes is kept; the others are counted as flowpipe_flows_dropped_total"
        "{stage=\"aggregator\",reason=\"duplicate\"}); an exporter belongs to the first group it matches;"
        " [] = off"))

    def __attrs_post_init__(self) -> None:
        if self.flow_context_ttl is None:
            self.flow_context_ttl = self.flush_interval
        if self.flush_tick is None:
            self.flush_tick = min(10.0, self.flush_interval)
        for i, group in enumerate(self.dedup_groups):
            if not group:
                raise ValueError(f"dedup_groups[{i}] is empty: list the exporters of the group")
            networks(f"dedup_groups[{i}]", group)
