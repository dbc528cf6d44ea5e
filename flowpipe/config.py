"""Configuration: attrs sections with defaults, loaded from TOML and validated strictly.

Every key is optional. A bad file raises :class:`ConfigError` naming the file, the key and the
reason; unknown keys are errors that suggest the nearest known key.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import socket
import tomllib
import types
import typing
from typing import Any

import attrs

from flowpipe import secrets

FLOW_TYPES = ("netflow5", "netflow9", "ipfix", "sflow5")
DEFAULT_PORTS = {"netflow5": 2055, "netflow9": 2055, "ipfix": 4739, "sflow5": 6343}
SECRET_HEADER_WORDS = ("key", "token", "auth", "secret", "password", "cookie")


class ConfigError(Exception):
    """A config problem: ``file``, ``key`` (dotted path) and ``reason``."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")


class ConfigErrors(ConfigError):
    """Several config problems, each once (``errors``); reads as the first of them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__(errors[0].file, errors[0].key, errors[0].reason)


def _collect(errors: list[ConfigError], e: ConfigError) -> None:
    for one in (e.errors if isinstance(e, ConfigErrors) else [e]):
        if all((one.key, one.reason) != (seen.key, seen.reason) for seen in errors):
            errors.append(one)


def _doc(text: str, **kw: Any) -> dict[str, Any]:
    return {"doc": text, **kw}


def _positive(inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError("must be greater than 0")


def _non_negative(inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value is not None and value < 0:
        raise ValueError("must be 0 or more")


def _one_of(*choices: str) -> Any:
    def check(inst: Any, att: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
    return check


def _port(inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise ValueError("must be a port number 0..65535")


@attrs.define(slots=True, kw_only=True)
class MappingConfig:
    """One NetFlow v9 / IPFIX field to collect beyond the defaults."""

    field: int | str = attrs.field(metadata=_doc(
        "information element id or IANA name (225 or \"postNATSourceIPv4Address\"; RFC 5103 reverse names"
        " too); IPFIX enterprise fields as \"ENTERPRISE:ID\""))
    destination: str = attrs.field(metadata=_doc(
        "a payload field it fills (e.g. \"direction\", \"source.port\") or a key under additional_fields"))
    type: str = attrs.field(  # type: ignore[assignment]  # None (absent): resolved in __attrs_post_init__
        default=None, validator=attrs.validators.optional(_one_of("integer", "string", "hex", "ip", "mac")),
        metadata=_doc("how the value is decoded: integer | string | hex | ip | mac; absent: hex, as the Datadog"
                      " Agent (a 2-byte 0x2d0c gives \"2d0c\"), except integer for the built-in integer"
                      " destinations (direction, source.port, ...)"))
    endianness: str = attrs.field(default="big", validator=_one_of("big", "little"),
                                  metadata=_doc("byte order for integer: big | little"))

    def __attrs_post_init__(self) -> None:
        parse_field_id(self.field)
        if not self.destination:
            raise ValueError("destination must not be empty")
        if self.type is None:  # the Agent's default: raw bytes (hex); built-in integer destinations stay integers
            from flowpipe.decode.elements import BUILTIN  # noqa: PLC0415 - elements imports this module

            builtin = BUILTIN.get(self.destination)
            self.type = "integer" if builtin and builtin[1].startswith("u") else "hex"

    @property
    def element(self) -> tuple[int, int]:
        """(enterprise number, element id); enterprise 0 for IANA elements."""
        return parse_field_id(self.field)


def parse_field_id(value: int | str) -> tuple[int, int]:
    """``61``, ``"61"`` or an IANA name (``"flowDirection"``) -> (0, 61); ``"29305:1"`` or
    ``"reverseOctetDeltaCount"`` -> (29305, 1). ValueError when malformed or an unknown name."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value < 65536:
            raise ValueError(f"field {value} is not an element id 1..65535")
        return 0, value
    text = str(value).strip()
    pen, _, eid = text.rpartition(":")
    if not pen and text and not text.isdigit():
        from flowpipe.decode import iana  # noqa: PLC0415 - pure data, loaded only when a name is used

        found = iana.element_id(text)
        if found is None:
            near = iana.nearest(text)
            hint = f"; nearest known names: {', '.join(near)}" if near else ""
            raise ValueError(f"field {value!r} is not an IANA information element name{hint}"
                             " (or give the element id, or \"ENTERPRISE:ID\")")
        return found
    try:
        e = int(eid)
        p = int(pen) if pen else 0
    except ValueError:
        raise ValueError(f"field {value!r} is not an element id, an IANA name or \"ENTERPRISE:ID\"") from None
    if not 0 < e < 32768 if p else not 0 < e < 65536:
        raise ValueError(f"field {value!r}: element id out of range")
    if not 0 <= p < 2**32:
        raise ValueError(f"field {value!r}: enterprise number out of range")
    return p, e


