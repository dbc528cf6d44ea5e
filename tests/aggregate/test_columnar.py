"""The columnar fast path (chunks decoded with numpy in the accumulator) aggregates exactly as the
flow-tuple path: same exports decoded both ways, same flushed flows, flush after flush."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceAccumulator
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig, MappingConfig
from flowpipe.decode import columns
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.rows import rows
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.export import DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, DefaultRecord, Exporter, Template
from flowpipe.flow import SAMPLING_RATE
from flowpipe.metrics import Metrics
from tests.support import captures
from tests.support.equivalence import aggregate_both
from tests.support.equivalence import same_flushes as _same

T0 = 1_700_000_000.0
# IPFIX with 8-byte counters and absolute millisecond times (a plan with "ms" times and wide fields).
IPFIX_WIDE = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (10, 4), (14, 4), (1, 8), (2, 8),
                       (152, 8), (153, 8), (6, 1)], template_id=300)


def _v4(rng: random.Random, pool: int) -> bytes:
    return bytes((10, 0, rng.randrange(2), rng.randrange(pool)))


def v9_load(seed: int, n: int, v6: bool = False, protocol: int = 9) -> list[tuple[bytes, Source]]:
    """``n`` records from 3 exporters: few address pairs, some fixed ports and many ephemeral ones
    (rollup at work), repeats, and records timed after their header (the v9 uptime wrap path)."""
    rng = random.Random(seed)
    out: list[tuple[bytes, Source]] = []
    clock = [T0]
    for k in range(3):
        # exporter 2's sysUptime wrapped 2 s ago: its records from before the wrap count from near 2**32
        boot = T0 - 2**32 / 1000 - 2 if k == 2 else T0 - 3600 - k
        exp = Exporter("127.0.0.1:9", protocol=protocol, source_id=k, records_per_packet=rng.choice((1, 7, 24)),
                       boot_time=boot, clock=lambda: clock[0])
        up = exp.uptime_ms()
        recs = []
        for _ in range(n):
            if v6:
                src = bytes(15) + bytes((rng.randrange(3),))
                dst = bytes(14) + bytes((1, rng.randrange(3)))
            else:
                src, dst = _v4(rng, 3), _v4(rng, 3)
            sport = rng.choice((53, 443, 8080)) if rng.random() < 0.5 else rng.randrange(32768, 32800)
            dport = rng.choice((53, 443, 8080)) if rng.random() < 0.5 else rng.randrange(32768, 32800)
            first = (up + 5000 if rng.random() < 0.05 else up - rng.randrange(60_000)) & 0xFFFFFFFF
            last = min(first + rng.randrange(30_000), up) if first < up else (first + 10) & 0xFFFFFFFF
            recs.append(DefaultRecord(src, dst, bytes(16 if v6 else 4), rng.randrange(3), rng.randrange(3),
                                      rng.randrange(1, 100), rng.randrange(40, 10**6), first, last, sport, dport,
                                      rng.choice((0, 0x02, 0x10, 0x12, 0x11)), rng.choice((6, 17)),
                                      rng.choice((0, 0, 8)), 0, 0, 24, 24))
        for g in exp.encode(DEFAULT_TEMPLATE_V6 if v6 else DEFAULT_TEMPLATE, recs):
            out.append((g, Source(f"192.0.2.{k + 1}", 2055, "default", T0)))
    rng.shuffle(out[3:])  # interleave exporters (each one's templates went first)
    return out


def pool_load(seed: int, n: int, protocol: int) -> list[tuple[bytes, Source]]:
    """``n`` records per exporter drawn from 20 conversations, so most merge into known contexts
    (the numpy merge and reopen paths); exporter 1's sysUptime wrapped 2 s ago."""
    rng = random.Random(seed)
    convs = [(_v4(rng, 2), _v4(rng, 2), rng.choice((40000, 40001, 53)), rng.choice((443, 53)), rng.choice((6, 17)),
              rng.choice((0, 8)), rng.randrange(2)) for _ in range(20)]
    out: list[tuple[bytes, Source]] = []
    for k in range(2):
        boot = T0 - 2**32 / 1000 - 2 if k == 1 else T0 - 3600
        exp = Exporter("127.0.0.1:9", protocol=protocol, source_id=k, records_per_packet=12, boot_time=boot,
                       clock=lambda: T0)
        up = exp.uptime_ms()
        recs = []
        for _ in range(n):
            src, dst, sport, dport, proto, tos, in_if = rng.choice(convs)
            first = (up - rng.randrange(60_000)) & 0xFFFFFFFF
            last = (first + rng.randrange(5_000)) & 0xFFFFFFFF
            recs.append(DefaultRecord(src, dst, bytes(4), in_if, rng.randrange(3), rng.randrange(1, 100),
                                      rng.randrange(40, 10**6), first, last, sport, dport,
                                      rng.choice((0, 0x02, 0x10)), proto, tos, 0, 0, 24, 24))
        out += [(g, Source(f"192.0.2.{k + 1}", 2055, "default", T0)) for g in exp.encode(DEFAULT_TEMPLATE, recs)]
    return out


