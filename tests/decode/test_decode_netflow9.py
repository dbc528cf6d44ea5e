"""NetFlow v9 decoding rules, on datagrams built here with struct."""
from __future__ import annotations

import struct

import pytest

from flowpipe.config import DecoderConfig, MappingConfig
from flowpipe.decode.base import DecodeError, Source
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.flow import Flow
from tests.support.netflow9 import SECS, UPTIME, fset, ip4, opt_tpl, tpl, v9

SRC = Source("192.0.2.1", 2055, "ns1", 0.0)


V4_FIELDS = [(1, 4), (2, 4), (8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (10, 4), (14, 4),
             (9, 1), (13, 1), (15, 4), (61, 1), (56, 6), (80, 6), (22, 4), (21, 4)]
V4 = struct.Struct("!II4s4sHHBBBIIBB4sB6s6sII")


def v4rec(nbytes: int = 1500, sport: int = 1234, first: int = UPTIME - 5000, last: int = UPTIME - 1000,
          **kw: object) -> bytes:
    vals = dict(nbytes=nbytes, npk=3, src=ip4("10.0.0.1"), dst=ip4("10.0.0.2"), sport=sport, dport=443,
                proto=6, tos=0x20, flags=0x1B, inif=5, outif=6, smask=24, dmask=16, nh=ip4("10.0.0.254"),
                dir=1, smac=bytes.fromhex("001122334455"), dmac=bytes.fromhex("66778899aabb"), first=first, last=last)
    vals.update(kw)
    return V4.pack(*vals.values())


def decoder(**cfg: object) -> TemplateDecoder:
    return TemplateDecoder(DecoderConfig(**cfg))  # type: ignore[arg-type]


def flows(d) -> list[Flow]:  # type: ignore[no-untyped-def]
    return [Flow._make(t) for t in d.flows]


def test_fields_of_an_ipv4_record() -> None:
    dec = decoder()
    d = dec.decode(v9(tpl(256, V4_FIELDS), fset(256, v4rec() + v4rec(nbytes=9, sport=99))), SRC)
    assert (d.flow_type, d.exporter, d.held, d.released, d.skipped) == ("netflow9", "192.0.2.1", 0, 0, [])
    assert d.sequence is not None and (d.sequence.domain, d.sequence.sequence, d.sequence.units) == (0, 7, 1)
    f, g = flows(d)
    assert f == Flow("netflow9", "192.0.2.1", "ns1", 0, 1, SECS - 5, SECS - 1, 1500, 3, 0x0800, 6,
                     ip4("10.0.0.1"), ip4("10.0.0.2"), 1234, 443, 0x001122334455, 0x66778899AABB, 24, 16, 5, 6,
                     0x1B, ip4("10.0.0.254"), 0x20, None)
    assert (g.bytes, g.src_port) == (9, 99)
    assert all(type(t) is tuple for t in d.flows)


def test_ipv6_record_and_ether_type() -> None:
    fields = [(1, 8), (2, 8), (27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (29, 1), (30, 1), (62, 16)]
    src, dst, nh = bytes(range(16)), bytes(range(16, 32)), bytes(15) + b"\x01"
    rec = struct.pack("!QQ16s16sHHBBB16s", 100, 1, src, dst, 53, 5353, 17, 48, 64, nh)
    (f,) = flows(decoder().decode(v9(tpl(300, fields), fset(300, rec)), SRC))
    assert (f.ether_type, f.src_ip, f.dst_ip, f.src_mask, f.dst_mask, f.next_hop) == (0x86DD, src, dst, 48, 64, nh)
    assert (f.start, f.end) == (SECS, SECS)  # no time fields: the export time


@pytest.mark.parametrize("size", range(1, 9))
def test_reduced_size_integers(size: int) -> None:
    value = (1 << (8 * size)) - 2
    fields = [(1, size), (2, size), (10, size), (8, 4)]
    rec = value.to_bytes(size, "big") * 3 + ip4("192.0.2.9")
    (f,) = flows(decoder().decode(v9(tpl(256, fields), fset(256, rec)), SRC))
    assert (f.bytes, f.packets, f.in_if, f.src_ip) == (value, value, value, ip4("192.0.2.9"))


@pytest.mark.parametrize("fields, values, want", [
    ([(15, 4), (18, 4)], [ip4("10.1.1.1"), ip4("10.2.2.2")], ip4("10.1.1.1")),
    ([(15, 4), (18, 4)], [bytes(4), ip4("10.2.2.2")], ip4("10.2.2.2")),
    ([(18, 4)], [ip4("10.2.2.2")], ip4("10.2.2.2")),
    ([(15, 4), (62, 16), (63, 16)], [bytes(4), bytes(16), bytes(15) + b"\x07"], bytes(15) + b"\x07"),
    ([(15, 4), (18, 4)], [bytes(4), bytes(4)], bytes(4)),
    ([(1, 4)], [b"\x00\x00\x00\x01"], b""),
])
def test_next_hop_then_bgp_next_hop(fields: list, values: list, want: bytes) -> None:
    (f,) = flows(decoder().decode(v9(tpl(256, fields), fset(256, b"".join(values))), SRC))
    assert f.next_hop == want


@pytest.mark.parametrize("src4, src6, want", [
    (ip4("10.0.0.1"), bytes(16), ip4("10.0.0.1")),
    (bytes(4), bytes(15) + b"\x01", bytes(15) + b"\x01"),
    (bytes(4), bytes(16), bytes(4)),
])
def test_template_with_both_address_families(src4: bytes, src6: bytes, want: bytes) -> None:
    (f,) = flows(decoder().decode(v9(tpl(256, [(8, 4), (27, 16)]), fset(256, src4 + src6)), SRC))
    assert f.src_ip == want and f.ether_type == (0x0800 if len(want) == 4 else 0x86DD)


def test_ether_type_from_ip_version_without_addresses() -> None:
    (f,) = flows(decoder().decode(v9(tpl(256, [(60, 1), (1, 4)]), fset(256, b"\x06" + bytes(4))), SRC))
    assert f.ether_type == 0x86DD


@pytest.mark.parametrize("fields, values, want", [
    ([(85, 4), (86, 4)], [10, 2], (10, 2)),
    ([(23, 4), (24, 4)], [11, 3], (11, 3)),
    ([(231, 4), (298, 4)], [12, 4], (12, 4)),
    ([(1, 4), (2, 4), (85, 4), (86, 4)], [0, 0, 13, 5], (0, 0)),  # IE 1/2 win even when 0 (as tshark)
    ([(85, 4), (23, 4)], [14, 99], (14, 0)),
])
def test_counter_fallbacks(fields: list, values: list, want: tuple) -> None:
    (f,) = flows(decoder().decode(v9(tpl(256, fields), fset(256, struct.pack("!" + "I" * len(values), *values))),
                                  SRC))
    assert (f.bytes, f.packets) == want


def test_icmp_type_code_does_not_fill_ports() -> None:
    fields = [(8, 4), (12, 4), (4, 1), (32, 2)]
    (f,) = flows(decoder().decode(v9(tpl(256, fields), fset(256, bytes(8) + b"\x01\x08\x00")), SRC))
    assert (f.ip_protocol, f.src_port, f.dst_port) == (1, 0, 0)


def test_switched_times_across_uptime_wrap_and_skew() -> None:
    fields = [(22, 4), (21, 4)]
    rec = struct.pack("!II", 0xFFFFF000, 500)  # first switched before the uptime counter wrapped
    (f,) = flows(decoder().decode(v9(tpl(256, fields), fset(256, rec), uptime=2500), SRC))
    assert (f.start, f.end) == (SECS - 6, SECS - 2)
    rec = struct.pack("!II", 2500, 4500)  # last switched 2 s after the header's uptime (clock skew)
    (f,) = flows(decoder().decode(v9(tpl(256, fields), fset(256, rec), uptime=2500), SRC))
    assert (f.start, f.end) == (SECS, SECS + 2)


def test_templates_are_per_exporter_port_and_source_id() -> None:
    dec = decoder()
    a, b, c = Source("192.0.2.1", 1000), Source("192.0.2.1", 2000), Source("192.0.2.2", 1000)
    dec.decode(v9(tpl(256, [(1, 4)])), a)
    dec.decode(v9(tpl(256, [(2, 4)])), b)
    dec.decode(v9(tpl(256, [(10, 4)]), source_id=5), a)
    data = fset(256, struct.pack("!I", 77))
    (fa,) = flows(dec.decode(v9(data), a))
    (fb,) = flows(dec.decode(v9(data), b))
    (fs,) = flows(dec.decode(v9(data, source_id=5), a))
    assert (fa.bytes, fb.packets, fs.in_if) == (77, 77, 77)
    assert dec.decode(v9(data), c).held == 1  # another exporter: no template


def test_redefinition_replaces() -> None:
    dec = decoder()
    dec.decode(v9(tpl(256, [(1, 4)])), SRC)
    dec.decode(v9(tpl(256, [(2, 2), (1, 2)])), SRC)
    (f,) = flows(dec.decode(v9(fset(256, struct.pack("!HH", 3, 40))), SRC))
    assert (f.packets, f.bytes) == (3, 40)
    assert dec.registry.stats.templates == 1 and dec.registry.stats.redefined == 1


def test_template_expires_without_refresh() -> None:
    now = [1000.0]
    dec = TemplateDecoder(DecoderConfig(template_timeout=60), clock=lambda: now[0])
    dec.decode(v9(tpl(256, [(1, 4)])), SRC)
    now[0] = 1050
    dec.decode(v9(tpl(256, [(1, 4)])), SRC)  # refresh
    now[0] = 1100
    assert len(dec.decode(v9(fset(256, bytes(4))), SRC).flows) == 1
    now[0] = 1111
    assert dec.decode(v9(fset(256, bytes(4))), SRC).held == 1  # expired (even before expire() ran)
    dec.expire(now[0])
    assert dec.registry.stats.templates == 0 and dec.registry.stats.expired == 1


def test_system_sampling_interval_from_options() -> None:
    dec = decoder()
    sets = [opt_tpl(257, [(1, 4)], [(34, 4), (35, 1)]), fset(257, struct.pack("!IIB", 0, 512, 2) + b"\0\0\0"),
            tpl(256, [(1, 4)]), fset(256, bytes(4))]
    (f,) = flows(dec.decode(v9(*sets), SRC))
    assert f.sampling_rate == 512
    (f,) = flows(dec.decode(v9(tpl(256, [(1, 4)]), fset(256, bytes(4)), source_id=9), SRC))
    assert f.sampling_rate == 0  # another source id: unknown


def test_sampler_table_and_records_naming_their_sampler() -> None:
    dec = decoder()
    table = opt_tpl(257, [(1, 4)], [(48, 2), (50, 4), (49, 1)])
    rows = struct.pack("!IHIB", 0, 1, 100, 2) + struct.pack("!IHIB", 0, 2, 1000, 2)
    sets = [table, fset(257, rows), tpl(256, [(48, 2), (1, 4)]),
            fset(256, struct.pack("!HI", 2, 1) + struct.pack("!HI", 1, 2) + struct.pack("!HI", 9, 3))]
    fl = flows(dec.decode(v9(*sets), SRC))
    # records name sampler 2, 1 and an unknown one (the latest rate learned is the default)
    assert [f.sampling_rate for f in fl] == [1000, 100, 1000]


def test_sampling_interval_inside_data_records() -> None:
    fields = [(34, 4), (1, 4)]
    (f,) = flows(decoder().decode(v9(tpl(256, fields), fset(256, struct.pack("!II", 64, 1))), SRC))
    assert f.sampling_rate == 64


def test_data_before_its_template_is_held_then_released() -> None:
    dec = decoder()
    d1 = dec.decode(v9(fset(256, v4rec(nbytes=11))), SRC)
    d2 = dec.decode(v9(fset(256, v4rec(nbytes=12))), SRC)
    assert (d1.held, d2.held, dec.held, d1.flows) == (1, 1, 2, [])
    d3 = dec.decode(v9(tpl(256, V4_FIELDS), fset(256, v4rec(nbytes=13))), SRC)
    assert (d3.held, d3.released, dec.held) == (0, 2, 0)
    assert [f.bytes for f in flows(d3)] == [13, 11, 12]
    assert dec.hold.stats.released == 2 and dec.expire(1e12) == 0


def test_data_before_template_in_the_same_datagram() -> None:
    d = decoder().decode(v9(fset(256, v4rec(nbytes=1)), tpl(256, V4_FIELDS), fset(256, v4rec(nbytes=2))), SRC)
    assert (d.held, d.released, sorted(f.bytes for f in flows(d))) == (0, 0, [1, 2])


def test_hold_gives_up_after_hold_timeout() -> None:
    now = [0.0]
    dec = TemplateDecoder(DecoderConfig(hold_timeout=30), clock=lambda: now[0])
    assert dec.decode(v9(fset(256, bytes(8))), SRC).held == 1
    assert dec.expire(29) == 0 and dec.held == 1
    assert dec.expire(31) == 1 and dec.held == 0
    assert dec.hold.stats.expired == 1


def test_hold_caps_drop_the_oldest_and_expire_reports_them() -> None:
    dec = decoder(hold_max_per_exporter=2)
    for i in range(5):
        assert dec.decode(v9(fset(256, struct.pack("!I", i))), SRC).held == 1
    assert dec.held == 2 and dec.expire(0) == 3  # 3 dropped by the cap, reported once
    assert dec.expire(0) == 0
    d = dec.decode(v9(tpl(256, [(1, 4)])), SRC)
    assert [f.bytes for f in flows(d)] == [3, 4] and d.released == 2
    dec = decoder(hold_max_bytes=2000)  # a held datagram counts at its cost: ~0.6 KB beyond its 300 bytes
    for _ in range(10):
        dec.decode(v9(fset(256, bytes(300))), SRC)
    assert dec.hold.stats.bytes <= 2000 and dec.held == 2


def test_holding_disabled_skips_with_no_template() -> None:
    d = decoder(hold_timeout=0).decode(v9(fset(256, bytes(8)), fset(257, bytes(8))), SRC)
    assert (d.held, d.skipped) == (0, ["no_template", "no_template"])


@pytest.mark.parametrize("sets, reason", [
    ([tpl(256, [])], "bad_template"),
    ([tpl(256, [(0, 0)])], "bad_template"),          # records of no bytes at all
    ([tpl(256, [(0, 0), (1, 0)])], "bad_template"),
    ([tpl(12, [(1, 4)])], "bad_template"),
    ([fset(7, bytes(8))], "reserved_set_id"),
    ([fset(255, bytes(8))], "reserved_set_id"),
])
def test_bad_parts_are_skipped_with_a_reason(sets: list[bytes], reason: str) -> None:
    dec = decoder()
    d = dec.decode(v9(tpl(300, [(1, 4)]), *sets, fset(300, bytes(4))), SRC)
    assert d.skipped == [reason] and len(d.flows) == 1
    assert dec.registry.stats.templates == 1


def test_set_lengths_that_lie() -> None:
    dec = decoder()
    good = tpl(256, [(1, 4)])
    with pytest.raises(DecodeError) as e:
        dec.decode(v9(struct.pack("!HH", 256, 400) + bytes(8)), SRC)
    assert e.value.reason == "set_overrun"
    with pytest.raises(DecodeError) as e:
        dec.decode(v9(struct.pack("!HH", 256, 2) + bytes(8)), SRC)
    assert e.value.reason == "bad_set_length"
    d = dec.decode(v9(good, fset(256, bytes(4)), struct.pack("!HH", 256, 400) + bytes(8)), SRC)
    assert d.skipped == ["set_overrun"] and len(d.flows) == 1
    d = dec.decode(v9(good, fset(256, bytes(4)), bytes(1200)), SRC)  # zero padding (PAN-OS)
    assert d.skipped == [] and len(d.flows) == 1
    d = dec.decode(v9(fset(256, bytes(4)), b"\x01\x02"), SRC)
    assert d.skipped == ["trailing_bytes"]


@pytest.mark.parametrize("data, reason", [
    (b"\x00\x09\x00", "short"), (b"\x00\x09" + bytes(17), "short"), (b"\x00\x07" + bytes(30), "bad_version"),
])
def test_invalid_datagrams(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decoder().decode(data, SRC)
    assert e.value.reason == reason


def test_thousands_of_template_ids_hit_the_cap_and_spare_other_exporters() -> None:
    dec = decoder(max_templates_per_exporter=100)
    other = Source("192.0.2.77", 2055)
    dec.decode(v9(tpl(256, [(1, 4)])), other)
    body = b"".join(struct.pack("!HHHH", tid, 1, 1, 4) for tid in range(256, 256 + 5000))
    d = dec.decode(v9(fset(0, body)), SRC)
    assert d.skipped == ["template_cap"]
    assert dec.registry.stats.templates == 101 and dec.registry.stats.refused_cap == 4900
    assert len(dec.decode(v9(fset(256, bytes(4))), other).flows) == 1


def test_exporter_cap() -> None:
    dec = decoder(max_exporters=2)
    for i in range(4):
        dec.decode(v9(tpl(256, [(1, 4)])), Source(f"192.0.2.{i}", 2055))
    assert dec.registry.stats.exporters == 2 and dec.registry.stats.refused_exporters == 2


def test_mapping_fills_extras_and_overrides_builtins() -> None:
    mapping = [MappingConfig(field=58, destination="vlan"),  # no type: hex, as the Agent
               MappingConfig(field=95, destination="app", type="hex"),
               MappingConfig(field=82, destination="ifname", type="string"),
               MappingConfig(field=40000, destination="user", type="string"),
               MappingConfig(field=225, destination="nat_src", type="ip"),
               MappingConfig(field=81, destination="post_mac", type="mac"),
               MappingConfig(field=33000, destination="acl", type="integer"),  # 12 bytes: dropped
               MappingConfig(field=61, destination="direction", endianness="little"),
               MappingConfig(field=59, destination="source.port"),
               MappingConfig(field=226, destination="exporter.ip")]
    fields = [(1, 4), (7, 2), (58, 2), (95, 4), (82, 8), (40000, 6), (225, 4), (81, 6), (33000, 12), (61, 2),
              (59, 2), (226, 4)]
    rec = (struct.pack("!IHHI", 9, 1000, 12, 0xDEADBEEF) + b"eth0\0\0\0\0" + b"\0alice" + ip4("100.64.0.1")
           + bytes.fromhex("0a0b0c0d0e0f") + bytes(12) + b"\x01\x00" + struct.pack("!H", 4242) + ip4("198.51.100.2"))
    dec = TemplateDecoder(DecoderConfig(), mapping)
    (f,) = flows(dec.decode(v9(tpl(256, fields), fset(256, rec)), SRC))
    assert f.extras == {"vlan": "000c", "app": "deadbeef", "ifname": "eth0", "user": "alice", "nat_src": "100.64.0.1",
                        "post_mac": "0a:0b:0c:0d:0e:0f"}
    assert (f.direction, f.src_port, f.exporter, f.bytes) == (1, 4242, "198.51.100.2", 9)
    # a template without mapped fields pays nothing
    (g,) = flows(dec.decode(v9(tpl(257, [(1, 4)]), fset(257, bytes(4))), SRC))
    assert g.extras is None


def test_records_past_the_per_datagram_cap_are_skipped_and_reported() -> None:
    import struct as _st

    from flowpipe.config import DecoderConfig as _DC
    from flowpipe.decode.base import Source as _Src
    from flowpipe.decode.template_decoder import MAX_RECORDS_PER_DATAGRAM
    from flowpipe.decode.template_decoder import TemplateDecoder as _TD
    dec = _TD(_DC())
    head = _st.pack("!HHIIII", 9, 1, 1000, 1_700_000_000, 1, 7)
    tpl = _st.pack("!HHHHHH", 0, 12, 256, 1, 4, 1)  # template 256: one 1-byte field (protocol)
    src = _Src("192.0.2.1", 50000)
    dec.decode(head + tpl, src)
    body = bytes(10_000)
    d = dec.decode(head + _st.pack("!HH", 256, 4 + len(body)) + body, src)
    assert len(d.flows) == MAX_RECORDS_PER_DATAGRAM and "too_many_records" in d.skipped
