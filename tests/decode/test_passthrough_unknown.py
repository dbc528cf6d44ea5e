"""``listeners.passthrough_unknown``: elements with no name and no mapping reach additional_fields as hex."""
from __future__ import annotations

import struct
import time

from flowpipe.config import DecoderConfig, MappingConfig
from flowpipe.decode.base import Source
from flowpipe.decode.elements import PASSTHROUGH_FIELDS, PASSTHROUGH_MAX, Mapping, compile_records
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.flow import Flow
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, running, send_udp


def ipfix(*sets: bytes, domain: int = 1) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), int(time.time()), 0, domain) + body


def v9(*sets: bytes, source_id: int = 1) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIIII", 9, 1, 100_000, int(time.time()), 0, source_id) + body


def fset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def spec(eid: int, ln: int, pen: int = 0) -> bytes:
    return struct.pack("!HHI", eid | 0x8000, ln, pen) if pen else struct.pack("!HH", eid, ln)


def template(tid: int, fields: list[tuple[int, ...]], sid: int = 2) -> bytes:
    return fset(sid, struct.pack("!HH", tid, len(fields)) + b"".join(spec(*f) for f in fields))


def varlen(b: bytes) -> bytes:
    return (bytes([len(b)]) if len(b) < 255 else b"\xff" + struct.pack("!H", len(b))) + b


# bytes, src, dst, vlanId (known, unused), enterprise 9 element 1234 (variable length), IANA 500
# (newer than the table: no name), reverseOctetDeltaCount (RFC 5103, named), enterprise 6871:14 (mapped)
LAYOUT = [(1, 4), (8, 4), (12, 4), (58, 2), (1234, 65535, 9), (500, 2), (1, 4, 29305), (14, 2, 6871)]


def record(n: int, blob: bytes) -> bytes:
    return (struct.pack("!I4s4sH", 1000 + n, bytes([10, 5, 0, n]), bytes([10, 6, 0, 1]), 12) + varlen(blob)
            + struct.pack("!HIH", 0xBEEF, 7, 99))


async def test_unknown_enterprise_element_reaches_additional_fields() -> None:
    listener = {"flow_type": "ipfix", "passthrough_unknown": True,
                "mapping": [MappingConfig(field="6871:14", destination="app", type="integer")]}
    with Backend() as be:
        async with running(make_config(be.url, listeners=[listener])) as svc:
            send_udp(svc.listeners[0].cfg.port,
                     [ipfix(template(256, LAYOUT), fset(256, record(1, b"\x01\x02\xff") + record(2, b"x" * 300)))],
                     "127.0.31.1")
            assert await be.wait_flows_async(2, 10)
    by_src = {f["source"]["ip"]: f for f in be.flows}
    assert by_src["10.5.0.1"]["additional_fields"] == {"9.1234": "0102ff", "500": "beef", "app": 99}
    long = by_src["10.5.0.2"]["additional_fields"]["9.1234"]
    assert long == ("78" * PASSTHROUGH_MAX) and PASSTHROUGH_MAX == 256  # truncated to 256 bytes


async def test_v9_unknown_field_type_and_off_by_default() -> None:
    layout = [(1, 4), (8, 4), (12, 4), (40001, 2), (58, 2)]
    body = struct.pack("!I4s4sHH", 64, bytes([10, 7, 0, 1]), bytes([10, 7, 0, 2]), 0x0102, 5)
    with Backend() as be:
        for i, listener in enumerate([{"flow_type": "netflow9", "passthrough_unknown": True},
                                      {"flow_type": "netflow9"}]):
            async with running(make_config(be.url, listeners=[listener])) as svc:
                send_udp(svc.listeners[0].cfg.port, [v9(template(256, layout, sid=0), fset(256, body))],
                         f"127.0.32.{i + 1}")
                assert await be.wait_flows_async(i + 1, 10)
    by_exporter = {f["exporter"]["ip"]: f for f in be.flows}
    assert by_exporter["127.0.32.1"]["additional_fields"] == {"40001": "0102"}
    assert "additional_fields" not in by_exporter["127.0.32.2"]


def test_costs_nothing_when_off() -> None:
    fields = [(0, 1, 4), (9, 1234, 4), (0, 500, 2)]  # (enterprise, id, length)
    off = compile_records(fields, 10, Mapping())
    on = compile_records(fields, 10, Mapping(), passthrough=True)
    assert ".hex()" not in off.source and off.source.count("None") == 1  # extras slot: a constant None
    assert on.source.count(".hex()") == 2
    rec = struct.pack("!IIH", 5, 0xA0B0C0D0, 1)
    assert Flow._make(off.decode(rec, "e", "n", 0, {}, 0, 0, None)[0]).extras is None
    assert Flow._make(on.decode(rec, "e", "n", 0, {}, 0, 0, None)[0]).extras == {"9.1234": "a0b0c0d0", "500": "0001"}


def test_first_occurrence_only_and_options_untouched() -> None:
    dec = TemplateDecoder(DecoderConfig(), passthrough=True)
    layout = [(1, 4), (700, 1), (700, 1)]
    (f,) = dec.decode(ipfix(template(256, layout), fset(256, struct.pack("!IBB", 1, 0xAA, 0xBB))), Source("h")).flows
    assert Flow._make(f).extras == {"700": "aa"}


def test_elements_per_template_are_bounded() -> None:
    fields = [(0, 1, 4)] + [(7, 100 + i, 1) for i in range(PASSTHROUGH_FIELDS + 10)]
    dec = compile_records(fields, 10, Mapping(), passthrough=True)
    (row,) = dec.decode(struct.pack("!I", 1) + bytes(range(PASSTHROUGH_FIELDS + 10)), "e", "n", 0, {}, 0, 0, None)
    extras = Flow._make(row).extras
    assert extras is not None and len(extras) == PASSTHROUGH_FIELDS == 64 and extras["7.100"] == "00"


def test_a_mapping_to_exporter_ip_is_not_an_in_band_identity() -> None:
    mapping = Mapping([MappingConfig(field=130, destination="exporter.ip", type="ip")])
    assert compile_records([(0, 130, 4), (0, 1, 4)], 10, mapping, in_band=True).identity is False
    assert compile_records([(0, 130, 4), (0, 1, 4)], 10, Mapping(), in_band=True).identity is True
