"""The template decoders' statistics (:mod:`flowpipe.decode.stats`), as the decoder's metrics.

Each listener's :class:`~flowpipe.decode.template_decoder.TemplateDecoder` counts in the ``stats``
of its parts (templates refused and why, NSEL records and connections); :class:`TemplateMetrics`
sums them over the listeners and brings ``flowpipe_templates``, ``flowpipe_templates_refused_total{reason}``,
``flowpipe_nsel_connections``, ``flowpipe_nsel_records_total{outcome}`` and
``flowpipe_nsel_connections_dropped_total{reason}`` up to date.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.metrics import Metrics

Count = Callable[[TemplateDecoder], int]

# label -> the counter behind it, for flowpipe_templates_refused_total{reason},
# flowpipe_nsel_records_total{outcome} and flowpipe_nsel_connections_dropped_total{reason}
REFUSED_REASONS: dict[str, Count] = {
    "per_exporter_cap": lambda d: d.registry.stats.refused_cap,
    "exporter_cap": lambda d: d.registry.stats.refused_exporters,
    "total_cap": lambda d: d.registry.stats.refused_total_cap,
    "memory": lambda d: d.registry.stats.refused_memory,
    "bad_template": lambda d: d.stats.bad_templates}
NSEL_OUTCOMES: dict[str, Count] = {
    "flow": lambda d: d.nsel.stats.flow, "create": lambda d: d.nsel.stats.create,
    "counted_before": lambda d: d.nsel.stats.counted_before}
NSEL_DROPS: dict[str, Count] = {
    "evicted": lambda d: d.nsel.stats.evicted, "untracked": lambda d: d.nsel.stats.untracked,
    "expired": lambda d: d.nsel.stats.expired}


class TemplateMetrics:
    """Exports the decoders' statistics; call :meth:`update` now and then (the counters only go up)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._seen: dict[Any, int] = {}  # metric child -> what it was last brought up to

    def update(self, decoders: Iterable[DatagramDecoder]) -> None:
        m = self.metrics
        decs = [d.templates for d in decoders if d.templates is not None]
        m.templates.set(sum(d.registry.stats.templates for d in decs))
        m.nsel_connections.set(sum(d.nsel.stats.connections for d in decs))
        for metric, table in ((m.templates_refused, REFUSED_REASONS), (m.nsel_records, NSEL_OUTCOMES),
                              (m.nsel_connections_dropped, NSEL_DROPS)):
            for label, count in table.items():
                self._advance(metric.labels(label), sum(count(d) for d in decs))

    def _advance(self, child: Any, n: int) -> None:
        """Bring a counter fed from cumulative statistics up to ``n``."""
        seen = self._seen.get(child, 0)
        if n > seen:
            child.inc(n - seen)
        self._seen[child] = n
