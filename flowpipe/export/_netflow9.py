"""NetFlow v9 encoding (RFC 3954): template and data FlowSets, and export packets around them."""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from flowpipe.export._errors import TemplateError
from flowpipe.export._template import Template

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
