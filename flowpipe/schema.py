"""The whole config file: its top-level keys and one field per section.

Each section's class lives with the stage it configures; this root names the TOML table each goes
under. :mod:`flowpipe.config` finds the sections here (:func:`flowpipe.config.sections`): it loads,
validates and dumps whatever this class holds.
"""
from __future__ import annotations

import socket

import attrs

from flowpipe.aggregate.config import AggregatorConfig
from flowpipe.decode.config import DecoderConfig, SamplingRule
from flowpipe.enrich.config import ReverseDnsConfig
from flowpipe.forward.config import ForwarderConfig, MetadataConfig
from flowpipe.httpd_config import MetricsConfig
from flowpipe.listen_config import ListenerConfig
from flowpipe.sections import doc


def _default_listeners() -> list[ListenerConfig]:
    return [ListenerConfig(flow_type=t) for t in ("netflow9", "ipfix", "sflow5")]


@attrs.define(slots=True, kw_only=True)
class Config:
    """The whole flowpipe configuration."""

    host: str = attrs.field(default="", metadata=doc("payload \"host\"; [the machine's hostname]"))
    tags: dict[str, str] = attrs.field(factory=dict, metadata=doc(
        "key/values added to the additional_fields of every flow"))
    listeners: list[ListenerConfig] = attrs.field(factory=_default_listeners, metadata=doc(
        "UDP listeners; [netflow9 on 2055, ipfix on 4739, sflow5 on 6343]"))
    sampling: list[SamplingRule] = attrs.field(factory=list, metadata=doc(
        "sampling-rate rules by exporter ([[sampling]] tables); the first matching rule applies"))
    decoder: DecoderConfig = attrs.field(factory=DecoderConfig, metadata=doc("template state"))
    aggregator: AggregatorConfig = attrs.field(factory=AggregatorConfig, metadata=doc("aggregation"))
    reverse_dns: ReverseDnsConfig = attrs.field(factory=ReverseDnsConfig, metadata=doc("rDNS enrichment"))
    forwarder: ForwarderConfig = attrs.field(factory=ForwarderConfig, metadata=doc("delivery"))
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig, metadata=doc("Prometheus endpoint"))
    metadata: MetadataConfig = attrs.field(factory=MetadataConfig, metadata=doc("exporter metadata"))

    def __attrs_post_init__(self) -> None:
        if not self.host:
            self.host = socket.gethostname()
        seen: dict[tuple[str, int], str] = {}
        for i, lst in enumerate(self.listeners):
            where = (lst.bind_host, lst.port)
            if where in seen and lst.workers == 1:
                raise ValueError(f"listeners[{i}] binds {lst.bind_host}:{lst.port} like a listener "
                                 f"before it ({seen[where]}); give one of them another port")
            seen[where] = lst.flow_type
