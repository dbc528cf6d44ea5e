"""The decoder's config sections: ``[decoder]`` (template state), ``[[listeners.mapping]]`` (fields
to collect) and ``[[sampling]]`` (sampling-rate rules)."""
from __future__ import annotations

import attrs

from flowpipe.sections import doc, key, networks, non_negative, one_of, positive


@attrs.define(slots=True, kw_only=True)
class MappingConfig:
    """One NetFlow v9 / IPFIX field to collect beyond the defaults."""

    field: int | str = attrs.field(metadata=doc(
        "information element id or IANA name (225 or \"postNATSourceIPv4Address\"; RFC 5103 reverse names"
        " too); IPFIX enterprise fields as \"ENTERPRISE:ID\""))
    destination: str = attrs.field(metadata=doc(
        "a payload field it fills (e.g. \"direction\", \"source.port\") or a key under additional_fields"))
    type: str = key(None, attrs.validators.optional(one_of("integer", "string", "hex", "ip", "mac")),
        "how the value is decoded: integer | string | hex | ip | mac; absent: hex, as the Datadog"
        " Agent (a 2-byte 0x2d0c gives \"2d0c\"), except integer for the built-in integer"
        " destinations (direction, source.port, ...)")
    endianness: str = key("big", one_of("big", "little"), "byte order for integer: big | little")

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
class SamplingRule:
    """Sampling rate for exporters that announce none, or whatever they announce."""

    exporters: list[str] = key(["0.0.0.0/0", "::/0"], None,
        "CIDRs of the exporters this rule is for; the first matching rule applies")
    default: int = key(0, non_negative, "rate (1 in N) for flows whose exporter announced none; 0 = no default")
    override: int = key(0, non_negative, "rate (1 in N) used whatever the exporter announced; 0 = no override")
    sampler_id: int = key(-1, None,
        "NetFlow v9/IPFIX sampler id (IE 48/302) the rule is for; -1 = the exporter as a whole")

    def __attrs_post_init__(self) -> None:
        networks("exporters", self.exporters)


@attrs.define(slots=True, kw_only=True)
class DecoderConfig:
    """NetFlow v9 / IPFIX template state, shared by all listeners."""

    # One sections.key a line: a declaration table, alike in shape to every section's on purpose (not logic).
    template_timeout: float = key(1800.0, positive, "seconds a template is kept without being refreshed")
    max_templates_per_exporter: int = key(1024, positive,
        "templates kept per exporter (all domains); past it new ones are refused and counted")
    max_exporters: int = key(10000, positive,
        "exporters whose template state is kept; past it new exporters' templates are refused and counted")
    max_templates: int = key(65536, positive,
        "templates kept in all (all exporters; a used template takes ~2-5 KB); past it new ones are refused and "
        "counted")
    hold_timeout: float = key(60.0, non_negative,
        "seconds data that arrived before its template is held waiting for it (0 disables holding)")
    hold_max_per_exporter: int = key(256, non_negative,
        "datagrams held per exporter waiting for templates; the oldest is dropped past it")
    hold_max_bytes: int = key(16 * 1024 * 1024, non_negative,
        "memory held in all by data waiting for templates (its bytes plus ~0.5 KB per datagram and more per "
        "set); the oldest is dropped past it")
    state_file: str = key("", None,
        "file where templates and sampling rates are saved and reloaded at start; \"\" = off")
    nsel_max_connections_per_exporter: int = key(65536, positive,
        "Cisco ASA NSEL: connections whose flow-update counts are remembered per export stream (so that"
        " their teardown is not counted twice; ~400 bytes each); past it the stream's least recently"
        " updated one is forgotten and counted (docs/payload.md, Vendor rules)")
    nsel_max_connections: int = key(131072, positive,
        "Cisco ASA NSEL: such connections remembered in all (all exporters; 131072 take ~50 MB); past it"
        " an exporter forgets its own oldest, never another's")
