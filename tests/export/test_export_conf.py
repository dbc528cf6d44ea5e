"""Exporter conf files (DOCA-compatible INI), protocol names and target parsing (as the Exporter reads them)."""
from __future__ import annotations

from pathlib import Path

import pytest

from flowpipe.export import ConfigError, Exporter, ExporterConfig, TargetError, load_config, parse_config


def test_doca_conf_file_is_read_as_is(tmp_path: Path) -> None:
    p = tmp_path / "doca.conf"
    p.write_text("[doca_netflow_conf]\ntarget = 10.1.2.3:2055\nsource_id = 5\nversion = 9\n")
    assert load_config(p) == ExporterConfig(target="10.1.2.3:2055", source_id=5, version="netflow9")


def test_own_section_tuning_keys_comments_and_no_section() -> None:
    cfg = parse_config("# exporter\n[exporter]\ntarget = [2001:db8::1]:4739 ; collector\nversion = ipfix\n"
                       "records_per_packet = 10\ntemplate_refresh_packets = 5\ntemplate_refresh_seconds = 2.5\n"
                       "mtu = 9000\nsampling_rate = 0x10\nagent = 192.0.2.1\n")
    assert cfg == ExporterConfig("[2001:db8::1]:4739", 0, "ipfix", 10, 5, 2.5, 9000, 16, "192.0.2.1")
    assert parse_config("target = h:1\nversion = sflow5\n") == ExporterConfig(target="h:1", version="sflow5")


@pytest.mark.parametrize("text, message", [
    ("[exporter]\ntraget = h:1\n", "unknown key 'traget' \\(did you mean 'target'\\?\\)"),
    ("[exporter]\nsource_id = five\n", "key 'source_id'"),
    ("[exporter]\nversion = 8\n", "unknown protocol version '8'"),
    ("[collector]\ntarget = h:1\n", "expected one section"),
    ("[exporter]\ntarget = h:1\n[doca_netflow_conf]\ntarget = h:2\n", "expected one section"),
    ("[exporter]\ntarget = h:1\ntarget = h:2\n", "option 'target'"),
])
def test_bad_conf_files_name_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(text, "/etc/x.conf")
    assert "/etc/x.conf" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.conf: cannot read"):
        load_config(tmp_path / "nope.conf")


@pytest.mark.parametrize("value, name", [
    (5, "netflow5"), ("9", "netflow9"), (10, "ipfix"), ("IPFIX", "ipfix"), ("v9", "netflow9"),
    ("sflow", "sflow5"), ("sflow5", "sflow5"), ("netflow5", "netflow5"),
])
def test_protocol_names(value: object, name: str) -> None:
    assert parse_config(f"version = {value}\n").version == name
    assert Exporter("127.0.0.1", protocol=value).protocol == name  # type: ignore[arg-type]


def test_unknown_protocol_argument() -> None:
    with pytest.raises(ConfigError, match="unknown protocol version 8"):
        Exporter("127.0.0.1", protocol=8)


@pytest.mark.parametrize("text, expected", [
    ("localhost:2055", ("localhost", 2055)),
    ("192.0.2.1:9995", ("192.0.2.1", 9995)),
    ("[2001:db8::1]:4739", ("2001:db8::1", 4739)),
    ("2001:db8::1", ("2001:db8::1", 4739)),
    ("[2001:db8::1]", ("2001:db8::1", 4739)),
    ("localhost", ("localhost", 4739)),
])
def test_targets(text: str, expected: tuple[str, int]) -> None:
    e = Exporter(text, protocol="ipfix")  # IPFIX's default port: 4739
    assert (e.host, e.port) == expected


@pytest.mark.parametrize("text", ["h:0", "h:65536", "h:x", "[::1]x", ""])
def test_bad_targets(text: str) -> None:
    with pytest.raises(TargetError):
        Exporter(text)
