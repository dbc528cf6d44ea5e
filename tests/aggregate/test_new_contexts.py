"""Mostly new conversations (what real exports are): the columnar path observes a batch's records
in one call of the compiled trackers and opens new contexts in bulk, and the outcome is exactly
that of the per-flow tuple path with the pure-Python trackers: same flows at every flush, same
rollup trackers, same refusals and drops at the caps."""
from __future__ import annotations

import random
from typing import Any

import pytest

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.rollup import COMPILED, PyTrackers, Trackers
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.rows import rows
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.export import DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, DefaultRecord, Exporter
from flowpipe.metrics import Metrics

T0 = 1_700_000_000.0


def new_load(seed: int, n: int, hosts: int, v6: bool = False) -> list[tuple[bytes, Source]]:
    """``n`` records from 2 exporters between ``hosts`` x ``hosts`` addresses: with many hosts most
    address pairs are new and alone in their batch; with few, pairs repeat within and across
    batches and a client's ephemeral ports to a service cross the rollup threshold."""
    rng = random.Random(seed)
    out: list[tuple[bytes, Source]] = []
    for k in range(2):
        exp = Exporter("127.0.0.1:9", protocol=9, source_id=k, records_per_packet=rng.choice((5, 24)),
                       boot_time=T0 - 3600, clock=lambda: T0)
        up = exp.uptime_ms()
        recs = []
        for _ in range(n):
            a, b = rng.randrange(hosts), rng.randrange(hosts)
            if v6:
                src, dst = bytes(12) + a.to_bytes(4, "big"), bytes(11) + b"\1" + b.to_bytes(4, "big")
            else:
                src, dst = bytes((10, 1)) + a.to_bytes(2, "big"), bytes((10, 2)) + b.to_bytes(2, "big")
            service = rng.choice((53, 443))
            eph = rng.randrange(32768, 32768 + rng.choice((4, 3000)))
            sport, dport = (eph, service) if rng.random() < 0.6 else (service, eph)
            if rng.random() < 0.1:
                sport = dport = service
            first = up - rng.randrange(60_000)
            recs.append(DefaultRecord(src, dst, bytes(16 if v6 else 4), rng.randrange(3), rng.randrange(3),
                                      rng.randrange(1, 100), rng.randrange(40, 10**6), first,
                                      min(up, first + rng.randrange(1000)), sport, dport, rng.choice((0, 0x02, 0x10)),
                                      rng.choice((6, 17)), rng.choice((0, 8)), 0, 0, 24, 24))
        out += [(g, Source(f"192.0.2.{k + 1}", 2055, "default", T0))
                for g in exp.encode(DEFAULT_TEMPLATE_V6 if v6 else DEFAULT_TEMPLATE, recs)]
    rng.shuffle(out[2:])  # interleave the exporters (their templates first)
    return out


def both_paths(cfg: AggregatorConfig) -> tuple[DecoderStage, DatagramDecoder, Accumulator, Accumulator, list[int]]:
    """The service's decoder stage (chunks) and a plain decoder (flow tuples), an accumulator for
    each (the tuples' with the pure-Python trackers), and the count of records the columnar one
    takes one by one (``[n]``)."""
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(),
                         decoder=DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True),
                         queue=FlowQueue(10**9))
    plain = DatagramDecoder("netflow9", DecoderConfig(), [])
    acc_c, acc_t = Accumulator(cfg), Accumulator(cfg)
    if acc_t.rollup is not None:
        acc_t.rollup = PyTrackers(cfg.port_rollup_threshold, cfg.max_rollup_entries)
    per_flow = [0]
    one = acc_c._one_by_one

    def counted(positions: list[int], *args: Any) -> None:
        per_flow[0] += len(positions)
        one(positions, *args)

    acc_c._one_by_one = counted  # type: ignore[method-assign]
    return stage, plain, acc_c, acc_t, per_flow


