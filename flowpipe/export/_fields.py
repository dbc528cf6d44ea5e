"""The information elements the exporter knows: ids, IANA and NetFlow v9 names, value kinds, usual lengths."""
from __future__ import annotations

from typing import NamedTuple

from flowpipe.export._errors import TemplateError

# Value kinds: how a field's value is checked and packed.
UINT, ADDR4, ADDR6, MAC, STRING, OCTETS = "uint", "addr4", "addr6", "mac", "string", "octets"


class FieldSpec(NamedTuple):
    """One known information element: id, IANA (IPFIX) name, NetFlow v9 name, kind, usual length.

    ``kind`` says how values are checked and packed: "uint", "addr4", "addr6", "mac", "string"
    (text or bytes, zero-padded) or "octets" (bytes of exactly the length).
    """

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

UINT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}  # struct codes of the native integer lengths
VARLEN = 0xFFFF  # a variable-length field (RFC 7011 §7)


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

