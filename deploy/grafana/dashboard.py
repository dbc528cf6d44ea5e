"""Write the Grafana dashboard deploy/grafana/flowpipe.json (``python deploy/grafana/dashboard.py``).

The JSON is generated so its panels stay regular; tests/test_deploy.py checks that the committed
file matches this script and that every metric a panel queries is served by a running flowpipe.
Every query is filtered by the dashboard's ``instance`` variable.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
I = 'instance=~"$instance"'  # noqa: E741 - every selector's instance filter
RI = "$__rate_interval"

# (row title, [(panel title, unit, description, [(expr, legend)], kind)])
Panel = tuple[str, str, str, list[tuple[str, str]], str]
ROWS: list[tuple[str, list[Panel]]] = [
    ("Intake", [
        ("Health", "none", "1 when every pipeline stage runs (/healthz is 200); 0 names a stopped stage.",
         [(f"min by (instance) (flowpipe_stage_up{{{I}}})", "{{instance}}")], "stat"),
        ("Datagrams/s per listener", "pps", "UDP datagrams received, by the listener's flow type.",
         [(f"sum by (flow_type) (rate(flowpipe_datagrams_received_total{{{I}}}[{RI}]))", "{{flow_type}}")],
         "timeseries"),
        ("Datagrams/s per exporter", "pps",
         "Export progress per exporter from its sequence numbers: datagrams/s for NetFlow v9 and sFlow, "
         "flows/s for NetFlow v5, records/s for IPFIX (the protocol's own unit).",
         [(f"sum by (exporter, flow_type) (rate(flowpipe_sequence_delta_total{{{I}}}[{RI}]))",
           "{{exporter}} {{flow_type}}")], "timeseries"),
        ("Flows decoded/s", "ops", "Flow records decoded, by listener flow type.",
         [(f"sum by (flow_type) (rate(flowpipe_flows_decoded_total{{{I}}}[{RI}]))", "{{flow_type}}")],
         "timeseries"),
        ("Kernel drops/s", "pps",
         "Datagrams the kernel dropped on a full socket buffer (raise net.core.rmem_max and receive_buffer).",
         [(f"sum by (listener) (rate(flowpipe_socket_drops_total{{{I}}}[{RI}]))", "{{listener}}")],
         "timeseries"),
    ]),
    ("Decoding", [
        ("Decode errors/s", "pps", "Datagrams that could not be decoded, by reason.",
         [(f"sum by (flow_type, reason) (rate(flowpipe_datagrams_invalid_total{{{I}}}[{RI}]))",
           "{{flow_type}} {{reason}}")], "timeseries"),
        ("Datagrams dropped/s", "pps", "Dropped before or while decoding (queue full, template never came, ...).",
         [(f"sum by (reason) (rate(flowpipe_datagrams_dropped_total{{{I}}}[{RI}]))", "{{reason}}")],
         "timeseries"),
        ("Waiting for templates", "none", "Datagrams held until their v9/IPFIX template arrives; templates known.",
         [(f"sum(flowpipe_datagrams_held{{{I}}})", "held datagrams"),
          (f"sum(flowpipe_templates{{{I}}})", "templates")], "timeseries"),
        ("Parts skipped/s", "ops", "Flowsets, samples or records skipped inside decoded datagrams.",
         [(f"sum by (flow_type, reason) (rate(flowpipe_decode_parts_skipped_total{{{I}}}[{RI}]))",
           "{{flow_type}} {{reason}}")], "timeseries"),
    ]),
    ("Aggregation", [
        ("Flow contexts", "none", "Flow contexts held (memory follows this) and port-rollup tracker keys.",
         [(f"sum(flowpipe_aggregator_contexts{{{I}}})", "contexts"),
          (f"sum by (generation) (flowpipe_port_rollup_entries{{{I}}})", "rollup {{generation}}")],
         "timeseries"),
        ("Flush sizes", "ops", "Aggregated flows emitted per second, and flows per backend request.",
         [(f"sum(rate(flowpipe_flows_flushed_total{{{I}}}[{RI}]))", "flows flushed/s"),
          (f"sum(rate(flowpipe_forwarder_flows_sent_total{{{I}}}[{RI}])) / "
           f"sum(rate(flowpipe_forwarder_requests_total{{{I},status=~\"2..\"}}[{RI}]))", "flows per request")],
         "timeseries"),
        ("Flush duration", "s", "Time to gather one tick's due contexts (p50, p99).",
         [(f"histogram_quantile(0.5, sum by (le) (rate(flowpipe_flush_duration_seconds_bucket{{{I}}}[{RI}])))",
           "p50"),
          (f"histogram_quantile(0.99, sum by (le) (rate(flowpipe_flush_duration_seconds_bucket{{{I}}}[{RI}])))",
           "p99")], "timeseries"),
        ("Flows dropped/s", "ops", "Flows lost after decoding, by stage and reason.",
         [(f"sum by (stage, reason) (rate(flowpipe_flows_dropped_total{{{I}}}[{RI}]))", "{{stage}} {{reason}}")],
         "timeseries"),
    ]),
    ("Exporters", [
        ("Lost flows/s (sequence gaps)", "ops", "Flows exporters sent that never arrived, estimated from "
                                                "sequence numbers.",
         [(f"sum by (exporter, flow_type) (rate(flowpipe_flows_lost_estimate_total{{{I}}}[{RI}]))",
           "{{exporter}} {{flow_type}}")], "timeseries"),
        ("Sequence resets", "none", "Exporter restarts or large jumps back, in the time range.",
         [(f"sum by (exporter, flow_type) (increase(flowpipe_sequence_reset_total{{{I}}}[$__range]))",
           "{{exporter}} {{flow_type}}")], "bargauge"),
        ("Flows without a sampling rate/s", "ops", "Flows decoded with no known sampling rate, by exporter.",
         [(f"sum by (exporter) (rate(flowpipe_flows_unknown_sampling_total{{{I}}}[{RI}]))", "{{exporter}}")],
         "timeseries"),
    ]),
    ("Forwarder", [
        ("Backend latency", "s", "Backend request duration (p50, p99).",
         [(f"histogram_quantile(0.5, sum by (le) (rate(flowpipe_forwarder_request_seconds_bucket{{{I}}}[{RI}])))",
           "p50"),
          (f"histogram_quantile(0.99, sum by (le) (rate(flowpipe_forwarder_request_seconds_bucket{{{I}}}[{RI}])))",
           "p99")], "timeseries"),
        ("Backend requests/s", "reqps", "Requests by status: HTTP code, or an error kind (timeout, ...).",
         [(f"sum by (status) (rate(flowpipe_forwarder_requests_total{{{I}}}[{RI}]))", "{{status}}")],
         "timeseries"),
        ("Backend errors/s", "reqps", "Requests that did not get a 2xx.",
         [(f"sum by (status) (rate(flowpipe_forwarder_requests_total{{{I},status!~\"2..\"}}[{RI}]))",
           "{{status}}")], "timeseries"),
        ("Backend up", "none", "0 while the backend fails past the retry budget.",
         [(f"min by (instance) (flowpipe_forwarder_backend_up{{{I}}})", "{{instance}}")], "stat"),
        ("Pending and spooled flows", "none", "Flows waiting in memory, pending in all (memory, in flight, spool).",
         [(f"sum(flowpipe_forwarder_queue_flows{{{I}}})", "in memory"),
          (f"sum(flowpipe_forwarder_flows_pending{{{I}}})", "pending"),
          (f"sum(rate(flowpipe_flows_spooled_total{{{I}}}[{RI}]))", "spooled/s")], "timeseries"),
        ("Spool size", "bytes", "Bytes in the disk spool.",
         [(f"sum by (instance) (flowpipe_spool_bytes{{{I}}})", "{{instance}}")], "timeseries"),
    ]),
    ("Reverse DNS", [
        ("rDNS cache", "none", "Cache entries and addresses waiting for a lookup.",
         [(f"sum(flowpipe_rdns_cache_entries{{{I}}})", "cache entries"),
          (f"sum(flowpipe_rdns_pending{{{I}}})", "pending")], "timeseries"),
        ("rDNS lookups/s", "ops", "Lookups by result (cache hits, answers, failures).",
         [(f"sum by (result) (rate(flowpipe_rdns_lookups_total{{{I}}}[{RI}]))", "{{result}}")], "timeseries"),
        ("rDNS flush wait", "s", "How long a flush waited for lookups (p99).",
         [(f"histogram_quantile(0.99, sum by (le) (rate(flowpipe_rdns_flush_wait_seconds_bucket{{{I}}}[{RI}])))",
           "p99")], "timeseries"),
    ]),
]


def panel(pid: int, title: str, unit: str, description: str, targets: list[tuple[str, str]], kind: str,
          x: int, y: int, w: int) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": pid, "type": kind, "title": title, "description": description, "datasource": DS,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    elif kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
        p["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}
    return p


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row_title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        x = 0
        for title, unit, description, targets, kind in row:
            w = 4 if kind == "stat" else 8
            if x + w > 24:
                x, y = 0, y + 8
            panels.append(panel(pid, title, unit, description, targets, kind, x, y, w))
            pid, x = pid + 1, x + w
        y += 8
    return {
        "uid": "flowpipe", "title": "flowpipe", "tags": ["flowpipe", "netflow"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"}, "graphTooltip": 1,
        "description": "flowpipe's own metrics (docs/metrics.md): intake, decoding, aggregation, exporters, "
                       "delivery, reverse DNS.",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
             "query": {"query": "label_values(flowpipe_stage_up, instance)", "refId": "instance"},
             "definition": "label_values(flowpipe_stage_up, instance)", "refresh": 2, "includeAll": True,
             "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    out = Path(__file__).with_name("flowpipe.json")
    if sys.argv[1:] == ["--check"]:
        return 0 if out.read_text() == render() else 1
    out.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
