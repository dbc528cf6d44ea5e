"""The one metrics façade: every Prometheus metric flowpipe exposes, on a registry of its own.

Stages receive a :class:`Metrics` and increment its members; none creates metrics elsewhere,
except modules that add a family through :meth:`Metrics.registry` (sFlow interface counters).
Increment per datagram or per batch, never per flow, on hot paths.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

P = "flowpipe_"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # ---- listener / decoder (datagrams: received = decoded + invalid + held + dropped)
        self.datagrams_received = Counter(P + "datagrams_received", "UDP datagrams received",
                                          ["flow_type"], registry=r)
        self.datagrams_decoded = Counter(P + "datagrams_decoded", "datagrams decoded (including held ones"
                                         " once their template came)", ["flow_type"], registry=r)
        self.datagrams_invalid = Counter(P + "datagrams_invalid", "datagrams that could not be decoded",
                                         ["flow_type", "reason"], registry=r)
        self.datagrams_held = Gauge(P + "datagrams_held", "datagrams waiting for a template", registry=r)
        self.datagrams_dropped = Counter(P + "datagrams_dropped", "datagrams dropped before or while"
                                         " decoding (queue_full, template_never_came, hold_full, not_allowed)",
                                         ["reason"], registry=r)
        self.parts_skipped = Counter(P + "decode_parts_skipped", "flowsets, samples or records skipped"
                                     " inside otherwise decoded datagrams", ["flow_type", "reason"], registry=r)
        self.flows_decoded = Counter(P + "flows_decoded", "flow records decoded", ["flow_type"], registry=r)
        self.flows_unknown_sampling = Counter(P + "flows_unknown_sampling", "flows decoded with no known sampling"
                                              " rate (none announced, no [[sampling]] default)", ["exporter"],
                                              registry=r)
        self.bytes_received = Counter(P + "datagram_bytes_received", "UDP payload bytes received",
                                      ["flow_type"], registry=r)
        self.socket_drops = Counter(P + "socket_drops", "datagrams the kernel dropped on a full socket"
                                    " receive buffer", ["listener"], registry=r)
        self.socket_buffer = Gauge(P + "socket_receive_buffer_bytes", "socket receive buffer size granted"
                                   " by the kernel", ["listener"], registry=r)
        self.templates = Gauge(P + "templates", "NetFlow v9/IPFIX templates known", registry=r)
        self.templates_refused = Counter(P + "templates_refused", "templates not stored (caps hit)",
                                         ["reason"], registry=r)
        self.nsel_records = Counter(P + "nsel_records", "Cisco ASA NSEL records by what became of them: flow;"
                                    " create (a flow-create event without counters: no flow); counted_before (an"
                                    " update or teardown with nothing left to count: zero, or what earlier"
                                    " events of its connection counted)",
                                    ["outcome"], registry=r)
        self.nsel_connections = Gauge(P + "nsel_connections", "Cisco ASA NSEL connections whose flow-update"
                                      " counts are remembered (so their teardown is not counted twice)", registry=r)
        self.nsel_connections_dropped = Counter(
            P + "nsel_connections_dropped", "NSEL connection state forgotten before its teardown (evicted: over"
            " decoder.nsel_max_connections_per_exporter or nsel_max_connections; untracked: no room; expired: no"
            " event for an hour): that connection's teardown counts its totals again", ["reason"], registry=r)
        # ---- flows through the pipeline (flows: flushed = sent + pending + dropped{stage="forwarder"})
        self.flows_dropped = Counter(P + "flows_dropped", "flows dropped, by stage and reason",
                                     ["stage", "reason"], registry=r)
        self.aggregator_contexts = Gauge(P + "aggregator_contexts", "flow contexts held", registry=r)
        self.aggregator_flows_received = Counter(P + "aggregator_flows_received", "flows taken in by the"
                                                 " accumulator", registry=r)
        self.flows_flushed = Counter(P + "flows_flushed", "aggregated flows emitted by the accumulator",
                                     registry=r)
        self.flush_duration = Histogram(P + "flush_duration_seconds", "time to gather one tick's due"
                                        " contexts", registry=r, buckets=(.001, .005, .01, .05, .1, .5, 1, 5))
        self.top_n_dropped_bytes = Counter(P + "top_n_dropped_bytes", "bytes of the flows the top-N cap"
                                           " dropped (aggregator.max_flows_per_flush_interval)", registry=r)
        self.top_n_dropped_packets = Counter(P + "top_n_dropped_packets", "packets of the flows the top-N cap"
                                             " dropped", registry=r)
        self.rollup_entries = Gauge(P + "port_rollup_entries", "port-rollup tracker keys", ["generation"],
                                    registry=r)
        self.sequence_delta = Counter(P + "sequence_delta", "sequence progress seen from exporters, in the"
                                      " protocol's unit (v5 flows, v9 packets, IPFIX records, sFlow datagrams)",
                                      ["namespace", "exporter", "flow_type"], registry=r)
        self.sequence_last = Gauge(P + "sequence_last", "the last sequence number seen from the exporter (the"
                                   " Agent's sequence.last; of the latest datagram when it has several domains)",
                                   ["namespace", "exporter", "flow_type"], registry=r)
        self.sequence_reset = Counter(P + "sequence_reset", "exporter sequence resets (restarts, big jumps"
                                      " back)", ["namespace", "exporter", "flow_type"], registry=r)
        self.flows_lost_estimate = Counter(P + "flows_lost_estimate", "flows the exporter sent that never arrived"
                                           " (sequence gaps: exact for v5 and IPFIX; for v9 and sFlow lost"
                                           " packets times the exporter's flows per packet)",
                                           ["namespace", "exporter", "flow_type"], registry=r)
        # ---- enrichment
        self.rdns_lookups = Counter(P + "rdns_lookups", "reverse-DNS lookups by result", ["result"], registry=r)
        self.rdns_cache_size = Gauge(P + "rdns_cache_entries", "reverse-DNS cache entries", registry=r)
        self.rdns_pending = Gauge(P + "rdns_pending", "addresses queued for or in a reverse-DNS lookup",
                                  registry=r)
        self.rdns_wait = Histogram(P + "rdns_flush_wait_seconds", "time a flush waited for reverse-DNS"
                                   " answers", registry=r, buckets=(.001, .01, .05, .1, .25, .5, 1, 2, 5))
        # ---- forwarder
        self.forwarder_requests = Counter(P + "forwarder_requests", "HTTP requests to the backend by status"
                                          " (HTTP code, or error kind)", ["status"], registry=r)
        self.forwarder_flows_sent = Counter(P + "forwarder_flows_sent", "flows the backend accepted",
                                            registry=r)
        self.forwarder_latency = Histogram(P + "forwarder_request_seconds", "backend request duration",
                                           registry=r)
        self.forwarder_queue = Gauge(P + "forwarder_queue_flows", "flows waiting in memory for delivery",
                                     registry=r)
        self.flows_spooled = Counter(P + "flows_spooled", "flows written to the disk spool", registry=r)
        self.spool_bytes = Gauge(P + "spool_bytes", "bytes in the disk spool", registry=r)
        self.spool_files_corrupt = Counter(P + "spool_files_corrupt", "torn or unreadable spool files"
                                           " skipped", registry=r)
        self.forwarder_pending = Gauge(P + "forwarder_flows_pending", "flows handed to the forwarder and not"
                                       " yet sent or dropped (memory, in flight and spool)", registry=r)
        self.forwarder_recovered = Counter(P + "forwarder_flows_recovered", "flows found in the spool at"
                                           " start (handed to an earlier run)", registry=r)
        self.forwarder_backend_up = Gauge(P + "forwarder_backend_up", "0 while the backend is failing past"
                                          " the retry budget, else 1", registry=r)
        self.forwarder_file_flows = Counter(P + "forwarder_file_flows", "flows written to forwarder.file",
                                            registry=r)
        # ---- exporter metadata ([metadata] url)
        self.metadata_requests = Counter(P + "metadata_requests", "exporter metadata POSTs by status (HTTP code,"
                                         " or error kind)", ["status"], registry=r)
        self.metadata_exporters_sent = Counter(P + "metadata_exporters_sent", "exporter entries in metadata"
                                               " requests the backend accepted", registry=r)
        self.metadata_exporters_skipped = Counter(P + "metadata_exporters_skipped", "exporters left out of"
                                                  " metadata because their address is not an IP address",
                                                  registry=r)
        self.limits_hit = Counter(P + "limits_hit", "things refused because a resource cap was reached"
                                  " (sequence_trackers, rollup_entries, ...)", ["limit"], registry=r)
        # ---- liveness
        self.stage_up = Gauge(P + "stage_up", "1 while a pipeline stage runs", ["stage"], registry=r)
        self.log_suppressed = Counter(P + "log_messages_suppressed", "log messages dropped by rate limiting",
                                      ["event"], registry=r)
