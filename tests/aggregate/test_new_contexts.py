"""Mostly new conversations (what real exports are): the columnar path opens new contexts in bulk
and tracks untracked address pairs as seeds, and the outcome is exactly that of the per-flow
tuple path: same flows at every flush, same rollup trackers, same refusals and drops at the caps."""
from __future__ import annotations

import random
from typing import Any

import pytest

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.rollup import PortRollup, pair_key, pair_keys
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
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
    each, and the count of flows the columnar one sends through the per-flow path (``[n]``)."""
    stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(),
                         decoder=DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True),
                         queue=FlowQueue(10**9))
    plain = DatagramDecoder("netflow9", DecoderConfig(), [])
    acc_c, acc_t = Accumulator(cfg), Accumulator(cfg)
    per_flow = [0]
    one = acc_c._add_one

    def counted(*args: Any) -> None:
        per_flow[0] += 1
        one(*args)

    acc_c._add_one = counted  # type: ignore[method-assign]
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
        acc_c.add(fb.flows, now)
        acc_c.add_chunks(fb.chunks, now)
        for d, s in part:
            acc_t.add(plain.decode(d, s).flows, now)
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
    return dict(r.cur), dict(r.new), r.cur.entries, r.new.entries, r.refused


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
    assert per_flow < 300  # most of the 1800 flows were opened in bulk


@pytest.mark.parametrize("seed", range(4))
def test_repeated_pairs_and_thresholds_crossed_within_a_batch(seed: int) -> None:
    """Few hosts: pairs repeat in a batch and across batches and cross the threshold in one batch
    (those take the per-flow path); the lone ones in between still go in bulk."""
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
    """Near ``max_rollup_entries`` the order of observations decides what is refused: the batch
    takes the per-flow path and refuses exactly what it refuses."""
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


def test_a_seed_is_the_two_trackers_one_observation_makes() -> None:
    """A pair tracked in bulk reads, and then behaves under further observations, exactly like one
    observed once: same trackers, same verdicts, same stability tokens."""
    import numpy as np  # noqa: PLC0415

    rng = random.Random(3)
    flows = [(bytes((10, 0, 0, i)), bytes((10, 0, 1, i)), rng.randrange(30000, 30010), rng.choice((53, 443)))
             for i in range(50)]
    bulk, each = PortRollup(3), PortRollup(3)
    src = np.array([f[0] for f in flows], dtype="V4")
    dst = np.array([f[1] for f in flows], dtype="V4")
    sp = np.array([f[2] for f in flows], dtype=np.int64)
    dp = np.array([f[3] for f in flows], dtype=np.int64)
    pairs = pair_keys(src, dst, len(flows))
    lone = bulk.lone_new_pairs(pairs, np.arange(len(flows)))
    assert lone is not None and lone.all()
    bulk.track_new(pairs, sp, dp)
    for f in flows:
        assert each.observe(*f) == 0
    assert dict(bulk.cur) == dict(each.cur) and dict(bulk.new) == dict(each.new)
    assert (bulk.cur.entries, bulk.new.entries) == (each.cur.entries, each.new.entries) == (100, 100)
    # the same pairs again (now known: not lone-new), other ports: same verdicts and tokens
    assert bulk.lone_new_pairs(pairs, np.arange(len(flows))) is None
    for k in range(6):
        for s, d, p, q in flows:
            port = 40000 + k
            assert bulk.observe(s, d, port, q) == each.observe(s, d, port, q)
            assert (bulk.stable is None) == (each.stable is None)
            assert bulk.classify(s, d, p, q) == each.classify(s, d, p, q)
        if k == 3:
            bulk.rotate()
            each.rotate()
    assert dict(bulk.cur) == dict(each.cur) and dict(bulk.new) == dict(each.new)


def test_seeing_a_seeded_conversation_again_hands_out_its_token_and_keeps_the_seed() -> None:
    """The same observation as a seed's changes nothing: verdict 0, the pair's stability token (so
    the accumulator merges its next records without rollup work), the seeds stay small tuples; a
    different port then grows them into the pair's trackers and invalidates the token."""
    import numpy as np  # noqa: PLC0415

    r = PortRollup(3)
    src, dst = np.array([b"\x0a\0\0\1"], dtype="V4"), np.array([b"\x0a\0\0\2"], dtype="V4")
    r.track_new(pair_keys(src, dst, 1), np.array([40000]), np.array([443]))
    s, d = b"\x0a\0\0\1", b"\x0a\0\0\2"
    before = (dict(r.cur), dict(r.new))
    assert r.observe(s, d, 40000, 443) == 0
    tok = r.stable
    assert tok is not None and tok.gen == r.gen
    assert r.observe(s, d, 40000, 443) == 0 and r.stable is tok  # the same token again
    assert (dict(r.cur), dict(r.new)) == before
    assert type(r.cur.pairs[pair_key(s, d)]) is not dict and type(r.new.pairs[pair_key(s, d)]) is not dict
    invalidated = r.invalidated
    assert r.observe(s, d, 40001, 443) == 0  # another client port: the pair's trackers change
    assert tok.gen == -1 and r.invalidated == invalidated + 1
    assert r.cur[(s, d, 1, 443)] == (40000, 40001)


