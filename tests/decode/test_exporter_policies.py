"""Per-exporter policies through the running service: allowlist, sampling rules, tags, kernel drops."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from flowpipe.config import ListenerConfig, SamplingRule
from flowpipe.export import DefaultRecord, encode_v5
from tests.support import captures
from tests.support.backend import Backend
from tests.support.service_helpers import make_config, metric, running, send_udp


def rec(sp: int, nbytes: int = 100, packets: int = 2) -> DefaultRecord:
    return DefaultRecord(bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2]), bytes(4), 1, 2, packets, nbytes, 1000, 2000, sp,
                         443, 0x10, 6, 0, 0, 0, 24, 24)


def v5(records: list[DefaultRecord], seq: int = 0, sampling: int = 0) -> bytes:
    return encode_v5(records, 3000, int(time.time()), seq, sampling_interval=sampling)


@pytest.mark.slow
async def test_only_allowed_exporters_are_decoded_and_the_rest_counted() -> None:
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow5", "allowed_exporters": ["127.0.5.0/24"]}])
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [v5([rec(1)])], "127.0.5.9")
            send_udp(port, [v5([rec(2)]), v5([rec(3)], 1)], "127.0.6.1")
            assert await be.wait_flows_async(1, 5)
            await trio.sleep(0.5)
            assert metric(svc, "flowpipe_datagrams_dropped_total", reason="not_allowed") == 2
            assert metric(svc, "flowpipe_datagrams_received_total", flow_type="netflow5") == 3
    assert [f["exporter"]["ip"] for f in be.flows] == ["127.0.5.9"]


async def test_sampling_default_override_and_unknown_counter() -> None:
    with Backend() as be:
        cfg = make_config(be.url)
        cfg.sampling = [SamplingRule(exporters=["127.0.7.0/24"], override=100),
                        SamplingRule(exporters=["127.0.8.0/24"], default=10)]
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            send_udp(port, [v5([rec(1)], 0, 0), v5([rec(2)], 1, 500)], "127.0.8.1")   # default when none announced
            send_udp(port, [v5([rec(3)], 0, 500)], "127.0.7.1")                        # override whatever is said
            send_udp(port, [v5([rec(4)], 0, 0)], "127.0.9.1")                          # no rule, none announced
            assert await be.wait_flows_async(4, 5)
            assert metric(svc, "flowpipe_flows_unknown_sampling_total", exporter="127.0.9.1") == 1
            assert metric(svc, "flowpipe_flows_unknown_sampling_total", exporter="127.0.8.1") == 0
    rate = {int(f["source"]["port"]): f["sampling_rate"] for f in be.flows}
    assert rate == {1: 10, 2: 500, 3: 100, 4: 0}


async def test_scale_by_sampling_multiplies_before_aggregation() -> None:
    with Backend() as be:
        cfg = make_config(be.url, aggregator={"scale_by_sampling": True})
        async with running(cfg) as svc:
            send_udp(svc.listeners[0].cfg.port, [v5([rec(1, 100, 2)], 0, 50), v5([rec(1, 10, 1)], 1, 50)])
            assert await be.wait_flows_async(1, 5)
    (f,) = be.flows
    assert (f["bytes"], f["packets"], f["sampling_rate"]) == (5500, 150, 1)


async def test_static_tags_reach_additional_fields() -> None:
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow5", "tags": {"site": "par1", "role": "edge"}}])
        cfg.tags = {"env": "prod", "site": "global"}
        async with running(cfg) as svc:
            send_udp(svc.listeners[0].cfg.port, [v5([rec(1)])])
            assert await be.wait_flows_async(1, 5)
    assert be.flows[0]["additional_fields"] == {"env": "prod", "site": "par1", "role": "edge"}


async def test_kernel_drops_on_a_small_socket_buffer_are_counted() -> None:
    payload = v5([rec(i) for i in range(30)])
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow5", "receive_buffer": 4096}],
                          aggregator={"flush_interval": 60.0})
        async with running(cfg) as svc:
            port = svc.listeners[0].cfg.port
            sent = 400
            send_udp(port, [payload] * sent)   # sent while the service cannot run: the buffer overflows
            with trio.move_on_after(10):
                while True:
                    received = metric(svc, "flowpipe_datagrams_received_total", flow_type="netflow5")
                    drops = metric(svc, "flowpipe_socket_drops_total", listener=svc.listeners[0].name)
                    if drops and received + drops == sent:
                        break
                    await trio.sleep(0.2)
            assert drops > 0 and received + drops == sent
            assert metric(svc, "flowpipe_socket_receive_buffer_bytes", listener=svc.listeners[0].name) <= 8192


async def test_sampler_id_rules_change_only_that_samplers_rate(shared_captures: Path) -> None:
    name = "nf9_akvorado_multi_sampling_rates"  # sampler 1 = 1:2000, sampler 2 = 1:4000
    if name not in captures.names("nf9_"):
        captures.require()
    grams = captures.datagrams(name)
    with Backend() as be:
        cfg = make_config(be.url, listeners=[{"flow_type": "netflow9"}])
        cfg.sampling = [SamplingRule(sampler_id=2, override=10), SamplingRule(sampler_id=7, default=3)]
        async with running(cfg) as svc:
            send_udp(svc.listeners[0].cfg.port, [g.payload for g in grams], "127.0.12.1", 40557)
            assert await be.wait_flows_async(12, 5)
    exp = {r["sampler_id"] for r in captures.expected(name)["records"]}
    assert exp == {1, 2}
    assert sorted({f["sampling_rate"] for f in be.flows}) == [10, 2000]   # sampler 2 overridden, 1 untouched
    n2 = sum(1 for r in captures.expected(name)["records"] if r["sampler_id"] == 2)
    assert sum(1 for f in be.flows if f["sampling_rate"] == 10) == n2


def test_sampler_rules_default_fills_only_unknown_samplers() -> None:
    from flowpipe.decode.exporters import SamplerRules
    rules = SamplerRules([SamplingRule(exporters=["192.0.2.0/24"], sampler_id=1, default=100),
                          SamplingRule(exporters=["192.0.2.0/24"], sampler_id=2, default=100),
                          SamplingRule(sampler_id=3, override=5)])
    samplers = {2: 4000}
    assert rules.apply(samplers, "192.0.2.9") == {1: 100, 2: 4000, 3: 5}
    assert samplers == {2: 4000}  # never changed in place: data sets decoded later hold the old dict
    other = {1: 0}
    assert rules.apply(other, "198.51.100.1") == {1: 0, 3: 5}
    same = {3: 5}
    assert rules.apply(same, "198.51.100.1") is same  # nothing to change: no new dict


def test_exporter_label_values_are_capped() -> None:
    from flowpipe.config import DecoderConfig
    from flowpipe.decode import stage as stage_mod
    from flowpipe.decode.dispatch import DatagramDecoder
    from flowpipe.metrics import Metrics
    m = Metrics()
    st = stage_mod.DecoderStage(ListenerConfig(flow_type="netflow5"), m,
                                decoder=DatagramDecoder("netflow5", DecoderConfig(), []),
                                queue=stage_mod.FlowQueue(10_000))
    old = stage_mod.MAX_EXPORTER_LABELS
    stage_mod.MAX_EXPORTER_LABELS = 3
    try:
        st.decode_batch([(v5([rec(1)]), f"192.0.2.{i}", 5000, 0.0) for i in range(5)])
    finally:
        stage_mod.MAX_EXPORTER_LABELS = old
    values = {s.labels["exporter"] for fam in m.flows_unknown_sampling.collect() for s in fam.samples
              if s.name.endswith("_total")}
    assert values == {"192.0.2.0", "192.0.2.1", "192.0.2.2", "other"}
    assert m.registry.get_sample_value("flowpipe_limits_hit_total", {"limit": "exporter_labels"}) == 2