@attrs.define(slots=True, kw_only=True)
class ListenerConfig:
    """One UDP listener."""

    flow_type: str = attrs.field(validator=_one_of(*FLOW_TYPES), metadata=_doc(
        "netflow5 | netflow9 | ipfix | sflow5 (required); picks the default port and the metrics label"))
    bind_host: str = attrs.field(default="0.0.0.0", metadata=_doc("address to bind; \"::\" for dual stack"))
    port: int = attrs.field(default=0, validator=_port, metadata=_doc(
        "UDP port; 0 = the flow type's default (netflow5/netflow9 2055, ipfix 4739, sflow5 6343)"))
    workers: int = attrs.field(default=1, validator=_positive, metadata=_doc(
        "worker processes on the port (SO_REUSEPORT), each a whole pipeline: they spread decoding CPU; "
        "the kernel keeps an exporter on one worker (docs/architecture.md, Workers)"))
    namespace: str = attrs.field(default="default", metadata=_doc("payload device.namespace"))
    mapping: list[MappingConfig] = attrs.field(factory=list, metadata=_doc(
        "NetFlow v9 / IPFIX fields to collect beyond the defaults"))
    receive_buffer: int = attrs.field(default=32 * 1024 * 1024, validator=_positive, metadata=_doc(
        "SO_RCVBUF bytes requested for each socket (the kernel caps it at net.core.rmem_max)"))
    allowed_exporters: list[str] = attrs.field(factory=list, metadata=_doc(
        "CIDRs whose datagrams are accepted; others are dropped before decoding and counted"
        " (reason not_allowed); [] = everyone"))
    tags: dict[str, str] = attrs.field(factory=dict, metadata=_doc(
        "key/values added to the additional_fields of every flow this listener receives"))
    exporter_address: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_one_of("udp", "in-band")), metadata=_doc(
            "what identifies an exporter (payload exporter.ip, template and sequence state): \"udp\" = the"
            " datagram's UDP source address; \"in-band\" = what the export says: the sFlow agent address,"
            " IPFIX/v9 exporterIPv4Address/exporterIPv6Address (130/131) once sent, else the source id /"
            " observation domain mapped by `exporters`, else the UDP source. [sflow5: \"in-band\", others:"
            " \"udp\"]. Behind NAT (Docker, Kubernetes) use \"in-band\"; see docs/exporter-identity.md"))
    exporters: dict[str, str] = attrs.field(factory=dict, metadata=_doc(
        "with exporter_address = \"in-band\": NetFlow v9 source id / IPFIX observation domain id -> the"
        " exporter's address or name, e.g. {\"2193\" = \"10.0.0.1\"}; an id not listed falls back to the UDP"
        " source"))
    reverse_flows: bool = attrs.field(default=False, metadata=_doc(
        "NetFlow v9 / IPFIX: a bidirectional record (RFC 5103 reverse counters 29305/1, /2, /85, /86;"
        " IXIA 3054/176, /177; Cisco ASA NSEL responderOctets 232) also yields the reverse direction"
        " as a flow of its own, endpoints and ports swapped, with the reverse bytes and packets"
        " (docs/payload.md, Vendor rules); off: reverse counters are dropped, NSEL adds them to the"
        " connection's one flow"))
    passthrough_unknown: bool = attrs.field(default=False, metadata=_doc(
        "NetFlow v9 / IPFIX: put every element flowpipe has no IANA name or mapping for into"
        " additional_fields as \"<id>\" or \"<enterprise>.<id>\" = hex value (at most 256 bytes of each value,"
        " 64 elements per template)"))

    def __attrs_post_init__(self) -> None:
        if self.port == 0:
            self.port = DEFAULT_PORTS[self.flow_type]
        if self.exporter_address is None:
            self.exporter_address = "in-band" if self.flow_type == "sflow5" else "udp"
        if self.exporters:
            if self.flow_type == "sflow5":
                raise ValueError("exporters maps NetFlow v9 source ids / IPFIX domains; an sflow5 listener"
                                 " identifies exporters by their agent address")
            if self.exporter_address != "in-band":
                raise ValueError("exporters is used only for in-band exporter addresses (exporter_address ="
                                 " \"in-band\")")
            self.exporter_ids()
        ns = self.namespace.replace("\n", "").replace("\r", "").replace("\t", "")
        ns = ns.replace("<", "-").replace(">", "-").strip()
        if not ns or len(ns.encode()) > 100 or "\x00" in ns:
            raise ValueError("namespace must be 1..100 bytes with no NUL")
        self.namespace = ns
        try:
            ipaddress.ip_address(self.bind_host)
        except ValueError:
            raise ValueError(f"bind_host {self.bind_host!r} is not an IP address") from None
        _networks("allowed_exporters", self.allowed_exporters)

    def exporter_ids(self) -> dict[int, str]:
        """``exporters`` with integer keys (ValueError naming a bad entry)."""
        out: dict[int, str] = {}
        for k, v in self.exporters.items():
            text = k.strip()
            if not (text.isascii() and text.isdigit()) or int(text) >= 2**32:
                raise ValueError(f"exporters: key {k!r} is not a source id / observation domain 0..4294967295")
            name = v.strip()
            if not name or len(name) > 255 or any(c in name for c in "\x00\n\r"):
                raise ValueError(f"exporters: {k!r} must map to an address or name of 1..255 characters")
            out[int(text)] = name
        return out


