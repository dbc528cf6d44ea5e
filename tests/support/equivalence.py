"""The service's aggregation path against the per-record reference, step by step (shared by the
tests that compare them on random exports)."""
from __future__ import annotations

from typing import Any

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceAccumulator
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.metrics import Metrics


def both(flow_type: str, cfg: dict[str, Any]) -> tuple[DecoderStage, DatagramDecoder, Accumulator,
                                                     ReferenceAccumulator]:
    """The service's decoder stage (columnar) and a plain decoder of ``flow_type``, and the service's
    accumulator and the reference, both configured with ``cfg`` (flush interval 10 s)."""
    aggregator = AggregatorConfig(flush_interval=10.0, **cfg)
    stage = DecoderStage(ListenerConfig(flow_type=flow_type), Metrics(),
                         decoder=DatagramDecoder(flow_type, DecoderConfig(), [], columnar=True), queue=FlowQueue(10**9))
    plain = DatagramDecoder(flow_type, DecoderConfig(), [])
    return stage, plain, Accumulator(aggregator), ReferenceAccumulator(aggregator)


def step(fast: Accumulator, ref: ReferenceAccumulator, batch: Any, flows: list[tuple], now: float, tick: bool,
         rotate: bool) -> float:
    """The decoder stage's ``batch`` into ``fast`` and the same datagrams' flow tuples into ``ref``;
    then, if asked, a flush tick 5 s later (both emit the same flows) and a rollup rotation. Returns
    the time now."""
    fast.add(batch.chunks, now)
    ref.add(flows, now)
    if tick:
        now += 5.0
        assert sorted(map(repr, fast.flush(now))) == sorted(map(repr, ref.flush(now)))
    if rotate:
        fast.rotate_rollup()
        ref.rotate_rollup()
    return now


def same_end(fast: Accumulator, ref: ReferenceAccumulator) -> None:
    """Both drain the same flows, having dropped, received and refused the same."""
    assert sorted(map(repr, fast.drain())) == sorted(map(repr, ref.drain()))
    assert fast.dropped_full == ref.dropped_full
    assert fast.received == ref.received
    if fast.rollup is not None and ref.rollup is not None:
        assert fast.rollup.refused == ref.rollup.refused