def ipfix_wide_load(seed: int, n: int) -> list[tuple[bytes, Source]]:
    """IPFIX records with 8-byte counters, some past 2**48 and 2**62 (the tuple path's exact sums)."""
    rng = random.Random(seed)
    exp = Exporter("127.0.0.1:9", protocol=10, source_id=5, records_per_packet=10, boot_time=T0 - 3600,
                   clock=lambda: T0)
    recs = []
    for _ in range(n):
        big = rng.random()
        octets = rng.randrange(2**62, 2**64) if big < 0.05 else rng.randrange(2**48, 2**50) if big < 0.1 \
            else rng.randrange(1, 10**6)
        ms = int(T0 * 1000) - rng.randrange(100_000)
        recs.append((_v4(rng, 2), _v4(rng, 2), rng.choice((443, 40000, 40001)), rng.choice((443, 53)), 6, 0,
                     rng.randrange(2), 1, octets, rng.randrange(1, 1000), ms, ms + rng.randrange(5000),
                     rng.choice((0, 2, 16))))
    return [(g, Source("198.51.100.7", 4739, "default", T0)) for g in exp.encode(IPFIX_WIDE, recs)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rollup", [True, False])
def test_v9_chunks_aggregate_like_tuples(seed: int, rollup: bool) -> None:
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup, port_rollup_threshold=4)
    out_c, out_t, chunked = aggregate_both(v9_load(seed, 400, v6=seed % 3 == 2), cfg, batch=1 + seed * 5)
    assert chunked > 1000  # the service's path really was taken
    assert sum(map(len, out_t)) > 50
    _same(out_c, out_t)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_v5_chunks_aggregate_like_tuples(seed: int) -> None:
    """NetFlow v5 (its own record layout and boot-time clock, uptime wrap included) both ways."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=4, port_rollup_disabled=seed == 3)
    out_c, out_t, chunked = aggregate_both(v9_load(seed, 400, protocol=5), cfg, batch=1 + seed * 7)
    assert chunked == 1200
    assert sum(map(len, out_t)) > 50
    _same(out_c, out_t)


@pytest.mark.parametrize("protocol", [5, 9])
@pytest.mark.parametrize("seed", range(3))
def test_repeated_conversations_merge_like_tuples(seed: int, protocol: int) -> None:
    """Mostly known conversations: merges, reopened windows and uptime-wrapped times, both ways."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=seed == 2)
    out_c, out_t, chunked = aggregate_both(pool_load(seed, 600, protocol), cfg, batch=3 + seed)
    assert chunked == 1200
    _same(out_c, out_t)


@pytest.mark.parametrize("seed", range(3))
def test_ipfix_wide_counters_exact(seed: int) -> None:
    """8-byte counters past 2**48 take the tuple path; sums past 2**64 stay exact."""
    cfg = AggregatorConfig(flush_interval=10.0)
    out_c, out_t, chunked = aggregate_both(ipfix_wide_load(seed, 600), cfg, batch=16)
    assert chunked == 600
    assert max(f[7] for tick in out_t for f in tick) >= 2**63  # some context summed past int64
    _same(out_c, out_t)


def test_token_spent_earlier_in_the_batch() -> None:
    """A conversation merged with numpy must be observed again when an earlier record of the same
    batch changed its address pair's rollup state: here the 4th client port to :443 makes the
    client side ephemeral, so the known conversation's next record goes to the rolled-up context."""
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=1, records_per_packet=24, boot_time=T0 - 3600,
                   clock=lambda: T0)
    up = exp.uptime_ms()

    def rec(sport: int, nbytes: int) -> DefaultRecord:
        return DefaultRecord(b"\n\0\0\1", b"\n\0\0\2", bytes(4), 1, 2, 1, nbytes, up - 1000, up, sport, 443, 0,
                             6, 0, 0, 0, 24, 24)

    src = Source("192.0.2.1", 2055, "default", T0)
    first = [(g, src) for g in exp.encode(DEFAULT_TEMPLATE, [rec(40000, 100), rec(40000, 100)])]
    second = [(g, src) for g in exp.encode(DEFAULT_TEMPLATE, [rec(40001, 1), rec(40002, 1), rec(40003, 1),
                                                               rec(40000, 5000)])]
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=4)
    out_c, out_t, chunked = aggregate_both(first + second, cfg, batch=len(first))
    assert chunked == 6
    _same(out_c, out_t)
    flows = {(f[13], f[14]): f[7] for f in out_t[-1]}
    assert flows == {(40000, 443): 200, (40001, 443): 1, (40002, 443): 1, (-1, 443): 5001}


def test_times_from_before_the_uptime_wrap() -> None:
    """sysUptime wrapped 2 s ago: a record switched 5 s ago counts from near 2**32 and is 5 s old,
    also when its context is known (the numpy path hands such records to the tuple path)."""
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=1, records_per_packet=24,
                   boot_time=T0 - 2**32 / 1000 - 2, clock=lambda: T0)
    up = exp.uptime_ms()
    assert up == 2000

    def rec(first: int, last: int) -> DefaultRecord:
        return DefaultRecord(b"\n\0\0\1", b"\n\0\0\2", bytes(4), 1, 2, 1, 100, first, last, 40000, 443, 0, 6,
                             0, 0, 0, 24, 24)

    src = Source("192.0.2.1", 2055, "default", T0)
    load = [(g, src) for g in exp.encode(DEFAULT_TEMPLATE, [rec(1000, 1500), rec(1000, 1500)])]
    load += [(g, src) for g in exp.encode(DEFAULT_TEMPLATE, [rec(2**32 - 3000, 2**32 - 1000)])]
    out_c, out_t, chunked = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=len(load) - 1)
    assert chunked == 3
    _same(out_c, out_t)
    (flow,) = out_t[-1]
    assert (flow[5], flow[6], flow[7]) == (int(T0) - 5, int(T0), 300)