def _networks(key: str, cidrs: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            raise ValueError(f"{key}: {c!r} is not an address or CIDR") from None
    return out


@attrs.define(slots=True, kw_only=True)
class SamplingRule:
    """Sampling rate for exporters that announce none, or whatever they announce."""

    exporters: list[str] = attrs.field(factory=lambda: ["0.0.0.0/0", "::/0"], metadata=_doc(
        "CIDRs of the exporters this rule is for; the first matching rule applies"))
    default: int = attrs.field(default=0, validator=_non_negative, metadata=_doc(
        "rate (1 in N) for flows whose exporter announced none; 0 = no default"))
    override: int = attrs.field(default=0, validator=_non_negative, metadata=_doc(
        "rate (1 in N) used whatever the exporter announced; 0 = no override"))
    sampler_id: int = attrs.field(default=-1, metadata=_doc(
        "NetFlow v9/IPFIX sampler id (IE 48/302) the rule is for; -1 = the exporter as a whole"))

    def __attrs_post_init__(self) -> None:
        _networks("exporters", self.exporters)


def _default_listeners() -> list[ListenerConfig]:
    return [ListenerConfig(flow_type=t) for t in ("netflow9", "ipfix", "sflow5")]


@attrs.define(slots=True, kw_only=True)
class DecoderConfig:
    """NetFlow v9 / IPFIX template state, shared by all listeners."""

    template_timeout: float = attrs.field(default=1800.0, validator=_positive, metadata=_doc(
        "seconds a template is kept without being refreshed"))
    max_templates_per_exporter: int = attrs.field(default=1024, validator=_positive, metadata=_doc(
        "templates kept per exporter (all domains); past it new ones are refused and counted"))
    max_exporters: int = attrs.field(default=10000, validator=_positive, metadata=_doc(
        "exporters whose template state is kept; past it new exporters' templates are refused and counted"))
    max_templates: int = attrs.field(default=65536, validator=_positive, metadata=_doc(
        "templates kept in all (all exporters; a used template takes ~2-5 KB); past it new ones are refused and "
        "counted"))
    hold_timeout: float = attrs.field(default=60.0, validator=_non_negative, metadata=_doc(
        "seconds data that arrived before its template is held waiting for it (0 disables holding)"))
    hold_max_per_exporter: int = attrs.field(default=256, validator=_non_negative, metadata=_doc(
        "datagrams held per exporter waiting for templates; the oldest is dropped past it"))
    hold_max_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_non_negative, metadata=_doc(
        "memory held in all by data waiting for templates (its bytes plus ~0.5 KB per datagram and more per "
        "set); the oldest is dropped past it"))
    state_file: str = attrs.field(default="", metadata=_doc(
        "file where templates and sampling rates are saved and reloaded at start; \"\" = off"))
    nsel_max_connections_per_exporter: int = attrs.field(default=65536, validator=_positive, metadata=_doc(
        "Cisco ASA NSEL: connections whose flow-update counts are remembered per export stream (so that"
        " their teardown is not counted twice; ~400 bytes each); past it the stream's least recently"
        " updated one is forgotten and counted (docs/payload.md, Vendor rules)"))
    nsel_max_connections: int = attrs.field(default=131072, validator=_positive, metadata=_doc(
        "Cisco ASA NSEL: such connections remembered in all (all exporters; 131072 take ~50 MB); past it"
        " an exporter forgets its own oldest, never another's"))