@pytest.mark.parametrize("threshold", [2, 10])
def test_a_conversation_exported_again_after_its_context_expired_is_made_in_bulk(threshold: int) -> None:
    """Long flows come back at every active timeout, after their context has expired (TTL) while
    the rollup still holds their pair as a seed: observing them again changes nothing, so their
    contexts are made again in bulk (with the pair's token), exactly as one by one."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=threshold)
    load = new_load(5, 900, hosts=4000)
    stage, plain, acc_c, acc_t, per_flow = both_paths(cfg)

    def feed(now: float) -> None:
        for a in range(0, len(load), 20):
            part = load[a:a + 20]
            fb = stage.decode_batch([(d, s.exporter, s.port, s.received) for d, s in part])
            acc_c.add(fb.flows, now)
            acc_c.add_chunks(fb.chunks, now)
            for d, s in part:
                acc_t.add(plain.decode(d, s).flows, now)

    feed(T0)
    for now in (T0 + 10, T0 + 25):  # emitted, then gone after the TTL
        assert sorted(map(repr, acc_c.flush(now))) == sorted(map(repr, acc_t.flush(now)))
    assert not acc_c.contexts and not acc_t.contexts
    assert _trackers(acc_c) == _trackers(acc_t) and acc_c.rollup is not None and len(acc_c.rollup.cur) > 3000
    per_flow[0] = 0
    feed(T0 + 26)  # the same conversations again
    assert per_flow[0] < 100  # of 1800: made again in bulk
    assert len(acc_c.contexts) == len(acc_t.contexts) > 1500
    # each context holds its pair's stability token: a third sighting needs no rollup work at all
    live = {acc_c._live[i].gen for i in acc_c.contexts.values()}
    assert acc_c.rollup.gen in live
    out_c, out_t = sorted(map(repr, acc_c.flush(T0 + 40))), sorted(map(repr, acc_t.flush(T0 + 40)))
    assert out_c == out_t and len(out_t) > 1500
    assert _trackers(acc_c) == _trackers(acc_t)
    assert sorted(map(repr, acc_c.drain())) == sorted(map(repr, acc_t.drain()))


@pytest.mark.parametrize("max_contexts", [700, 1_000_000])
def test_new_pairs_with_the_rollup_full_are_refused_and_made_in_bulk(max_contexts: int) -> None:
    """Past ``max_rollup_entries`` a pair neither generation tracks is refused and nothing else
    changes, so records of new pairs keep the bulk path: the same refusals, contexts, flows and (at
    ``max_contexts``) drops as one by one, with few records taking the per-record path."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=3, max_rollup_entries=40,
                           max_contexts=max_contexts)
    out_c, out_t, acc_c, acc_t, per_flow = aggregate_both(new_load(11, 900, hosts=4000), cfg, batch=3)
    assert out_c == out_t
    assert _trackers(acc_c) == _trackers(acc_t)
    assert acc_t.rollup is not None and acc_t.rollup.refused > 2000
    assert acc_c.dropped_full == acc_t.dropped_full
    assert (acc_t.dropped_full > 0) == (max_contexts == 700)
    assert per_flow < 200  # of 1,800: the first batch (in which the rollup fills up, in order) and few more


@pytest.mark.parametrize("hosts, cap", [(40, 40), (60, 40), (100, 100)])
def test_refused_in_bulk_only_while_no_observation_can_free_an_entry(hosts: int, cap: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With the trackers full, the records of pairs neither generation tracks are refused all at
    once, unless a tracked pair of the batch could reach the threshold (its side then becomes
    ephemeral, entries are freed and a later new pair is tracked after all): pairs that repeat and
    cross the threshold at the cap give the same flows, trackers and refusals as one by one."""
    outcomes = {"bulk": 0, "one_by_one": 0}
    refusals = PortRollup.refusals

    def counted(self: PortRollup, pairs: list[Any], among: list[int]) -> list[bool] | None:
        got = refusals(self, pairs, among)
        if self.cur.entries + self.new.entries >= self.max_entries:
            outcomes["bulk" if got is not None and any(got) else "one_by_one"] += 1
        return got

    monkeypatch.setattr(PortRollup, "refusals", counted)
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=2, max_rollup_entries=cap)
    out_c, out_t, acc_c, acc_t, _ = aggregate_both(new_load(13, 900, hosts=hosts), cfg, batch=30)
    assert out_c == out_t
    assert _trackers(acc_c) == _trackers(acc_t)
    assert acc_t.rollup is not None and acc_t.rollup.refused > 0
    assert outcomes["bulk"] > 0 and outcomes["one_by_one"] > 0


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
    """Once a client's side is ephemeral in both generations, its next connections change no
    tracker: they join the rolled-up context in bulk. After a rotation the new generation tracks
    the pair again one observation at a time until it is steady again. Same flows and trackers as
    one by one throughout."""
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_threshold=threshold)
    out_c, out_t, acc_c, acc_t, per_flow = aggregate_both(busy_clients(threshold, 3000), cfg, batch=12)
    assert out_c == out_t
    assert _trackers(acc_c) == _trackers(acc_t)
    assert sum(f.count("'*'") + f.count(", -1,") for tick in out_t for f in tick) > 0
    assert per_flow < 1500  # of 3,000 (all of them before): the warm-ups after the 3 rotations, not every connection
