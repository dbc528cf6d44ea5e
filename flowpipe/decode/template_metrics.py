"""The template registries' and NSEL trackers' cumulative statistics, as the decoder's metrics.

Each listener's :class:`~flowpipe.decode.template_decoder.TemplateDecoder` counts in its ``stats``
dict (templates refused and why, NSEL records and connections); :class:`TemplateMetrics` sums them
over the listeners and brings ``flowpipe_templates``, ``flowpipe_templates_refused_total{reason}``,
``flowpipe_nsel_connections``, ``flowpipe_nsel_records_total{outcome}`` and
``flowpipe_nsel_connections_dropped_total{reason}`` up to date.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.metrics import Metrics

# stats key -> flowpipe_templates_refused_total reason
REFUSED_REASONS = {"templates_refused_cap": "per_exporter_cap", "templates_refused_exporters": "exporter_cap",
                   "templates_refused_total_cap": "total_cap", "templates_refused_memory": "memory",
                   "templates_bad": "bad_template"}
NSEL_OUTCOMES = ("flow", "create", "counted_before")  # stats "nsel_<outcome>" -> nsel_records_total{outcome}
NSEL_DROPS = ("evicted", "untracked", "expired")      # stats "nsel_<reason>" -> nsel_connections_dropped_total


class TemplateMetrics:
    """Exports the decoders' statistics; call :meth:`update` now and then (the counters only go up)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._seen: dict[str, int] = {}  # what each counter was last brought up to

    def update(self, decoders: Iterable[DatagramDecoder]) -> None:
        m = self.metrics
        stats = [d.templates.stats for d in decoders if d.templates is not None]
        m.templates.set(sum(st.get("templates", 0) for st in stats))
        for key, reason in REFUSED_REASONS.items():
            self._advance(m.templates_refused.labels(reason), reason, sum(st.get(key, 0) for st in stats))
        m.nsel_connections.set(sum(st.get("nsel_connections", 0) for st in stats))
        for outcome in NSEL_OUTCOMES:
            key = "nsel_" + outcome
            self._advance(m.nsel_records.labels(outcome), key, sum(st.get(key, 0) for st in stats))
        for reason in NSEL_DROPS:
            key = "nsel_" + reason
            self._advance(m.nsel_connections_dropped.labels(reason), key, sum(st.get(key, 0) for st in stats))

    def _advance(self, child: Any, key: str, n: int) -> None:
        """Bring a counter fed from cumulative statistics up to ``n``."""
        seen = self._seen.get(key, 0)
        if n > seen:
            child.inc(n - seen)
        self._seen[key] = n