@attrs.define(slots=True, kw_only=True)
class AggregatorConfig:
    """Flow contexts: flush cadence, TTL, port rollup, memory cap."""

    flush_interval: float = attrs.field(default=300.0, validator=_positive, metadata=_doc(
        "seconds between two emissions of one flow context"))
    flow_context_ttl: float | None = attrs.field(default=None, validator=_positive, metadata=_doc(
        "a flushed context with no new flow for this long is dropped; [flush_interval]"))
    flush_tick: float | None = attrs.field(default=None, validator=_positive, metadata=_doc(
        "how often due contexts are emitted; [min(10, flush_interval)]"))
    buffer_size: int = attrs.field(default=10000, validator=_positive, metadata=_doc(
        "flows the decoder may queue toward the accumulator"))
    port_rollup_threshold: int = attrs.field(default=10, validator=_positive, metadata=_doc(
        "distinct peer ports on one side before that side becomes \"*\""))
    port_rollup_disabled: bool = attrs.field(default=False, metadata=_doc("turn port rollup off"))
    rollup_tracker_refresh_interval: float = attrs.field(default=300.0, validator=_positive, metadata=_doc(
        "seconds between two rotations of the port-rollup tracker"))
    max_contexts: int = attrs.field(default=1_000_000, validator=_positive, metadata=_doc(
        "flow contexts kept at most; past it flows of new contexts are dropped and counted"))
    max_rollup_entries: int = attrs.field(default=2_000_000, validator=_positive, metadata=_doc(
        "port-rollup tracker entries (both generations) at most; past it new pairs are not tracked"))
    scale_by_sampling: bool = attrs.field(default=False, metadata=_doc(
        "multiply bytes and packets by the sampling rate before aggregation (payload sampling_rate is then 1)"))
    max_flows_per_flush_interval: int = attrs.field(default=0, validator=_non_negative, metadata=_doc(
        "top-N cap, as the Datadog Agent's aggregator_max_flows_per_flush_interval: at most this many flows"
        " per flush_interval, spread over its ticks (flush_interval / flush_tick of them); each flush keeps its"
        " flows with the most bytes and drops the rest, counted as flowpipe_flows_dropped_total{stage="
        "\"aggregator\",reason=\"top_n\"}; with the cap on, a new conversation is first emitted at a random"
        " tick of its first flush_interval (as the Agent does); 0 = off"))
    dedup_groups: list[list[str]] = attrs.field(factory=list, metadata=_doc(
        "groups of exporters (each a list of addresses or CIDRs) that report the same conversations: within"
        " one flush, flows of a group with the same source and destination address and port and IP protocol"
        " count once (the one with the most bytes is kept; the others are counted as flowpipe_flows_dropped_total"
        "{stage=\"aggregator\",reason=\"duplicate\"}); an exporter belongs to the first group it matches;"
        " [] = off"))

    def __attrs_post_init__(self) -> None:
        if self.flow_context_ttl is None:
            self.flow_context_ttl = self.flush_interval
        if self.flush_tick is None:
            self.flush_tick = min(10.0, self.flush_interval)
        for i, group in enumerate(self.dedup_groups):
            if not group:
                raise ValueError(f"dedup_groups[{i}] is empty: list the exporters of the group")
            _networks(f"dedup_groups[{i}]", group)


