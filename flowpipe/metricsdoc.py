"""Generate ``docs/metrics.md`` from the metrics registry (``python -m flowpipe.metricsdoc``).

The reference is never written by hand: every metric family, its type, labels and help text come
from :class:`flowpipe.metrics.Metrics`, plus what the stage packages declare (``STAGES``): the
collectors a stage adds to the same registry at run time (``runtime_collectors``: an sFlow
listener's interface counters) and label values quoted in notes (``label_values``). ``NOTES``
adds what a help string cannot say (label values, how counters relate); a test fails when the
committed file is out of date, when a note names a metric that no longer exists, or when a
running flowpipe serves a metric the file does not document.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from flowpipe.metrics import Metrics

HEADER = """# Metrics reference

Generated from `flowpipe/metrics.py` by `python -m flowpipe.metricsdoc > docs/metrics.md`; do not edit.

flowpipe serves these on `GET /metrics` of `[metrics] listen` (default `0.0.0.0:9090`), in the
Prometheus text format. `GET /healthz` on the same port answers 200 while every pipeline stage
runs and 503 (with the missing stages) otherwise, and while stopping. `GET /exporters` answers the
exporter inventory as JSON: one object per (namespace, exporter address, flow type) seen, with
`id` (`namespace:address:flow_type`, the Agent's exporter id parts), `first_seen`/`last_seen` (UTC,
ISO 8601), `datagrams`, `flows` (decoded), per observation domain its sequence state
(`sequence_last`, `sequence_expected`, `resets`), `sampling_rate` (the last rate the exporter
announced: v5 header, v9/IPFIX options, sFlow samples; 0 when none) and, for NetFlow v9/IPFIX,
`templates`: per template domain (UDP source port and source id / observation domain) the live
template `count`, the `data` and `options` template ids, `waiting_for` (ids that held data waits
for: a missing template), the domain's `sampling_rate` and `last_template` (when a template was
last (re)sent). Id lists stop at 64 and domains at 64 per exporter (`templates_truncated` is then
true). It holds what the sequence tracker holds (bounded by its key limit).

- Counters are exposed as `NAME_total` (plus `NAME_created`, the time the series was created).
  Histograms are exposed as `NAME_bucket{le}`, `NAME_sum` and `NAME_count`.
- A labelled metric has no series until the first event with that label value: absent means 0.
- The counters add up. Datagrams: `received = decoded + invalid + held + dropped` (held is the
  gauge `flowpipe_datagrams_held`). Flows: `flushed = sent + pending + dropped{stage="forwarder"}`.
- Kernel drops on a full socket receive buffer happen before flowpipe sees a datagram, so they are
  not in `flowpipe_datagrams_received_total`: watch `flowpipe_socket_drops_total` separately (see
  `docs/operations.md`).
