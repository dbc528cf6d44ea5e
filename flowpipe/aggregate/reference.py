"""The per-record aggregation, kept as the oracle of the fast paths.

flowpipe's first implementation of the Datadog Agent's aggregation (spec: ``datadog-netflow.md``),
written for clarity, not speed: a flat tracker dict per rollup generation, one object per context,
every flow observed by the rollup and merged one at a time, in order. The accumulator
(:mod:`flowpipe.aggregate.accumulator`) must give exactly its results, flush after flush, on any
input; the tests drive both with random flows and random exports to check it. Not used by the
service.
"""
from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from flowpipe.aggregate.cadence import Cadence
from flowpipe.aggregate.config import AggregatorConfig
from flowpipe.aggregate.rollup import PyTrackers, roll_up
from flowpipe.flow import BYTES, DST_IP, DST_PORT, END, EXTRAS, PACKETS, SRC_IP, SRC_PORT, START, TCP_FLAGS, key_fields

# The Datadog context key, as a tuple of the flow's fields.
context_key = key_fields
# The rollup as the spec states it, observed for every flow (also the service's fallback when the
# compiled trackers are not built; the tests hold the compiled ones to it).
ReferenceRollup = PyTrackers


class _Context:
    __slots__ = ("flow", "next_flush", "last_flush")

    def __init__(self, flow: list[Any], next_flush: float) -> None:
        self.flow: list[Any] | None = flow
        self.next_flush = next_flush
        self.last_flush = next_flush


class ReferenceAccumulator:
    """Flow contexts the straightforward way: one object and one flow list per context, the rollup
    observed for every flow, in order. Pure (no I/O, no clock of its own): callers pass ``now``."""

    def __init__(self, cfg: AggregatorConfig) -> None:
        # the same settings as the Accumulator's, read the same way on purpose (the rules themselves are
        # shared: Cadence, rollup.verdict and roll_up); the structures below are this oracle's own
        cadence = Cadence.of(cfg)
        self.interval, self.ttl, self.jitter = cadence.interval, cadence.ttl, cadence.jitter
        self.max_contexts = cfg.max_contexts
        self.rollup = None if cfg.port_rollup_disabled else ReferenceRollup(cfg.port_rollup_threshold,
                                                                         cfg.max_rollup_entries)
        self.contexts: dict[tuple, _Context] = {}
        self.dropped_full = 0  # flows refused because max_contexts was reached
        self.received = 0

    def add(self, flows: list[tuple], now: float | None = None) -> None:
        """Aggregate a batch of flow tuples."""
        if now is None:
            now = time.time()
        contexts = self.contexts
        rollup = self.rollup
        self.received += len(flows)
        for f in flows:
            if rollup is not None:
                side = rollup.observe(f[SRC_IP], f[DST_IP], f[SRC_PORT], f[DST_PORT])
                if side:
                    f = roll_up(f, side)
            key = context_key(f)
            ctx = contexts.get(key)
            if ctx is None:
                if len(contexts) >= self.max_contexts:
                    self.dropped_full += 1
                    continue
                contexts[key] = _Context(_opened(f), now + random.random() * self.jitter if self.jitter else now)
                continue
            acc = ctx.flow
            if acc is None:
                ctx.flow = _opened(f)
                continue
            acc[BYTES] += f[BYTES]
            acc[PACKETS] += f[PACKETS]
            if f[START] < acc[START]:
                acc[START] = f[START]
            if f[END] > acc[END]:
                acc[END] = f[END]
            acc[TCP_FLAGS] |= f[TCP_FLAGS]
            extras = f[EXTRAS]
            if extras:
                mine = acc[EXTRAS]
                if mine is None:
                    acc[EXTRAS] = dict(extras)
                else:
                    for k, v in extras.items():
                        mine.setdefault(k, v)

    def flush(self, now: float) -> list[list[Any]]:
        """Emit the contexts that are due at ``now`` and drop the expired ones."""
        out: list[list[Any]] = []
        expired = []
        interval, ttl = self.interval, self.ttl
        for key, ctx in self.contexts.items():
            if ctx.flow is None:
                if ctx.last_flush + ttl < now:
                    expired.append(key)
                    continue
            if ctx.next_flush > now:
                continue
            if ctx.flow is not None:
                out.append(ctx.flow)
                ctx.flow = None
                ctx.last_flush = now
            ctx.next_flush += interval
        for key in expired:
            del self.contexts[key]
        return out

    def drain(self) -> list[list[Any]]:
        """Emit every context that holds a flow, due or not (shutdown)."""
        out = [ctx.flow for ctx in self.contexts.values() if ctx.flow is not None]
        self.contexts.clear()
        return out

    def rotate_rollup(self) -> None:
        if self.rollup is not None:
            self.rollup.rotate()


def _opened(f: Sequence[Any]) -> list[Any]:
    """A window's flow from the flow that opens it: its own additional fields dict (later flows add
    to it; the flow's may be shared, by a record's two directions say)."""
    lf = list(f)
    if lf[EXTRAS]:
        lf[EXTRAS] = dict(lf[EXTRAS])
    return lf