@attrs.define(slots=True, kw_only=True)
class ReverseDnsConfig:
    """Reverse-DNS enrichment of source/destination addresses."""

    enabled: bool = attrs.field(default=False, metadata=_doc("look up PTR names for flow endpoints"))
    nameservers: list[str] = attrs.field(factory=list, metadata=_doc(
        "[\"host:port\", ...]; [] = the system resolver"))
    timeout: float = attrs.field(default=1.0, validator=_positive, metadata=_doc("seconds per query"))
    private_only: bool = attrs.field(default=True, metadata=_doc(
        "only look up private, shared (RFC 6598), unique-local and link-local addresses"))
    cache_ttl: float = attrs.field(default=3600.0, validator=_positive, metadata=_doc(
        "seconds a name is cached (shorter when the record's TTL is)"))
    cache_size: int = attrs.field(default=100000, validator=_positive, metadata=_doc("cache entries at most"))
    negative_cache_ttl: float = attrs.field(default=300.0, validator=_positive, metadata=_doc(
        "seconds an address without a name is cached (shorter when the zone's negative TTL is)"))
    failure_cache_ttl: float = attrs.field(default=30.0, validator=_positive, metadata=_doc(
        "seconds an address whose lookup failed (timeout, SERVFAIL, REFUSED, error) is not retried"))
    max_wait: float = attrs.field(default=1.0, validator=_non_negative, metadata=_doc(
        "seconds a flush waits at most for lookups; later answers fill the cache for the next flush"))
    concurrency: int = attrs.field(default=32, validator=_positive, metadata=_doc("queries in flight at most"))
    rate_limit: float = attrs.field(default=1000.0, validator=_positive, metadata=_doc("queries per second at most"))
    max_pending: int = attrs.field(default=10000, validator=_positive, metadata=_doc(
        "addresses waiting to be looked up at most; more are skipped and counted"))

    def __attrs_post_init__(self) -> None:
        for ns in self.nameservers:
            try:
                host, _ = split_host_port(ns, 53)
            except ValueError as e:
                raise ValueError(f"nameservers {e}") from None
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"nameservers: {ns!r} is not an IP address (the resolver needs the DNS "
                                 f"server's address, e.g. \"10.0.0.2:53\" or \"[fd00::53]:53\")") from None