def aggregate_both(load: list[tuple[bytes, Source]], cfg: AggregatorConfig,
                   batch: int) -> tuple[list[list[Any]], list[list[Any]], Accumulator, Accumulator, int]:
    """``load`` through the service's decoder stage (chunks) and through flow tuples one datagram at
    a time; what each emits at every flush (flows sorted), both accumulators, and how many flows
    the columnar one sent through the per-flow path."""
    stage, plain, acc_c, acc_t, per_flow = both_paths(cfg)
    out_c: list[list[Any]] = []
    out_t: list[list[Any]] = []
    now = T0
    for b, a in enumerate(range(0, len(load), batch)):
        part = load[a:a + batch]
        fb = stage.decode_batch([(d, s.exporter, s.port, s.received) for d, s in part])
        acc_c.add(fb.chunks, now)
        for d, s in part:
            acc_t.add(rows(plain.decode(d, s).flows), now)
        if b % 4 == 3:
            now += cfg.flush_interval / 2
            out_c.append(sorted(map(repr, acc_c.flush(now))))
            out_t.append(sorted(map(repr, acc_t.flush(now))))
        if b % 9 == 8:
            acc_c.rotate_rollup()
            acc_t.rotate_rollup()
    out_c.append(sorted(map(repr, acc_c.drain())))
    out_t.append(sorted(map(repr, acc_t.drain())))
    return out_c, out_t, acc_c, acc_t, per_flow[0]


def _trackers(acc: Accumulator) -> tuple[Any, ...]:
    r = acc.rollup
    assert r is not None
    return r.trackers(0), r.trackers(1), r.entries(0), r.entries(1), r.refused


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [2, 3, 10])
def test_new_conversations_with_rollup_like_tuples(seed: int, threshold: int) -> None:
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=threshold)
    out_c, out_t, acc_c, acc_t, per_flow = aggregate_both(new_load(seed, 900, hosts=4000, v6=seed == 3), cfg,
                                                          batch=6 + seed * 9)
    assert out_c == out_t
    assert sum(map(len, out_t)) > 1500
    assert _trackers(acc_c) == _trackers(acc_t)
    assert per_flow == 0  # every one of the 1800 flows taken in bulk


@pytest.mark.parametrize("seed", range(4))
def test_repeated_pairs_and_thresholds_crossed_within_a_batch(seed: int) -> None:
    """Few hosts: pairs repeat in a batch and across batches and cross the threshold in one batch."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=3)
    out_c, out_t, acc_c, acc_t, _ = aggregate_both(new_load(seed, 900, hosts=12), cfg, batch=40)
    assert out_c == out_t
    assert any("-1" in f for tick in out_t for f in tick)  # some ports were rolled up
    assert _trackers(acc_c) == _trackers(acc_t)


@pytest.mark.parametrize("seed", range(3))
def test_new_keys_without_rollup_first_record_opens(seed: int) -> None:
    """No rollup: every new key is opened in bulk by its first record (its kept fields: interfaces,
    next hop...), later records of the same key in the batch merge into it."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=True)
    out_c, out_t, _, _, per_flow = aggregate_both(new_load(seed, 900, hosts=30 + seed * 500), cfg, batch=25)
    assert out_c == out_t
    assert per_flow == 0


