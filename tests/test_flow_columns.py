"""Flushed flows as columns (flowpipe.flow.FlowColumns): what the renderer and rDNS read, the same
flows as the per-flow lists tools and filters see."""
from __future__ import annotations

import gc
import sys

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.config import AggregatorConfig
from flowpipe.decode.rows import rows
from flowpipe.flow import BYTES, DST_IP, KEPT, KEY, NEXT_HOP, SRC_IP, SRC_PORT, FlowColumns, FlushBatch, make_flow
from flowpipe.render import render_batch, render_json_batch
from flowpipe.render.jsontext import render_json_joined

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
    acc.add(rows([make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, i >> 8, i & 255]), dst_ip=b"\x0a\x01\x00\x01",
                       src_port=40000 + i % 1000, dst_port=443, bytes=100 + i, packets=1, ip_protocol=6,
                       start=1, end=2) for i in range(20_000)]), now=1000.0)
    gc.collect()
    before = sys.getallocatedblocks()
    out = acc.flush(1011.0)
    grown = sys.getallocatedblocks() - before
    assert isinstance(out, FlowColumns) and len(out) == 20_000
    # the addresses, ports and counters stay in arrays: an object per value (what flushes made before
    # this, ~106,000 blocks here) would be held until the flows are rendered, at every flush
    assert grown < 2_000, f"{grown} memory blocks held by the flushed flows"
    assert sorted(out.column(BYTES)) == [100 + i for i in range(20_000)]
    assert {f[SRC_PORT] for f in out} == {40000 + i for i in range(1000)}
    assert set(out.column(DST_IP)) == {b"\x0a\x01\x00\x01"}
    assert len(KEY) == 9 and len(KEPT) == 10


def test_shutdown_drains_in_parts_what_one_drain_gives() -> None:
    """At shutdown every held window leaves a few thousand at a time (a million at once held all their
    rendered flows together), the same flows a whole drain gives, and nothing is held afterwards."""
    def filled() -> Accumulator:
        acc = Accumulator(AggregatorConfig(flush_interval=10.0))
        acc.add(rows([make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, i >> 8, i & 255]), dst_ip=b"\n\x01\x00\x01",
                           src_port=40000 + i, dst_port=53, bytes=60 + i, packets=1, ip_protocol=17, start=1, end=2)
                 for i in range(10_000)]), now=1000.0)
        acc.flush(1011.0)  # emitted: these windows are empty now
        acc.add(rows([make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, i >> 8, i & 255]), dst_ip=b"\n\x01\x00\x01",
                           src_port=40000 + i, dst_port=53, bytes=7, packets=1, ip_protocol=17, start=3, end=4)
                 for i in range(0, 10_000, 3)]), now=1012.0)
        return acc

    whole = filled().drain()
    acc = filled()
    parts = list(acc.drain_parts(1000))
    assert [len(p) for p in parts] == [1000] * 3 + [334]
    assert FlowColumns.join(parts).rows() == whole.rows() and len(whole) == 3334
    assert set(whole.column(BYTES)) == {7}
    assert not acc.contexts and len(acc.drain()) == 0


def int_flows(width: int) -> st.SearchStrategy[list[list]]:
    """Flows whose addresses are ``width`` bytes and whose integers fit int64 (what arrays hold)."""
    address = st.binary(min_size=width, max_size=width)
    return st.lists(st.builds(
        lambda src, dst, sp, nbytes, extras, nh: list(make_flow(
            exporter="192.0.2.1", src_ip=src, dst_ip=dst, src_port=sp, dst_port=443, bytes=nbytes, packets=1,
            ip_protocol=6, next_hop=nh, extras=extras)),
        address, address, st.integers(-1, 65535), st.integers(-(2**63), 2**63 - 1),
        st.none() | st.dictionaries(st.sampled_from(["vlan", "app"]), st.integers(0, 9), min_size=1), addresses),
        max_size=30)


