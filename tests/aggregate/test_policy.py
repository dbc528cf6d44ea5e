"""A listener's [[sampling]] rules and tags applied to a batch's columns (flowpipe.decode.policy):
the chunks keep the columnar path, and every flush is what the per-record reference makes of the
flow tuples the rules and tags were applied to one by one (SamplingPolicy.apply, with_tags)."""
from __future__ import annotations

import random
from typing import Any

import pytest

from flowpipe.aggregate.accumulator import Accumulator
from flowpipe.aggregate.reference import ReferenceAccumulator
from flowpipe.config import AggregatorConfig, DecoderConfig, ListenerConfig, SamplingRule
from flowpipe.decode.base import Source
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.exporters import SamplingPolicy, with_tags
from flowpipe.decode.rows import Rows
from flowpipe.decode.stage import DecoderStage, FlowQueue
from flowpipe.export import DEFAULT_TEMPLATE, Exporter, Template, TrafficModel
from flowpipe.flow import BYTES, EXTRAS, SAMPLING_RATE
from flowpipe.metrics import Metrics

T0 = 1_700_000_000.0
RULES = [SamplingRule(exporters=["192.0.2.1/32"], override=64), SamplingRule(exporters=["192.0.2.2/32"], default=8)]
TAGS = {"site": "lab", "vlan": "overridden by an own field"}


def load(protocol: str, seed: int) -> list[tuple[bytes, Source]]:
    """Three exporters (an override, a default, no rule), repeats and new conversations, interleaved;
    sFlow's with a rate of their own, v9's without (the default applies)."""
    rng = random.Random(seed)
    out: list[tuple[bytes, Source]] = []
    for k in range(3):
        exp = Exporter("127.0.0.1:9", protocol=protocol, source_id=k, records_per_packet=7, boot_time=T0 - 3600,
                       clock=lambda: T0, **({"sampling_rate": 512, "agent": f"192.0.2.{k + 1}"}
                                             if protocol == "sflow5" else {}))
        model = TrafficModel(seed + k, pool=40)
        draw = model.samples if protocol == "sflow5" else model.flows
        recs = draw(300, exp.uptime_ms()).ipv4
        out += [(g, Source(f"192.0.2.{k + 1}", 2055, "default", T0)) for g in exp.encode(DEFAULT_TEMPLATE, recs)]
    head = 3 if protocol != "sflow5" else 0
    tail = out[head:]
    rng.shuffle(tail)
    return out[:head] + tail


def run(protocol: str, seed: int, batch: int, tags: dict[str, str] | None, rollup: bool, scale: bool = False,
        grams: list[tuple[bytes, Source]] | None = None) -> tuple[list[list[str]], list[list[str]], int]:
    flow_type = "sflow5" if protocol == "sflow5" else "netflow9"
    lc = ListenerConfig(flow_type=flow_type, tags=tags or {})
    sampling = SamplingPolicy(RULES, scale=scale)
    stage = DecoderStage(lc, Metrics(), decoder=DatagramDecoder(flow_type, DecoderConfig(), [], lc, columnar=True),
                         queue=FlowQueue(10**9), sampling=sampling)
    plain = DatagramDecoder(flow_type, DecoderConfig(), [], lc)
    cfg = AggregatorConfig(flush_interval=10.0, port_rollup_disabled=not rollup, port_rollup_threshold=3)
    fast, ref = Accumulator(cfg), ReferenceAccumulator(cfg)
    out_f: list[list[str]] = []
    out_r: list[list[str]] = []
    chunked, now = 0, T0
    grams = load(protocol, seed) if grams is None else grams
    for b, a in enumerate(range(0, len(grams), batch)):
        part = grams[a:a + batch]
        fb = stage.decode_batch([(d, s.exporter, s.port, s.received) for d, s in part])
        chunked += sum(c.count for c in fb.chunks if not isinstance(c, Rows))
        fast.add(fb.chunks, now)
        for d, s in part:
            flows, _ = sampling.apply(plain.decode(d, s).flows, s.exporter)
            ref.add(with_tags(flows, tags) if tags else flows, now)
        if b % 3 == 2:
            now += 5.0
            out_f.append(sorted(map(repr, fast.flush(now))))
            out_r.append(sorted(map(repr, ref.flush(now))))
    out_f.append(sorted(map(repr, fast.drain())))
    out_r.append(sorted(map(repr, ref.drain())))
    return out_f, out_r, chunked