@pytest.mark.parametrize("cap", [40, 400, 1500])
def test_rollup_cap_refuses_the_same_observations(cap: int) -> None:
    """Near ``max_rollup_entries`` the order of observations decides what is refused: the batch's
    observations in one call refuse exactly what one by one refuses."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=3, max_rollup_entries=cap)
    out_c, out_t, acc_c, acc_t, _ = aggregate_both(new_load(7, 600, hosts=2000), cfg, batch=30)
    assert out_c == out_t
    assert _trackers(acc_c) == _trackers(acc_t)
    assert acc_t.rollup is not None and acc_t.rollup.refused > 0


@pytest.mark.parametrize("rollup", [True, False])
def test_max_contexts_drops_the_same_flows(rollup: bool) -> None:
    cfg = AggregatorConfig(flush_interval=10.0, max_contexts=500, port_rollup_disabled=not rollup)
    out_c, out_t, acc_c, acc_t, _ = aggregate_both(new_load(5, 600, hosts=3000), cfg, batch=20)
    assert out_c == out_t
    assert acc_c.dropped_full == acc_t.dropped_full > 0


@pytest.mark.skipif(not COMPILED, reason="the compiled trackers are not built (no C compiler at install)")
def test_a_conversation_seen_once_is_small_in_the_trackers() -> None:
    """The common case on real traffic: 100,000 conversations seen once each (both generations track
    them) take under 100 bytes each in the compiled trackers (the tables at their growth steps
    included), which read back as the flat trackers."""
    import numpy as np  # noqa: PLC0415

    n = 100_000
    rng = np.random.default_rng(1)
    src = rng.integers(0, 2**32, n, dtype=np.uint32).astype(">u4").view(np.uint8)
    dst = rng.integers(0, 2**32, n, dtype=np.uint32).astype(">u4").view(np.uint8)
    sp, dp = rng.integers(1024, 65536, n).astype(np.uint64), rng.choice([53, 443], n).astype(np.uint64)
    t = Trackers(10)
    before = t.memory()
    assert t.observe_columns(src, dst, sp, dp, n) == bytes(n)
    assert t.entries(0) == t.entries(1) == 2 * n
    assert (t.memory() - before) / n < 100
    s, d = src[:4].tobytes(), dst[:4].tobytes()
    assert t.trackers(0)[(s, d, 0, int(sp[0]))] == (int(dp[0]),)
    assert t.trackers(1)[(s, d, 1, int(dp[0]))] == (int(sp[0]),)


@pytest.mark.parametrize("threshold", [2, 10])
def test_a_conversation_exported_again_after_its_context_expired_is_made_in_bulk(threshold: int) -> None:
    """Long flows come back at every active timeout, after their context has expired (TTL) while
    the rollup still holds their pair: their contexts are made again in bulk, exactly as one by one."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=threshold)
    load = new_load(5, 900, hosts=4000)
    stage, plain, acc_c, acc_t, per_flow = both_paths(cfg)

    def feed(now: float) -> None:
        for a in range(0, len(load), 20):
            part = load[a:a + 20]
            fb = stage.decode_batch([(d, s.exporter, s.port, s.received) for d, s in part])
            acc_c.add(fb.chunks, now)
            for d, s in part:
                acc_t.add(rows(plain.decode(d, s).flows), now)

    feed(T0)
    for now in (T0 + 10, T0 + 25):  # emitted, then gone after the TTL
        assert sorted(map(repr, acc_c.flush(now))) == sorted(map(repr, acc_t.flush(now)))
    assert not acc_c.contexts and not acc_t.contexts
    assert _trackers(acc_c) == _trackers(acc_t) and acc_c.rollup is not None and acc_c.rollup.entries(0) > 3000
    per_flow[0] = 0
    feed(T0 + 26)  # the same conversations again
    assert per_flow[0] == 0  # made again in bulk
    assert len(acc_c.contexts) == len(acc_t.contexts) > 1500
    out_c, out_t = sorted(map(repr, acc_c.flush(T0 + 40))), sorted(map(repr, acc_t.flush(T0 + 40)))
    assert out_c == out_t and len(out_t) > 1500
    assert _trackers(acc_c) == _trackers(acc_t)
    assert sorted(map(repr, acc_c.drain())) == sorted(map(repr, acc_t.drain()))


