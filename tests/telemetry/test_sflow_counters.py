"""sFlow interface counters exposed as Prometheus metrics: values, bounded series, expiry."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flowpipe.decode import sflow
from flowpipe.decode.base import DecodeError, Source
from flowpipe.metrics import Metrics
from flowpipe.telemetry.sflow_counters import InterfaceCounterMetrics
from tests.support import captures
from tests.support.sflow import counter_sample, datagram, ethernet_counters, generic_counters


def counters(*records: bytes) -> list[object]:
    return sflow.decode(datagram([counter_sample(list(records))]), Source("192.0.2.1")).counters


def samples(registry: CollectorRegistry) -> dict[tuple, float]:
    """(sample name, agent, ifindex) -> value, plus (name,) for unlabelled samples."""
    out: dict[tuple, float] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            if s.name.startswith("flowpipe_sflow_interface_") and not s.name.endswith("_created"):
                key = (s.name, s.labels["agent"], s.labels["ifindex"]) if "agent" in s.labels else (s.name,)
                out[key] = s.value
    return out


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_values_are_exposed_per_agent_and_ifindex() -> None:
    reg = CollectorRegistry()
    m = InterfaceCounterMetrics(reg)
    m.update("192.0.2.1", counters(generic_counters(7, in_octets=2**40, out_octets=5, status=3, speed=10**10),
                                   ethernet_counters()))
    m.update("192.0.2.2", counters(generic_counters(7, status=1)))
    s = samples(reg)
    a = "192.0.2.1"
    assert s[("flowpipe_sflow_interface_in_octets_total", a, "7")] == 2**40
    assert s[("flowpipe_sflow_interface_out_octets_total", a, "7")] == 5
    assert s[("flowpipe_sflow_interface_in_packets_total", a, "7")] == 13
    assert s[("flowpipe_sflow_interface_out_packets_total", a, "7")] == 25
    assert s[("flowpipe_sflow_interface_in_discards_total", a, "7")] == 5
    assert s[("flowpipe_sflow_interface_in_errors_total", a, "7")] == 6
    assert s[("flowpipe_sflow_interface_out_discards_total", a, "7")] == 7
    assert s[("flowpipe_sflow_interface_out_errors_total", a, "7")] == 8
    assert s[("flowpipe_sflow_interface_speed_bps", a, "7")] == 10**10
    assert s[("flowpipe_sflow_interface_oper_status", a, "7")] == 1
    assert s[("flowpipe_sflow_interface_oper_status", "192.0.2.2", "7")] == 0
    assert s[("flowpipe_sflow_interface_admin_status", "192.0.2.2", "7")] == 1
    assert s[("flowpipe_sflow_interface_series",)] == 2
    assert s[("flowpipe_sflow_interface_series_refused_total",)] == 0


def test_series_cap_refuses_new_pairs_and_keeps_existing_ones_updating() -> None:
    reg = CollectorRegistry()
    m = InterfaceCounterMetrics(reg, max_series=2)
    m.update("a", counters(generic_counters(1), generic_counters(2), generic_counters(3)))
    m.update("b", counters(generic_counters(1)))
    m.update("a", counters(generic_counters(1, in_octets=999)))
    s = samples(reg)
    assert len(m) == 2
    assert s[("flowpipe_sflow_interface_series_refused_total",)] == 2
    assert s[("flowpipe_sflow_interface_in_octets_total", "a", "1")] == 999
    assert ("flowpipe_sflow_interface_in_octets_total", "a", "3") not in s
    assert not any(k[1:] == ("b", "1") for k in s)


def test_stale_series_expire_and_free_room() -> None:
    reg = CollectorRegistry()
    clock = Clock()
    m = InterfaceCounterMetrics(reg, max_series=1, expire_after=300, clock=clock)
    m.update("a", counters(generic_counters(1)))
    clock.t += 200
    m.update("a", counters(generic_counters(1)))
    clock.t += 200
    assert m.expire() == 0  # updated 200 s ago
    clock.t += 200
    m.update("b", counters(generic_counters(9)))  # the stale pair is swept first, making room
    assert {k[1:] for k in samples(reg) if len(k) == 3} == {("b", "9")}
    assert samples(reg)[("flowpipe_sflow_interface_series_refused_total",)] == 0


def test_registers_next_to_the_metrics_facade() -> None:
    metrics = Metrics()
    InterfaceCounterMetrics(metrics.registry).update("x", counters(generic_counters(4)))
    text = generate_latest(metrics.registry).decode()
    assert 'flowpipe_sflow_interface_in_octets_total{agent="x",ifindex="4"} 1000.0' in text
    assert "flowpipe_datagrams_received_total" in text or "flowpipe_datagrams_received" in text


def test_real_counter_capture() -> None:
    reg = CollectorRegistry()
    m = InterfaceCounterMetrics(reg)
    last: dict[tuple[str, str], int] = {}
    for g in captures.datagrams("sflow5_tcpdump_counters"):
        try:
            d = sflow.decode(g.payload, Source(g.src))
        except DecodeError:
            continue
        m.update(d.exporter, d.counters)
        for c in d.counters:
            if isinstance(c, sflow.InterfaceCounters):
                last[(d.exporter, str(c.if_index))] = c.in_octets
    s = samples(reg)
    assert len(m) == len(last) > 50
    assert s[("flowpipe_sflow_interface_in_octets_total", "15.184.8.4", "105")] == last[("15.184.8.4", "105")]
    assert s[("flowpipe_sflow_interface_speed_bps", "15.184.8.4", "105")] == 10**10