@attrs.define(slots=True, kw_only=True)
class ForwarderConfig:
    """Delivery of payload flows to the HTTP backend."""

    url: str = attrs.field(default="", metadata=_doc(
        "backend URL to POST to; \"\" = write payload flows to stdout, one JSON object a line"))
    format: str = attrs.field(default="json", validator=_one_of("json", "msgpack"), metadata=_doc(
        "json | msgpack"))
    compression: str = attrs.field(default="gzip", validator=_one_of("gzip", "none"), metadata=_doc(
        "gzip | none"))
    max_batch_flows: int = attrs.field(default=10000, validator=_positive, metadata=_doc("flows per request"))
    additional_fields: str = attrs.field(default="nested", validator=_one_of("nested", "top_level"), metadata=_doc(
        "where mapped/extra fields go: nested (an additional_fields object) | top_level (current Datadog"
        " Agents; a name a payload field already uses stays nested)"))
    timeout: float = attrs.field(default=10.0, validator=_positive, metadata=_doc("seconds per request"))
    headers: dict[str, str] = attrs.field(factory=dict, metadata=_doc(
        "extra request headers, e.g. {\"DD-API-KEY\" = \"...\"}"))
    stop_timeout: float = attrs.field(default=10.0, validator=_non_negative, metadata=_doc(
        "seconds delivery may take at shutdown; what is left goes to the spool"))
    queue_max_flows: int = attrs.field(default=1_000_000, validator=_positive, metadata=_doc(
        "flows held in memory waiting for delivery (without a spool dir, the oldest are dropped past it)"))
    spool_dir: str = attrs.field(default="", metadata=_doc(
        "directory for batches that cannot be delivered yet; \"\" = memory only"))
    spool_max_bytes: int = attrs.field(default=1024 * 1024 * 1024, validator=_positive, metadata=_doc(
        "spool size at most; past it the oldest batches are dropped and counted"))
    retry_initial: float = attrs.field(default=1.0, validator=_positive, metadata=_doc(
        "first retry delay in seconds (doubles each time, with jitter)"))
    retry_max: float = attrs.field(default=60.0, validator=_positive, metadata=_doc(
        "longest retry delay in seconds"))
    retries: int = attrs.field(default=5, validator=_non_negative, metadata=_doc(
        "attempts after the first before a batch goes to the spool (or back to the memory queue)"))
    retry_after_max: float = attrs.field(default=300.0, validator=_positive, metadata=_doc(
        "longest wait in seconds a backend's Retry-After answer is honoured for"))
    spool_fsync: bool = attrs.field(default=True, metadata=_doc(
        "fsync each spool file when written (survives power loss, not only a crash)"))
    file: str = attrs.field(default="", metadata=_doc(
        "also write payload flows to this file as JSON lines (with url \"\": instead of stdout); \"\" = off"))
    file_max_bytes: int = attrs.field(default=100 * 1024 * 1024, validator=_positive, metadata=_doc(
        "size at which the file is rotated to file.1, file.2, ..."))
    file_backups: int = attrs.field(default=5, validator=_non_negative, metadata=_doc(
        "rotated files kept"))
    tls_verify: bool = attrs.field(default=True, metadata=_doc("verify the backend's TLS certificate"))
    tls_ca_file: str = attrs.field(default="", metadata=_doc("CA bundle for the backend; \"\" = system CAs"))
    tls_client_cert: str = attrs.field(default="", metadata=_doc("client certificate (PEM) for mutual TLS"))
    tls_client_key: str = attrs.field(default="", metadata=_doc("client key (PEM) for mutual TLS"))

    def __attrs_post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")


@attrs.define(slots=True, kw_only=True)
class MetadataConfig:
    """Exporter metadata POSTed periodically, as the Datadog Agent sends its NetFlow exporters (off without a url)."""

    url: str = attrs.field(default="", metadata=_doc(
        "URL to POST exporter metadata to: JSON arrays of NDM metadata payloads ({namespace, integration,"
        " netflow_exporters: [{id, ip_address, flow_type}], collect_timestamp}, at most 100 exporters each);"
        " [forwarder] headers, TLS settings, timeout and compression apply; \"\" = off"))
    interval: float = attrs.field(default=60.0, validator=_positive, metadata=_doc(
        "seconds between two rounds; a round sends the exporters seen since the last round that was"
        " delivered"))

    def __attrs_post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")


@attrs.define(slots=True, kw_only=True)
class MetricsConfig:
    """The Prometheus endpoint."""

    listen: str = attrs.field(default="0.0.0.0:9090", metadata=_doc(
        "host:port serving /metrics and /healthz; \"\" disables"))

    def __attrs_post_init__(self) -> None:
        if self.listen:
            try:
                split_host_port(self.listen, None)
            except ValueError as e:
                raise ValueError(f"listen {e}") from None