"""

# The stage packages; each may declare what the Metrics facade cannot show (see _registry and _note).
STAGES = ("listen", "decode", "aggregate", "enrich", "forward")

# (title, name prefixes after "flowpipe_") in page order; the first match wins.
SECTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("Listeners and decoding", ("datagram", "decode_", "flows_decoded", "flows_unknown_sampling", "socket_",
                                "templates")),
    ("Aggregation", ("aggregator_", "flows_flushed", "flush_", "port_rollup_", "top_n_")),
    ("Sequence tracking and loss", ("sequence_", "flows_lost_")),
    ("Reverse DNS", ("rdns_",)),
    ("Forwarder and spool", ("forwarder_", "flows_spooled", "spool_")),
    ("Exporter metadata", ("metadata_",)),
    ("Drops across stages", ("flows_dropped",)),
    ("sFlow interface counters", ("sflow_interface_",)),
    ("Service", ("stage_", "log_", "limits_")),
]

# A paragraph under a section's heading.
SECTION_NOTES: dict[str, str] = {
    "sFlow interface counters": "Present only when an sFlow listener is configured: the latest generic "
                                "interface counters each sFlow agent sends, one series per (agent, ifIndex), "
                                "bounded and expired (see `flowpipe/telemetry/sflow_counters.py`).",
    "Drops across stages": "Every place a flow can be lost after decoding counts here.",
}

NOTES: dict[str, str] = {
    "flowpipe_datagrams_received": "`flow_type` is the listener's configured flow type (one port may take "
                                   "v5, v9 and IPFIX; see `type` in the payload for what a datagram was).",
    "flowpipe_datagrams_invalid": "`reason`: empty (a zero-length datagram), short, bad_version, bad_length, "
                                  "bad_count, bad_address_type, "
                                  "unsupported, ... (the decoder's reason for rejecting the datagram). "
                                  "Use it for the dashboard's decode-error panel.",
    "flowpipe_datagrams_held": "They are decoded when the template arrives (then counted in decoded) or "
                               "dropped as template_never_came after `decoder.hold_timeout`.",
    "flowpipe_datagrams_dropped": "queue_full means the decoder fell behind the listener (CPU-bound: add "
                                  "`workers` or instances).",
    "flowpipe_decode_parts_skipped": "E.g. an unknown flowset or sample format; the datagram still counts "
                                     "as decoded.",
    "flowpipe_socket_drops": "Read from the kernel's per-socket drop count (`/proc/net/udp`, `/proc/net/udp6`) "
                             "per listener. Non-zero means raise `receive_buffer` and `net.core.rmem_max`, or add "
                             "`workers`.",
    "flowpipe_socket_receive_buffer_bytes": "What the kernel granted for `listeners.receive_buffer` (capped "
                                            "by `net.core.rmem_max`); below the request, flowpipe logs "
                                            "receive_buffer_capped at start.",
    "flowpipe_flows_dropped": "`stage`/`reason` pairs include aggregator/max_contexts, aggregator/decoder_error "
                              "(records of a data set whose record decoder raised when the aggregator decoded it: a "
                              "bug, logged as decoder_bug), aggregator/top_n (flows over the "
                              "`aggregator.max_flows_per_flush_interval` cap: the Agent's "
                              "flow_truncation.flows_dropped), aggregator/duplicate (reports of one conversation by "
                              "another exporter of an `aggregator.dedup_groups` group), forwarder/queue_full, "
                              "forwarder/shutdown, forwarder/spool_full, forwarder/spool_error, "
                              "forwarder/spool_corrupt, forwarder/rejected (the backend refused the batch for good), "
                              "forwarder/encode_error, forwarder_file/queue_full and forwarder_file/write_error.",
    "flowpipe_aggregator_contexts": "Memory follows this gauge; capped by `aggregator.max_contexts`.",
    "flowpipe_flows_flushed": "One aggregated flow (context) emitted counts 1, however many records it merged; "
                              "after de-duplication and the top-N cap (as the Agent's flows_flushed).",
    "flowpipe_top_n_dropped_bytes": "The Agent's flow_truncation.flows_dropped.bytes (as the exporter counted "
                                    "them).",
    "flowpipe_sequence_delta": "Counted at decode time per (namespace, exporter, flow type).",
    "flowpipe_sequence_reset": "After a reset the delta counts again from the new value: the reset datagram"
                               " adds only its own units (v5 flows, IPFIX records, 1 v9 packet or sFlow"
                               " datagram), where the Agent adds the new sequence number itself (as if"
                               " counting from 0).",
    "flowpipe_sequence_last": "Set on every datagram (a late one too), as the Agent sets sequence.last on"
                              " every flush.",
    "flowpipe_flows_lost_estimate": "Counted in flows: exact for NetFlow v5 and IPFIX, estimated for v9 and "
                                    "sFlow from the exporter's running flows-per-packet mean. Loss on the "
                                    "network and in the kernel buffer both show here; compare with "
                                    "`flowpipe_flows_decoded_total` for a loss ratio.",
    "flowpipe_rdns_lookups": "`result`: {rdns_results}.",
    "flowpipe_forwarder_requests": "`status`: the HTTP status code (\"200\", \"503\", ...) or an error kind "
                                   "such as timeout or connect_error.",
    "flowpipe_forwarder_flows_pending": "Falls back to 0 when the backend has caught up.",
    "flowpipe_forwarder_backend_up": "Alert on this being 0 for a few minutes.",
    "flowpipe_spool_bytes": "Bounded by `forwarder.spool_max_bytes`; size the spool volume above it.",
    "flowpipe_metadata_requests": "Only with `[metadata] url`. `status` as for flowpipe_forwarder_requests; a "
                                  "failed round is logged (metadata_not_sent, rate-limited) and its exporters "
                                  "go again in the next round.",
    "flowpipe_metadata_exporters_skipped": "In-band exporter names (`[listeners.exporters]`) have no IP "
                                           "address for the Agent's shape; each counts once.",
    "flowpipe_stage_up": "`stage`: listener:NAME, decoder:N, accumulator, reverse_dns, renderer, forwarder. "
                         "`/healthz` is 503 while any expected stage is 0.",
}


class Family(NamedTuple):
    name: str
    type: str
    help: str
    labels: tuple[str, ...]


def _stages() -> list[Any]:
    """The stage packages, whose declarations (``runtime_collectors``, ``label_values``) the reference adds."""
    return [importlib.import_module(f"flowpipe.{name}") for name in STAGES]


def _registry() -> tuple[CollectorRegistry, dict[str, tuple[str, ...]]]:
    """A registry with every metric flowpipe can expose, and label names by family name."""
    m = Metrics()
    labels: dict[str, tuple[str, ...]] = {}
    for obj in vars(m).values():
        if isinstance(obj, MetricWrapperBase):
            labels[obj._name] = tuple(obj._labelnames)
    for stage in _stages():  # families a stage adds at run time (an sFlow listener's interface counters)
        for collector in getattr(stage, "runtime_collectors", lambda registry: [])(m.registry):
            for fam in collector.describe():
                labels[fam.name] = tuple(getattr(fam, "_labelnames", ()))
    return m.registry, labels


def families() -> list[Family]:
    """Every metric family flowpipe exposes, in registration order."""
    registry, labels = _registry()
    out: list[Family] = []
    for fam in registry.collect():
        names = labels.get(fam.name)
        if names is None:
            names = tuple(sorted({k for s in fam.samples for k in s.labels if k != "le"}))
        out.append(Family(fam.name, fam.type, fam.documentation, names))
    return out


def exposed_names(fam: Family) -> list[str]:
    """The sample names a scrape shows for ``fam`` (without ``_created``)."""
    if fam.type == "counter":
        return [fam.name + "_total"]
    if fam.type == "histogram":
        return [fam.name + s for s in ("_bucket", "_sum", "_count")]
    if fam.type == "summary":
        return [fam.name + s for s in ("_sum", "_count")]
    return [fam.name]


def _section(name: str) -> str:
    short = name.removeprefix("flowpipe_")
    for title, prefixes in SECTIONS:
        if short.startswith(prefixes):
            return title
    return "Other"


def _note(name: str) -> str:
    text = NOTES.get(name, "")
    if "{" in text:  # "{name}": label values a stage declares
        for stage in _stages():
            for key, values in getattr(stage, "label_values", dict)().items():
                text = text.replace("{" + key + "}", ", ".join(values))
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(fams: list[Family]) -> Iterator[str]:
    for f in fams:
        shown = ", ".join(f"`{n}`" for n in exposed_names(f))
        labels = ", ".join(f"`{x}`" for x in f.labels) or "–"
        meaning = f.help
        note = _note(f.name)
        if note:
            meaning = f"{meaning}. {note}" if meaning else note
        yield f"| {shown} | {f.type} | {labels} | {_cell(meaning)} |"


def render() -> str:
    fams = families()
    by_section: dict[str, list[Family]] = {}
    for f in fams:
        by_section.setdefault(_section(f.name), []).append(f)
    out = [HEADER]
    for title in [t for t, _ in SECTIONS] + ["Other"]:
        group = by_section.get(title)
        if not group:
            continue
        out += [f"## {title}", ""]
        if title in SECTION_NOTES:
            out += [SECTION_NOTES[title], ""]
        out += ["| metric | type | labels | meaning |", "|---|---|---|---|"]
        out += list(_rows(group))
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
