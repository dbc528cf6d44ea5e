"""Flow tuples as a record source (flowpipe.decode.rows): read into columns (compiled and in Python
alike) and aggregated by the accumulator's one path exactly as the per-record reference does."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceAccumulator
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig, SamplingRule
from flowpipe.decode import walk
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.exporters import SamplingPolicy
from flowpipe.decode.rows import RowColumns, Rows, columns_of, rows
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.export import Exporter, Template
from flowpipe.flow import BYTES, DST_IP, EXTRAS, SAMPLING_RATE, SRC_IP, SRC_PORT, make_flow
from flowpipe.metrics import Metrics

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
V6 = b"\x20\x01" + bytes(13) + b"\x01"
T0 = 1_700_000_000.0

values = st.one_of(st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.floats(allow_nan=False),
                   st.integers(-(2**63), 2**63 - 1).map(np.int64), st.binary(max_size=20), st.text(max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(values, values, values, values), max_size=40),
       st.lists(st.tuples(st.integers(0, 3), st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1)),
                max_size=5),
       st.lists(st.integers(0, 3), max_size=3))
@pytest.mark.skipif(not walk.COMPILED, reason="flowpipe/decode/_walk.c is not built (no C compiler)")
def test_compiled_tuple_columns_read_what_the_python_ones_read(flows: list[tuple], ints: list[tuple[int, int, int]],
                                                              lengths: list[int]) -> None:
    """Any values (ints past 64 bits, bools, numpy ints, floats, None, bytes, text), any bounds: the
    same columns and ok bytes."""
    got = walk.tuple_columns(flows, tuple(ints), tuple(lengths))
    assert got == walk.py_tuple_columns(flows, tuple(ints), tuple(lengths))


def test_tuple_columns_reads_integers_in_bounds_and_lengths_of_bytes() -> None:
    flows = [(5, True, b"abcd"), (2**64, np.int64(-3), "x"), (1.5, 7, b"")]
    for read in (walk.py_tuple_columns, walk.tuple_columns):
        raw, ok = read(flows, ((0, 0, 10), (1, -5, 5)), (2,))
        cols = np.frombuffer(raw, np.int64).reshape(3, 3)
        assert cols.tolist() == [[5, 0, 0], [1, -3, 0], [4, -1, 0]]  # (7 is past 5: 0, not ok)
        assert list(ok) == [1, 0, 0]
    with pytest.raises(TypeError):
        walk.tuple_columns([(1,)], ((3, 0, 1),), ())  # a slot past the tuple's end


class _Boom:
    def __index__(self) -> int:
        raise RuntimeError("boom")


class _Clears:
    """An integer whose __index__ empties the list being read (the compiled reader holds its own copy)."""

    def __init__(self, flows: list[tuple]) -> None:
        self.flows = flows

    def __index__(self) -> int:
        self.flows.clear()
        return 5


def test_tuple_columns_pass_on_what_an_index_raises_and_survive_a_list_emptied_meanwhile() -> None:
    for read in (walk.py_tuple_columns, walk.tuple_columns):
        with pytest.raises(RuntimeError):
            read([(1, _Boom())], ((0, 0, 9), (1, 0, 9)), ())
    for read in (walk.py_tuple_columns, walk.tuple_columns):
        flows: list[tuple] = [(1, b"ab"), (2, b"c")]
        flows.insert(1, (_Clears(flows), b"xyz"))
        raw, ok = read(flows, ((0, 0, 9),), (1,))
        assert np.frombuffer(raw, np.int64).tolist() == [1, 5, 2, 2, 3, 1] and ok == b"\x01\x01\x01"
    raw, ok = walk.tuple_columns([(2**70,)], ((0, -(2**80), 2**80),), ())  # bounds past 64 bits: clamped
    assert ok == b"\x00" and raw == walk.py_tuple_columns([(2**70,)], ((0, -(2**80), 2**80),), ())[0]


def test_flows_of_several_address_lengths_split_by_them_or_in_runs() -> None:
    f = [make_flow(exporter="x", src_ip=s, dst_ip=d, src_port=p) for p, (s, d) in
         enumerate([(A, B), (A, V6), (A, B), (A, B), (b"", B)])]
    by_family = columns_of(f)
    assert sorted(tuple(c.flows[0][SRC_PORT] for c in by_family)) == [0, 1, 4]
    assert [[x[SRC_PORT] for x in c.flows] for c in by_family if len(c.flows[0][DST_IP]) == 4
            and c.flows[0][SRC_IP]] == [[0, 2, 3]]
    runs = columns_of(f, in_order=True)
    assert [[x[SRC_PORT] for x in c.flows] for c in runs] == [[0], [1], [2, 3], [4]]
    assert all(isinstance(c, RowColumns) and c.ok.all() for c in runs)


def test_a_value_the_columns_cannot_hold_takes_the_one_by_one_lane_exactly() -> None:
    """A port past 16 bits, a counter past 2**48, a float time: not ok, and aggregated as the
    reference aggregates them, next to ordinary flows of the same batch."""
    flows = [make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=40000, dst_port=70000, bytes=5, packets=1),
             make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=40000, dst_port=70000, bytes=2**60, packets=1),
             make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=1, dst_port=53, bytes=2**50, packets=1),
             make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=1, dst_port=53, bytes=3, packets=1, start=1.5),
             make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=2, dst_port=53, bytes=1, packets=1)]
    (cols,) = columns_of(flows)
    assert cols.ok.tolist() == [False, False, False, False, True]
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=True)
    acc, ref = Accumulator(cfg), ReferenceAccumulator(cfg)
    acc.add(rows(flows), T0)
    ref.add(flows, T0)
    assert sorted(map(repr, acc.drain())) == sorted(map(repr, ref.drain()))


def test_more_distinct_additional_field_sets_than_bits_still_join_in_order() -> None:
    """70 distinct sets of additional field names on one context (62 get a bit of their own, the
    rest share "other"): every field lands in the window, the first value of each kept."""
    flows = [make_flow(exporter="x", src_ip=A, dst_ip=B, src_port=1, dst_port=2, bytes=1, packets=1,
                       extras={f"f{k}": k, "common": k})
             for k in range(70)]
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=True)
    acc, ref = Accumulator(cfg), ReferenceAccumulator(cfg)
    acc.add(rows(flows[:1]), T0)  # a window open before: the rest merge
    acc.add(rows(flows[1:]), T0)
    ref.add(flows, T0)
    (got,), (want,) = list(acc.drain()), ref.drain()
    assert got[EXTRAS] == want[EXTRAS] and got[EXTRAS]["common"] == 0 and len(got[EXTRAS]) == 71


def test_the_decoder_stage_hands_flow_tuples_on_as_rows_in_arrival_order() -> None:
    """A template no plan reads (3-byte octet counters) is decoded record by record: every record a
    flow tuple, scaled by the listener's rate, in a Rows chunk per datagram, and the batch counts them."""
    lc = ListenerConfig(flow_type="netflow9")
    stage = DecoderStage(lc, Metrics(), decoder=DatagramDecoder("netflow9", DecoderConfig(), [], lc, columnar=True),
                         queue=FlowQueue(10**9), sampling=SamplingPolicy([SamplingRule(default=10)], scale=True))
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=1, records_per_packet=10, boot_time=T0 - 3600,
                   clock=lambda: T0)
    odd = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 3), (2, 4)], template_id=290)
    rng = random.Random(3)
    recs = [(bytes((10, 0, 0, i % 7)), bytes((10, 0, 1, 1)), 40000 + i, 443, 6, rng.randrange(1, 2**24), 1 + i % 5)
            for i in range(50)]
    fb = stage.decode_batch([(g, "192.0.2.9", 2055, T0) for g in exp.encode(odd, recs)])
    assert fb.chunks and all(isinstance(c, Rows) and c.exporter == "192.0.2.9" for c in fb.chunks)
    assert fb.size == sum(c.count for c in fb.chunks) == 50
    flows = [f for c in fb.chunks for f in c.rows()]
    assert [f[SRC_PORT] for f in flows] == [40000 + i for i in range(50)]  # in arrival order
    assert all(f[SAMPLING_RATE] == 1 for f in flows)
    assert sum(f[BYTES] for f in flows) == 10 * sum(r[5] for r in recs)