@pytest.mark.parametrize("rollup", [True, False])
def test_reopened_window_keeps_its_first_record(rollup: bool) -> None:
    """After a flush, the first record of a known conversation opens its new window: its fields not in
    the key (here the output interface) are the window's, whichever path the batch took."""
    up = Exporter("127.0.0.1:9", protocol=9, boot_time=T0 - 3600, clock=lambda: T0).uptime_ms()

    def rec(out_if: int, nbytes: int, sport: int = 40000) -> DefaultRecord:
        return DefaultRecord(b"\n\0\0\1", b"\n\0\0\2", bytes(4), 1, out_if, 1, nbytes, up - 1000, up, sport, 443,
                             0, 6, 0, 0, 0, 24, 24)

    src = Source("192.0.2.1", 2055, "default", T0)
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup)
    results = []
    for columnar in (True, False):
        exp = Exporter("127.0.0.1:9", protocol=9, source_id=1, records_per_packet=24, boot_time=T0 - 3600,
                       clock=lambda: T0)
        dec = DatagramDecoder("netflow9", DecoderConfig(), [], columnar=columnar)
        acc = Accumulator(cfg)
        flushed = []
        for now, recs in ((T0, [rec(1, 10), rec(1, 10)]), (T0 + 20, [rec(2, 100), rec(0, 1000), rec(3, 5, 40001)]),
                          (T0 + 40, [rec(3, 7), rec(1, 8)])):
            for g in exp.encode(DEFAULT_TEMPLATE, recs):
                d = dec.decode(g, src)
                acc.add(rows(d.flows) + d.chunks, now)
            flushed.append(sorted((f[13], f[20], f[7]) for f in acc.flush(now + 15)))
        results.append(flushed)
    assert results[0] == results[1]
    assert results[0] == [[(40000, 1, 20)], [(40000, 2, 1100), (40001, 3, 5)], [(40000, 3, 15)]]


# Same conversation fields; PLAIN_B adds an output interface, MIXED an in-record sampling interval
# (IE 34), which leaves it without a plan (its sets are flow tuples).
PLAIN_A = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4)], template_id=258)
PLAIN_B = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (14, 4)], template_id=256)
MIXED = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (14, 4), (34, 4)], template_id=257)
A, B = b"\n\0\0\1", b"\n\0\0\2"


def _sends(exp: Exporter, src: Source, *parts: tuple[Template, list[tuple]]) -> list[tuple[bytes, Source]]:
    return [(g, src) for t, recs in parts for g in exp.encode(t, recs)]


@pytest.mark.parametrize("rollup", [True, False])
def test_one_exporter_keeps_its_order_across_chunks_and_tuples(rollup: bool) -> None:
    """An exporter's records stay in arrival order when some of its sets are chunks and others flow
    tuples: the window's kept fields come from its first record, and a conversation whose record
    came before the records that made its client side ephemeral keeps its port."""
    src = Source("192.0.2.1", 2055, "default", T0)
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=1, boot_time=T0 - 3600, clock=lambda: T0)
    first = _sends(exp, src, (PLAIN_B, [(A, B, 40000, 443, 6, 100, 1, 1)]))
    second = _sends(exp, src, (PLAIN_B, [(A, B, 40000, 443, 6, 5000, 1, 2)]),
                    (MIXED, [(A, B, p, 443, 6, 1, 1, 3, 5) for p in (40001, 40002, 40003)]),
                    (PLAIN_B, [(A, B, 40000, 443, 6, 7, 1, 4)]))
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=4, port_rollup_disabled=not rollup)
    out_c, out_t, _ = aggregate_both(first + second, cfg, 0, sizes=[len(first), len(second)])
    _same(out_c, out_t)
    got = {(f[13], f[14]): (f[7], f[20]) for f in out_t[-1]}
    if rollup:
        assert got == {(40000, 443): (5100, 1), (40001, 443): (1, 3), (40002, 443): (1, 3), (-1, 443): (8, 3)}
    else:
        assert got[(40000, 443)] == (5107, 1)


def test_one_datagram_mixing_chunk_and_tuple_sets_in_order() -> None:
    """One datagram with a set without a plan, then a plain set, for one conversation: the records
    are aggregated in set order, so the first one (in-record sampling rate 5, output interface 8)
    opens the window."""
    from flowpipe.export import Netflow9Encoder
    enc = Netflow9Encoder(1)
    up, secs = 3_600_000, int(T0)
    templates = enc.template_packet([PLAIN_B, MIXED], up, secs)
    sets = [enc.data_packet(t, recs, up, secs)[20:] for t, recs in (
        (MIXED, [(A, B, 40000, 443, 6, 10, 1, 8, 5)]), (PLAIN_B, [(A, B, 40000, 443, 6, 1, 1, 9)]))]
    datagram = templates[:20] + b"".join(sets)
    src = Source("192.0.2.1", 2055, "default", T0)
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=True)
    out_c, out_t, _ = aggregate_both([(templates, src), (datagram, src)], cfg, 0, sizes=[1, 1])
    _same(out_c, out_t)
    assert [(f[7], f[20], f[3]) for f in out_t[-1]] == [(11, 8, 5)]


def test_one_exporter_two_plain_layouts_in_order() -> None:
    """Two plain layouts of one address family from one exporter, interleaved: aggregated in order
    (not grouped by layout), so the window's output interface is its first record's."""
    src = Source("192.0.2.1", 2055, "default", T0)
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=1, boot_time=T0 - 3600, clock=lambda: T0)
    load = _sends(exp, src, (PLAIN_B, [(A, A, 1, 2, 6, 1, 1, 9)]), (PLAIN_A, [(A, B, 40000, 443, 6, 100, 1)]),
                  (PLAIN_B, [(A, B, 40000, 443, 6, 7, 1, 2)]))
    out_c, out_t, chunked = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=len(load))
    _same(out_c, out_t)
    assert {(f[13], f[20]) for f in out_t[-1]} == {(1, 9), (40000, 0)}


def test_exporters_with_different_layouts_keep_every_byte() -> None:
    """Across exporters a batch is aggregated per template layout, not in arrival order (as if the
    datagrams had arrived in another order, which UDP allows): no flow is lost or counted twice."""
    exp1 = Exporter("127.0.0.1:9", protocol=9, source_id=1, boot_time=T0 - 3600, clock=lambda: T0)
    exp2 = Exporter("127.0.0.1:9", protocol=9, source_id=2, boot_time=T0 - 3600, clock=lambda: T0)
    s1, s2 = Source("192.0.2.1", 2055, "default", T0), Source("192.0.2.2", 2055, "default", T0)
    load = _sends(exp1, s1, (PLAIN_B, [(A, B, 40000, 443, 6, 100, 1, 1)]))
    load += _sends(exp2, s2, (PLAIN_A, [(A, A, 1, 2, 6, 1, 1)]))
    load += _sends(exp1, s1, (PLAIN_B, [(A, B, 40000, 443, 6, 5000, 1, 1)]))
    load += _sends(exp2, s2, (PLAIN_A, [(A, B, p, 443, 6, 1, 1) for p in (40001, 40002, 40003)]))
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=4)
    out_c, out_t, chunked = aggregate_both(load, cfg, batch=len(load))
    assert chunked == 6
    for out in (out_c, out_t):
        assert sum(f[7] for tick in out for f in tick) == 5104
        assert sum(f[8] for tick in out for f in tick) == 6


