"""``flowpipe convert-config datadog.yaml``: a Datadog Agent NetFlow config as flowpipe TOML.

Reads the ``network_devices: netflow:`` section of a ``datadog.yaml`` (plus the few keys outside it
that change what NetFlow emits: ``hostname``, ``network_devices.namespace`` and
``reverse_dns_enrichment``), writes the equivalent flowpipe config, loads it with
:func:`flowpipe.config.load` before printing it, and reports on stderr every Agent key it could
not carry over (unknown, unsupported or without an equivalent), never dropping one silently.
``docs/datadog-migration.md`` explains each mapping.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flowpipe.commands import add
from flowpipe.config import DEFAULT_PORTS, ConfigError, _toml_value, load

# Agent network_devices.netflow keys -> (flowpipe section, key). "Zero means default" in the
# Agent, so a 0 there leaves flowpipe's default (which is the Agent's default too).
AGGREGATOR_KEYS = {
    "aggregator_buffer_size": "buffer_size",
    "aggregator_flush_interval": "flush_interval",
    "aggregator_flow_context_ttl": "flow_context_ttl",
    "aggregator_port_rollup_threshold": "port_rollup_threshold",
    "aggregator_rollup_tracker_refresh_interval": "rollup_tracker_refresh_interval",
}
NO_EQUIVALENT = {
    "stop_timeout": "flowpipe closes its listeners at once on SIGTERM; what bounds a stop is "
                    "forwarder.stop_timeout (final delivery), which is a different setting",
}
TOP_N_NOTE = ("converted to aggregator.max_flows_per_flush_interval (same per-tick budgets, largest flows by bytes "
              "kept, the same random first emission of new contexts); a tick whose share is 0 (a cap below "
              "flush_interval / 10 s) emits nothing where the Agent then sends everything")
METADATA_NOTE = ("the Agent sends the exporters it sees to Datadog as device metadata; flowpipe POSTs them only "
                 "when [metadata] url is set (with [forwarder] headers)")
PERF_BRANCH_KEYS = ("drop_flows_before_ep_forwarder", "skip_hash_collision_detection", "aggregator_use_value_map",
                    "aggregation_hash_use_sync_pool", "portrollup_use_fixed_size_key")
LISTENER_KEYS = ("flow_type", "port", "bind_host", "workers", "namespace", "mapping")
MAPPING_KEYS = ("field", "destination", "type", "endianness")
# reverse_dns_enrichment.* (shared by NetFlow and Network Path in the Agent) -> [reverse_dns]
RDNS_KEYS = {
    "workers": "concurrency",
    "chan_size": "max_pending",
    "cache.entry_ttl": "cache_ttl",
    "cache.max_size": "cache_size",
    "rate_limiter.limit_per_sec": "rate_limit",
}
RDNS_IGNORED = {
    "cache.enabled": "flowpipe always caches lookups",
    "cache.clean_interval": "flowpipe expires cache entries as they are used",
    "cache.persist_interval": "flowpipe does not persist the rDNS cache",
    "cache.max_retries": "flowpipe does not retry a failed lookup before reverse_dns.failure_cache_ttl",
    "rate_limiter.enabled": "flowpipe always applies reverse_dns.rate_limit",
    "rate_limiter.limit_throttled_per_sec": "flowpipe does not throttle on errors",
    "rate_limiter.throttle_error_threshold": "flowpipe does not throttle on errors",
    "rate_limiter.recovery_interval": "flowpipe does not throttle on errors",
    "rate_limiter.recovery_intervals": "flowpipe does not throttle on errors",
}
# Logs-style forwarder keys that have a flowpipe counterpart; the others are reported.
FORWARDER_KEYS = {"batch_max_size": "max_batch_flows"}
AGENT_PROMETHEUS_DEFAULT = "localhost:9090"
WILDCARDS = {"0.0.0.0", "::"}


@dataclass
class Note:
    key: str        # the Agent key, dotted (e.g. network_devices.netflow.listeners[0].workers)
    kind: str       # unknown | unsupported | changed | info
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.kind}: {self.message}"


@dataclass
class Conversion:
    """The flowpipe config as tables, the Agent key each value came from, and the notes."""

    top: dict[str, Any] = field(default_factory=dict)
    listeners: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)   # flowpipe dotted key -> Agent dotted key
    notes: list[Note] = field(default_factory=list)

    def note(self, key: str, kind: str, message: str) -> None:
        self.notes.append(Note(key, kind, message))

    def set(self, section: str, key: str, value: Any, agent_key: str) -> None:
        self.sections.setdefault(section, {})[key] = value
        self.origin[f"{section}.{key}"] = agent_key

    @property
    def problems(self) -> list[Note]:
        return [n for n in self.notes if n.kind in ("unknown", "unsupported")]


class ConvertError(Exception):
    """The input cannot be converted at all (not YAML, no netflow section, a value of the wrong shape)."""


NF = "network_devices.netflow"


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConvertError(f"{key}: must be a number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ConvertError(f"{key}: must be an integer, not {value!r}")


def _number(value: Any, key: str) -> float | int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            pass
    raise ConvertError(f"{key}: must be a number, not {value!r}")


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConvertError(f"{key}: must be true or false, not {value!r}")


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """A Go duration string ("24h", "1h30m", "500ms") in seconds; ValueError when it is not one."""
    t = text.strip()
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not t or pos != len(t):
        raise ValueError(f"{text!r} is not a duration such as \"24h\" or \"90s\"")
    return total


def _flat(table: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"a.b": value}; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    if isinstance(table, dict):
        for k, v in table.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(_flat(v, key))
            else:
                out[key] = v
    return out


def convert(doc: Any) -> Conversion:
    """Convert a parsed datadog.yaml; raises :class:`ConvertError` when there is nothing to convert."""
    if not isinstance(doc, dict):
        raise ConvertError("not a YAML mapping (expected a datadog.yaml)")
    nd = doc.get("network_devices")
    if not isinstance(nd, dict) or not isinstance(nd.get("netflow"), dict):
        raise ConvertError("no network_devices: netflow: section")
    nf: dict[str, Any] = nd["netflow"]
    conv = Conversion()
    namespace = nd.get("namespace") or "default"

    hostname = doc.get("hostname")
    if hostname:
        conv.top["host"] = str(hostname)
        conv.origin["host"] = "hostname"

    for key, value in nf.items():
        where = f"{NF}.{key}"
        if key == "enabled":
            if not _bool(value, where):
                conv.note(where, "info", "NetFlow is disabled in the Agent config; flowpipe collects "
                                         "whenever it runs")
        elif key == "listeners":
            _listeners(conv, value, where, str(namespace))
        elif key in AGGREGATOR_KEYS:
            n = _number(value, where)
            if n != 0:
                conv.set("aggregator", AGGREGATOR_KEYS[key], n, where)
            if key == "aggregator_port_rollup_threshold" and n == 1:
                conv.note(where, "info", "a threshold of 1 never rolls a port up (as in the Agent); "
                                         "port_rollup_disabled = true says so plainly")
        elif key == "aggregator_port_rollup_disabled":
            if _bool(value, where):
                conv.set("aggregator", "port_rollup_disabled", True, where)
        elif key == "reverse_dns_enrichment_enabled":
            if _bool(value, where):
                conv.set("reverse_dns", "enabled", True, where)
        elif key in ("prometheus_listener_enabled", "prometheus_listener_address"):
            continue  # handled together below
        elif key == "aggregator_max_flows_per_flush_interval":
            n = _int(value, where)
            if n > 0:  # 0 is the Agent's "off", as flowpipe's
                conv.set("aggregator", "max_flows_per_flush_interval", n, where)
                conv.note(where, "info", TOP_N_NOTE)
        elif key in NO_EQUIVALENT:
            conv.note(where, "unsupported", NO_EQUIVALENT[key])
        elif key in PERF_BRANCH_KEYS:
            conv.note(where, "unsupported", "an Agent perf-branch key with no effect in released Agents; "
                                            "not converted")
        elif key == "forwarder":
            _forwarder(conv, value, where)
        else:
            conv.note(where, "unknown", "not a Datadog Agent NetFlow key flowpipe knows; not converted")
    _prometheus(conv, nf)
    conv.note(NF, "info", METADATA_NOTE)
    for key in ("api_key", "site", "dd_url"):
        if doc.get(key):
            conv.note(key, "info", "not read: flowpipe posts to [forwarder] url with [forwarder] headers "
                                   "(e.g. {\"DD-API-KEY\" = \"...\"}); set them yourself")
    rdns = doc.get("reverse_dns_enrichment")
    if rdns is not None:
        _rdns(conv, rdns, conv.sections.get("reverse_dns", {}).get("enabled", False))
    return conv


def _listeners(conv: Conversion, value: Any, where: str, namespace: str) -> None:
    if value in (None, []):
        conv.note(where, "info", "the Agent config has no listeners; flowpipe's default listeners apply "
                                 "(netflow9 on 2055, ipfix on 4739, sflow5 on 6343)")
        return
    bound: dict[tuple[str, int], int] = {}
    for i, (key, raw) in enumerate(_entries(value, where, "a list of listeners")):
        out: dict[str, Any] = {}
        for k, v in raw.items():
            if k == "flow_type":
                out["flow_type"] = str(v)
            elif k in ("port", "workers"):
                n = _int(v, f"{key}.{k}")
                if n != 0:  # 0: the flow type's default port / one worker
                    out[k] = n
            elif k == "bind_host":
                out["bind_host"] = str(v)
            elif k == "namespace":
                if v:
                    out["namespace"] = str(v)
            elif k == "mapping":
                out["mapping"] = _mapping(conv, v, f"{key}.mapping")
            elif k == "enable_biflow_parsing":
                conv.note(f"{key}.{k}", "unsupported", "an Agent feature-branch key; flowpipe does not pair "
                                                       "biflows; not converted")
            else:
                conv.note(f"{key}.{k}", "unknown", "not a listener key; not converted")
        if "flow_type" not in out:
            raise ConvertError(f"{key}.flow_type: is required")
        inherited = "namespace" not in out and namespace != "default"
        if inherited:
            out["namespace"] = namespace
        if out.get("workers", 1) > 1:
            conv.note(f"{key}.workers", "info", "flowpipe's workers are worker processes, each a whole "
                                                "pipeline with its own SO_REUSEPORT socket on the port: they "
                                                "spread decoding CPU and kernel buffering; the kernel keeps an "
                                                "exporter on one worker")
        if out.get("mapping") and out["flow_type"] in ("netflow5", "sflow5"):
            conv.note(f"{key}.mapping", "info", f"the Agent ignores mapping on a {out['flow_type']} listener; "
                                                "flowpipe applies it to any NetFlow v9/IPFIX datagram the "
                                                "listener receives")
        port = out.get("port") or DEFAULT_PORTS.get(out["flow_type"], 0)
        host = out.get("bind_host", "0.0.0.0")
        first = next((j for (h, p), j in bound.items() if p == port and (h == host or WILDCARDS & {h, host})), None)
        if first is not None:
            conv.note(key, "changed", f"binds {host}:{port} like listeners[{first}], which the Agent cannot open "
                                      "twice; flowpipe decodes NetFlow v5, v9 and IPFIX on one port, so this "
                                      "listener is left out")
            continue
        bound[(host, port)] = i
        for k in out:
            from_agent = "network_devices.namespace" if k == "namespace" and inherited else f"{key}.{k}"
            conv.origin[f"listeners[{len(conv.listeners)}].{k}"] = from_agent
        conv.listeners.append(out)


def _entries(value: Any, where: str, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, mapping) of each entry of the Agent list ``value`` at ``where``; ConvertError, saying it must be
    ``what``, when it is not a list, or naming the entry that is not a mapping."""
    if not isinstance(value, list):
        raise ConvertError(f"{where}: must be {what}")
    for i, raw in enumerate(value):
        key = f"{where}[{i}]"
        if not isinstance(raw, dict):
            raise ConvertError(f"{key}: must be a mapping")
        yield key, raw


