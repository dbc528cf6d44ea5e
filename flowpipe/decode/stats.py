"""What the NetFlow v9 / IPFIX decoder's parts count: one attrs class of named counters per part.

The parts are pure and import no metrics: each keeps its counters (cumulative, or gauges where
marked) in its ``stats``, and the decode stage (:mod:`flowpipe.decode.template_metrics`,
:mod:`flowpipe.decode.stage`) reads them and advances its metrics by the difference.
"""
from __future__ import annotations

import attrs


@attrs.define(slots=True)
class TemplateStats:
    """The template registry's (:class:`flowpipe.decode.templates.Registry`)."""

    templates: int = 0            # gauge: templates stored
    exporters: int = 0            # gauge: exporters with template state
    learned: int = 0
    redefined: int = 0
    withdrawn: int = 0
    expired: int = 0
    refused_cap: int = 0          # max_templates_per_exporter (templates or domains)
    refused_exporters: int = 0    # max_exporters
    refused_total_cap: int = 0    # max_templates
    refused_memory: int = 0       # the bounds on fields stored
    sampling_rates_learned: int = 0


@attrs.define(slots=True)
class HoldStats:
    """The hold queue's (:class:`flowpipe.decode.templates.HoldQueue`): data waiting for its template."""

    held: int = 0                 # gauge: datagrams held
    bytes: int = 0                # gauge: what the held data costs
    released: int = 0             # held datagrams whose sets were all decoded
    expired: int = 0              # given up on after hold_timeout
    dropped_full: int = 0         # dropped by a cap (hold_max_per_exporter, hold_max_bytes)
    parts_dropped: int = 0        # sets of datagrams already counted decoded that were given up on
    refused: int = 0              # not held at all (caps)


@attrs.define(slots=True)
class NselStats:
    """The Cisco ASA NSEL tracker's (:class:`flowpipe.decode.nsel.Nsel`)."""

    flow: int = 0                 # records by outcome: a flow,
    create: int = 0               # a flow-create without counters,
    counted_before: int = 0       # an update or teardown already counted
    connections: int = 0          # gauge: connections tracked
    evicted: int = 0              # connections forgotten: a cap,
    untracked: int = 0            # no room to track it,
    expired: int = 0              # idle


@attrs.define(slots=True)
class DecoderStats:
    """The template decoder's own (:class:`flowpipe.decode.template_decoder.TemplateDecoder`)."""

    bad_templates: int = 0        # template records refused as malformed
    options_records: int = 0
    identities_learned: int = 0   # in-band exporter addresses (130/131) a domain announced, or changed to