def test_max_contexts_same_drops() -> None:
    cfg = AggregatorConfig(flush_interval=10.0, max_contexts=20)
    load = v9_load(11, 300)
    out_c, out_t, _ = aggregate_both(load, cfg, batch=4)
    _same(out_c, out_t)


def test_templates_without_plan_decode_as_tuples() -> None:
    """An in-band identity or a mapping over a key field: no chunks."""
    load = v9_load(3, 50)
    plain = DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True)
    assert any(plain.decode(d, s).chunks for d, s in load)
    for lc in (ListenerConfig(flow_type="netflow9", mapping=[MappingConfig(field=10, destination="source.port")]),
               ListenerConfig(flow_type="netflow9", exporter_address="in-band")):
        dec = DatagramDecoder("netflow9", DecoderConfig(), list(lc.mapping), lc, columnar=True)
        got = [dec.decode(d, s) for d, s in load]
        assert not any(d.chunks for d in got)
        assert sum(len(d.flows) for d in got) == 150


def test_wide_key_fields_take_the_tuple_path() -> None:
    """A template with 4-byte ports: a port past 65535 must not be cut to 16 bits and land in
    another conversation's context (such templates get no plan)."""
    wide = Template([(8, 4), (12, 4), (7, 4), (11, 4), (4, 1), (1, 4), (2, 4)], template_id=301)
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=1, records_per_packet=24, boot_time=T0 - 3600,
                   clock=lambda: T0)
    a, b = b"\n\0\0\1", b"\n\0\0\2"
    load = [(g, Source("192.0.2.1", 2055, "default", T0))
            for g in exp.encode(wide, [(a, b, 40000, 443, 6, 100, 1), (a, b, 40000, 443 + 65536, 6, 5, 1)])]
    dec = DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True)
    got = [dec.decode(d, s) for d, s in load]
    assert not any(d.chunks for d in got)
    assert sum(len(d.flows) for d in got) == 2
    out_c, out_t, _ = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=1)
    _same(out_c, out_t)
    assert sorted((f[14], f[7]) for f in out_t[-1]) == [(443, 100), (65979, 5)]


MAPPED = [MappingConfig(field=11, destination="dport_m", type="integer"),
          MappingConfig(field=7, destination="sport_le", type="integer", endianness="little"),
          MappingConfig(field=8, destination="src_ip", type="ip"), MappingConfig(field=8, destination="src_hex"),
          MappingConfig(field=12, destination="dst_str", type="string"),
          MappingConfig(field=12, destination="dst_mac", type="mac")]


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("rollup", [True, False])
def test_mapped_additional_fields_take_the_columnar_path(batch: int, rollup: bool) -> None:
    """Additional fields from a mapping (integers either way round, ip, hex, string, mac) are read
    from the columns: chunks, and every flush what the reference makes of the flow tuples."""
    lc = ListenerConfig(flow_type="netflow9", mapping=MAPPED)
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup, port_rollup_threshold=4)
    out_c, out_t, chunked = aggregate_both(v9_load(4, 150), cfg, batch=batch, listener=lc)
    assert chunked > 300
    _same(out_c, out_t)
    extras = [f[24] for tick in out_c for f in tick]
    assert extras and all(set(e) == {m.destination for m in MAPPED} for e in extras)
    assert len({e["src_ip"] for e in extras}) > 1 and any(e["sport_le"] > 0xFF for e in extras)
    assert all(e["src_hex"] == bytes(map(int, e["src_ip"].split("."))).hex() for e in extras)


UNKNOWN = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (32000, 6, 9999)], template_id=320)


def test_passed_through_unknown_elements_take_the_columnar_path() -> None:
    """``passthrough_unknown``: an element flowpipe does not know travels as hex, from the columns;
    equal values are one shared dict across windows."""
    rng = random.Random(9)
    exp = Exporter("127.0.0.1:9", protocol=10, source_id=4, records_per_packet=12, boot_time=T0 - 3600,
                   clock=lambda: T0)
    recs = [(_v4(rng, 3), _v4(rng, 3), rng.randrange(32768, 33000), 443, 6, rng.randrange(1, 9000),
             rng.randrange(1, 9), bytes((0, 0, 0, 0, 0, rng.randrange(3)))) for _ in range(400)]
    load = [(g, Source("192.0.2.7", 2055, "default", T0)) for g in exp.encode(UNKNOWN, recs)]
    lc = ListenerConfig(flow_type="netflow9", passthrough_unknown=True)
    out_c, out_t, chunked = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=6, listener=lc)
    assert chunked >= 390
    _same(out_c, out_t)
    values = {f[24]["9999.32000"] for tick in out_c for f in tick}
    assert values == {"000000000000", "000000000001", "000000000002"}