@attrs.define(slots=True, kw_only=True)
class Config:
    """The whole flowpipe configuration."""

    host: str = attrs.field(default="", metadata=_doc("payload \"host\"; [the machine's hostname]"))
    tags: dict[str, str] = attrs.field(factory=dict, metadata=_doc(
        "key/values added to the additional_fields of every flow"))
    sampling: list[SamplingRule] = attrs.field(factory=list, metadata=_doc(
        "sampling-rate rules by exporter ([[sampling]] tables); the first matching rule applies"))
    listeners: list[ListenerConfig] = attrs.field(factory=_default_listeners, metadata=_doc(
        "UDP listeners; [netflow9 on 2055, ipfix on 4739, sflow5 on 6343]"))
    decoder: DecoderConfig = attrs.field(factory=DecoderConfig, metadata=_doc("template state"))
    aggregator: AggregatorConfig = attrs.field(factory=AggregatorConfig, metadata=_doc("aggregation"))
    reverse_dns: ReverseDnsConfig = attrs.field(factory=ReverseDnsConfig, metadata=_doc("rDNS enrichment"))
    forwarder: ForwarderConfig = attrs.field(factory=ForwarderConfig, metadata=_doc("delivery"))
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig, metadata=_doc("Prometheus endpoint"))
    metadata: MetadataConfig = attrs.field(factory=MetadataConfig, metadata=_doc("exporter metadata"))

    def __attrs_post_init__(self) -> None:
        if not self.host:
            self.host = socket.gethostname()
        seen: dict[tuple[str, int], str] = {}
        for i, lst in enumerate(self.listeners):
            where = (lst.bind_host, lst.port)
            if where in seen and lst.workers == 1:
                raise ValueError(f"listeners[{i}] binds {lst.bind_host}:{lst.port} like a listener "
                                 f"before it ({seen[where]}); give one of them another port")
            seen[where] = lst.flow_type


def split_host_port(text: str, default_port: int | None) -> tuple[str, int]:
    """"h:p", "[v6]:p" or (with a default port) "h" -> (host, port). ValueError when malformed."""
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    elif t.count(":") == 1:
        host, _, port_s = t.partition(":")
    else:
        host, port_s = t, ""
    if not port_s:
        if default_port is None:
            raise ValueError(f"{text!r} must be host:port")
        return host, default_port
    if not port_s.isdigit() or not 0 <= int(port_s) < 65536:
        raise ValueError(f"{text!r}: port must be 0..65535 (0: any free port)")
    return host, int(port_s)


# ---- loading -------------------------------------------------------------------------------

def _resolved(cls: type) -> tuple[attrs.Attribute, ...]:
    attrs.resolve_types(cls)
    return attrs.fields(cls)


