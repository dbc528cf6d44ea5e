"""IPFIX (RFC 7011) message encoding, sharing :class:`~flowpipe.export.Template` with NetFlow v9.

Differences from v9 that matter here: the header carries the message length and an export time
(no sysUptime); the sequence number counts data records (options data records included), not
messages; enterprise-specific fields are allowed; sets are not padded.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from flowpipe.export._errors import ExportError, TemplateError
from flowpipe.export._template import Template

IPFIX_HEADER = struct.Struct(">HHIII")  # version 10, length, export time, sequence, observation domain
_SET_HEADER = struct.Struct(">HH")
_ENTERPRISE = struct.Struct(">HHI")
MAX_MESSAGE = 0xFFFF

#: Options template announcing the exporter's boot time, needed to read flowStart/EndSysUpTime
#: (fields 22/21) in IPFIX. Scope: observationDomainId. Template id 65535 is reserved for it.
SYSTEM_INIT_TEMPLATE = Template([(149, 4), (160, 8)], template_id=0xFFFF)
UPTIME_FIELDS = frozenset((21, 22))


def template_record(t: Template, scope_count: int = -1) -> bytes:
    """A (options) template record: id, field count, [scope count,] field specifiers.

    IANA element ids stop at 32767 (the top bit marks an enterprise field): NetFlow v9 vendor
    types above it (Cisco ASA's 33000-40005) are refused."""
    wide = [f.id for f in t.fields if not f.enterprise and f.id > 0x7FFF]
    if wide:
        raise TemplateError(f"template {t.template_id}: field types {wide} are NetFlow v9 vendor types; IPFIX "
                            "element ids stop at 32767 (give an enterprise number)")
    head = (_SET_HEADER.pack(t.template_id, len(t.fields)) if scope_count < 0
            else struct.pack(">HHH", t.template_id, len(t.fields), scope_count))
    specs = [_ENTERPRISE.pack(f.id | 0x8000, f.length, f.enterprise) if f.enterprise
             else _SET_HEADER.pack(f.id, f.length) for f in t.fields]
    return head + b"".join(specs)


def template_set(templates: Sequence[Template]) -> bytes:
    """A template set (id 2)."""
    body = b"".join(template_record(t) for t in templates)
    return _SET_HEADER.pack(2, 4 + len(body)) + body


def options_template_set(template: Template, scope_count: int) -> bytes:
    """An options template set (id 3) with one options template whose first ``scope_count`` fields are scope."""
    body = template_record(template, scope_count)
    return _SET_HEADER.pack(3, 4 + len(body)) + body


def data_set(template: Template, packed: bytes) -> bytes:
    """A data set for ``template`` around packed records."""
    return _SET_HEADER.pack(template.template_id, 4 + len(packed)) + packed


def uses_uptime(template: Template) -> bool:
    """True when the template has sysUptime-relative time fields (21/22)."""
    return any(f.id in UPTIME_FIELDS and not f.enterprise for f in template.fields)


class IpfixEncoder:
    """Builds IPFIX messages for one observation domain.

    The sequence number is the count of data records sent before the message (mod 2**32); each
    message built advances it by the data records it holds (templates do not count).
    """

    HEADER_LENGTH = IPFIX_HEADER.size
    SET_HEADER_LENGTH = 4

    def __init__(self, observation_domain_id: int = 0, sequence: int = 0) -> None:
        self.observation_domain_id = observation_domain_id & 0xFFFFFFFF
        self.sequence = sequence & 0xFFFFFFFF

    def message(self, sets: Sequence[bytes], data_records: int, export_time: int) -> bytes:
        """A message around encoded sets holding ``data_records`` data records."""
        body = b"".join(sets)
        length = IPFIX_HEADER.size + len(body)
        if length > MAX_MESSAGE:
            raise ExportError(f"IPFIX message of {length} bytes exceeds {MAX_MESSAGE}")
        header = IPFIX_HEADER.pack(10, length, export_time & 0xFFFFFFFF, self.sequence, self.observation_domain_id)
        self.sequence = (self.sequence + data_records) & 0xFFFFFFFF
        return header + body

    def template_message(self, templates: Sequence[Template], export_time: int,
                         system_init_ms: int | None = None) -> bytes:
        """A message announcing ``templates``; with ``system_init_ms``, also the exporter's boot time
        (options template 65535 and one options record)."""
        sets = [template_set(templates)] if templates else []
        records = 0
        if system_init_ms is not None:
            sets.append(options_template_set(SYSTEM_INIT_TEMPLATE, 1))
            sets.append(data_set(SYSTEM_INIT_TEMPLATE,
                                 SYSTEM_INIT_TEMPLATE.pack([(self.observation_domain_id, system_init_ms)])))
            records = 1
        return self.message(sets, records, export_time)

    def data_message(self, template: Template, records: Sequence[Any], export_time: int) -> bytes:
        """A message with one data set holding ``records`` (no size limit is applied here)."""
        return self.message([data_set(template, template.pack(records))], len(records), export_time)