def _mapping(conv: Conversion, value: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for key, raw in _entries(value, where, "a list"):
        m: dict[str, Any] = {}
        for k, v in raw.items():
            if k == "field":
                m["field"] = _int(v, f"{key}.field")
            elif k == "destination":
                m["destination"] = str(v)
            elif k == "type":
                t = str(v)
                if t in ("integer", "string", "hex"):
                    m["type"] = t
                else:
                    m["type"] = "hex"
                    conv.note(f"{key}.type", "changed", f"the Agent keeps the raw bytes for type {t!r}; "
                                                        "flowpipe writes them as hex (type = \"hex\")")
            elif k == "endianness":
                m["endianness"] = str(v)
            else:
                conv.note(f"{key}.{k}", "unknown", "not a mapping key; not converted")
        # The Agent keeps raw bytes when no type is given; flowpipe's default type is integer.
        m.setdefault("type", "hex")
        out.append(m)
    return out


def _prometheus(conv: Conversion, nf: dict[str, Any]) -> None:
    enabled_key, address_key = f"{NF}.prometheus_listener_enabled", f"{NF}.prometheus_listener_address"
    enabled = _bool(nf.get("prometheus_listener_enabled", False), enabled_key)
    address = nf.get("prometheus_listener_address")
    if enabled and address:
        conv.set("metrics", "listen", str(address), address_key)
        if str(address).startswith(("localhost:", "127.")):
            conv.note(address_key, "info", "a loopback address: Prometheus and Kubernetes probes outside the "
                                           "container cannot reach /metrics and /healthz there")
        conv.note(enabled_key, "info", "flowpipe serves its own metrics (docs/metrics.md), not goflow2's")
    elif enabled:
        conv.note(enabled_key, "info", f"the Agent default address {AGENT_PROMETHEUS_DEFAULT} is loopback only; "
                                       "flowpipe keeps its default 0.0.0.0:9090 so probes and Prometheus "
                                       "reach it (set [metrics] listen to change it)")
    else:
        if address:
            conv.note(address_key, "info", "ignored: the Agent's prometheus listener is disabled")
        conv.note(enabled_key, "info", "flowpipe always serves /metrics and /healthz on [metrics] listen "
                                       "(default 0.0.0.0:9090); set listen = \"\" to turn it off")


def _forwarder(conv: Conversion, value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise ConvertError(f"{where}: must be a mapping")
    for k, v in _flat(value).items():
        key = f"{where}.{k}"
        if k in FORWARDER_KEYS:
            conv.set("forwarder", FORWARDER_KEYS[k], _int(v, key), key)
        elif k == "use_compression":
            if not _bool(v, key):
                conv.set("forwarder", "compression", "none", key)
        else:
            conv.note(key, "unsupported", "the Agent's event-platform forwarder setting has no flowpipe "
                                          "equivalent; set [forwarder] url, headers and retries yourself")


def _rdns(conv: Conversion, value: Any, enabled: bool) -> None:
    where = "reverse_dns_enrichment"
    if not isinstance(value, dict):
        raise ConvertError(f"{where}: must be a mapping")
    for k, v in _flat(value).items():
        key = f"{where}.{k}"
        if k in RDNS_KEYS:
            target = RDNS_KEYS[k]
            if k == "cache.entry_ttl":
                if not isinstance(v, str):
                    conv.note(key, "unsupported", "give the TTL as a duration string such as \"24h\"; a bare "
                                                  "number is ambiguous (the Agent reads it as nanoseconds)")
                    continue
                try:
                    seconds = go_duration(v)
                except ValueError as e:
                    raise ConvertError(f"{key}: {e}") from None
                conv.set("reverse_dns", target, int(seconds) if seconds.is_integer() else seconds, key)
            else:
                n = _number(v, key)
                conv.set("reverse_dns", target, float(n) if target == "rate_limit" else int(n), key)
        elif k in RDNS_IGNORED:
            conv.note(key, "unsupported", RDNS_IGNORED[k] + "; not converted")
        else:
            conv.note(key, "unknown", "not a reverse_dns_enrichment key flowpipe knows; not converted")
    if not enabled and conv.sections.get("reverse_dns"):
        conv.note(where, "info", "converted, but reverse DNS stays off: the Agent config does not set "
                                 f"{NF}.reverse_dns_enrichment_enabled")


# ---- TOML output ----------------------------------------------------------------------------

SECTION_ORDER = ("aggregator", "reverse_dns", "forwarder", "metrics")


def render(conv: Conversion, source: str) -> str:
    """The conversion as commented TOML (each value names the Agent key it came from)."""
    out = [f"# flowpipe config converted from {source} by `flowpipe convert-config`.",
           "# Keys not listed keep flowpipe's defaults (docs/configuration.md); see docs/datadog-migration.md.",
           "# The backend: set [forwarder] url (and headers) to where flows should go; \"\" prints them to stdout."]

    def line(key: str, value: Any, origin: str | None, indent: str = "") -> str:
        text = f"{indent}{key} = {_toml_value(value)}"
        return f"{text}  # {origin}" if origin else text

    for k, v in conv.top.items():
        out.append(line(k, v, conv.origin.get(k)))
    for i, lst in enumerate(conv.listeners):
        out += ["", "[[listeners]]"]
        for k, v in lst.items():
            if k != "mapping":
                out.append(line(k, v, conv.origin.get(f"listeners[{i}].{k}")))
        for m in lst.get("mapping", []):
            out += ["", "  [[listeners.mapping]]"]
            out += [line(k, v, None, "  ") for k, v in m.items()]
    for name in SECTION_ORDER:
        table = conv.sections.get(name)
        if table:
            out += ["", f"[{name}]"]
            out += [line(k, v, conv.origin.get(f"{name}.{k}")) for k, v in table.items()]
    return "\n".join(out) + "\n"


def validate(text: str) -> None:
    """Load ``text`` with flowpipe's own loader; raises :class:`ConfigError`."""
    fd, path = tempfile.mkstemp(prefix="flowpipe-convert-", suffix=".toml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        load(path)
    finally:
        os.unlink(path)


# ---- command --------------------------------------------------------------------------------

DESCRIPTION = ("Read the network_devices: netflow: section of a datadog.yaml and print the "
               "equivalent flowpipe config (TOML), validated before it is printed. Agent keys "
               "that cannot be carried over are reported on stderr. Exit 0 when converted, 1 "
               "with --strict when some key was not converted, 2 when the input or the result "
               "is invalid.")


def register(sub: argparse._SubParsersAction) -> None:
    p = add(sub, "convert-config", main,
            "convert a Datadog Agent NetFlow config (datadog.yaml) to flowpipe TOML", DESCRIPTION)
    p.add_argument("file", help="datadog.yaml ('-' reads stdin)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the TOML to FILE instead of stdout")
    p.add_argument("--strict", action="store_true", help="exit 1 when an Agent key was unknown or unsupported")


def _read(path: str) -> Any:
    import yaml  # noqa: PLC0415 - only this command needs PyYAML

    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as e:
        raise ConvertError(f"cannot read: {e.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConvertError(f"not valid YAML: {e}") from None


def main(args: argparse.Namespace) -> int:
    source = "stdin" if args.file == "-" else args.file
    try:
        conv = convert(_read(args.file))
    except ConvertError as e:
        print(f"flowpipe convert-config: {source}: {e}", file=sys.stderr)
        return 2
    text = render(conv, os.path.basename(source))
    try:
        validate(text)
    except ConfigError as e:
        agent_key = conv.origin.get(e.key, "")
        hint = f" (from {agent_key})" if agent_key else ""
        print(f"flowpipe convert-config: {source}: the converted config is invalid: {e.key}: {e.reason}{hint}",
              file=sys.stderr)
        return 2
    for n in conv.notes:
        print(f"flowpipe convert-config: {n}", file=sys.stderr)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 1 if args.strict and conv.problems else 0