@pytest.mark.parametrize("max_contexts", [700, 1_000_000])
def test_new_pairs_with_the_rollup_full_are_refused_and_made_in_bulk(max_contexts: int) -> None:
    """Past ``max_rollup_entries`` a pair neither generation tracks is refused and nothing else
    changes: the same refusals, contexts, flows and (at ``max_contexts``) drops as one by one, all
    in bulk."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=3, max_rollup_entries=40,
                           max_contexts=max_contexts)
    out_c, out_t, acc_c, acc_t, per_flow = aggregate_both(new_load(11, 900, hosts=4000), cfg, batch=3)
    assert out_c == out_t
    assert _trackers(acc_c) == _trackers(acc_t)
    assert acc_t.rollup is not None and acc_t.rollup.refused > 2000
    assert acc_c.dropped_full == acc_t.dropped_full
    assert (acc_t.dropped_full > 0) == (max_contexts == 700)
    assert per_flow == 0


@pytest.mark.parametrize("hosts, cap", [(40, 40), (60, 40), (100, 100)])
def test_refusals_where_an_observation_frees_entries(hosts: int, cap: int) -> None:
    """With the trackers full, pairs that repeat and cross the threshold free entries (their peer
    side's trackers go), so a later new pair is tracked after all: same flows, trackers and
    refusals as one by one."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=2, max_rollup_entries=cap)
    out_c, out_t, acc_c, acc_t, _ = aggregate_both(new_load(13, 900, hosts=hosts), cfg, batch=30)
    assert out_c == out_t
    assert _trackers(acc_c) == _trackers(acc_t)
    assert acc_t.rollup is not None and acc_t.rollup.refused > 0


def busy_clients(seed: int, n: int) -> list[tuple[bytes, Source]]:
    """``n`` records of 3 clients talking to 2 services, a fresh ephemeral port each time (the
    rollup's case): after a few connections the client side of each pair is rolled up."""
    rng = random.Random(seed)
    exp = Exporter("127.0.0.1:9", protocol=9, source_id=0, records_per_packet=8, boot_time=T0 - 3600,
                   clock=lambda: T0)
    up = exp.uptime_ms()
    recs = []
    for _ in range(n):
        client, server = bytes((10, 0, 0, rng.randrange(3))), bytes((172, 16, 0, rng.randrange(2)))
        eph, service = rng.randrange(40000, 60000), rng.choice((53, 443))
        forward = rng.random() < 0.7
        src, dst, sport, dport = (client, server, eph, service) if forward else (server, client, service, eph)
        recs.append(DefaultRecord(src, dst, bytes(4), 1, 2, rng.randrange(1, 9), rng.randrange(40, 9000), up - 500, up,
                                  sport, dport, 0x10, rng.choice((6, 17)), 0, 0, 0, 24, 24))
    return [(g, Source("192.0.2.1", 2055, "default", T0)) for g in exp.encode(DEFAULT_TEMPLATE, recs)]


@pytest.mark.parametrize("threshold", [2, 3, 10])
def test_connections_of_a_rolled_up_client_merge_in_bulk(threshold: int) -> None:
    """A client's connections, a fresh port each, join its rolled-up context in bulk, through
    rotations too. Same flows and trackers as one by one throughout."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=threshold)
    out_c, out_t, acc_c, acc_t, per_flow = aggregate_both(busy_clients(threshold, 3000), cfg, batch=12)
    assert out_c == out_t
    assert _trackers(acc_c) == _trackers(acc_t)
    assert sum(f.count("'*'") + f.count(", -1,") for tick in out_t for f in tick) > 0
    assert per_flow == 0


@pytest.mark.parametrize("cfg", [dict(port_rollup_threshold=3), dict(port_rollup_threshold=2, max_rollup_entries=60),
                                 dict(max_contexts=500), dict(port_rollup_disabled=True)])
def test_without_the_compiled_tables_the_same_flows(cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the compiled tables are not built, the pure-Python context table and trackers run the
    same columnar path: the same flows, trackers, refusals and drops as the tuple path."""
    import flowpipe.aggregate.accumulator as accumulator  # noqa: PLC0415
    from flowpipe.aggregate.contexts import PyContextTable  # noqa: PLC0415

    monkeypatch.setattr(accumulator, "ContextTable", PyContextTable)
    monkeypatch.setattr(accumulator, "Trackers", PyTrackers)
    out_c, out_t, acc_c, acc_t, per_flow = aggregate_both(new_load(3, 600, hosts=40), AggregatorConfig(
        flush_interval=10.0, **cfg), batch=30)
    assert type(acc_c.contexts) is PyContextTable
    assert out_c == out_t and sum(map(len, out_t)) >= 500
    if acc_t.rollup is not None:
        assert _trackers(acc_c) == _trackers(acc_t)
    assert acc_c.dropped_full == acc_t.dropped_full
    assert per_flow == 0


@pytest.mark.parametrize("table", ["compiled", "python"])
def test_keys_read_back_in_one_buffer_only_when_all_are_that_wide(table: str) -> None:
    """A flush reads its contexts' keys into one buffer when they share a width (no object per key),
    and is told when they do not (then it reads them one by one)."""
    import numpy as np  # noqa: PLC0415

    from flowpipe.aggregate import contexts  # noqa: PLC0415

    if table == "compiled" and contexts.ContextTable is contexts.PyContextTable:
        pytest.skip("flowpipe.aggregate._tables was not built (no C compiler at install time)")
    t = contexts.ContextTable() if table == "compiled" else contexts.PyContextTable()
    keys = [bytes([k]) * 25 for k in range(6)] + [b"\x09" * 40]  # 40 bytes: held out of line in C
    slots = [t.add(k) for k in keys]
    out = np.zeros(4 * 25, np.uint8)
    assert t.keys_into(np.array(slots[2:6], np.int64), 25, out) is True
    assert out.tobytes() == b"".join(keys[2:6])
    assert t.keys_into(np.array(slots[5:7], np.int64), 25, np.zeros(50, np.uint8)) is False
    wide = np.zeros(40, np.uint8)
    assert t.keys_into(np.array(slots[6:], np.int64), 40, wide) is True and wide.tobytes() == keys[6]
