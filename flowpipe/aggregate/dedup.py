"""De-duplication of one conversation reported by several exporters (``aggregator.dedup_groups``).

Routers on one path each export the same conversation. For exporters in one configured group, the
flows of a flush that share a conversation key count once: the one with the most bytes is kept (the
first emitted on a tie), the others are dropped and counted. The conversation key is the Datadog
Agent's deduplication hash input (its dedup branch): source and destination address and port and
IP protocol, without exporter, namespace, interface or ToS. Flows of exporters in no group pass
untouched; the first group an exporter matches is its group.

Only flows emitted in the same flush are compared. A conversation's contexts at two exporters are
emitted in the same flush when both exporters first reported it within the same flush tick (each
context then keeps the same cadence); otherwise their windows differ and both are emitted. The
Agent's dedup branch instead lets a late reporter join the first one's cadence and sends one merged
event with a ``reporters`` list (a different payload); see docs/architecture.md.

Memory: the group flows of the flush at hand (bounded by the flush, itself bounded by
``aggregator.max_contexts``) and each group's bounded cache of exporter -> member or not.
"""
from __future__ import annotations

from typing import Any

from flowpipe.cidr import Allowlist
from flowpipe.flow import BYTES, DST_IP, DST_PORT, EXPORTER, IP_PROTOCOL, SRC_IP, SRC_PORT


class Deduplicator:
    """Per flush: :meth:`start`, :meth:`take` each part (returns what may go at once), :meth:`finish`."""

    def __init__(self, groups: list[list[str]]) -> None:
        # each group's CIDRs matched (and cached, bounded) as [listeners] allowed_exporters are
        self.groups = [Allowlist(g) for g in groups if g]
        self._best: dict[tuple[Any, ...], list[Any]] = {}
        self.dropped = 0  # duplicates dropped in the flush at hand (read by the caller)

    def group(self, exporter: str) -> int:
        """The index of the exporter's group, -1 for none."""
        for i, members in enumerate(self.groups):
            if members.allowed(exporter):
                return i
        return -1

    def start(self) -> None:
        self._best = {}
        self.dropped = 0

    def take(self, flows: list[list[Any]]) -> list[list[Any]]:
        """The flows of no group (they go at once); group flows wait for :meth:`finish`."""
        out: list[list[Any]] = []
        best, group = self._best, self.group
        for f in flows:
            g = group(f[EXPORTER])
            if g < 0:
                out.append(f)
                continue
            key = (g, f[SRC_IP], f[DST_IP], f[SRC_PORT], f[DST_PORT], f[IP_PROTOCOL])
            held = best.get(key)
            if held is None:
                best[key] = f
            else:
                self.dropped += 1
                if f[BYTES] > held[BYTES]:
                    best[key] = f
        return out

    def finish(self) -> list[list[Any]]:
        """One flow per conversation and group, in the order conversations were first seen."""
        out = list(self._best.values())
        self._best = {}
        return out
