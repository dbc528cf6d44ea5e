"""The ``[[listeners]]`` section: one UDP listener, its port and what its decoder is told about exporters."""
from __future__ import annotations

import ipaddress

import attrs

from flowpipe.decode.config import MappingConfig
from flowpipe.sections import doc, key, networks, one_of, positive
from flowpipe.sections import port as port_number

FLOW_TYPES = ("netflow5", "netflow9", "ipfix", "sflow5")
DEFAULT_PORTS = {"netflow5": 2055, "netflow9": 2055, "ipfix": 4739, "sflow5": 6343}


@attrs.define(slots=True, kw_only=True)
class ListenerConfig:
    """One UDP listener."""

    flow_type: str = attrs.field(validator=one_of(*FLOW_TYPES), metadata=doc(
        "netflow5 | netflow9 | ipfix | sflow5 (required); picks the default port and the metrics label"))
    bind_host: str = key("0.0.0.0", None, "address to bind; \"::\" for dual stack")
    port: int = key(0, port_number,
        "UDP port; 0 = the flow type's default (netflow5/netflow9 2055, ipfix 4739, sflow5 6343)")
    workers: int = key(1, positive,
        "worker processes on the port (SO_REUSEPORT), each a whole pipeline: they spread decoding CPU; "
        "the kernel keeps an exporter on one worker (docs/architecture.md, Workers)")
    namespace: str = key("default", None, "payload device.namespace")
    mapping: list[MappingConfig] = key([], None, "NetFlow v9 / IPFIX fields to collect beyond the defaults")
    receive_buffer: int = key(32 * 1024 * 1024, positive,
        "SO_RCVBUF bytes requested for each socket (the kernel caps it at net.core.rmem_max)")
    allowed_exporters: list[str] = key([], None,
        "CIDRs whose datagrams are accepted; others are dropped before decoding and counted"
        " (reason not_allowed); [] = everyone")
    tags: dict[str, str] = key({}, None,
        "key/values added to the additional_fields of every flow this listener receives")
    exporter_address: str | None = key(None, attrs.validators.optional(one_of("udp", "in-band")),
        "what identifies an exporter (payload exporter.ip, template and sequence state): \"udp\" = the"
        " datagram's UDP source address; \"in-band\" = what the export says: the sFlow agent address,"
        " IPFIX/v9 exporterIPv4Address/exporterIPv6Address (130/131) once sent, else the source id /"
        " observation domain mapped by `exporters`, else the UDP source. [sflow5: \"in-band\", others:"
        " \"udp\"]. Behind NAT (Docker, Kubernetes) use \"in-band\"; see docs/exporter-identity.md")
    exporters: dict[str, str] = key({}, None,
        "with exporter_address = \"in-band\": NetFlow v9 source id / IPFIX observation domain id -> the"
        " exporter's address or name, e.g. {\"2193\" = \"10.0.0.1\"}; an id not listed falls back to the UDP"
        " source")
    reverse_flows: bool = key(False, None,
        "NetFlow v9 / IPFIX: a bidirectional record (RFC 5103 reverse counters 29305/1, /2, /85, /86;"
        " IXIA 3054/176, /177; Cisco ASA NSEL responderOctets 232) also yields the reverse direction"
        " as a flow of its own, endpoints and ports swapped, with the reverse bytes and packets"
        " (docs/payload.md, Vendor rules); off: reverse counters are dropped, NSEL adds them to the"
        " connection's one flow")
    passthrough_unknown: bool = key(False, None,
        "NetFlow v9 / IPFIX: put every element flowpipe has no IANA name or mapping for into"
        " additional_fields as \"<id>\" or \"<enterprise>.<id>\" = hex value (at most 256 bytes of each value,"
        " 64 elements per template)")

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
        networks("allowed_exporters", self.allowed_exporters)

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