def as_arrays(cols: FlowColumns, width: int = 4) -> FlowColumns:
    """The same flows with the columns the accumulator emits as arrays made arrays."""
    key = [*cols.key[:2], *(np.array(c, dtype=f"V{width}") for c in cols.key[2:4]),
           *(np.array(c, dtype=np.int64) for c in cols.key[4:])]
    counters = (np.array(c, dtype=np.int64) for c in (cols.start, cols.end, cols.bytes, cols.packets, cols.flags))
    return FlowColumns(key, cols.kept, *counters, cols.extras)


@given(int_flows(4), st.integers(0, 31), st.integers(0, 31))
@settings(max_examples=60, deadline=None)
def test_array_columns_read_as_the_same_plain_flows(rows: list[list], a: int, b: int) -> None:
    """Flows whose columns are numpy arrays (as a flush emits them) read back as the same lists of
    plain ints and bytes, sliced, joined with list columns or not, and column by column."""
    cols = as_arrays(FlowColumns.of_rows(rows))
    got = cols.rows()
    assert got == rows and all(type(v) in (int, bytes) for f in got for v in (f[SRC_IP], f[SRC_PORT], f[BYTES]))
    assert cols[a:b].rows() == rows[a:b]
    assert FlowColumns.join([cols[:a], cols[a:]]).rows() == rows
    assert FlowColumns.join([cols[:a], FlowColumns.of_rows(rows[a:])]).rows() == rows
    assert cols.column(SRC_IP) == [f[SRC_IP] for f in rows] and cols.column(BYTES) == [f[BYTES] for f in rows]
    both = FlowColumns.join([cols[:a], cols[a:]])
    assert isinstance(both.bytes, np.ndarray) and isinstance(both.key[2], np.ndarray)


@pytest.mark.parametrize("width", [4, 16])
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_json_from_array_columns_is_the_json_from_lists(width: int, data: st.DataObject) -> None:
    """The renderer reads array columns in place: the same texts as from the flows' lists, with
    reverse-DNS names, rolled-up ports, IPv6, and values it cannot write itself (a negative counter:
    rendered whole by the Python helper) alike; joined into one text too."""
    rows = data.draw(int_flows(width))
    names = {f[SRC_IP]: "first.example" for f in rows[:1]}
    lists = FlushBatch(1_700_000_000.5, rows, names)
    arrays = FlushBatch(1_700_000_000.5, as_arrays(FlowColumns.of_rows(rows), width), names)
    want = render_json_batch(lists, "h", {"env": "prod"})
    assert render_json_batch(arrays, "h", {"env": "prod"}) == want
    assert render_batch(arrays, "h") == render_batch(lists, "h")
    if want and not isinstance(want[0], dict):
        assert render_json_joined(arrays, "h", {"env": "prod"}) == b",".join(want)


def test_arrays_laid_out_any_way_render_the_same() -> None:
    """Counters in an unaligned array, or a strided view (not read in place: the renderer takes the
    slower way), give the same texts as lists."""
    rows = [list(make_flow(exporter="192.0.2.1", src_ip=bytes([10, 0, 0, k]), dst_ip=b"\x0a\x01\x00\x01",
                           src_port=40000 + k, dst_port=443, bytes=1000 + k, packets=k + 1, ip_protocol=6))
            for k in range(50)]
    want = render_json_batch(FlushBatch(1_700_000_000.5, rows), "h")
    cols = as_arrays(FlowColumns.of_rows(rows))
    unaligned = np.frombuffer(b"\x00" + cols.bytes.tobytes(), dtype=np.int64, offset=1)
    strided = np.repeat(cols.packets, 2)[::2]
    assert unaligned.ctypes.data % 8 and not strided.flags.c_contiguous
    odd = FlowColumns(cols.key, cols.kept, cols.start, cols.end, unaligned, strided, cols.flags, cols.extras)
    assert render_json_batch(FlushBatch(1_700_000_000.5, odd), "h") == want
