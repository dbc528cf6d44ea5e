"""The Datadog Agent's top-N cap (``aggregator_max_flows_per_flush_interval``): each flush keeps only
its largest flows by bytes, so at most N flows leave per flush interval.

The budget of a flush follows the Agent (``comp/netflow/topn``): with P = flush_interval / flush_tick
ticks per interval, k = N div P and r = N mod P, the tick whose time falls in bucket
``(time mod flush_interval) div flush_tick`` may emit k + 1 flows when the bucket is below r, else k.
Within a flush the flows with the most bytes are kept; the rest are dropped and counted. Unlike the
Agent (whose sort is not stable), equal bytes keep the flow emitted first. Two differences on purpose:

- a budget of 0 (N < P, in the buckets that get k = 0) emits nothing, where the Agent then keeps every
  flow (its "0 = no filtering" quirk lets most ticks through uncapped);
- flowpipe never skips a tick (a late ticker catches up tick by tick), so a flush always has one
  tick's budget; the Agent sums the budgets of the ticks its ticker dropped.

Memory: the kept flows of the flush at hand, at most one budget; a flow that cannot make it is
dropped as soon as it is seen.
"""
from __future__ import annotations

import heapq
from typing import Any

from flowpipe.flow import BYTES, PACKETS


class TopN:
    """Keeps the largest flows by bytes of each flush: :meth:`start`, :meth:`take` each part, :meth:`finish`."""

    def __init__(self, n: int, flush_interval: float, flush_tick: float) -> None:
        self.n = n
        self.interval_ns = int(round(flush_interval * 1e9))
        self.tick_ns = int(round(flush_tick * 1e9))
        self.per_period = max(1, self.interval_ns // self.tick_ns)  # the Agent's flushesPerPeriod
        self.k, self.extra = divmod(n, self.per_period)
        self._budget = 0
        self._heap: list[tuple[int, int, list[Any]]] = []  # (bytes, -arrival, flow): the smallest kept on top
        self._seen = 0
        # of the flush at hand: flows dropped and their bytes and packets (read by the caller)
        self.dropped = self.dropped_bytes = self.dropped_packets = 0

    def budget(self, flush_time: float) -> int:
        """Flows a flush at ``flush_time`` (Unix seconds) may emit."""
        bucket = min((int(flush_time * 1e9) % self.interval_ns) // self.tick_ns, self.per_period - 1)
        return self.k + (1 if bucket < self.extra else 0)

    def start(self, flush_time: float) -> None:
        self._budget = self.budget(flush_time)
        self._heap = []
        self._seen = 0
        self.dropped = self.dropped_bytes = self.dropped_packets = 0

    def take(self, flows: list[list[Any]]) -> None:
        """Consider a part of the flush; nothing leaves before :meth:`finish`."""
        heap, budget = self._heap, self._budget
        seq = self._seen
        for f in flows:
            seq += 1
            entry = (f[BYTES], -seq, f)
            if len(heap) < budget:
                heapq.heappush(heap, entry)
                continue
            if heap and entry[:2] > heap[0][:2]:
                entry = heapq.heapreplace(heap, entry)
            gone = entry[2]
            self.dropped += 1
            self.dropped_bytes += gone[BYTES]
            self.dropped_packets += gone[PACKETS]
        self._seen = seq

    def finish(self) -> list[list[Any]]:
        """The kept flows, most bytes first."""
        kept = [e[2] for e in sorted(self._heap, reverse=True, key=lambda e: e[:2])]
        self._heap = []
        return kept
