"""The fast aggregation paths give exactly the results of the straightforward per-flow ones.

``ReferenceRollup`` and ``ReferenceAccumulator`` (:mod:`flowpipe.aggregate.reference`) are
flowpipe's original implementations (flat tracker dict, one context object and list per context,
rollup observed for every flow), kept as the oracle. Hypothesis drives both with the same random
flow batches (small value domains, so keys repeat, pairs roll up, extras merge, windows refill and
contexts expire), flushes, rotations and drains, and every output and counter must match: the
compiled trackers (seeds, tables that grow and shrink), the per-batch key lookups, the slot columns
and the windows held aside for values past 64 bits.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceAccumulator, ReferenceRollup
from flowpipe.aggregate.rollup import COMPILED, Trackers
from flowpipe.config import AggregatorConfig
from flowpipe.decode.rows import rows
from flowpipe.flow import (
    DST_IP,
    PACKETS,
    SRC_IP,
    make_flow,
)

# ---- strategies ---------------------------------------------------------------------------------

IPS = [bytes([10, 0, 0, i]) for i in range(1, 4)]
PORTS = [1, 2, 3, 80, 443]
OTHER_IPS = [b"", b"\x20\x01" + bytes(13) + b"\x01"]
BIG = [2**63 - 1, 2**63, 2**64 - 1]

flow_specs = st.fixed_dictionaries({
    "exporter": st.sampled_from(["192.0.2.1", "192.0.2.2"]),
    "namespace": st.sampled_from(["default", "other"]),
    # now and then an IPv6 or absent address and a port past 16 bits: contexts of every key layout
    # (and plain tuple keys) side by side in one flush
    "src_ip": st.one_of(st.sampled_from(IPS), st.sampled_from(OTHER_IPS)),
    "dst_ip": st.one_of(st.sampled_from(IPS), st.sampled_from(OTHER_IPS)),
    "src_port": st.one_of(st.sampled_from(PORTS), st.just(70000)), "dst_port": st.sampled_from(PORTS),
    "ip_protocol": st.sampled_from([6, 17]), "tos": st.sampled_from([0, 8]), "in_if": st.sampled_from([1, 2]),
    "out_if": st.integers(0, 3), "type": st.sampled_from(["netflow9", "ipfix"]),
    "bytes": st.one_of(st.integers(1, 10_000), st.sampled_from(BIG)),
    "packets": st.one_of(st.integers(1, 100), st.sampled_from(BIG)),
    "start": st.one_of(st.integers(1_700_000_000, 1_700_000_100), st.sampled_from([-(2**63) - 1, 2**64 - 1])),
    "end": st.integers(1_700_000_000, 1_700_000_200),
    "tcp_flags": st.one_of(st.integers(0, 0x3F), st.just(2**64 - 1)),
    "next_hop": st.sampled_from([b"", IPS[0]]),
    "extras": st.one_of(st.none(), st.dictionaries(st.sampled_from(["vlan", "app", "as"]), st.integers(0, 3),
                                                   max_size=2)),
})

ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(st.integers(0, 39), max_size=30), st.floats(0, 20)),
    st.tuples(st.just("flush"), st.floats(0, 20), st.sampled_from([0, 1, 2, 7])),
    st.tuples(st.just("rotate")),
    st.tuples(st.just("drain")),
), max_size=25)

configs = st.fixed_dictionaries({
    "flush_interval": st.sampled_from([5.0, 10.0]),
    "flow_context_ttl": st.sampled_from([None, 3.0, 30.0]),
    "port_rollup_disabled": st.booleans(),
    "port_rollup_threshold": st.integers(1, 4),
    "max_contexts": st.sampled_from([3, 10, 1_000_000]),
    "max_rollup_entries": st.sampled_from([5, 40, 2_000_000]),
})


def materialize(specs: list[dict[str, Any]], small: bool) -> list[tuple]:
    """Flow tuples (a fresh extras dict each) for one accumulator; ``small`` keeps values in 64 bits."""
    out = []
    for s in specs:
        s = dict(s)
        if small:
            for k in ("bytes", "packets", "tcp_flags"):
                s[k] = s[k] if s[k] < 2**40 else 7
            s["start"] = s["start"] if abs(s["start"]) < 2**40 else 1_700_000_050
        s["extras"] = dict(s["extras"]) if s["extras"] is not None else None
        out.append(make_flow(**s))
    return out


def per_family(rows: Any, src: int = SRC_IP, dst: int = DST_IP) -> dict[tuple[int, int], list[Any]]:
    """Flows (or context keys, with their address positions) by address lengths, each in its order:
    contexts of different address lengths share nothing, and only the order they are made (and
    emitted) in may differ between lengths (see flowpipe.decode.rows.columns_of)."""
    out: dict[tuple[int, int], list[Any]] = {}
    for r in rows:
        out.setdefault((len(r[src]), len(r[dst])), []).append(r)
    return out


def run_both(cfg: AggregatorConfig, specs: list[dict[str, Any]], script: list[tuple], small: bool) -> None:
    ref, new = ReferenceAccumulator(cfg), Accumulator(cfg)
    pool_ref, pool_new = materialize(specs, small), materialize(specs, small)
    now = 1000.0
    for op in script:
        if op[0] == "add":
            now += op[2]
            ref.add([pool_ref[i % len(pool_ref)] for i in op[1]], now)
            new.add(rows([pool_new[i % len(pool_new)] for i in op[1]]), now)
        elif op[0] == "flush":
            now += op[1]
            want = per_family(ref.flush(now))
            if op[2]:  # in parts, as the service does: the same flows in the same order
                assert per_family([f for part in new.flush_parts(now, op[2]) for f in part]) == want
            else:
                assert per_family(new.flush(now)) == want
        elif op[0] == "rotate":
            ref.rotate_rollup()
            new.rotate_rollup()
        else:
            assert per_family(new.drain()) == per_family(ref.drain())
        assert len(new.contexts) == len(ref.contexts)
        assert per_family(new.context_keys(), 2, 3) == per_family(ref.contexts, 2, 3)
        assert (new.dropped_full, new.received) == (ref.dropped_full, ref.received)
        if ref.rollup is not None:
            assert new.rollup is not None
            assert [new.rollup.entries(g) for g in (0, 1)] == [ref.rollup.entries(g) for g in (0, 1)]
            assert new.rollup.refused == ref.rollup.refused
    assert per_family(new.drain()) == per_family(ref.drain())


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs, st.lists(flow_specs, min_size=1, max_size=40), ops, st.booleans())
def test_accumulator_matches_the_per_flow_reference(cfg: dict[str, Any], specs: list[dict[str, Any]],
                                                    script: list[tuple], small: bool) -> None:
    run_both(AggregatorConfig(**cfg), specs, script, small)


# Addresses of other lengths (absent, IPv6: pairs of mixed lengths are keyed apart) and ports at
# and past the 16-bit edges (a seed holds both ports in one int) now and then.
PAIR_IPS = st.one_of(st.sampled_from(IPS[:2]), st.sampled_from(OTHER_IPS))
SIDE_PORTS = st.one_of(st.sampled_from(PORTS[:4]), st.sampled_from([0, 65535, 65536, 70000]))
rollup_ops = st.lists(st.one_of(
    st.tuples(st.just("observe"), PAIR_IPS, PAIR_IPS, SIDE_PORTS, st.sampled_from(PORTS[1:])),
    st.tuples(st.just("observe"), PAIR_IPS, PAIR_IPS, SIDE_PORTS, SIDE_PORTS),
    st.tuples(st.just("classify"), PAIR_IPS, PAIR_IPS, SIDE_PORTS, st.sampled_from(PORTS[1:])),
    st.tuples(st.just("rotate")),
), max_size=120)


@pytest.mark.slow
@pytest.mark.skipif(not COMPILED, reason="the compiled trackers are not built (no C compiler at install)")
@settings(max_examples=1000, deadline=None)
@given(st.integers(1, 5), st.sampled_from([3, 8, 30, 2_000_000]), rollup_ops)
def test_rollup_matches_the_flat_reference(threshold: int, max_entries: int, script: list[tuple]) -> None:
    ref, new = ReferenceRollup(threshold, max_entries), Trackers(threshold, max_entries)
    for op in script:
        if op[0] == "observe":
            assert new.observe(*op[1:]) == ref.observe(*op[1:])
        elif op[0] == "classify":
            assert new.classify(*op[1:]) == ref.classify(*op[1:])
        else:
            ref.rotate()
            new.rotate()
        assert new.refused == ref.refused
        for gen in (0, 1):
            assert new.entries(gen) == ref.entries(gen)
            assert new.trackers(gen) == ref.trackers(gen)


@pytest.mark.slow
@pytest.mark.skipif(not COMPILED, reason="the compiled trackers are not built (no C compiler at install)")
@settings(max_examples=300, deadline=None)
@given(st.integers(2, 4), st.sampled_from([6, 40, 2_000_000]),
       st.lists(st.lists(st.tuples(st.sampled_from(IPS[:3]), st.sampled_from(IPS[:3]), SIDE_PORTS,
                                   st.sampled_from(PORTS)), max_size=40), max_size=8))
def test_columns_are_observed_in_record_order(threshold: int, max_entries: int,
                                              batches: list[list[tuple[bytes, bytes, int, int]]]) -> None:
    """A batch of columns gets the verdicts, trackers and refusals of its flows observed one by one."""
    ref, new = ReferenceRollup(threshold, max_entries), Trackers(threshold, max_entries)
    for batch in batches:
        n = len(batch)
        cols = [np.frombuffer(b"".join(x[k] for x in batch), np.uint8) for k in (0, 1)]
        ports = [np.array([x[k] for x in batch], np.uint64) for k in (2, 3)]
        got = new.observe_columns(*cols, *ports, n)
        assert list(got) == [ref.observe(*x) for x in batch]
        assert new.refused == ref.refused
        assert [new.trackers(g) for g in (0, 1)] == [ref.trackers(g) for g in (0, 1)]
        new.rotate()
        ref.rotate()


def test_values_past_64_bits_widen_the_columns_and_stay_exact() -> None:
    a, r = Accumulator(AggregatorConfig(port_rollup_disabled=True)), ReferenceAccumulator(
        AggregatorConfig(port_rollup_disabled=True))
    flows = [make_flow(exporter="x", src_ip=IPS[0], dst_ip=IPS[1], bytes=2**63 - 1, packets=1, start=5, end=6),
             make_flow(exporter="x", src_ip=IPS[0], dst_ip=IPS[1], bytes=2**63 - 1, packets=2**64 - 1, start=-(2**70),
                       end=2**80, tcp_flags=2**64 - 1)]
    a.add(rows(flows[:1]), 0)
    a.add(rows(flows[1:]), 0)
    r.add(flows[:1], 0)
    r.add(flows[1:], 0)
    assert a.flush(1) == r.flush(1)
    out = r.drain()
    assert a.drain() == out


def test_both_sides_at_the_threshold_roll_up_the_destination_like_the_reference() -> None:
    a, b = IPS[0], IPS[1]
    new, ref = Trackers(2), ReferenceRollup(2)
    for sp, dp in ((1, 10), (1, 11), (2, 12), (3, 12), (1, 12)):
        assert new.observe(a, b, sp, dp) == ref.observe(a, b, sp, dp)
    assert ref.classify(a, b, 1, 12) == 2 == new.classify(a, b, 1, 12)  # a tie: the destination is "*"


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(flow_specs, min_size=1, max_size=30), st.lists(st.lists(st.integers(0, 29), max_size=10), max_size=6),
       st.integers(1, 4))
def test_flows_added_between_flush_parts_are_neither_lost_nor_doubled(specs: list[dict[str, Any]],
                                                                      between: list[list[int]], size: int) -> None:
    cfg = AggregatorConfig(flush_interval=5.0, port_rollup_threshold=2)
    a = Accumulator(cfg)
    pool = materialize(specs, True)
    a.add(rows(pool), 1000.0)
    added = sum(f[PACKETS] for f in pool)
    emitted = 0
    parts = a.flush_parts(1001.0, size)
    for idx in between + [[]] * 1000:
        part = next(parts, None)
        if part is None:
            break
        emitted += sum(f[PACKETS] for f in part)
        flows = [pool[i % len(pool)] for i in idx]
        a.add(rows(flows), 1001.0)
        added += sum(f[PACKETS] for f in flows)
    emitted += sum(f[PACKETS] for f in a.flush(1010.0))
    emitted += sum(f[PACKETS] for f in a.drain())
    assert emitted == added
