"""The top-N cap and multi-exporter de-duplication through the running service: real UDP made by
flowpipe.export in, the real HTTP backend receiving what is left of each flush."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from flowpipe.aggregate.dedup import Deduplicator
from flowpipe.aggregate.topn import TopN
from flowpipe.config import ConfigError, ListenerConfig, load
from flowpipe.decode.rows import rows
from flowpipe.export import DEFAULT_TEMPLATE, DefaultRecord, Exporter
from flowpipe.flow import make_flow
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp

# a wide tick, so that datagrams sent together are surely first emitted in one flush
AGG = {"flush_interval": 4.0, "flush_tick": 2.0}


def rec(exp: Exporter, nbytes: int, sport: int) -> DefaultRecord:
    now = exp.uptime_ms()
    return DefaultRecord(src_addr="10.7.0.1", dst_addr="10.7.0.2", next_hop="0.0.0.0", in_if=1, out_if=2,
                         packets=nbytes // 100, bytes=nbytes, first=now - 500, last=now, src_port=sport,
                         dst_port=443, tcp_flags=0x18, protocol=6, tos=0, src_as=0, dst_as=0, src_mask=24, dst_mask=24)


async def settled(svc: object, be: Backend, flows: int) -> None:
    """Until ``flows`` flows arrived and a further tick has passed (nothing more should come)."""
    assert await be.wait_flows_async(flows, 15)
    await trio.sleep(AGG["flush_tick"] * 1.5)


@pytest.mark.slow
async def test_top_n_keeps_the_largest_flows_of_each_flush_and_counts_the_rest() -> None:
    # 2 ticks per interval and N = 6: each flush may emit 3 flows. With the cap on, a new
    # conversation is first emitted at a random tick of its first interval (the Agent's jitter), so
    # the 20 sent together are spread over the flushes of one interval.
    with Backend() as be:
        cfg = make_config(be.url, aggregator={**AGG, "max_flows_per_flush_interval": 6})
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            exp = Exporter(f"127.0.0.1:{port}", protocol=5)
            sizes = [1000 + 100 * i for i in range(20)]  # 20 conversations, bytes 1000 .. 2900
            send_udp(port, exp.encode(DEFAULT_TEMPLATE, [rec(exp, b, 2000 + i) for i, b in enumerate(sizes)]),
                     "127.0.18.40")
            await settled(svc, be, 3)
            await trio.sleep(AGG["flush_interval"] + AGG["flush_tick"])  # every one has been due once
            kept = sorted(f["bytes"] for f in be.flows)
            dropped = metric(svc, "flowpipe_flows_dropped_total", stage="aggregator", reason="top_n")
            assert len(kept) + dropped == 20 and set(kept) <= set(sizes)
            assert 2900 in kept  # the largest is the largest of whichever flush it is in
            assert metric(svc, "flowpipe_top_n_dropped_bytes_total") == sum(sizes) - sum(kept)
            assert metric(svc, "flowpipe_top_n_dropped_packets_total") == sum(b // 100 for b in sizes) - sum(
                k // 100 for k in kept)
            assert metric(svc, "flowpipe_flows_flushed_total") == len(kept)
    flushes: dict[int, list[int]] = {}
    for f in be.flows:
        flushes.setdefault(f["flush_timestamp"], []).append(f["bytes"])
    assert all(len(b) <= 3 for b in flushes.values())
    assert len(flushes) >= 2  # spread over the ticks (all 20 in one tick: a 2**-19 chance)


@pytest.mark.parametrize("cap", [0, 10**6])
@pytest.mark.parametrize("columnar", [False, True])
def test_with_the_cap_new_conversations_are_first_emitted_over_one_interval(cap: int, columnar: bool) -> None:
    """The Agent's jitter: with the top-N cap on, each new context is first due at a random time in
    [now, now + flush_interval), so a burst of new conversations spreads over the interval's ticks;
    without the cap all are emitted at the next tick."""
    from flowpipe.aggregate.accumulator import Accumulator  # noqa: PLC0415
    from flowpipe.config import AggregatorConfig, DecoderConfig  # noqa: PLC0415
    from flowpipe.decode.dispatch import DatagramDecoder  # noqa: PLC0415
    from flowpipe.decode.stage import DecoderStage, FlowQueue  # noqa: PLC0415
    from flowpipe.metrics import Metrics  # noqa: PLC0415

    t0 = 1_700_000_000.0
    acc = Accumulator(AggregatorConfig(flush_interval=300.0, max_flows_per_flush_interval=cap,
                                       port_rollup_disabled=True))
    if columnar:
        exp = Exporter("127.0.0.1:9", protocol=9, boot_time=t0 - 3600, clock=lambda: t0)
        stage = DecoderStage(ListenerConfig(flow_type="netflow9"), Metrics(),
                             decoder=DatagramDecoder("netflow9", DecoderConfig(), [], columnar=True),
                             queue=FlowQueue(10**9))
        fb = stage.decode_batch([(g, "192.0.2.1", 2055, t0) for g in
                                 exp.encode(DEFAULT_TEMPLATE, [rec(exp, 1000, 1024 + i) for i in range(1000)])])
        assert fb.chunks
        acc.add(fb.chunks, t0)
    else:
        acc.add(rows([make_flow(src_ip=b"\n\0\0\1", dst_ip=b"\n\0\0\2", src_port=1024 + i, dst_port=443, bytes=100,
                           packets=1) for i in range(1000)]), t0)
    per_tick = [len(acc.flush(t0 + 10 * k)) for k in range(1, 31)]  # the ticks of one interval
    assert sum(per_tick) == 1000
    if cap:
        assert max(per_tick) < 120 and sum(1 for n in per_tick if n) >= 20
    else:
        assert per_tick[0] == 1000


@pytest.mark.slow
async def test_one_conversation_from_exporters_of_a_group_counts_once() -> None:
    groups = [["127.0.18.41", "127.0.18.42/32"]]
    with Backend() as be:
        cfg = make_config(be.url, aggregator={**AGG, "dedup_groups": groups})
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            sent = {"127.0.18.41": [(100, 5000), (700, 5001)],  # (bytes, source port) of each record
                    "127.0.18.42": [(300, 5000)],
                    "127.0.18.43": [(200, 5000)]}             # in no group: always counted
            for source, recs in sent.items():
                exp = Exporter(f"127.0.0.1:{port}", protocol=5)
                send_udp(port, exp.encode(DEFAULT_TEMPLATE, [rec(exp, b, sp) for b, sp in recs]), source)
            await settled(svc, be, 3)
            got = sorted((f["exporter"]["ip"], int(f["source"]["port"]), f["bytes"]) for f in be.flows)
            assert got == [("127.0.18.41", 5001, 700), ("127.0.18.42", 5000, 300), ("127.0.18.43", 5000, 200)]
            assert metric(svc, "flowpipe_flows_dropped_total", stage="aggregator", reason="duplicate") == 1
            assert metric(svc, "flowpipe_flows_flushed_total") == 3


def test_budgets_follow_the_agents_spread_over_the_ticks() -> None:
    # the Agent's own example: N = 25 over 13 ticks -> 2 in each of the first 12 buckets, 1 in the last
    top = TopN(25, 130.0, 10.0)
    assert [top.budget(1_700_000_000 - 1_700_000_000 % 130 + 10 * i + 3) for i in range(13)] == [2] * 12 + [1]
    # N below the ticks per interval: buckets without a flow to spare emit nothing (the Agent: everything)
    small = TopN(3, 50.0, 10.0)
    assert [small.budget(10.0 * i + 0.5) for i in range(5)] == [1, 1, 1, 0, 0]
    small.start(40.5)
    small.take([list(make_flow(bytes=10**6))])
    assert small.finish() == [] and small.dropped == 1


def test_equal_bytes_keep_the_flow_emitted_first_and_groups_match_the_first_group() -> None:
    top = TopN(2, 10.0, 10.0)
    top.start(0.0)
    flows = [list(make_flow(bytes=5, src_port=p)) for p in range(4)]
    top.take(flows[:3])
    top.take(flows[3:])
    assert [f[13] for f in top.finish()] == [0, 1]
    d = Deduplicator([["10.0.0.0/8"], ["10.1.0.0/16", "192.0.2.1"]])
    assert (d.group("10.1.2.3"), d.group("192.0.2.1"), d.group("192.0.2.2"), d.group("name")) == (0, 1, -1, -1)


def test_bad_settings_are_config_errors_naming_the_key(tmp_path: Path) -> None:
    for body, key in (('dedup_groups = [["10.0.0.1"], []]', "aggregator.dedup_groups"),
                      ('dedup_groups = [["10.0.0.300"]]', "aggregator.dedup_groups"),
                      ("max_flows_per_flush_interval = -1", "aggregator.max_flows_per_flush_interval")):
        f = tmp_path / "flowpipe.toml"
        f.write_text("[aggregator]\n" + body + "\n")
        with pytest.raises(ConfigError) as e:
            load(str(f))
        assert e.value.key == key, (body, e.value)
    f.write_text('[aggregator]\nmax_flows_per_flush_interval = 500\ndedup_groups = [["10.0.0.1", "10.0.1.0/24"]]\n')
    agg = load(str(f)).aggregator
    assert (agg.max_flows_per_flush_interval, agg.dedup_groups) == (500, [["10.0.0.1", "10.0.1.0/24"]])
