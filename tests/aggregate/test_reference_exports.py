"""Random exports, decoded and aggregated the service's way (decoder stage, columnar chunks, bulk
opens, numpy merges), give exactly what the per-record reference aggregation gives for the same
datagrams decoded into flow tuples one by one: every flush, the drain, and the drop and refusal
counters. Small value domains make keys repeat, windows refill, pairs cross the rollup threshold
within one batch, and new contexts come alone or several to an address pair.

Across exporters the service aggregates a batch per template layout, not in arrival order (as if
UDP had delivered it in another order, docs/performance.md *Order*): so exporters here have
address pairs of their own, and the caps, which every exporter shares, are tight only with one
exporter, where the order is the arrival order."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowpipe.decode.base import Source
from flowpipe.export import DEFAULT_TEMPLATE, DefaultRecord, Exporter
from tests.support import equivalence

T0 = 1_700_000_000.0
PORTS = [53, 443, 32768, 32769, 32770]

record = st.tuples(
    st.integers(0, 2), st.integers(0, 2),            # source, destination host
    st.sampled_from(PORTS), st.sampled_from(PORTS),  # ports
    st.sampled_from((6, 6, 17)), st.sampled_from((0, 0, 8)), st.integers(0, 1), st.integers(0, 3),
    st.integers(1, 50), st.integers(40, 10**5), st.integers(0, 30_000), st.integers(0, 2000),
    st.sampled_from((0, 0x02, 0x10, 0x12)))
batch = st.lists(st.tuples(st.integers(0, 2), record), min_size=1, max_size=40)
step = st.tuples(batch, st.booleans(), st.booleans())  # a batch, then a flush tick?, a rotation?
config = st.fixed_dictionaries({
    "port_rollup_threshold": st.integers(2, 4), "port_rollup_disabled": st.booleans(),
    "max_contexts": st.sampled_from((15, 1000)), "max_rollup_entries": st.sampled_from((30, 10**6))})


def _exporters(protocols: list[int]) -> list[Exporter]:
    return [Exporter("127.0.0.1:9", protocol=p, source_id=k, records_per_packet=7, boot_time=T0 - 3600,
                     clock=lambda: T0) for k, p in enumerate(protocols)]


def _record(exp: Exporter, k: int, r: tuple) -> DefaultRecord:
    s, d, sport, dport, proto, tos, in_if, out_if, packets, octets, ago, duration, flags = r
    up = exp.uptime_ms()
    first = up - ago - duration
    return DefaultRecord(bytes((10, k, 0, s)), bytes((10, k, 1, d)), bytes(4), in_if, out_if, packets, octets, first,
                         first + duration, sport, dport, flags, proto, tos, 0, 0, 24, 24)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cfg=config, protocols=st.lists(st.sampled_from((5, 9)), min_size=1, max_size=3),
       steps=st.lists(step, min_size=1, max_size=8))
def test_the_service_path_aggregates_random_exports_like_the_reference(
        cfg: dict[str, Any], protocols: list[int], steps: list[tuple[list, bool, bool]]) -> None:
    if len(protocols) > 1:  # caps shared by exporters aggregated in another order: not tight
        cfg = {**cfg, "max_contexts": 10**6, "max_rollup_entries": 10**6}
    exporters = _exporters(protocols)
    sources = [Source(f"192.0.2.{k + 1}", 2055, "default", T0) for k in range(len(exporters))]
    stage, plain, fast, ref = equivalence.both("netflow9", cfg)
    now = T0
    for records, tick, rotate in steps:
        grams: list[tuple[bytes, Source]] = []
        for k, exp in enumerate(exporters):
            mine = [_record(exp, k, r) for who, r in records if who % len(exporters) == k]
            if mine:
                grams += [(g, sources[k]) for g in exp.encode(DEFAULT_TEMPLATE, mine)]
        fb = stage.decode_batch([(g, s.exporter, s.port, s.received) for g, s in grams])
        flows = [f for g, s in grams for f in plain.decode(g, s).flows]
        now = equivalence.step(fast, ref, fb, flows, now, tick, rotate)
    equivalence.same_end(fast, ref)
