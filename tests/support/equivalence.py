"""The service's aggregation path against the per-record reference, step by step (shared by the
tests that compare them on random exports)."""
from __future__ import annotations

from typing import Any

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceAccumulator
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.rows import Rows
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.metrics import Metrics

T0 = 1_700_000_000.0


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


def aggregate_both(load: list[tuple[bytes, Source]], cfg: AggregatorConfig, batch: int,
                   listener: ListenerConfig | None = None,
                   sizes: list[int] | None = None) -> tuple[list[list[list[Any]]], list[list[list[Any]]], int]:
    """Decode and aggregate ``load`` as the service does (decoder stage with chunks, ``batch``
    datagrams a batch) and with flow tuples only, one datagram after the other, by the per-record
    reference (:mod:`flowpipe.aggregate.reference`); the flows each emits at every flush tick,
    and how many flows came as chunks (not flow tuples). ``sizes``: batch sizes instead."""
    mapping = list(listener.mapping) if listener else []
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(),
                         decoder=DatagramDecoder("netflow9", DecoderConfig(), mapping, listener, columnar=True),
                         queue=FlowQueue(10**9))
    dec_t = DatagramDecoder("netflow9", DecoderConfig(), mapping, listener)
    acc_c, acc_t = Accumulator(cfg), ReferenceAccumulator(cfg)
    out_c: list[list[list[Any]]] = []
    out_t: list[list[list[Any]]] = []
    chunked = 0
    now = T0
    starts = [sum((sizes or [])[:k]) for k in range(len(sizes))] if sizes else range(0, len(load), batch)
    for b, a in enumerate(starts):
        batch = sizes[b] if sizes else batch
        fb = stage.decode_batch([(data, src.exporter, src.port, src.received) for data, src in load[a:a + batch]])
        chunked += sum(c.count for c in fb.chunks if not isinstance(c, Rows))
        acc_c.add(fb.chunks, now)
        for data, src in load[a:a + batch]:
            acc_t.add(dec_t.decode(data, src).flows, now)
        if b % 3 == 2:
            now += cfg.flush_interval / 2
            out_c.append(acc_c.flush(now))
            out_t.append(acc_t.flush(now))
        if b % 7 == 6:
            acc_c.rotate_rollup()
            acc_t.rotate_rollup()
    out_c.append(acc_c.drain())
    out_t.append(acc_t.drain())
    return out_c, out_t, chunked


def same_flushes(out_c: list[list[list[Any]]], out_t: list[list[list[Any]]]) -> None:
    """Flush by flush, the same flows (in any order)."""
    assert len(out_c) == len(out_t)
    for tick, (c, t) in enumerate(zip(out_c, out_t, strict=True)):
        assert sorted(map(repr, c)) == sorted(map(repr, t)), f"flush {tick} differs"
