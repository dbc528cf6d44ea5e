"""NetFlow v9 encoding (RFC 3954), plus the field registry and :class:`Template` it shares with IPFIX.

A template is an ordered list of ``(field type, length)`` pairs. It compiles once into a
:class:`struct.Struct` per batch size, so a batch of records is packed by a single ``pack`` call.
Vendor layouts are expressible too: zero-length fields (length 0, e.g. type 0 as some exporters
end their templates with; the value is ``b""``), variable-length fields (length 65535, RFC 7011 §7:
each value gets its 1-byte or 255 + 2-byte length prefix; also in NetFlow v9, as H3C sends) and the
vendor elements of Cisco ASA NSEL and WLC listed below; such templates pack record by record.
Records are tuples/lists (values in template order), dicts or attrs objects (looked up by name,
see :meth:`Template.rows`). Values are checked: a record that does not fit raises
:class:`RecordError` naming the record and the field; nothing is silently truncated or padded.
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import attrs


class ExportError(Exception):
    """Base of every error the exporter raises."""


class TemplateError(ExportError):
    """A template that cannot be encoded: unknown field type, bad length, bad template id."""


class RecordError(ExportError):
    """A record that does not fit its template: "record INDEX: DETAIL". ``index`` is its position in
    the batch given to the call that raised; ``field`` names the field at fault, when one is."""

    def __init__(self, detail: str, index: int = 0, field: str = "") -> None:
        super().__init__(f"record {index}: {detail}")
        self.detail, self.index, self.field = detail, index, field

    def shifted(self, offset: int) -> RecordError:
        """The same error for a record ``offset`` places further on in a larger batch."""
        return RecordError(self.detail, self.index + offset, self.field)


# Value kinds: how a field's value is checked and packed.
UINT, ADDR4, ADDR6, MAC, STRING, OCTETS = "uint", "addr4", "addr6", "mac", "string", "octets"


class FieldSpec(NamedTuple):
    """One known information element: id, IANA (IPFIX) name, NetFlow v9 name, kind, usual length."""

    id: int
    name: str
    v9_name: str
    kind: str
    length: int


_SPECS = [
    FieldSpec(1, "octetDeltaCount", "IN_BYTES", UINT, 4),
    FieldSpec(2, "packetDeltaCount", "IN_PKTS", UINT, 4),
    FieldSpec(3, "deltaFlowCount", "FLOWS", UINT, 4),
    FieldSpec(4, "protocolIdentifier", "PROTOCOL", UINT, 1),
    FieldSpec(5, "ipClassOfService", "SRC_TOS", UINT, 1),
    FieldSpec(6, "tcpControlBits", "TCP_FLAGS", UINT, 1),
    FieldSpec(7, "sourceTransportPort", "L4_SRC_PORT", UINT, 2),
    FieldSpec(8, "sourceIPv4Address", "IPV4_SRC_ADDR", ADDR4, 4),
    FieldSpec(9, "sourceIPv4PrefixLength", "SRC_MASK", UINT, 1),
    FieldSpec(10, "ingressInterface", "INPUT_SNMP", UINT, 2),
    FieldSpec(11, "destinationTransportPort", "L4_DST_PORT", UINT, 2),
    FieldSpec(12, "destinationIPv4Address", "IPV4_DST_ADDR", ADDR4, 4),
    FieldSpec(13, "destinationIPv4PrefixLength", "DST_MASK", UINT, 1),
    FieldSpec(14, "egressInterface", "OUTPUT_SNMP", UINT, 2),
    FieldSpec(15, "ipNextHopIPv4Address", "IPV4_NEXT_HOP", ADDR4, 4),
    FieldSpec(16, "bgpSourceAsNumber", "SRC_AS", UINT, 2),
    FieldSpec(17, "bgpDestinationAsNumber", "DST_AS", UINT, 2),
    FieldSpec(18, "bgpNextHopIPv4Address", "BGP_IPV4_NEXT_HOP", ADDR4, 4),
    FieldSpec(19, "postMCastPacketDeltaCount", "MUL_DST_PKTS", UINT, 4),
    FieldSpec(20, "postMCastOctetDeltaCount", "MUL_DST_BYTES", UINT, 4),
    FieldSpec(21, "flowEndSysUpTime", "LAST_SWITCHED", UINT, 4),
    FieldSpec(22, "flowStartSysUpTime", "FIRST_SWITCHED", UINT, 4),
    FieldSpec(23, "postOctetDeltaCount", "OUT_BYTES", UINT, 4),
    FieldSpec(24, "postPacketDeltaCount", "OUT_PKTS", UINT, 4),
    FieldSpec(27, "sourceIPv6Address", "IPV6_SRC_ADDR", ADDR6, 16),
    FieldSpec(28, "destinationIPv6Address", "IPV6_DST_ADDR", ADDR6, 16),
    FieldSpec(29, "sourceIPv6PrefixLength", "IPV6_SRC_MASK", UINT, 1),
    FieldSpec(30, "destinationIPv6PrefixLength", "IPV6_DST_MASK", UINT, 1),
    FieldSpec(31, "flowLabelIPv6", "IPV6_FLOW_LABEL", UINT, 4),
    FieldSpec(32, "icmpTypeCodeIPv4", "ICMP_TYPE", UINT, 2),
    FieldSpec(33, "igmpType", "MUL_IGMP_TYPE", UINT, 1),
    FieldSpec(34, "samplingInterval", "SAMPLING_INTERVAL", UINT, 4),
    FieldSpec(35, "samplingAlgorithm", "SAMPLING_ALGORITHM", UINT, 1),
    FieldSpec(36, "flowActiveTimeout", "FLOW_ACTIVE_TIMEOUT", UINT, 2),
    FieldSpec(37, "flowIdleTimeout", "FLOW_INACTIVE_TIMEOUT", UINT, 2),
    FieldSpec(38, "engineType", "ENGINE_TYPE", UINT, 1),
    FieldSpec(39, "engineId", "ENGINE_ID", UINT, 1),
    FieldSpec(40, "exportedOctetTotalCount", "TOTAL_BYTES_EXP", UINT, 4),
    FieldSpec(41, "exportedMessageTotalCount", "TOTAL_PKTS_EXP", UINT, 4),
    FieldSpec(42, "exportedFlowRecordTotalCount", "TOTAL_FLOWS_EXP", UINT, 4),
    FieldSpec(48, "samplerId", "FLOW_SAMPLER_ID", UINT, 1),
    FieldSpec(52, "minimumTTL", "MIN_TTL", UINT, 1),
    FieldSpec(53, "maximumTTL", "MAX_TTL", UINT, 1),
    FieldSpec(55, "postIpClassOfService", "DST_TOS", UINT, 1),
    FieldSpec(56, "sourceMacAddress", "IN_SRC_MAC", MAC, 6),
    FieldSpec(57, "postDestinationMacAddress", "OUT_DST_MAC", MAC, 6),
    FieldSpec(58, "vlanId", "SRC_VLAN", UINT, 2),
    FieldSpec(59, "postVlanId", "DST_VLAN", UINT, 2),
    FieldSpec(60, "ipVersion", "IP_PROTOCOL_VERSION", UINT, 1),
    FieldSpec(61, "flowDirection", "DIRECTION", UINT, 1),
    FieldSpec(62, "ipNextHopIPv6Address", "IPV6_NEXT_HOP", ADDR6, 16),
    FieldSpec(63, "bgpNextHopIPv6Address", "BGP_IPV6_NEXT_HOP", ADDR6, 16),
    FieldSpec(64, "ipv6ExtensionHeaders", "IPV6_OPTION_HEADERS", UINT, 4),
    FieldSpec(80, "destinationMacAddress", "IN_DST_MAC", MAC, 6),
    FieldSpec(81, "postSourceMacAddress", "OUT_SRC_MAC", MAC, 6),
    FieldSpec(82, "interfaceName", "IF_NAME", STRING, 16),
    FieldSpec(83, "interfaceDescription", "IF_DESC", STRING, 32),
    FieldSpec(85, "octetTotalCount", "IN_PERMANENT_BYTES", UINT, 8),
    FieldSpec(86, "packetTotalCount", "IN_PERMANENT_PKTS", UINT, 8),
    FieldSpec(89, "forwardingStatus", "FORWARDING_STATUS", UINT, 1),
    FieldSpec(136, "flowEndReason", "FLOW_END_REASON", UINT, 1),
    FieldSpec(139, "icmpTypeCodeIPv6", "ICMP_IPV6_TYPE_CODE", UINT, 2),
    FieldSpec(143, "meteringProcessId", "METERING_PROCESS_ID", UINT, 4),
    FieldSpec(148, "flowId", "FLOW_ID", UINT, 8),
    FieldSpec(149, "observationDomainId", "OBSERVATION_DOMAIN_ID", UINT, 4),
    FieldSpec(150, "flowStartSeconds", "FLOW_START_SEC", UINT, 4),
    FieldSpec(151, "flowEndSeconds", "FLOW_END_SEC", UINT, 4),
    FieldSpec(152, "flowStartMilliseconds", "FLOW_START_MILLISECONDS", UINT, 8),
    FieldSpec(153, "flowEndMilliseconds", "FLOW_END_MILLISECONDS", UINT, 8),
    FieldSpec(160, "systemInitTimeMilliseconds", "SYSTEM_INIT_TIME_MILLISECONDS", UINT, 8),
    FieldSpec(176, "icmpTypeIPv4", "ICMP_IPV4_TYPE", UINT, 1),
    FieldSpec(177, "icmpCodeIPv4", "ICMP_IPV4_CODE", UINT, 1),
    FieldSpec(225, "postNATSourceIPv4Address", "XLATE_SRC_ADDR_IPV4", ADDR4, 4),
    FieldSpec(226, "postNATDestinationIPv4Address", "XLATE_DST_ADDR_IPV4", ADDR4, 4),
    FieldSpec(227, "postNAPTSourceTransportPort", "XLATE_SRC_PORT", UINT, 2),
    FieldSpec(228, "postNAPTDestinationTransportPort", "XLATE_DST_PORT", UINT, 2),
    FieldSpec(234, "ingressVRFID", "INGRESS_VRFID", UINT, 4),
    FieldSpec(235, "egressVRFID", "EGRESS_VRFID", UINT, 4),
    FieldSpec(239, "biflowDirection", "BIFLOW_DIRECTION", UINT, 1),
    FieldSpec(243, "dot1qVlanId", "DOT1Q_VLAN_ID", UINT, 2),
    FieldSpec(256, "ethernetType", "ETHERNET_TYPE", UINT, 2),
    # Vendor layouts (Cisco ASA NSEL, Cisco WLC, H3C): IANA elements and NetFlow v9 vendor types
    FieldSpec(0, "reserved", "RESERVED", OCTETS, 0),
    FieldSpec(95, "applicationId", "APPLICATION_ID", OCTETS, 4),
    FieldSpec(98, "postIpDiffServCodePoint", "POST_DSCP", UINT, 1),
    FieldSpec(147, "wlanSSID", "WLAN_SSID", STRING, 33),
    FieldSpec(178, "icmpTypeIPv6", "ICMP_IPV6_TYPE", UINT, 1),
    FieldSpec(179, "icmpCodeIPv6", "ICMP_IPV6_CODE", UINT, 1),
    FieldSpec(195, "ipDiffServCodePoint", "DSCP", UINT, 1),
    FieldSpec(231, "initiatorOctets", "NF_F_FWD_FLOW_DELTA_BYTES", UINT, 4),
    FieldSpec(232, "responderOctets", "NF_F_REV_FLOW_DELTA_BYTES", UINT, 4),
    FieldSpec(233, "firewallEvent", "NF_F_FW_EVENT", UINT, 1),
    FieldSpec(236, "VRFname", "VRF_NAME", STRING, 32),
    FieldSpec(281, "postNATSourceIPv6Address", "NF_F_XLATE_SRC_ADDR_IPV6", ADDR6, 16),
    FieldSpec(282, "postNATDestinationIPv6Address", "NF_F_XLATE_DST_ADDR_IPV6", ADDR6, 16),
    FieldSpec(298, "initiatorPackets", "INITIATOR_PACKETS", UINT, 8),
    FieldSpec(299, "responderPackets", "RESPONDER_PACKETS", UINT, 8),
    FieldSpec(323, "observationTimeMilliseconds", "NF_F_EVENT_TIME_MSEC", UINT, 8),
    FieldSpec(365, "staMacAddress", "STA_MAC_ADDRESS", MAC, 6),
    FieldSpec(366, "staIPv4Address", "STA_IPV4_ADDRESS", ADDR4, 4),
    FieldSpec(367, "wtpMacAddress", "WTP_MAC_ADDRESS", MAC, 6),
    FieldSpec(33000, "NF_F_INGRESS_ACL_ID", "NF_F_INGRESS_ACL_ID", OCTETS, 12),
    FieldSpec(33001, "NF_F_EGRESS_ACL_ID", "NF_F_EGRESS_ACL_ID", OCTETS, 12),
    FieldSpec(33002, "NF_F_FW_EXT_EVENT", "NF_F_FW_EXT_EVENT", UINT, 2),
    FieldSpec(40000, "NF_F_USERNAME", "NF_F_USERNAME", STRING, 20),
    FieldSpec(40005, "NF_F_FW_EVENT_84", "NF_F_FW_EVENT_84", UINT, 1),
]

FIELDS: dict[int, FieldSpec] = {s.id: s for s in _SPECS}
FIELD_IDS: dict[str, int] = {**{s.name: s.id for s in _SPECS}, **{s.v9_name: s.id for s in _SPECS}}

_UINT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
VARLEN = 0xFFFF  # a variable-length field (RFC 7011 §7)
_KIND_LENGTHS = {ADDR4: (4,), ADDR6: (16,), MAC: (6,)}


class Field(NamedTuple):
    """A compiled template field: type id, wire length, enterprise number (0 = IANA), spec."""

    id: int
    length: int
    enterprise: int
    spec: FieldSpec

    @property
    def name(self) -> str:
        return self.spec.name


def field_id(name_or_id: int | str) -> int:
    """The field type id for an id or an IANA / NetFlow v9 name; TemplateError when unknown."""
    if isinstance(name_or_id, int):
        return name_or_id
    try:
        return FIELD_IDS[name_or_id]
    except KeyError:
        raise TemplateError(f"unknown field type name {name_or_id!r}") from None


def _compile_field(item: Any) -> Field:
    if isinstance(item, (int, str)):
        item = (item,)
    if not isinstance(item, (tuple, list)) or not 1 <= len(item) <= 3:
        raise TemplateError(f"template field {item!r}: expected (field type, length[, enterprise number])")
    fid = field_id(item[0])
    enterprise = int(item[2]) if len(item) == 3 else 0
    if enterprise:
        if not 0 < fid < 0x8000:
            raise TemplateError(f"enterprise field type {fid} out of range 1..32767")
        length = int(item[1])
        kind = UINT if length in _UINT_CODES else OCTETS
        spec = FieldSpec(fid, f"{enterprise}:{fid}", f"{enterprise}:{fid}", kind, length)
    else:
        if fid not in FIELDS:
            raise TemplateError(f"unknown field type {fid} (flowpipe.export knows {len(FIELDS)} IANA fields; "
                                "give an enterprise number for vendor fields)")
        spec = FIELDS[fid]
        length = int(item[1]) if len(item) >= 2 else spec.length
    if length in (0, VARLEN):
        if spec.kind not in (OCTETS, STRING):
            what = "zero-length" if length == 0 else "variable-length"
            raise TemplateError(f"field {spec.name} ({fid}): a {what} field must be octets or a string, "
                                f"not {spec.kind}")
        return Field(fid, length, enterprise, spec)
    allowed = _KIND_LENGTHS.get(spec.kind)
    if allowed and length not in allowed:
        raise TemplateError(f"field {spec.name} ({fid}) must be {allowed[0]} bytes long, not {length}")
    if spec.kind == UINT and not 1 <= length <= 8:
        raise TemplateError(f"field {spec.name} ({fid}): integer length must be 1..8, not {length}")
    if not 1 <= length < 0xFFFF:
        raise TemplateError(f"field {spec.name} ({fid}): bad length {length}")
    return Field(fid, length, enterprise, spec)


def _struct_code(f: Field) -> str:
    if f.length == VARLEN:
        raise TemplateError(f"field {f.name} ({f.id}) is variable-length: it has no struct code")
    if f.spec.kind == UINT and f.length in _UINT_CODES:
        return _UINT_CODES[f.length]
    return f"{f.length}s"


def to_address(value: Any, length: int) -> bytes:
    """An address of ``length`` (4 or 16) bytes from bytes, text, ipaddress object or int.

    ``b""`` (flowpipe's "no address") encodes as the all-zero address.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if raw == b"":
            return bytes(length)
        if len(raw) != length:
            raise ValueError(f"address is {len(raw)} bytes, expected {length}")
        return raw
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << (8 * length):
            raise ValueError(f"address {value} out of range")
        return value.to_bytes(length, "big")
    if isinstance(value, str):
        try:
            value = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        if len(value.packed) != length:
            raise ValueError(f"{value} is IPv{value.version}, expected IPv{4 if length == 4 else 6}")
        return value.packed
    raise ValueError(f"{type(value).__name__} is not an address")


def to_mac(value: Any) -> bytes:
    """Six MAC bytes from an int (flowpipe's form), bytes or ``aa:bb:cc:dd:ee:ff`` text."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << 48:
            raise ValueError(f"MAC {value} out of range")
        return value.to_bytes(6, "big")
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 6:
            raise ValueError(f"MAC is {len(value)} bytes, expected 6")
        return bytes(value)
    if isinstance(value, str):
        parts = value.replace("-", ":").split(":")
        if len(parts) == 6 and all(len(p) <= 2 for p in parts):
            try:
                return bytes(int(p, 16) for p in parts)
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a MAC address")
    raise ValueError(f"{type(value).__name__} is not a MAC address")


def _to_uint(value: Any, length: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{type(value).__name__} {value!r} is not an integer")
    if not 0 <= value < 1 << (8 * length):
        raise ValueError(f"{value} does not fit in {length} byte(s)")
    return value


def _to_octets(value: Any, length: int, text: bool) -> bytes:
    if text and isinstance(value, str):
        value = value.encode()
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"{type(value).__name__} is not bytes")
    if length == VARLEN:
        if len(value) >= VARLEN:
            raise ValueError(f"{len(value)} bytes do not fit a variable-length field (at most 65534)")
        return varlen_prefix(len(value)) + bytes(value)
    if text:
        if len(value) > length:
            raise ValueError(f"{len(value)} bytes do not fit in {length}")
        return bytes(value).ljust(length, b"\0")
    if len(value) != length:
        raise ValueError(f"{len(value)} bytes, expected exactly {length}")
    return bytes(value)


def varlen_prefix(n: int) -> bytes:
    """The RFC 7011 §7 length prefix of an ``n``-byte variable-length value."""
    return bytes([n]) if n < 255 else b"\xff" + n.to_bytes(2, "big")


def convert(f: Field, value: Any) -> Any:
    """``value`` as packed for field ``f`` (int or bytes); ValueError saying why it does not fit."""
    kind = f.spec.kind
    if kind == UINT:
        v = _to_uint(value, f.length)
        return v if f.length in _UINT_CODES else v.to_bytes(f.length, "big")
    if kind in (ADDR4, ADDR6):
        return to_address(value, f.length)
    if kind == MAC:
        return to_mac(value)
    return _to_octets(value, f.length, kind == STRING)


class Template:
    """An ordered list of ``(field type, length)`` pairs with a template id (256..65535).

    Fields may be given as ids or IANA/NetFlow v9 names, with the length left out for the usual
    one, and as ``(type, length, enterprise number)`` for vendor fields (IPFIX only). ``names``
    optionally names the record attributes/keys for each field (see :meth:`rows`).
    """

    def __init__(self, fields: Iterable[Any], template_id: int = 256, names: Sequence[str] | None = None) -> None:
        if not 256 <= template_id <= 0xFFFF:
            raise TemplateError(f"template id {template_id} out of range 256..65535")
        self.template_id = template_id
        self.fields: tuple[Field, ...] = tuple(_compile_field(f) for f in fields)
        if not self.fields:
            raise TemplateError("a template needs at least one field")
        if names is not None and len(names) != len(self.fields):
            raise TemplateError(f"{len(names)} names for {len(self.fields)} fields")
        self.names: tuple[str, ...] | None = tuple(names) if names is not None else None
        #: True when some field is variable-length: records are then packed one by one, and
        #: ``record_length`` is the shortest record (every variable-length value empty).
        self.variable = any(f.length == VARLEN for f in self.fields)
        self.record_length = sum(1 if f.length == VARLEN else f.length for f in self.fields)
        self._body = "" if self.variable else "".join(_struct_code(f) for f in self.fields)
        self.record_struct = struct.Struct(">" + self._body)
        # Fast path: canonical tuples need no conversion when every field is a native struct code.
        self._fast = not self.variable and all(
            (f.spec.kind == UINT and f.length in _UINT_CODES) or f.spec.kind in (ADDR4, ADDR6) for f in self.fields)
        self._byte_checks = [(itemgetter(i), f.length) for i, f in enumerate(self.fields) if f.spec.kind != UINT]
        self._batch: dict[int, struct.Struct] = {}

    @property
    def key(self) -> tuple:
        """What identifies the template on the wire: id and (type, length, enterprise) per field."""
        return (self.template_id, tuple((f.id, f.length, f.enterprise) for f in self.fields))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Template({[(f.id, f.length) for f in self.fields]}, template_id={self.template_id})"

    def index(self, fid: int | str) -> int:
        """Position of the first field of type ``fid`` (id or name); -1 when absent."""
        fid = field_id(fid)
        for i, f in enumerate(self.fields):
            if f.id == fid and not f.enterprise:
                return i
        return -1

    def batch_struct(self, n: int) -> struct.Struct:
        """The precompiled struct that packs ``n`` records in one call (fixed-length templates)."""
        if self.variable:
            raise TemplateError(f"template {self.template_id} has variable-length fields: no batch struct")
        s = self._batch.get(n)
        if s is None:
            s = self._batch[n] = struct.Struct(">" + self._body * n)
        return s

    def pack(self, records: Sequence[Any]) -> bytes:
        """The records encoded back to back (no set header, no padding).

        Tuples of canonical values (ints; addresses as 4/16 bytes) take a single ``struct`` call;
        anything else goes through :meth:`rows`, which converts and checks each value.
        """
        if self.variable:
            return b"".join(b"".join(v if isinstance(v, bytes) else v.to_bytes(f.length, "big")
                                     for f, v in zip(self.fields, row, strict=True))
                            for row in self.rows(records))
        st = self.batch_struct(len(records))
        if self._fast and self.canonical(records):
            try:
                return st.pack(*chain.from_iterable(records))
            except struct.error:
                pass  # rows() below names the record and field at fault
        return st.pack(*chain.from_iterable(self.rows(records)))

    def canonical(self, records: Sequence[Any]) -> bool:
        """True when every record is a tuple of the right length whose address fields are bytes of the
        right length (the cheap pre-check of the one-call packing path)."""
        if not all(issubclass(t, tuple) for t in set(map(type, records))):
            return False
        if set(map(len, records)) != {len(self.fields)}:
            return False
        for get, length in self._byte_checks:
            try:
                if set(map(len, map(get, records))) != {length}:
                    return False
            except TypeError:
                return False
        return True

    def rows(self, records: Iterable[Any]) -> list[tuple]:
        """Each record as a tuple of checked wire values, in template order.

        A tuple/list holds the values in template order. A dict or attrs object is read by name:
        for each field the template's ``names`` entry, then the field id (dicts only), the IANA
        name and the NetFlow v9 name. Missing or unknown names, wrong counts, values out of range
        raise :class:`RecordError`.
        """
        return [self.row(r, i) for i, r in enumerate(records)]

    def row(self, record: Any, index: int = 0) -> tuple:
        """One record as a tuple of checked wire values (see :meth:`rows`)."""
        values = self._values(record, index)
        out = []
        for f, v in zip(self.fields, values, strict=True):
            try:
                out.append(convert(f, v))
            except ValueError as e:
                raise RecordError(f"field {f.name} ({f.id}): {e}", index, f.name) from None
        return tuple(out)

    def _values(self, record: Any, index: int) -> Sequence[Any]:
        if isinstance(record, (tuple, list)):
            if len(record) != len(self.fields):
                raise RecordError(f"{len(record)} values, but template {self.template_id} "
                                  f"has {len(self.fields)} fields", index)
            return record
        if isinstance(record, Mapping):
            return self._by_name(record, index, from_dict=True)
        if attrs.has(type(record)):
            return self._by_name(attrs.asdict(record, recurse=False), index, from_dict=False)
        raise RecordError(f"a {type(record).__name__} is not a tuple, dict or attrs object", index)

    def _by_name(self, record: Mapping[Any, Any], index: int, from_dict: bool) -> list[Any]:
        values, used = [], set()
        for i, f in enumerate(self.fields):
            keys: list[Any] = [self.names[i]] if self.names else []
            keys += [f.id] if from_dict else []
            keys += [f.spec.name, f.spec.v9_name]
            for k in keys:
                if k in record:
                    values.append(record[k])
                    used.add(k)
                    break
            else:
                raise RecordError(f"missing field {f.name} ({f.id}); looked for {keys}", index, f.name)
        extra = [k for k in record if k not in used]
        if extra:
            raise RecordError(f"{extra} match no field of template {self.template_id}", index)
        return values


# --- NetFlow v9 packets ---------------------------------------------------------------------------

V9_HEADER = struct.Struct(">HHIIII")  # version, count, sysUptime, unix_secs, sequence, source id
_SET_HEADER = struct.Struct(">HH")


def _pad4(n: int) -> int:
    return -n % 4


def v9_template_record(t: Template) -> bytes:
    """One template record (template id, field count, then type/length pairs)."""
    if any(f.enterprise for f in t.fields):
        raise TemplateError(f"template {t.template_id}: NetFlow v9 cannot carry enterprise fields (use IPFIX)")
    parts = [_SET_HEADER.pack(t.template_id, len(t.fields))]
    parts += [_SET_HEADER.pack(f.id, f.length) for f in t.fields]
    return b"".join(parts)


def v9_template_flowset(templates: Sequence[Template]) -> bytes:
    """A template FlowSet (id 0) holding the given templates."""
    body = b"".join(v9_template_record(t) for t in templates)
    return _SET_HEADER.pack(0, 4 + len(body)) + body


def v9_data_flowset(template: Template, packed: bytes) -> bytes:
    """A data FlowSet for ``template`` around already packed records, padded to 4 bytes (not when
    the padding could read as a record: records shorter than 4 bytes)."""
    pad = _pad4(len(packed)) if template.record_length > 3 else 0
    return _SET_HEADER.pack(template.template_id, 4 + len(packed) + pad) + packed + bytes(pad)


class Netflow9Encoder:
    """Builds NetFlow v9 export packets for one source id.

    The sequence number counts export packets (RFC 3954): each packet this encoder builds carries
    the number of packets built before it, then increments it. ``count`` in the header is the
    number of records (template and data) in the packet.
    """

    HEADER_LENGTH = V9_HEADER.size
    SET_HEADER_LENGTH = 4

    def __init__(self, source_id: int = 0, sequence: int = 0) -> None:
        self.source_id = source_id & 0xFFFFFFFF
        self.sequence = sequence & 0xFFFFFFFF

    def packet(self, flowsets: Sequence[bytes], count: int, sys_uptime_ms: int, unix_secs: int) -> bytes:
        """An export packet around encoded FlowSets holding ``count`` records."""
        header = V9_HEADER.pack(9, count, sys_uptime_ms & 0xFFFFFFFF, unix_secs & 0xFFFFFFFF,
                                self.sequence, self.source_id)
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        return header + b"".join(flowsets)

    def template_packet(self, templates: Sequence[Template], sys_uptime_ms: int, unix_secs: int) -> bytes:
        """A packet announcing ``templates``."""
        return self.packet([v9_template_flowset(templates)], len(templates), sys_uptime_ms, unix_secs)

    def data_packet(self, template: Template, records: Sequence[Any], sys_uptime_ms: int, unix_secs: int) -> bytes:
        """A packet with one data FlowSet holding ``records`` (no size limit is applied here)."""
        return self.packet([v9_data_flowset(template, template.pack(records))], len(records),
                           sys_uptime_ms, unix_secs)
