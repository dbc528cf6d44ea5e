"""Flow contexts: the Datadog Agent's aggregation, with nothing dropped silently.

A context is keyed by (namespace, exporter, src ip, dst ip, src port, dst port, protocol, tos,
input interface), after port rollup. Its first flow in a window is the accumulator; later flows
add bytes and packets, widen start/end, OR the TCP flags and add additional fields not seen yet.
A new context is emitted at the next tick, then every ``flush_interval`` on its own cadence while
it gets flows; a context with no flow for ``flow_context_ttl`` after its last emission is dropped.
Unlike the Agent, everything held is emitted at shutdown (:meth:`Accumulator.drain`).
"""
from __future__ import annotations

import operator
import time
from typing import Any

from flowpipe.aggregate.rollup import PortRollup
from flowpipe.config import AggregatorConfig
from flowpipe.flow import (
    BYTES,
    DST_IP,
    DST_PORT,
    END,
    EXPORTER,
    EXTRAS,
    IN_IF,
    IP_PROTOCOL,
    NAMESPACE,
    PACKETS,
    ROLLED_UP,
    SRC_IP,
    SRC_PORT,
    START,
    TCP_FLAGS,
    TOS,
)

context_key = operator.itemgetter(NAMESPACE, EXPORTER, SRC_IP, DST_IP, SRC_PORT, DST_PORT, IP_PROTOCOL, TOS, IN_IF)


class Context:
    __slots__ = ("flow", "next_flush", "last_flush")

    def __init__(self, flow: list[Any], next_flush: float) -> None:
        self.flow: list[Any] | None = flow
        self.next_flush = next_flush
        self.last_flush = next_flush


class Accumulator:
    """Holds the flow contexts; pure (no I/O, no clock of its own): callers pass ``now``."""

    def __init__(self, cfg: AggregatorConfig) -> None:
        self.interval = cfg.flush_interval
        self.ttl = cfg.flow_context_ttl if cfg.flow_context_ttl is not None else cfg.flush_interval
        self.max_contexts = cfg.max_contexts
        self.rollup = None if cfg.port_rollup_disabled else PortRollup(cfg.port_rollup_threshold,
                                                                         cfg.max_rollup_entries)
        self.contexts: dict[tuple, Context] = {}
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
                verdict = rollup.observe(f[SRC_IP], f[DST_IP], f[SRC_PORT], f[DST_PORT])
                if verdict:
                    lf = list(f)
                    lf[SRC_PORT if verdict == 1 else DST_PORT] = ROLLED_UP
                    f = tuple(lf)
            key = context_key(f)
            ctx = contexts.get(key)
            if ctx is None:
                if len(contexts) >= self.max_contexts:
                    self.dropped_full += 1
                    continue
                contexts[key] = Context(list(f), now)
                continue
            acc = ctx.flow
            if acc is None:
                ctx.flow = list(f)
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
