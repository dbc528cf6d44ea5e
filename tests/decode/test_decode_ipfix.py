"""IPFIX decoding rules, on messages built here with struct."""
from __future__ import annotations

import struct

import pytest

from flowpipe.config import DecoderConfig, MappingConfig
from flowpipe.decode.base import Decoded, DecodeError, Source
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.flow import Flow

SECS = 1_700_000_000
NTP = 2208988800
SRC = Source("2001:db8::1", 4739)


def msg(*sets: bytes, secs: int = SECS, seq: int = 100, domain: int = 3) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), secs, seq, domain) + body


def iset(sid: int, body: bytes) -> bytes:
    return struct.pack("!HH", sid, 4 + len(body)) + body


def field(eid: int, ln: int, pen: int = 0) -> bytes:
    return struct.pack("!HHI", eid | 0x8000, ln, pen) if pen else struct.pack("!HH", eid, ln)


def tpl(tid: int, fields: list[tuple], sid: int = 2) -> bytes:
    return iset(sid, struct.pack("!HH", tid, len(fields)) + b"".join(field(*f) for f in fields))


def opt_tpl(tid: int, scope: list[tuple], fields: list[tuple]) -> bytes:
    body = struct.pack("!HHH", tid, len(scope) + len(fields), len(scope))
    return iset(3, body + b"".join(field(*f) for f in scope + fields))


def varlen(b: bytes) -> bytes:
    return (bytes([len(b)]) if len(b) < 255 else b"\xff" + struct.pack("!H", len(b))) + b


def flows(d: Decoded) -> list[Flow]:
    return [Flow._make(t) for t in d.flows]


def one(sets: list[bytes], dec: TemplateDecoder | None = None, **kw: int) -> Flow:
    (f,) = flows((dec or TemplateDecoder(DecoderConfig())).decode(msg(*sets, **kw), SRC))
    return f


def test_basic_record_two_byte_tcp_flags_and_sequence_units() -> None:
    fields = [(1, 8), (2, 8), (8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 2), (10, 4), (14, 4), (152, 8), (153, 8)]
    rec = struct.pack("!QQ4s4sHHBHIIQQ", 1000, 10, b"\x0a\0\0\x01", b"\x0a\0\0\x02", 1, 2, 6, 0x0112, 3, 4,
                      (SECS - 10) * 1000 + 999, (SECS - 1) * 1000)
    d = TemplateDecoder(DecoderConfig()).decode(msg(tpl(400, fields), iset(400, rec * 3)), SRC)
    assert d.flow_type == "ipfix" and d.sequence is not None
    assert (d.sequence.domain, d.sequence.sequence, d.sequence.units) == (3, 100, 3)
    f = flows(d)[0]
    assert (f.type, f.exporter, f.bytes, f.packets, f.tcp_flags, f.in_if, f.out_if) == (
        "ipfix", "2001:db8::1", 1000, 10, 0x0112, 3, 4)
    assert (f.start, f.end) == (SECS - 10, SECS - 1)


def test_variable_length_fields_enterprise_elements_and_padding() -> None:
    fields = [(1, 4), (82, 65535), (12, 4, 29305), (1, 4, 29305), (100, 65535, 6871), (2, 4)]
    r1 = struct.pack("!I", 5) + varlen(b"eth0") + bytes(4) + struct.pack("!I", 999) + varlen(b"x" * 300) \
        + struct.pack("!I", 6)
    r2 = struct.pack("!I", 7) + varlen(b"") + bytes(4) + struct.pack("!I", 999) + varlen(b"y") + struct.pack("!I", 8)
    d = TemplateDecoder(DecoderConfig()).decode(msg(tpl(300, fields), iset(300, r1 + r2 + b"\0\0\0")), SRC)
    assert [(f.bytes, f.packets) for f in flows(d)] == [(5, 6), (7, 8)]  # reverse (29305) never counts
    assert d.skipped == []


