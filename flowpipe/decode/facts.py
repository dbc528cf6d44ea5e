"""What the decoders know about each exporter beyond its flows, for the exporter inventory
(``GET /exporters``, :mod:`flowpipe.inventory`): the last sampling rate it announced and its live
NetFlow v9 / IPFIX templates. Read-only towards decoder state; bounded.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowpipe.decode.templates import DomainView

if TYPE_CHECKING:
    from flowpipe.decode.dispatch import DatagramDecoder

__all__ = ["DomainView", "ExporterKey", "SamplingSeen", "TemplateDomains", "template_domains"]

ExporterKey = tuple[str, str, str]  # (namespace, exporter address, flow type): the inventory's key
# An exporter's template domains (what flowpipe.inventory lists), each with the template ids its held
# data waits for, by exporter key.
TemplateDomains = dict[ExporterKey, list[tuple[DomainView, list[int]]]]


class SamplingSeen:
    """The last non-zero sampling rate each exporter announced (v5 header, v9/IPFIX options, sFlow
    samples), before any ``[[sampling]]`` rule, as its flows carry it; the decoder stage notes it once
    per batch of datagrams, from the exporter's last datagram with flows in it. At most ``max_keys``
    exporters; past it new ones are not remembered and counted in ``refused`` (and ``counter``, e.g.
    ``flowpipe_limits_hit_total{limit="exporter_sampling_rates"}``)."""

    def __init__(self, max_keys: int, counter: Any = None) -> None:
        self.max_keys = max_keys
        self.rates: dict[ExporterKey, int] = {}
        self.refused = 0
        self._counter = counter

    def note(self, key: ExporterKey, rate: int) -> None:
        rates = self.rates
        if key in rates or len(rates) < self.max_keys:
            rates[key] = rate
        else:
            self.refused += 1
            if self._counter is not None:
                self._counter.inc()

    def get(self, key: ExporterKey) -> int:
        return self.rates.get(key, 0)


def template_domains(decoders: Iterable[DatagramDecoder]) -> TemplateDomains:
    """The live template domains of every listener's decoder by exporter key (its listener's
    namespace, the exporter, netflow9 or ipfix), with the template ids their held data waits for."""
    out: TemplateDomains = {}
    for dec in decoders:
        for view, waiting in dec.template_domains():
            flow_type = "netflow9" if view.version == 9 else "ipfix"
            out.setdefault((dec.namespace, view.exporter, flow_type), []).append((view, waiting))
    return out
