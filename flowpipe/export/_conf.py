"""Exporter configuration: an INI-style file, compatible with the DOCA NetFlow exporter's conf file.

A file holds one section, ``[doca_netflow_conf]`` (accepted as is) or ``[exporter]``, or plain
``key = value`` lines::

    [doca_netflow_conf]
    target = collector.example:2055
    source_id = 5
    version = 9

``version`` is 5, 9, 10 (IPFIX) or a protocol name (netflow5, netflow9, ipfix, sflow5). The
optional tuning keys are the :class:`ExporterConfig` attributes below. Unknown keys are errors.
"""
from __future__ import annotations

import configparser
import difflib
import os
from pathlib import Path
from typing import Any

import attrs

from flowpipe.export._errors import ConfigError, TargetError

#: Read when neither a file nor a target is given; ``$FLOWPIPE_EXPORTER_CONF`` overrides it.
DEFAULT_PATH = "/etc/flowpipe/exporter.conf"
ENV_VAR = "FLOWPIPE_EXPORTER_CONF"
SECTIONS = ("doca_netflow_conf", "exporter")
PROTOCOLS = ("netflow5", "netflow9", "ipfix", "sflow5")
DEFAULT_PORTS = {"netflow5": 2055, "netflow9": 2055, "ipfix": 4739, "sflow5": 6343}
_PROTOCOL_ALIASES = {
    "5": "netflow5", "v5": "netflow5", "netflow5": "netflow5",
    "9": "netflow9", "v9": "netflow9", "netflow9": "netflow9",
    "10": "ipfix", "v10": "ipfix", "ipfix": "ipfix",
    "sflow": "sflow5", "sflow5": "sflow5", "sflow-v5": "sflow5",
}


@attrs.frozen
class ExporterConfig:
    """Everything an exporter is configured with (file keys have the same names)."""

    target: str | None = None
    source_id: int = 0               # v9 source id, IPFIX observation domain, sFlow sub-agent, v5 engine type<<8|id
    version: str = "netflow9"        # protocol
    records_per_packet: int = 30     # upper bound; the MTU may lower it
    template_refresh_packets: int = 20  # resend templates after this many data packets
    template_refresh_seconds: float = 30.0  # ... and after this long
    mtu: int = 1500                  # path MTU; datagrams stay within it
    sampling_rate: int = 1           # sFlow sampling rate, v5 header sampling interval (1 = unsampled)
    agent: str | None = None         # sFlow agent address [the local address toward the target]


_INT_KEYS = {"source_id", "records_per_packet", "template_refresh_packets", "mtu", "sampling_rate"}
_KEYS = [a.name for a in attrs.fields(ExporterConfig)]


def parse_protocol(value: Any) -> str:
    """A canonical protocol name from 5, 9, 10, "ipfix", "sflow5", ...; ConfigError otherwise."""
    name = _PROTOCOL_ALIASES.get(str(value).strip().lower())
    if name is None:
        raise ConfigError(f"unknown protocol version {value!r}: use 5, 9, 10 (ipfix) or sflow5")
    return name


def parse_target(text: str, default_port: int) -> tuple[str, int]:
    """(host, port) from ``host:port``, ``[v6addr]:port``, a bare IPv6 address or a host alone."""
    text = text.strip()
    host, port = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise TargetError(f"bad target {text!r}: expected [IPv6]:port")
        host, port = text[1:end], text[end + 2:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise TargetError(f"bad target {text!r}: no host")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"bad target {text!r}: port {port!r} is not 1..65535")
    return host, int(port)


def default_path() -> str:
    """The conf file read when none is given: ``$FLOWPIPE_EXPORTER_CONF`` or :data:`DEFAULT_PATH`."""
    return os.environ.get(ENV_VAR) or DEFAULT_PATH


def load_config(path: str | os.PathLike[str] | None = None) -> ExporterConfig:
    """Read an exporter conf file (``path`` or :func:`default_path`); ConfigError naming file and key."""
    p = Path(path if path is not None else default_path())
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read exporter config: {e.strerror or e}") from None
    return parse_config(text, str(p))


def parse_config(text: str, where: str = "<config>") -> ExporterConfig:
    """An :class:`ExporterConfig` from conf file text."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(text, where)
    except configparser.MissingSectionHeaderError:
        parser.read_string("[exporter]\n" + text, where)
    except configparser.Error as e:
        raise ConfigError(f"{where}: {e}") from None
    sections = parser.sections()
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or len(sections) > 1:
        raise ConfigError(f"{where}: expected one section [{SECTIONS[0]}] or [{SECTIONS[1]}], found {sections}")
    values: dict[str, Any] = {}
    for key, raw in (parser.items(sections[0]) if sections else []):
        values[key] = _value(key, raw, where)
    return ExporterConfig(**values)


def _value(key: str, raw: str, where: str) -> Any:
    if key not in _KEYS:
        near = difflib.get_close_matches(key, _KEYS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    raw = raw.strip()
    try:
        if key == "version":
            return parse_protocol(raw)
        if key in _INT_KEYS:
            return int(raw, 0)
        if key == "template_refresh_seconds":
            return float(raw)
    except (ValueError, ConfigError) as e:
        raise ConfigError(f"{where}: key {key!r}: {e}") from None
    return raw or None