def test_variable_length_record_overrun_keeps_earlier_records() -> None:
    fields = [(1, 4), (82, 65535)]
    body = struct.pack("!I", 1) + varlen(b"ab") + struct.pack("!I", 2) + b"\x20abc"
    d = TemplateDecoder(DecoderConfig()).decode(msg(tpl(300, fields), iset(300, body)), SRC)
    assert [f.bytes for f in flows(d)] == [1] and d.skipped == ["record_overrun"]


def test_withdrawal_removes_templates() -> None:
    dec = TemplateDecoder(DecoderConfig())
    dec.decode(msg(tpl(300, [(1, 4)]), tpl(301, [(1, 4)]), opt_tpl(302, [(149, 4)], [(34, 4)])), SRC)
    assert dec.registry.stats.templates == 3
    dec.decode(msg(iset(2, struct.pack("!HH", 300, 0))), SRC)
    assert dec.registry.stats.templates == 2 and dec.decode(msg(iset(300, bytes(4))), SRC).held == 1
    dec.decode(msg(iset(2, struct.pack("!HH", 2, 0))), SRC)  # all data templates
    assert dec.registry.stats.templates == 1 and dec.registry.stats.withdrawn == 2


@pytest.mark.parametrize("fields, values, start, end", [
    ([(150, 4), (151, 4)], struct.pack("!II", SECS - 9, SECS - 2), SECS - 9, SECS - 2),
    ([(154, 8), (155, 8)], struct.pack("!II", SECS - 8 + NTP, 1 << 31) + struct.pack("!II", SECS + NTP, 0),
     SECS - 8, SECS),
    ([(156, 8), (157, 8)], struct.pack("!IIII", SECS - 7 + NTP, 0, SECS - 3 + NTP, 5), SECS - 7, SECS - 3),
    ([(158, 4), (159, 4)], struct.pack("!II", 6_500_000, 2_000_000), SECS - 6, SECS - 2),
    ([(160, 8), (22, 4), (21, 4)], struct.pack("!QII", (SECS - 100) * 1000, 50_000, 95_000), SECS - 50, SECS - 5),
    ([(22, 4), (21, 4)], struct.pack("!II", 50_000, 95_000), SECS, SECS),  # no init time: the export time
    ([(323, 8)], struct.pack("!Q", (SECS - 4) * 1000), SECS - 4, SECS - 4),
    ([(1, 4)], bytes(4), SECS, SECS),
])
def test_time_fields(fields: list, values: bytes, start: int, end: int) -> None:
    f = one([tpl(300, fields), iset(300, values)])
    assert (f.start, f.end) == (start, end)


def test_sysuptime_times_with_init_time_from_options() -> None:
    dec = TemplateDecoder(DecoderConfig())
    sets = [opt_tpl(256, [(149, 4)], [(160, 8)]), iset(256, struct.pack("!IQ", 3, (SECS - 1000) * 1000)),
            tpl(300, [(22, 4), (21, 4)]), iset(300, struct.pack("!II", 10_000, 990_000))]
    f = one(sets, dec)
    assert (f.start, f.end) == (SECS - 990, SECS - 10)


@pytest.mark.parametrize("opt_fields, values, rate", [
    ([(305, 4), (306, 4)], struct.pack("!II", 1, 9), 10),
    ([(305, 4), (306, 4)], struct.pack("!II", 10, 90), 10),
    ([(305, 4), (304, 2), (309, 4), (310, 4)], struct.pack("!IHII", 1, 3, 1, 256), 256),
    ([(34, 4)], struct.pack("!I", 4096), 4096),
    ([(50, 4)], struct.pack("!I", 2048), 2048),
    ([(305, 4)], struct.pack("!I", 1), 0),  # interval without space: no rate
])
def test_sampling_rate_from_options(opt_fields: list, values: bytes, rate: int) -> None:
    sets = [opt_tpl(256, [(149, 4)], opt_fields), iset(256, struct.pack("!I", 3) + values),
            tpl(300, [(1, 4)]), iset(300, bytes(4))]
    assert one(sets).sampling_rate == rate


