"""The service's aggregation path against the per-record reference, step by step (shared by the
tests that compare them on random exports)."""
from __future__ import annotations

from typing import Any

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceAccumulator


def step(fast: Accumulator, ref: ReferenceAccumulator, batch: Any, flows: list[tuple], now: float, tick: bool,
         rotate: bool) -> float:
    """The decoder stage's ``batch`` into ``fast`` and the same datagrams' flow tuples into ``ref``;
    then, if asked, a flush tick 5 s later (both emit the same flows) and a rollup rotation. Returns
    the time now."""
    fast.add(batch.flows, now)
    fast.add_chunks(batch.chunks, now)
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