def _convert(value: Any, tp: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, file, key)
            except ConfigError as e:
                errors.append(e.reason)
        raise ConfigError(file, key, " or ".join(errors))
    if attrs.has(tp):
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"must be a table, not {type(value).__name__}")
        return _build(tp, value, file, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(file, key, f"must be an array, not {type(value).__name__}")
        return _convert_each([(f"{key}[{i}]", v) for i, v in enumerate(value)], item, file)
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"must be a table, not {type(value).__name__}")
        return dict(zip(map(str, value), _convert_each([(f"{key}.{k}", v) for k, v in value.items()], vt, file),
                        strict=True))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(file, key, f"must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(file, key, f"must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(file, key, f"must be a number of seconds, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(file, key, f"must be a string, not {value!r}")
        try:
            return secrets.resolve(value)  # "${env:NAME}" / "${file:/path}"
        except ValueError as e:
            raise ConfigError(file, key, str(e)) from None
    raise ConfigError(file, key, f"unsupported type {tp!r}")  # pragma: no cover


def _convert_each(items: list[tuple[str, Any]], tp: Any, file: str) -> list[Any]:
    """:func:`_convert` of each (key, value) to ``tp``; every error among them reported, each once."""
    out: list[Any] = []
    errors: list[ConfigError] = []
    for key, v in items:
        try:
            out.append(_convert(v, tp, file, key))
        except ConfigError as e:
            _collect(errors, e)
    if errors:
        raise ConfigErrors(errors)
    return out


def _build(cls: type, table: dict[str, Any], file: str, prefix: str) -> Any:
    fields = {f.name: f for f in _resolved(cls)}
    kwargs: dict[str, Any] = {}
    errors: list[ConfigError] = []  # every problem of the file is reported, each once
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in fields:
            near = difflib.get_close_matches(k, list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(fields)}"
            _collect(errors, ConfigError(file, key, "unknown key" + hint))
            continue
        try:
            kwargs[k] = _convert(v, fields[k].type, file, key)
        except ConfigError as e:
            _collect(errors, e)
    for n, f in fields.items():
        if f.default is attrs.NOTHING and n not in kwargs and n not in table:
            _collect(errors, ConfigError(file, f"{prefix}.{n}" if prefix else n, "is required"))
    if errors:
        raise ConfigErrors(errors)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        bad = _failing_key(cls, kwargs, str(e))
        key = f"{prefix}.{bad}" if prefix and bad else (bad or prefix)
        message = str(e)
        if bad and message.startswith(f"{bad}: "):  # the key once, not "allowed_exporters: allowed_exporters: ..."
            message = message[len(bad) + 2:]
        raise ConfigError(file, key, message) from None


def _failing_key(cls: type, kwargs: dict[str, Any], message: str) -> str:
    """Best guess at which key an attrs validator or post-init complaint is about."""
    for f in attrs.fields(cls):
        if f"'{f.name}'" in message or message.startswith(f.name) or f" {f.name} " in f" {message} ":
            return f.name
    if len(kwargs) == 1:
        return next(iter(kwargs))
    for name, f in ((f.name, f) for f in attrs.fields(cls)):
        if name in kwargs and f.validator is not None:
            try:
                f.validator(None, f, kwargs[name])
            except (ValueError, TypeError):
                return name
    return ""


def load(path: str | None) -> Config:
    """The config in ``path`` (TOML), or the defaults when ``path`` is None or empty."""
    if not path:
        return Config()
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}") from None
    cfg: Config = _build(Config, table, path, "")
    _check_paths(cfg, path)
    return cfg


def _check_paths(cfg: Config, file: str) -> None:
    fw = cfg.forwarder
    errors: list[ConfigError] = []
    for key in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        p = getattr(fw, key)
        if not p:
            continue
        if not os.path.exists(p):
            errors.append(ConfigError(file, f"forwarder.{key}", f"no such file: {p}"))
        elif not os.path.isfile(p):
            errors.append(ConfigError(file, f"forwarder.{key}", f"not a regular file: {p}"))
        elif not os.access(p, os.R_OK):
            errors.append(ConfigError(file, f"forwarder.{key}",
                                      f"{p!r} is not readable by this user (uid {os.getuid()})"))
    if bool(fw.tls_client_cert) != bool(fw.tls_client_key):
        errors.append(ConfigError(file, "forwarder.tls_client_key", "tls_client_cert and tls_client_key go together"))
    if errors:
        raise ConfigErrors(errors)


# ---- writing (check-config) ----------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _masked_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if any(w in k.lower() for w in SECRET_HEADER_WORDS) else v) for k, v in headers.items()}


def dump(cfg: Config) -> str:
    """The effective config as TOML, with secret header values masked."""
    out: list[str] = []

    def scalars(obj: Any) -> list[str]:
        lines = []
        for f in attrs.fields(type(obj)):
            v = getattr(obj, f.name)
            if attrs.has(type(v)) or f.name in ("listeners", "mapping", "sampling"):
                continue
            if f.name == "headers":
                v = _masked_headers(v)
            if v is None:
                continue
            lines.append(f"{f.name} = {_toml_value(v)}")
        return lines

    out += scalars(cfg)
    for lst in cfg.listeners:
        out += ["", "[[listeners]]"] + scalars(lst)
        for m in lst.mapping:
            out += ["", "  [[listeners.mapping]]"] + ["  " + x for x in scalars(m)]
    for rule in cfg.sampling:
        out += ["", "[[sampling]]"] + scalars(rule)
    for name in ("decoder", "aggregator", "reverse_dns", "forwarder", "metrics", "metadata"):
        out += ["", f"[{name}]"] + scalars(getattr(cfg, name))
    return "\n".join(out) + "\n"


def sections() -> dict[str, type]:
    """Section name -> attrs class, for the docs generator and its test."""
    return {"": Config, "listeners": ListenerConfig, "listeners.mapping": MappingConfig, "sampling": SamplingRule,
            "decoder": DecoderConfig, "aggregator": AggregatorConfig, "reverse_dns": ReverseDnsConfig,
            "forwarder": ForwarderConfig, "metrics": MetricsConfig, "metadata": MetadataConfig}