def test_selector_id_names_the_sampler() -> None:
    dec = TemplateDecoder(DecoderConfig())
    table = opt_tpl(256, [(302, 4)], [(309, 4), (310, 4), (335, 65535)])
    rows = struct.pack("!III", 1, 1, 100) + varlen(b"one") + struct.pack("!III", 2, 1, 1000) + varlen(b"two")
    sets = [table, iset(256, rows), tpl(300, [(302, 4), (1, 4)]),
            iset(300, struct.pack("!II", 2, 1) + struct.pack("!II", 1, 2))]
    d = dec.decode(msg(*sets), SRC)
    assert [f.sampling_rate for f in flows(d)] == [1000, 100]
    assert d.sequence is not None and d.sequence.units == 4  # options records are data records too
    assert dec.stats.options_records == 2
    other = dec.decode(msg(tpl(300, [(302, 4), (1, 4)]), iset(300, struct.pack("!II", 1, 2)), domain=4), SRC)
    assert flows(other)[0].sampling_rate == 0  # another observation domain knows no sampler


@pytest.mark.parametrize("sid", [0, 1, 4, 100, 255])
def test_reserved_set_ids(sid: int) -> None:
    d = TemplateDecoder(DecoderConfig()).decode(msg(iset(sid, bytes(8)), tpl(300, [(1, 4)]), iset(300, bytes(4))),
                                                SRC)
    assert d.skipped == ["reserved_set_id"] and len(d.flows) == 1


def test_message_lengths_that_lie() -> None:
    dec = TemplateDecoder(DecoderConfig())
    good = msg(tpl(300, [(1, 4)]), iset(300, bytes(4)))
    for bad in (good[:2] + struct.pack("!H", len(good) + 1) + good[4:], good[:2] + b"\x00\x0f" + good[4:],
                good[:-1]):
        with pytest.raises(DecodeError) as e:
            dec.decode(bad, SRC)
        assert e.value.reason == "bad_length"
    d = dec.decode(good + b"junk", SRC)
    assert d.skipped == ["trailing_bytes"] and len(d.flows) == 1
    with pytest.raises(DecodeError) as e:
        dec.decode(msg(b"\x01\x2c\x00\x50" + bytes(8)), SRC)
    assert e.value.reason == "set_overrun"


@pytest.mark.parametrize("body", [
    struct.pack("!HHH", 300, 1, 0) + field(1, 4),            # options template with scope count 0
    struct.pack("!HHH", 300, 1, 2) + field(1, 4),            # scope count above field count
    struct.pack("!HH", 300, 3) + field(1, 4),                # fields missing
])
def test_bad_options_templates(body: bytes) -> None:
    dec = TemplateDecoder(DecoderConfig())
    d = dec.decode(msg(iset(3, body)), SRC)
    assert d.skipped == ["bad_template"] and dec.registry.stats.templates == 0


def test_enterprise_mapping_and_hex() -> None:
    mapping = [MappingConfig(field="6871:40", destination="yaf_flags", type="integer"),
               MappingConfig(field="29305:1", destination="rev_bytes", type="integer"),
               MappingConfig(field="5951:129", destination="appid", type="hex"),
               MappingConfig(field="5951:130", destination="url", type="string"),
               MappingConfig(field="5951:131", destination="big", type="integer")]
    fields = [(1, 4), (40, 2, 6871), (1, 8, 29305), (129, 4, 5951), (130, 65535, 5951), (131, 65535, 5951)]
    rec = struct.pack("!IHQ", 1, 3, 77) + b"\x0a\x0b\x0c\x0d" + varlen(b"/index.html") + varlen(bytes(9))
    dec = TemplateDecoder(DecoderConfig(), mapping)
    f = one([tpl(300, fields), iset(300, rec)], dec)
    assert f.extras == {"yaf_flags": 3, "rev_bytes": 77, "appid": "0a0b0c0d", "url": "/index.html"}