def test_a_sum_past_int64_leaves_only_its_window_out_of_the_columns() -> None:
    """One context's counter past 2**63 is held aside for that window alone: the other contexts'
    records still merge with numpy, the big one's one by one (exactly), and once its window is
    emitted its next records are back in the columns."""
    rng = random.Random(5)
    exp = Exporter("127.0.0.1:9", protocol=10, source_id=5, records_per_packet=10, boot_time=T0 - 3600,
                   clock=lambda: T0)
    ms = int(T0 * 1000) - 5000
    big_src, big_dst = bytes((10, 9, 9, 9)), bytes((10, 9, 9, 8))

    def rec(src: bytes, dst: bytes, octets: int) -> tuple:
        return (src, dst, 40000, 443, 6, 0, 1, 1, octets, 3, ms, ms + 100, 0x10)

    others = [(bytes((10, 0, 0, k)), bytes((10, 0, 1, k))) for k in range(20)]
    first = [rec(big_src, big_dst, 2**63 + 5)] + [rec(s, d, 100) for s, d in others]
    later = [rec(*rng.choice(others), rng.randrange(1, 1000)) for _ in range(200)] + [
        rec(big_src, big_dst, 7) for _ in range(5)]
    src = Source("198.51.100.7", 4739, "default", T0)
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(),
                         decoder=DatagramDecoder("ipfix", DecoderConfig(), [], columnar=True), queue=FlowQueue(10**9))
    acc = Accumulator(AggregatorConfig(flush_interval=10.0, port_rollup_disabled=True))
    merged_one_by_one = []
    merge = acc._merge

    def counting(i: int, f: tuple) -> None:
        merged_one_by_one.append(f[7])
        merge(i, f)

    acc._merge = counting  # type: ignore[method-assign]

    def feed(recs: list[tuple]) -> None:
        fb = stage.decode_batch([(g, src.exporter, src.port, src.received) for g in exp.encode(IPFIX_WIDE, recs)])
        acc.add(fb.chunks, T0)

    feed(first)
    assert len(acc._big) == 1
    feed(later)
    assert sorted(merged_one_by_one) == [7] * 5  # only the big window's own records
    out = {bytes(f[11]): f for f in acc.flush(T0 + 1)}
    assert out[big_src][7] == 2**63 + 5 + 35 and out[big_src][8] == 18
    assert sum(f[7] for f in out.values()) == 2**63 + 5 + 35 + 20 * 100 + sum(r[8] for r in later[:200])
    assert acc._big == {}
    merged_one_by_one.clear()
    feed([rec(big_src, big_dst, 1), rec(big_src, big_dst, 2)] + later[:50])
    assert merged_one_by_one == []  # back in the columns: numpy merges everything
    assert {bytes(f[11]): f for f in acc.drain()}[big_src][7] == 3


@pytest.mark.parametrize("shared", [True, False])
def test_a_record_decoder_bug_in_the_aggregator_drops_that_set_not_the_stage(shared: bool) -> None:
    """Chunks are decoded in the accumulator, outside the decoder stage's per-datagram guard: a
    record decoder that raises there costs its set's records (counted, logged), and every other
    exporter's flows are aggregated as usual, batch after batch. ``shared``: the broken sets are
    read together as columns; else each one on its own (the in-order path)."""
    from flowpipe.aggregate.stage import AccumulatorStage  # noqa: PLC0415

    load = v9_load(4, 200)
    metrics = Metrics()
    queue = FlowQueue(10**9)
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), metrics,
                         decoder=DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True), queue=queue)
    acc = AccumulatorStage(AggregatorConfig(flush_interval=10.0, port_rollup_threshold=4), metrics, queue=queue,
                           max_sequence_keys=1000)
    plain = DatagramDecoder("netflow9", DecoderConfig(), [])
    want: dict[str, int] = {}
    for data, src in load:
        for f in plain.decode(data, src).flows:
            want[f[1]] = want.get(f[1], 0) + f[7]
    broken = "192.0.2.2"

    def bug(*args: Any) -> list[tuple]:
        raise ZeroDivisionError("decoder bug")

    wrappers: dict[int, _Raising] = {}
    for b in range(0, len(load), 10):
        fb = stage.decode_batch([(d, s.exporter, s.port, s.received) for d, s in load[b:b + 10]])
        for c in fb.chunks:
            if c.exporter == broken:
                c.dec = wrappers.setdefault(id(c.dec), _Raising(c.dec, bug)) if shared else _Raising(c.dec, bug)
        queue.pending += fb.size
        acc.take(fb, T0)
    got: dict[str, int] = {}
    for f in acc.acc.drain():
        got[f[1]] = got.get(f[1], 0) + f[7]
    assert {k: v for k, v in got.items() if k != broken} == {k: v for k, v in want.items() if k != broken}
    lost = acc.acc.dropped_undecodable
    assert lost > 0
    assert metrics.flows_dropped.labels("aggregator", "decoder_error")._value.get() == lost
    assert got.get(broken, 0) < want[broken]


class _Raising:
    """A record decoder whose ``decode`` raises (fault injection), otherwise the real one."""

    def __init__(self, dec: Any, decode: Any) -> None:
        self._dec, self.decode = dec, decode

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dec, name)


# Every kept field (direction, MACs, masks, output interface, next hop) one plain field of the record.
KEPT_WIDE = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (56, 6), (80, 6), (9, 1), (13, 1),
                      (14, 4), (15, 4), (61, 1), (10, 4)], template_id=301)


