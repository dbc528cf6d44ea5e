"""Flushed flows as columns (flowpipe.flow.FlowColumns): what the renderer and rDNS read, the same
flows as the per-flow lists tools and filters see."""
from __future__ import annotations

import gc

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.config import AggregatorConfig
from flowpipe.flow import BYTES, DST_IP, KEPT, KEY, NEXT_HOP, SRC_IP, SRC_PORT, FlowColumns, FlushBatch, make_flow
from flowpipe.render import render_batch, render_json_batch

addresses = st.sampled_from([b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", bytes(15) + b"\x01", b""])
flows = st.lists(st.builds(
    lambda src, dst, sp, nbytes, extras, nh: list(make_flow(
        exporter="192.0.2.1", src_ip=src, dst_ip=dst, src_port=sp, dst_port=443, bytes=nbytes, packets=1,
        ip_protocol=6, next_hop=nh, extras=extras)),
    addresses, addresses, st.integers(-1, 65535), st.integers(0, 2**64 + 5),
    st.none() | st.dictionaries(st.sampled_from(["vlan", "app"]), st.integers(0, 9), min_size=1), addresses),
    max_size=30)


@given(flows, st.integers(0, 31), st.integers(0, 31))
@settings(max_examples=60, deadline=None)
def test_columns_hold_the_same_flows_as_the_lists(rows: list[list], a: int, b: int) -> None:
    cols = FlowColumns.of_rows(rows)
    assert cols.rows() == rows and len(cols) == len(rows)
    assert list(cols) == rows and [cols[i] for i in range(len(rows))] == rows
    assert cols[a:b].rows() == rows[a:b]
    assert FlowColumns.join([cols[:a], cols[a:]]).rows() == rows
    assert cols.column(SRC_IP) == [f[SRC_IP] for f in rows]
    assert cols.column(NEXT_HOP) == [f[NEXT_HOP] for f in rows]
    assert cols.column(BYTES) == [f[BYTES] for f in rows]


@given(flows)
@settings(max_examples=60, deadline=None)
def test_json_from_columns_is_the_payload_of_each_flow(rows: list[list]) -> None:
    """The compiled renderer reads the columns; every flow's text is what the payload object of that
    flow, rendered alone from its list, serializes to (or the objects when JSON cannot hold one)."""
    batch = FlushBatch(1_700_000_000.5, rows, {b"\x0a\x00\x00\x01": "a.example"})
    got = render_json_batch(batch, "h", {"env": "prod"})
    want = render_batch(FlushBatch(batch.flush_time, [list(f) for f in rows], batch.hostnames), "h",
                        {"env": "prod"})
    if got and isinstance(got[0], dict):
        assert got == want
    else:
        assert [orjson.loads(t) for t in got] == want


def test_a_flush_emits_columns_and_no_object_per_flow() -> None:
    acc = Accumulator(AggregatorConfig(flush_interval=10.0, port_rollup_disabled=True))
    acc.add([make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, i >> 8, i & 255]), dst_ip=b"\x0a\x01\x00\x01",
                       src_port=40000 + i % 1000, dst_port=443, bytes=100 + i, packets=1, ip_protocol=6,
                       start=1, end=2) for i in range(20_000)], now=1000.0)
    gc.collect()
    before = len(gc.get_objects())
    out = acc.flush(1011.0)
    grown = len(gc.get_objects()) - before
    assert isinstance(out, FlowColumns) and len(out) == 20_000
    # one list per flow would be 20,000 more (what flushes made before, for every collection to walk)
    assert grown < 4_000, f"{grown} new objects for the garbage collector to walk"
    assert sorted(out.column(BYTES)) == [100 + i for i in range(20_000)]
    assert {f[SRC_PORT] for f in out} == {40000 + i for i in range(1000)}
    assert set(out.column(DST_IP)) == {b"\x0a\x01\x00\x01"}
    assert len(KEY) == 9 and len(KEPT) == 10


def test_shutdown_drains_in_parts_what_one_drain_gives() -> None:
    """At shutdown every held window leaves a few thousand at a time (a million at once held all their
    rendered flows together), the same flows a whole drain gives, and nothing is held afterwards."""
    def filled() -> Accumulator:
        acc = Accumulator(AggregatorConfig(flush_interval=10.0))
        acc.add([make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, i >> 8, i & 255]), dst_ip=b"\x0a\x01\x00\x01",
                           src_port=40000 + i, dst_port=53, bytes=60 + i, packets=1, ip_protocol=17, start=1, end=2)
                 for i in range(10_000)], now=1000.0)
        acc.flush(1011.0)  # emitted: these windows are empty now
        acc.add([make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, i >> 8, i & 255]), dst_ip=b"\x0a\x01\x00\x01",
                           src_port=40000 + i, dst_port=53, bytes=7, packets=1, ip_protocol=17, start=3, end=4)
                 for i in range(0, 10_000, 3)], now=1012.0)
        return acc

    whole = filled().drain()
    acc = filled()
    parts = list(acc.drain_parts(1000))
    assert [len(p) for p in parts] == [1000] * 3 + [334]
    assert FlowColumns.join(parts).rows() == whole.rows() and len(whole) == 3334
    assert set(whole.column(BYTES)) == {7}
    assert not acc.contexts and len(acc.drain()) == 0
