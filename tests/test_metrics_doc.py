"""docs/metrics.md is generated from the registry, is current, and documents every metric a running
flowpipe serves (including the sFlow interface counters an sFlow listener adds)."""
from __future__ import annotations

import re
import sys

import pytest
import trio

from flowpipe import metricsdoc
from flowpipe.config import ListenerConfig
from tests.support import ROOT
from tests.support.backend import Backend
from tests.support.service_helpers import http_get, make_config, running

DOC = ROOT / "docs" / "metrics.md"

# The metrics the contract (shared/spec/contract.md) promises, by their scraped names.
CONTRACT = [
    "flowpipe_datagrams_received_total", "flowpipe_datagrams_decoded_total", "flowpipe_datagrams_invalid_total",
    "flowpipe_datagrams_held", "flowpipe_datagrams_dropped_total", "flowpipe_flows_decoded_total",
    "flowpipe_flows_dropped_total", "flowpipe_aggregator_contexts", "flowpipe_flows_flushed_total",
    "flowpipe_sequence_delta_total", "flowpipe_sequence_reset_total", "flowpipe_rdns_lookups_total",
    "flowpipe_forwarder_requests_total", "flowpipe_forwarder_flows_sent_total",
    "flowpipe_flows_lost_estimate_total", "flowpipe_socket_drops_total",
]


def documented() -> set[str]:
    """Metric names in the first column of the doc's tables."""
    names: set[str] = set()
    for line in DOC.read_text().splitlines():
        if line.startswith("| `flowpipe_"):
            names |= set(re.findall(r"`(flowpipe_[a-z0-9_]+)`", line.split("|")[1]))
    return names


def test_committed_doc_is_current() -> None:
    assert DOC.read_text() == metricsdoc.render(), "run: python -m flowpipe.metricsdoc > docs/metrics.md"


def test_every_registered_family_is_documented_with_its_labels() -> None:
    text = DOC.read_text()
    for fam in metricsdoc.families():
        for name in metricsdoc.exposed_names(fam):
            assert f"`{name}`" in text, name
        first = metricsdoc.exposed_names(fam)[0]
        row = next(line for line in text.splitlines() if line.startswith(f"| `{first}`"))
        for label in fam.labels:
            assert f"`{label}`" in row, (fam.name, label)
        assert fam.help, f"{fam.name} has no help text"


def test_notes_name_existing_metrics() -> None:
    names = {f.name for f in metricsdoc.families()}
    stale = set(metricsdoc.NOTES) - names
    assert not stale, f"notes for metrics that no longer exist: {sorted(stale)}"


def test_contract_metrics_exist_and_are_documented() -> None:
    exposed = {n for f in metricsdoc.families() for n in metricsdoc.exposed_names(f)}
    for name in CONTRACT:
        assert name in exposed, name
    assert set(CONTRACT) <= documented()


async def _generate(port: int, protocol: str) -> None:
    await trio.run_process([sys.executable, "-m", "flowpipe.cli", "generate", "--target", f"127.0.0.1:{port}",
                            "--protocol", protocol, "--flows", "200", "--seed", "7"], capture_stdout=True)


@pytest.mark.slow
async def test_everything_a_running_flowpipe_serves_is_documented() -> None:
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9"}],
                          aggregator={"flush_interval": 0.5, "flush_tick": 0.1})
        sflow = ListenerConfig(flow_type="sflow5", bind_host="127.0.0.1")
        sflow.port = 0  # any free port, like make_config's (which checks ports before zeroing them)
        cfg.listeners.append(sflow)
        async with running(cfg) as svc:
            await _generate(svc.listeners[0].cfg.port, "netflow9")
            await _generate(svc.listeners[1].cfg.port, "sflow5")
            assert await be.wait_flows_async(1, 10)
            url = f"http://127.0.0.1:{svc.metrics_server.port}/metrics"
            status, body = await trio.to_thread.run_sync(http_get, url)
    assert status == 200
    families = set(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    assert any(n.startswith("flowpipe_sflow_interface_") for n, _ in families), "sFlow counters not exercised"
    docs = documented()
    missing = []
    names = {n for n, _ in families}
    for name, kind in families:
        base = name.removesuffix("_created")
        if base != name and ({base + "_total", base} & names):
            continue  # the creation time prometheus_client adds to every counter and histogram
        shown = name + "_bucket" if kind == "histogram" else name
        if shown not in docs:
            missing.append(shown)
    assert not missing, f"served but not in docs/metrics.md: {sorted(missing)}"