@pytest.mark.parametrize("protocol", [9, 10])
@pytest.mark.parametrize("rollup", [False, True])
@pytest.mark.parametrize("collide", [False, True])
def test_new_windows_read_their_kept_fields_from_the_records(protocol: int, rollup: bool, collide: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """When each kept field is one plain field of the template, a new window takes MACs, masks,
    output interface, next hop and direction straight from the records (numpy), not from the
    decoded record: the flows equal the per-record reference's, and a record decoder that fails
    costs nothing when no record needs it (no rollup: every new key opened in bulk). ``collide``:
    every record's kept fields hash alike, so telling equal ones apart falls back to each record's."""

    if collide:
        monkeypatch.setattr(columns, "_MIX", np.uint64(0))
    rng = random.Random(protocol)
    exp = Exporter("127.0.0.1:9", protocol=protocol, source_id=3, records_per_packet=12, boot_time=T0 - 3600,
                   clock=lambda: T0)
    recs = [(_v4(rng, 200), _v4(rng, 200), rng.randrange(1024, 65536), rng.choice((53, 443)), rng.choice((6, 17)),
             rng.randrange(1, 10**5), rng.randrange(1, 100), rng.randrange(2**48), rng.randrange(2**48),
             rng.randrange(33), rng.randrange(33), rng.randrange(2**32), bytes((192, 0, 2, rng.randrange(256))),
             rng.randrange(2), rng.randrange(8)) for _ in range(400)]
    load = [(g, Source("198.51.100.9", 2055, "default", T0)) for g in exp.encode(KEPT_WIDE, recs)]
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup)
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(),
                         decoder=DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True),
                         queue=FlowQueue(10**9))
    plain = DatagramDecoder("netflow9", DecoderConfig(), [])
    fast, ref = Accumulator(cfg), ReferenceAccumulator(cfg)
    broken: dict[int, _Raising] = {}
    for a in range(0, len(load), 8):
        fb = stage.decode_batch([(d, s.exporter, s.port, s.received) for d, s in load[a:a + 8]])
        assert fb.chunks and all(c.dec.plan.kept is not None for c in fb.chunks)
        if not rollup:
            for c in fb.chunks:
                c.dec = broken.setdefault(id(c.dec), _Raising(c.dec, _bug))
        fast.add(fb.chunks, T0)
        for d, s in load[a:a + 8]:
            ref.add(plain.decode(d, s).flows, T0)
    got = sorted(map(repr, fast.drain()))
    assert got == sorted(map(repr, ref.drain()))
    assert len(got) > 300 and fast.dropped_undecodable == 0


def _bug(*args: Any) -> list[tuple]:
    raise ZeroDivisionError("a record decoder bug")


def test_equal_kept_fields_of_new_windows_are_one_object() -> None:
    """Thousands of new contexts whose kept fields (type, rate, MACs, masks, interfaces, next hop)
    take a few distinct values hold a few tuples between them, not one each: the memory of a
    context does not grow with what its flows have in common."""
    rng = random.Random(5)
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=3, records_per_packet=24, boot_time=T0 - 3600,
                   clock=lambda: T0)
    recs = [(_v4(rng, 250), _v4(rng, 250), rng.randrange(1024, 65536), 443, 6, rng.randrange(1, 10**5),
             rng.randrange(1, 100), 0x0A0B0C0D0E0F, 0x0102030405 * (1 + k % 3), 24, 16, 7,
             bytes((192, 0, 2, 1 + k % 2)), 0, 2) for k in range(3000)]
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(),
                         decoder=DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True),
                         queue=FlowQueue(10**9))
    acc = Accumulator(AggregatorConfig(port_rollup_disabled=True))
    grams = exp.encode(KEPT_WIDE, recs)
    for a in range(0, len(grams), 16):
        acc.add(stage.decode_batch([(g, "198.51.100.9", 2055, T0) for g in grams[a:a + 16]]).chunks, T0)
    held = [k for k in acc._base if k is not None]
    assert len(held) > 2900
    assert len({id(k) for k in held}) == len(set(held)) == 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1), st.binary(min_size=6, max_size=6),
                          st.binary(min_size=4, max_size=4), st.binary(min_size=16, max_size=16)),
                min_size=0, max_size=60))
def test_unique_rows_tells_equal_rows_apart(rows: list[tuple]) -> None:
    """Rows share an index exactly when they are equal, and the row named for an index is one of them."""
    rows = [r if i % 3 else rows[0] for i, r in enumerate(rows)]  # some repeated
    cols = [np.array([r[0] for r in rows], dtype=np.uint8), np.array([r[1] for r in rows], dtype=np.uint64),
            *(np.array([r[k] for r in rows], dtype=f"V{w}") for k, w in ((2, 6), (3, 4), (4, 16)))]
    got = columns.unique_rows(cols)
    assert got is not None
    first, which = got
    for i, r in enumerate(rows):
        assert rows[first[which[i]]] == r
        for j, q in enumerate(rows):
            assert (which[i] == which[j]) == (r == q)


def test_unique_rows_gives_up_early_on_mostly_distinct_rows() -> None:
    """Rows that are mostly distinct (a MAC per flow, say) are not sorted for nothing: the caller
    is told to take every row; rows that repeat past the first PROBE are grouped whatever their count."""
    n = 10 * columns.PROBE
    distinct = np.arange(n, dtype=np.uint64)
    assert columns.unique_rows([distinct]) is None
    got = columns.unique_rows([distinct % 7, distinct % 3])
    assert got is not None and len(got[0]) == 21
    which = got[1]
    assert len(set(which[:21].tolist())) == 21 and (which == which[np.arange(n) % 21]).all()  # row i is (i%7, i%3)


def test_unique_rows_refuses_columns_it_would_hash_wrong() -> None:
    """Floats would be truncated into one another: refused, not grouped wrong."""
    with pytest.raises(TypeError):
        columns.unique_rows([np.array([1.25, 1.5])])


@pytest.mark.parametrize("name", ["ipfix_softflowd", "ipfix_pmacct_nfprobe"] + captures.names("ipfix_mikrotik"))
def test_ipfix_uptime_templates_aggregate_like_tuples(name: str) -> None:
    """IPFIX templates timed by flowStart/EndSysUpTime (21/22; absolute by the domain's
    systemInitTimeMilliseconds, else the export time) take the columnar path, with the flows the
    tuple path makes of them."""
    load = [(g.payload, Source(g.src, g.sport, "default", g.time)) for g in captures.datagrams(name)]
    cfg = AggregatorConfig(flush_interval=10.0)
    out_c, out_t, chunked = aggregate_both(load, cfg, batch=3)
    assert chunked > 0  # the columnar path really was taken
    _same(out_c, out_t)


UPTIME = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (22, 4), (21, 4)], template_id=310)


