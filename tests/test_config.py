"""Config: contract defaults, strict validation with file/key/reason, check-config output, docs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowpipe import config, docgen
from flowpipe.config import ConfigError, load
from tests.support import ROOT


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "flowpipe.toml"
    p.write_text(text)
    return str(p)


def test_defaults_follow_the_contract() -> None:
    c = load(None)
    assert [(lst.flow_type, lst.port, lst.bind_host) for lst in c.listeners] == [
        ("netflow9", 2055, "0.0.0.0"), ("ipfix", 4739, "0.0.0.0"), ("sflow5", 6343, "0.0.0.0")]
    a = c.aggregator
    assert (a.flush_interval, a.flow_context_ttl, a.flush_tick, a.buffer_size, a.port_rollup_threshold,
            a.port_rollup_disabled, a.rollup_tracker_refresh_interval) == (300, 300, 10, 10000, 10, False, 300)
    f = c.forwarder
    assert (f.url, f.format, f.compression, f.max_batch_flows, f.timeout, f.headers) == ("", "json", "gzip",
                                                                                         10000, 10, {})
    r = c.reverse_dns
    assert (r.enabled, r.nameservers, r.timeout, r.private_only, r.cache_ttl, r.cache_size) == (
        False, [], 1.0, True, 3600, 100000)
    assert c.metrics.listen == "0.0.0.0:9090" and c.host


def test_derived_defaults(tmp_path: Path) -> None:
    c = load(write(tmp_path, "[aggregator]\nflush_interval = 4\n[[listeners]]\nflow_type = \"netflow5\"\n"))
    assert (c.aggregator.flow_context_ttl, c.aggregator.flush_tick) == (4, 4)
    assert c.listeners[0].port == 2055 and len(c.listeners) == 1


def test_full_contract_example_loads(tmp_path: Path) -> None:
    text = """
host = "node-1"
[[listeners]]
flow_type = "netflow9"
bind_host = "::"
port = 2055
workers = 2
namespace = "dc1"
  [[listeners.mapping]]
  field = 61
  destination = "direction"
  type = "integer"
  endianness = "big"
  [[listeners.mapping]]
  field = "29305:1"
  destination = "reverse_octets"
[aggregator]
flush_interval = 300
flow_context_ttl = 300
flush_tick = 10
buffer_size = 10000
port_rollup_threshold = 10
port_rollup_disabled = false
rollup_tracker_refresh_interval = 300
[reverse_dns]
enabled = true
nameservers = ["127.0.0.1:5353"]
timeout = 1.0
private_only = true
cache_ttl = 3600
cache_size = 100000
[forwarder]
url = "http://127.0.0.1:8080/api"
format = "msgpack"
compression = "none"
max_batch_flows = 500
timeout = 10.0
headers = {"DD-API-KEY" = "k"}
[metrics]
listen = "127.0.0.1:9090"
"""
    c = load(write(tmp_path, text))
    assert c.listeners[0].mapping[1].element == (29305, 1)
    assert c.forwarder.format == "msgpack" and c.reverse_dns.nameservers == ["127.0.0.1:5353"]


@pytest.mark.parametrize("text, key, words", [
    ("[aggregator]\nflush_intervall = 3\n", "aggregator.flush_intervall", "did you mean 'flush_interval'"),
    ("bogus = 1\n", "bogus", "unknown key"),
    ("[[listeners]]\nflow_type = \"netflow7\"\n", "listeners[0].flow_type", "must be one of"),
    ("[[listeners]]\nport = 2055\n", "listeners[0].flow_type", "is required"),
    ("[aggregator]\nflush_interval = -1\n", "aggregator.flush_interval", "greater than 0"),
    ("[aggregator]\nflush_interval = \"5m\"\n", "aggregator.flush_interval", "number of seconds"),
    ("[forwarder]\nformat = \"xml\"\n", "forwarder.format", "must be one of"),
    ("[forwarder]\nurl = \"ftp://x\"\n", "forwarder.url", "http"),
    ("[forwarder]\ntls_ca_file = \"/nonexistent/ca.pem\"\n", "forwarder.tls_ca_file", "no such file"),
    ("[forwarder]\ntls_ca_file = \"/\"\n", "forwarder.tls_ca_file", "not a regular file"),
    ("[metrics]\nlisten = \"9090\"\n", "metrics.listen", "host:port"),
    ("[[listeners]]\nflow_type = \"ipfix\"\nport = 70000\n", "listeners[0].port", "port"),
    ("[[listeners]]\nflow_type = \"ipfix\"\nbind_host = \"nowhere\"\n", "listeners[0].bind_host", "not an IP"),
    ("[[listeners]]\nflow_type = \"ipfix\"\n[[listeners.mapping]]\nfield = \"x:y\"\ndestination = \"a\"\n",
     "listeners[0].mapping[0].field", "element id"),
    ("[[listeners]]\nflow_type = \"netflow5\"\n[[listeners]]\nflow_type = \"netflow9\"\n", "listeners", "another port"),
    ("[aggregator\n", "", "not valid TOML"),
])
def test_bad_config_names_file_key_and_reason(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert e.value.file == path and e.value.key == key and words in e.value.reason


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load("/nonexistent/flowpipe.toml")


@pytest.mark.slow
def test_check_config_command(tmp_path: Path) -> None:
    good = write(tmp_path, "[forwarder]\nheaders = {\"DD-API-KEY\" = \"s3cret\", \"X-Team\" = \"net\"}\n")
    r = subprocess.run([sys.executable, "-m", "flowpipe.cli", "check-config", good], capture_output=True, text=True)
    assert r.returncode == 0
    assert "s3cret" not in r.stdout and '"X-Team" = "net"' in r.stdout  # secrets masked, rest shown
    again = tmp_path / "again.toml"
    again.write_text(r.stdout.replace('"***"', '"x"'))
    assert load(str(again)).forwarder.headers["X-Team"] == "net"  # the output is a valid config
    (tmp_path / "bad.toml").write_text("[aggregator]\nflush_tick = 0\n")
    r = subprocess.run([sys.executable, "-m", "flowpipe.cli", "check-config", str(tmp_path / "bad.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "bad.toml: aggregator.flush_tick: must be greater than 0" in r.stderr


def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path, "[metrics]\nlisten = 12\n")
    r = subprocess.run([sys.executable, "-m", "flowpipe.cli", "run", "--config", bad], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "metrics.listen" in r.stderr


def test_configuration_reference_is_generated_and_covers_every_key() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == docgen.render(), "run: python -m flowpipe.docgen > docs/configuration.md"
    import attrs
    for cls in config.sections().values():
        for f in attrs.fields(cls):
            if cls is config.Config and f.name != "host":
                continue  # sections, each documented under its own heading
            assert f"`{f.name}`" in doc