@pytest.mark.parametrize("protocol", ["netflow9", "netflow5", "sflow5"])
@pytest.mark.parametrize("tags", [None, TAGS])
@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("scale", [False, True])
def test_sampling_rules_and_tags_keep_the_columnar_path(protocol: str, tags: dict[str, str] | None,
                                                        batch: int, scale: bool) -> None:
    out_f, out_r, chunked = run(protocol, 3, batch, tags, rollup=batch == 9, scale=scale)
    assert chunked > 500  # the columnar path really was taken
    assert out_f == out_r
    flows: list[Any] = [eval(f) for tick in out_r for f in tick]  # noqa: S307 - our own reprs
    rates = {f[1]: set() for f in flows}
    for f in flows:
        rates[f[1]].add(f[SAMPLING_RATE])
    assert rates["192.0.2.1"] == ({1} if scale else {64})  # the override (multiplied into the counters)
    if protocol == "netflow9":  # the default; no rule, none announced
        assert rates["192.0.2.2"] == ({1} if scale else {8}) and rates["192.0.2.3"] == {0}
    if tags:
        assert all(f[EXTRAS]["site"] == "lab" for f in flows)


# 8-byte counters and a rate in the record: products past what numpy merges take the flow tuple path.
WIDE_RATED = Template([(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 8), (2, 8), (34, 4)], template_id=270)


@pytest.mark.parametrize("batch", [1, 5])
def test_scaled_counters_past_what_numpy_merges_are_exact(batch: int) -> None:
    """Counters times their rate near and past 2**48 (and past 2**63 in a sum) come out exact, and a
    record of rate 0 or 1 is not scaled; every flush is the reference's."""
    rng = random.Random(7)
    grams: list[tuple[bytes, Source]] = []
    for k in range(3):
        exp = Exporter("127.0.0.1:9", protocol=10, source_id=k, records_per_packet=4, clock=lambda: T0)
        recs = []
        for i in range(60):
            nbytes = rng.choice((1500, 2**40, 2**47 + 3, 2**60 + 1, 2**62))
            rate = rng.choice((0, 1, 64, 1000, 2**31))
            recs.append((bytes((10, 0, 0, i % 4)), bytes((10, 0, 1, 1)), 1000 + i % 3, 443, 6,
                         nbytes, rng.choice((1, 2**40)), rate))
        grams += [(g, Source(f"192.0.2.{k + 1}", 2055, "default", T0)) for g in exp.encode(WIDE_RATED, recs)]
    out_f, out_r, chunked = run("ipfix", 1, batch, None, rollup=True, scale=True, grams=grams)
    assert chunked >= 180
    assert out_f == out_r
    flows: list[Any] = [eval(f) for tick in out_r for f in tick]  # noqa: S307 - our own reprs
    assert any(f[BYTES] >= 2**48 for f in flows) and {f[SAMPLING_RATE] for f in flows} <= {0, 1}


def test_flows_of_unknown_rate_are_counted_after_the_rules() -> None:
    """The unknown-sampling counter counts what the rules left without a rate: exporter 3 only."""
    lc = ListenerConfig(flow_type="netflow9")
    metrics = Metrics()
    stage = DecoderStage(lc, metrics, decoder=DatagramDecoder("netflow9", DecoderConfig(), [], lc, columnar=True),
                         queue=FlowQueue(10**9), sampling=SamplingPolicy(RULES))
    grams = load("netflow9", 5)
    stage.decode_batch([(d, s.exporter, s.port, s.received) for d, s in grams])
    got = {e: metrics.flows_unknown_sampling.labels(e)._value.get() for e in ("192.0.2.1", "192.0.2.2", "192.0.2.3")}
    assert got == {"192.0.2.1": 0, "192.0.2.2": 0, "192.0.2.3": 300}


@pytest.mark.parametrize("protocol", ["sflow5", "netflow5"])
def test_the_inventory_keeps_the_rate_announced_before_the_rules(protocol: str) -> None:
    """Exporter 1's rule overrides its rate with 64: the exporter inventory still shows the 512 it
    announced, also when the listener scales its counters."""
    from flowpipe.decode.facts import SamplingSeen  # noqa: PLC0415

    flow_type = "sflow5" if protocol == "sflow5" else "netflow9"
    for scale in (False, True):
        lc = ListenerConfig(flow_type=flow_type)
        seen = SamplingSeen(100)
        stage = DecoderStage(lc, Metrics(), decoder=DatagramDecoder(flow_type, DecoderConfig(), [], lc, columnar=True),
                             queue=FlowQueue(10**9), sampling=SamplingPolicy(RULES, scale=scale), rates_seen=seen)
        exp = Exporter("127.0.0.1:9", protocol=protocol, sampling_rate=512, boot_time=T0 - 3600, clock=lambda: T0,
                       **({"agent": "192.0.2.1"} if protocol == "sflow5" else {}))
        grams = exp.encode(DEFAULT_TEMPLATE, TrafficModel(1).flows(20, exp.uptime_ms()).ipv4)
        fb = stage.decode_batch([(g, "192.0.2.1", 2055, T0) for g in grams])
        assert not any(isinstance(c, Rows) for c in fb.chunks)  # (scaled counters: columns too)
        assert seen.rates == {("default", "192.0.2.1", protocol if protocol == "sflow5" else "netflow5"): 512}
