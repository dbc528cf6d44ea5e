"""flowpipe convert-config: Datadog Agent netflow YAML -> flowpipe TOML that loads, every Agent key
either carried over or reported on stderr."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowpipe.commands import convert_config as cc
from flowpipe.config import load

FULL = """
hostname: edge-agent-1
api_key: "0123456789abcdef"
network_devices:
  namespace: dc1
  netflow:
    enabled: true
    stop_timeout: 10
    aggregator_buffer_size: 20000
    aggregator_flush_interval: 60
    aggregator_flow_context_ttl: 120
    aggregator_port_rollup_threshold: 20
    aggregator_port_rollup_disabled: false
    aggregator_rollup_tracker_refresh_interval: 600
    aggregator_max_flows_per_flush_interval: 1000
    reverse_dns_enrichment_enabled: true
    prometheus_listener_enabled: true
    prometheus_listener_address: "0.0.0.0:9191"
    listeners:
      - flow_type: netflow9
        port: 2055
        bind_host: "::"
        workers: 2
        mapping:
          - field: 61
            destination: direction
            type: integer
          - field: 1234
            destination: custom_field
          - field: 95
            destination: app_id
            type: bytes
            endianness: little
      - flow_type: netflow5
      - flow_type: ipfix
        port: 0
        namespace: lab
      - flow_type: sflow5
        enable_biflow_parsing: true
    forwarder:
      batch_max_size: 500
      use_compression: false
      logs_dd_url: "intake.example.internal:443"
    drop_flows_before_ep_forwarder: true
    flush_everything_now: yes
reverse_dns_enrichment:
  workers: 5
  chan_size: 2000
  cache:
    entry_ttl: 24h
    max_size: 50000
    persist_interval: 2h
  rate_limiter:
    limit_per_sec: 200