@pytest.mark.parametrize("batch", [1, 7])
def test_ipfix_uptime_times_come_from_the_announced_system_init_time(batch: int) -> None:
    """An exporter announcing systemInitTimeMilliseconds (160): its records' flowStart/EndSysUpTime
    become absolute times the same way on the columnar path as on the tuple path."""
    rng = random.Random(5)
    exp = Exporter("127.0.0.1:9", protocol=10, source_id=6, records_per_packet=8, boot_time=T0 - 3600,
                   clock=lambda: T0)
    recs = []
    for _ in range(300):
        up = 3_600_000 - rng.randrange(200_000)
        recs.append((_v4(rng, 2), _v4(rng, 2), rng.choice((443, 40000)), 53, 17, rng.randrange(1, 10**6),
                     rng.randrange(1, 100), up - rng.randrange(5000), up))
    load = [(g, Source("198.51.100.9", 4739, "default", T0 + 30)) for g in exp.encode(UPTIME, recs)]
    out_c, out_t, chunked = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=batch)
    assert chunked >= 290  # all but what came with the templates
    _same(out_c, out_t)
    starts = {f[5] for tick in out_t for f in tick}
    assert min(starts) < int(T0) - 100  # times from the init time, not the export time


RATES = {"nf9_akvorado_sampler_options", "nf9_akvorado_multi_sampling_rates", "ipfix_pmacct_cisco_ipv6_sampling",
}
SAMPLED = ["nf9_cisco_asr9k", "nf9_akvorado_sampler_options", "nf9_akvorado_multi_sampling_rates",
           "ipfix_pmacct_cisco_ipv6_sampling", "ipfix_akvorado_ipfixprobe",
           # (pmacct relaying Cisco: both an IPv4 and an IPv6 address field in one template, too)
           "nf9_pmacct_cisco", "nf9_pmacct_cisco_reload", "ipfix_pmacct_cisco_mpls_ipv6"]


@pytest.mark.parametrize("batch", [1, 4, 1000])
@pytest.mark.parametrize("name", captures.cases([n for n in SAMPLED if n in captures.names()]))
def test_sampled_vendor_captures_aggregate_like_tuples(name: str, batch: int) -> None:
    """Real exports with sampler ids (Cisco ASR 9000, pmacct relaying Cisco, Akvorado's samples) or
    NTP times (ipfixprobe): their data sets travel as chunks, and every flush is what flow tuples
    make of the same datagrams, with the options records in the same batch or not."""
    load = [(g.payload, Source(g.src, g.sport, "default", g.time)) for g in captures.datagrams(name)]
    out_c, out_t, chunked = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=batch)
    assert chunked > 0  # the columnar path really was taken
    if name in RATES:  # (the others' options records are not in the capture)
        assert any(f[SAMPLING_RATE] for tick in out_t for f in tick)
    _same(out_c, out_t)


V4_PLAIN = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4)], template_id=330)
V6_PLAIN = Template([(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4)], template_id=331)


@pytest.mark.parametrize("max_contexts", [2, 3, 1000])
def test_a_batch_that_fills_the_table_refuses_in_arrival_order_across_address_families(max_contexts: int) -> None:
    """One exporter's IPv4, IPv6, IPv4 data sets in one batch, the table with room for fewer: the
    contexts made (and the flows refused) are the reference's, first come first served, not one
    address family first."""
    exp = Exporter("127.0.0.1:9", protocol=10, source_id=2, records_per_packet=2, boot_time=T0 - 3600,
                   clock=lambda: T0)
    a4, b4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    a6, b6 = b"\x20\x01" + bytes(14), b"\x20\x02" + bytes(14)
    grams = (exp.encode(V4_PLAIN, [(a4, b4, 1, 80, 6, 100, 1)]) + exp.encode(V6_PLAIN, [(a6, b6, 2, 80, 6, 100, 1),
             (a6, b6, 3, 80, 6, 100, 1)]) + exp.encode(V4_PLAIN, [(a4, b4, 4, 80, 6, 100, 1)]))
    load = [(g, Source("192.0.2.8", 4739, "default", T0)) for g in grams]
    cfg = AggregatorConfig(flush_interval=10.0, max_contexts=max_contexts, port_rollup_disabled=True)
    out_c, out_t, chunked = aggregate_both(load, cfg, batch=len(load))
    assert chunked == 4 or max_contexts < 4  # (a batch that may fill the table: read in order, as tuples)
    _same(out_c, out_t)
    assert sorted(f[13] for tick in out_t for f in tick) == [1, 2, 3, 4][:max_contexts]


VARLEN_CAPTURES = ["ipfix_yaf", "ipfix_netscaler_varlen", "ipfix_nokia_bras", "ipfix_procera"]


@pytest.mark.parametrize("batch", [1, 1000])
@pytest.mark.parametrize("name", captures.cases([n for n in VARLEN_CAPTURES if n in captures.names()]))
def test_variable_length_templates_take_the_columnar_path(name: str, batch: int) -> None:
    """Real templates with variable-length fields (YAF, Citrix NetScaler, Nokia BRAS; Procera's with
    both address families too): their records' fixed-length fields are packed and read as
    columns; every flush is the reference's."""
    load = [(g.payload, Source(g.src, g.sport, "default", g.time)) for g in captures.datagrams(name)]
    out_c, out_t, chunked = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=batch)
    assert chunked > 0
    _same(out_c, out_t)


APP = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (32001, 65535, 9999)], template_id=340)


def _cut(g: bytes, cut: int) -> bytes:
    """A datagram of one data set of APP with its last ``cut`` bytes gone, its lengths saying so."""
    if int.from_bytes(g[16:18], "big") != 340 or int.from_bytes(g[18:20], "big") != len(g) - 16 or len(g) < cut + 24:
        return g
    g = g[:len(g) - cut]
    return g[:2] + len(g).to_bytes(2, "big") + g[4:18] + (len(g) - 16).to_bytes(2, "big") + g[20:]


@pytest.mark.parametrize("cut", [0, 3, 11, 200])
def test_variable_length_records_cut_short_keep_the_reference_flows(cut: int) -> None:
    """A vendor string (variable length) in each record, some sets cut short at the end: the
    records before the cut are aggregated as the reference aggregates them."""
    from flowpipe.export import IpfixEncoder  # noqa: PLC0415

    rng = random.Random(cut)
    enc = IpfixEncoder(observation_domain_id=3)
    recs = [(_v4(rng, 3), _v4(rng, 3), rng.randrange(32768, 32800), 443, 6, rng.randrange(1, 900), 1,
             b"x" * rng.choice((0, 3, 300))) for _ in range(200)]
    grams = [enc.template_message([APP], int(T0))]
    grams += [enc.data_message(APP, recs[a:a + 9], int(T0)) for a in range(0, len(recs), 9)]
    grams = [_cut(g, cut) if k % 3 == 2 else g for k, g in enumerate(grams)]
    load = [(g, Source("192.0.2.7", 4739, "default", T0)) for g in grams]
    dec = DatagramDecoder("ipfix", DecoderConfig(), [], columnar=True)
    overruns = [p for g, src in load for p in dec.decode(g, src).skipped].count("record_overrun")
    assert (overruns > 0) == bool(cut)
    out_c, out_t, chunked = aggregate_both(load, AggregatorConfig(flush_interval=10.0), batch=5)
    assert chunked > 100
    _same(out_c, out_t)


DUAL = Template([(8, 4), (27, 16), (12, 4), (28, 16), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4)], template_id=350)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("rollup", [True, False])
def test_templates_with_either_address_family_split_records_by_it(batch: int, rollup: bool) -> None:
    """A template carrying both an IPv4 and an IPv6 source and destination (pmacct relaying Cisco):
    each record's address is the IPv4 one unless it is all zero and the IPv6 one is not; records of
    each pair of lengths (IPv4/IPv4, IPv6/IPv6, mixed, all zero) take a plan of their own, and every
    flush is the reference's."""
    rng = random.Random(batch)
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=5, records_per_packet=11, boot_time=T0 - 3600,
                   clock=lambda: T0)
    z4, z16 = bytes(4), bytes(16)
    recs = []
    for _ in range(400):
        v4 = (_v4(rng, 3), _v4(rng, 3))
        v6 = (b" \x01" + bytes(13) + bytes((rng.randrange(3),)), b" \x02" + bytes(13) + bytes((rng.randrange(3),)))
        kind = rng.choice(("44", "66", "46", "64", "00", "44v6"))
        src4, src6 = (v4[0], z16) if kind[0] == "4" else (z4, v6[0]) if kind[0] == "6" else (z4, z16)
        dst4, dst6 = (v4[1], z16) if kind[1] == "4" else (z4, v6[1]) if kind[1] == "6" else (z4, z16)
        if kind == "44v6":  # both given: the IPv4 one wins
            src6, dst6 = v6
        recs.append((src4, src6, dst4, dst6, rng.randrange(32768, 32790), 443, 6, rng.randrange(1, 999), 1))
    load = [(g, Source("192.0.2.5", 2055, "default", T0)) for g in exp.encode(DUAL, recs)]
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup, port_rollup_threshold=4)
    out_c, out_t, chunked = aggregate_both(load, cfg, batch=batch)
    assert chunked > 350
    _same(out_c, out_t)
    lens = {(len(f[11]), len(f[12])) for tick in out_t for f in tick}
    assert lens == {(4, 4), (16, 16), (4, 16), (16, 4)}


DUAL_VARLEN = Template([(32001, 65535, 9999), (8, 4), (27, 16), (12, 4), (28, 16), (7, 2), (11, 2), (4, 1), (1, 4),
                        (2, 4), (32002, 65535, 9999)], template_id=351)


@pytest.mark.parametrize("batch", [1, 6])
def test_variable_length_templates_with_either_address_family(batch: int) -> None:
    """Variable-length fields around IPv4 and IPv6 address fields (Procera's shape): the packed
    records are split by the lengths their addresses take, and flow tuples, where needed, are
    the set's own records at those positions; every flush is the reference's."""
    from flowpipe.export import IpfixEncoder  # noqa: PLC0415

    rng = random.Random(batch)
    enc = IpfixEncoder(observation_domain_id=8)
    z4, z16 = bytes(4), bytes(16)
    recs = []
    for _ in range(300):
        six = rng.random() < 0.4
        src4, src6 = (z4, b" \x01" + bytes(13) + bytes((rng.randrange(3),))) if six else (_v4(rng, 3), z16)
        dst4, dst6 = (z4, b" \x02" + bytes(14)) if six else (_v4(rng, 3), z16)
        recs.append((b"a" * rng.choice((0, 5, 280)), src4, src6, dst4, dst6, rng.randrange(32768, 32790), 443, 6,
                     rng.randrange(1, 999), 1, b"b" * rng.choice((1, 7))))
    grams = [enc.template_message([DUAL_VARLEN], int(T0))]
    grams += [enc.data_message(DUAL_VARLEN, recs[a:a + 8], int(T0)) for a in range(0, len(recs), 8)]
    load = [(g, Source("192.0.2.9", 4739, "default", T0)) for g in grams]
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=4)
    out_c, out_t, chunked = aggregate_both(load, cfg, batch=batch)
    assert chunked == 300
    _same(out_c, out_t)
    assert {len(f[11]) for tick in out_t for f in tick} == {4, 16}
    columnar, plain = (DatagramDecoder("ipfix", DecoderConfig(), [], columnar=c) for c in (True, False))
    for g, src in load:  # a split set's flow tuples: its own records, at their positions
        d = columnar.decode(g, src)
        want = plain.decode(g, src).flows
        got = [(c.count, c.rows()) for c in d.chunks]
        assert all(n == len(rows) and len({len(f[11]) for f in rows}) == 1 for n, rows in got)
        assert sorted(f for _, rows in got for f in rows) == sorted(want)