"""


def run(tmp_path: Path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "datadog.yaml"
    src.write_text(text)
    return subprocess.run([sys.executable, "-m", "flowpipe.cli", "convert-config", str(src), *extra],
                          capture_output=True, text=True, timeout=60)


def converted(tmp_path: Path, text: str) -> tuple[dict[str, Any], str]:
    r = run(tmp_path, text)
    assert r.returncode == 0, r.stderr
    return tomllib.loads(r.stdout), r.stderr


@pytest.mark.slow
def test_every_supported_key_is_carried_over_and_the_result_loads(tmp_path: Path) -> None:
    toml, err = converted(tmp_path, FULL)
    assert toml["host"] == "edge-agent-1"
    assert toml["aggregator"] == {"buffer_size": 20000, "flush_interval": 60, "flow_context_ttl": 120,
                                  "port_rollup_threshold": 20, "rollup_tracker_refresh_interval": 600,
                                  "max_flows_per_flush_interval": 1000}
    nf9, ipfix, sflow = toml["listeners"]
    assert (nf9["flow_type"], nf9["port"], nf9["bind_host"], nf9["workers"], nf9["namespace"]) == (
        "netflow9", 2055, "::", 2, "dc1")
    assert nf9["mapping"] == [
        {"field": 61, "destination": "direction", "type": "integer"},
        {"field": 1234, "destination": "custom_field", "type": "hex"},       # Agent: no type = raw bytes
        {"field": 95, "destination": "app_id", "type": "hex", "endianness": "little"},
    ]
    assert ipfix == {"flow_type": "ipfix", "namespace": "lab"}             # port 0 = default
    assert sflow == {"flow_type": "sflow5", "namespace": "dc1"}
    assert toml["reverse_dns"] == {"enabled": True, "concurrency": 5, "max_pending": 2000, "cache_ttl": 86400,
                                   "cache_size": 50000, "rate_limit": 200.0}
    assert toml["forwarder"] == {"max_batch_flows": 500, "compression": "none"}
    assert toml["metrics"] == {"listen": "0.0.0.0:9191"}
    # and flowpipe's own loader takes it, with the Agent's meaning
    path = tmp_path / "flowpipe.toml"
    path.write_text(run(tmp_path, FULL).stdout)
    cfg = load(str(path))
    assert [lst.port for lst in cfg.listeners] == [2055, 4739, 6343]
    assert cfg.aggregator.flow_context_ttl == 120 and cfg.reverse_dns.enabled
    assert cfg.aggregator.max_flows_per_flush_interval == 1000


@pytest.mark.slow
def test_top_n_cap_off_in_the_agent_stays_off(tmp_path: Path) -> None:
    toml, err = converted(tmp_path, "network_devices:\n  netflow:\n    aggregator_max_flows_per_flush_interval: 0\n")
    assert "max_flows_per_flush_interval" not in toml.get("aggregator", {})
    assert "aggregator_max_flows_per_flush_interval" not in err
    assert "[metadata] url" in err  # what to set for the Agent's exporter metadata


@pytest.mark.slow
def test_keys_that_cannot_be_carried_over_are_reported_not_dropped(tmp_path: Path) -> None:
    _, err = converted(tmp_path, FULL)
    expected = {
        "network_devices.netflow.stop_timeout: unsupported",
        "network_devices.netflow.aggregator_max_flows_per_flush_interval: info",  # converted (share-0 ticks differ)
        "network_devices.netflow: info",                                       # exporter metadata needs a url
        "network_devices.netflow.listeners[1]: changed",                       # netflow5 on 2055 twice
        "network_devices.netflow.listeners[0].mapping[2].type: changed",
        "network_devices.netflow.listeners[3].enable_biflow_parsing: unsupported",
        "network_devices.netflow.forwarder.logs_dd_url: unsupported",
        "network_devices.netflow.drop_flows_before_ep_forwarder: unsupported",
        "network_devices.netflow.flush_everything_now: unknown",
        "reverse_dns_enrichment.cache.persist_interval: unsupported",
        "api_key: info",
    }
    for line in expected:
        assert line in err, line
    assert "0123456789abcdef" not in err  # the API key is never echoed


@pytest.mark.slow
def test_every_agent_key_in_the_input_is_accounted_for(tmp_path: Path) -> None:
    """Each leaf key of the netflow section is either in the TOML (named in a comment) or on stderr."""
    r = run(tmp_path, FULL)
    doc = yaml.safe_load(FULL)
    accounted = r.stdout + r.stderr
    nf = doc["network_devices"]["netflow"]
    for key, value in nf.items():
        if key == "listeners":
            for i, lst in enumerate(value):
                for k in lst:
                    if k == "mapping":
                        continue
                    name = f"network_devices.netflow.listeners[{i}]"
                    assert f"{name}.{k}" in accounted or f"{name}:" in accounted or (
                        k == "port" and lst[k] == 0), (i, k)
        elif key in ("enabled", "aggregator_port_rollup_disabled"):
            continue  # the defaults: nothing to write, nothing lost
        else:
            assert f"network_devices.netflow.{key}" in accounted, key


@pytest.mark.slow
def test_minimal_agent_config(tmp_path: Path) -> None:
    toml, err = converted(tmp_path, "network_devices:\n  netflow:\n    enabled: true\n    listeners:\n"
                                    "      - flow_type: netflow5\n")
    assert toml["listeners"] == [{"flow_type": "netflow5"}]
    assert "host" not in toml and "aggregator" not in toml
    assert "prometheus_listener_enabled: info" in err


@pytest.mark.slow
def test_zero_means_default_as_in_the_agent(tmp_path: Path) -> None:
    text = ("network_devices:\n  netflow:\n    aggregator_flush_interval: 0\n    aggregator_buffer_size: 0\n"
            "    aggregator_port_rollup_threshold: 0\n    listeners:\n      - flow_type: ipfix\n        port: 0\n"
            "        workers: 0\n")
    toml, _ = converted(tmp_path, text)
    assert "aggregator" not in toml
    assert toml["listeners"] == [{"flow_type": "ipfix"}]


@pytest.mark.slow
def test_no_listeners_keeps_flowpipes_defaults_and_says_so(tmp_path: Path) -> None:
    toml, err = converted(tmp_path, "network_devices:\n  netflow:\n    enabled: false\n")
    assert "listeners" not in toml
    assert "enabled: info" in err
    r = run(tmp_path, "network_devices:\n  netflow:\n    listeners: []\n")
    assert "default listeners apply" in r.stderr


@pytest.mark.slow
def test_rdns_settings_without_enabling_it_are_noted(tmp_path: Path) -> None:
    toml, err = converted(tmp_path, "network_devices:\n  netflow:\n    listeners:\n      - flow_type: netflow9\n"
                                    "reverse_dns_enrichment:\n  cache:\n    max_size: 10\n")
    assert toml["reverse_dns"] == {"cache_size": 10}
    assert "reverse DNS stays off" in err


@pytest.mark.slow
def test_strict_fails_on_unconverted_keys(tmp_path: Path) -> None:
    assert run(tmp_path, FULL, "--strict").returncode == 1
    ok = "network_devices:\n  netflow:\n    listeners:\n      - flow_type: sflow5\n"
    assert run(tmp_path, ok, "--strict").returncode == 0


@pytest.mark.slow
def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "out.toml"
    r = run(tmp_path, FULL, "-o", str(out))
    assert r.returncode == 0 and r.stdout == ""
    assert load(str(out)).host == "edge-agent-1"


@pytest.mark.slow
@pytest.mark.parametrize(("text", "message"), [
    ("api_key: x\n", "no network_devices: netflow: section"),
    ("network_devices:\n  netflow: [1]\n", "no network_devices: netflow: section"),
    ("- just\n- a list\n", "not a YAML mapping"),
    ("network_devices:\n  netflow:\n    listeners: {a: 1}\n", "must be a list"),
    ("network_devices: {netflow: {listeners: [{port: 9}]}}\n", "listeners[0].flow_type: is required"),
    ("network_devices: {netflow: {aggregator_flush_interval: soon}}\n", "must be a number"),
    ("network_devices: [\n", "not valid YAML"),
])
def test_bad_input_exits_2_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    r = run(tmp_path, text)
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr


@pytest.mark.slow
def test_an_invalid_result_names_the_agent_key(tmp_path: Path) -> None:
    r = run(tmp_path, "network_devices:\n  netflow:\n    listeners:\n      - flow_type: netflow10\n")
    assert r.returncode == 2 and r.stdout == ""
    assert "listeners[0].flow_type" in r.stderr and "(from network_devices.netflow.listeners[0].flow_type)" in r.stderr
    r = run(tmp_path, "network_devices:\n  netflow:\n    aggregator_flush_interval: -5\n")
    assert r.returncode == 2 and "aggregator.flush_interval" in r.stderr


def test_missing_file(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "flowpipe.cli", "convert-config", str(tmp_path / "nope.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_stdin() -> None:
    r = subprocess.run([sys.executable, "-m", "flowpipe.cli", "convert-config", "-"], capture_output=True,
                       text=True, timeout=60, input="network_devices:\n  netflow:\n    listeners:\n"
                                                   "      - flow_type: ipfix\n        port: 4740\n")
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(r.stdout)["listeners"] == [{"flow_type": "ipfix", "port": 4740}]


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("1h30m", 5400), ("90s", 90), ("500ms", 0.5),
                                               ("1.5h", 5400)])
def test_go_durations(text: str, seconds: float) -> None:
    assert cc.go_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "1d", "5 m"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        cc.go_duration(text)


def test_the_migration_doc_lists_every_agent_key_the_converter_knows() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "datadog-migration.md").read_text()
    keys = [*cc.AGGREGATOR_KEYS, *cc.NO_EQUIVALENT, *cc.PERF_BRANCH_KEYS, *cc.LISTENER_KEYS, *cc.MAPPING_KEYS,
            *cc.RDNS_KEYS, *cc.RDNS_IGNORED, *cc.FORWARDER_KEYS, "aggregator_port_rollup_disabled",
            "reverse_dns_enrichment_enabled", "prometheus_listener_enabled", "prometheus_listener_address",
            "enable_biflow_parsing", "use_compression", "enabled"]
    missing = [k for k in keys if f"`{k}`" not in doc]
    assert not missing, missing
